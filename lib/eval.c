// Evaluation: the documents, the packer of short sequences, the losses, and classification by
// caption likelihood (see eval.h).
#include "eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "eval_state_priv.h"
#include "fileio.h"
#include "rng.h"

void mm_eval_opts_default(mm_eval_opts *o)
{
	memset(o, 0, sizeof *o);
	o->batch = 32;
	o->seed = 1;
	o->buckets = 10;
	o->bpd_samples = 10;
	o->bpd_t0 = 1e-3;
	o->bpd_t1 = 0.999;
	o->bpd_auto = 1;
	o->read_t = 0.9;
	o->read_draws = 1;
}

static int check_opts(const mm_eval_opts *o)
{
	if (o->batch < 1 || o->batch > 65536)
		return mm_fail(MM_EINVAL, "eval: batch %d not in [1, 65536]", o->batch);
	if (o->buckets < 1 || o->buckets > MM_EVAL_MAX_BUCKETS)
		return mm_fail(MM_EINVAL, "eval: %d noise levels, not in [1, %d]", o->buckets, MM_EVAL_MAX_BUCKETS);
	if (o->bpd_samples < 1 || o->bpd_samples > 1000000)
		return mm_fail(MM_EINVAL, "eval: %d draws per image, not in [1, 1000000]", o->bpd_samples);
	// 1 - t1 must stay well above float's spacing near 1 (6e-8): the model reads t as a float.
	if (!(o->bpd_t0 >= 0 && o->bpd_t0 < 0.5) || !(o->bpd_t1 > 0.5 && o->bpd_t1 <= 1 - 1e-5))
		return mm_fail(MM_EINVAL, "eval: bound from t0 = %g to t1 = %g: need 0 <= t0 < 0.5 < t1 <= 1 - 1e-5",
			       o->bpd_t0, o->bpd_t1);
	if (!(o->read_t > 0 && o->read_t <= 1))
		return mm_fail(MM_EINVAL, "eval: images read at noise level %g, not in (0, 1]", o->read_t);
	if (o->read_draws < 1 || o->read_draws > MM_EVAL_MAX_DRAWS)
		return mm_fail(MM_EINVAL, "eval: images read %d times, not in [1, %d]", o->read_draws, MM_EVAL_MAX_DRAWS);
	return 0;
}

// The shards must speak the checkpoint's language: its tokenizer, its vocabulary, its images.
static int check_compat(const mm_eval *e)
{
	const mm_shard_info *in = mm_loader_info(e->ld);
	const char *path = mm_loader_shard_path(e->ld, 0);
	const mm_config *c = &e->c;
	if (in->tokenizer_hash != mm_tok_hash(e->tok))
		return mm_fail(MM_EMISMATCH, "%s: made with another tokenizer (hash %016llx) than the "
					     "checkpoint's (%016llx)", path, (unsigned long long)in->tokenizer_hash,
			       (unsigned long long)mm_tok_hash(e->tok));
	if (in->vocab_size > (uint32_t)c->vocab)
		return mm_fail(MM_EMISMATCH, "%s: vocabulary of %u tokens, the model knows %d", path, in->vocab_size,
			       c->vocab);
	if (in->patch && (in->img_h != (uint32_t)c->img_h || in->img_w != (uint32_t)c->img_w ||
			  in->img_c != (uint32_t)c->img_c || in->patch != (uint32_t)c->patch))
		return mm_fail(MM_EMISMATCH, "%s: images %ux%ux%u in patches of %u; the model takes %dx%dx%d in "
					     "patches of %d", path, in->img_w, in->img_h, in->img_c, in->patch, c->img_w,
			       c->img_h, c->img_c, c->patch);
	return 0;
}

static int open_loader(const mm_eval *e, double t, mm_loader **l)
{
	mm_loader_opts lo;
	mm_loader_opts_init(&lo);
	lo.batch = e->B;
	lo.seq_len = e->T;
	lo.validation = 1;
	lo.val_t = t;
	lo.max_docs = e->o.max_docs;
	return mm_loader_open(l, (const char *const *)e->pat, e->npat, &lo);
}

