// The batch builder: allocation, padding by row and whole, text and image placement, noising
// (t = 1 gives x and draws nothing, t = 0 gives eps, in between the exact float formula), the
// target rule, and the velocity floor as the loss applies it.
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "kernels.h"
#include "mm.h"

enum { B = 3, T = 16, P = 4, NP = 3 };

static int is_padding(const mm_batch *b, size_t i, int p)
{
	int ok = b->token[i] == MM_TOK_PAD && b->target[i] == -1 && b->doc[i] == -1 && b->img[i] == -1 &&
		 b->patch[i] == -1 && b->pos[i] == 0 && b->t[i] == 0;
	for (int v = 0; v < p; v++)
		ok &= b->z[i * p + v] == 0 && b->x[i * p + v] == 0;
	return ok;
}

// Every byte of every array set to 0x5a, so that a field a clear forgets is seen.
static void scribble(mm_batch *b, int p)
{
	size_t n = (size_t)B * T;
	int32_t *iv[] = {b->token, b->target, b->doc, b->img, b->pos, b->patch};
	for (size_t k = 0; k < sizeof iv / sizeof *iv; k++)
		memset(iv[k], 0x5a, n * sizeof(int32_t));
	memset(b->t, 0x5a, n * sizeof(float));
	if (p) {
		memset(b->z, 0x5a, n * p * sizeof(float));
		memset(b->x, 0x5a, n * p * sizeof(float));
	}
}

static void test_alloc_clear(void)
{
	printf("alloc, clear\n");
	mm_batch b;
	CHECK_OK(mm_batch_alloc(&b, B, T, P));
	CHECK(b.B == B && b.T == T && b.z && b.x);
	int zero = 1;
	for (size_t i = 0; i < (size_t)B * T; i++)
		zero &= !b.token[i] && !b.target[i] && !b.doc[i] && !b.img[i] && !b.pos[i] && !b.patch[i] &&
			b.t[i] == 0 && b.z[i * P] == 0 && b.x[i * P + P - 1] == 0;
	CHECK(zero);

	scribble(&b, P);
	mm_batch_clear_row(&b, 1, P);
	int bad = 0;
	for (size_t i = 0; i < (size_t)B * T; i++) {
		int row1 = i / T == 1;
		bad += row1 != is_padding(&b, i, P);
		bad += !row1 && (b.token[i] != 0x5a5a5a5a || b.x[i * P] == 0); // other rows untouched
	}
	CHECK_EQ_INT(bad, 0);

	scribble(&b, P);
	mm_batch_clear(&b, P);
	bad = 0;
	for (size_t i = 0; i < (size_t)B * T; i++)
		bad += !is_padding(&b, i, P);
	CHECK_EQ_INT(bad, 0);

	scribble(&b, P);
	mm_batch_clear(&b, 0); // P = 0: the patches are left alone
	CHECK(b.token[0] == MM_TOK_PAD && b.z[0] != 0 && b.x[B * T * P - 1] != 0);
	mm_batch_free(&b);
	CHECK(!b.token && !b.z && b.B == 0);
	mm_batch_free(&b); // empty: nothing to free

	CHECK_OK(mm_batch_alloc(&b, 2, 5, 0)); // text only
	CHECK(b.token && b.t && !b.z && !b.x);
	mm_batch_free(&b);
	CHECK_EQ_INT(mm_batch_alloc(&b, 0, 5, 0), -MM_EINVAL);
	CHECK(!b.token);
}

static void test_noise(void)
{
	printf("noise\n");
	enum { N = 64 };
	float x[N], z[N], eps[N];
	mm_rng r, g;
	mm_rng_seed(&g, 7, 3);
	for (int v = 0; v < N; v++)
		x[v] = (float)(2 * mm_rng_uniform(&g) - 1);
	mm_rng_seed(&g, 42, 9); // the stream the noise reads
	for (int v = 0; v < N; v++)
		eps[v] = (float)mm_rng_normal(&g);

	mm_rng_seed(&r, 42, 9);
	mm_batch_noise_image(z, x, N, 1, &r);
	CHECK(!memcmp(z, x, sizeof z));
	mm_rng fresh;
	mm_rng_seed(&fresh, 42, 9);
	CHECK(!memcmp(&r, &fresh, sizeof r)); // t = 1 draws nothing

	mm_batch_noise_image(z, x, N, 0, &r);
	CHECK(!memcmp(z, eps, sizeof z));
	CHECK(!memcmp(&r, &g, sizeof r)); // one normal a value

	float t = 0.3f, zz[N];
	mm_rng_seed(&r, 42, 9);
	mm_batch_noise_image(z, x, N, t, &r);
	int bad = 0;
	for (int v = 0; v < N; v++)
		bad += z[v] != t * x[v] + (1.0f - t) * eps[v];
	CHECK_EQ_INT(bad, 0);
	memcpy(zz, x, sizeof zz); // in place, as the sampler reads a prompt image
	mm_rng_seed(&r, 42, 9);
	mm_batch_noise_image(zz, zz, N, t, &r);
	CHECK(!memcmp(zz, z, sizeof z));
}

