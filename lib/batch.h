// One batch: the layout the model reads, and the one builder the loader, the evaluator and the
// tests fill it with (allocation, padding, text, noised images, targets); with the numbers of
// the diffusion recipe, each named once.
//
// An image position's noise level t is in [0, 1] (t = 1 clean); its pixels are
// x = pixel / 127.5 - 1 and its input z = t x + (1 - t) eps, eps ~ N(0, 1) per value.
#ifndef MM_BATCH_H
#define MM_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "rng.h"

// Velocity scale s = max(1 - t, MM_T_FLOOR): the loss compares (x_pred - z) / s with
// (x - z) / s and the sampler steps along (x_pred - z) / s, so near t = 1 neither divides by
// almost 0. A double, so that (REAL)MM_T_FLOOR is the same 0.05 in either precision of the
// kernels; float code writes (float)MM_T_FLOOR.
#define MM_T_FLOOR 0.05
// Training draws t = sigmoid(MM_T_MU + MM_T_SIGMA n), n ~ N(0, 1): the loader's defaults.
#define MM_T_MU (-0.8)
#define MM_T_SIGMA 0.8
// An image read before its caption has its t mapped into [MM_T_IMAGE_FIRST, 1]:
// t' = MM_T_IMAGE_FIRST + (1 - MM_T_IMAGE_FIRST) t, so the caption after it reads a
// recognisable image.
#define MM_T_IMAGE_FIRST 0.5f

// B rows of T positions. Arrays are (B, T) unless noted, owned by the caller (from
// mm_batch_alloc, or laid out by the caller itself); P values per patch.
typedef struct mm_batch {
	int B, T;
	int32_t *token;    // text: token id; image position: -1
	int32_t *target;   // text position with a loss: the next token id; else -1
	int32_t *doc;      // document number within the row (>= 0); padding: -1
	int32_t *img;      // image position: image number within the row (>= 0); text: -1
	int32_t *pos;      // rotary position: offset from the start of the document
	int32_t *patch;    // image position: patch index within its image; text: -1
	float *t;          // image position: noise level of its image; text: ignored
	float *z;          // (B, T, P) noised patch at image positions; ignored elsewhere
	float *x;          // (B, T, P) clean patch (the target) at image positions
} mm_batch;

// Allocates every array of B rows of T positions, all zero; z and x only for P > 0 (NULL for
// text only). MM_ENOMEM leaves b empty (mm_batch_free is then a no-op).
int mm_batch_alloc(mm_batch *b, int B, int T, int P);
// Frees what mm_batch_alloc allocated and empties b.
void mm_batch_free(mm_batch *b);

// Padding everywhere in a row / the whole batch: token MM_TOK_PAD, target, doc, img and patch
// -1, pos 0, t 0, and z and x 0 over P values a position (P = 0: z and x left alone).
void mm_batch_clear_row(mm_batch *b, int row, int P);
void mm_batch_clear(mm_batch *b, int P);

// A text position: batch index i holds token tok, at rotary position pos of document doc.
static inline void mm_batch_put_text(mm_batch *b, size_t i, int32_t tok, int32_t doc, int32_t pos)
{
	b->token[i] = tok;
	b->doc[i] = doc;
	b->pos[i] = pos;
}

// n patches of image img at noise level t: batch indices i .. i + n - 1 hold its patches
// 0 .. n - 1 at rotary positions pos .. pos + n - 1 of document doc. z and x are not written.
void mm_batch_put_patches(mm_batch *b, size_t i, int n, int32_t doc, int32_t pos, int32_t img, float t);

// z (n values) = t x + (1 - t) eps, eps = (float)mm_rng_normal(r) drawn value by value in order;
// at t = 1, z = x and nothing is drawn. z may be x.
void mm_batch_noise_image(float *z, const float *x, size_t n, float t, mm_rng *r);

// A whole image of NP patches of P values, px its pixels in patch order: mm_batch_put_patches,
// then x from the pixels and z noised from x with mm_batch_noise_image.
void mm_batch_put_image(mm_batch *b, size_t i, int NP, int P, const uint8_t *px, float t, int32_t doc,
			int32_t pos, int32_t img, mm_rng *r);

// Targets: a position predicts the token of the next one when both are of the same document in
// the same row, the next is a text position (token >= 0) and this one is not a patch. Sets
// those targets and leaves the others as they are (-1 after a clear).
void mm_batch_set_targets(mm_batch *b);

#endif
