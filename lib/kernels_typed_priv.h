// The model's kernels, written once over a scalar type and compiled twice: in float for the
// library (lib/kernels.c) and in double for the gradient checks (tests/), which need the
// precision to see central differences agree to ~1e-7.
//
// Before including, define REAL (float or double), KFN(name) (the function's name for this
// type: mm_##name for float, mmd_##name for double; lib/typed_names_priv.h maps each plain name
// to it) and MM_GEMM (cblas_sgemm or cblas_dgemm).
// No include guard: a file may include this once per type.
//
// Shapes and contracts are documented in lib/kernels.h. Every *_backward accumulates (+=) into
// the gradients it is given. No reduction depends on the thread count: rows are split across
// threads, column sums over rows are split by fixed column blocks and run rows in order, and
// attention gives each (row, head) to one thread. Results are the same bytes whatever the number
// of OpenMP threads (what OpenBLAS does with its own threads is up to OpenBLAS).
#include <cblas.h>
#include <omp.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <tgmath.h> // exp, sqrt, sin, cos pick the float or double version from REAL

#include "batch.h"
#include "fastexp.h"
#include "kernels.h" // mm_span, MM_ATT_QB
#include "typed_names_priv.h"

// The float kernels time themselves for mm-train --profile (lib/prof.h); other types do not.
#ifndef MM_KPROF
#define MM_KPROF(name) ((void)0)
#endif

#ifndef MM_KERNELS_SHARED
#define MM_KERNELS_SHARED
// Attention's loops over a row of scores (softmax, its backward) are also compiled for AVX2 and
// AVX-512, and the version the processor runs is chosen when the program loads; the library is
// otherwise built for plain x86-64, 4 floats a vector. Every version does the same IEEE
// operations in the same order (no fused multiply-add: the Makefile builds with
// -ffp-contract=off; the sums run in 8 lanes of a fixed order), so the results are the same
// bytes whichever runs.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11 && !defined(MM_NO_CLONES)
#define MM_VEC_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MM_VEC_CLONES
#endif
// Loops over fewer elements than this run on one thread: waking threads costs more.
#define MM_PAR_MIN 16384
// Column block of the column sums: each block is one task, its rows summed in order.
#define MM_COLBLOCK 64

// The attention mask of lib/model.h: may position i attend to position j (same row)?
// Without branches (every load is of a valid index), so that a loop over j vectorises.
static inline int mm_att_allowed(const int32_t *doc, const int32_t *img, int i, int j)
{
	return (j == i) | ((doc[i] >= 0) & (doc[j] == doc[i]) & ((j < i) | ((img[i] >= 0) & (img[j] == img[i]))));
}
#endif

// Scores p[0..n) of query i: -inf where the mask forbids key j. Loaded either way, so that the
// select vectorises. Training's attention and the cached one both mask here.
static inline void att_mask_row(REAL *p, const int32_t *doc, const int32_t *img, int i, int n)
{
#pragma omp simd
	for (int j = 0; j < n; j++) {
		REAL x = p[j];
		p[j] = mm_att_allowed(doc, img, i, j) ? x : -INFINITY;
	}
}

// The exponential of the elementwise kernels: the vectorizable one in float, libm's in double.
#define MM_EXPV(x) _Generic((x), float: mm_fast_expf, default: exp)(x)

#ifndef MM_EXP_UNMASKED
// p[j] = exp(p[j] - mx), and exactly 0 where p[j] is -inf (a masked score). In float the test
// is on the bits: a float comparison is not turned into a vector select (it may trap, as far as
// the compiler knows), and the loop would stay scalar.
static inline void mm_exp_unmasked_f(float *p, int n, float mx)
{
#pragma omp simd
	for (int j = 0; j < n; j++) {
		float x = p[j], e = mm_fast_expf(x - mx);
		uint32_t xb, eb;
		memcpy(&xb, &x, sizeof xb);
		memcpy(&eb, &e, sizeof eb);
		eb &= 0u - (uint32_t)(xb != 0xff800000u); // the bits of -inf
		memcpy(&p[j], &eb, sizeof eb);
	}
}
static inline void mm_exp_unmasked_d(double *p, int n, double mx)
{
	for (int j = 0; j < n; j++)
		p[j] = p[j] == -INFINITY ? 0 : exp(p[j] - mx);
}
#define MM_EXP_UNMASKED(p, n, mx) _Generic((p), float *: mm_exp_unmasked_f, double *: mm_exp_unmasked_d)(p, n, mx)
#endif

