// Fuzz target for WebDataset tar shards (mm-tokenize's wds input): the input is the archive,
// read sample by sample, gzip or zstd decompressed when it starts with their magic. Image bytes
// are not decoded: that is the image targets'.
#include "fuzz_source.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	mm_source_opts o = {.max_pixels = 1 << 20, .text_key = "caption"};
	fuzz_source(MM_FMT_WDS, fuzz_file(0, data, size), NULL, &o);
	return 0;
}
