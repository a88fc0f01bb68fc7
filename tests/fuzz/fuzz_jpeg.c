// Fuzz target for the JPEG reader: see fuzz_image.h. One target per format, each with its
// own corpus, so that each format's decoder gets its own run.
#include "fuzz_image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_image(data, size);
	return 0;
}