// acc (C) += column sums of x (N, C), in row order for every column.
static void colsum_add(REAL *acc, const REAL *x, int N, int C)
{
	int nblocks = (C + MM_COLBLOCK - 1) / MM_COLBLOCK;
#pragma omp parallel for schedule(static) if ((size_t)N * C > MM_PAR_MIN)
	for (int blk = 0; blk < nblocks; blk++) {
		int c0 = blk * MM_COLBLOCK, c1 = c0 + MM_COLBLOCK < C ? c0 + MM_COLBLOCK : C;
		REAL s[MM_COLBLOCK] = {0};
		for (int n = 0; n < N; n++) {
			const REAL *row = x + (size_t)n * C;
			for (int c = c0; c < c1; c++)
				s[c - c0] += row[c];
		}
		for (int c = c0; c < c1; c++)
			acc[c] += s[c - c0];
	}
}


// C (M, Nc) = op(A) @ op(B) + beta C, row-major. The rows of C are cut into slabs, and the
// OpenMP threads call a single-threaded BLAS on the slabs: measured here, this runs near twice
// as fast as the BLAS's own threads alternating with our OpenMP loops, whose idle threads keep
// spinning on the cores the BLAS threads need. The BLAS rounds an element differently
// depending on where its row falls in a call, so the slabs depend on the shape only, never on
// the thread count. Each call packs the whole of B again, so the fewer slabs the better: two
// (one per core on the 2-core machines we target) up to 4096 rows, then one per 1024 rows.
static void gemm(int ta, int tb, int M, int Nc, int K, const REAL *A, int lda, const REAL *B,
		      int ldb, REAL beta, REAL *C, int ldc)
{
	enum CBLAS_TRANSPOSE opa = ta ? CblasTrans : CblasNoTrans, opb = tb ? CblasTrans : CblasNoTrans;
	int ns = M / 1024 > 2 ? M / 1024 : 2;
	ns -= ns % 2;
	if (M < 128 || (double)M * Nc * K < 4e6) {
		MM_GEMM(CblasRowMajor, opa, opb, M, Nc, K, 1, A, lda, B, ldb, beta, C, ldc);
		return;
	}
#pragma omp parallel for schedule(static)
	for (int s = 0; s < ns; s++) {
		int r0 = (int)((int64_t)M * s / ns), r1 = (int)((int64_t)M * (s + 1) / ns);
		const REAL *a = ta ? A + r0 : A + (size_t)r0 * lda; // row r0 of op(A)
		MM_GEMM(CblasRowMajor, opa, opb, r1 - r0, Nc, K, 1, a, lda, B, ldb, beta,
			C + (size_t)r0 * ldc, ldc);
	}
}

void matmul_forward(REAL *out, const REAL *inp, const REAL *w, const REAL *bias, int N, int C,
			 int OC)
{
	MM_KPROF(matmul_forward);
	if (N <= 0 || OC <= 0)
		return;
	REAL beta = 0;
	if (bias || C <= 0) {
#pragma omp parallel for schedule(static) if ((size_t)N * OC > MM_PAR_MIN)
		for (int n = 0; n < N; n++) {
			REAL *o = out + (size_t)n * OC;
			if (bias)
				memcpy(o, bias, (size_t)OC * sizeof *o);
			else
				memset(o, 0, (size_t)OC * sizeof *o);
		}
		beta = 1;
	}
	if (C > 0)
		gemm(0, 1, N, OC, C, inp, C, w, C, beta, out, OC);
}

void matmul_backward(REAL *dinp, REAL *dw, REAL *dbias, const REAL *dout, const REAL *inp,
			  const REAL *w, int N, int C, int OC)
{
	MM_KPROF(matmul_backward);
	if (N <= 0 || OC <= 0)
		return;
	if (dinp && C > 0) // (N, C) += (N, OC) @ (OC, C)
		gemm(0, 0, N, C, OC, dout, OC, w, C, 1, dinp, C);
	if (dw && C > 0) // (OC, C) += (N, OC)^T @ (N, C)
		gemm(1, 0, OC, C, N, dout, OC, inp, C, 1, dw, C);
	if (dbias)
		colsum_add(dbias, dout, N, OC);
}

// One row of rmsnorm_forward (also the second half of residual_rmsnorm_forward, which must
// round as it does); returns the row's rstd.
static inline REAL rmsnorm_row(REAL *o, const REAL *x, const REAL *w, int C)
{
	REAL ss = 0;
#pragma omp simd reduction(+ : ss)
	for (int c = 0; c < C; c++)
		ss += x[c] * x[c];
	REAL r = 1 / sqrt(ss / C + (REAL)1e-5);
	// o may be x: each value is read before it is written
#pragma omp simd
	for (int c = 0; c < C; c++)
		o[c] = x[c] * r * w[c];
	return r;
}

