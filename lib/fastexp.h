// e^x in float without libm, shared by the kernels (lib/kernels_typed_priv.h) and the sampler.
#ifndef MM_FASTEXP_H
#define MM_FASTEXP_H

#include <stdint.h>
#include <string.h>

// e^x in float, for loops the compiler can vectorize (libm's expf is a call per value):
// x = k ln2 + r with |r| <= ln2/2, e^r by its Taylor series to r^6 (error below 3e-7 relative),
// 2^k put into the exponent bits. |x| is clamped to 87 first, on the integer bits (a float
// compare-and-select keeps -O2 from vectorizing): no infinities, no subnormals, NaN becomes
// +-87, and e^-inf comes out as 1.6e-38, not 0 (do not use it where 0 matters).
static inline float mm_fast_expf(float x)
{
	uint32_t ix, mag;
	memcpy(&ix, &x, 4);
	mag = ix & 0x7fffffffu;
	mag = mag < 0x42ae0000u ? mag : 0x42ae0000u; // 87.0f
	ix = (ix & 0x80000000u) | mag;
	memcpy(&x, &ix, 4);
	float kf = (x * 1.44269504f + 12582912.0f) - 12582912.0f; // round to nearest
	float r = x - kf * 0.693145752f - kf * 1.42860677e-6f;    // ln 2 in two parts
	float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 +
										   r * (1.0f / 720))))));
	int32_t bits = ((int32_t)kf + 127) << 23;
	float scale;
	memcpy(&scale, &bits, 4);
	return p * scale;
}

#endif
