// The model: layout of parameters and activations from the MM_PARAMS and MM_ACTS lists, batch
// validation, initialisation, and the float instantiation of forward and backward.
//
// Where each part of the Transformer lives (training and inference run the same code):
//   lib/model.h        the specification; parameters (MM_PARAMS), batch, API
//   lib/model_state_priv.h   activations (MM_ACTS), struct mm_model, mm_block_io (one block's buffers)
//   lib/model_typed_priv.h   over float or double: the embedding (model_embed), the block
//                      (model_block_forward: keys and values of the batch's rows or of a cache,
//                      projections separate or fused), forward and backward of a whole batch
//   lib/kernels_typed_priv.h the kernels: matmul, rmsnorm, rope, attention (rows or cache) with the one
//                      mask rule (mm_att_allowed), softmax, SwiGLU with the one exp (fastexp.h)
//   lib/sample.c       the KV cache and spans of new positions, calling model_embed and
//                      model_block_forward per layer on the model's own weights
#include <cblas.h>
#include <omp.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "kernels.h"
#include "model.h"
#include "rng.h"

#define REAL float
#define KFN(name) mm_##name
#include "model_typed_priv.h"

static int in_range(int v, int lo, int hi) { return v >= lo && v <= hi; }

int mm_config_check(const mm_config *c)
{
	if (!in_range(c->dim, 1, 1 << 16) || !in_range(c->heads, 1, c->dim) || c->dim % c->heads ||
	    (c->dim / c->heads) % 2)
		return mm_fail(MM_EINVAL, "config: dim %d with %d heads: need heads dividing dim into "
					  "even head sizes, dim <= 65536", c->dim, c->heads);
	if (!in_range(c->layers, 1, 1024))
		return mm_fail(MM_EINVAL, "config: layers %d not in [1, 1024]", c->layers);
	if (!in_range(c->mlp, 1, 1 << 18))
		return mm_fail(MM_EINVAL, "config: mlp %d not in [1, 262144]", c->mlp);
	if (!in_range(c->vocab, 1, 1 << 24))
		return mm_fail(MM_EINVAL, "config: vocab %d not in [1, 16777216]", c->vocab);
	if (!in_range(c->seq_len, 1, 1 << 14))
		return mm_fail(MM_EINVAL, "config: seq_len %d not in [1, 16384]", c->seq_len);
	if (c->qk_norm != 0 && c->qk_norm != 1)
		return mm_fail(MM_EINVAL, "config: qk_norm %d is not 0 or 1", c->qk_norm);
	if (!(c->image_weight >= 0 && c->image_weight <= 1e6f))
		return mm_fail(MM_EINVAL, "config: image_weight %g not in [0, 1e6]", c->image_weight);
	if (!(c->noise_shift == 0 || (c->noise_shift >= 0.01f && c->noise_shift <= 100)))
		return mm_fail(MM_EINVAL, "config: noise_shift %g not in [0.01, 100]", c->noise_shift);
	int any = c->img_h || c->img_w || c->img_c || c->patch;
	if (any && (!in_range(c->img_h, 1, 1 << 14) || !in_range(c->img_w, 1, 1 << 14) ||
		    !in_range(c->img_c, 1, 4) || !in_range(c->patch, 1, 256) || c->img_h % c->patch ||
		    c->img_w % c->patch))
		return mm_fail(MM_EINVAL, "config: image %dx%dx%d with patch %d: need whole patches, "
					  "1..4 channels, or all four 0", c->img_h, c->img_w, c->img_c, c->patch);
	if (!in_range(c->bottleneck, 0, 1 << 16) || (c->bottleneck && !any))
		return mm_fail(MM_EINVAL, "config: bottleneck %d (needs images, <= 65536)", c->bottleneck);
	return 0;
}

