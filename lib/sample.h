// Inference: a KV cache over the model's weights, text decoding, the image ODE samplers with
// classifier-free guidance, and whole documents generated in batches (the engine of mm-sample).
//
// The sampler holds S slots; a slot is one document being generated, always starting at its
// BOS, so a position's rotary position is its index in the slot. For every cached position it
// keeps the layer's keys and values and the position's inputs (token, or patch pixels z, noise
// level t and image). New positions are appended in spans: a span runs through every layer at
// once, reading the slot's cached keys and values, and the mask is the training mask of
// lib/model.h (causal, bidirectional among the patches of one image). The numbers are those of
// mm_model_forward on the same sequence, up to the rounding of matrix products of other shapes.
//
// Images: the path is z_t = t x + (1 - t) eps, t from 0 (noise) to 1 (clean), on a uniform grid
// of N steps. Each model call gives x_pred for all patches of the image at once (they attend to
// the cached prefix and to each other), and the velocity is v = (x - z) / max(1 - t, 0.05), as
// in training. Euler: z += dt v (N calls). Heun: the Euler guess is corrected with the velocity at
// its end, z += dt (v1 + v2) / 2, except on the last step, which stays an Euler step (2N - 1 calls;
// the correction would evaluate t = 1, where the velocity's divisor is clamped). DPM-Solver++(2M)
// (Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion Probabilistic
// Models"): one call a step, the step exact for an x_pred that is linear in lambda = log(t/(1-t))
// between the last two calls (sample.c, integrate_dpm); no velocity, no clamp. Guidance:
// x = x_u + g (x_c - x_u), x_u from an unconditional slot whose document is BOS BOI (what a
// training document with its caption dropped looks like), run in the same batch as the
// conditional slots; only at calls with t in [cfg_lo, cfg_hi]; g = 1 never runs it.
//
// Determinism: every random number of document i comes from mm_rng stream (seed, index of i),
// so a result depends on the seed, the inputs and the options, not on the other documents.
// Threads: OpenMP's (omp_set_num_threads), each calling a single-threaded OpenBLAS as in
// kernels.h; work is split by shape, so results are the same bytes for any number of threads.
#ifndef MM_SAMPLE_H
#define MM_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

#include "doc.h"
#include "model.h"
#include "rng.h"

typedef struct mm_sampler mm_sampler;

// A sampler over m's weights (m must outlive it; its parameters are read, never written) with
// room for `slots` documents of up to seq_len positions each.
int mm_sampler_new(mm_sampler **s, mm_model *m, int slots);
void mm_sampler_free(mm_sampler *s);
int mm_sampler_slots(const mm_sampler *s);
const mm_model *mm_sampler_model(const mm_sampler *s);
// Positions cached in a slot; mm_sampler_clear empties it.
int mm_sampler_len(const mm_sampler *s, int slot);
void mm_sampler_clear(mm_sampler *s, int slot);

// Appends n[i] tokens to slot slots[i], for ns distinct slots in one batch, and computes the
// logits at each slot's last new position (mm_sampler_logits(s, i)). n[i] = 0 leaves the slot
// as it is and its logits unset. MM_ERANGE when a slot would pass seq_len; MM_EINVAL for a token
// out of the vocabulary.
int mm_sampler_append_tokens(mm_sampler *s, int ns, const int *slots, const int32_t *const *tok,
			     const int *n);
// Copies slot src's cached positions (history, keys and values) into slot dst, which then holds
// the same document: one prefix computed once and continued in several ways.
int mm_sampler_copy(mm_sampler *s, int dst, int src);
// Scores continuations: for each of ns distinct slots, the n[i] >= 1 tokens tok[i] as they
// would be appended; ll[i] = sum over j >= 1 of log p(tok[i][j] | the slot, tok[i][0..j-1])
// (the first token's probability is the caller's, from the logits of the slot's last position).
// Nothing is added to the slots. MM_ERANGE when tokens would pass seq_len.
int mm_sampler_score(mm_sampler *s, int ns, const int *slots, const int32_t *const *tok, const int *n,
		     double *ll);
// Logits (V) at the last position appended to the i-th slot of the last append call.
const float *mm_sampler_logits(const mm_sampler *s, int i);
// Appends one image to each of ns slots: its NP patches z (ns, NP, P) at noise level t, then
// (with eoi) the EOI token, whose logits are then mm_sampler_logits(s, i). The caller appends
// BOI before. A clean image is t = 1 with z = x.
int mm_sampler_append_image(mm_sampler *s, int ns, const int *slots, const float *z, float t, int eoi);

