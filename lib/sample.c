// The inference engine: the KV cache, spans of new positions through the layers, and the image
// ODE samplers (see sample.h).
//
// Where each part lives: the embedding and the block are the model's own (mm_model_embed and
// mm_model_block_forward in lib/model_typed_priv.h, which training runs too, on the model's own
// weights), here given the cache as the place of keys and values; attention over the cache is
// mm_attention_cached (lib/kernels_typed_priv.h), with the training mask. This file
// holds the cache and slot histories, the spans, the heads on the rows that need them and the
// ODE samplers (token choice and whole documents are lib/generate.c).
#include "sample.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "kernels.h"
#include "model_state_priv.h"
#include "tokenizer.h"

struct mm_sampler {
	mm_model *m;
	const float *w;
	int S, T, D, H, hd, F, V, P, NP, K, L, qk;
	int rcap; // rows one pass through the layers can hold
	int nth;  // OpenMP threads at creation: attention has a score buffer for each
	float *kc, *vc; // (L, S, T, D): keys (normed, rotated) and values of every cached position
	// The inputs of every position of every slot, (S, T) each: what a recomputation needs, and
	// the mask. img is the image's id within its slot (the position of its first patch), -1 for
	// text; doc is 0 everywhere (a slot holds one document).
	int32_t *tok, *patch, *img, *doc;
	float *tt, *zz; // noise level (S, T) and patch pixels (S, T, P)
	int *len;
	mm_span *sp; // (S): the spans of the current call
	float *rcos, *rsin; // rotary tables of positions 0..T-1, (T, hd/2)
	// Scratch for up to rcap rows.
	float *x, *h, *q, *k, *v, *a, *tmp, *sw, *rstd, *cosb, *sinb;
	float *qkv, *g13; // (R, 3D) and (R, 2F): the fused products' rows
	float *att, *zs, *ts, *ft, *u, *emb, *xp; // att: (nth, MM_ATT_QB, T) scores
	int32_t *rpos, *rtok, *irows, *ipatch, *orows;
	float *logits; // (S, V): the last positions of the spans of the last append
	void *mem;     // one allocation for all of the above
};

#define WT(name, l) (s->w + s->m->pl.off.name + (size_t)(l) * s->m->pl.len.name)

static size_t align16(size_t n) { return (n + 15) / 16 * 16; }

// Lays out every array in one block (base NULL: measures).
static size_t sampler_layout(mm_sampler *s, char *base)
{
	size_t off = 0, S = s->S, T = s->T, D = s->D, R = s->rcap, P = s->P;
#define F32(field, count)                                          \
	s->field = base ? (float *)(base + off) : NULL;            \
	off += align16((size_t)(count)) * sizeof(float);
#define I32(field, count)                                          \
	s->field = base ? (int32_t *)(base + off) : NULL;          \
	off += align16((size_t)(count)) * sizeof(int32_t);
	F32(kc, (size_t)s->L * S * T * D) F32(vc, (size_t)s->L * S * T * D)
	I32(tok, S * T) I32(patch, S * T) I32(img, S * T) I32(doc, S * T)
	F32(tt, S * T) F32(zz, S * T * P)
	F32(rcos, T * (s->hd / 2)) F32(rsin, T * (s->hd / 2))
	F32(qkv, R * 3 * D) F32(g13, R * 2 * s->F)
	F32(x, R * D) F32(h, R * D) F32(q, R * D) F32(k, R * D) F32(v, R * D) F32(a, R * D)
	F32(tmp, R * D) F32(sw, R * s->F) F32(rstd, R * s->H)
	F32(cosb, R * (s->hd / 2)) F32(sinb, R * (s->hd / 2))
	F32(att, (size_t)s->nth * MM_ATT_QB * T) F32(zs, R * P) F32(ts, R) F32(ft, R * 64) F32(u, R * s->K) F32(emb, R * D) F32(xp, R * P)
	I32(rpos, R) I32(rtok, R) I32(irows, R) I32(ipatch, R) I32(orows, R)
	F32(logits, S * (size_t)s->V)
#undef F32
#undef I32
	return off;
}

