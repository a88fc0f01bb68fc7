// Images: decoding PNG (libpng) and JPEG (libjpeg-turbo), colour conversion, alpha compositing,
// resizing with an area filter, patch order, and PNG encoding. Pixels are 8-bit, rows top to
// bottom, channels interleaved (1 = gray, 2 = gray+alpha, 3 = RGB, 4 = RGBA).
#ifndef MM_IMAGE_H
#define MM_IMAGE_H

#include <stddef.h>
#include <stdint.h>

typedef struct mm_image {
	uint32_t w, h, c;
	uint8_t *px; // h*w*c bytes, owned
} mm_image;

void mm_image_free(mm_image *img);
int mm_image_alloc(mm_image *img, uint32_t w, uint32_t h, uint32_t c);

// Decodes a PNG or JPEG file (detected from its first bytes, not its name). PNG of any bit
// depth and colour type comes back as 8-bit gray, gray+alpha, RGB or RGBA (16-bit samples
// rounded to 8, palettes expanded, tRNS turned into alpha). JPEG: baseline or progressive, gray
// or YCbCr; CMYK/YCCK is refused with MM_EUNSUPPORTED. An image with more than max_pixels
// pixels (w*h) is refused with MM_ERANGE before its pixels are decoded (0: no limit). Errors name
// the path: MM_EIMAGE for anything not decodable (not PNG/JPEG, truncated, corrupt), MM_EIO for
// a file that cannot be read.
int mm_image_load(const char *path, uint64_t max_pixels, mm_image *out);
// The same for the file name under the open directory dirfd (AT_FDCWD: the working directory),
// path naming it in messages, adding the file's size to *bytes_read (NULL: not wanted).
int mm_image_load_at(int dirfd, const char *name, const char *path, uint64_t max_pixels, mm_image *out,
		     uint64_t *bytes_read);
int mm_image_load_mem(const uint8_t *data, size_t n, const char *name, uint64_t max_pixels, mm_image *out);

// Converts to 1 or 3 channels: alpha is composited over background (RGB; gray uses its
// luma), RGB becomes gray by Rec. 601 luma (0.299, 0.587, 0.114, rounded), gray becomes RGB by
// copying. background NULL means white. in and out are different images.
int mm_image_to_channels(const mm_image *in, uint32_t channels, const uint8_t background[3], mm_image *out);

enum mm_fit { MM_FIT_STRETCH = 0, MM_FIT_CROP = 1, MM_FIT_PAD = 2 };

// Resizes to w x h. crop: scale so the image covers w x h, cut the centre; pad: scale so it fits
// inside, centre it on background; stretch: scale each axis on its own. Shrinking uses an
// exact area (box) filter: each output pixel is the area-weighted mean of the input pixels it
// covers; enlarging uses bilinear interpolation. Deterministic, rounded to nearest.
int mm_image_resize(const mm_image *in, uint32_t w, uint32_t h, enum mm_fit fit, const uint8_t background[3],
		    mm_image *out);

// Row-major image (h, w, c) <-> patch order (see doc.h). p must divide h and w (otherwise nothing
// is written).
void mm_image_to_patches(const uint8_t *px, uint32_t h, uint32_t w, uint32_t c, uint32_t p, uint8_t *out);
void mm_image_from_patches(const uint8_t *patches, uint32_t h, uint32_t w, uint32_t c, uint32_t p, uint8_t *out);

// Encodes a 1..4-channel image as PNG, written atomically to path.
int mm_image_save_png(const char *path, const mm_image *img);

#endif
