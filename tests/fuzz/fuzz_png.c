// Fuzz target for the PNG reader: see fuzz_image.h. The CRC-32 of every chunk is recomputed
// first, as far as the chunks can be followed, so that mutations get past libpng's checks to the
// decoding and the conversions behind them.
#include "fuzz_image.h"

#include <zlib.h>

static void png_fuzz_fix_crcs(uint8_t *b, size_t n)
{
	size_t off = 8; // the signature
	while (n >= off + 12) {
		uint64_t len = (uint64_t)b[off] << 24 | (uint64_t)b[off + 1] << 16 | (uint64_t)b[off + 2] << 8 | b[off + 3];
		if (len > n - off - 12)
			break;
		uint32_t crc = (uint32_t)crc32(0, b + off + 4, (uInt)(len + 4));
		uint8_t *p = b + off + 8 + len;
		p[0] = (uint8_t)(crc >> 24), p[1] = (uint8_t)(crc >> 16), p[2] = (uint8_t)(crc >> 8), p[3] = (uint8_t)crc;
		off += 12 + len;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *b = fuzz_copy(data, size);
	png_fuzz_fix_crcs(b, size);
	fuzz_image(b, size);
	free(b);
	return 0;
}