int mm_eval_open(mm_eval **ep, const char *const *patterns, int n_patterns, const mm_config *c,
		 const mm_tokenizer *tok, const mm_eval_opts *o)
{
	*ep = NULL;
	int rc = check_opts(o);
	if (rc)
		return rc;
	if (n_patterns < 1)
		return mm_fail(MM_EINVAL, "eval: no shard pattern given");
	mm_eval *e = calloc(1, sizeof *e);
	if (!e)
		return mm_fail(MM_ENOMEM, "out of memory");
	e->o = *o;
	e->c = *c;
	e->tok = tok;
	e->B = o->batch, e->T = c->seq_len, e->NP = MM_NPATCH(c), e->P = MM_PDIM(c), e->V = c->vocab;
	mm_doc_init(&e->doc);
	e->pat = calloc((size_t)n_patterns, sizeof *e->pat);
	for (int i = 0; e->pat && i < n_patterns; i++)
		if ((e->pat[i] = strdup(patterns[i])))
			e->npat++;
	if (e->npat < n_patterns)
		rc = mm_fail(MM_ENOMEM, "out of memory");
	if (!rc)
		rc = open_loader(e, -1, &e->ld);
	if (!rc)
		rc = check_compat(e);
	// The model's patch size, not the shards': text-only shards may meet a model that reads
	// images, and the scoring of images still needs z and x.
	if (!rc)
		rc = mm_batch_alloc(&e->b, e->B, e->T, e->P);
	size_t bt = (size_t)e->B * e->T;
	if (!rc && (!(e->lrow = malloc(bt * sizeof *e->lrow)) || !(e->xrow = malloc(bt * sizeof *e->xrow))))
		rc = mm_fail(MM_ENOMEM, "out of memory");
	if (rc) {
		mm_eval_close(e);
		return rc;
	}
	uint64_t n = mm_loader_info(e->ld)->n_docs;
	e->ndocs = o->max_docs && o->max_docs < n ? o->max_docs : n;
	*ep = e;
	return 0;
}

void mm_eval_close(mm_eval *e)
{
	if (!e)
		return;
	for (int i = 0; i < e->npat; i++)
		free(e->pat[i]);
	free(e->pat);
	mm_batch_free(&e->b);
	mm_loader_close(e->ld);
	free(e->lrow);
	free(e->xrow);
	mm_doc_free(&e->doc);
	free(e->txt);
	free(e);
}

uint64_t mm_eval_docs(const mm_eval *e) { return e->ndocs; }

void ev_progress(const mm_eval *e, const char *stage, uint64_t done, uint64_t total)
{
	if (e->o.progress)
		e->o.progress(e->o.progress_ctx, stage, done, total);
}

// ---- Packing short sequences ----

int ev_len(const mm_eval *e, const ev_seq *s)
{
	return 1 + s->npre + (s->px ? e->NP + 2 : 0) + s->nsuf + (s->eos ? 1 : 0);
}

// Writes s at batch index i as document doc with image number img of its row.
static void put_seq(mm_eval *e, const ev_seq *s, int i, int32_t doc, int32_t img)
{
	mm_batch *b = &e->b;
	int q = 0;
	mm_batch_put_text(b, i + q, MM_TOK_BOS, doc, q), q++;
	for (int k = 0; k < s->npre; k++, q++)
		mm_batch_put_text(b, i + q, (int32_t)s->pre[k], doc, q);
	if (s->px) {
		mm_batch_put_text(b, i + q, MM_TOK_BOI, doc, q), q++;
		mm_rng r;
		mm_rng_seed(&r, s->seed, s->stream);
		mm_batch_put_image(b, i + q, e->NP, e->P, s->px, s->t, doc, q, img, &r);
		q += e->NP;
		mm_batch_put_text(b, i + q, MM_TOK_EOI, doc, q), q++;
	}
	for (int k = 0; k < s->nsuf; k++, q++)
		mm_batch_put_text(b, i + q, (int32_t)s->suf[k], doc, q);
	if (s->eos)
		mm_batch_put_text(b, i + q, MM_TOK_EOS, doc, q);
}

