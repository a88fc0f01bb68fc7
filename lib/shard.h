// Shard files (format v1, man/mm-shard.5): zstd-compressed blocks of documents, an index for
// random access by document number, CRC-32C on every block, and a header that records the
// tokenizer identity and the image geometry.
#ifndef MM_SHARD_H
#define MM_SHARD_H

#include <stdint.h>

#include "doc.h"

// Largest encoded document, and largest uncompressed block, in bytes (see man/mm-shard.5,
// LIMITS). A document over this size is refused by the writer.
#define MM_SHARD_MAX_BLOCK (1u << 30)
// Default target for a block's uncompressed size.
#define MM_SHARD_BLOCK_SIZE (1u << 16)

// What a shard promises about its content. Two shards can be read together only if their info
// is compatible (mm_shard_info_compatible).
typedef struct mm_shard_info {
	uint64_t tokenizer_hash; // mm_tok_hash() of the tokenizer that made the text
	uint32_t vocab_size;     // every token id is < vocab_size
	uint32_t img_h, img_w, img_c, patch; // every image has this geometry; all 0 = no images
	uint64_t n_docs;         // filled by the reader
} mm_shard_info;

// 0 if a and b can be mixed; otherwise fails with MM_EMISMATCH and a message naming both paths
// and the field that differs.
int mm_shard_info_compatible(const mm_shard_info *a, const char *path_a, const mm_shard_info *b,
			     const char *path_b);

typedef struct mm_shard_writer mm_shard_writer;

// Starts a shard at path (written atomically: nothing appears under path before close).
// level is the zstd level (3 is a good default).
int mm_shard_writer_open(mm_shard_writer **w, const char *path, const mm_shard_info *info, int level);
// Sets the target uncompressed size of a block (default MM_SHARD_BLOCK_SIZE; 1 to
// MM_SHARD_MAX_BLOCK). Smaller blocks make random access cheaper, larger ones compress better.
// A document larger than the target gets a block of its own.
int mm_shard_writer_set_block_size(mm_shard_writer *w, uint32_t bytes);
// Appends a document. Checks it against info (token ids < vocab, image geometry).
int mm_shard_writer_add(mm_shard_writer *w, const mm_doc *doc);
// Bytes written to the file so far (header and finished blocks; the block being filled is not
// counted), to cut shards at a size.
uint64_t mm_shard_writer_bytes(const mm_shard_writer *w);
uint64_t mm_shard_writer_docs(const mm_shard_writer *w);
// Writes the index and header, fsyncs and renames into place. Frees w in every case.
int mm_shard_writer_close(mm_shard_writer *w);
// The same, except that the shard stays under its temporary name, one of a set that
// mm_afile_publish renames into place together (fileio.h). *bytes: the shard's size.
int mm_shard_writer_seal(mm_shard_writer *w, uint64_t *bytes);
// Discards the shard: the temporary file is removed. Frees w.
void mm_shard_writer_abort(mm_shard_writer *w);

typedef struct mm_shard_reader mm_shard_reader;

// Opens and validates the header and the index (not the blocks). Memory used is the index
// (8 bytes per document, 40 per block) plus one block, compressed and decompressed, whatever
// the size of the shard. A reader is used by one thread at a time; open one per thread.
int mm_shard_open(mm_shard_reader **r, const char *path);
const mm_shard_info *mm_shard_get_info(const mm_shard_reader *r);
const char *mm_shard_path(const mm_shard_reader *r);
// Reads document k (0 <= k < n_docs) into doc (cleared first). Verifies the block's CRC;
// corruption or truncation fails with the path and the byte offset of the bad block.
int mm_shard_read(mm_shard_reader *r, uint64_t k, mm_doc *doc);
// Verifies every block's checksum and that every document parses. For `mm-tokenize --list`
// and tests.
int mm_shard_verify(mm_shard_reader *r);
void mm_shard_close(mm_shard_reader *r);

#endif