void rmsnorm_forward(REAL *out, REAL *rstd, const REAL *inp, const REAL *w, int N, int C)
{
	MM_KPROF(rmsnorm_forward);
#pragma omp parallel for schedule(static) if ((size_t)N * C > MM_PAR_MIN)
	for (int n = 0; n < N; n++)
		rstd[n] = rmsnorm_row(out + (size_t)n * C, inp + (size_t)n * C, w, C);
}

void residual_rmsnorm_forward(REAL *y, const REAL *x, const REAL *b, REAL *out, REAL *rstd,
				   const REAL *w, int N, int C)
{
	MM_KPROF(residual_rmsnorm_forward);
#pragma omp parallel for schedule(static) if ((size_t)N * C > MM_PAR_MIN)
	for (int n = 0; n < N; n++) {
		REAL *yr = y + (size_t)n * C;
		const REAL *xr = x + (size_t)n * C, *br = b + (size_t)n * C;
#pragma omp simd
		for (int c = 0; c < C; c++)
			yr[c] = xr[c] + br[c];
		rstd[n] = rmsnorm_row(out + (size_t)n * C, yr, w, C);
	}
}

void rmsnorm_backward(REAL *dinp, REAL *dw, const REAL *dout, const REAL *inp, const REAL *rstd,
			   const REAL *w, int N, int C)
{
	MM_KPROF(rmsnorm_backward);
	// y = x r w with r = (mean(x^2) + eps)^-1/2, dr/dx_c = -r^3 x_c / C
#pragma omp parallel for schedule(static) if ((size_t)N * C > MM_PAR_MIN)
	for (int n = 0; n < N; n++) {
		const REAL *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
		REAL *dx = dinp + (size_t)n * C;
		REAL r = rstd[n], dot = 0;
#pragma omp simd reduction(+ : dot)
		for (int c = 0; c < C; c++)
			dot += w[c] * dy[c] * x[c];
		REAL k = r * r * r * dot / C;
		for (int c = 0; c < C; c++)
			dx[c] += r * w[c] * dy[c] - k * x[c];
	}
	if (!dw)
		return;
	int nblocks = (C + MM_COLBLOCK - 1) / MM_COLBLOCK;
#pragma omp parallel for schedule(static) if ((size_t)N * C > MM_PAR_MIN)
	for (int blk = 0; blk < nblocks; blk++) {
		int c0 = blk * MM_COLBLOCK, c1 = c0 + MM_COLBLOCK < C ? c0 + MM_COLBLOCK : C;
		REAL s[MM_COLBLOCK] = {0};
		for (int n = 0; n < N; n++) {
			const REAL *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
			for (int c = c0; c < c1; c++)
				s[c - c0] += dy[c] * x[c] * rstd[n];
		}
		for (int c = c0; c < c1; c++)
			dw[c] += s[c - c0];
	}
}

void rope_table(REAL *cosb, REAL *sinb, const int32_t *pos, int N, int hd)
{
	MM_KPROF(rope_table);
	int half = hd / 2;
#pragma omp parallel for schedule(static) if ((size_t)N * half > 2048)
	for (int n = 0; n < N; n++)
		for (int i = 0; i < half; i++) {
			// in double whatever REAL is: angles reach T radians
			double a = (double)pos[n] * pow(10000.0, -2.0 * i / hd);
			cosb[(size_t)n * half + i] = (REAL)cos(a);
			sinb[(size_t)n * half + i] = (REAL)sin(a);
		}
}

void rope_forward(REAL *x, const REAL *cosb, const REAL *sinb, int N, int H, int hd)
{
	MM_KPROF(rope_forward);
	int half = hd / 2;
#pragma omp parallel for schedule(static) if ((size_t)N * H * hd > MM_PAR_MIN)
	for (int n = 0; n < N; n++) {
		const REAL *cs = cosb + (size_t)n * half, *sn = sinb + (size_t)n * half;
		for (int h = 0; h < H; h++) {
			REAL *p = x + ((size_t)n * H + h) * hd;
			for (int i = 0; i < half; i++) {
				REAL a = p[2 * i], b = p[2 * i + 1];
				p[2 * i] = a * cs[i] - b * sn[i];
				p[2 * i + 1] = a * sn[i] + b * cs[i];
			}
		}
	}
}

