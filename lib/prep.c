#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "ingest.h"

int mm_prep_check(const mm_prep *o)
{
	if (o->channels != 1 && o->channels != 3)
		return mm_fail(MM_EINVAL, "images must have 1 or 3 channels, not %u", o->channels);
	if (!o->w || !o->h || !o->patch || o->w % o->patch || o->h % o->patch)
		return mm_fail(MM_EINVAL, "patch size %u does not divide the image size %ux%u", o->patch, o->w, o->h);
	if ((uint64_t)o->w * o->h > ((uint64_t)1 << 28))
		return mm_fail(MM_EINVAL, "image size %ux%u is too large", o->w, o->h);
	return 0;
}

size_t mm_prep_bytes(const mm_prep *o) { return (size_t)o->w * o->h * o->channels; }

int mm_prep_image(const mm_image *img, const mm_prep *o, uint8_t *out)
{
	mm_image conv = {0}, sized = {0};
	const mm_image *src = img;
	int rc = 0;
	// Work is skipped where there is nothing to do (no alpha, same channels, same size), which
	// also keeps extracted images bit for bit when they are read again.
	if (img->c != o->channels) {
		rc = mm_image_to_channels(img, o->channels, o->background, &conv);
		src = &conv;
	}
	if (!rc && (src->w != o->w || src->h != o->h)) {
		rc = mm_image_resize(src, o->w, o->h, o->fit, o->background, &sized);
		src = &sized;
	}
	if (!rc)
		mm_image_to_patches(src->px, o->h, o->w, o->channels, o->patch, out);
	mm_image_free(&conv);
	mm_image_free(&sized);
	return rc;
}

int mm_prep_image_file_at(int dirfd, const char *name, const char *path, const mm_prep *o, uint8_t *out,
			  uint64_t *bytes_read)
{
	mm_image img;
	int rc = mm_image_load_at(dirfd, name, path, o->max_pixels, &img, bytes_read);
	if (!rc)
		rc = mm_prep_image(&img, o, out);
	mm_image_free(&img);
	return rc;
}

int mm_prep_image_file(const char *path, const mm_prep *o, uint8_t *out, uint64_t *bytes_read)
{
	return mm_prep_image_file_at(AT_FDCWD, path, path, o, out, bytes_read);
}
