// Fuzz target for IDX input (MNIST-style image and label files, plain or gzip'd): an image file
// and a label file, read as one input. The fuzz input is a 4-byte little-endian length, that
// many bytes of the image file, then the label file; without a whole length, or when the rest is
// shorter, all of it is the image file, read without labels.
#include "fuzz_source.h"

#include "bytes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char *names[] = {"zero", "one", "two", "three"};
	mm_source_opts o = {.label_names = names, .n_labels = 4, .caption_template = "a {label} ({label})",
			    .max_pixels = 1 << 16};
	uint32_t n = size >= 4 ? mm_get_u32(data) : 0;
	if (size >= 4 && n <= size - 4) {
		const char *img = fuzz_file(0, data + 4, n);
		fuzz_source(MM_FMT_IDX, img, fuzz_file(1, data + 4 + n, size - 4 - n), &o);
	} else {
		fuzz_source(MM_FMT_IDX, fuzz_file(0, data, size), NULL, &o);
	}
	return 0;
}