int mm_sampler_new(mm_sampler **sp, mm_model *m, int slots)
{
	*sp = NULL;
	const mm_config *c = mm_model_config(m);
	if (slots < 1 || (int64_t)slots * c->seq_len > (1 << 24))
		return mm_fail(MM_EINVAL, "sampler: %d slots of %d positions: need 1 to 2^24 positions", slots,
			       c->seq_len);
	mm_sampler *s = calloc(1, sizeof *s);
	if (!s)
		return mm_fail(MM_ENOMEM, "sampler: out of memory");
	s->m = m;
	s->w = mm_model_params(m);
	s->S = slots, s->T = c->seq_len, s->D = c->dim, s->H = c->heads, s->hd = c->dim / c->heads;
	s->F = c->mlp, s->V = c->vocab, s->P = MM_PDIM(c), s->NP = MM_NPATCH(c), s->K = c->bottleneck;
	s->L = c->layers, s->qk = c->qk_norm;
	s->nth = omp_get_max_threads() < 1 ? 1 : omp_get_max_threads();
	// Room for the whole context of every slot, up to 4096 rows; larger batches go in pieces.
	int64_t all = (int64_t)slots * s->T;
	s->rcap = (int)(all < 4096 ? all : (s->T > 4096 ? s->T : 4096));
	size_t bytes = sampler_layout(s, NULL);
	s->mem = malloc(bytes);
	s->len = calloc((size_t)slots, sizeof *s->len);
	s->sp = calloc((size_t)slots, sizeof *s->sp);
	if (!s->mem || !s->len || !s->sp) {
		mm_sampler_free(s);
		return mm_fail(MM_ENOMEM, "sampler: cannot allocate %zu MiB", bytes >> 20);
	}
	sampler_layout(s, s->mem);
	int32_t *pos = s->rpos; // positions 0..T-1, borrowing a scratch array (rcap >= T)
	for (int i = 0; i < s->T; i++)
		pos[i] = i;
	mm_rope_table(s->rcos, s->rsin, pos, s->T, s->hd);
	memset(s->doc, 0, (size_t)slots * s->T * sizeof *s->doc);
	*sp = s;
	return 0;
}

void mm_sampler_free(mm_sampler *s)
{
	if (!s)
		return;
	free(s->mem);
	free(s->len);
	free(s->sp);
	free(s);
}

int mm_sampler_slots(const mm_sampler *s) { return s->S; }
const mm_model *mm_sampler_model(const mm_sampler *s) { return s->m; }
int mm_sampler_len(const mm_sampler *s, int slot) { return slot >= 0 && slot < s->S ? s->len[slot] : 0; }
void mm_sampler_clear(mm_sampler *s, int slot)
{
	if (slot >= 0 && slot < s->S)
		s->len[slot] = 0;
}
const float *mm_sampler_logits(const mm_sampler *s, int i) { return s->logits + (size_t)i * s->V; }

// Embeds rows [0, R) of the current pass (rows row0.. of span sp[i] are its positions) into s->x.
static void embed_rows(mm_sampler *s, int nsp, const mm_span *sp, int R)
{
	int P = s->P, ni = 0;
	for (int i = 0; i < nsp; i++)
		for (int j = 0; j < sp[i].n; j++) {
			int r = sp[i].row0 + j;
			size_t at = (size_t)sp[i].slot * s->T + sp[i].start + j;
			s->rpos[r] = sp[i].start + j;
			s->rtok[r] = s->img[at] < 0 ? s->tok[at] : -1;
			if (s->img[at] < 0)
				continue;
			memcpy(s->zs + (size_t)ni * P, s->zz + at * P, (size_t)P * sizeof(float));
			s->ts[ni] = s->tt[at];
			s->ipatch[ni] = s->patch[at];
			s->irows[ni++] = r;
		}
	mm_model_embed(s->m, s->w, s->x, s->rtok, R, ni, s->irows, s->ipatch, s->zs, s->ts, s->u, s->ft,
		       s->emb, s->tmp);
}

