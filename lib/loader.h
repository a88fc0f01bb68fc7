// The training data loader: shards in, packed batches (mm_batch, see batch.h) out.
//
// Each document becomes one sequence: BOS, its segments in order (text: the token ids; image:
// BOI, its NP patches in raster order, EOI), EOS. Sequences are packed greedily into rows of T
// positions: a sequence that does not fit in the rest of a row starts the next row (the rest
// is padding); a sequence longer than T starts a fresh row and is cut into pieces of at most T
// positions, cut before a BOI when a cut would fall inside an image, so an image never splits.
// Each piece is its own document for the mask and the rotary positions. A last piece that
// would hold only the EOS (a sequence of k T + 1 positions) carries no loss and is dropped.
//
// Targets: position i predicts the token at i+1 when i+1 is a text position (BOS, text, BOI,
// EOI, EOS) of the same piece and i is not an image patch. So BOI's position (whose next is a
// patch) and the patches have no target; EOI's position predicts the next text token.
//
// Caption pairs (a document of exactly one non-empty text segment and one image, in either
// order): with probability cfg_drop the caption is dropped (the document is the image alone,
// for classifier-free guidance); otherwise, with probability image_first, the image comes
// first and its noise level is mapped into [first_t, 1] (t' = first_t + (1 - first_t) t; by
// default first_t = MM_T_IMAGE_FIRST = 0.5), so the caption after it reads a recognisable image
// and t keeps a continuous distribution);
// otherwise the caption comes first. Other documents keep their order.
//
// Noise: per image t = sigmoid(t_mu + t_sigma * n), n ~ N(0, 1); x = pixel / 127.5 - 1;
// z = t x + (1 - t) eps, eps ~ N(0, 1) per value (mm_batch_put_image).
//
// Determinism: each epoch shuffles all documents of all shards (Fisher-Yates from a generator
// seeded by (seed, epoch)); every random choice of the document at permutation position p
// (drop, order, t, eps) comes from a generator seeded by (seed, epoch, p), never from a
// long-running one. The whole state is therefore (epoch, cursor, offset), and a loader set to
// a saved state produces exactly the batches the original would have produced next. Each batch
// starts at row 0: a document that does not fit in the batch's last row waits for the next
// batch (the cursor points at it); only a document longer than a row can be left part-way, and
// the offset says where its next piece starts.
//
// Data parallel (rank, world): document-level striding. Number the documents of all epochs in
// the order one loader reads them, g = epoch * n_docs + p (p the permutation position); rank r
// takes the g with g % world == r, in order, and packs its own B rows from them. All ranks
// share the permutations, so over one epoch the ranks together see every document exactly
// once; and the stride runs on across epochs (for n_docs not a multiple of world, rank r
// starts epoch e at p = (r - e n_docs) mod world), so that, when each document fills a row of
// its own, world ranks of B rows read the very rows one loader of world x B rows reads.
//
// Validation mode: one pass in shard order (no shuffle), caption first, no caption drop, and
// noise from a fixed seed (not opts.seed) and the document's index, so a validation figure is
// comparable across steps and runs. After the pass mm_loader_next returns 0; mm_loader_rewind
// starts over.
//
// Memory: the readers stay open and documents are read one at a time with mm_shard_read; the
// loader holds one document, the readers' indexes, and the permutation (8 bytes a document).
#ifndef MM_LOADER_H
#define MM_LOADER_H

#include <stdint.h>

#include "batch.h"
#include "shard.h"

typedef struct mm_loader_opts {
	int batch;            // B rows per batch
	int seq_len;          // T positions per row
	uint64_t seed;        // shuffle, caption order and drop, noise (training mode only)
	double image_first;   // probability of image-then-caption for a caption pair (0.2)
	double cfg_drop;      // probability that a caption pair loses its caption (0.1)
	double first_t;       // an image before its caption: t mapped into [first_t, 1] (MM_T_IMAGE_FIRST)
	double t_mu, t_sigma; // logit-normal noise level (MM_T_MU, MM_T_SIGMA: -0.8, 0.8)
	int rank, world;      // data-parallel slice (0, 1)
	int validation;       // 1: validation mode (see above)
	double val_t;         // validation: every image at this noise level in [0, 1] (its eps as
			      // drawn); < 0: the drawn level (-1). mm-eval's fixed grid of levels.
	uint64_t max_docs;    // validation: the pass ends after this many documents (0: all)
} mm_loader_opts;

