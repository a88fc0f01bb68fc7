// Kernels: every backward against central differences, in double (the same source as the
// library's float kernels, compiled here over double); the float kernels against the double ones;
// the BLAS matmul against the naive one; the attention mask against the spec, by hand.
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REAL double
#define KFN(name) mmd_##name
#define MM_GEMM cblas_dgemm
#include "kernels_typed_priv.h"
#include "kernels_naive.h"
// The naive kernels in float too (mm_matmul_forward_naive), for the float kernels' checks.
#undef REAL
#undef KFN
#define REAL float
#define KFN(name) mm_##name
#include "kernels_naive.h"
#undef REAL
#undef KFN
#define REAL double
#define KFN(name) mmd_##name

#include "check.h"
#include "kernels.h"
#include "mm.h"

static mm_rng rng;

static double *vec(size_t n, double scale) // uniform in [-scale, scale]
{
	double *x = malloc(n * sizeof *x);
	for (size_t i = 0; i < n; i++)
		x[i] = scale * (2 * mm_rng_uniform(&rng) - 1);
	return x;
}
static double *zeros(size_t n) { return calloc(n, sizeof(double)); }
static float *tof(const double *x, size_t n)
{
	float *f = malloc(n * sizeof *f);
	for (size_t i = 0; i < n; i++)
		f[i] = (float)x[i];
	return f;
}
static double dot(const double *a, const double *b, size_t n)
{
	double s = 0;
	for (size_t i = 0; i < n; i++)
		s += a[i] * b[i];
	return s;
}

// Worst |a - b| over max |b|: the error measure of every comparison in the tests.
static double relerr(const double *a, const double *b, size_t n)
{
	double e = 0, m = 1e-30;
	for (size_t i = 0; i < n; i++) {
		e = fmax(e, fabs(a[i] - b[i]));
		m = fmax(m, fabs(b[i]));
	}
	return e / m;
}

// The analytic gradient g of f with respect to x (n values) against central differences.
static void gradcheck(const char *what, double (*f)(void), double *x, const double *g, size_t n)
{
	const double h = 1e-5;
	double *num = malloc(n * sizeof *num);
	for (size_t i = 0; i < n; i++) {
		double save = x[i];
		x[i] = save + h;
		double fp = f();
		x[i] = save - h;
		double fm = f();
		x[i] = save;
		num[i] = (fp - fm) / (2 * h);
	}
	double e = relerr(g, num, n);
	printf("  grad %-26s %4zu values  worst rel err %.1e\n", what, n, e);
	CHECK_MSG(e < 1e-7, "%s: gradient off by %g", what, e);
	free(num);
}

// A float result against the double one.
static void cmpf(const char *what, const float *a, const double *b, size_t n, double tol)
{
	double *ad = malloc(n * sizeof *ad);
	for (size_t i = 0; i < n; i++)
		ad[i] = a[i];
	double e = relerr(ad, b, n);
	printf("  f32  %-26s %4zu values  worst rel err %.1e\n", what, n, e);
	CHECK_MSG(e < tol, "%s: float differs from double by %g", what, e);
	free(ad);
}

// Gradient buffers start at 0.5, not 0, so that a kernel that assigns instead of accumulating fails.
static double *gradbuf(size_t n)
{
	double *g = malloc(n * sizeof *g);
	for (size_t i = 0; i < n; i++)
		g[i] = 0.5;
	return g;
}
static void ungrad(double *g, size_t n)
{
	for (size_t i = 0; i < n; i++)
		g[i] -= 0.5;
}

// The loss of every check is L = sum(out * R) for a fixed random R, so dL/dout = R.
static struct {
	int N, C, OC, H, hd, B, T;
	double *a, *b, *c, *w, *bias, *r, *cosb, *sinb, *t, *z;
	int32_t *ids, *doc, *img;
} k;

static double matmul_loss(void)
{
	double *out = zeros((size_t)k.N * k.OC);
	mmd_matmul_forward(out, k.a, k.w, k.bias, k.N, k.C, k.OC);
	double l = dot(out, k.r, (size_t)k.N * k.OC);
	free(out);
	return l;
}

