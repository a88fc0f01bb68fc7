// The model's kernels in float: plain functions over row-major arrays, each with its shapes.
// Every *_backward accumulates (+=) into the gradients it is given (the caller zeroes them);
// a NULL gradient pointer, where allowed, skips that gradient. Results do not depend on the
// number of OpenMP threads. The code lives in kernels_typed_priv.h, written over a scalar type so
// that tests can run the same kernels in double.
//
// Threads: everything runs on the OpenMP threads (mm_threads_set). Matmuls split their
// rows across them and call the BLAS from each, so OpenBLAS itself must run single-threaded
// (openblas_set_num_threads(1); mm_model_new and mm_threads_set do it): OpenBLAS's own threads
// would compete with idle OpenMP threads for the cores.
#ifndef MM_KERNELS_H
#define MM_KERNELS_H

#include <stddef.h>
#include <stdint.h>

// The threads of training, sampling and evaluation: n OpenMP threads (n <= 0: one per
// processor), each calling a single-threaded OpenBLAS. One thread pool, never two spinning on
// the same cores.
void mm_threads_set(long long n);

// The spin count at OpenMP's barriers that every program linking the kernels runs with (as
// GOMP_SPINCOUNT, unless the environment sets OMP_WAIT_POLICY or GOMP_SPINCOUNT; lib/kernels.c
// says how and why): short enough that a thread waiting for a preempted partner soon sleeps and
// hands the core over, long enough that a run alone rarely sleeps between two loops.
#define MM_SPINCOUNT "1000"

// out (N, OC) = inp (N, C) @ w^T + bias; w (OC, C), bias (OC) or NULL. Through cblas_sgemm.
void mm_matmul_forward(float *out, const float *inp, const float *w, const float *bias, int N, int C,
		       int OC);
// dinp (N, C) += dout @ w; dw (OC, C) += dout^T @ inp; dbias (OC) += column sums of dout.
// dout (N, OC). Each of dinp, dw, dbias may be NULL.
void mm_matmul_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
			const float *w, int N, int C, int OC);

// out (N, C) = inp / sqrt(mean(inp^2) + 1e-5) * w, w (C); rstd (N) keeps the 1/sqrt for backward.
// Also per head: (N*H, hd) rows with w (hd). out may be inp.
void mm_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int N, int C);
// y (N, C) = x + b, then out = rmsnorm(y) as mm_rmsnorm_forward, in one pass over the rows: the
// bits of mm_residual_forward followed by mm_rmsnorm_forward. y may be x.
void mm_residual_rmsnorm_forward(float *y, const float *x, const float *b, float *out, float *rstd,
				 const float *w, int N, int C);
// dinp (N, C) += ..., dw (C) += ... (dw may be NULL).
void mm_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp,
			 const float *rstd, const float *w, int N, int C);

// Rotary tables cosb, sinb (N, hd/2): angle pos[n] * 10000^(-2i/hd) for the pair i.
void mm_rope_table(float *cosb, float *sinb, const int32_t *pos, int N, int hd);
// x (N, H*hd) rotated in place: the pair (2i, 2i+1) of each head by the angle of row n, pair i.
void mm_rope_forward(float *x, const float *cosb, const float *sinb, int N, int H, int hd);
// dx (N, H*hd) in place: dL/d(rotated) on entry, dL/d(input) on return (the rotation is linear).
void mm_rope_backward(float *dx, const float *cosb, const float *sinb, int N, int H, int hd);

// Queries per block of the attentions: a score buffer is (MM_ATT_QB, T).
#define MM_ATT_QB 64
// q, k, v, out (B*T, H*hd), head h in columns h*hd..; doc, img (B, T) give the mask of
// lib/model.h. lse (B, H, T) receives each query's log-sum-exp of its scores, which the backward
// reads. Block by block: per (row, head) and block of MM_ATT_QB queries, the scores of only the
// keys their documents and images allow at most (from the first key of the first query's
// document to the last query, or to the end of its image), never a (T, T) matrix. scratch holds
// nbuf buffers of (2, MM_ATT_QB, T), one per thread: at most nbuf threads run, and the result does
// not depend on how many.
void mm_attention_forward(float *out, float *lse, float *scratch, int nbuf, const float *q, const float *k,
			  const float *v, const int32_t *doc, const int32_t *img, int B, int T, int H, int hd);
