// The mm model: one Transformer over interleaved text tokens and raw image patches.
//
// This comment is the model's specification; tests/ref/model.py implements the same in
// PyTorch, and tests/test_model.c checks one against the other tensor by tensor.
//
// Shapes: B rows of T positions, D = dim, H heads of hd = D/H, F = SwiGLU hidden, V = vocab,
// P = patch_dim = patch*patch*channels, NP = patches per image, K = patch bottleneck (0: none).
//
// Inputs per position (mm_batch, see batch.h): a text position carries a token id; an image
// position carries its patch's noised pixels z (P floats in [-1, 1] scaled space), its patch
// index in the image (raster order), and its image's noise level t in [0, 1] (t = 1 is clean).
//
// Embedding, for each position:
//   text:  e = tok_emb[token]                                             (V, D) table
//   image: e = pe(z) + pos2d[patch_index] + temb(t)
//          pe(z)   = pe_w2 @ (pe_w1 @ z) + pe_b    with K > 0   (pe_w1 (K, P), pe_w2 (D, K))
//                  = pe_w @ z + pe_b               with K = 0   (pe_w (D, P)), pe_b (D)
//          temb(t) = t_w @ f(t) + t_b, t_w (D, 64), t_b (D), where f(t) is 64 fixed features:
//                    f[k] = sin(1000 t w_k), f[32 + k] = cos(1000 t w_k), w_k = 10000^(-k/32),
//                    k = 0..31
// Blocks (L of them), x the residual stream (B, T, D):
//   h = rmsnorm(x) * attn_norm                    rmsnorm(x) = x / sqrt(mean(x^2) + 1e-5)
//   [q | k | v] = h @ wqkv^T                      wqkv (3D, D), no bias: rows 0..D-1 give q,
//                                                 D..2D-1 k, 2D..3D-1 v; each split into H heads
//   with qk_norm: q_h = rmsnorm(q_h) * q_norm, k_h = rmsnorm(k_h) * k_norm   (hd weights, per layer)
//   rotary on q and k: the pair (2i, 2i+1) of each head is rotated by angle pos * 10000^(-2i/hd),
//     pos = the position's offset from the start of its document in the row
//   attention: a = softmax(q k^T / sqrt(hd) + mask) v, per head; x += concat(a) @ wo^T
//   mask: position i may attend to j iff j == i, or doc[i] >= 0 and doc[j] == doc[i] and
//     (j < i or (img[i] >= 0 and img[j] == img[i])): causal, bidirectional inside one image,
//     never across documents; padding (doc = -1) attends only to itself.
//   h = rmsnorm(x) * mlp_norm;  [g | u] = h @ w13^T;  x += (silu(g) * u) @ w2^T
//     w13 (2F, D): rows 0..F-1 the gate (g), F..2F-1 the up projection (u); w2 (D, F)
// Heads: y = rmsnorm(x) * final_norm
//   text positions with a target: logits = y @ lm_head^T                   lm_head (V, D)
//   image positions:              x_pred = y @ ph_w^T + ph_b               ph_w (P, D), ph_b (P)
// Losses:
//   L_text  = mean over positions with target >= 0 of cross-entropy(logits, target)
//   L_image = mean over image positions and their P values of
//             ((x_pred - z) / s - (x - z) / s)^2,  s = max(1 - t, MM_T_FLOOR = 0.05)
//             (x-prediction, v-space MSE)
//   L = L_text + image_weight * L_image   (a term with no positions counts 0)
#ifndef MM_MODEL_H
#define MM_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "batch.h"

typedef struct mm_config {
	int dim, layers, heads, mlp; // D, L, H, F
	int vocab;                   // V
	int img_h, img_w, img_c, patch; // image geometry (all 0: text-only model)
	int bottleneck;              // K, 0 = plain linear patch embedding
	int qk_norm;                 // 0 or 1
	int seq_len;                 // T, the longest row
	float image_weight;          // lambda
	float noise_shift;           // S: noise levels shifted toward noise (0 means 1: none)
} mm_config;