// One model call for an image being generated after each of ns slots: x_pred (ns, NP, P) for
// patches z (ns, NP, P) at noise level t. Nothing is added to the slots. recompute = 0 reads the
// cached keys and values of the prefix; 1 runs each slot's whole sequence again (for tests and
// measurements: same function, no reuse), and leaves the recomputed keys and values of the
// prefix in the cache (the same numbers up to rounding).
int mm_sampler_denoise(mm_sampler *s, int ns, const int *slots, const float *z, float t, int recompute,
		       float *xpred);

enum { MM_ODE_EULER = 0, MM_ODE_HEUN = 1, MM_ODE_DPM2M = 2 };
// Their names, indexed by them, NULL-terminated: "euler", "heun", "dpm2m" (the tools' --sampler).
extern const char *const mm_ode_names[];

// Guidance's default interval of noise levels: none at the noisiest fifth (t < 0.2), where it
// pushes every image of a caption towards the same layout (mm-sample(1), "Guidance").
#define MM_CFG_FROM 0.2

typedef struct mm_image_opts {
	int method;            // MM_ODE_EULER, MM_ODE_HEUN (Heun) or MM_ODE_DPM2M
	int steps;             // N (50)
	float cfg;             // guidance scale g (1 = none)
	float cfg_lo, cfg_hi;  // guidance only for t in [cfg_lo, cfg_hi] (MM_CFG_FROM, 1)
	int recompute;         // 1: no prefix reuse (mm_sampler_denoise)
} mm_image_opts;

void mm_image_opts_default(mm_image_opts *o);

// Generates an image after each of the ns slots (whose sequences end with BOI): z (ns, NP, P)
// holds the starting noise and receives the final image in [-1, 1] (patch order, not clamped).
// uncond[i] is the unconditional slot of slots[i] (holding BOS BOI), needed when o->cfg != 1.
// The slots are not changed.
int mm_sampler_image(mm_sampler *s, int ns, const int *slots, const int *uncond, const mm_image_opts *o,
		     float *z);

// log softmax(logits)[id] over V logits, summed in double.
double mm_logprob(const float *logits, int V, int id);

// Text sampling from logits (V): temperature 0 is greedy (the first of equal maxima); else
// softmax(logits / temperature) cut to the top_k most likely tokens (0: all) and then to the
// smallest set whose probability reaches top_p (1: all), sampled with one uniform draw. Tokens
// with ban[id] != 0 are never chosen (ban may be NULL). work holds 2 V ints. Returns the token,
// or -1 if every token is banned.
typedef struct mm_text_opts {
	float temperature; // 0
	int top_k;         // 0
	float top_p;       // 1
} mm_text_opts;
int mm_sample_token(const float *logits, int V, const mm_text_opts *o, const uint8_t *ban, mm_rng *r,
		    int *work);

typedef struct mm_gen_opts {
	mm_text_opts text;
	mm_image_opts image;
	int max_tokens;  // tokens sampled per document, at most (BOI included)
	int image_first; // 1: an image follows the prefix at once (BOI appended)
	int images;      // 1: a sampled BOI starts an image; 0: BOI is never sampled
	float read_t;    // noise level (0, 1] of the prefix's images before the model's noise shift
			 // (mm_read_level): z = t x + (1 - t) eps (1: clean)
	uint64_t seed;
} mm_gen_opts;

void mm_gen_opts_default(mm_gen_opts *o);

// Continues n documents in one batch. prefix[i] is the beginning of document i (text segments
// and images of the model's geometry; BOS is put before it), out[i] (initialised, emptied here)
// receives what follows: text segments (EOS not included) and images (pixels in patch order).
// A document stops at EOS, after max_tokens sampled tokens, or when its slot is full. Document i
// draws its numbers from the generator (seed, index0 + i): the noise of its prefix's images
// (read_t < 1 only), then image noise and tokens, in order.
// Slots used: 0..n-1, and n..2n-1 for guidance (needs 2n slots when o->image.cfg != 1).
// MM_ERANGE when a prefix (with its image, for image_first) does not fit seq_len.
int mm_generate(mm_sampler *s, const mm_doc *prefix, int n, uint64_t index0, const mm_gen_opts *o,
		mm_doc *out);

// Pixels (n values) of an image in [-1, 1] as bytes: round((x + 1) 127.5), clamped; and back,
// as the training loader maps them.
void mm_pixels_from_float(const float *x, size_t n, uint8_t *px);
void mm_pixels_to_float(const uint8_t *px, size_t n, float *x);

#endif
