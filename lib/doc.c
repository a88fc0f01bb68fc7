#include "doc.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"

void mm_doc_init(mm_doc *d) { memset(d, 0, sizeof *d); }

void mm_doc_clear(mm_doc *d)
{
	for (uint32_t i = 0; i < d->n_segs; i++) {
		free(d->segs[i].tokens);
		free(d->segs[i].pixels);
	}
	d->n_segs = 0;
}

void mm_doc_free(mm_doc *d)
{
	mm_doc_clear(d);
	free(d->segs);
	mm_doc_init(d);
}

static mm_segment *doc_push(mm_doc *d)
{
	if (d->n_segs == d->cap_segs) {
		uint32_t cap = d->cap_segs ? d->cap_segs * 2 : 4;
		mm_segment *s = realloc(d->segs, cap * sizeof *s);
		if (!s)
			return NULL;
		d->segs = s;
		d->cap_segs = cap;
	}
	mm_segment *s = &d->segs[d->n_segs];
	memset(s, 0, sizeof *s);
	return s;
}

int mm_doc_add_text(mm_doc *d, const uint32_t *tokens, uint32_t n)
{
	mm_segment *s = doc_push(d);
	if (!s)
		return mm_fail(MM_ENOMEM, "out of memory");
	s->type = MM_SEG_TEXT;
	s->tokens = malloc((size_t)(n ? n : 1) * sizeof *tokens);
	if (!s->tokens)
		return mm_fail(MM_ENOMEM, "out of memory");
	if (n)
		memcpy(s->tokens, tokens, (size_t)n * sizeof *tokens);
	s->n_tokens = n;
	d->n_segs++;
	return 0;
}

static int check_split(uint32_t h, uint32_t w, uint32_t c, uint32_t p)
{
	if (!h || !w || !c || !p || h % p || w % p)
		return mm_fail(MM_EINVAL, "image %ux%ux%u does not split into %ux%u patches", h, w, c, p, p);
	return 0;
}

int mm_doc_take_image(mm_doc *d, uint32_t h, uint32_t w, uint32_t c, uint32_t p, uint8_t *patch_pixels)
{
	int rc = check_split(h, w, c, p);
	if (rc) {
		free(patch_pixels);
		return rc;
	}
	mm_segment *s = doc_push(d);
	if (!s) {
		free(patch_pixels);
		return mm_fail(MM_ENOMEM, "out of memory");
	}
	s->type = MM_SEG_IMAGE;
	s->pixels = patch_pixels;
	s->h = h, s->w = w, s->c = c, s->p = p;
	d->n_segs++;
	return 0;
}

int mm_doc_add_image(mm_doc *d, uint32_t h, uint32_t w, uint32_t c, uint32_t p, const uint8_t *patch_pixels)
{
	int rc = check_split(h, w, c, p); // before h * w * c is allocated
	if (rc)
		return rc;
	size_t n = (size_t)h * w * c;
	uint8_t *px = malloc(n);
	if (!px)
		return mm_fail(MM_ENOMEM, "out of memory");
	memcpy(px, patch_pixels, n);
	return mm_doc_take_image(d, h, w, c, p, px);
}
