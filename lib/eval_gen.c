// The evaluations that generate: greedy captions of labelled images, and images generated from
// each class caption and classified by caption likelihood (see eval.h). The engine is
// lib/sample.h's mm_generate.
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "eval_state_priv.h"
#include "sample.h"

struct mm_eval_gen {
	mm_sampler *s;
	const mm_eval_classes *c;
	const mm_tokenizer *tok;
	const mm_config *cfg;
	int n;              // documents per mm_generate call
	const mm_eval_opts *eo; // read_t and seed of the captioned images
	mm_doc *pre, *out;  // (n) each
	uint32_t *ids;      // a caption's tokens, gathered from its segments
	uint8_t *txt;
	size_t txt_cap;
};

int mm_eval_gen_new(mm_eval_gen **gp, const mm_eval *e, mm_model *m, const mm_tokenizer *tok,
		    const mm_eval_classes *c, int batch)
{
	*gp = NULL;
	mm_eval_gen *g = calloc(1, sizeof *g);
	if (!g)
		return mm_fail(MM_ENOMEM, "out of memory");
	g->c = c, g->tok = tok, g->cfg = mm_model_config(m), g->n = batch;
	g->eo = &e->o; // checked by mm_eval_open
	int rc = batch < 1 ? mm_fail(MM_EINVAL, "eval: batch %d", batch) : mm_sampler_new(&g->s, m, 2 * batch);
	g->pre = calloc((size_t)batch, sizeof *g->pre);
	g->out = calloc((size_t)batch, sizeof *g->out);
	g->ids = malloc((size_t)g->cfg->seq_len * sizeof *g->ids);
	if (!rc && (!g->pre || !g->out || !g->ids))
		rc = mm_fail(MM_ENOMEM, "out of memory");
	for (int i = 0; !rc && i < batch; i++)
		mm_doc_init(&g->pre[i]), mm_doc_init(&g->out[i]);
	if (rc) {
		free(g->pre), free(g->out), g->pre = g->out = NULL;
		mm_eval_gen_free(g);
		return rc;
	}
	*gp = g;
	return 0;
}

void mm_eval_gen_free(mm_eval_gen *g)
{
	if (!g)
		return;
	for (int i = 0; g->pre && i < g->n; i++)
		mm_doc_free(&g->pre[i]), mm_doc_free(&g->out[i]);
	free(g->pre);
	free(g->out);
	free(g->ids);
	free(g->txt);
	mm_sampler_free(g->s);
	free(g);
}

// The class of a generated continuation: its text (all text segments), no image; -1 otherwise.
static int class_of_doc(mm_eval_gen *g, const mm_doc *d)
{
	uint32_t n = 0;
	for (uint32_t k = 0; k < d->n_segs; k++) {
		const mm_segment *s = &d->segs[k];
		if (s->type != MM_SEG_TEXT || s->n_tokens > (uint32_t)g->cfg->seq_len - n)
			return -1;
		memcpy(g->ids + n, s->tokens, s->n_tokens * sizeof *g->ids);
		n += s->n_tokens;
	}
	size_t len;
	if (mm_tok_decode(g->tok, g->ids, n, &g->txt, &g->txt_cap, &len))
		return -1;
	return mm_eval_class_of(g->c, g->txt, len);
}

int mm_eval_caption(void *ctx, const uint8_t *px, int n, uint64_t index0, int *pred)
{
	mm_eval_gen *g = ctx;
	const mm_config *c = g->cfg;
	mm_gen_opts o;
	mm_gen_opts_default(&o);
	o.text.temperature = 0;
	o.images = 0;
	o.image.cfg = 1;
	o.max_tokens = g->c->max_tok + 1; // a class caption and its EOS
	o.read_t = (float)g->eo->read_t;
	o.seed = g->eo->seed ^ MM_EVAL_READ_TAG; // the prefix's eps come first: mm_eval_score's
	size_t np = (size_t)MM_NPATCH(c) * MM_PDIM(c);
	int rc = 0;
	for (int i0 = 0; i0 < n && !rc; i0 += g->n) {
		int k = n - i0 < g->n ? n - i0 : g->n;
		for (int i = 0; i < k && !rc; i++) {
			mm_doc_clear(&g->pre[i]);
			rc = mm_doc_add_image(&g->pre[i], (uint32_t)c->img_h, (uint32_t)c->img_w, (uint32_t)c->img_c,
					      (uint32_t)c->patch, px + (size_t)(i0 + i) * np);
		}
		if (!rc)
			rc = mm_generate(g->s, g->pre, k, index0 + (uint64_t)i0, &o, g->out);
		for (int i = 0; i < k && !rc; i++)
			pred[i0 + i] = class_of_doc(g, &g->out[i]);
	}
	return rc;
}

