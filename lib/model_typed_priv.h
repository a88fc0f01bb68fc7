// The model's forward and backward, written once over a scalar type like kernels_typed_priv.h:
// lib/model.c compiles them in float, tests/test_model.c in double for the whole-model
// gradient check. Define REAL and KFN as for kernels_typed_priv.h; the kernels of that type must be
// declared. Buffers of type REAL follow the model's layouts (m->pl, m->al); the index lists
// come from mm_model_prepare, which must have accepted the batch. The embedding (model_embed)
// and the block (model_block_forward) are also the sampler's (lib/sample.c, in float): one
// Transformer for training and inference.
#include <string.h>

#include "model_state_priv.h"
#include "typed_names_priv.h"

// A tensor's copy for layer l, and an activation's copy l.
#define PRM(base, name, l) ((base) + m->pl.off.name + (size_t)(l) * m->pl.len.name)
#define ACT(name, l) (A + m->al.off.name + (size_t)(l) * m->al.len.name)

static void zero(REAL *x, size_t n)
{
	memset(x, 0, n * sizeof *x);
}

// See mm_model_embed (model_state_priv.h): training and the sampler embed here.
void model_embed(const mm_model *m, const REAL *P, REAL *x, const int32_t *tok, int N, int ni,
		      const int32_t *rows, const int32_t *patch, const REAL *zs, const REAL *ts,
		      REAL *u, REAL *ft, REAL *emb, REAL *tmp)
{
	const mm_config *c = &m->c;
	int D = c->dim, PD = m->P, K = c->bottleneck;
	embedding_forward(x, PRM(P, tok_emb, 0), tok, N, D);
	if (!ni)
		return;
	if (K) {
		matmul_forward(u, zs, PRM(P, pe_w1, 0), NULL, ni, PD, K);
		matmul_forward(emb, u, PRM(P, pe_w2, 0), PRM(P, pe_b, 0), ni, K, D);
	} else {
		matmul_forward(emb, zs, PRM(P, pe_w, 0), PRM(P, pe_b, 0), ni, PD, D);
	}
	timestep_forward(ft, ts, ni);
	matmul_forward(tmp, ft, PRM(P, t_w, 0), PRM(P, t_b, 0), ni, 64, D);
	residual_forward(emb, emb, tmp, (size_t)ni * D);
	embedding_forward(tmp, PRM(P, pos2d, 0), patch, ni, D);
	residual_forward(emb, emb, tmp, (size_t)ni * D);
	embedding_backward(x, emb, rows, ni, D); // image rows of x are zero: add emb there
}

// Keys and values of a cache's spans: rows row0.. of src go to positions start.. of their slot.
static void model_cache_store(REAL *cache, const REAL *src, const block_io *io, int D)
{
	for (int i = 0; i < io->nsp; i++) {
		const mm_span *sp = &io->sp[i];
		memcpy(cache + ((size_t)sp->slot * io->T + sp->start) * D, src + (size_t)sp->row0 * D,
		       (size_t)sp->n * D * sizeof *src);
	}
}

