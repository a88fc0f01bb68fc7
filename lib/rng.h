// Deterministic random numbers: xoshiro256** seeded through splitmix64.
// The state is four words, saved verbatim in checkpoints, so a resumed run draws the same numbers.
#ifndef MM_RNG_H
#define MM_RNG_H

#include <stdint.h>

typedef struct mm_rng {
	uint64_t s[4];
} mm_rng;

// Seeds a generator from a seed and a stream number; different streams are independent.
void mm_rng_seed(mm_rng *r, uint64_t seed, uint64_t stream);
uint64_t mm_rng_u64(mm_rng *r);
// Uniform in [0, 1) with 53 random bits.
double mm_rng_uniform(mm_rng *r);
// Uniform integer in [0, n) without modulo bias; n > 0.
uint64_t mm_rng_below(mm_rng *r, uint64_t n);
// Standard normal (Box-Muller; draws two uniforms per call and keeps no cached value).
double mm_rng_normal(mm_rng *r);

#endif