void rope_backward(REAL *dx, const REAL *cosb, const REAL *sinb, int N, int H, int hd)
{
	MM_KPROF(rope_backward);
	int half = hd / 2;
#pragma omp parallel for schedule(static) if ((size_t)N * H * hd > MM_PAR_MIN)
	for (int n = 0; n < N; n++) {
		const REAL *cs = cosb + (size_t)n * half, *sn = sinb + (size_t)n * half;
		for (int h = 0; h < H; h++) {
			REAL *p = dx + ((size_t)n * H + h) * hd;
			for (int i = 0; i < half; i++) { // the transpose of the rotation
				REAL a = p[2 * i], b = p[2 * i + 1];
				p[2 * i] = a * cs[i] + b * sn[i];
				p[2 * i + 1] = -a * sn[i] + b * cs[i];
			}
		}
	}
}

// Block-wise attention over a batch's rows. Per (row, head), queries in blocks of MM_ATT_QB;
// a block's queries may see only keys of their own documents, up to the last of them or to the
// end of its image (bidirectional), so each block takes the key range [lo, hi) that holds all of
// those (att_block_range) and nothing else: the scores of that range by one GEMM into the
// thread's buffer, the mask and softmax of lib/model.h, the weighted values by a second GEMM
// (divided by the softmax's sums after it: exp_masked_sum).
// A causal row of T positions computes about half of T x T scores, and a row packed with short
// documents a small part; no (T, T) matrix is ever held. lse keeps each query's log-sum-exp of
// its scores, from which the backward rebuilds the probabilities.

// Whether the documents and images of a row lie in runs of one value each, in increasing order
// (as every packer of mm lays them out); when not, every block takes the whole row, which the
// mask still makes exact.
static int att_row_runs(const int32_t *doc, const int32_t *img, int T)
{
	int32_t last_doc = -1, last_img = -1;
	for (int i = 0; i < T; i++) {
		if (doc[i] >= 0 && (i == 0 || doc[i - 1] != doc[i])) {
			if (doc[i] <= last_doc)
				return 0;
			last_doc = doc[i];
		}
		if (img[i] >= 0 && (i == 0 || img[i - 1] != img[i])) {
			if (img[i] <= last_img)
				return 0;
			last_img = img[i];
		}
	}
	return 1;
}

// The key range [*lo, *hi) of queries [i0, i1) of a row: from the start of the first query's
// document (or the first query, outside any document) to the last query, or to the end of the
// image the last query is in.
static void att_block_range(const int32_t *doc, const int32_t *img, int T, int runs, int i0, int i1, int *lo,
			    int *hi)
{
	if (!runs) {
		*lo = 0, *hi = T;
		return;
	}
	int a = i0, b = i1;
	if (doc[i0] >= 0)
		while (a > 0 && doc[a - 1] == doc[i0])
			a--;
	int e = i1 - 1;
	if (doc[e] >= 0 && img[e] >= 0)
		while (b < T && img[b] == img[e] && doc[b] == doc[e])
			b++;
	*lo = a, *hi = b;
}

// In a row whose documents and images are runs (att_row_runs), the keys query i may see are one
// interval [*a, *b): from its document's start to itself, or to the end of its image (an image
// lies inside its document and starts at or before i); itself alone outside any document. The
// queries of a row must come in order, i = 0, 1, ...: st carries the current document's start
// and image's end from one to the next.
typedef struct att_walk {
	int ds, ie;
} att_walk;
static inline void att_span_next(att_walk *st, const int32_t *doc, const int32_t *img, int T, int i, int *a,
				 int *b)
{
	if (i == 0 || doc[i] != doc[i - 1])
		st->ds = i;
	if (doc[i] >= 0 && img[i] >= 0 && (i == 0 || img[i - 1] != img[i] || doc[i - 1] != doc[i])) {
		st->ie = i + 1;
		while (st->ie < T && img[st->ie] == img[i] && doc[st->ie] == doc[i])
			st->ie++;
	}
	*a = doc[i] >= 0 ? st->ds : i;
	*b = doc[i] >= 0 && img[i] >= 0 ? st->ie : i + 1;
}