// Matmuls big enough to be split across threads: the same bytes with 1 and 2 threads, and the
// forward equal to the naive one.
static void test_matmul_split(void)
{
	int N = 300, C = 70, OC = 90;
	size_t ni = (size_t)N * C, nw = (size_t)OC * C, no = (size_t)N * OC;
	float *x = malloc(ni * 4), *w = malloc(nw * 4), *b = malloc(OC * 4), *d = malloc(no * 4);
	for (size_t i = 0; i < ni; i++)
		x[i] = (float)mm_rng_normal(&rng);
	for (size_t i = 0; i < nw; i++)
		w[i] = (float)mm_rng_normal(&rng);
	for (size_t i = 0; i < no; i++)
		d[i] = (float)mm_rng_normal(&rng);
	for (int i = 0; i < OC; i++)
		b[i] = (float)mm_rng_normal(&rng);
	float *out[2], *dx[2], *dw[2], *db[2];
	for (int k = 0; k < 2; k++) {
		omp_set_num_threads(k + 1);
		out[k] = malloc(no * 4), dx[k] = calloc(ni, 4), dw[k] = calloc(nw, 4), db[k] = calloc(OC, 4);
		mm_matmul_forward(out[k], x, w, b, N, C, OC);
		mm_matmul_backward(dx[k], dw[k], db[k], d, x, w, N, C, OC);
	}
	CHECK(!memcmp(out[0], out[1], no * 4) && !memcmp(dx[0], dx[1], ni * 4));
	CHECK(!memcmp(dw[0], dw[1], nw * 4) && !memcmp(db[0], db[1], OC * 4));
	float *ref = malloc(no * 4);
	mm_matmul_forward_naive(ref, x, w, b, N, C, OC);
	double e = 0;
	for (size_t i = 0; i < no; i++)
		e = fmax(e, fabs(out[1][i] - ref[i]));
	printf("  split sgemm (2 threads) against naive: worst abs err %.1e\n", e);
	CHECK(e < 1e-4);
	for (int k = 0; k < 2; k++)
		free(out[k]), free(dx[k]), free(dw[k]), free(db[k]);
	free(x), free(w), free(b), free(d), free(ref);
}

static void test_matmul(void)
{
	printf("matmul\n");
	k.N = 5, k.C = 7, k.OC = 4;
	size_t ni = 35, nw = 28, no = 20;
	k.a = vec(ni, 1), k.w = vec(nw, 1), k.bias = vec(4, 1), k.r = vec(no, 1);
	double *da = gradbuf(ni), *dw = gradbuf(nw), *db = gradbuf(4);
	mmd_matmul_backward(da, dw, db, k.r, k.a, k.w, k.N, k.C, k.OC);
	ungrad(da, ni), ungrad(dw, nw), ungrad(db, 4);
	gradcheck("matmul dinp", matmul_loss, k.a, da, ni);
	gradcheck("matmul dw", matmul_loss, k.w, dw, nw);
	gradcheck("matmul dbias", matmul_loss, k.bias, db, 4);

	double *out = zeros(no), *ref = zeros(no);
	mmd_matmul_forward(out, k.a, k.w, k.bias, k.N, k.C, k.OC);
	mmd_matmul_forward_naive(ref, k.a, k.w, k.bias, k.N, k.C, k.OC);
	CHECK(relerr(out, ref, no) < 1e-14);

	float *fa = tof(k.a, ni), *fw = tof(k.w, nw), *fb = tof(k.bias, 4), *fr = tof(k.r, no);
	float *fo = calloc(no, 4), *fda = calloc(ni, 4), *fdw = calloc(nw, 4), *fdb = calloc(4, 4);
	mm_matmul_forward(fo, fa, fw, fb, k.N, k.C, k.OC);
	mm_matmul_backward(fda, fdw, fdb, fr, fa, fw, k.N, k.C, k.OC);
	cmpf("matmul out", fo, out, no, 1e-6);
	cmpf("matmul dinp", fda, da, ni, 1e-6);
	cmpf("matmul dw", fdw, dw, nw, 1e-6);
	cmpf("matmul dbias", fdb, db, 4, 1e-6);
	// without bias, and a NULL gradient is skipped
	mm_matmul_forward(fo, fa, fw, NULL, k.N, k.C, k.OC);
	mmd_matmul_forward(out, k.a, k.w, NULL, k.N, k.C, k.OC);
	cmpf("matmul out, no bias", fo, out, no, 1e-6);
	mm_matmul_backward(NULL, NULL, NULL, fr, fa, fw, k.N, k.C, k.OC);
	free(fa), free(fw), free(fb), free(fr), free(fo), free(fda), free(fdw), free(fdb);
	free(k.a), free(k.w), free(k.bias), free(k.r), free(da), free(dw), free(db), free(out), free(ref);

	// the BLAS path against three loops, in float, on shapes that are not multiples of anything
	int N = 67, C = 45, OC = 33;
	float *x = malloc(sizeof(float) * N * C), *w = malloc(sizeof(float) * OC * C);
	float *bias = malloc(sizeof(float) * OC), *o1 = malloc(sizeof(float) * N * OC);
	float *o2 = malloc(sizeof(float) * N * OC);
	for (int i = 0; i < N * C; i++)
		x[i] = (float)mm_rng_normal(&rng);
	for (int i = 0; i < OC * C; i++)
		w[i] = (float)mm_rng_normal(&rng);
	for (int i = 0; i < OC; i++)
		bias[i] = (float)mm_rng_normal(&rng);
	mm_matmul_forward(o1, x, w, bias, N, C, OC);
	mm_matmul_forward_naive(o2, x, w, bias, N, C, OC);
	double e = 0;
	for (int i = 0; i < N * OC; i++)
		e = fmax(e, fabs(o1[i] - o2[i]));
	printf("  sgemm against naive: worst abs err %.1e\n", e);
	CHECK(e < 1e-4);
	free(x), free(w), free(bias), free(o1), free(o2);
	test_matmul_split();
}

