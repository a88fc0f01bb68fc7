// Evaluation of a trained model on held-out shards: the engine of mm-eval (man/mm-eval.1).
//
// Documents are read in shard order (mm_loader's order), the first max_docs of them. A caption
// pair (one non-empty text segment and one image) is read caption first, as validation does.
//
// Losses (mm_eval_losses): one pass with every image clean (t = 1, z = x) scores the text: the
// positions with a target (the training loader's targets: text tokens, BOI, EOS) give the mean
// NLL per token, the perplexity, and bits per byte = total NLL in bits / UTF-8 bytes of the
// scored tokens (special tokens decode to no bytes). Then one pass per noise level
// t_k = (k + 0.5) / K, k = 0..K-1, every image at t_k with the validation loader's fixed eps,
// scores the images with the training loss ((x_pred - x) / s)^2, s = max(1 - t, MM_T_FLOOR), mean
// over image values; the image loss is the mean over the K levels.
//
// Bits per dimension (mm_eval_bpd): the variational bound of continuous-time diffusion on the
// path z_t = t x + (1 - t) eps, worked out in lib/bpd.c and man/mm-eval.1. Each image is read
// after the text segment before it in its document (its caption), or alone (uncond).
//
// Classes (mm_eval_classify): a list of captions, one a line. Each caption pair whose caption
// is one of them is a labelled image; the image is scored as BOS BOI image(t = read_t) EOI
// caption EOS for every candidate caption (the sum of the log-probabilities of the caption's
// tokens and EOS), and the likeliest caption is the prediction (the first of equal scores).
// The image is read at noise level read_t (0.9 by default) shifted by the model's noise shift
// (mm_read_level, model.h: 0.9 stays 0.9 at 28x28x1, becomes 0.694 at 64x64x3),
// z = t x + (1 - t) eps, because training shows an image before its caption noised (t in
// [0.5, 1), mm-train --image-first, drawn with the shift) and never clean; image k of a call
// draws eps from mm_rng (seed ^ MM_EVAL_READ_TAG, index0 + k), one normal per value in patch
// order, and the greedy captioner reads the same z. With read_draws = K > 1 the image is read K
// times, draw d's eps from the seed ^ MM_EVAL_READ_TAG ^ d x MM_EVAL_DRAW_STEP (draw 0 the one
// above), and a caption's score is the mean of its K log-probabilities.
//
// Determinism: every figure depends on the shards, the model, the options and the seed, and
// is the same from run to run at the same thread count (OpenBLAS splits products by thread count).
#ifndef MM_EVAL_H
#define MM_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "doc.h"
#include "model.h"
#include "sample.h"
#include "tokenizer.h"

#define MM_EVAL_MAX_BUCKETS 1000
#define MM_BPD_MAX_CUTS 12
#define MM_EVAL_READ_TAG UINT64_C(0x7265616420696d67) // seed tag of the classified images' eps
#define MM_EVAL_DRAW_STEP UINT64_C(0x9e3779b97f4a7c15)  // seed step from one read draw to the next
#define MM_EVAL_MAX_DRAWS 64

typedef struct mm_eval_opts {
	int batch;           // rows of T positions per model call (32)
	uint64_t max_docs;   // documents read, at most (0: all)
	uint64_t seed;       // Monte Carlo draws of the bound, noise of generated images (1)
	int buckets;         // K noise levels of the image loss (10)
	int bpd_samples;     // (t, eps) draws per image (10)
	double bpd_t0;       // the noisiest level of the bound (1e-3)
	double bpd_t1;       // the cleanest level, where the 8-bit decoder reads the image (0.999)
	int bpd_auto;        // 1: report the lowest bound over the clean ends of mm_eval_bpd's curve
			     // (its t1 then in mm_eval_bpd.t1); 0: the bound at bpd_t1 (1)
	int bpd_uncond;      // 1: images alone, without the text before them (0)
	double read_t;       // noise level (0, 1] at which classified images are read, before the
			     // model's noise shift (0.9; 1: clean)
	int read_draws;      // classification: each image read this many times, each with its own
			     // eps, a caption's log-probabilities averaged (1, at most MM_EVAL_MAX_DRAWS)
	// Called from the calling thread after each model call (NULL: none); total 0 if unknown.
	void (*progress)(void *ctx, const char *stage, uint64_t done, uint64_t total);
	void *progress_ctx;
} mm_eval_opts;

