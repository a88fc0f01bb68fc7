// Little-endian encoding of integers and floats, independent of the host's byte order.
// Every file format of mm is little-endian; these are the only functions that touch its bytes.
#ifndef MM_BYTES_H
#define MM_BYTES_H

#include <stdint.h>
#include <string.h>

static inline void mm_put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline void mm_put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint32_t mm_get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t mm_get_u64(const uint8_t *p)
{
	return (uint64_t)mm_get_u32(p) | (uint64_t)mm_get_u32(p + 4) << 32;
}
static inline void mm_put_f32(uint8_t *p, float f)
{
	uint32_t v;
	memcpy(&v, &f, 4);
	mm_put_u32(p, v);
}
static inline float mm_get_f32(const uint8_t *p)
{
	uint32_t v = mm_get_u32(p);
	float f;
	memcpy(&f, &v, 4);
	return f;
}

#endif