static double rmsnorm_loss(void)
{
	size_t n = (size_t)k.N * k.C;
	double *out = zeros(n), *rstd = zeros(k.N);
	mmd_rmsnorm_forward(out, rstd, k.a, k.w, k.N, k.C);
	double l = dot(out, k.r, n);
	free(out), free(rstd);
	return l;
}

static void test_rmsnorm(void)
{
	printf("rmsnorm\n");
	k.N = 6, k.C = 70; // more than one column block
	size_t n = (size_t)k.N * k.C;
	k.a = vec(n, 1), k.w = vec(k.C, 1), k.r = vec(n, 1);
	for (int c = 0; c < 5; c++)
		k.a[c] *= 1e-3; // a row with a small norm, where eps matters
	double *out = zeros(n), *rstd = zeros(k.N), *da = gradbuf(n), *dw = gradbuf(k.C);
	mmd_rmsnorm_forward(out, rstd, k.a, k.w, k.N, k.C);
	mmd_rmsnorm_backward(da, dw, k.r, k.a, rstd, k.w, k.N, k.C);
	ungrad(da, n), ungrad(dw, k.C);
	gradcheck("rmsnorm dinp", rmsnorm_loss, k.a, da, n);
	gradcheck("rmsnorm dw", rmsnorm_loss, k.w, dw, k.C);
	// the definition, directly
	double ss = 0;
	for (int c = 0; c < k.C; c++)
		ss += k.a[k.C + c] * k.a[k.C + c];
	CHECK(fabs(out[k.C + 3] - k.a[k.C + 3] / sqrt(ss / k.C + 1e-5) * k.w[3]) < 1e-12);

	float *fa = tof(k.a, n), *fw = tof(k.w, k.C), *fr = tof(k.r, n), *fo = calloc(n, 4);
	float *fs = calloc(k.N, 4), *fda = calloc(n, 4), *fdw = calloc(k.C, 4);
	mm_rmsnorm_forward(fo, fs, fa, fw, k.N, k.C);
	mm_rmsnorm_backward(fda, fdw, fr, fa, fs, fw, k.N, k.C);
	cmpf("rmsnorm out", fo, out, n, 1e-6);
	cmpf("rmsnorm dinp", fda, da, n, 1e-5);
	cmpf("rmsnorm dw", fdw, dw, k.C, 1e-6);
	free(fa), free(fw), free(fr), free(fo), free(fs), free(fda), free(fdw);
	free(k.a), free(k.w), free(k.r), free(out), free(rstd), free(da), free(dw);
}

static double rope_loss(void)
{
	size_t n = (size_t)k.N * k.H * k.hd;
	double *x = malloc(n * sizeof *x);
	memcpy(x, k.a, n * sizeof *x);
	mmd_rope_forward(x, k.cosb, k.sinb, k.N, k.H, k.hd);
	double l = dot(x, k.r, n);
	free(x);
	return l;
}

