// The batch builder (see batch.h).
#include "batch.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "tokenizer.h"

int mm_batch_alloc(mm_batch *b, int B, int T, int P)
{
	memset(b, 0, sizeof *b);
	if (B < 1 || T < 1 || P < 0)
		return mm_fail(MM_EINVAL, "batch of %d x %d with %d values a patch", B, T, P);
	size_t bt = (size_t)B * (size_t)T;
	b->B = B;
	b->T = T;
	int32_t **iv[] = {&b->token, &b->target, &b->doc, &b->img, &b->pos, &b->patch};
	int bad = 0;
	for (size_t i = 0; i < sizeof iv / sizeof *iv; i++)
		bad |= !(*iv[i] = calloc(bt, sizeof(int32_t)));
	bad |= !(b->t = calloc(bt, sizeof(float)));
	if (P) {
		bad |= !(b->z = calloc(bt * (size_t)P, sizeof(float)));
		bad |= !(b->x = calloc(bt * (size_t)P, sizeof(float)));
	}
	if (bad) {
		mm_batch_free(b);
		return mm_fail(MM_ENOMEM, "out of memory for a batch of %d x %d", B, T);
	}
	return 0;
}

void mm_batch_free(mm_batch *b)
{
	free(b->token);
	free(b->target);
	free(b->doc);
	free(b->img);
	free(b->pos);
	free(b->patch);
	free(b->t);
	free(b->z);
	free(b->x);
	memset(b, 0, sizeof *b);
}

// Positions [a, e) of the batch.
static void clear_span(mm_batch *b, size_t a, size_t e, int P)
{
	for (size_t i = a; i < e; i++) {
		b->token[i] = MM_TOK_PAD;
		b->target[i] = b->doc[i] = b->img[i] = b->patch[i] = -1;
		b->pos[i] = 0;
		b->t[i] = 0;
	}
	if (P) {
		memset(b->z + a * (size_t)P, 0, (e - a) * (size_t)P * sizeof(float));
		memset(b->x + a * (size_t)P, 0, (e - a) * (size_t)P * sizeof(float));
	}
}

void mm_batch_clear_row(mm_batch *b, int row, int P)
{
	size_t a = (size_t)row * (size_t)b->T;
	clear_span(b, a, a + (size_t)b->T, P);
}

void mm_batch_clear(mm_batch *b, int P) { clear_span(b, 0, (size_t)b->B * (size_t)b->T, P); }

void mm_batch_put_patches(mm_batch *b, size_t i, int n, int32_t doc, int32_t pos, int32_t img, float t)
{
	for (int j = 0; j < n; j++) {
		mm_batch_put_text(b, i + (size_t)j, -1, doc, pos + j);
		b->img[i + (size_t)j] = img;
		b->patch[i + (size_t)j] = j;
		b->t[i + (size_t)j] = t;
	}
}

void mm_batch_noise_image(float *z, const float *x, size_t n, float t, mm_rng *r)
{
	if (t == 1) { // t x + 0 eps is x whatever eps is: no draw
		if (z != x)
			memcpy(z, x, n * sizeof *z);
		return;
	}
	for (size_t v = 0; v < n; v++)
		z[v] = t * x[v] + (1.0f - t) * (float)mm_rng_normal(r);
}

void mm_batch_put_image(mm_batch *b, size_t i, int NP, int P, const uint8_t *px, float t, int32_t doc,
			int32_t pos, int32_t img, mm_rng *r)
{
	mm_batch_put_patches(b, i, NP, doc, pos, img, t);
	size_t n = (size_t)NP * (size_t)P;
	float *x = b->x + i * (size_t)P, *z = b->z + i * (size_t)P;
	for (size_t v = 0; v < n; v++)
		x[v] = (float)(px[v] / 127.5 - 1.0);
	mm_batch_noise_image(z, x, n, t, r);
}

void mm_batch_set_targets(mm_batch *b)
{
	size_t bt = (size_t)b->B * (size_t)b->T;
	for (size_t i = 0; i + 1 < bt; i++) {
		if ((i + 1) % (size_t)b->T == 0) // last column: the next position is another row
			continue;
		if (b->doc[i] >= 0 && b->doc[i + 1] == b->doc[i] && b->token[i + 1] >= 0 && b->patch[i] < 0)
			b->target[i] = b->token[i + 1];
	}
}
