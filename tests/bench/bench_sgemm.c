// The BLAS ceiling for make bench: OpenBLAS sgemm at one shape, C (M, N) = A (M, K) @ B^T, B
// (N, K) (the layout of the model's matmuls), THREADS threads two ways: OpenBLAS's own threads
// on the whole product, and (as mm's kernels do) THREADS OpenMP threads each running a
// single-threaded sgemm on its slab of rows. Prints both, then the better of the two medians as
// "gflops_median=... gflops_min=... gflops_max=..." (the figures of that way).
//   bench_sgemm M N K THREADS [CALLS]
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"

void openblas_set_num_threads(int n);

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: bench_sgemm M N K THREADS [CALLS]\n");
		return 2;
	}
	int M = atoi(argv[1]), N = atoi(argv[2]), K = atoi(argv[3]), th = atoi(argv[4]);
	int calls = argc > 5 ? atoi(argv[5]) : 15;
	if (M < 1 || N < 1 || K < 1 || th < 1 || calls < 1 || calls > 1000) {
		fprintf(stderr, "bench_sgemm: bad arguments\n");
		return 2;
	}
	float *a = malloc(sizeof(float) * M * K), *b = malloc(sizeof(float) * N * K), *c = malloc(sizeof(float) * M * N);
	double *g = malloc(sizeof(double) * calls);
	if (!a || !b || !c || !g)
		return 1;
	for (long i = 0; i < (long)M * K; i++)
		a[i] = (float)((i * 7919) % 1000) / 1000 - 0.5f;
	for (long i = 0; i < (long)N * K; i++)
		b[i] = (float)((i * 104729) % 1000) / 1000 - 0.5f;
	double best[3] = {0};
	for (int way = 0; way < 2; way++) {
		openblas_set_num_threads(way ? 1 : th);
		omp_set_num_threads(th);
		for (int i = -3; i < calls; i++) { // 3 warm-up calls: thread start, page faults
			double t0 = mm_now();
			if (!way) {
				cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1, a, K, b, K, 0, c, N);
			} else {
#pragma omp parallel for schedule(static)
				for (int s = 0; s < th; s++) {
					int r0 = (int)((long)M * s / th), r1 = (int)((long)M * (s + 1) / th);
					cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r1 - r0, N, K, 1, a + (long)r0 * K, K,
						    b, K, 0, c + (long)r0 * N, N);
				}
			}
			if (i >= 0)
				g[i] = 2.0 * M * N * K / (mm_now() - t0) / 1e9;
		}
		qsort(g, calls, sizeof *g, bench_cmp);
		printf("sgemm %dx%dx%d on %d threads, %s: median %.1f GFLOP/s (%.1f-%.1f)\n", M, N, K, th,
		       way ? "OpenMP threads on row slabs, OpenBLAS on 1 each" : "OpenBLAS's threads", g[calls / 2],
		       g[0], g[calls - 1]);
		if (g[calls / 2] > best[0])
			best[0] = g[calls / 2], best[1] = g[0], best[2] = g[calls - 1];
	}
	printf("gflops_median=%.1f gflops_min=%.1f gflops_max=%.1f\n", best[0], best[1], best[2]);
	free(a), free(b), free(c), free(g);
	return 0;
}
