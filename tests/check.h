// Minimal assertions for test programs: every failed check prints file, line and the values,
// and the program exits 1 at the end (check_done) if any check failed.
#ifndef MM_TESTS_CHECK_H
#define MM_TESTS_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int check_failures, check_count;

#define CHECK(cond)                                                                   \
	do {                                                                          \
		check_count++;                                                        \
		if (!(cond)) {                                                        \
			check_failures++;                                             \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
		}                                                                     \
	} while (0)

#define CHECK_MSG(cond, ...)                                                          \
	do {                                                                          \
		check_count++;                                                        \
		if (!(cond)) {                                                        \
			check_failures++;                                             \
			fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                                 \
			fputc('\n', stderr);                                          \
		}                                                                     \
	} while (0)

#define CHECK_EQ_INT(a, b)                                                            \
	do {                                                                          \
		long long va_ = (long long)(a), vb_ = (long long)(b);                \
		CHECK_MSG(va_ == vb_, "%lld != %lld", va_, vb_);                      \
	} while (0)

// Calls a libmm function and checks it returned 0, printing mm_errmsg() otherwise.
#define CHECK_OK(call)                                                                \
	do {                                                                          \
		int rc_ = (call);                                                     \
		CHECK_MSG(rc_ == 0, "returned %d: %s", rc_, mm_errmsg());             \
	} while (0)

static inline int check_done(void)
{
	if (check_failures) {
		fprintf(stderr, "%d of %d checks failed\n", check_failures, check_count);
		return 1;
	}
	printf("%d checks passed\n", check_count);
	return 0;
}

#endif
