// Shared by lib/eval.c, lib/bpd.c and lib/eval_gen.c: the evaluation state and the packer of
// short sequences into one batch. Not installed.
#ifndef MM_EVAL_STATE_PRIV_H
#define MM_EVAL_STATE_PRIV_H

#include "eval.h"
#include "loader.h"

struct mm_eval {
	mm_eval_opts o;
	char **pat;
	int npat;
	mm_config c;
	const mm_tokenizer *tok;
	mm_loader *ld;  // validation mode: the documents, and the batch geometry
	uint64_t ndocs; // max_docs applied
	int B, T, NP, P, V;
	mm_batch b;
	int32_t *lrow, *xrow; // (B T): index of a position in the last forward's logits / x_pred, or -1
	mm_doc doc;
	uint8_t *txt;   // decoded caption text
	size_t txt_cap;
};

// One short sequence: BOS pre BOI image EOI suf EOS, the image and EOS optional. The image has
// noise level t; its eps, one normal per value in patch order, comes from mm_rng (seed, stream)
// (t = 1: z = x, no eps).
typedef struct ev_seq {
	const uint32_t *pre;
	int npre;
	const uint8_t *px; // NP * P pixels in patch order, or NULL
	float t;
	uint64_t seed, stream;
	const uint32_t *suf;
	int nsuf;
	int eos;
	int at; // set by ev_pack: batch index of its BOS
} ev_seq;

int ev_len(const mm_eval *e, const ev_seq *s);
// Packs sequences from s into the rows of e->b, in order, until one does not fit; returns how
// many (at least 1 for n > 0), or MM_EINVAL for a sequence longer than a row. targets: 1 sets
// the training targets, 0 none.
int ev_pack(mm_eval *e, ev_seq *s, int n, int targets);
// mm_model_forward on e->b and the position maps lrow and xrow.
int ev_forward(mm_eval *e, mm_model *m);
// log softmax(logits)[target] at batch index i (which must have a target).
double ev_logprob(const mm_eval *e, const mm_model *m, int i);
// The class of c that a caption pair's caption is (-1: another caption), -2 for a document that
// is no caption pair (one text segment with tokens and one image); *img its image.
int ev_pair_label(mm_eval *e, const mm_eval_classes *c, const mm_doc *d, const mm_segment **img);
// The order in which a document is read: segment indices, caption first for a caption pair.
int ev_order(const mm_doc *d, uint32_t *order);
void ev_progress(const mm_eval *e, const char *stage, uint64_t done, uint64_t total);

// Generated images (lib/eval_gen.c): the options of mm_eval_t2i_run's generation, the captions
// of g, and per_class images of caption j into px (patch order), documents j * per_class + i.
struct mm_gen_opts;
void ev_t2i_gen_opts(const mm_eval_t2i_opts *to, struct mm_gen_opts *o);
const mm_eval_classes *ev_gen_classes(const mm_eval_gen *g);
int ev_generate(mm_eval_gen *g, int j, int per_class, const struct mm_gen_opts *o, uint8_t *px);

#endif
