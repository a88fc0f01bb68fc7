// The per-kernel timers of lib/prof.h, and the clock they and the tools read.
#include "prof.h"

#include <string.h>
#include <time.h>

mm_prof mm_prof_state;

const char *mm_prof_name(int k)
{
	static const char *names[] = {
#define MM_X(name) #name,
		MM_PROF_KERNELS(MM_X)
#undef MM_X
	};
	return k >= 0 && k < MM_PROF_N ? names[k] : "?";
}

double mm_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