void mm_eval_opts_default(mm_eval_opts *o);

typedef struct mm_eval mm_eval;

// Opens the shards for a model of configuration c with tokenizer tok (both from the
// checkpoint). Refuses, naming the shard, shards made with another tokenizer, token ids the
// model does not know, and image geometry other than the model's.
int mm_eval_open(mm_eval **e, const char *const *patterns, int n_patterns, const mm_config *c,
		 const mm_tokenizer *tok, const mm_eval_opts *o);
void mm_eval_close(mm_eval *e);
// Documents that the evaluation reads (max_docs applied).
uint64_t mm_eval_docs(const mm_eval *e);

typedef struct mm_eval_losses {
	uint64_t docs;
	uint64_t tokens;      // text positions scored
	uint64_t bytes;       // UTF-8 bytes of their tokens
	double nll;           // nats per token (NaN without tokens)
	double ppl;           // exp(nll)
	double bits_per_byte; // NaN without bytes
	uint64_t images;      // images scored at each level
	int buckets;
	double image_loss;    // mean over the levels (NaN without images)
	double t[MM_EVAL_MAX_BUCKETS], loss[MM_EVAL_MAX_BUCKETS];
} mm_eval_losses;

// m was built for at least o->batch rows (mm_model_new's max_batch).
int mm_eval_losses_run(mm_eval *e, mm_model *m, mm_eval_losses *out);

typedef struct mm_eval_bpd {
	uint64_t images;
	int samples;
	double t0, t1;        // the bound's ends (t1: the chosen clean end with bpd_auto)
	int dims;             // values per image, D
	// Bits per dimension: the bound and its terms (total = prior + diffusion + recon), each the
	// mean over images; se: the standard error of the mean over images of each image's estimate.
	double total, total_se;
	double diffusion, diffusion_se;
	double prior, recon;
	// The bound with an earlier clean end t1' (0.8, 0.85, 0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999,
	// 0.9995, 0.9999 where t0 < t1' < t1, then t1 itself), from the same draws: the diffusion
	// term keeps the draws with t <= t1'. Shows where the model stops denoising well.
	int ncuts;
	double cut_t1[MM_BPD_MAX_CUTS], cut_total[MM_BPD_MAX_CUTS], cut_se[MM_BPD_MAX_CUTS];
	double cut_recon[MM_BPD_MAX_CUTS];
} mm_eval_bpd;

int mm_eval_bpd_run(mm_eval *e, mm_model *m, mm_eval_bpd *out);

// The terms of the bound that need no model, per dimension in nats, for an image whose value
// is x in [-1, 1]: the prior term KL(N(t0 x, (1 - t0)^2) || N(0, 1)), and the expected -log
// probability of x's 8-bit bin under the decoder at t1 (edge: x = -1 or 1, whose bin reaches
// to infinity). For tests and for mm_eval_bpd_run.
double mm_bpd_prior(double x, double t0);
double mm_bpd_recon(int edge, double t1);
// One draw of the diffusion term: for u in [0, 1), the noise level t(u) of the importance
// sampling, and the weight w such that w * ||x - x_pred(z_t, t)||^2 estimates the term.
void mm_bpd_draw(double u, double t0, double t1, float *t, double *w);

typedef struct mm_eval_classes {
	int n;           // classes
	char **text;     // captions (NUL-terminated), as in the file
	uint32_t **tok;  // their tokens
	uint32_t *ntok;
	int max_tok;     // tokens of the longest
} mm_eval_classes;

