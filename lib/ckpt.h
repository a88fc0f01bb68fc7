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

// Sections that mm-train writes (man/mm-checkpoint.5).
#define MM_SEC_CONF MM_CKPT_TAG('C', 'O', 'N', 'F') // mm-train settings, "key = value"
#define MM_SEC_MODL MM_CKPT_TAG('M', 'O', 'D', 'L') // mm_config, "key = value"
#define MM_SEC_TOKN MM_CKPT_TAG('T', 'O', 'K', 'N') // the tokenizer file's bytes
#define MM_SEC_PARM MM_CKPT_TAG('P', 'A', 'R', 'M') // float32 parameters
#define MM_SEC_EMA MM_CKPT_TAG('E', 'M', 'A', ' ')  // float32 EMA parameters (optional)
#define MM_SEC_ADAM MM_CKPT_TAG('A', 'D', 'A', 'M') // float32 first then second moments
#define MM_SEC_STAT MM_CKPT_TAG('S', 'T', 'A', 'T') // step, schedule, data position (binary)
#define MM_SEC_RANK MM_CKPT_TAG('R', 'A', 'N', 'K') // data position of every rank (data parallel)

// Writes the sections to path atomically (temp file, fsync, rename).
int mm_ckpt_write(const char *path, const mm_ckpt_section *secs, int n);

typedef struct mm_ckpt mm_ckpt;
// Reads and verifies the whole file (every section's CRC); refuses truncation and corruption
// with the path and the offset of the bad section.
int mm_ckpt_read(mm_ckpt **ck, const char *path);
// The same checks over a file's bytes already in memory (read by another process, say): takes
// over bytes (malloc'd; freed by mm_ckpt_free, or here on failure); path names it in messages.
int mm_ckpt_read_mem(mm_ckpt **ck, uint8_t *bytes, size_t n, const char *path);
// The section with this tag, or NULL.
const mm_ckpt_section *mm_ckpt_find(const mm_ckpt *ck, uint32_t tag);
// Like mm_ckpt_find, but fails (naming the file and the tag) when absent or not of the size.
int mm_ckpt_need(const mm_ckpt *ck, uint32_t tag, uint64_t size, const void **data);
const char *mm_ckpt_path(const mm_ckpt *ck);
void mm_ckpt_free(mm_ckpt *ck);

// Resolves a checkpoint argument: a .mmc file as is, or a run directory through DIR/latest.
// *path is malloc'd.
int mm_ckpt_resolve(const char *file_or_dir, char **path);

struct mm_model;
struct mm_tokenizer;
// Loads a model for inference from a checkpoint file or run directory: its configuration, the
// tokenizer and the weights (the EMA weights when ema is 1; MM_EFORMAT if the checkpoint has
// none). max_batch sizes the model's buffers (mm_model_new). *has_ema says whether the file
// holds EMA weights (may be NULL).
int mm_ckpt_load_model(const char *file_or_dir, int ema, int max_batch, struct mm_model **m,
		       struct mm_tokenizer **tok, int *has_ema);

#endif