// Fills the defaults above; batch and seq_len are set to 0 and must be given.
void mm_loader_opts_init(mm_loader_opts *o);

typedef struct mm_loader_state {
	uint64_t epoch;  // epoch of the next document (0 first)
	uint64_t cursor; // permutation position of the next document
			 // ((epoch * docs per epoch + cursor) % world == rank)
	uint64_t offset; // sequence position in that document where its next piece starts (0 unless
			 // a document longer than a row was cut across two batches)
} mm_loader_state;

typedef struct mm_loader mm_loader;

// Opens every shard matched by the patterns: each pattern is a shard file, a directory (its
// *.mms files) or a glob(3) pattern. The paths are sorted (strcmp) and duplicates dropped. A
// pattern that matches nothing, a shard that fails to open, two incompatible shards (the error
// names both), or an image that cannot fit in a row (NP + 3 > T: BOS, BOI, patches, EOI) is
// refused. A path named twice (the same string) is read once. Training mode also needs at least world documents.
int mm_loader_open(mm_loader **l, const char *const *patterns, int n_patterns, const mm_loader_opts *o);
void mm_loader_close(mm_loader *l);
// Sets the noise level distribution (t_mu, t_sigma of the options) before the first batch.
void mm_loader_set_noise(mm_loader *l, double mu, double sigma);

// What the shards promise (tokenizer, vocab size, image geometry), with n_docs the number of
// documents of all shards together: mm-train builds its configuration from it.
const mm_shard_info *mm_loader_info(const mm_loader *l);
int mm_loader_n_shards(const mm_loader *l);
const char *mm_loader_shard_path(const mm_loader *l, int i);
// Documents in one epoch, all ranks together (= mm_loader_info(l)->n_docs).
uint64_t mm_loader_docs_per_epoch(const mm_loader *l);
// Epochs done so far as a fraction (epoch + cursor / docs per epoch), for logs and --epochs.
double mm_loader_epochs_done(const mm_loader *l);

// Reads global document g (0 <= g < n_docs, shards in the order above) into doc, checked
// against the shards' promises as mm_loader_next checks it. Does not move the loader.
int mm_loader_read(mm_loader *l, uint64_t g, mm_doc *doc);

// mm_batch_alloc for this loader's B, T and patch size (z and x are NULL for text-only
// shards); freed with mm_batch_free.
int mm_loader_batch_alloc(const mm_loader *l, mm_batch *b);

// Fills the next batch (b from mm_loader_batch_alloc). Returns the number of rows holding at
// least one document (B in training mode; fewer in the last validation batch, whose other rows
// are all padding), 0 when the validation pass is over, or a negative MM_E* code (a shard read
// error, a document that breaks the shard's promises); on error the state is left as it was.
// Padding is what mm_batch_clear leaves: token MM_TOK_PAD, target, doc, img and patch -1, pos 0,
// t, z and x 0.
int mm_loader_next(mm_loader *l, mm_batch *b);

void mm_loader_get_state(const mm_loader *l, mm_loader_state *s);
// Fails with MM_EINVAL on a state that this loader cannot have (a cursor of another rank or
// beyond the documents); an offset beyond its document fails at the next mm_loader_next.
int mm_loader_set_state(mm_loader *l, const mm_loader_state *s);
// Back to the first document of epoch 0 (starts a new validation pass).
void mm_loader_rewind(mm_loader *l);

// Padded positions over all positions of the batches served since open; the counts may be
// NULL. Returns padded / total (0 before the first batch).
double mm_loader_padding(const mm_loader *l, uint64_t *padded, uint64_t *total);

#endif
