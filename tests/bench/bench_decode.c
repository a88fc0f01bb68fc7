// The decode-only peer of mm-tokenize for make bench: reads and decodes every image file named
// on stdin (one path a line) with the library's decoder, on THREADS OpenMP threads, and keeps
// nothing. Prints "files=N seconds=S files_per_s=R" from its own clock, which starts after the
// list is read; make bench times the whole command instead, as it times mm-tokenize.
//   bench_decode THREADS < list
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "image.h"

int main(int argc, char **argv)
{
	int th = argc > 1 ? atoi(argv[1]) : 1;
	if (th < 1) {
		fprintf(stderr, "usage: bench_decode THREADS < list\n");
		return 2;
	}
	size_t n = 0, cap = 0;
	char **path = NULL, line[4096];
	while (fgets(line, sizeof line, stdin)) {
		line[strcspn(line, "\n")] = 0;
		if (!*line)
			continue;
		if (n == cap && !(path = realloc(path, (cap = cap ? 2 * cap : 1024) * sizeof *path)))
			return 1;
		if (!(path[n++] = strdup(line)))
			return 1;
	}
	omp_set_num_threads(th);
	int bad = 0;
	uint64_t sum = 0;
	double t0 = mm_now();
#pragma omp parallel for schedule(dynamic, 16) reduction(+ : bad, sum)
	for (size_t i = 0; i < n; i++) {
		mm_image img = {0};
		if (mm_image_load(path[i], 1 << 26, &img)) {
			bad++;
			continue;
		}
		sum += img.px[0]; // one byte read back, so the decode is not dead code
		mm_image_free(&img);
	}
	double dt = mm_now() - t0;
	if (bad) {
		fprintf(stderr, "bench_decode: %d files failed to decode\n", bad);
		return 1;
	}
	printf("files=%zu seconds=%.4f files_per_s=%.1f (checksum %llu)\n", n, dt, n / dt, (unsigned long long)sum);
	for (size_t i = 0; i < n; i++)
		free(path[i]);
	free(path);
	return 0;
}