// Lays out the parameters and fills the tensor table (NULL: count only).
static size_t layout_params(mm_model *m, mm_tensor *tab, int *ntab)
{
	const mm_config *c = &m->c;
	size_t off = 0;
	int n = 0;
#define MM_X(nm, R_, C_, PL_, K_)                                                          \
	m->pl.off.nm = off;                                                                \
	m->pl.len.nm = (size_t)(R_) * (size_t)(C_);                                        \
	for (int l = 0; m->pl.len.nm && l < ((PL_) ? c->layers : 1); l++, n++) {           \
		if (tab) {                                                                 \
			mm_tensor *t = &tab[n];                                            \
			if (PL_)                                                           \
				snprintf(t->name, sizeof t->name, "layers.%d.%s", l, #nm); \
			else                                                               \
				snprintf(t->name, sizeof t->name, "%s", #nm);              \
			t->layer = (PL_) ? l : -1;                                         \
			t->rows = (R_), t->cols = (C_), t->kind = (K_);                    \
			t->offset = off, t->size = m->pl.len.nm;                           \
		}                                                                          \
		off += m->pl.len.nm;                                                       \
	}
	MM_PARAMS(MM_X, c)
#undef MM_X
	*ntab = n;
	return off;
}

// Lays out the activations; 0 if they would exceed 2^40 values (the sizes are then not used).
static size_t layout_acts(mm_model *m)
{
	const mm_config *c = &m->c;
	size_t L = c->layers, T = c->seq_len, N = (size_t)m->max_batch * T, NI = m->P ? N : 0;
	size_t D = c->dim, F = c->mlp, H = c->heads, V = c->vocab, P = m->P, K = c->bottleneck;
	size_t hd = m->hd, qk = c->qk_norm, NT = (size_t)m->nth, off = 0;
	double total = 0; // the same sum, immune to overflow
	// each activation starts on a 64-byte line
#define MM_X(nm, copies, size)                             \
	m->al.off.nm = off;                                \
	m->al.len.nm = (size);                             \
	total += (double)(copies) * (double)(size) + 15;   \
	off += ((copies) * (size) + 15) / 16 * 16;
	MM_ACTS(MM_X)
#undef MM_X
	return total < 0x1p40 ? off : 0;
}

int mm_model_new(mm_model **mp, const mm_config *c, int max_batch)
{
	*mp = NULL;
	int rc = mm_config_check(c);
	if (rc)
		return rc;
	if (max_batch < 1 || (int64_t)max_batch * c->seq_len > (1 << 24))
		return mm_fail(MM_EINVAL, "model: batch of %d rows of %d positions: need 1 to 2^24 "
					  "positions", max_batch, c->seq_len);
	mm_model *m = calloc(1, sizeof *m);
	if (!m)
		return mm_fail(MM_ENOMEM, "model: out of memory");
	openblas_set_num_threads(1); // the kernels split matmuls across OpenMP threads themselves
	m->c = *c;
	m->max_batch = max_batch;
	m->nth = omp_get_max_threads() < 1 ? 1 : omp_get_max_threads(); // attention's buffers
	m->hd = c->dim / c->heads;
	m->P = MM_PDIM(c);
	m->NP = MM_NPATCH(c);
	layout_params(m, NULL, &m->ntensors);
	m->tensors = calloc((size_t)m->ntensors, sizeof *m->tensors);
	if (m->tensors)
		m->nparams = layout_params(m, m->tensors, &m->ntensors);
	m->nacts = layout_acts(m);
	size_t N = (size_t)max_batch * c->seq_len;
	if (!m->nacts) {
		mm_model_free(m);
		return mm_fail(MM_ENOMEM, "model: activations for %d rows of %d positions exceed 2^40 "
					  "values", max_batch, c->seq_len);
	}
	m->params = calloc(m->nparams, sizeof(float));
	m->grads = calloc(m->nparams, sizeof(float));
	m->acts = calloc(m->nacts, sizeof(float));
	m->ints = calloc(7 * N, sizeof(int32_t));
	if (!m->tensors || !m->params || !m->grads || !m->acts || !m->ints) {
		size_t mib = ((2 * m->nparams + m->nacts) * sizeof(float) + 5 * N * 4) >> 20;
		mm_model_free(m);
		return mm_fail(MM_ENOMEM, "model: cannot allocate %zu MiB", mib);
	}
	m->tok_ids = m->ints;
	m->text_rows = m->ints + N;
	m->text_tgt = m->ints + 2 * N;
	m->img_rows = m->ints + 3 * N;
	m->img_patch = m->ints + 4 * N;
	m->doc = m->ints + 5 * N;
	m->img = m->ints + 6 * N;
	*mp = m;
	return 0;
}

void mm_model_free(mm_model *m)
{
	if (!m)
		return;
	free(m->tensors);
	free(m->params);
	free(m->grads);
	free(m->acts);
	free(m->ints);
	free(m);
}

const mm_config *mm_model_config(const mm_model *m) { return &m->c; }
size_t mm_model_nparams(const mm_model *m) { return m->nparams; }
float *mm_model_params(mm_model *m) { return m->params; }
float *mm_model_grads(mm_model *m) { return m->grads; }
int mm_model_ntensors(const mm_model *m) { return m->ntensors; }
const mm_tensor *mm_model_tensors(const mm_model *m) { return m->tensors; }

const mm_tensor *mm_model_find(const mm_model *m, const char *name)
{
	for (int i = 0; i < m->ntensors; i++)
		if (!strcmp(m->tensors[i].name, name))
			return &m->tensors[i];
	return NULL;
}

// Where block pos of version 1's order goes: block j (wq, wk, wv or w1, w3) of layer l is block
// j * L + l there, and l * k + j in the fused tensor.
static int v1_dest(int pos, int k, int L) { return pos % L * k + pos / L; }

// Moves the k * L blocks of blk values at p from version 1's order to the fused one, in place:
// each cycle of the permutation once, from its smallest block, a slice at a time.
static void blocks_from_v1(float *p, int k, int L, size_t blk)
{
	enum { CH = 256 };
	float carry[CH], next[CH];
	for (int s = 0; s < k * L; s++) {
		int c = v1_dest(s, k, L);
		while (c > s)
			c = v1_dest(c, k, L);
		if (c < s || v1_dest(s, k, L) == s) // met a smaller block, or one that stays
			continue;
		for (size_t e = 0; e < blk; e += CH) {
			size_t w = blk - e < CH ? blk - e : CH;
			memcpy(carry, p + s * blk + e, w * sizeof *p);
			int cur = s;
			do {
				cur = v1_dest(cur, k, L);
				float *at = p + cur * blk + e;
				memcpy(next, at, w * sizeof *p);
				memcpy(at, carry, w * sizeof *p);
				memcpy(carry, next, w * sizeof *p);
			} while (cur != s);
		}
	}
}

// The parameter layout of c alone (no allocation): the offsets in pl, the count returned.
static size_t layout_of(const mm_config *c, mm_model *tmp)
{
	memset(tmp, 0, sizeof *tmp);
	tmp->c = *c;
	int n;
	return layout_params(tmp, NULL, &n);
}

size_t mm_config_nparams(const mm_config *c)
{
	mm_model tmp;
	return layout_of(c, &tmp);
}

void mm_params_from_v1(const mm_config *c, float *p)
{
	mm_model tmp;
	layout_of(c, &tmp);
	size_t D = c->dim, F = c->mlp;
	blocks_from_v1(p + tmp.pl.off.wqkv, 3, c->layers, D * D);
	blocks_from_v1(p + tmp.pl.off.w13, 2, c->layers, F * D);
}

void mm_model_init(mm_model *m, uint64_t seed)
{
	mm_rng r;
	mm_rng_seed(&r, seed, 0);
	// wqkv and w13 hold version 1's wq, wk, wv and w1, w3 (one scale each): the draws run over
	// the same places in the same order as then, and then move to the fused layout.
	for (int i = 0; i < m->ntensors; i++) {
		const mm_tensor *t = &m->tensors[i];
		const char *base = strrchr(t->name, '.');
		base = base ? base + 1 : t->name;
		float *p = m->params + t->offset;
		if (t->kind == 'v') {
			float v = strstr(base, "norm") ? 1.0f : 0.0f;
			for (size_t j = 0; j < t->size; j++)
				p[j] = v;
			continue;
		}
		double std = 0.02;
		if (!strcmp(base, "wo") || !strcmp(base, "w2")) // residual branches: keep the sum's scale
			std /= sqrt(2.0 * m->c.layers);
		for (size_t j = 0; j < t->size; j++)
			p[j] = (float)(std * mm_rng_normal(&r));
	}
	mm_params_from_v1(&m->c, m->params);
}

static int bad_pos(const mm_batch *b, int n, const char *what, long long v)
{
	return mm_fail(MM_EINVAL, "batch: row %d position %d: %s %lld", n / b->T, n % b->T, what, v);
}

int mm_model_prepare(mm_model *m, const mm_batch *b)
{
	const mm_config *c = &m->c;
	m->forward_done = 0;
	if (b->B < 1 || b->B > m->max_batch || b->T < 1 || b->T > c->seq_len)
		return mm_fail(MM_EINVAL, "batch: %d rows of %d positions; the model takes up to %d "
					  "rows of up to %d", b->B, b->T, m->max_batch, c->seq_len);
	if (!b->token || !b->target || !b->doc || !b->img || !b->pos || !b->patch)
		return mm_fail(MM_EINVAL, "batch: missing array");
	int N = b->B * b->T, nt = 0, ni = 0;
	for (int n = 0; n < N; n++) {
		int32_t tok = b->token[n], tgt = b->target[n];
		if (tgt < -1 || tgt >= c->vocab)
			return bad_pos(b, n, "target out of range:", tgt);
		if (b->img[n] < 0) {
			if (tok < -1 || tok >= c->vocab)
				return bad_pos(b, n, "token out of range:", tok);
			m->tok_ids[n] = tok; // -1: a padding position without a token, embedded as 0
		} else {
			if (!m->P)
				return bad_pos(b, n, "image position in a text-only model: image", b->img[n]);
			if (!b->t || !b->z || !b->x)
				return mm_fail(MM_EINVAL, "batch: image positions but no t, z or x");
			if (b->patch[n] < 0 || b->patch[n] >= m->NP)
				return bad_pos(b, n, "patch index out of range:", b->patch[n]);
			if (!(b->t[n] >= 0 && b->t[n] <= 1))
				return mm_fail(MM_EINVAL, "batch: row %d position %d: noise level %g not in "
							  "[0, 1]", n / b->T, n % b->T, b->t[n]);
			if (tgt >= 0)
				return bad_pos(b, n, "target at an image position:", tgt);
			m->tok_ids[n] = -1;
			m->img_rows[ni] = n;
			m->img_patch[ni++] = b->patch[n];
		}
		if (tgt >= 0) {
			m->text_rows[nt] = n;
			m->text_tgt[nt++] = tgt;
		}
	}
	m->B = b->B, m->T = b->T, m->nt = nt, m->ni = ni;
	memcpy(m->doc, b->doc, (size_t)b->B * b->T * sizeof *m->doc); // the mask, for the backward
	memcpy(m->img, b->img, (size_t)b->B * b->T * sizeof *m->img);
	m->nt_norm = nt, m->ni_norm = ni;
	return 0;
}

int mm_model_forward(mm_model *m, const mm_batch *b, float *loss)
{
	int rc = mm_model_prepare(m, b);
	if (rc)
		return rc;
	mm_model_forward_pass(m, m->params, m->acts, b);
	m->forward_done = 1;
	if (loss)
		*loss = (float)m->loss;
	return 0;
}

void mm_model_losses(const mm_model *m, float *loss_text, float *loss_image)
{
	if (loss_text)
		*loss_text = (float)m->loss_text;
	if (loss_image)
		*loss_image = (float)m->loss_image;
}

int mm_model_backward(mm_model *m)
{
	if (!m->forward_done)
		return mm_fail(MM_EINVAL, "model: backward without a forward");
	mm_model_backward_pass(m, m->params, m->grads, m->acts);
	return 0;
}

void mm_model_set_loss_counts(mm_model *m, double n_text, double n_image)
{
	m->nt_norm = n_text;
	m->ni_norm = n_image;
}

void mm_model_zero_grad(mm_model *m)
{
	memset(m->grads, 0, m->nparams * sizeof(float));
}

const float *mm_model_logits(const mm_model *m, int *n, const int32_t **rows)
{
	*n = m->forward_done ? m->nt : 0;
	if (rows)
		*rows = m->text_rows;
	return m->acts + m->al.off.logits;
}

const float *mm_model_x_pred(const mm_model *m, int *n, const int32_t **rows)
{
	*n = m->forward_done ? m->ni : 0;
	if (rows)
		*rows = m->img_rows;
	return m->acts + m->al.off.xpred;
}

float mm_noise_shift(const mm_config *c) { return c->noise_shift > 0 ? c->noise_shift : 1; }

double mm_noise_shift_default(int img_h, int img_w, int img_c)
{
	double s = sqrt((double)img_h * img_w * img_c / 784.0);
	return s > 1 ? s : 1;
}

// logit(t') = logit(t) - log S, i.e. t' = t / (t + S (1 - t)); exact at 0 and 1.
float mm_shift_t(float t, float shift)
{
	if (shift == 1)
		return t;
	double u = t;
	return (float)(u / (u + (double)shift * (1 - u)));
}

float mm_read_level(const mm_config *c, float t)
{
	return mm_shift_t(t, mm_noise_shift(c));
}
