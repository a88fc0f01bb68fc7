// Shared between tokenizer.c (encode, decode, file format) and bpe_train.c (training); not part
// of the public API.
#ifndef MM_TOK_RULES_PRIV_H
#define MM_TOK_RULES_PRIV_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

// Longest chunk, in bytes. It bounds the work per chunk (encoding stays linear in the input on
// any text) and therefore the length of every piece a merge can usefully make.
#define MM_TOK_CHUNK_MAX 256
// Largest vocabulary a file may declare; guards allocations against hostile headers.
#define MM_TOK_MAX_VOCAB (1u << 24)
// Name of the pre-tokenization rule stored in the file (16 bytes, NUL-padded). A different
// rule would split text differently, so it is part of the tokenizer's identity.
#define MM_TOK_PRETOK_NAME "mm-chunk-1"

// Length of the chunk that starts at s (n > 0 bytes available); between 1 and MM_TOK_CHUNK_MAX.
size_t mm_tok_chunk(const uint8_t *s, size_t n);

// Builds a tokenizer from n_merges (left, right) pairs, checking each one; name is used in
// error messages, base is the file offset of the first pair (for messages only).
int mm_tok_from_merges(mm_tokenizer **t, const uint32_t *pairs, uint32_t n_merges, const char *name,
		       uint64_t base);

#endif
