// The model's internals, shared by lib/model.c and the tests (which run the same forward and
// backward in double through model_impl.h). Not part of the installed API.
#ifndef MM_MODEL_PRIV_H
#define MM_MODEL_PRIV_H

#include "model.h"

// Activations and scratch, in one allocation: X(name, copies, values per copy); layer l uses copy l.
// In scope where it expands: L, N (max_batch * seq_len rows), NI (rows of the image slab: N, or
// 0 for a text-only model), D, F, H, T, V, P, K, hd, qk (0 or 1).
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
	X(att, L, N * H * T)                                                            \
	X(a, L, N * D)                                                                  \
	X(rstd2, L, N)                                                                  \
	X(h2, L, N * D)                                                                 \
	X(g1, L, N * F)                                                                 \
	X(g3, L, N * F)                                                                 \
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
	X(s, 1, N * F)                                                                  \
	X(ds, 1, N * F)                                                                 \
	X(dg1, 1, N * F)                                                                \
	X(dg3, 1, N * F)                                                                \
	X(dres, 1, N * D)                                                               \
	X(dh, 1, N * D)                                                                 \
	X(da, 1, N * D)                                                                 \
	X(dq, 1, N * D)                                                                 \
	X(dk, 1, N * D)                                                                 \
	X(dv, 1, N * D)                                                                 \
	X(datt, 1, N * H * T)                                                           \
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
	int32_t *ints; // one allocation for the five index lists below, N each
	int32_t *tok_ids;    // token id per position, -1 at image and padding-without-token positions
	int32_t *text_rows;  // positions (b*T + t) with a target, in order; text_tgt their targets
	int32_t *text_tgt;
	int32_t *img_rows;   // image positions in order; img_patch their patch indices
	int32_t *img_patch;
	// the last batch (set by mm_model_prepare)
	int B, T, nt, ni;
	double nt_norm, ni_norm; // the losses' denominators for the backward (nt, ni unless set)
	int forward_done;
	double loss, loss_text, loss_image;
};

// Validates a batch and builds the index lists; the forward of either type follows it.
int mm_model_prepare(mm_model *m, const mm_batch *b);

#endif