static void test_rope(void)
{
	printf("rope\n");
	k.N = 4, k.H = 2, k.hd = 6;
	size_t n = (size_t)k.N * k.H * k.hd, nt = (size_t)k.N * k.hd / 2;
	int32_t pos[4] = {0, 1, 5, 63};
	k.a = vec(n, 1), k.r = vec(n, 1), k.cosb = zeros(nt), k.sinb = zeros(nt);
	mmd_rope_table(k.cosb, k.sinb, pos, k.N, k.hd);
	// pair 1 of row 2: angle 5 * 10000^(-2/6)
	CHECK(fabs(k.cosb[2 * 3 + 1] - cos(5 * pow(10000, -2.0 / 6))) < 1e-15);
	CHECK(k.cosb[0] == 1 && k.sinb[0] == 0);
	double *d = malloc(n * sizeof *d);
	memcpy(d, k.r, n * sizeof *d);
	mmd_rope_backward(d, k.cosb, k.sinb, k.N, k.H, k.hd);
	gradcheck("rope dx", rope_loss, k.a, d, n);

	double *x = malloc(n * sizeof *x);
	memcpy(x, k.a, n * sizeof *x);
	mmd_rope_forward(x, k.cosb, k.sinb, k.N, k.H, k.hd);
	float *fx = tof(k.a, n), *fd = tof(k.r, n), *fc = calloc(nt, 4), *fs = calloc(nt, 4);
	mm_rope_table(fc, fs, pos, k.N, k.hd);
	mm_rope_forward(fx, fc, fs, k.N, k.H, k.hd);
	mm_rope_backward(fd, fc, fs, k.N, k.H, k.hd);
	cmpf("rope out", fx, x, n, 1e-6);
	cmpf("rope dx", fd, d, n, 1e-6);
	free(fx), free(fd), free(fc), free(fs), free(x), free(d);
	free(k.a), free(k.r), free(k.cosb), free(k.sinb);
}

// Room for the attention kernels' score buffers: one pair per thread.
static int att_nbuf(void) { return omp_get_max_threads(); }
static size_t att_scratch(int T) { return (size_t)att_nbuf() * 2 * MM_ATT_QB * T; }

static double attention_loss(void)
{
	size_t n = (size_t)k.B * k.T * k.H * k.hd;
	double *out = zeros(n), *lse = zeros((size_t)k.B * k.H * k.T), *sc = zeros(att_scratch(k.T));
	mmd_attention_forward(out, lse, sc, att_nbuf(), k.a, k.b, k.c, k.doc, k.img, k.B, k.T, k.H, k.hd);
	double l = dot(out, k.r, n);
	free(out), free(lse), free(sc);
	return l;
}

// The block-wise kernels (double) against the loops of tests/kernels_naive.h on rows of B x T:
// out, dq, dk, dv; returns the worst relative error. lse and the gradients' inputs as given.
static double attention_vs_naive(const int32_t *doc, const int32_t *img, int B, int T, int H, int hd,
				 double *out, double *dq, double *dk, double *dv)
{
	size_t n = (size_t)B * T * H * hd, na = (size_t)B * H * T * T;
	double *q = vec(n, 1), *kk = vec(n, 1), *v = vec(n, 1), *r = vec(n, 1);
	double *lse = zeros((size_t)B * H * T), *sc = zeros(att_scratch(T));
	mmd_attention_forward(out, lse, sc, att_nbuf(), q, kk, v, doc, img, B, T, H, hd);
	mmd_attention_backward(dq, dk, dv, sc, att_nbuf(), r, lse, q, kk, v, doc, img, B, T, H, hd);
	double *out2 = zeros(n), *att2 = zeros(na), *dq2 = zeros(n), *dk2 = zeros(n), *dv2 = zeros(n);
	mmd_attention_forward_naive(out2, att2, q, kk, v, doc, img, B, T, H, hd);
	mmd_attention_backward_naive(dq2, dk2, dv2, r, att2, q, kk, v, B, T, H, hd);
	double e = fmax(relerr(out, out2, n), fmax(relerr(dq, dq2, n), fmax(relerr(dk, dk2, n), relerr(dv, dv2, n))));
	free(q), free(kk), free(v), free(r), free(lse), free(sc);
	free(out2), free(att2), free(dq2), free(dk2), free(dv2);
	return e;
}