// The block of lib/model.h for layer l, over io's buffers (model_state_priv.h): attention over this
// batch's rows (training) or over the cache (inference). Its input norm h1 is already computed:
// the previous block fuses it with its last residual sum (hnext), as the caller does for block 0.
void model_block_forward(const mm_model *m, const REAL *P, int l, const block_io *io)
{
	const mm_config *c = &m->c;
	int N = io->N, D = c->dim, F = c->mlp, H = c->heads, hd = m->hd, qk = c->qk_norm;
	REAL *qr = qk ? io->qr : io->q, *kr = qk ? io->kr : io->k;
	// One product for q, k and v; the kernels after it take each as its own (N, D) array.
	matmul_forward(io->qkv, io->h1, PRM(P, wqkv, l), NULL, N, D, 3 * D);
#pragma omp parallel for schedule(static) if (N >= 64)
	for (int r = 0; r < N; r++) {
		const REAL *src = io->qkv + (size_t)r * 3 * D;
		memcpy(qr + (size_t)r * D, src, (size_t)D * sizeof *src);
		memcpy(kr + (size_t)r * D, src + D, (size_t)D * sizeof *src);
		memcpy(io->v + (size_t)r * D, src + 2 * D, (size_t)D * sizeof *src);
	}
	if (qk) { // per head: N*H rows of hd
		rmsnorm_forward(io->q, io->qrstd, qr, PRM(P, q_norm, l), N * H, hd);
		rmsnorm_forward(io->k, io->krstd, kr, PRM(P, k_norm, l), N * H, hd);
	}
	rope_forward(io->q, io->cosb, io->sinb, N, H, hd);
	rope_forward(io->k, io->cosb, io->sinb, N, H, hd);
	if (io->kc) {
		model_cache_store(io->kc, io->k, io, D);
		model_cache_store(io->vc, io->v, io, D);
		attention_cached(io->a, io->scores, io->nbuf, io->q, io->kc, io->vc, io->doc,
				      io->img, io->sp, io->nsp, io->T, H, hd);
	} else {
		attention_forward(io->a, io->att, io->scores, io->nbuf, io->q, io->k, io->v, io->doc, io->img,
				       io->B, io->T, H, hd);
	}
	matmul_forward(io->tmp, io->a, PRM(P, wo, l), NULL, N, D, D);
	residual_rmsnorm_forward(io->mid, io->x, io->tmp, io->h2, io->rstd2, PRM(P, mlp_norm, l),
				      N, D);

	matmul_forward(io->g13, io->h2, PRM(P, w13, l), NULL, N, D, 2 * F);
	swiglu_forward(io->s, io->g13, N, F);
	matmul_forward(io->tmp, io->s, PRM(P, w2, l), NULL, N, F, D);
	if (io->hnext)
		residual_rmsnorm_forward(io->xout, io->mid, io->tmp, io->hnext, io->rstdnext,
					      PRM(P, attn_norm, l + 1), N, D);
	else
		residual_forward(io->xout, io->mid, io->tmp, (size_t)N * D);
}

// Forward of a prepared batch; the losses land in m->loss*.
static void model_forward_pass(mm_model *m, const REAL *P, REAL *A, const mm_batch *b)
{
	const mm_config *c = &m->c;
	int N = m->B * m->T, D = c->dim, L = c->layers, V = c->vocab, nt = m->nt, ni = m->ni;
	int PD = m->P;
	REAL *x0 = ACT(res, 0), *y = ACT(y, 0), *zs = ACT(zs, 0), *xs = ACT(xs, 0), *ts = ACT(ts, 0);
	for (int i = 0; i < ni; i++) { // image positions' z, x, t into contiguous rows
		size_t r = (size_t)m->img_rows[i];
		for (int p = 0; p < PD; p++) {
			zs[(size_t)i * PD + p] = b->z[r * PD + p];
			xs[(size_t)i * PD + p] = b->x[r * PD + p];
		}
		ts[i] = b->t[r];
	}
	model_embed(m, P, x0, m->tok_ids, N, ni, m->img_rows, m->img_patch, zs, ts, ACT(u, 0),
			 ACT(ft, 0), ACT(emb, 0), ACT(tmp, 0));
	rope_table(ACT(rope_cos, 0), ACT(rope_sin, 0), b->pos, N, m->hd);
	rmsnorm_forward(ACT(h1, 0), ACT(rstd1, 0), x0, PRM(P, attn_norm, 0), N, D);
	for (int l = 0; l < L; l++) {
		block_io io = {
			.N = N, .x = ACT(res, l), .xout = ACT(res, l + 1), .h1 = ACT(h1, l),
			.rstd1 = ACT(rstd1, l), .cosb = ACT(rope_cos, 0), .sinb = ACT(rope_sin, 0),
			.qr = ACT(qr, l), .kr = ACT(kr, l), .qrstd = ACT(qrstd, l), .krstd = ACT(krstd, l),
			.q = ACT(q, l), .k = ACT(k, l), .v = ACT(v, l), .a = ACT(a, l), .mid = ACT(mid, l),
			.rstd2 = ACT(rstd2, l), .h2 = ACT(h2, l), .qkv = ACT(qkv, 0), .g13 = ACT(g13, l),
			.s = ACT(s, 0), .tmp = ACT(tmp, 0),
			.hnext = l + 1 < L ? ACT(h1, l + 1) : NULL,
			.rstdnext = l + 1 < L ? ACT(rstd1, l + 1) : NULL,
			.doc = b->doc, .img = b->img, .B = m->B, .T = m->T, .att = ACT(att, l),
			.scores = ACT(attbuf, 0), .nbuf = m->nth,
		};
		model_block_forward(m, P, l, &io);
	}
	rmsnorm_forward(y, ACT(rstdf, 0), ACT(res, L), PRM(P, final_norm, 0), N, D);

	// The LM head only where a target needs it: typically a fifth of the positions.
	double lt = 0, li = 0;
	if (nt) {
		REAL *yt = ACT(yt, 0), *ce = ACT(ce, 0);
		embedding_forward(yt, y, m->text_rows, nt, D);
		matmul_forward(ACT(logits, 0), yt, PRM(P, lm_head, 0), NULL, nt, D, V);
		crossentropy_forward(ce, ACT(lse, 0), ACT(logits, 0), m->text_tgt, nt, V);
		for (int i = 0; i < nt; i++)
			lt += ce[i];
		lt /= nt;
	}
	if (ni) {
		REAL *yi = ACT(yi, 0), *mse = ACT(mse, 0);
		embedding_forward(yi, y, m->img_rows, ni, D);
		matmul_forward(ACT(xpred, 0), yi, PRM(P, ph_w, 0), PRM(P, ph_b, 0), ni, D, m->P);
		vmse_forward(mse, ACT(xpred, 0), ACT(xs, 0), ACT(zs, 0), ACT(ts, 0), ni, m->P);
		for (int i = 0; i < ni; i++)
			li += mse[i];
		li /= (double)ni * m->P;
	}
	m->loss_text = lt;
	m->loss_image = li;
	m->loss = lt + (double)c->image_weight * li;
}