// p (n): scores, masked ones at -inf, replaced by exp(score - max) (masked: 0): the numerators of
// their softmax. The attentions divide their (nq, hd) output rows by the sum instead of the
// scores, hd divisions a query where the softmax would take n. Returns the sum; *lse (when not
// NULL) gets the log-sum-exp (max + log sum), which the attention's backward reads.
MM_VEC_CLONES static REAL exp_masked_sum(REAL *p, int n, REAL *lse)
{
	// Loops the compiler vectorises: the maximum is the same in any order; the exponentials
	// are elementwise; the sum runs in 8 lanes of a fixed order (the same on every run).
	REAL mx = -INFINITY, lane[8] = {0}, sum = 0;
#pragma omp simd reduction(max : mx)
	for (int j = 0; j < n; j++)
		mx = p[j] > mx ? p[j] : mx;
	MM_EXP_UNMASKED(p, n, mx);
	int j = 0;
	for (; j + 8 <= n; j += 8)
		for (int l = 0; l < 8; l++)
			lane[l] += p[j + l];
	for (; j < n; j++)
		sum += p[j];
	for (int l = 0; l < 8; l++)
		sum += lane[l];
	if (lse)
		*lse = mx + log(sum);
	return sum;
}

// Row r of o (nq rows of hd at stride D) times inv[r]: the softmax's division, on the output.
static void att_scale_rows(REAL *o, int D, const REAL *inv, int nq, int hd)
{
	for (int r = 0; r < nq; r++)
		for (int c = 0; c < hd; c++)
			o[(size_t)r * D + c] *= inv[r];
}

// The threads of an attention kernel: OpenMP's, at most one per scratch buffer.
static inline int att_threads(int nbuf)
{
	int n = omp_get_max_threads();
	return n < nbuf ? n : nbuf;
}

// One task of attention over a batch, task = b H + h: row b's document and image ids, whether
// they are runs (att_row_runs), and where head h starts in row b of a (B, T, H hd) array.
typedef struct att_row {
	const int32_t *doc, *img;
	int runs;
	size_t base;
} att_row;

static inline att_row att_row_at(long task, const int32_t *doc, const int32_t *img, int T, int H, int hd)
{
	int b = (int)(task / H), h = (int)(task % H);
	att_row r = {doc + (size_t)b * T, img + (size_t)b * T, 0, ((size_t)b * T * H + h) * hd};
	r.runs = att_row_runs(r.doc, r.img, T);
	return r;
}

void attention_forward(REAL *out, REAL *lse, REAL *scratch, int nbuf, const REAL *q, const REAL *k,
			    const REAL *v, const int32_t *doc, const int32_t *img, int B, int T, int H, int hd)
{
	MM_KPROF(attention_forward);
	int D = H * hd, nt = att_threads(nbuf);
	REAL scale = 1 / sqrt((REAL)hd);
	long tasks = (long)B * H;
#pragma omp parallel for schedule(dynamic) num_threads(nt) if (tasks > 1)
	for (long task = 0; task < tasks; task++) {
		att_row w = att_row_at(task, doc, img, T, H, hd);
		const int32_t *bd = w.doc, *bi = w.img;
		att_walk walk = {0, 0};
		REAL *sc = scratch + (size_t)omp_get_thread_num() * 2 * MM_ATT_QB * T;
		REAL *ls = lse + (size_t)task * T;
		for (int i0 = 0; i0 < T; i0 += MM_ATT_QB) {
			int i1 = i0 + MM_ATT_QB < T ? i0 + MM_ATT_QB : T, nq = i1 - i0, lo, hi;
			att_block_range(bd, bi, T, w.runs, i0, i1, &lo, &hi);
			int nk = hi - lo;
			MM_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, hd, scale, q + w.base + (size_t)i0 * D, D,
				k + w.base + (size_t)lo * D, D, 0, sc, nk);
			REAL inv[MM_ATT_QB];
			for (int r = 0; r < nq; r++) {
				REAL *p = sc + (size_t)r * nk;
				int i = i0 + r, a, e;
				if (!w.runs) {
					for (int j = 0; j < nk; j++)
						p[j] = mm_att_allowed(bd, bi, i, lo + j) ? p[j] : -INFINITY;
					inv[r] = 1 / exp_masked_sum(p, nk, &ls[i]);
					continue;
				}
				// the allowed keys are [a, e): exponentials there, zeros around them
				att_span_next(&walk, bd, bi, T, i, &a, &e);
				inv[r] = 1 / exp_masked_sum(p + (a - lo), e - a, &ls[i]);
				memset(p, 0, (size_t)(a - lo) * sizeof *p);
				memset(p + (e - lo), 0, (size_t)(hi - e) * sizeof *p);
			}
			REAL *o = out + w.base + (size_t)i0 * D;
			MM_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, hd, nk, 1, sc, nk, v + w.base + (size_t)lo * D, D,
				0, o, D);
			att_scale_rows(o, D, inv, nq, hd);
		}
	}
}