// The layers over rows [0, R) of spans sp[0..nsp), the model's block with the cache as the place
// of keys and values: one scratch array for the residual stream (x), one for the norms (h).
static void layers(mm_sampler *s, int nsp, const mm_span *sp, int R)
{
	size_t cache = (size_t)s->S * s->T * s->D;
	mm_block_io io = {
		.N = R, .x = s->x, .xout = s->x, .h1 = s->h, .rstd1 = s->rstd, .cosb = s->cosb,
		.sinb = s->sinb, .qkv = s->qkv, .g13 = s->g13, .qr = s->q, .kr = s->k,
		.qrstd = s->rstd, .krstd = s->rstd, .q = s->q, .k = s->k, .v = s->v, .a = s->a,
		.mid = s->x, .rstd2 = s->rstd, .h2 = s->h, .s = s->sw, .tmp = s->tmp,
		.rstdnext = s->rstd, .doc = s->doc, .img = s->img, .T = s->T, .sp = sp, .nsp = nsp,
		.nbuf = s->nth, .scores = s->att,
	};
	mm_rmsnorm_forward(s->h, s->rstd, s->x, WT(attn_norm, 0), R, s->D);
	for (int l = 0; l < s->L; l++) {
		io.kc = s->kc + cache * l, io.vc = s->vc + cache * l;
		io.hnext = l + 1 < s->L ? s->h : NULL;
		mm_model_block_forward(s->m, s->w, l, &io);
	}
}

// The heads: the final norm on the rows rows[0..no), then y @ w^T + b into out (no, OC).
static void head(mm_sampler *s, int no, const int32_t *rows, const float *w, const float *b, int OC, float *out)
{
	mm_embedding_forward(s->h, s->x, rows, no, s->D);
	mm_rmsnorm_forward(s->h, s->rstd, s->h, WT(final_norm, 0), no, s->D);
	mm_matmul_forward(out, s->h, w, b, no, s->D, OC);
}

// Runs spans sp[0..nsp) (their inputs already in the slot history) through the model, as many
// at a time as fit in rcap rows. With logits, the logits of each span's last position go to
// s->logits (row = span index); with xp_last > 0, x_pred of each span's last xp_last positions
// goes to xpred (nsp, xp_last, P). Slot lengths are not changed.
static void run_spans(mm_sampler *s, int nsp, mm_span *sp, int logits, int xp_last, float *xpred)
{
	for (int first = 0; first < nsp;) {
		int last = first, R = 0;
		while (last < nsp && R + sp[last].n <= s->rcap) {
			sp[last].row0 = R;
			R += sp[last++].n;
		}
		embed_rows(s, last - first, sp + first, R);
		mm_embedding_forward(s->cosb, s->rcos, s->rpos, R, s->hd / 2);
		mm_embedding_forward(s->sinb, s->rsin, s->rpos, R, s->hd / 2);
		layers(s, last - first, sp + first, R);
		int no = 0, row = 0;
		for (int i = first; i < last; i++) {
			row += sp[i].n;
			if (logits && sp[i].n)
				s->orows[no++] = row - 1;
		}
		if (no) { // rows in order of the spans that have any; spread to one row per span
			float *lg = s->logits + (size_t)first * s->V;
			head(s, no, s->orows, WT(lm_head, 0), NULL, s->V, lg);
			for (int i = last - 1, k = no - 1; i >= first && k < i - first; i--)
				if (sp[i].n)
					memmove(lg + (size_t)(i - first) * s->V, lg + (size_t)k-- * s->V,
						(size_t)s->V * sizeof *lg);
		}
		if (xp_last) {
			no = row = 0;
			for (int i = first; i < last; i++) {
				row += sp[i].n;
				for (int j = xp_last; j > 0; j--)
					s->orows[no++] = row - j;
			}
			head(s, no, s->orows, WT(ph_w, 0), WT(ph_b, 0), s->P, xpred + (size_t)first * xp_last * s->P);
		}
		first = last;
	}
}

