// Whole documents from the sampler: token choice (greedy, temperature, top-k, top-p) and the
// loop that continues a batch of documents, text and images interleaved (see sample.h).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "model.h"
#include "sample.h"
#include "tokenizer.h"

// Sorts ids by logit, largest first, equal logits by id (a stable merge sort over ids given in
// increasing order). tmp holds n ints.
static void sort_by_logit(int *id, int *tmp, int n, const float *l)
{
	for (int w = 1; w < n; w *= 2) {
		for (int lo = 0; lo < n; lo += 2 * w) {
			int mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
			int i = lo, j = mid, k = lo;
			while (i < mid && j < hi)
				tmp[k++] = l[id[j]] > l[id[i]] ? id[j++] : id[i++];
			while (i < mid)
				tmp[k++] = id[i++];
			while (j < hi)
				tmp[k++] = id[j++];
		}
		memcpy(id, tmp, (size_t)n * sizeof *id);
	}
}

int mm_sample_token(const float *l, int V, const mm_text_opts *o, const uint8_t *ban, mm_rng *r, int *work)
{
	int n = 0, *id = work;
	for (int i = 0; i < V; i++)
		if (!ban || !ban[i])
			id[n++] = i;
	if (!n)
		return -1;
	if (!(o->temperature > 0)) {
		int best = id[0];
		for (int i = 1; i < n; i++)
			best = l[id[i]] > l[best] ? id[i] : best;
		return best;
	}
	sort_by_logit(id, work + V, n, l);
	if (o->top_k > 0 && o->top_k < n)
		n = o->top_k;
	// Weights relative to the largest, in double; the nucleus is the shortest prefix of the
	// sorted candidates whose weight reaches top_p of the total.
	double inv = 1.0 / o->temperature, mx = l[id[0]], total = 0, keep = 0;
	for (int i = 0; i < n; i++)
		total += exp((l[id[i]] - mx) * inv);
	int m = 0;
	double want = o->top_p < 1 ? o->top_p * total : total;
	while (m < n && (m == 0 || keep < want))
		keep += exp((l[id[m++]] - mx) * inv);
	double u = mm_rng_uniform(r) * keep;
	for (int i = 0; i < m; i++) {
		u -= exp((l[id[i]] - mx) * inv);
		if (u < 0)
			return id[i];
	}
	return id[m - 1]; // u landed on the rounding left over
}

void mm_gen_opts_default(mm_gen_opts *o)
{
	memset(o, 0, sizeof *o);
	o->text = (mm_text_opts){0, 0, 1};
	mm_image_opts_default(&o->image);
	o->max_tokens = 256;
	o->images = 1;
	o->read_t = 1;
	o->seed = 1;
}

enum { ST_TEXT, ST_IMAGE, ST_DONE };

// The state of one mm_generate call.
typedef struct gen {
	mm_sampler *s;
	const mm_gen_opts *o;
	const mm_config *c;
	int n, T, V, NP, P;
	mm_doc *out;
	int *state, *ntok, *nrun, *list, *uncond, *ones, *work; // (n) each but work (2 V)
	int32_t *next;     // (n): the token each document appends next
	const int32_t **tp; // (n): pointers to them
	int32_t *ptok;     // (T): a run of prefix tokens
	uint32_t *run;     // (n, T): text generated since the document's last image
	mm_rng *rng;       // (n)
	float *logits;     // (n, V): each document's logits for its next token
	uint8_t *ban;      // (V)
	float *z;          // (n, NP, P)
	uint8_t *px;       // (n, NP, P)
} gen;

static int flush_text(gen *g, int i)
{
	int rc = g->nrun[i] ? mm_doc_add_text(&g->out[i], g->run + (size_t)i * g->T, (uint32_t)g->nrun[i]) : 0;
	g->nrun[i] = 0;
	return rc;
}

static void keep_logits(gen *g, int k, const int *docs)
{
	for (int j = 0; j < k; j++)
		memcpy(g->logits + (size_t)docs[j] * g->V, mm_sampler_logits(g->s, j), (size_t)g->V * sizeof(float));
}

// Positions the prefix takes: BOS, its text, each image with BOI and EOI (and the image that
// image_first adds after it).
static int64_t prefix_len(const gen *g, const mm_doc *d)
{
	int64_t n = 1 + (g->o->image_first ? g->NP + 2 : 0);
	for (uint32_t k = 0; k < d->n_segs; k++)
		n += d->segs[k].type == MM_SEG_TEXT ? (int64_t)d->segs[k].n_tokens : g->NP + 2;
	return n;
}