// A span of new positions: positions [start, start + n) of the document in cache slot `slot`,
// held in rows [row0, row0 + n) of the queries.
typedef struct mm_span {
	int slot, start, n, row0;
} mm_span;
// Attention of the rows of nsp spans over the keys and values of their documents: kc, vc
// (S, T, H*hd) hold, for slot s, the keys (normed, rotated) and values of its positions up to
// the end of its span (the span's own already written); doc, img (S, T) give the mask of
// lib/model.h. q, out (rows, H*hd). scores holds nbuf buffers of (MM_ATT_QB, T), one per thread:
// at most nbuf threads run.
void mm_attention_cached(float *out, float *scores, int nbuf, const float *q, const float *kc,
			 const float *vc, const int32_t *doc, const int32_t *img, const mm_span *sp,
			 int nsp, int T, int H, int hd);
// dq, dk, dv (B*T, H*hd) += gradients from dout (B*T, H*hd), with lse and the inputs of the
// forward, over the same blocks; scratch and nbuf as in the forward.
void mm_attention_backward(float *dq, float *dk, float *dv, float *scratch, int nbuf, const float *dout,
			   const float *lse, const float *q, const float *k, const float *v, const int32_t *doc,
			   const int32_t *img, int B, int T, int H, int hd);

// Over the rows of w13's product g (N, 2F), gate then up: out (N, F) = silu(g[:, :F]) * g[:, F:].
void mm_swiglu_forward(float *out, const float *g, int N, int F);
// dg (N, 2F) += the gradients of both halves from dout (N, F).
void mm_swiglu_backward(float *dg, const float *dout, const float *g, int N, int F);

// logits (N, V), targets (N) with -1 = no loss. losses (N): -log softmax(logits)[target], 0 for
// rows without a target; lse (N): log-sum-exp of each row, kept for backward.
void mm_crossentropy_forward(float *losses, float *lse, const float *logits, const int32_t *targets,
			     int N, int V);
// dlogits (N, V) += dloss * (softmax(logits) - onehot(target)) on rows with a target.
void mm_crossentropy_backward(float *dlogits, const float *logits, const float *lse,
			      const int32_t *targets, float dloss, int N, int V);

// x-prediction loss in velocity space. xpred, x, z (N, P), t (N):
// losses[n] = sum_p ((xpred - z) / s - (x - z) / s)^2, s = max(1 - t[n], MM_T_FLOOR).
void mm_vmse_forward(float *losses, const float *xpred, const float *x, const float *z,
		     const float *t, int N, int P);
// dxpred (N, P) += dloss * d(losses[n])/d(xpred).
void mm_vmse_backward(float *dxpred, const float *xpred, const float *x, const float *z,
		      const float *t, float dloss, int N, int P);

// Row gather: out (N, C) = table[ids[n]], a zero row where ids[n] < 0. Also gathers rows of a
// (rows, C) activation into a contiguous slab.
void mm_embedding_forward(float *out, const float *table, const int32_t *ids, int N, int C);
// Row scatter-add: dtable[ids[n]] += dout[n] (rows with ids[n] < 0 skipped); ids may repeat.
void mm_embedding_backward(float *dtable, const float *dout, const int32_t *ids, int N, int C);

// Noise-level features out (N, 64): sin(1000 t w_k), then cos(1000 t w_k), w_k = 10000^(-k/32).
void mm_timestep_forward(float *out, const float *t, int N);

// out = a + b over n values (out may be a or b); backward: da += dout, db += dout.
void mm_residual_forward(float *out, const float *a, const float *b, size_t n);
void mm_residual_backward(float *da, float *db, const float *dout, size_t n);

#endif