// Reads a class file: one caption a line (a final newline optional, "\r\n" accepted), at
// least 2, no empty line, no duplicate, each short enough to follow an image in a row of T.
int mm_eval_classes_load(mm_eval_classes *c, const char *path, const mm_tokenizer *tok, const mm_config *cfg);
void mm_eval_classes_free(mm_eval_classes *c);

// Log-likelihood of every class caption after each of n images (pixels in patch order,
// NP * P bytes each; image k read at read_t with the eps of stream index0 + k, or the mean over
// read_draws reads): ll (n, c->n).
// The sequences of all candidates are packed into rows of one batch and scored by
// mm_model_forward.
int mm_eval_score(mm_eval *e, mm_model *m, const mm_eval_classes *c, const uint8_t *px, int n, uint64_t index0,
		  double *ll);

typedef struct mm_eval_cls {
	int n;                 // classes
	uint64_t images;       // labelled images scored
	uint64_t unmatched;    // caption pairs whose caption is not a class
	uint64_t correct;      // by likelihood
	uint64_t *confusion;   // (n, n): [true class][predicted], by likelihood
	int greedy;            // 1 when greedy captions were made (below)
	uint64_t correct_greedy;
	uint64_t *confusion_greedy; // (n, n + 1): [true][predicted]; column n: no class
} mm_eval_cls;

// Per labelled image: the likeliest class (and, with a captioner, its greedy caption compared
// with the true caption). caption: NULL, or a function that writes the greedy captions of n
// images (pixels as above) as class numbers (-1: no class) into pred; ctx is passed on. index0:
// the number of labelled images before these (the eps stream of the first, as above).
typedef int (*mm_eval_captioner)(void *ctx, const uint8_t *px, int n, uint64_t index0, int *pred);
int mm_eval_classify(mm_eval *e, mm_model *m, const mm_eval_classes *c, mm_eval_captioner caption, void *ctx,
		     mm_eval_cls *out);
void mm_eval_cls_free(mm_eval_cls *r);

// Text to image: images generated from each class caption, classified by mm_eval_score.
typedef struct mm_eval_t2i {
	int n;                // classes
	int per_class;        // images generated per class
	uint64_t *confusion;  // (n, n): [caption class][predicted]
	double mean;          // mean over classes of the per-class accuracy
} mm_eval_t2i;
void mm_eval_t2i_free(mm_eval_t2i *r);

// Generation from the model through the inference engine (lib/sample.h): a KV-cache sampler
// with 2 batch slots (guidance needs a second slot per image), for batch documents at a time.
typedef struct mm_eval_gen mm_eval_gen;
// Images to caption are read as e reads them (mm_eval_opts read_t and seed); e must outlive g.
int mm_eval_gen_new(mm_eval_gen **g, const mm_eval *e, mm_model *m, const mm_tokenizer *tok,
		    const mm_eval_classes *c, int batch);
void mm_eval_gen_free(mm_eval_gen *g);
// An mm_eval_captioner (ctx: an mm_eval_gen): the greedy continuation of BOS BOI image EOI,
// up to the longest class caption and its EOS, decoded and compared byte for byte with the
// class captions; the image is read at read_t with the eps mm_eval_score gives it.
int mm_eval_caption(void *ctx, const uint8_t *px, int n, uint64_t index0, int *pred);

typedef struct mm_eval_t2i_opts {
	int per_class;       // images generated per class caption
	mm_image_opts image; // the sampler, its steps and guidance (sample.h: start from mm_image_opts_default)
	uint64_t seed;       // image i of class j draws from stream j * per_class + i
} mm_eval_t2i_opts;
// Generates per_class images after each class caption (BOS caption BOI ...), classifies them
// with mm_eval_score (image i of class j: index0 j * per_class + i). images: NULL, or room for (classes, per_class, NP P) pixels, which
// receives the images in patch order.
int mm_eval_t2i_run(mm_eval *e, mm_model *m, mm_eval_gen *g, const mm_eval_t2i_opts *o, mm_eval_t2i *r,
		    uint8_t *images);