int ev_pack(mm_eval *e, ev_seq *s, int n, int targets)
{
	mm_batch_clear(&e->b, e->P);
	int row = 0, col = 0, k = 0;
	int32_t doc = 0, img = 0;
	for (; k < n; k++) {
		int len = ev_len(e, &s[k]);
		if (len > e->T)
			return mm_fail(MM_EINVAL, "eval: a sequence of %d positions in rows of %d", len, e->T);
		if (col + len > e->T) {
			row++, col = 0, doc = img = 0;
			if (row == e->B)
				break;
		}
		s[k].at = row * e->T + col;
		put_seq(e, &s[k], s[k].at, doc++, s[k].px ? img++ : img);
		col += len;
	}
	if (targets)
		mm_batch_set_targets(&e->b);
	return k;
}

int ev_forward(mm_eval *e, mm_model *m)
{
	int rc = mm_model_forward(m, &e->b, NULL);
	if (rc)
		return rc;
	size_t bt = (size_t)e->B * e->T;
	for (size_t i = 0; i < bt; i++)
		e->lrow[i] = e->xrow[i] = -1;
	int n;
	const int32_t *rows;
	mm_model_logits(m, &n, &rows);
	for (int i = 0; i < n; i++)
		e->lrow[rows[i]] = i;
	mm_model_x_pred(m, &n, &rows);
	for (int i = 0; i < n; i++)
		e->xrow[rows[i]] = i;
	return 0;
}

double ev_logprob(const mm_eval *e, const mm_model *m, int i)
{
	int n;
	const float *l = mm_model_logits(m, &n, NULL) + (size_t)e->lrow[i] * e->V;
	double mx = l[0], sum = 0;
	for (int v = 1; v < e->V; v++)
		mx = l[v] > mx ? l[v] : mx;
	for (int v = 0; v < e->V; v++)
		sum += exp(l[v] - mx);
	return l[e->b.target[i]] - mx - log(sum);
}

int ev_order(const mm_doc *d, uint32_t *order)
{
	int ti = -1, ii = -1;
	for (uint32_t i = 0; i < d->n_segs; i++) {
		order[i] = i;
		if (d->segs[i].type == MM_SEG_IMAGE)
			ii = (int)i;
		else
			ti = (int)i;
	}
	if (d->n_segs == 2 && ti >= 0 && ii >= 0 && d->segs[ti].n_tokens > 0)
		order[0] = (uint32_t)ti, order[1] = (uint32_t)ii;
	return (int)d->n_segs;
}

// ---- Losses ----

typedef struct loss_acc {
	double nll, sse, vals;
	uint64_t tokens, bytes, patches;
} loss_acc;

static void add_text(const mm_eval *e, const mm_model *m, loss_acc *a)
{
	int n;
	const int32_t *rows;
	mm_model_logits(m, &n, &rows);
	for (int i = 0; i < n; i++) {
		a->nll -= ev_logprob(e, m, rows[i]);
		size_t len;
		mm_tok_piece(e->tok, (uint32_t)e->b.target[rows[i]], &len);
		a->bytes += len;
	}
	a->tokens += (uint64_t)n;
}

static void add_image(const mm_eval *e, const mm_model *m, loss_acc *a)
{
	int n, P = e->P;
	const int32_t *rows;
	const float *xp = mm_model_x_pred(m, &n, &rows);
	for (int i = 0; i < n; i++) {
		double t = e->b.t[rows[i]], s = 1 - t > MM_T_FLOOR ? 1 - t : MM_T_FLOOR;
		const float *x = e->b.x + (size_t)rows[i] * P;
		for (int v = 0; v < P; v++) {
			double d = ((double)xp[(size_t)i * P + v] - x[v]) / s;
			a->sse += d * d;
		}
	}
	a->vals += (double)n * P;
	a->patches += (uint64_t)n;
}

