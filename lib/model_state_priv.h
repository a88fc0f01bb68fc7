// The model's internals, shared by lib/model.c and the tests (which run the same forward and
// backward in double through model_typed_priv.h). Not part of the installed API.
#ifndef MM_MODEL_STATE_PRIV_H
#define MM_MODEL_STATE_PRIV_H

#include "kernels.h"
#include "model.h"

// Activations and scratch, in one allocation: X(name, copies, values per copy); layer l uses copy l.
// In scope where it expands: L, N (max_batch * seq_len rows), NI (rows of the image slab: N, or
// 0 for a text-only model), D, F, H, T, V, P, K, hd, qk (0 or 1), NT (threads at creation).
#define MM_ACTS(X)                                                                      \
	X(rope_cos, 1, N * (hd / 2))                                                    \
	X(rope_sin, 1, N * (hd / 2))                                                    \
	X(res, L + 1, N * D) /* residual stream into layer l; res[L] leaves the last */ \
	X(mid, L, N * D)           /* residual stream between attention and MLP */      \
	X(rstd1, L, N)                                                                  \
	X(h1, L, N * D)                                                                 \
	X(qr, L, qk * N * D) /* q and k before qk-norm */                               \
	X(kr, L, qk * N * D)                                                            \
	X(qrstd, L, qk * N * H)                                                         \
	X(krstd, L, qk * N * H)                                                         \
	X(q, L, N * D) /* q and k as attention sees them: normed, rotated */            \
	X(k, L, N * D)                                                                  \
	X(v, L, N * D)                                                                  \
	X(att, L, N * H) /* each query's log-sum-exp of its attention scores */         \
	X(a, L, N * D)                                                                  \
	X(rstd2, L, N)                                                                  \
	X(h2, L, N * D)                                                                 \
	X(g13, L, N * 2 * F) /* h2 @ w13^T: gate then up, per row */                    \
	X(rstdf, 1, N)                                                                  \
	X(y, 1, N * D)                                                                  \
	/* image positions gathered into contiguous rows */                             \
	X(zs, 1, NI * P)                                                                \
	X(xs, 1, NI * P)                                                                \
	X(ts, 1, NI)                                                                    \
	X(ft, 1, NI * 64)                                                               \
	X(u, 1, NI * K)                                                                 \
	X(emb, 1, NI * D)                                                               \
	X(yi, 1, NI * D)                                                                \
	X(xpred, 1, NI * P)                                                             \
	X(mse, 1, NI)                                                                   \
	/* text positions with a target, gathered */                                    \
	X(yt, 1, N * D)                                                                 \
	X(logits, 1, N * V)                                                             \
	X(lse, 1, N)                                                                    \
	X(ce, 1, N)                                                                     \
	/* scratch, reused by every layer and not kept from one step to the next */     \
	X(tmp, 1, N * D)                                                                \
	X(qkv, 1, N * 3 * D) /* h1 @ wqkv^T, before it is split into q, k, v */         \
	X(s, 1, N * F)                                                                  \
	X(ds, 1, N * F)                                                                 \
	X(dg13, 1, N * 2 * F)                                                           \
	X(dres, 1, N * D)                                                               \
	X(dh, 1, N * D)                                                                 \
	X(da, 1, N * D)                                                                 \
	X(dq, 1, N * D)                                                                 \
	X(dk, 1, N * D)                                                                 \
	X(dv, 1, N * D)                                                                 \
	X(dqkv, 1, N * 3 * D) /* dq, dk, dv side by side, as wqkv's product */           \
	X(attbuf, 1, NT * 2 * MM_ATT_QB * T) /* one score buffer pair per thread */     \
	X(dqr, 1, qk * N * D)                                                           \
	X(dkr, 1, qk * N * D)                                                           \
	X(dlogits, 1, N * V)                                                            \
	X(dyt, 1, N * D)                                                                \
	X(dyi, 1, NI * D)                                                               \
	X(dxpred, 1, NI * P)                                                            \
	X(du, 1, NI * K)

// Where each tensor starts (off) and the size of one layer's copy (len), in values; the same
// offsets serve params, grads and optimizer moments, and float and double buffers.
typedef struct mm_param_layout {
#define MM_X(name, rows, cols, per_layer, kind) size_t name;
	struct { MM_PARAMS(MM_X, _) } off, len;
#undef MM_X
} mm_param_layout;