int ev_generate(mm_eval_gen *g, int j, int per_class, const mm_gen_opts *o, uint8_t *px)
{
	size_t np = (size_t)MM_NPATCH(g->cfg) * MM_PDIM(g->cfg);
	int rc = 0;
	for (int i0 = 0; i0 < per_class && !rc; i0 += g->n) {
		int k = per_class - i0 < g->n ? per_class - i0 : g->n;
		for (int i = 0; i < k && !rc; i++) {
			mm_doc_clear(&g->pre[i]);
			rc = mm_doc_add_text(&g->pre[i], g->c->tok[j], g->c->ntok[j]);
		}
		if (!rc)
			rc = mm_generate(g->s, g->pre, k, (uint64_t)j * (uint64_t)per_class + (uint64_t)i0, o, g->out);
		for (int i = 0; i < k && !rc; i++) {
			const mm_doc *d = &g->out[i];
			if (d->n_segs != 1 || d->segs[0].type != MM_SEG_IMAGE)
				return mm_fail(MM_EINVAL, "eval: caption %d: the generated document is not one image", j);
			memcpy(px + (size_t)(i0 + i) * np, d->segs[0].pixels, np);
		}
	}
	return rc;
}

const mm_eval_classes *ev_gen_classes(const mm_eval_gen *g) { return g->c; }

void ev_t2i_gen_opts(const mm_eval_t2i_opts *to, mm_gen_opts *o)
{
	mm_gen_opts_default(o);
	o->image_first = 1;
	o->max_tokens = 0; // the image, nothing after it
	o->seed = to->seed;
	o->image = to->image;
}

int mm_eval_t2i_run(mm_eval *e, mm_model *m, mm_eval_gen *g, const mm_eval_t2i_opts *to, mm_eval_t2i *r,
		    uint8_t *images)
{
	const mm_eval_classes *c = g->c;
	memset(r, 0, sizeof *r);
	if (!e->P)
		return mm_fail(MM_EINVAL, "eval: the model reads no images");
	if (to->per_class < 1)
		return mm_fail(MM_EINVAL, "eval: %d images per class", to->per_class);
	mm_gen_opts o;
	ev_t2i_gen_opts(to, &o);
	size_t np = (size_t)e->NP * e->P, N = (size_t)to->per_class;
	r->n = c->n, r->per_class = to->per_class;
	r->confusion = calloc((size_t)c->n * c->n, sizeof *r->confusion);
	uint8_t *own = images ? NULL : malloc(N * np);
	double *ll = malloc(N * c->n * sizeof *ll);
	int rc = 0;
	if (!r->confusion || (!images && !own) || !ll)
		rc = mm_fail(MM_ENOMEM, "out of memory");
	for (int j = 0; j < c->n && !rc; j++) {
		uint8_t *px = images ? images + (size_t)j * N * np : own;
		if ((rc = ev_generate(g, j, to->per_class, &o, px)) || (rc = mm_eval_score(e, m, c, px, (int)N, (uint64_t)j * N, ll)))
			break;
		for (size_t i = 0; i < N; i++) {
			const double *li = ll + i * c->n;
			int best = 0;
			for (int k = 1; k < c->n; k++)
				best = li[k] > li[best] ? k : best;
			r->confusion[(size_t)j * c->n + best]++;
		}
		r->mean += (double)r->confusion[(size_t)j * c->n + j] / (double)N / c->n;
		ev_progress(e, "text to image", (uint64_t)(j + 1) * N, (uint64_t)c->n * N);
	}
	free(own);
	free(ll);
	if (rc)
		mm_eval_t2i_free(r);
	return rc;
}