// One pass over the documents with every image at noise level t (1: the text pass).
static int loss_pass(mm_eval *e, mm_model *m, double t, const char *stage, loss_acc *a)
{
	mm_loader *l;
	int rc = open_loader(e, t, &l);
	while (!rc && (rc = mm_loader_next(l, &e->b)) > 0) {
		rc = 0;
		if (t < 1) // the image passes need no logits
			for (int i = 0; i < e->B * e->T; i++)
				e->b.target[i] = -1;
		if ((rc = ev_forward(e, m)))
			break;
		if (t == 1)
			add_text(e, m, a);
		else
			add_image(e, m, a);
		mm_loader_state st;
		mm_loader_get_state(l, &st);
		ev_progress(e, stage, st.cursor, e->ndocs);
	}
	mm_loader_close(l);
	return rc;
}

int mm_eval_losses_run(mm_eval *e, mm_model *m, mm_eval_losses *out)
{
	memset(out, 0, sizeof *out);
	out->docs = e->ndocs;
	loss_acc a = {0};
	int rc = loss_pass(e, m, 1, "text", &a);
	if (rc)
		return rc;
	out->tokens = a.tokens;
	out->bytes = a.bytes;
	out->nll = a.tokens ? a.nll / (double)a.tokens : NAN;
	out->ppl = exp(out->nll);
	out->bits_per_byte = a.bytes ? a.nll / log(2) / (double)a.bytes : NAN;
	out->image_loss = NAN;
	if (!e->P)
		return 0;
	int K = e->o.buckets;
	double sum = 0;
	for (int k = 0; k < K; k++) {
		char stage[48];
		out->t[k] = (k + 0.5) / K;
		snprintf(stage, sizeof stage, "image t=%.3f", out->t[k]);
		loss_acc b = {0};
		if ((rc = loss_pass(e, m, out->t[k], stage, &b)))
			return rc;
		out->loss[k] = b.vals ? b.sse / b.vals : NAN;
		out->images = b.patches / (uint64_t)e->NP;
		sum += out->loss[k];
	}
	out->buckets = K;
	if (out->images)
		out->image_loss = sum / K;
	return 0;
}

// ---- Classes ----

void mm_eval_classes_free(mm_eval_classes *c)
{
	for (int i = 0; i < c->n; i++) {
		free(c->text[i]);
		free(c->tok[i]);
	}
	free(c->text);
	free(c->tok);
	free(c->ntok);
	memset(c, 0, sizeof *c);
}

static int add_class(mm_eval_classes *c, const char *path, int line, const char *s, size_t n,
		     const mm_tokenizer *tok, int room)
{
	if (!n)
		return mm_fail(MM_EFORMAT, "%s:%d: empty caption", path, line);
	for (int i = 0; i < c->n; i++)
		if (strlen(c->text[i]) == n && !memcmp(c->text[i], s, n))
			return mm_fail(MM_EFORMAT, "%s:%d: caption '%s' repeats line %d", path, line, c->text[i], i + 1);
	if (memchr(s, 0, n))
		return mm_fail(MM_EFORMAT, "%s:%d: NUL byte in a caption", path, line);
	char **tx = realloc(c->text, (size_t)(c->n + 1) * sizeof *tx);
	if (tx)
		c->text = tx;
	uint32_t **tk = realloc(c->tok, (size_t)(c->n + 1) * sizeof *tk);
	if (tk)
		c->tok = tk;
	uint32_t *nt = realloc(c->ntok, (size_t)(c->n + 1) * sizeof *nt);
	if (nt)
		c->ntok = nt;
	if (!tx || !tk || !nt || !(tx[c->n] = strndup(s, n)))
		return mm_fail(MM_ENOMEM, "out of memory");
	tk[c->n] = NULL;
	size_t cap = 0, ntok = 0;
	c->n++;
	int rc = mm_tok_encode(tok, (const uint8_t *)s, n, &tk[c->n - 1], &cap, &ntok);
	if (rc)
		return rc;
	if (ntok > (size_t)room)
		return mm_fail(MM_ERANGE, "%s:%d: caption of %zu tokens; at most %d follow an image in the model's "
					  "context", path, line, ntok, room);
	nt[c->n - 1] = (uint32_t)ntok;
	if ((int)ntok > c->max_tok)
		c->max_tok = (int)ntok;
	return 0;
}

