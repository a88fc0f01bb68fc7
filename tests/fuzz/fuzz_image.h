// The body of the PNG and JPEG fuzz targets (fuzz_png.c, fuzz_jpeg.c): the input is an image
// file, decoded by mm_image_load (the libpng and libjpeg wrappers) and, when it decodes,
// prepared as mm-tokenize prepares images (channels, resize with each fit, patch order).
#ifndef MM_FUZZ_IMAGE_H
#define MM_FUZZ_IMAGE_H

#include "fuzz.h"

#include "image.h"
#include "ingest.h"

static void fuzz_image(const uint8_t *data, size_t size)
{
	const char *path = fuzz_file(0, data, size);
	mm_image img;
	if (mm_image_load(path, 1 << 20, &img) != 0) {
		fuzz_refused(path);
		return;
	}
	if (!img.w || !img.h || img.c < 1 || img.c > 4 || (uint64_t)img.w * img.h > 1 << 20)
		abort();
	static uint8_t out[16 * 8 * 3];
	for (int fit = MM_FIT_STRETCH; fit <= MM_FIT_PAD; fit++) {
		mm_prep o = {.channels = fit == MM_FIT_CROP ? 1 : 3, .w = 16, .h = 8, .patch = 4, .fit = fit,
			     .background = {1, 2, 3}, .max_pixels = 1 << 20};
		if (mm_prep_image(&img, &o, out) != 0)
			abort();
	}
	mm_image_free(&img);
}

#endif