// dres holds dL/d(res[l+1]) on entry and dL/d(res[l]) on return.
static void model_block_backward(mm_model *m, const REAL *P, REAL *G, REAL *A, int l)
{
	const mm_config *c = &m->c;
	int N = m->B * m->T, D = c->dim, F = c->mlp, H = c->heads, hd = m->hd;
	size_t ND = (size_t)N * D, NF = (size_t)N * F;
	REAL *dres = ACT(dres, 0), *dh = ACT(dh, 0), *s = ACT(s, 0), *ds = ACT(ds, 0);
	REAL *dg13 = ACT(dg13, 0), *g13 = ACT(g13, l), *h2 = ACT(h2, l);

	// MLP: res[l+1] = mid + w2 @ swiglu(w13 @ h2), h2 = rmsnorm(mid)
	swiglu_forward(s, g13, N, F); // recomputed rather than kept per layer
	zero(ds, NF);
	matmul_backward(ds, PRM(G, w2, l), NULL, dres, s, PRM(P, w2, l), N, F, D);
	zero(dg13, 2 * NF);
	swiglu_backward(dg13, ds, g13, N, F);
	zero(dh, ND);
	matmul_backward(dh, PRM(G, w13, l), NULL, dg13, h2, PRM(P, w13, l), N, D, 2 * F);
	rmsnorm_backward(dres, PRM(G, mlp_norm, l), dh, ACT(mid, l), ACT(rstd2, l),
			      PRM(P, mlp_norm, l), N, D);

	// attention: mid = res[l] + wo @ attention(q, k, v), q k v from h1 = rmsnorm(res[l])
	REAL *da = ACT(da, 0), *dq = ACT(dq, 0), *dk = ACT(dk, 0), *dv = ACT(dv, 0), *h1 = ACT(h1, l);
	zero(da, ND);
	matmul_backward(da, PRM(G, wo, l), NULL, dres, ACT(a, l), PRM(P, wo, l), N, D, D);
	zero(dq, ND);
	zero(dk, ND);
	zero(dv, ND);
	attention_backward(dq, dk, dv, ACT(attbuf, 0), m->nth, da, ACT(att, l), ACT(q, l), ACT(k, l),
				ACT(v, l), m->doc, m->img, m->B, m->T, H, hd);
	rope_backward(dq, ACT(rope_cos, 0), ACT(rope_sin, 0), N, H, hd);
	rope_backward(dk, ACT(rope_cos, 0), ACT(rope_sin, 0), N, H, hd);
	if (c->qk_norm) {
		REAL *dqr = ACT(dqr, 0), *dkr = ACT(dkr, 0);
		zero(dqr, ND);
		zero(dkr, ND);
		rmsnorm_backward(dqr, PRM(G, q_norm, l), dq, ACT(qr, l), ACT(qrstd, l),
				      PRM(P, q_norm, l), N * H, hd);
		rmsnorm_backward(dkr, PRM(G, k_norm, l), dk, ACT(kr, l), ACT(krstd, l),
				      PRM(P, k_norm, l), N * H, hd);
		dq = dqr, dk = dkr;
	}
	// dq, dk, dv side by side as the rows of wqkv's product: one product for dh and dwqkv.
	REAL *dqkv = ACT(dqkv, 0);
#pragma omp parallel for schedule(static) if (N >= 64)
	for (int r = 0; r < N; r++) {
		REAL *dst = dqkv + (size_t)r * 3 * D;
		memcpy(dst, dq + (size_t)r * D, (size_t)D * sizeof *dst);
		memcpy(dst + D, dk + (size_t)r * D, (size_t)D * sizeof *dst);
		memcpy(dst + 2 * D, dv + (size_t)r * D, (size_t)D * sizeof *dst);
	}
	zero(dh, ND);
	matmul_backward(dh, PRM(G, wqkv, l), NULL, dqkv, h1, PRM(P, wqkv, l), N, D, 3 * D);
	rmsnorm_backward(dres, PRM(G, attn_norm, l), dh, ACT(res, l), ACT(rstd1, l),
			      PRM(P, attn_norm, l), N, D);
}

