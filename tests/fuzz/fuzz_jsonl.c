// Fuzz target for JSONL manifests (mm-tokenize's jsonl input): the input is the manifest file,
// read document by document. Image files it names are not opened: that is the image targets'.
#include "fuzz_source.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	mm_source_opts o = {.max_pixels = 1 << 20};
	fuzz_source(MM_FMT_JSONL, fuzz_file(0, data, size), NULL, &o);
	return 0;
}