// Attention of new positions over a cache. Per span, head and block of up to MM_ATT_QB queries:
// scores by one matrix product over the span's document up to its last new position, the mask
// and softmax as above, the weighted values by a second product. Each (span, head) is one task of
// one OpenMP thread with its own score buffer and the single-threaded BLAS (kernels.h), so the
// result does not depend on the number of threads.
void attention_cached(REAL *out, REAL *scores, int nbuf, const REAL *q, const REAL *kc,
			   const REAL *vc, const int32_t *doc, const int32_t *img, const mm_span *sp,
			   int nsp, int T, int H, int hd)
{
	MM_KPROF(attention_cached);
	int D = H * hd, nt = att_threads(nbuf);
	REAL scale = 1 / sqrt((REAL)hd);
	long tasks = (long)nsp * H;
#pragma omp parallel for schedule(dynamic) num_threads(nt) if (tasks > 1)
	for (long task = 0; task < tasks; task++) {
		const mm_span *si = &sp[task / H];
		int hh = (int)(task % H), nk = si->start + si->n;
		size_t at0 = (size_t)si->slot * T;
		REAL *sc = scores + (size_t)omp_get_thread_num() * MM_ATT_QB * T;
		const REAL *kb = kc + at0 * D + hh * hd, *vb = vc + at0 * D + hh * hd;
		for (int q0 = 0; q0 < si->n; q0 += MM_ATT_QB) {
			int nq = si->n - q0 < MM_ATT_QB ? si->n - q0 : MM_ATT_QB;
			size_t at = (size_t)(si->row0 + q0) * D + hh * hd;
			MM_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, hd, scale, q + at, D, kb, D,
				0, sc, nk);
			REAL inv[MM_ATT_QB];
			for (int r = 0; r < nq; r++) {
				REAL *p = sc + (size_t)r * nk;
				att_mask_row(p, doc + at0, img + at0, si->start + q0 + r, nk);
				inv[r] = 1 / exp_masked_sum(p, nk, NULL);
			}
			MM_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, hd, nk, 1, sc, nk, vb, D, 0,
				out + at, D);
			att_scale_rows(out + at, D, inv, nq, hd);
		}
	}
}

// One query's row of the attention's backward over its n allowed keys: p (n) holds the scores
// and becomes the probabilities exp(score - lse); d (n) holds dP and becomes
// dS = P (dP - rowsum(P dP)) scale.
MM_VEC_CLONES static void att_grad_row(REAL *p, REAL *d, int n, REAL lse, REAL scale)
{
	REAL pdp = 0, lane[8] = {0};
	int j = 0;
	MM_EXP_UNMASKED(p, n, lse);
	for (; j + 8 <= n; j += 8) // 8 lanes in a fixed order, as in exp_masked_sum
		for (int l = 0; l < 8; l++)
			lane[l] += p[j + l] * d[j + l];
	for (; j < n; j++)
		pdp += p[j] * d[j];
	for (int l = 0; l < 8; l++)
		pdp += lane[l];
	for (j = 0; j < n; j++)
		d[j] = p[j] * (d[j] - pdp) * scale;
}