// The noise shift S moves every noise level t (0 noise, 1 clean) to t' with
// logit(t') = logit(t) - log S: training draws t = sigmoid(MM_T_MU - log S + MM_T_SIGMA n), and
// the samplers' grid i/N becomes t'(i/N). An image of more values keeps more of its signal at a
// given t (its mean over a patch is less noisy), so it needs noisier levels to learn and to
// generate its layout; mm-train's default is S = sqrt(values / 784), at least 1 (1 at 28x28x1,
// the geometry the other defaults were measured on; 3.96 at 64x64x3).
float mm_noise_shift(const mm_config *c);
double mm_noise_shift_default(int img_h, int img_w, int img_c);
float mm_shift_t(float t, float shift);
// The level at which images are read before text (captioning, classification, retrieval): a
// level t given on the scale of 28x28x1, shifted by the model's noise shift as the samplers'
// grid is. Training shows an image before its caption at t' = 0.5 + 0.5 t, t drawn with the
// shift, so the levels a caption learns to read move with it: read at 0.9 unshifted, a 64x64x3
// model (S = 3.96) ranked its own emoji's name first for 34.5% of 200 training emoji, at the
// shifted 0.694 for 52% (0.6: 54.5%, 0.75: 54.5%, 1: 24%).
float mm_read_level(const mm_config *c, float t);

// The parameter tensors, in storage order: X(name, rows, cols, per_layer, kind).
// rows x cols is the shape (cols = 1 for vectors); kind: 'm' matrix (weight decay), 'v' vector
// or embedding table without decay ('e' for embedding tables, decayed like matrices: no).
// A tensor with rows or cols 0 under the configuration is absent (takes no space).
// The same list lays out parameters, gradients and both Adam moments.
#define MM_PARAMS(X, c)                                                                  \
	X(tok_emb, (c)->vocab, (c)->dim, 0, 'e')                                         \
	X(pe_w1, (c)->bottleneck, MM_PDIM(c), 0, 'm')                                    \
	X(pe_w2, (c)->bottleneck ? (c)->dim : 0, (c)->bottleneck, 0, 'm')               \
	X(pe_w, (c)->bottleneck ? 0 : (MM_PDIM(c) ? (c)->dim : 0), MM_PDIM(c), 0, 'm')  \
	X(pe_b, MM_PDIM(c) ? (c)->dim : 0, 1, 0, 'v')                                    \
	X(pos2d, MM_NPATCH(c), (c)->dim, 0, 'e')                                         \
	X(t_w, MM_PDIM(c) ? (c)->dim : 0, 64, 0, 'm')                                    \
	X(t_b, MM_PDIM(c) ? (c)->dim : 0, 1, 0, 'v')                                     \
	X(attn_norm, (c)->dim, 1, 1, 'v')                                                \
	X(wqkv, 3 * (c)->dim, (c)->dim, 1, 'm')                                          \
	X(wo, (c)->dim, (c)->dim, 1, 'm')                                                \
	X(q_norm, (c)->qk_norm ? (c)->dim / (c)->heads : 0, 1, 1, 'v')                   \
	X(k_norm, (c)->qk_norm ? (c)->dim / (c)->heads : 0, 1, 1, 'v')                   \
	X(mlp_norm, (c)->dim, 1, 1, 'v')                                                 \
	X(w13, 2 * (c)->mlp, (c)->dim, 1, 'm')                                           \
	X(w2, (c)->dim, (c)->mlp, 1, 'm')                                                \
	X(final_norm, (c)->dim, 1, 0, 'v')                                               \
	X(lm_head, (c)->vocab, (c)->dim, 0, 'm')                                         \
	X(ph_w, MM_PDIM(c), (c)->dim, 0, 'm')                                            \
	X(ph_b, MM_PDIM(c), 1, 0, 'v')

#define MM_PDIM(c) ((c)->patch ? (c)->patch * (c)->patch * (c)->img_c : 0)
#define MM_NPATCH(c) ((c)->patch ? ((c)->img_h / (c)->patch) * ((c)->img_w / (c)->patch) : 0)

