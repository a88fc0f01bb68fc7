// Byte-level BPE tokenizer (file format: man/mm-tokenizer.5).
// Ids 0..255 are the bytes, 256..260 are the special tokens below, and each learned merge adds
// one id from 261 on, so vocab_size = 261 + number of merges. Any byte string encodes, and
// decode(encode(s)) == s for every s.
#ifndef MM_TOKENIZER_H
#define MM_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

enum {
	MM_TOK_PAD = 256,
	MM_TOK_BOS = 257,
	MM_TOK_EOS = 258,
	MM_TOK_BOI = 259,
	MM_TOK_EOI = 260,
	MM_TOK_FIRST_MERGE = 261,
};

typedef struct mm_tokenizer mm_tokenizer;

// A tokenizer with no merges (vocab 261): plain bytes.
int mm_tok_new_bytes(mm_tokenizer **t);
int mm_tok_load(mm_tokenizer **t, const char *path);
int mm_tok_load_mem(mm_tokenizer **t, const uint8_t *data, size_t n, const char *name);
// Writes atomically.
int mm_tok_save(const mm_tokenizer *t, const char *path);
// Serialises to a malloc'd buffer (the file's bytes), for embedding in checkpoints.
int mm_tok_serialize(const mm_tokenizer *t, uint8_t **out, size_t *n);
void mm_tok_free(mm_tokenizer *t);

uint32_t mm_tok_vocab_size(const mm_tokenizer *t);
// Identity: a hash of the merges (equal merges, equal hash).
uint64_t mm_tok_hash(const mm_tokenizer *t);

// Encodes n bytes; *ids is malloc'd (or grown if *cap is too small: pass *ids = NULL, *cap = 0
// the first time and reuse the buffer). Thread-safe for concurrent calls on one tokenizer.
int mm_tok_encode(const mm_tokenizer *t, const uint8_t *text, size_t n, uint32_t **ids, size_t *cap, size_t *n_ids);
// Decodes ids to bytes (special tokens decode to nothing); fails on an id >= vocab size.
int mm_tok_decode(const mm_tokenizer *t, const uint32_t *ids, size_t n, uint8_t **out, size_t *cap, size_t *n_out);
// The bytes of one token (0 length for special tokens).
const uint8_t *mm_tok_piece(const mm_tokenizer *t, uint32_t id, size_t *len);

// BPE training: feed texts (documents), then finish. Text is pre-split into chunks (a run of
// letters with its leading space, a run of digits, a run of other symbols, whitespace) so that
// merges never cross chunk boundaries; unique chunks are counted, and merges are learned with
// incremental pair counts (only the pairs touching a merge are updated). Deterministic: ties
// are broken by the smaller pair of ids.
typedef struct mm_bpe_trainer mm_bpe_trainer;
int mm_bpe_trainer_new(mm_bpe_trainer **tr);
int mm_bpe_trainer_feed(mm_bpe_trainer *tr, const uint8_t *text, size_t n);
int mm_bpe_trainer_finish(mm_bpe_trainer *tr, uint32_t vocab_size, mm_tokenizer **out);
void mm_bpe_trainer_free(mm_bpe_trainer *tr);

#endif