int mm_eval_classes_load(mm_eval_classes *c, const char *path, const mm_tokenizer *tok, const mm_config *cfg)
{
	memset(c, 0, sizeof *c);
	if (!cfg->patch)
		return mm_fail(MM_EINVAL, "%s: the model reads no images, so it cannot classify them", path);
	uint8_t *text;
	size_t n;
	int rc = mm_read_file(path, 1 << 20, &text, &n);
	if (rc)
		return rc;
	// BOS BOI patches EOI caption EOS
	int room = cfg->seq_len - MM_NPATCH(cfg) - 4, line = 0;
	const char *p = (const char *)text, *end = p + n;
	while (!rc && p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p)), *e = nl ? nl : end;
		size_t len = (size_t)(e - p);
		if (len && p[len - 1] == '\r')
			len--;
		rc = add_class(c, path, ++line, p, len, tok, room);
		p = nl ? nl + 1 : end;
	}
	free(text);
	if (!rc && c->n < 2)
		rc = mm_fail(MM_EFORMAT, "%s: %d caption%s; classification needs at least 2", path, c->n,
			     c->n == 1 ? "" : "s");
	if (rc)
		mm_eval_classes_free(c);
	return rc;
}

int mm_eval_class_of(const mm_eval_classes *c, const uint8_t *text, size_t n)
{
	for (int i = 0; i < c->n; i++)
		if (strlen(c->text[i]) == n && !memcmp(c->text[i], text, n))
			return i;
	return -1;
}

int mm_eval_score(mm_eval *e, mm_model *m, const mm_eval_classes *c, const uint8_t *px, int n, uint64_t index0,
		  double *ll)
{
	if (!e->P)
		return mm_fail(MM_EINVAL, "eval: the model reads no images");
	int K = e->o.read_draws;
	size_t per = (size_t)n * c->n, total = per * K, np = (size_t)e->NP * e->P;
	ev_seq *s = calloc(total ? total : 1, sizeof *s);
	if (!s)
		return mm_fail(MM_ENOMEM, "out of memory");
	for (size_t k = 0; k < per; k++)
		ll[k] = 0;
	float t = mm_read_level(mm_model_config(m), (float)e->o.read_t);
	for (size_t k = 0; k < total; k++) { // draw d = k / per: all of draw 0 first
		size_t d = k / per, i = k % per / c->n, j = k % c->n;
		s[k] = (ev_seq){.px = px + i * np, .t = t, .seed = e->o.seed ^ MM_EVAL_READ_TAG ^ (d * MM_EVAL_DRAW_STEP),
				.stream = index0 + i, .suf = c->tok[j], .nsuf = (int)c->ntok[j], .eos = 1};
	}
	int rc = 0;
	for (size_t done = 0; done < total && !rc;) {
		int k = ev_pack(e, s + done, (int)(total - done > INT32_MAX ? INT32_MAX : total - done), 1);
		if ((rc = k < 0 ? k : ev_forward(e, m)))
			break;
		for (int q = 0; q < k; q++) {
			const ev_seq *sq = &s[done + q];
			double lp = 0;
			for (int j = 0; j <= sq->nsuf; j++)
				lp += ev_logprob(e, m, sq->at + e->NP + 2 + j);
			ll[(done + q) % per] += lp; // in draw order
		}
		done += (size_t)k;
	}
	for (size_t k = 0; k < per && !rc; k++)
		ll[k] /= K; // exact for K = 1
	free(s);
	return rc;
}

void mm_eval_t2i_free(mm_eval_t2i *r)
{
	free(r->confusion);
	memset(r, 0, sizeof *r);
}

void mm_eval_cls_free(mm_eval_cls *r)
{
	free(r->confusion);
	free(r->confusion_greedy);
	memset(r, 0, sizeof *r);
}

