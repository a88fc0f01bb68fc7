// A document in memory: an ordered list of segments, each text (token ids) or an image
// (uint8 pixels stored as patches in raster order). Shards hold documents; the tokenizer
// produces them; the training loader packs them into rows.
#ifndef MM_DOC_H
#define MM_DOC_H

#include <stddef.h>
#include <stdint.h>

enum { MM_SEG_TEXT = 1, MM_SEG_IMAGE = 2 };

typedef struct mm_segment {
	uint32_t type; // MM_SEG_TEXT or MM_SEG_IMAGE
	// text
	uint32_t n_tokens;
	uint32_t *tokens;
	// image: h x w pixels of c channels, cut into p x p patches. pixels holds h*w*c bytes in
	// patch order: patches in raster order (left to right, top to bottom), and inside each
	// patch its p*p pixels row by row, channels interleaved (see mm_image_to_patches).
	uint32_t h, w, c, p;
	uint8_t *pixels;
} mm_segment;

typedef struct mm_doc {
	uint32_t n_segs;
	uint32_t cap_segs;
	mm_segment *segs;
} mm_doc;

// A document owns its arrays. mm_doc_clear keeps the allocation for reuse.
void mm_doc_init(mm_doc *d);
void mm_doc_clear(mm_doc *d);
void mm_doc_free(mm_doc *d);
// Appends a copy of the given tokens / pixels.
int mm_doc_add_text(mm_doc *d, const uint32_t *tokens, uint32_t n);
int mm_doc_add_image(mm_doc *d, uint32_t h, uint32_t w, uint32_t c, uint32_t p, const uint8_t *patch_pixels);
// Appends an image without copying: the document takes patch_pixels (h*w*c bytes from malloc),
// and frees them even when it fails.
int mm_doc_take_image(mm_doc *d, uint32_t h, uint32_t w, uint32_t c, uint32_t p, uint8_t *patch_pixels);

#endif