static int check_slots(const mm_sampler *s, int ns, const int *slots, int need)
{
	if (ns < 1 || ns > s->S)
		return mm_fail(MM_EINVAL, "sampler: %d slots given, %d exist", ns, s->S);
	for (int i = 0; i < ns; i++) {
		if (slots[i] < 0 || slots[i] >= s->S)
			return mm_fail(MM_EINVAL, "sampler: slot %d does not exist", slots[i]);
		for (int j = 0; j < i; j++)
			if (slots[j] == slots[i])
				return mm_fail(MM_EINVAL, "sampler: slot %d given twice", slots[i]);
		if (s->len[slots[i]] + need > s->T)
			return mm_fail(MM_ERANGE, "sampler: %d positions after %d do not fit the context of %d",
				       need, s->len[slots[i]], s->T);
	}
	return 0;
}

// Writes n[i] >= min_n tokens into the history of slot slots[i] after its cached positions, and
// their span into s->sp[i]; the slots' lengths are not changed.
static int put_tokens(mm_sampler *s, int ns, const int *slots, const int32_t *const *tok, const int *n, int min_n)
{
	int rc = 0;
	for (int i = 0; i < ns && !rc; i++) {
		int sl = slots[i], start = s->len[sl];
		if (n[i] < min_n || n[i] > s->T - start)
			rc = mm_fail(MM_ERANGE, "sampler: %d tokens after %d positions do not fit the context of %d",
				     n[i], start, s->T);
		for (int j = 0; j < n[i] && !rc; j++) {
			size_t at = (size_t)sl * s->T + start + j;
			if (tok[i][j] < 0 || tok[i][j] >= s->V)
				rc = mm_fail(MM_EINVAL, "sampler: token %d not in the vocabulary of %d", tok[i][j], s->V);
			else
				s->tok[at] = tok[i][j], s->img[at] = -1, s->patch[at] = -1, s->tt[at] = 0;
		}
		s->sp[i] = (mm_span){sl, start, n[i], 0};
	}
	return rc;
}

int mm_sampler_append_tokens(mm_sampler *s, int ns, const int *slots, const int32_t *const *tok, const int *n)
{
	int rc = check_slots(s, ns, slots, 0);
	if (rc)
		return rc;
	mm_span *sp = s->sp;
	rc = put_tokens(s, ns, slots, tok, n, 0);
	if (!rc) {
		run_spans(s, ns, sp, 1, 0, NULL);
		for (int i = 0; i < ns; i++)
			s->len[slots[i]] += n[i];
	}
	return rc;
}

double mm_logprob(const float *lg, int V, int id)
{
	float mx = lg[0];
	for (int v = 1; v < V; v++)
		mx = lg[v] > mx ? lg[v] : mx;
	double sum = 0;
	for (int v = 0; v < V; v++)
		sum += exp((double)(lg[v] - mx));
	return (double)(lg[id] - mx) - log(sum);
}

int mm_sampler_copy(mm_sampler *s, int dst, int src)
{
	if (dst < 0 || dst >= s->S || src < 0 || src >= s->S)
		return mm_fail(MM_EINVAL, "sampler: slot %d or %d does not exist", dst, src);
	if (dst == src)
		return 0;
	size_t n = (size_t)s->len[src], T = (size_t)s->T, D = (size_t)s->D, P = (size_t)s->P;
	size_t a = (size_t)dst * T, b = (size_t)src * T;
	for (int l = 0; l < s->L; l++) {
		size_t c = (size_t)l * s->S * T;
		memcpy(s->kc + (c + a) * D, s->kc + (c + b) * D, n * D * sizeof(float));
		memcpy(s->vc + (c + a) * D, s->vc + (c + b) * D, n * D * sizeof(float));
	}
	memcpy(s->tok + a, s->tok + b, n * sizeof *s->tok);
	memcpy(s->patch + a, s->patch + b, n * sizeof *s->patch);
	memcpy(s->img + a, s->img + b, n * sizeof *s->img);
	memcpy(s->tt + a, s->tt + b, n * sizeof *s->tt);
	memcpy(s->zz + a * P, s->zz + b * P, n * P * sizeof(float));
	s->len[dst] = (int)n;
	return 0;
}