// Likelihood and greedy predictions for the n images gathered in px, with true classes label.
static int classify_chunk(mm_eval *e, mm_model *m, const mm_eval_classes *c, mm_eval_captioner cap, void *ctx,
			  const uint8_t *px, const int *label, int n, double *ll, int *pred, mm_eval_cls *r)
{
	int rc = mm_eval_score(e, m, c, px, n, r->images, ll);
	if (!rc && cap)
		rc = cap(ctx, px, n, r->images, pred);
	for (int i = 0; i < n && !rc; i++) {
		const double *li = ll + (size_t)i * c->n;
		int best = 0;
		for (int j = 1; j < c->n; j++)
			best = li[j] > li[best] ? j : best;
		r->confusion[label[i] * c->n + best]++;
		r->correct += best == label[i];
		if (cap) {
			int g = pred[i] >= 0 && pred[i] < c->n ? pred[i] : c->n;
			r->confusion_greedy[label[i] * (c->n + 1) + g]++;
			r->correct_greedy += g == label[i];
		}
	}
	r->images += (uint64_t)n;
	return rc;
}

// The class of document d's caption when d is a caption pair: >= 0, -1 for another caption,
// -2 for a document that is no caption pair. *img: its image segment.
int ev_pair_label(mm_eval *e, const mm_eval_classes *c, const mm_doc *d, const mm_segment **img)
{
	if (d->n_segs != 2 || d->segs[0].type == d->segs[1].type)
		return -2;
	const mm_segment *t = &d->segs[d->segs[0].type == MM_SEG_TEXT ? 0 : 1];
	*img = &d->segs[d->segs[0].type == MM_SEG_IMAGE ? 0 : 1];
	if (!t->n_tokens)
		return -2;
	size_t len;
	if (mm_tok_decode(e->tok, t->tokens, t->n_tokens, &e->txt, &e->txt_cap, &len))
		return -1; // ids were checked against the vocabulary: this is memory
	return mm_eval_class_of(c, e->txt, len);
}

int mm_eval_classify(mm_eval *e, mm_model *m, const mm_eval_classes *c, mm_eval_captioner cap, void *ctx,
		     mm_eval_cls *r)
{
	memset(r, 0, sizeof *r);
	if (!e->P)
		return mm_fail(MM_EINVAL, "eval: the model reads no images");
	enum { CH = 256 };
	size_t np = (size_t)e->NP * e->P;
	r->n = c->n;
	r->greedy = cap != NULL;
	r->confusion = calloc((size_t)c->n * c->n, sizeof *r->confusion);
	r->confusion_greedy = calloc((size_t)c->n * (c->n + 1), sizeof *r->confusion_greedy);
	uint8_t *px = malloc(CH * np);
	int *label = malloc(CH * sizeof *label), *pred = malloc(CH * sizeof *pred);
	double *ll = malloc((size_t)CH * c->n * sizeof *ll);
	int rc = 0, k = 0;
	if (!r->confusion || !r->confusion_greedy || !px || !label || !pred || !ll)
		rc = mm_fail(MM_ENOMEM, "out of memory");
	for (uint64_t g = 0; g < e->ndocs && !rc; g++) {
		if ((rc = mm_loader_read(e->ld, g, &e->doc)))
			break;
		const mm_segment *img = NULL;
		int lab = ev_pair_label(e, c, &e->doc, &img);
		if (lab == -1)
			r->unmatched++;
		if (lab < 0)
			continue;
		memcpy(px + (size_t)k * np, img->pixels, np);
		label[k++] = lab;
		if (k == CH || g + 1 == e->ndocs) {
			rc = classify_chunk(e, m, c, cap, ctx, px, label, k, ll, pred, r);
			k = 0;
			ev_progress(e, "classes", g + 1, e->ndocs);
		}
	}
	if (!rc && k)
		rc = classify_chunk(e, m, c, cap, ctx, px, label, k, ll, pred, r);
	free(px);
	free(label);
	free(pred);
	free(ll);
	return rc;
}
