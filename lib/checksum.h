// Checksums and hashes used by the file formats.
#ifndef MM_CHECKSUM_H
#define MM_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

// CRC-32C (Castagnoli, reflected, init and final xor 0xFFFFFFFF): mm_crc32c(0, "123456789", 9)
// is 0xE3069283. Pass a previous result as crc to continue over more bytes.
uint32_t mm_crc32c(uint32_t crc, const void *data, size_t n);
// The same CRC by table look-ups only. mm_crc32c uses the processor's CRC32C instruction where
// it has one (x86 SSE4.2); this is the portable reference the tests compare it against.
uint32_t mm_crc32c_soft(uint32_t crc, const void *data, size_t n);

// A 64-bit non-cryptographic hash (FNV-1a over the bytes, then a splitmix64 finaliser), used to
// name a tokenizer's identity. Continue with h = mm_hash64(h, ...); start from MM_HASH64_INIT.
#define MM_HASH64_INIT 0xcbf29ce484222325ULL
uint64_t mm_hash64(uint64_t h, const void *data, size_t n);

// The splitmix64 finaliser: a bijective mix of 64 bits.
static inline uint64_t mm_mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

// A fuzzer cannot forge CRCs: builds for fuzzing (tests/fuzz) accept any stored CRC, so that
// the fuzzer reaches the checks behind them. Never defined in a normal build.
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
#define MM_CRC_BAD(stored, computed) ((void)(stored), (void)(computed), 0)
#else
#define MM_CRC_BAD(stored, computed) ((stored) != (computed))
#endif

#endif