int mm_sampler_score(mm_sampler *s, int ns, const int *slots, const int32_t *const *tok, const int *n,
		     double *ll)
{
	int rc = check_slots(s, ns, slots, 0);
	mm_span *sp = s->sp;
	int V = s->V;
	if (!rc)
		rc = put_tokens(s, ns, slots, tok, n, 1);
	if (rc)
		return rc;
	for (int i = 0; i < ns; i++)
		ll[i] = 0;
	// As run_spans, with the head on every row but each span's last, in pieces of at most S
	// rows (the room of s->logits, whose contents are undefined afterwards).
	for (int first = 0; first < ns;) {
		int last = first, R = 0;
		while (last < ns && R + sp[last].n <= s->rcap) {
			sp[last].row0 = R;
			R += sp[last++].n;
		}
		if (last == first) // one span longer than rcap cannot happen: n <= T <= rcap
			return mm_fail(MM_ERANGE, "sampler: span of %d rows", sp[first].n);
		embed_rows(s, last - first, sp + first, R);
		mm_embedding_forward(s->cosb, s->rcos, s->rpos, R, s->hd / 2);
		mm_embedding_forward(s->sinb, s->rsin, s->rpos, R, s->hd / 2);
		layers(s, last - first, sp + first, R);
		int no = 0;
		for (int i = first; i < last; i++) // rows with a next token, their spans and places
			for (int j = 0; j + 1 < sp[i].n; j++) {
				s->orows[no] = sp[i].row0 + j;
				s->rtok[no] = i; // rtok and irows are free after embed_rows
				s->irows[no++] = j;
			}
		for (int o0 = 0; o0 < no; o0 += s->S) {
			int m = no - o0 < s->S ? no - o0 : s->S;
			head(s, m, s->orows + o0, WT(lm_head, 0), NULL, V, s->logits);
			for (int r = 0; r < m; r++) {
				int i = s->rtok[o0 + r], j = s->irows[o0 + r];
				ll[i] += mm_logprob(s->logits + (size_t)r * V, V, tok[i][j + 1]);
			}
		}
		first = last;
	}
	return 0;
}

// Writes an image's NP patches z (NP, P) at noise level t into the history of a slot from its
// current length on (and EOI after them with eoi).
static void put_image(mm_sampler *s, int slot, const float *z, float t, int eoi)
{
	int start = s->len[slot];
	for (int j = 0; j < s->NP; j++) {
		size_t at = (size_t)slot * s->T + start + j;
		s->tok[at] = -1, s->img[at] = start, s->patch[at] = j, s->tt[at] = t;
		memcpy(s->zz + at * s->P, z + (size_t)j * s->P, (size_t)s->P * sizeof(float));
	}
	if (eoi) {
		size_t at = (size_t)slot * s->T + start + s->NP;
		s->tok[at] = MM_TOK_EOI, s->img[at] = -1, s->patch[at] = -1, s->tt[at] = 0;
	}
}

static int check_image(const mm_sampler *s, float t)
{
	if (!s->NP)
		return mm_fail(MM_EINVAL, "sampler: the model has no image geometry");
	if (!(t >= 0 && t <= 1))
		return mm_fail(MM_EINVAL, "sampler: noise level %g not in [0, 1]", t);
	return 0;
}

int mm_sampler_append_image(mm_sampler *s, int ns, const int *slots, const float *z, float t, int eoi)
{
	int rc = check_image(s, t);
	if (!rc)
		rc = check_slots(s, ns, slots, s->NP + !!eoi);
	if (rc)
		return rc;
	if (eoi && MM_TOK_EOI >= s->V)
		return mm_fail(MM_EINVAL, "sampler: vocabulary of %d has no EOI", s->V);
	mm_span *sp = s->sp;
	for (int i = 0; i < ns; i++) {
		put_image(s, slots[i], z + (size_t)i * s->NP * s->P, t, eoi);
		sp[i] = (mm_span){slots[i], s->len[slots[i]], s->NP + !!eoi, 0};
	}
	run_spans(s, ns, sp, eoi, 0, NULL);
	for (int i = 0; i < ns; i++)
		s->len[slots[i]] += sp[i].n;
	return 0;
}