// The backward of attention_forward, block by block over the same key ranges: the
// probabilities rebuilt from the scores and lse, dP = dout v^T, dS = P (dP - rowsum(P dP)) / sqrt(hd),
// then dq += dS k, dk += dS^T q, dv += P^T dout. One (row, head) is one task, its blocks in
// order, so the sums into dk and dv have one order whatever the number of threads.
void attention_backward(REAL *dq, REAL *dk, REAL *dv, REAL *scratch, int nbuf, const REAL *dout,
			     const REAL *lse, const REAL *q, const REAL *k, const REAL *v, const int32_t *doc,
			     const int32_t *img, int B, int T, int H, int hd)
{
	MM_KPROF(attention_backward);
	int D = H * hd, nt = att_threads(nbuf);
	REAL scale = 1 / sqrt((REAL)hd);
	long tasks = (long)B * H;
#pragma omp parallel for schedule(dynamic) num_threads(nt) if (tasks > 1)
	for (long task = 0; task < tasks; task++) {
		att_row w = att_row_at(task, doc, img, T, H, hd);
		const int32_t *bd = w.doc, *bi = w.img;
		att_walk walk = {0, 0};
		REAL *pb = scratch + (size_t)omp_get_thread_num() * 2 * MM_ATT_QB * T, *ds = pb + (size_t)MM_ATT_QB * T;
		const REAL *ls = lse + (size_t)task * T;
		for (int i0 = 0; i0 < T; i0 += MM_ATT_QB) {
			int i1 = i0 + MM_ATT_QB < T ? i0 + MM_ATT_QB : T, nq = i1 - i0, lo, hi;
			att_block_range(bd, bi, T, w.runs, i0, i1, &lo, &hi);
			int nk = hi - lo;
			const REAL *qb = q + w.base + (size_t)i0 * D, *kb = k + w.base + (size_t)lo * D;
			const REAL *vb = v + w.base + (size_t)lo * D, *gb = dout + w.base + (size_t)i0 * D;
			MM_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, hd, scale, qb, D, kb, D, 0, pb, nk);
			MM_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, hd, 1, gb, D, vb, D, 0, ds, nk);
			for (int r = 0; r < nq; r++) {
				REAL *p = pb + (size_t)r * nk, *di = ds + (size_t)r * nk;
				int i = i0 + r, a = lo, e = hi;
				if (w.runs) { // the allowed keys are [a, e): zeros around them
					att_span_next(&walk, bd, bi, T, i, &a, &e);
					memset(p, 0, (size_t)(a - lo) * sizeof *p);
					memset(p + (e - lo), 0, (size_t)(hi - e) * sizeof *p);
					memset(di, 0, (size_t)(a - lo) * sizeof *di);
					memset(di + (e - lo), 0, (size_t)(hi - e) * sizeof *di);
				} else {
					for (int jj = 0; jj < nk; jj++)
						p[jj] = mm_att_allowed(bd, bi, i, lo + jj) ? p[jj] : -INFINITY;
				}
				att_grad_row(p + (a - lo), di + (a - lo), e - a, ls[i], scale);
			}
			MM_GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, nk, hd, nq, 1, pb, nk, gb, D, 1,
				dv + w.base + (size_t)lo * D, D);
			MM_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, hd, nk, 1, ds, nk, kb, D, 1,
				dq + w.base + (size_t)i0 * D, D);
			MM_GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, nk, hd, nq, 1, ds, nk, qb, D, 1,
				dk + w.base + (size_t)lo * D, D);
		}
	}
}

// silu(a) * b: the one SwiGLU of the forward, whatever the layout of its inputs.
static inline REAL silu_mul(REAL a, REAL b)
{
	return a / (1 + MM_EXPV(-a)) * b;
}

void swiglu_forward(REAL *out, const REAL *g, int N, int F)
{
	MM_KPROF(swiglu_forward);
#pragma omp parallel for schedule(static) if ((size_t)N * F > MM_PAR_MIN)
	for (int n = 0; n < N; n++) {
		const REAL *g1 = g + (size_t)n * 2 * F, *g3 = g1 + F;
		REAL *o = out + (size_t)n * F;
#pragma omp simd
		for (int i = 0; i < F; i++)
			o[i] = silu_mul(g1[i], g3[i]);
	}
}

void swiglu_backward(REAL *dg, const REAL *dout, const REAL *g, int N, int F)
{
	MM_KPROF(swiglu_backward);
#pragma omp parallel for schedule(static) if ((size_t)N * F > MM_PAR_MIN)
	for (int n = 0; n < N; n++) {
		const REAL *g1 = g + (size_t)n * 2 * F, *g3 = g1 + F, *d = dout + (size_t)n * F;
		REAL *d1 = dg + (size_t)n * 2 * F, *d3 = d1 + F;
#pragma omp simd
		for (int i = 0; i < F; i++) {
			REAL sg = 1 / (1 + MM_EXPV(-g1[i]));
			d1[i] += d[i] * g3[i] * sg * (1 + g1[i] * (1 - sg));
			d3[i] += d[i] * g1[i] * sg;
		}
	}
}

void crossentropy_forward(REAL *losses, REAL *lse, const REAL *logits, const int32_t *targets,
			       int N, int V)
{
	MM_KPROF(crossentropy_forward);
#pragma omp parallel for schedule(static) if ((size_t)N * V > MM_PAR_MIN)
	for (int n = 0; n < N; n++) {
		const REAL *l = logits + (size_t)n * V;
		REAL mx = l[0], sum = 0;
		for (int i = 1; i < V; i++)
			mx = l[i] > mx ? l[i] : mx;
		for (int i = 0; i < V; i++)
			sum += exp(l[i] - mx);
		lse[n] = mx + log(sum);
		losses[n] = targets[n] >= 0 ? lse[n] - l[targets[n]] : 0;
	}
}

void crossentropy_backward(REAL *dlogits, const REAL *logits, const REAL *lse,
				const int32_t *targets, REAL dloss, int N, int V)
{
	MM_KPROF(crossentropy_backward);
#pragma omp parallel for schedule(static) if ((size_t)N * V > MM_PAR_MIN)
	for (int n = 0; n < N; n++) {
		if (targets[n] < 0)
			continue;
		const REAL *l = logits + (size_t)n * V;
		REAL *d = dlogits + (size_t)n * V;
		for (int i = 0; i < V; i++)
			d[i] += dloss * exp(l[i] - lse[n]);
		d[targets[n]] -= dloss;
	}
}