// A parameter tensor (one layer's copy of a per-layer tensor), as listed in storage order.
typedef struct mm_tensor {
	char name[32];  // "tok_emb", or "layers.<l>.<name>" for per-layer tensors
	int layer;      // -1 for a tensor that is not per layer
	int rows, cols; // cols = 1 for vectors
	char kind;      // 'm', 'v' or 'e', as in MM_PARAMS
	size_t offset;  // in values, into the parameters (and the gradients, and each moment)
	size_t size;    // rows * cols
} mm_tensor;

typedef struct mm_model mm_model;

// Checks a configuration (sizes positive and bounded, heads dividing dim into even head sizes,
// image geometry whole patches); MM_EINVAL with a message naming the field otherwise.
int mm_config_check(const mm_config *c);

// Builds a model for batches of up to max_batch rows of up to c->seq_len positions: parameters,
// gradients and activations are allocated here, once. Parameters start at 0: see mm_model_init.
// Threads: the OpenMP ones (omp_set_num_threads); this sets OpenBLAS to one thread (kernels.h).
int mm_model_new(mm_model **m, const mm_config *c, int max_batch);
void mm_model_free(mm_model *m);

const mm_config *mm_model_config(const mm_model *m);
// The parameters and gradients: nparams floats each, laid out as the tensor table says.
size_t mm_model_nparams(const mm_model *m);
float *mm_model_params(mm_model *m);
float *mm_model_grads(mm_model *m);
// The tensor table, in storage order; lookup by name ("layers.0.wqkv"), NULL if absent.
int mm_model_ntensors(const mm_model *m);
const mm_tensor *mm_model_tensors(const mm_model *m);
const mm_tensor *mm_model_find(const mm_model *m, const char *name);

// Initial weights from a seed: matrices and embedding tables normal(0, 0.02), the output
// projections wo and w2 scaled by 1/sqrt(2 layers), norms 1, biases 0. Drawn in the storage
// order of version 1 (below), so that a seed gives the weights it always gave.
void mm_model_init(mm_model *m, uint64_t seed);

// Version 1 of the parameter layout (checkpoint format version 1) had wq, wk, wv (D, D) and
// w1, w3 (F, D) as separate tensors where wqkv and w13 are, each one block of all layers: wq
// of layers 0..L-1, then wk of every layer, and so on. The same values, in another order.
// Reorders p (mm_config_nparams(c) values: parameters, an Adam moment, an EMA) from version 1's
// order to the current one, in place.
void mm_params_from_v1(const mm_config *c, float *p);
// The number of parameters of a model of configuration c (checked by mm_config_check).
size_t mm_config_nparams(const mm_config *c);

// Forward over a batch: both losses; *loss = L (see the top). MM_EINVAL for a batch that does not
// fit the model (sizes, token ids, targets, patch indices, noise levels), naming the position.
int mm_model_forward(mm_model *m, const mm_batch *b, float *loss);
// The two terms of the last forward (0 for a term without positions).
void mm_model_losses(const mm_model *m, float *loss_text, float *loss_image);
// Backward of the last forward: adds dL/dparams to the gradients. Gradients are not zeroed
// here (accumulation over micro-batches is allowed): see mm_model_zero_grad.
int mm_model_backward(mm_model *m);
void mm_model_zero_grad(mm_model *m);
// Data-parallel training: the next backward divides the text and image loss sums by these
// counts (positions with a text target, image positions, of the batches of all ranks
// together) instead of the last forward's own, so that the ranks' gradients add up to the
// gradient of one batch holding all their rows. A forward resets them to its own counts.
void mm_model_set_loss_counts(mm_model *m, double n_text, double n_image);

// Outputs of the last forward, for the positions that have them: *n rows, rows[i] = b*T + t.
// Logits (n, V) only at positions with a target >= 0; x_pred (n, P) at image positions.
const float *mm_model_logits(const mm_model *m, int *n, const int32_t **rows);
const float *mm_model_x_pred(const mm_model *m, int *n, const int32_t **rows);

// mm_config as "key = value" text (stored in checkpoints; lib/config.c). Parsing also checks
// the configuration (mm_config_check).
int mm_config_format(const mm_config *c, char *buf, size_t n);
int mm_config_parse(const char *text, size_t n, const char *name, mm_config *c);

#endif
