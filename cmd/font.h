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

#endif
