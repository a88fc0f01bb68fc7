// The naive kernels the fast ones are tested against: three loops for a matmul, loops that
// skip masked pairs for attention. Written over REAL like lib/kernels_typed_priv.h, after which
// a test includes it once per type it needs (REAL and KFN set as for that file).
// No include guard, for that reason.
#define matmul_forward_naive KFN(matmul_forward_naive)
#define attention_forward_naive KFN(attention_forward_naive)
#define attention_backward_naive KFN(attention_backward_naive)
#define dots KFN(dots)

#ifndef MM_KERNELS_NAIVE_SHARED
#define MM_KERNELS_NAIVE_SHARED
// The span [*lo, *hi) of keys that query i may see (the mask may still exclude some inside).
static void mm_att_span(const int32_t *doc, const int32_t *img, int T, int i, int *lo, int *hi)
{
	int j0 = i, j1 = i + 1;
	for (int j = 0; j < i; j++)
		if (mm_att_allowed(doc, img, i, j)) {
			j0 = j;
			break;
		}
	for (int j = T - 1; j > i; j--)
		if (mm_att_allowed(doc, img, i, j)) {
			j1 = j + 1;
			break;
		}
	*lo = j0, *hi = j1;
}
#endif

// s[j] = a . rows[j] (hd values) for j in [lo, hi), rows `stride` apart. Four rows at a time
// share the loads of a; the sums run across d in vector lanes (a fixed order per build).
static void dots(REAL *s, const REAL *a, const REAL *rows, size_t stride, int lo, int hi,
		      int hd)
{
	int j = lo;
	for (; j + 4 <= hi; j += 4) {
		const REAL *r0 = rows + j * stride, *r1 = r0 + stride, *r2 = r1 + stride, *r3 = r2 + stride;
		REAL s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
		for (int d = 0; d < hd; d++) {
			s0 += a[d] * r0[d];
			s1 += a[d] * r1[d];
			s2 += a[d] * r2[d];
			s3 += a[d] * r3[d];
		}
		s[j] = s0, s[j + 1] = s1, s[j + 2] = s2, s[j + 3] = s3;
	}
	for (; j < hi; j++) {
		const REAL *r0 = rows + j * stride;
		REAL s0 = 0;
#pragma omp simd reduction(+ : s0)
		for (int d = 0; d < hd; d++)
			s0 += a[d] * r0[d];
		s[j] = s0;
	}
}


void matmul_forward_naive(REAL *out, const REAL *inp, const REAL *w, const REAL *bias, int N,
			       int C, int OC)
{
#pragma omp parallel for schedule(static)
	for (int n = 0; n < N; n++)
		for (int o = 0; o < OC; o++) {
			REAL s = bias ? bias[o] : 0;
			for (int c = 0; c < C; c++)
				s += inp[(size_t)n * C + c] * w[(size_t)o * C + c];
			out[(size_t)n * OC + o] = s;
		}
}

void attention_forward_naive(REAL *out, REAL *att, const REAL *q, const REAL *k,
				  const REAL *v, const int32_t *doc, const int32_t *img, int B, int T,
				  int H, int hd)
{
	int D = H * hd;
	REAL scale = 1 / sqrt((REAL)hd);
#pragma omp parallel for collapse(2) schedule(static)
	for (int b = 0; b < B; b++)
		for (int h = 0; h < H; h++) {
			const int32_t *bd = doc + (size_t)b * T, *bi = img + (size_t)b * T;
			const REAL *kb = k + (size_t)b * T * D + h * hd, *vb = v + (size_t)b * T * D + h * hd;
			for (int i = 0; i < T; i++) {
				const REAL *qi = q + ((size_t)b * T + i) * D + h * hd;
				REAL *p = att + (((size_t)b * H + h) * T + i) * T;
				int lo, hi;
				mm_att_span(bd, bi, T, i, &lo, &hi);
				for (int j = 0; j < lo; j++)
					p[j] = 0;
				for (int j = hi; j < T; j++)
					p[j] = 0;
				dots(p, qi, kb, D, lo, hi, hd);
				REAL mx = -INFINITY, sum = 0;
				for (int j = lo; j < hi; j++) {
					p[j] = mm_att_allowed(bd, bi, i, j) ? p[j] * scale : -INFINITY;
					mx = p[j] > mx ? p[j] : mx;
				}
				for (int j = lo; j < hi; j++) {
					p[j] = exp(p[j] - mx); // masked: exp(-inf) = 0
					sum += p[j];
				}
				REAL *o = out + ((size_t)b * T + i) * D + h * hd;
				memset(o, 0, (size_t)hd * sizeof *o);
				for (int j = lo; j < hi; j++) {
					REAL pj = p[j] /= sum;
					if (pj == 0)
						continue;
					const REAL *vj = vb + (size_t)j * D;
#pragma omp simd
					for (int d = 0; d < hd; d++)
						o[d] += pj * vj[d];
				}
			}
		}
}

void attention_backward_naive(REAL *dq, REAL *dk, REAL *dv, const REAL *dout,
				   const REAL *att, const REAL *q, const REAL *k, const REAL *v, int B,
				   int T, int H, int hd)
{
	int D = H * hd;
	REAL scale = 1 / sqrt((REAL)hd);
	// One thread owns a whole (row, head): dk and dv of its positions get their terms in order.
#pragma omp parallel for collapse(2) schedule(static)
	for (int b = 0; b < B; b++)
		for (int h = 0; h < H; h++) {
			REAL dp[T];
			size_t base = (size_t)b * T * D + h * hd;
			for (int i = 0; i < T; i++) {
				size_t oi = base + (size_t)i * D;
				const REAL *p = att + (((size_t)b * H + h) * T + i) * T;
				const REAL *doi = dout + oi, *qi = q + oi;
				REAL *dqi = dq + oi, pdp = 0;
				int lo = 0, hi = T; // the span of nonzero probabilities
				while (p[lo] == 0) // the largest probability is > 0: both loops stop
					lo++;
				while (p[hi - 1] == 0)
					hi--;
				dots(dp, doi, v + base, D, lo, hi, hd);
				for (int j = lo; j < hi; j++)
					pdp += p[j] * dp[j];
				for (int j = lo; j < hi; j++) {
					if (p[j] == 0)
						continue;
					REAL ds = p[j] * (dp[j] - pdp) * scale, pj = p[j]; // softmax backward
					const REAL *kj = k + base + (size_t)j * D;
					REAL *dkj = dk + base + (size_t)j * D, *dvj = dv + base + (size_t)j * D;
#pragma omp simd
					for (int d = 0; d < hd; d++)
						dqi[d] += ds * kj[d];
#pragma omp simd
					for (int d = 0; d < hd; d++) {
						dkj[d] += ds * qi[d];
						dvj[d] += pj * doi[d];
					}
				}
			}
		}
}