// Appends document i's prefix to its slot: runs of tokens (BOS, text, BOI) and images, read
// at noise level o->read_t (clean at 1).
static int prefill_one(gen *g, int i, const mm_doc *d)
{
	int slot = i, rc = 0, n = 0;
	int32_t *tok = g->ptok;
	const int32_t *tp = tok;
	tok[n++] = MM_TOK_BOS;
	for (uint32_t k = 0; k < d->n_segs && !rc; k++) {
		const mm_segment *sg = &d->segs[k];
		if (sg->type == MM_SEG_TEXT) {
			for (uint32_t j = 0; j < sg->n_tokens; j++)
				tok[n++] = (int32_t)sg->tokens[j];
			continue;
		}
		if (sg->h != (uint32_t)g->c->img_h || sg->w != (uint32_t)g->c->img_w ||
		    sg->c != (uint32_t)g->c->img_c || sg->p != (uint32_t)g->c->patch)
			return mm_fail(MM_EMISMATCH, "prompt %d: image %ux%ux%u in patches of %u; the model takes "
						     "%dx%dx%d in patches of %d", i, sg->w, sg->h, sg->c, sg->p,
				       g->c->img_w, g->c->img_h, g->c->img_c, g->c->patch);
		tok[n++] = MM_TOK_BOI;
		if (!(rc = mm_sampler_append_tokens(g->s, 1, &slot, &tp, &n))) {
			size_t np = (size_t)g->NP * g->P;
			float t = mm_read_level(g->c, g->o->read_t);
			mm_pixels_to_float(sg->pixels, np, g->z);
			// the prompt image read noised, as training shows images before text
			mm_batch_noise_image(g->z, g->z, np, t, &g->rng[i]);
			rc = mm_sampler_append_image(g->s, 1, &slot, g->z, t, 1);
		}
		n = 0;
	}
	if (g->o->image_first)
		tok[n++] = MM_TOK_BOI;
	if (!rc && n)
		rc = mm_sampler_append_tokens(g->s, 1, &slot, &tp, &n);
	if (!rc)
		keep_logits(g, 1, &i);
	return rc;
}

static int prefill(gen *g, const mm_doc *prefix)
{
	int rc = 0, n = g->n;
	for (int i = 0; i < n && !rc; i++) {
		int64_t len = prefix_len(g, &prefix[i]);
		if (len > g->T)
			return mm_fail(MM_ERANGE, "prompt %d: %lld positions%s do not fit the model's context of %d", i,
				       (long long)len, g->o->image_first ? " with its image" : "", g->T);
		mm_sampler_clear(g->s, i);
		rc = prefill_one(g, i, &prefix[i]);
		g->state[i] = g->o->image_first ? ST_IMAGE : ST_TEXT;
	}
	if (rc || g->o->image.cfg == 1 || !g->NP || !(g->o->images || g->o->image_first))
		return rc;
	// The unconditional documents of guidance: BOS BOI, what a dropped caption leaves.
	int32_t un[2] = {MM_TOK_BOS, MM_TOK_BOI}, two = 2;
	const int32_t *up = un;
	for (int i = 0; i < n && !rc; i++) {
		int slot = n + i;
		mm_sampler_clear(g->s, slot);
		rc = mm_sampler_append_tokens(g->s, 1, &slot, &up, &two);
	}
	return rc;
}

// Generates the images of the documents waiting for one, then appends each as a clean image
// followed by EOI, so the text after it reads it as training documents do.
static int images(gen *g, int k)
{
	size_t np = (size_t)g->NP * g->P;
	int *un = g->uncond;
	for (int j = 0; j < k; j++) {
		int i = g->list[j];
		for (size_t v = 0; v < np; v++)
			g->z[j * np + v] = (float)mm_rng_normal(&g->rng[i]);
		un[j] = g->n + i;
	}
	int rc = mm_sampler_image(g->s, k, g->list, un, &g->o->image, g->z);
	for (int j = 0; j < k && !rc; j++) {
		int i = g->list[j];
		mm_pixels_from_float(g->z + j * np, np, g->px + j * np);
		mm_pixels_to_float(g->px + j * np, np, g->z + j * np);
		if (!(rc = flush_text(g, i)))
			rc = mm_doc_add_image(&g->out[i], (uint32_t)g->c->img_h, (uint32_t)g->c->img_w,
					      (uint32_t)g->c->img_c, (uint32_t)g->c->patch, g->px + j * np);
	}
	// Documents that go on read their image back; the others are done (this saves a model call
	// per image when nothing follows it).
	int m = 0;
	for (int j = 0; j < k; j++) {
		int i = g->list[j], more = g->ntok[i] < g->o->max_tokens;
		g->state[i] = more ? ST_TEXT : ST_DONE;
		if (more) {
			memmove(g->z + m * np, g->z + j * np, np * sizeof *g->z);
			g->list[m++] = i;
		}
	}
	if (!rc && m)
		rc = mm_sampler_append_image(g->s, m, g->list, g->z, 1, 1);
	if (!rc && m)
		keep_logits(g, m, g->list);
	return rc;
}

