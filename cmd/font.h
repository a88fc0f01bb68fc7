// Text on images: a 5x7 bitmap font of printable ASCII (others drawn as '?'), for grid labels.
#ifndef MM_FONT_H
#define MM_FONT_H

#include <stdint.h>

#include "image.h"

#define FONT_W 5
#define FONT_H 7

// Pixels of s drawn at scale (each font pixel scale x scale), one blank column between glyphs.
uint32_t font_width(const char *s, uint32_t scale);
// Draws s in black with its top left corner at (x, y), clipped to max_w pixels and to im.
void font_draw(mm_image *im, uint32_t x, uint32_t y, const char *s, uint32_t scale, uint32_t max_w);

// A grid of images, 2 white pixels apart, each enlarged s times (nearest pixel), saved as PNG:
// cell k (row k / cols, column k % cols) shows im[k] (NULL, or another size than the first
// image: blank); label (NULL: none) gives each row a text at its left, cut to GRID_LABEL_MAX
// characters ("..." at the end).
#define GRID_LABEL_MAX 48
int grid_save(const char *path, const mm_image *const *im, int rows, int cols, const char *const *label,
	      uint32_t s);

#endif