int mm_sampler_denoise(mm_sampler *s, int ns, const int *slots, const float *z, float t, int recompute,
		       float *xpred)
{
	int rc = check_image(s, t);
	if (!rc)
		rc = check_slots(s, ns, slots, s->NP);
	if (rc)
		return rc;
	mm_span *sp = s->sp;
	for (int i = 0; i < ns; i++) {
		int sl = slots[i], start = s->len[sl];
		put_image(s, sl, z + (size_t)i * s->NP * s->P, t, 0);
		sp[i] = recompute ? (mm_span){sl, 0, start + s->NP, 0} : (mm_span){sl, start, s->NP, 0};
	}
	run_spans(s, ns, sp, 0, s->NP, xpred);
	return 0;
}

const char *const mm_ode_names[] = {"euler", "heun", "dpm2m", NULL};

void mm_image_opts_default(mm_image_opts *o)
{
	*o = (mm_image_opts){MM_ODE_HEUN, 50, 1, (float)MM_CFG_FROM, 1, 0};
}

// The ODE state of one mm_sampler_image call.
typedef struct ode {
	mm_sampler *s;
	const mm_image_opts *o;
	int ns, n; // conditional slots; values per image set (ns NP P)
	int *slots; // the conditional slots, then the unconditional ones
	float *zin, *xp; // (2 ns, NP, P)
} ode;

// x (ns, NP, P) = x_pred of the conditional slots at (z, t), guided by the unconditional ones
// when t is in the interval; with v, the velocity (x - z) / max(1 - t, floor) instead.
static int denoised(ode *e, const float *z, float t, float *x, int v)
{
	const mm_image_opts *o = e->o;
	int guided = o->cfg != 1 && t >= o->cfg_lo && t <= o->cfg_hi, n = e->n;
	memcpy(e->zin, z, (size_t)n * sizeof *z);
	if (guided)
		memcpy(e->zin + n, z, (size_t)n * sizeof *z);
	int rc = mm_sampler_denoise(e->s, guided ? 2 * e->ns : e->ns, e->slots, e->zin, t, o->recompute, e->xp);
	if (rc)
		return rc;
	float sc = 1 - t > (float)MM_T_FLOOR ? 1 - t : (float)MM_T_FLOOR, g = o->cfg;
	const float *xc = e->xp, *xu = e->xp + n;
	for (int i = 0; i < n; i++) {
		float xi = guided ? xu[i] + g * (xc[i] - xu[i]) : xc[i];
		x[i] = v ? (xi - z[i]) / sc : xi;
	}
	return 0;
}

static int velocity(ode *e, const float *z, float t, float *v) { return denoised(e, z, t, v, 1); }

// Level i of the N-step grid, shifted toward noise by the model's noise shift.
static float grid_t(int i, int N, float shift)
{
	return mm_shift_t((float)((double)i / N), shift);
}

// DPM-Solver++(2M) on z_t = t x + (1 - t) eps: alpha = t, sigma = 1 - t, lambda = log(t / (1 - t)).
// A step from t0 to t1 with h = lambda1 - lambda0 is
//     z1 = (sigma1 / sigma0) z0 + alpha1 (1 - e^-h) D,
// D = x0 (first order: the first step, whose h is infinite from pure noise, the second, whose
// previous h is, and the last, into t = 1, where h is) or, from the previous x_pred x_,
// D = (1 + 1 / 2r) x0 - (1 / 2r) x_ with r = h_ / h. One model call a step.
static int integrate_dpm(ode *e, float *z, float *x0, float *xprev)
{
	const mm_image_opts *o = e->o;
	int N = o->steps, n = e->n, rc = 0;
	float shift = mm_noise_shift(mm_model_config(mm_sampler_model(e->s)));
	double hprev = INFINITY;
	for (int i = 0; i < N && !rc; i++) {
		double t0 = grid_t(i, N, shift), t1 = grid_t(i + 1, N, shift);
		if ((rc = denoised(e, z, (float)t0, x0, 0)))
			break;
		// e^-h = (t0 (1 - t1)) / (t1 (1 - t0)); 0 from t0 = 0 or into t1 = 1
		double emh = t0 > 0 && t1 < 1 ? t0 * (1 - t1) / (t1 * (1 - t0)) : 0;
		double h = emh > 0 ? -log(emh) : INFINITY;
		float a = (float)((1 - t1) / (1 - t0)), b = (float)(t1 * (1 - emh));
		if (isfinite(h) && isfinite(hprev)) {
			float c = (float)(0.5 * h / hprev); // 1 / 2r
			for (int j = 0; j < n; j++)
				z[j] = a * z[j] + b * ((1 + c) * x0[j] - c * xprev[j]);
		} else {
			for (int j = 0; j < n; j++)
				z[j] = a * z[j] + b * x0[j];
		}
		memcpy(xprev, x0, (size_t)n * sizeof *x0);
		hprev = h;
	}
	return rc;
}