typedef struct mm_act_layout {
#define MM_X(name, copies, size) size_t name;
	struct { MM_ACTS(MM_X) } off, len;
#undef MM_X
} mm_act_layout;

struct mm_model {
	mm_config c;
	int max_batch, hd, P, NP;
	mm_param_layout pl;
	mm_act_layout al;
	size_t nparams, nacts;
	mm_tensor *tensors;
	int ntensors;
	float *params, *grads, *acts;
	int32_t *ints; // one allocation for the seven index lists below, N each
	int32_t *tok_ids;    // token id per position, -1 at image and padding-without-token positions
	int32_t *text_rows;  // positions (b*T + t) with a target, in order; text_tgt their targets
	int32_t *text_tgt;
	int32_t *img_rows;   // image positions in order; img_patch their patch indices
	int32_t *img_patch;
	int32_t *doc, *img;  // the last batch's mask, (B, T): the attention backward reads it
	int nth;             // OpenMP threads at creation: attention has a pair of buffers for each
	// the last batch (set by mm_model_prepare)
	int B, T, nt, ni;
	double nt_norm, ni_norm; // the losses' denominators for the backward (nt, ni unless set)
	int forward_done;
	double loss, loss_text, loss_image;
};

// Validates a batch and builds the index lists; the forward of either type follows it.
int mm_model_prepare(mm_model *m, const mm_batch *b);

// One block's buffers, and where its attention finds keys and values: the input of
// model_block_forward (model_typed_priv.h), the one block of training and inference. Training gives
// each layer its own activations (kept for the backward) and this batch's rows as keys and
// values (kc NULL); the sampler gives scratch reused by every layer (x, mid, xout one array;
// h1, h2, hnext another) and its KV cache. Declared for float (mm_) and double (mmd_).
// Shapes: (N, D) unless noted; rstd arrays (N), or (N*H) for qk-norm.
#define MM_BLOCK_IO(R)                                                                         \
	struct {                                                                               \
		int N;                                                                         \
		R *x, *xout;    /* the residual stream in and out (xout may be x) */           \
		R *h1, *rstd1;  /* rmsnorm(x) * attn_norm: already there on entry */           \
		const R *cosb, *sinb; /* (N, hd/2) rotary tables of the rows */                \
		R *qkv, *g13;        /* the products by wqkv and w13, (N, 3D) and (N, 2F) */   \
		R *qr, *kr, *qrstd, *krstd; /* qk-norm: its inputs (may be q, k) and rstd */    \
		R *q, *k, *v, *a;    /* q, k normed and rotated; a the attention's output */    \
		R *mid, *rstd2, *h2; /* after attention: mid = x + a wo^T, h2 its norm */       \
		R *s, *tmp;          /* (N, F) SwiGLU's output; (N, D) */                       \
		R *hnext, *rstdnext; /* rmsnorm(xout) * the next attn_norm; NULL: last block */ \
		const int32_t *doc, *img; /* the mask: (B, T) rows, or (S, T) cache slots */   \
		int B, T;                                                                      \
		R *att;              /* rows: (B, H, T) log-sum-exp of each query's scores */   \
		R *kc, *vc;          /* cache: this layer's (S, T, D), or NULL */               \
		const mm_span *sp;   /* cache: the spans of the rows, row0 from 0 */            \
		int nsp, nbuf;                                                                 \
		R *scores;           /* nbuf buffers: cache (MM_ATT_QB, T), rows (2, MM_ATT_QB, T) */ \
	}
typedef MM_BLOCK_IO(float) mm_block_io;
typedef MM_BLOCK_IO(double) mmd_block_io;

// The block of lib/model.h for layer l over params P (model_typed_priv.h, in float).
void mm_model_block_forward(const mm_model *m, const float *P, int l, const mm_block_io *io);
// The embedding of lib/model.h into x (N, D): tok_emb[tok[n]] (a zero row where tok[n] < 0),
// plus, at the ni image rows rows[i], pe(zs[i]) + pos2d[patch[i]] + temb(ts[i]); zs (ni, P).
// Scratch: u (ni, K), ft (ni, 64), emb and tmp (ni, D).
void mm_model_embed(const mm_model *m, const float *P, float *x, const int32_t *tok, int N, int ni,
		    const int32_t *rows, const int32_t *patch, const float *zs, const float *ts,
		    float *u, float *ft, float *emb, float *tmp);

#endif
