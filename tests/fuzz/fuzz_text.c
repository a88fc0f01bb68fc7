// Fuzz target for plain text input (mm-tokenize's text input): the input is the text file, cut
// into documents at blank lines, and again at lines equal to a separator.
#include "fuzz_source.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *path = fuzz_file(0, data, size);
	mm_source_opts o = {.max_pixels = 1 << 20};
	fuzz_source(MM_FMT_TEXT, path, NULL, &o);
	o.doc_separator = "---";
	fuzz_source(MM_FMT_TEXT, path, NULL, &o);
	return 0;
}