static void test_attention(void)
{
	printf("attention\n");
	// Row 0: document 0 = text, an image of 3 patches, text; document 1; padding.
	// Row 1: two images back to back in one document, then a second document.
	enum { B = 2, T = 9 };
	static const int32_t doc[B * T] = {0, 0, 0, 0, 0, 0, 1, 1, -1, /**/ 0, 0, 0, 0, 0, 0, 1, 1, 1};
	static const int32_t img[B * T] = {-1, 0, 0, 0, -1, -1, -1, -1, -1, /**/
					   -1, 0, 0, 1, 1, -1, -1, 0, 0};
	// allowed[i] lists, as a bit string over j, where row 0's position i may attend
	static const char *want0[T] = {"100000000", "111100000", "111100000", "111100000", "111110000",
				       "111111000", "000000100", "000000110", "000000001"};
	static const char *want1[T] = {"100000000", "111000000", "111000000", "111110000", "111110000",
				       "111111000", "000000100", "000000111", "000000111"};
	k.B = B, k.T = T, k.H = 2, k.hd = 4;
	k.doc = (int32_t *)doc, k.img = (int32_t *)img;
	size_t n = (size_t)B * T * k.H * k.hd, na = (size_t)B * k.H * T * T, nl = (size_t)B * k.H * T;
	k.a = vec(n, 1), k.b = vec(n, 1), k.c = vec(n, 1), k.r = vec(n, 1);
	// The mask, on the loops' probabilities (the spec of lib/model.h, by hand).
	double *out2 = zeros(n), *att2 = zeros(na);
	mmd_attention_forward_naive(out2, att2, k.a, k.b, k.c, doc, img, B, T, k.H, k.hd);
	for (int b = 0; b < B; b++)
		for (int h = 0; h < k.H; h++)
			for (int i = 0; i < T; i++) {
				const double *p = att2 + (((size_t)b * k.H + h) * T + i) * T;
				const char *want = (b ? want1 : want0)[i];
				double sum = 0;
				for (int j = 0; j < T; j++) {
					sum += p[j];
					CHECK_MSG((p[j] > 0) == (want[j] == '1'),
						  "row %d head %d: %d -> %d allowed %d", b, h, i, j, p[j] > 0);
				}
				CHECK(fabs(sum - 1) < 1e-12);
			}
	double *out = zeros(n), *lse = zeros(nl), *sc = zeros(att_scratch(T));
	mmd_attention_forward(out, lse, sc, att_nbuf(), k.a, k.b, k.c, doc, img, B, T, k.H, k.hd);
	double *dq = gradbuf(n), *dk = gradbuf(n), *dv = gradbuf(n);
	mmd_attention_backward(dq, dk, dv, sc, att_nbuf(), k.r, lse, k.a, k.b, k.c, doc, img, B, T, k.H, k.hd);
	ungrad(dq, n), ungrad(dk, n), ungrad(dv, n);
	gradcheck("attention dq", attention_loss, k.a, dq, n);
	gradcheck("attention dk", attention_loss, k.b, dk, n);
	gradcheck("attention dv", attention_loss, k.c, dv, n);
	// lse: the log of the sum of exp(scores) over the allowed keys, by the loops' scores
	for (int b = 0; b < B; b++)
		for (int h = 0; h < k.H; h++)
			for (int i = 0; i < T; i++) {
				const double *qi = k.a + ((size_t)b * T + i) * k.H * k.hd + h * k.hd;
				const char *want = (b ? want1 : want0)[i];
				double sum = 0;
				for (int j = 0; j < T; j++) {
					const double *kj = k.b + ((size_t)b * T + j) * k.H * k.hd + h * k.hd;
					double d = 0;
					for (int x = 0; x < k.hd; x++)
						d += qi[x] * kj[x];
					sum += want[j] == '1' ? exp(d / 2) : 0; // 1 / sqrt(hd) = 1 / 2
				}
				CHECK(fabs(lse[((size_t)b * k.H + h) * T + i] - log(sum)) < 1e-12);
			}
	double *o = zeros(n), *gq = zeros(n), *gk = zeros(n), *gv = zeros(n);
	double e = attention_vs_naive(doc, img, B, T, k.H, k.hd, o, gq, gk, gv);
	printf("  attention blocks vs loops (double), 2 rows of 9: worst rel err %.1e\n", e);
	CHECK(e < 1e-13);
	free(o), free(gq), free(gk), free(gv);

	// Rows longer than a block (MM_ATT_QB = 64): row 0 packs documents of several lengths with
	// images across block edges and padding; row 1 is one causal document; row 2 lays a
	// document out in two runs (not how mm packs rows), so its blocks take the whole row.
	enum { B2 = 3, T2 = 150 };
	int32_t d2[B2 * T2], i2[B2 * T2];
	for (int t = 0; t < T2; t++) {
		d2[t] = t < 40 ? 0 : t < 100 ? 1 : t < 140 ? 2 : -1;
		i2[t] = (t >= 5 && t < 30) ? 5 : (t >= 55 && t < 80) ? 55 : (t >= 120 && t < 135) ? 120 : -1;
		d2[T2 + t] = 0, i2[T2 + t] = (t >= 60 && t < 70) ? 60 : -1;
		d2[2 * T2 + t] = t < 50 ? 0 : t < 100 ? 1 : 0, i2[2 * T2 + t] = (t >= 90 && t < 110) ? 90 : -1;
	}
	size_t n2 = (size_t)B2 * T2 * 2 * 4;
	o = zeros(n2), gq = zeros(n2), gk = zeros(n2), gv = zeros(n2);
	e = attention_vs_naive(d2, i2, B2, T2, 2, 4, o, gq, gk, gv);
	printf("  attention blocks vs loops (double), 3 rows of 150: worst rel err %.1e\n", e);
	CHECK(e < 1e-12);
	free(o), free(gq), free(gk), free(gv);

	float *fq = tof(k.a, n), *fk = tof(k.b, n), *fv = tof(k.c, n), *fr = tof(k.r, n);
	float *fo = calloc(n, 4), *fl = calloc(nl, 4), *fdq = calloc(n, 4), *fdk = calloc(n, 4),
	      *fdv = calloc(n, 4), *fs = calloc(att_scratch(T), 4);
	mm_attention_forward(fo, fl, fs, att_nbuf(), fq, fk, fv, doc, img, B, T, k.H, k.hd);
	mm_attention_backward(fdq, fdk, fdv, fs, att_nbuf(), fr, fl, fq, fk, fv, doc, img, B, T, k.H, k.hd);
	cmpf("attention out", fo, out, n, 1e-6);
	cmpf("attention lse", fl, lse, nl, 1e-6);
	cmpf("attention dq", fdq, dq, n, 1e-5);
	cmpf("attention dk", fdk, dk, n, 1e-5);
	cmpf("attention dv", fdv, dv, n, 1e-6);
	free(fq), free(fk), free(fv), free(fr), free(fo), free(fl), free(fdq), free(fdk), free(fdv);
	free(fs), free(sc), free(lse), free(out2), free(att2);
	free(k.a), free(k.b), free(k.c), free(k.r), free(out), free(dq), free(dk), free(dv);
}

