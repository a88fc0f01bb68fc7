// Checkpoint files (format: man/mm-checkpoint.5), the one home of the format: the container (a
// header and a list of tagged sections, each with its own CRC-32C), and what a training run
// stores in it (settings, model shape, tokenizer, weights, EMA, optimizer moments, the position
// in the schedule and the data), written and read here.
#ifndef MM_CKPT_H
#define MM_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include "layout.h"
#include "model.h"

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

// STAT and RANK, fixed-layout records (lib/layout.h): X(R, name, offset, size, type, check,
// arg) per field. lib/ckpt.c's writer and reader walk their tables; man/mm-checkpoint.5 shows
// the same (tests/test_layout.c holds them together). Reserved fields are written 0.
#define MM_CKPT_STAT_FIELDS(X, R)                                                   \
	X(R, step, 0, 8, U64, NONE, 0)        /* optimizer steps done */            \
	X(R, total_steps, 8, 8, U64, NONE, 0) /* steps of the learning-rate schedule */ \
	X(R, seconds, 16, 8, F64, NONE, 0)    /* seconds of training so far */      \
	X(R, epoch, 24, 8, U64, NONE, 0)      /* the data loader's position (loader.h) */ \
	X(R, cursor, 32, 8, U64, NONE, 0)                                           \
	X(R, offset, 40, 8, U64, NONE, 0)                                           \
	X(R, adam_step, 48, 8, U64, NONE, 0)  /* Adam's step count (bias correction) */ \
	X(R, reserved, 56, 8, U64, ZERO, 0)
#define MM_CKPT_STAT_SIZE 64
// RANK: this head, then one entry per rank, rank r's at MM_CKPT_RANK_HEAD_SIZE + r * entry size.
#define MM_CKPT_RANK_HEAD_FIELDS(X, R)                                              \
	X(R, ranks, 0, 4, U32, NONE, 0)       /* N, the number of ranks */          \
	X(R, reserved, 4, 4, U32, ZERO, 0)
#define MM_CKPT_RANK_HEAD_SIZE 8
#define MM_CKPT_RANK_FIELDS(X, R)                                                   \
	X(R, epoch, 0, 8, U64, NONE, 0)       /* rank r's data loader position */   \
	X(R, cursor, 8, 8, U64, NONE, 0)                                            \
	X(R, offset, 16, 8, U64, NONE, 0)
#define MM_CKPT_RANK_ENTRY_SIZE 24

// Their values (the records' p_values structs of lib/ckpt.c, member for member).
typedef struct mm_ckpt_stat { MM_CKPT_STAT_FIELDS(MM_LAYOUT_VALUE_, stat) } mm_ckpt_stat;
typedef struct mm_ckpt_rank { MM_CKPT_RANK_FIELDS(MM_LAYOUT_VALUE_, rank) } mm_ckpt_rank;

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

struct mm_tokenizer;

// What mm-train stores in a checkpoint. The writer reads every member; mm_ckpt_get_train fills
// those from nparams on.
typedef struct mm_ckpt_train {
	const char *conf;                 // CONF: the trainer's settings, "key = value" text
	const mm_config *cfg;             // MODL
	const struct mm_tokenizer *tok;   // TOKN
	size_t nparams;
	const float *params;              // PARM: nparams values
	const float *adam;                // ADAM: 2 nparams values, first moments then second
	const float *ema;                 // EMA: nparams values, or NULL (no section)
	mm_ckpt_stat stat;                // STAT
	uint32_t ranks;                   // RANK: the number of ranks (no section below 2)
	mm_ckpt_rank *rank;               // their data positions (ranks entries)
} mm_ckpt_train;

// Writes a training checkpoint to path atomically.
int mm_ckpt_write_train(const char *path, const mm_ckpt_train *t);
// The same as DIR/ckpt-<stat.step>.mmc, then DIR/latest naming it (also atomically); removes
// all but the newest keep checkpoints of DIR. *path (malloc'd) names the new checkpoint.
int mm_ckpt_save_train(const char *dir, const mm_ckpt_train *t, long long keep, char **path);
// The path DIR/ckpt-<step>.mmc would have (malloc'd; NULL when out of memory).
char *mm_ckpt_train_path(const char *dir, uint64_t step);
// Reads the state of a training checkpoint whose model has nparams parameters: PARM, ADAM, EMA
// (required when ema is 1; else t->ema is NULL), STAT and RANK, each checked for its size.
// The float pointers point into ck; t->rank is malloc'd (free it), NULL without RANK, where
// t->ranks is 1. conf, cfg and tok are left NULL: see mm_ckpt_config and mm_ckpt_tokenizer.
int mm_ckpt_get_train(const mm_ckpt *ck, size_t nparams, int ema, mm_ckpt_train *t);
// MODL, parsed and checked; TOKN, loaded. Failures name the file.
int mm_ckpt_config(const mm_ckpt *ck, mm_config *c);
int mm_ckpt_tokenizer(const mm_ckpt *ck, struct mm_tokenizer **tok);
// Loads a model for inference from a checkpoint file or run directory: its configuration, the
// tokenizer and the weights (the EMA weights when ema is 1; MM_EFORMAT if the checkpoint has
// none). max_batch sizes the model's buffers (mm_model_new). *has_ema says whether the file
// holds EMA weights (may be NULL).
int mm_ckpt_load_model(const char *file_or_dir, int ema, int max_batch, struct mm_model **m,
		       struct mm_tokenizer **tok, int *has_ema);

#endif