// Chooses the next token of every document in text, and appends them in one batch. Returns the
// number of documents that went on, or a negative code.
static int text_step(gen *g)
{
	const mm_gen_opts *o = g->o;
	int k = 0, rc = 0;
	for (int i = 0; i < g->n; i++) {
		int len = mm_sampler_len(g->s, i);
		if (g->state[i] != ST_TEXT)
			continue;
		if (g->ntok[i] >= o->max_tokens || len >= g->T) {
			g->state[i] = ST_DONE;
			continue;
		}
		g->ban[MM_TOK_BOI] = !o->images || !g->NP || len + g->NP + 2 > g->T;
		int t = mm_sample_token(g->logits + (size_t)i * g->V, g->V, &o->text, g->ban, &g->rng[i], g->work);
		g->ntok[i]++;
		if (t < 0 || t == MM_TOK_EOS) {
			g->state[i] = ST_DONE;
			continue;
		}
		if (t == MM_TOK_BOI)
			g->state[i] = ST_IMAGE;
		else
			g->run[(size_t)i * g->T + g->nrun[i]++] = (uint32_t)t;
		g->next[k] = t;
		g->list[k++] = i;
	}
	if (!k)
		return 0;
	for (int j = 0; j < k; j++)
		g->tp[j] = &g->next[j], g->ones[j] = 1;
	rc = mm_sampler_append_tokens(g->s, k, g->list, g->tp, g->ones);
	if (!rc)
		keep_logits(g, k, g->list);
	return rc ? rc : k;
}

static void gen_free(gen *g)
{
	free(g->state);
	free(g->tp);
	free(g->ptok);
	free(g->next);
	free(g->run);
	free(g->rng);
	free(g->logits);
	free(g->ban);
	free(g->z);
	free(g->px);
	free(g->work);
}

static int gen_alloc(gen *g)
{
	size_t n = (size_t)g->n, np = (size_t)g->NP * g->P;
	g->state = calloc(6 * n, sizeof(int));
	g->tp = calloc(n, sizeof *g->tp);
	g->ptok = calloc((size_t)g->T, sizeof *g->ptok);
	g->next = calloc(n, sizeof *g->next);
	g->run = calloc(n * g->T, sizeof *g->run);
	g->rng = calloc(n, sizeof *g->rng);
	g->logits = calloc(n * g->V, sizeof *g->logits);
	g->ban = calloc((size_t)g->V, 1);
	g->z = calloc(n * np + 1, sizeof *g->z);
	g->px = calloc(n * np + 1, 1);
	g->work = calloc(2 * (size_t)g->V, sizeof *g->work);
	if (!g->state || !g->tp || !g->ptok || !g->next || !g->run || !g->rng || !g->logits || !g->ban || !g->z ||
	    !g->px || !g->work)
		return mm_fail(MM_ENOMEM, "generate: out of memory");
	g->ntok = g->state + n, g->nrun = g->state + 2 * n, g->list = g->state + 3 * n;
	g->uncond = g->state + 4 * n, g->ones = g->state + 5 * n;
	for (int t = MM_TOK_PAD; t <= MM_TOK_EOI && t < g->V; t++)
		g->ban[t] = t != MM_TOK_EOS && t != MM_TOK_BOI; // PAD, BOS and EOI are never sampled
	return 0;
}

int mm_generate(mm_sampler *s, const mm_doc *prefix, int n, uint64_t index0, const mm_gen_opts *o, mm_doc *out)
{
	const mm_config *c = mm_model_config(mm_sampler_model(s));
	gen g = {.s = s, .o = o, .c = c, .n = n, .T = c->seq_len, .V = c->vocab, .NP = MM_NPATCH(c),
		 .P = MM_PDIM(c), .out = out};
	int guided = o->image.cfg != 1;
	if (n < 1 || n * (guided ? 2 : 1) > mm_sampler_slots(s))
		return mm_fail(MM_EINVAL, "generate: %d documents%s need %d slots; the sampler has %d", n,
			       guided ? " with guidance" : "", n * (guided ? 2 : 1), mm_sampler_slots(s));
	if (o->image_first && !g.NP)
		return mm_fail(MM_EINVAL, "generate: the model has no image geometry");
	if (c->vocab <= MM_TOK_EOI)
		return mm_fail(MM_EINVAL, "generate: vocabulary of %d has no special tokens", c->vocab);
	if (o->max_tokens < 0 || !(o->text.top_p > 0 && o->text.top_p <= 1) || o->text.top_k < 0 ||
	    !(o->text.temperature >= 0) || !(o->read_t > 0 && o->read_t <= 1))
		return mm_fail(MM_EINVAL, "generate: bad text options");
	int rc = gen_alloc(&g);
	for (int i = 0; i < n && !rc; i++) {
		mm_doc_clear(&out[i]);
		mm_rng_seed(&g.rng[i], o->seed, index0 + (uint64_t)i);
	}
	if (!rc)
		rc = prefill(&g, prefix);
	while (!rc) {
		int k = 0;
		for (int i = 0; i < n; i++)
			if (g.state[i] == ST_IMAGE)
				g.list[k++] = i;
		if (k) {
			rc = images(&g, k);
			continue;
		}
		rc = text_step(&g);
		if (rc <= 0)
			break;
		rc = 0;
	}
	for (int i = 0; i < n && !rc; i++)
		rc = flush_text(&g, i);
	gen_free(&g);
	return rc;
}