// Adds dL/dparams of the last forward to G.
static void model_backward_pass(mm_model *m, const REAL *P, REAL *G, REAL *A)
{
	const mm_config *c = &m->c;
	int N = m->B * m->T, D = c->dim, L = c->layers, V = c->vocab, nt = m->nt, ni = m->ni;
	int PD = m->P, K = c->bottleneck;
	size_t ND = (size_t)N * D;
	REAL *dy = ACT(dh, 0), *dres = ACT(dres, 0);

	zero(dy, ND);
	if (nt) {
		REAL *dlogits = ACT(dlogits, 0), *dyt = ACT(dyt, 0);
		zero(dlogits, (size_t)nt * V);
		crossentropy_backward(dlogits, ACT(logits, 0), ACT(lse, 0), m->text_tgt,
					   (REAL)(1.0 / m->nt_norm), nt, V);
		zero(dyt, (size_t)nt * D);
		matmul_backward(dyt, PRM(G, lm_head, 0), NULL, dlogits, ACT(yt, 0),
				     PRM(P, lm_head, 0), nt, D, V);
		embedding_backward(dy, dyt, m->text_rows, nt, D);
	}
	if (ni) {
		REAL *dxpred = ACT(dxpred, 0), *dyi = ACT(dyi, 0);
		zero(dxpred, (size_t)ni * PD);
		vmse_backward(dxpred, ACT(xpred, 0), ACT(xs, 0), ACT(zs, 0), ACT(ts, 0),
				   (REAL)(c->image_weight / (m->ni_norm * PD)), ni, PD);
		zero(dyi, (size_t)ni * D);
		matmul_backward(dyi, PRM(G, ph_w, 0), PRM(G, ph_b, 0), dxpred, ACT(yi, 0),
				     PRM(P, ph_w, 0), ni, D, PD);
		embedding_backward(dy, dyi, m->img_rows, ni, D);
	}
	zero(dres, ND);
	rmsnorm_backward(dres, PRM(G, final_norm, 0), dy, ACT(res, L), ACT(rstdf, 0),
			      PRM(P, final_norm, 0), N, D);
	for (int l = L - 1; l >= 0; l--)
		model_block_backward(m, P, G, A, l);

	embedding_backward(PRM(G, tok_emb, 0), dres, m->tok_ids, N, D);
	if (ni) {
		REAL *demb = ACT(tmp, 0);
		embedding_forward(demb, dres, m->img_rows, ni, D);
		matmul_backward(NULL, PRM(G, t_w, 0), PRM(G, t_b, 0), demb, ACT(ft, 0),
				     PRM(P, t_w, 0), ni, 64, D);
		embedding_backward(PRM(G, pos2d, 0), demb, m->img_patch, ni, D);
		if (K) {
			REAL *du = ACT(du, 0);
			zero(du, (size_t)ni * K);
			matmul_backward(du, PRM(G, pe_w2, 0), PRM(G, pe_b, 0), demb, ACT(u, 0),
					     PRM(P, pe_w2, 0), ni, K, D);
			matmul_backward(NULL, PRM(G, pe_w1, 0), NULL, du, ACT(zs, 0),
					     PRM(P, pe_w1, 0), ni, PD, K);
		} else {
			matmul_backward(NULL, PRM(G, pe_w, 0), PRM(G, pe_b, 0), demb, ACT(zs, 0),
					     PRM(P, pe_w, 0), ni, PD, D);
		}
	}
}

#undef PRM
#undef ACT
