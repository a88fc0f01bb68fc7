#include "rng.h"

#include <math.h>

#include "checksum.h"

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void mm_rng_seed(mm_rng *r, uint64_t seed, uint64_t stream)
{
	uint64_t x = seed ^ mm_mix64(stream + 0x9e3779b97f4a7c15ULL);
	for (int i = 0; i < 4; i++) {
		x += 0x9e3779b97f4a7c15ULL;
		r->s[i] = mm_mix64(x);
	}
}

uint64_t mm_rng_u64(mm_rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

double mm_rng_uniform(mm_rng *r)
{
	return (double)(mm_rng_u64(r) >> 11) * 0x1.0p-53;
}

uint64_t mm_rng_below(mm_rng *r, uint64_t n)
{
	uint64_t limit = UINT64_MAX - UINT64_MAX % n;
	uint64_t v;
	do
		v = mm_rng_u64(r);
	while (v >= limit);
	return v % n;
}

double mm_rng_normal(mm_rng *r)
{
	double u1 = 1.0 - mm_rng_uniform(r); // (0, 1]: log is finite
	double u2 = mm_rng_uniform(r);
	return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}