void vmse_forward(REAL *losses, const REAL *xpred, const REAL *x, const REAL *z, const REAL *t,
		       int N, int P)
{
	MM_KPROF(vmse_forward);
#pragma omp parallel for schedule(static) if ((size_t)N * P > MM_PAR_MIN)
	for (int n = 0; n < N; n++) {
		REAL s = 1 - t[n] > (REAL)MM_T_FLOOR ? 1 - t[n] : (REAL)MM_T_FLOOR, sum = 0;
		for (int p = 0; p < P; p++) {
			size_t i = (size_t)n * P + p;
			REAL e = (xpred[i] - z[i]) / s - (x[i] - z[i]) / s;
			sum += e * e;
		}
		losses[n] = sum;
	}
}

void vmse_backward(REAL *dxpred, const REAL *xpred, const REAL *x, const REAL *z, const REAL *t,
			REAL dloss, int N, int P)
{
	MM_KPROF(vmse_backward);
#pragma omp parallel for schedule(static) if ((size_t)N * P > MM_PAR_MIN)
	for (int n = 0; n < N; n++) {
		REAL s = 1 - t[n] > (REAL)MM_T_FLOOR ? 1 - t[n] : (REAL)MM_T_FLOOR;
		for (int p = 0; p < P; p++) {
			size_t i = (size_t)n * P + p;
			REAL e = (xpred[i] - z[i]) / s - (x[i] - z[i]) / s;
			dxpred[i] += dloss * 2 * e / s;
		}
	}
}

void embedding_forward(REAL *out, const REAL *table, const int32_t *ids, int N, int C)
{
	MM_KPROF(embedding_forward);
#pragma omp parallel for schedule(static) if ((size_t)N * C > MM_PAR_MIN)
	for (int n = 0; n < N; n++) {
		REAL *o = out + (size_t)n * C;
		if (ids[n] >= 0)
			memcpy(o, table + (size_t)ids[n] * C, (size_t)C * sizeof *o);
		else
			memset(o, 0, (size_t)C * sizeof *o);
	}
}

void embedding_backward(REAL *dtable, const REAL *dout, const int32_t *ids, int N, int C)
{
	MM_KPROF(embedding_backward);
	// Split by columns, not rows: two rows with the same id never race, and each entry
	// receives its terms in row order.
	int nblocks = (C + MM_COLBLOCK - 1) / MM_COLBLOCK;
#pragma omp parallel for schedule(static) if ((size_t)N * C > MM_PAR_MIN)
	for (int blk = 0; blk < nblocks; blk++) {
		int c0 = blk * MM_COLBLOCK, c1 = c0 + MM_COLBLOCK < C ? c0 + MM_COLBLOCK : C;
		for (int n = 0; n < N; n++) {
			if (ids[n] < 0)
				continue;
			REAL *d = dtable + (size_t)ids[n] * C;
			const REAL *g = dout + (size_t)n * C;
			for (int c = c0; c < c1; c++)
				d[c] += g[c];
		}
	}
}

void timestep_forward(REAL *out, const REAL *t, int N)
{
	MM_KPROF(timestep_forward);
	double w[32];
	for (int k = 0; k < 32; k++)
		w[k] = pow(10000.0, -k / 32.0);
#pragma omp parallel for schedule(static) if (N > 256)
	for (int n = 0; n < N; n++)
		for (int k = 0; k < 32; k++) {
			// in double whatever REAL is: the angle reaches 1000 radians
			double a = 1000.0 * (double)t[n] * w[k];
			out[(size_t)n * 64 + k] = (REAL)sin(a);
			out[(size_t)n * 64 + 32 + k] = (REAL)cos(a);
		}
}

void residual_forward(REAL *out, const REAL *a, const REAL *b, size_t n)
{
	MM_KPROF(residual_forward);
#pragma omp parallel for schedule(static) if (n > MM_PAR_MIN)
	for (size_t i = 0; i < n; i++)
		out[i] = a[i] + b[i];
}

void residual_backward(REAL *da, REAL *db, const REAL *dout, size_t n)
{
	MM_KPROF(residual_backward);
#pragma omp parallel for schedule(static) if (n > MM_PAR_MIN)
	for (size_t i = 0; i < n; i++) {
		da[i] += dout[i];
		db[i] += dout[i];
	}
}