// k.a holds g (N rows of 2F: gate, then up), k.r the weights of the loss on out (N, F).
static int sw_rows, sw_f;

static double swiglu_loss(void)
{
	double *out = zeros(k.N / 2);
	mmd_swiglu_forward(out, k.a, sw_rows, sw_f);
	double l = dot(out, k.r, k.N / 2);
	free(out);
	return l;
}

static void test_swiglu(void)
{
	printf("swiglu\n");
	sw_rows = 4, sw_f = 10, k.N = 2 * sw_rows * sw_f;
	int n = k.N / 2;
	k.a = vec(k.N, 4), k.r = vec(n, 1);
	double *out = zeros(n), *dg = gradbuf(k.N);
	mmd_swiglu_forward(out, k.a, sw_rows, sw_f);
	// row 1, column 3: silu(gate) * up
	double g = k.a[1 * 20 + 3], u = k.a[1 * 20 + 10 + 3];
	CHECK(fabs(out[1 * 10 + 3] - g / (1 + exp(-g)) * u) < 1e-15);
	mmd_swiglu_backward(dg, k.r, k.a, sw_rows, sw_f);
	ungrad(dg, k.N);
	gradcheck("swiglu dg", swiglu_loss, k.a, dg, k.N);

	float *fg = tof(k.a, k.N), *fr = tof(k.r, n), *fo = calloc(n, 4), *fdg = calloc(k.N, 4);
	mm_swiglu_forward(fo, fg, sw_rows, sw_f);
	mm_swiglu_backward(fdg, fr, fg, sw_rows, sw_f);
	cmpf("swiglu out", fo, out, n, 1e-6);
	cmpf("swiglu dg", fdg, dg, k.N, 1e-6);
	free(fg), free(fr), free(fo), free(fdg);
	free(k.a), free(k.r), free(out), free(dg);
}

static double ce_loss(void)
{
	double *loss = zeros(k.N), *lse = zeros(k.N);
	mmd_crossentropy_forward(loss, lse, k.a, k.ids, k.N, k.C);
	double l = dot(loss, k.r, k.N);
	free(loss), free(lse);
	return l;
}

static void test_crossentropy(void)
{
	printf("crossentropy\n");
	int32_t tg[5] = {2, -1, 0, 8, 4};
	double rr[5] = {0.3, 0.3, 0.3, 0.3, 0.3}; // the backward takes one scale for every row
	k.N = 5, k.C = 9, k.ids = tg, k.r = rr;
	size_t n = (size_t)k.N * k.C;
	k.a = vec(n, 3);
	double *loss = zeros(k.N), *lse = zeros(k.N), *d = gradbuf(n);
	mmd_crossentropy_forward(loss, lse, k.a, tg, k.N, k.C);
	double s = 0;
	for (int i = 0; i < k.C; i++)
		s += exp(k.a[3 * k.C + i]);
	CHECK(fabs(loss[3] - (log(s) - k.a[3 * k.C + 8])) < 1e-12);
	CHECK(loss[1] == 0);
	mmd_crossentropy_backward(d, k.a, lse, tg, 0.3, k.N, k.C);
	ungrad(d, n);
	gradcheck("crossentropy dlogits", ce_loss, k.a, d, n);

	float *fl = tof(k.a, n), *floss = calloc(k.N, 4), *flse = calloc(k.N, 4), *fd = calloc(n, 4);
	mm_crossentropy_forward(floss, flse, fl, tg, k.N, k.C);
	mm_crossentropy_backward(fd, fl, flse, tg, 0.3f, k.N, k.C);
	cmpf("crossentropy loss", floss, loss, k.N, 1e-6);
	cmpf("crossentropy dlogits", fd, d, n, 1e-6);
	free(fl), free(floss), free(flse), free(fd), free(k.a), free(loss), free(lse), free(d);
}