static int integrate(ode *e, float *z, float *v1, float *v2, float *ze)
{
	const mm_image_opts *o = e->o;
	int N = o->steps, n = e->n, rc = 0;
	float shift = mm_noise_shift(mm_model_config(mm_sampler_model(e->s)));
	for (int i = 0; i < N && !rc; i++) {
		float t0 = grid_t(i, N, shift), t1 = grid_t(i + 1, N, shift), dt = t1 - t0;
		if ((rc = velocity(e, z, t0, v1)))
			break;
		if (o->method == MM_ODE_EULER || i + 1 == N) {
			for (int j = 0; j < n; j++)
				z[j] += dt * v1[j];
			continue;
		}
		for (int j = 0; j < n; j++)
			ze[j] = z[j] + dt * v1[j];
		if ((rc = velocity(e, ze, t1, v2)))
			break;
		for (int j = 0; j < n; j++)
			z[j] += dt * 0.5f * (v1[j] + v2[j]);
	}
	return rc;
}

int mm_sampler_image(mm_sampler *s, int ns, const int *slots, const int *uncond, const mm_image_opts *o,
		     float *z)
{
	if (o->method != MM_ODE_EULER && o->method != MM_ODE_HEUN && o->method != MM_ODE_DPM2M)
		return mm_fail(MM_EINVAL, "sampler: unknown ODE method %d", o->method);
	if (o->steps < 1 || o->steps > 1000000)
		return mm_fail(MM_EINVAL, "sampler: %d steps not in [1, 1000000]", o->steps);
	if (!isfinite(o->cfg) || !(o->cfg_lo <= o->cfg_hi))
		return mm_fail(MM_EINVAL, "sampler: guidance %g on [%g, %g]", o->cfg, o->cfg_lo, o->cfg_hi);
	int guided = o->cfg != 1;
	if (guided && !uncond)
		return mm_fail(MM_EINVAL, "sampler: guidance without unconditional slots");
	int rc = check_image(s, 0);
	if (!rc)
		rc = check_slots(s, ns, slots, s->NP);
	if (rc)
		return rc;
	ode e = {s, o, ns, ns * s->NP * s->P, NULL, NULL, NULL};
	size_t n = (size_t)e.n;
	e.slots = malloc(2 * (size_t)ns * sizeof *e.slots);
	float *buf = malloc(7 * n * sizeof *buf);
	if (!e.slots || !buf) {
		free(e.slots);
		free(buf);
		return mm_fail(MM_ENOMEM, "sampler: out of memory");
	}
	memcpy(e.slots, slots, (size_t)ns * sizeof *slots);
	if (guided)
		memcpy(e.slots + ns, uncond, (size_t)ns * sizeof *uncond);
	e.zin = buf, e.xp = buf + 2 * n;
	rc = guided ? check_slots(s, 2 * ns, e.slots, s->NP) : 0;
	if (!rc)
		rc = o->method == MM_ODE_DPM2M ? integrate_dpm(&e, z, buf + 4 * n, buf + 5 * n)
					       : integrate(&e, z, buf + 4 * n, buf + 5 * n, buf + 6 * n);
	free(e.slots);
	free(buf);
	return rc;
}

void mm_pixels_from_float(const float *x, size_t n, uint8_t *px)
{
	for (size_t i = 0; i < n; i++) {
		float v = floorf((x[i] + 1) * 127.5f + 0.5f);
		px[i] = !(v > 0) ? 0 : v >= 255 ? 255 : (uint8_t)v; // NaN lands on 0
	}
}

void mm_pixels_to_float(const uint8_t *px, size_t n, float *x)
{
	for (size_t i = 0; i < n; i++)
		x[i] = (float)(px[i] / 127.5 - 1.0); // exactly as the training loader
}