// Caption retrieval over an open list: each caption pair of e whose caption is one of c's is
// ranked against every caption of c by likelihood (the score of mm_eval_score: the caption's
// tokens and EOS after BOS BOI image EOI, the image read at read_t with the eps of stream k for
// the k-th ranked image). The image's prefix runs once through a KV cache (lib/sample.h) and
// the captions continue copies of it, slots at a time; and only the captions that can still
// outscore the own one are scored whole: a caption's log-probability only falls as tokens are
// added, so one whose first token alone scores below the own caption ranks below it. The ranks
// are exact; the cost is the prefix plus the captions scored whole (scored).
//
// With pmi, each image is also ranked by pointwise mutual information, the score above less the
// caption's log-probability alone (its tokens and BOI after BOS, as a caption-first document
// opens: log p(caption | image) - log p(caption), which ranks as p(image | caption) does); a
// caption is then also scored whole when its first token less its own log-probability reaches
// the own caption's PMI. The *_pmi fields hold that ranking (zero without pmi).
typedef struct mm_eval_ret {
	int n;               // captions in the list
	int pmi;             // the PMI ranking was made
	uint64_t images;     // images ranked
	uint64_t unmatched;  // caption pairs whose caption is not in the list (not ranked)
	uint64_t top1, top5; // images whose own caption ranks first / in the first five
	uint64_t scored;     // captions scored whole, over all images (the own ones included)
	double median_rank;  // 1 = first (0 without images)
	uint32_t *rank;      // (images): each image's rank, 1-based, in reading order
	uint64_t top1_pmi, top5_pmi;
	double median_rank_pmi;
	uint32_t *rank_pmi;  // (images), or NULL without pmi
	double *prior;       // (n): each caption's log-probability alone, or NULL without pmi
} mm_eval_ret;
int mm_eval_retrieve_captions(mm_eval *e, mm_model *m, const mm_eval_classes *c, int slots, int pmi,
			      mm_eval_ret *r);
void mm_eval_ret_free(mm_eval_ret *r);

// Text-to-image retrieval: per_class images generated from each caption of g's list (as
// mm_eval_t2i_run does), each compared with every image of ref (the images of its documents,
// caption pairs or not) by the squared L2 distance between thumbnails (mm_eval_thumb); a
// generated image counts at top k when a reference image whose caption is the generating one
// is among its k nearest.
#define MM_THUMB 16
typedef struct mm_eval_nn {
	int n, per_class;      // captions, images per caption
	uint64_t refs;         // reference images
	uint64_t generated;    // n * per_class
	uint64_t top1, top5;
	int without_ref;       // captions with no reference image of their own (never counted right)
	int32_t *nearest;      // (n, per_class): the nearest reference image (its index in ref)
	int32_t *own;          // (n): a reference image with that caption, -1 for none
	uint8_t *ref_px;       // (refs, NP P): the reference images, patch order
} mm_eval_nn;
int mm_eval_t2i_nearest(mm_eval *ref, mm_eval_gen *g, const mm_eval_t2i_opts *o, mm_eval_nn *r, uint8_t *images);
void mm_eval_nn_free(mm_eval_nn *r);
// The thumbnail of an image (px: h x w x ch in patches of p; raster: room for h w ch bytes): a
// MM_THUMB x MM_THUMB grid of cells, each the mean of its pixels per channel (grey repeated
// three times), in [0, 1]: out holds MM_THUMB^2 x 3 floats.
void mm_eval_thumb(const uint8_t *px, int h, int w, int ch, int p, uint8_t *raster, float *out);

// The class whose caption the bytes are (-1: none).
int mm_eval_class_of(const mm_eval_classes *c, const uint8_t *text, size_t n);

#endif