static double vmse_loss(void)
{
	double *loss = zeros(k.N);
	mmd_vmse_forward(loss, k.a, k.b, k.z, k.t, k.N, k.C);
	double l = dot(loss, k.r, k.N);
	free(loss);
	return l;
}

static void test_vmse(void)
{
	printf("vmse\n");
	double tt[4] = {0.1, 0.5, 0.97, 1.0}, rr[4] = {0.7, 0.7, 0.7, 0.7};
	k.N = 4, k.C = 5, k.t = tt, k.r = rr;
	size_t n = (size_t)k.N * k.C;
	k.a = vec(n, 1), k.b = vec(n, 1), k.z = vec(n, 1);
	double *loss = zeros(k.N), *d = gradbuf(n);
	mmd_vmse_forward(loss, k.a, k.b, k.z, tt, k.N, k.C);
	double want = 0; // row 2: s = MM_T_FLOOR
	for (int p = 0; p < k.C; p++)
		want += pow((k.a[2 * k.C + p] - k.b[2 * k.C + p]) / MM_T_FLOOR, 2);
	CHECK(fabs(loss[2] - want) < 1e-9 * want);
	mmd_vmse_backward(d, k.a, k.b, k.z, tt, 0.7, k.N, k.C);
	ungrad(d, n);
	gradcheck("vmse dxpred", vmse_loss, k.a, d, n);

	float *fa = tof(k.a, n), *fb = tof(k.b, n), *fz = tof(k.z, n), *ft = tof(tt, k.N);
	float *floss = calloc(k.N, 4), *fd = calloc(n, 4);
	mm_vmse_forward(floss, fa, fb, fz, ft, k.N, k.C);
	mm_vmse_backward(fd, fa, fb, fz, ft, 0.7f, k.N, k.C);
	cmpf("vmse loss", floss, loss, k.N, 1e-5);
	cmpf("vmse dxpred", fd, d, n, 1e-5);
	free(fa), free(fb), free(fz), free(ft), free(floss), free(fd);
	free(k.a), free(k.b), free(k.z), free(loss), free(d);
}

static double embedding_loss(void)
{
	size_t n = (size_t)k.N * k.C;
	double *out = zeros(n);
	mmd_embedding_forward(out, k.w, k.ids, k.N, k.C);
	double l = dot(out, k.r, n);
	free(out);
	return l;
}

static void test_embedding(void)
{
	printf("embedding\n");
	int32_t ids[7] = {3, 0, 3, -1, 4, 3, 1}; // repeats, and a row without an id
	k.N = 7, k.C = 130, k.ids = ids;
	size_t n = (size_t)k.N * k.C, nt = 5 * (size_t)k.C;
	k.w = vec(nt, 1), k.r = vec(n, 1);
	double *out = zeros(n), *d = gradbuf(nt);
	mmd_embedding_forward(out, k.w, ids, k.N, k.C);
	CHECK(out[2 * k.C + 7] == k.w[3 * k.C + 7] && out[3 * k.C + 7] == 0);
	mmd_embedding_backward(d, k.r, ids, k.N, k.C);
	ungrad(d, nt);
	gradcheck("embedding dtable", embedding_loss, k.w, d, nt);

	float *fw = tof(k.w, nt), *fr = tof(k.r, n), *fo = calloc(n, 4), *fd = calloc(nt, 4);
	mm_embedding_forward(fo, fw, ids, k.N, k.C);
	mm_embedding_backward(fd, fr, ids, k.N, k.C);
	cmpf("embedding out", fo, out, n, 1e-7);
	cmpf("embedding dtable", fd, d, nt, 1e-6);
	free(fw), free(fr), free(fo), free(fd), free(k.w), free(k.r), free(out), free(d);
}

static double residual_loss(void)
{
	double *out = zeros(k.N);
	mmd_residual_forward(out, k.a, k.b, k.N);
	double l = dot(out, k.r, k.N);
	free(out);
	return l;
}

