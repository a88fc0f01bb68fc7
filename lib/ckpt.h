// Checkpoint container (format: man/mm-checkpoint.5): a header and a list of tagged sections,
// each with its own CRC-32C. What goes into the sections (config, tokenizer, weights, EMA,
// optimizer moments, RNG and data position, step) is mm-train's business; this module only
// stores and verifies bytes.
#ifndef MM_CKPT_H
#define MM_CKPT_H

#include <stddef.h>
#include <stdint.h>

#define MM_CKPT_TAG(a, b, c, d) ((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)

typedef struct mm_ckpt_section {
	uint32_t tag;
	uint64_t size;
	const void *data; // writer: caller's bytes; reader: points into the loaded file
} mm_ckpt_section;

// Writes the sections to path atomically (temp file, fsync, rename).
int mm_ckpt_write(const char *path, const mm_ckpt_section *secs, int n);

typedef struct mm_ckpt mm_ckpt;
// Reads and verifies the whole file (every section's CRC); refuses truncation and corruption
// with the path and the offset of the bad section.
int mm_ckpt_read(mm_ckpt **ck, const char *path);
// The section with this tag, or NULL.
const mm_ckpt_section *mm_ckpt_find(const mm_ckpt *ck, uint32_t tag);
// Like mm_ckpt_find, but fails (naming the file and the tag) when absent or not of the size.
int mm_ckpt_need(const mm_ckpt *ck, uint32_t tag, uint64_t size, const void **data);
const char *mm_ckpt_path(const mm_ckpt *ck);
void mm_ckpt_free(mm_ckpt *ck);

#endif