// Row 0: BOS a b BOI [NP patches] EOI c EOS | BOS d EOS, padding; row 1: BOS e f ... to the end.
static void test_place_targets(void)
{
	printf("placement, targets\n");
	mm_batch b;
	CHECK_OK(mm_batch_alloc(&b, B, T, P));
	mm_batch_clear(&b, P);
	uint8_t px[NP * P];
	for (int v = 0; v < NP * P; v++)
		px[v] = (uint8_t)(v == 0 ? 0 : v == 1 ? 255 : 20 * v);
	int i = 0, q = 0;
	mm_batch_put_text(&b, i++, MM_TOK_BOS, 0, q++);
	mm_batch_put_text(&b, i++, 10, 0, q++);
	mm_batch_put_text(&b, i++, 11, 0, q++);
	mm_batch_put_text(&b, i++, MM_TOK_BOI, 0, q++);
	mm_rng r, g;
	mm_rng_seed(&r, 5, 1);
	mm_batch_put_image(&b, (size_t)i, NP, P, px, 0.25f, 0, q, 0, &r);
	int boi = i - 1;
	i += NP, q += NP;
	mm_batch_put_text(&b, i++, MM_TOK_EOI, 0, q++);
	mm_batch_put_text(&b, i++, 12, 0, q++);
	mm_batch_put_text(&b, i++, MM_TOK_EOS, 0, q++);
	int eos0 = i - 1;
	mm_batch_put_text(&b, i++, MM_TOK_BOS, 1, 0);
	mm_batch_put_text(&b, i++, 13, 1, 1);
	mm_batch_put_text(&b, i++, MM_TOK_EOS, 1, 2);
	int used0 = i;
	for (int k = 0; k < T; k++) // row 1 full: its last position has no next in the row
		mm_batch_put_text(&b, (size_t)T + k, 20 + k, 0, k);
	mm_batch_put_text(&b, 2 * T, MM_TOK_BOS, 0, 0); // row 2 starts with a text position
	mm_batch_set_targets(&b);

	// the image
	int bad = 0;
	mm_rng_seed(&g, 5, 1);
	for (int j = 0; j < NP; j++) {
		int n = boi + 1 + j;
		bad += b.token[n] != -1 || b.doc[n] != 0 || b.img[n] != 0 || b.patch[n] != j ||
		       b.pos[n] != boi + 1 + j || b.t[n] != 0.25f;
		for (int v = 0; v < P; v++) {
			float x = (float)(px[j * P + v] / 127.5 - 1.0), eps = (float)mm_rng_normal(&g);
			bad += b.x[n * P + v] != x || b.z[n * P + v] != 0.25f * x + 0.75f * eps;
		}
	}
	CHECK_EQ_INT(bad, 0);
	CHECK(b.x[(boi + 1) * P] == -1 && b.x[(boi + 1) * P + 1] == 1);

	// targets of row 0
	int32_t want[T];
	for (int k = 0; k < T; k++)
		want[k] = -1;
	want[0] = 10, want[1] = 11, want[2] = MM_TOK_BOI; // BOI predicts no patch
	want[boi + NP + 1] = 12, want[boi + NP + 2] = MM_TOK_EOS;
	want[eos0 + 1] = 13, want[eos0 + 2] = MM_TOK_EOS; // not across documents
	bad = 0;
	for (int k = 0; k < T; k++)
		bad += b.target[k] != want[k];
	CHECK_EQ_INT(bad, 0);
	for (int k = used0; k < T; k++)
		bad += !is_padding(&b, (size_t)k, P);
	CHECK_EQ_INT(bad, 0);
	// row 1: each predicts the next, the last none although row 2 begins with text
	for (int k = 0; k + 1 < T; k++)
		bad += b.target[T + k] != 21 + k;
	CHECK_EQ_INT(bad, 0);
	CHECK_EQ_INT(b.target[2 * T - 1], -1);
	mm_batch_free(&b);
}

// The loss divides by max(1 - t, MM_T_FLOOR): below the floor a row scores as at the floor.
static void test_floor(void)
{
	printf("velocity floor\n");
	CHECK(MM_T_FLOOR == 0.05 && (float)MM_T_FLOOR == 0.05f); // tests/ref/model.py's number
	enum { N = 3, Q = 5 };
	float xp[N * Q], x[N * Q], z[N * Q], t[N] = {0.5f, 0.99f, 1 - (float)MM_T_FLOOR}, loss[N];
	for (int i = 0; i < N * Q; i++)
		xp[i] = 0.1f * (float)i, x[i] = 0.3f - 0.05f * (float)i, z[i] = 0.2f;
	mm_vmse_forward(loss, xp, x, z, t, N, Q);
	for (int n = 0; n < N; n++) {
		double s = n == 0 ? 0.5 : MM_T_FLOOR, want = 0;
		for (int p = 0; p < Q; p++) {
			double e = ((double)xp[n * Q + p] - x[n * Q + p]) / s;
			want += e * e;
		}
		CHECK_MSG(fabs(loss[n] - want) < 1e-5 * want, "row %d: loss %g, want %g", n, loss[n], want);
		// (row 1 divided by 1 - t = 0.01 would be 25 times too large)
	}
}

int main(void)
{
	test_alloc_clear();
	test_noise();
	test_place_targets();
	test_floor();
	return check_done();
}