static void test_residual_timestep(void)
{
	printf("residual, timestep\n");
	k.N = 9;
	k.a = vec(k.N, 1), k.b = vec(k.N, 1), k.r = vec(k.N, 1);
	double *da = gradbuf(k.N), *db = gradbuf(k.N);
	mmd_residual_backward(da, db, k.r, k.N);
	ungrad(da, k.N), ungrad(db, k.N);
	gradcheck("residual da", residual_loss, k.a, da, k.N);
	gradcheck("residual db", residual_loss, k.b, db, k.N);
	free(k.a), free(k.b), free(k.r), free(da), free(db);

	double worst = 0; // the vectorizable exp of the float elementwise kernels
	for (float x = -87; x <= 87; x += 0.01f)
		worst = fmax(worst, fabs(mm_fast_expf(x) / exp((double)x) - 1));
	printf("  mm_fast_expf on [-87, 87]: worst rel err %.1e\n", worst);
	CHECK(worst < 3e-7);
	CHECK(mm_fast_expf(-INFINITY) > 0 && mm_fast_expf(-INFINITY) < 1e-37);
	CHECK(mm_fast_expf(0) == 1);
	CHECK(mm_fast_expf(INFINITY) > 6e37f && isfinite(mm_fast_expf(INFINITY)));

	float t[3] = {0, 0.37f, 1}, f[3 * 64];
	mm_timestep_forward(f, t, 3);
	CHECK(f[0] == 0 && f[32] == 1);
	for (int kk = 0; kk < 32; kk += 7) {
		double a = 1000.0 * 0.37f * pow(10000, -kk / 32.0);
		CHECK(fabs(f[64 + kk] - sin(a)) < 1e-7 && fabs(f[64 + 32 + kk] - cos(a)) < 1e-7);
	}
}

// The fused residual + rmsnorm gives the bits of the two kernels one after the other, in place
// (the sampler) and into another array (training keeps both sums), on row widths with and
// without a remainder of the vector width, threads or not.
static void test_residual_rmsnorm(void)
{
	printf("residual + rmsnorm\n");
	static const int shapes[][2] = {{1, 7}, {3, 384}, {200, 384}, {37, 100}, {64, 13}};
	int same = 1;
	for (size_t t = 0; t < sizeof shapes / sizeof *shapes; t++) {
		int N = shapes[t][0], C = shapes[t][1];
		size_t n = (size_t)N * C;
		double *x = vec(n, 3), *b = vec(n, 3), *w = vec((size_t)C, 1.5);
		float *x1 = tof(x, n), *x2 = tof(x, n), *fb = tof(b, n), *fw = tof(w, (size_t)C);
		float *o1 = malloc(n * sizeof *o1), *o2 = malloc(n * sizeof *o2);
		float *r1 = malloc((size_t)N * sizeof *r1), *r2 = malloc((size_t)N * sizeof *r2);
		float *y3 = malloc(n * sizeof *y3), *o3 = malloc(n * sizeof *o3);
		float *r3 = malloc((size_t)N * sizeof *r3), *x3 = tof(x, n);
		mm_residual_forward(x1, x1, fb, n);
		mm_rmsnorm_forward(o1, r1, x1, fw, N, C);
		mm_residual_rmsnorm_forward(x2, x2, fb, o2, r2, fw, N, C);
		mm_residual_rmsnorm_forward(y3, x3, fb, o3, r3, fw, N, C);
		same &= memcmp(x1, x2, n * sizeof *x1) == 0 && memcmp(o1, o2, n * sizeof *o1) == 0 &&
			memcmp(r1, r2, (size_t)N * sizeof *r1) == 0;
		float *x0 = tof(x, n); // the input of the out-of-place call is left as it was
		same &= memcmp(x1, y3, n * sizeof *x1) == 0 && memcmp(o1, o3, n * sizeof *o1) == 0 &&
			memcmp(r1, r3, (size_t)N * sizeof *r1) == 0 && memcmp(x3, x0, n * sizeof *x0) == 0;
		free(x), free(b), free(w), free(x1), free(x2), free(fb), free(fw), free(o1), free(o2), free(r1), free(r2);
		free(y3), free(o3), free(r3), free(x3), free(x0);
	}
	CHECK(same);
}

int main(void)
{
	mm_rng_seed(&rng, 42, 0);
	openblas_set_num_threads(1); // as the model runs it (see kernels.h)
	omp_set_num_threads(2);
	test_matmul();
	test_rmsnorm();
	test_rope();
	test_attention();
	test_swiglu();
	test_crossentropy();
	test_vmse();
	test_embedding();
	test_residual_timestep();
	test_residual_rmsnorm();
	return check_done();
}
