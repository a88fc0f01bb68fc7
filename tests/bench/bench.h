// Helpers of the benchmark programs of make bench (tests/bench/run.sh).
#ifndef MM_BENCH_H
#define MM_BENCH_H

#include "prof.h" // mm_now

// qsort order of doubles, smallest first.
static inline int bench_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

#endif
