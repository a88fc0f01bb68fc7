// Shard files, format v1. The byte layout is specified in man/mm-shard.5; the constants and
// checks here follow its tables and its VALIDATION section one for one.
#include "shard.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "bytes.h"
#include "checksum.h"
#include "err.h"
#include "fileio.h"
#include "layout.h"

// The fixed-layout records of the format, one list each, as the field tables of
// man/mm-shard.5 give them (tests/test_layout.c compares the two): X(R, name, offset, size,
// type, check, arg), see lib/layout.h. Both the writer and the reader walk these tables, except
// in the per-document loops, which use the offsets and sizes they define.
#define SHARD_HEADER(X, R)                                                         \
	X(R, magic, 0, 8, BYTES, MAGIC, "\x89MMS\r\n\x1a\n")                          \
	X(R, version, 8, 4, U32, VERSION, 1)                                         \
	X(R, header_size, 12, 4, U32, EQ, 128)                                       \
	X(R, flags, 16, 4, U32, KNOWN, 0)                                            \
	X(R, vocab_size, 20, 4, U32, MIN, 1)                                         \
	X(R, tokenizer_hash, 24, 8, U64, NONE, 0)                                    \
	X(R, img_h, 32, 4, U32, NONE, 0)                                             \
	X(R, img_w, 36, 4, U32, NONE, 0)                                             \
	X(R, img_c, 40, 4, U32, NONE, 0)                                             \
	X(R, patch, 44, 4, U32, NONE, 0)                                             \
	X(R, n_docs, 48, 8, U64, MAX, UINT32_MAX)                                    \
	X(R, n_blocks, 56, 8, U64, NONE, 0)                                          \
	X(R, index_offset, 64, 8, U64, NONE, 0)                                      \
	X(R, index_csize, 72, 8, U64, NONE, 0)                                       \
	X(R, index_usize, 80, 8, U64, NONE, 0)                                       \
	X(R, index_crc, 88, 4, U32, NONE, 0)                                         \
	X(R, reserved, 92, 32, BYTES, ZERO, "")                                      \
	X(R, header_crc, 124, 4, U32, CRC, 0)
MM_LAYOUT(hdr, SHARD_HEADER, "shard-header");

// Before each block's zstd frame; the numbers repeat the block's record in the index.
#define SHARD_BLOCK_HEADER(X, R)                                                   \
	X(R, magic, 0, 4, BYTES, MAGIC, "MBLK")                                      \
	X(R, csize, 4, 4, U32, NONE, 0)                                              \
	X(R, usize, 8, 4, U32, NONE, 0)                                              \
	X(R, crc, 12, 4, U32, NONE, 0)
MM_LAYOUT(blk, SHARD_BLOCK_HEADER, "shard-block-header");

// The index: one block record per block, then one document record per document. Their checks
// relate them to each other and to the header (parse_blocks, parse_docs).
#define SHARD_BLOCK_RECORD(X, R)                                                   \
	X(R, offset, 0, 8, U64, NONE, 0)                                             \
	X(R, csize, 8, 4, U32, NONE, 0)                                              \
	X(R, usize, 12, 4, U32, NONE, 0)                                             \
	X(R, crc, 16, 4, U32, NONE, 0)                                               \
	X(R, n_docs, 20, 4, U32, NONE, 0)
MM_LAYOUT(brec, SHARD_BLOCK_RECORD, "shard-block-record");

#define SHARD_DOC_RECORD(X, R) X(R, length, 0, 4, U32, NONE, 0)
MM_LAYOUT(drec, SHARD_DOC_RECORD, "shard-document-record");

// A document's encoding: a segment count, then each segment's fixed fields and its tokens or
// pixels. Encoded and decoded per document: doc_encode and parse_doc use MM_AT offsets.
#define SHARD_DOC(X, R) X(R, n_segs, 0, 4, U32, NONE, 0)
MM_LAYOUT(doch, SHARD_DOC, "shard-document");

#define SHARD_TEXT_SEGMENT(X, R)                                                   \
	X(R, type, 0, 4, U32, EQ, MM_SEG_TEXT)                                       \
	X(R, n_tokens, 4, 4, U32, NONE, 0)
MM_LAYOUT(text, SHARD_TEXT_SEGMENT, "shard-text-segment");

#define SHARD_IMAGE_SEGMENT(X, R)                                                  \
	X(R, type, 0, 4, U32, EQ, MM_SEG_IMAGE)                                      \
	X(R, h, 4, 4, U32, NONE, 0)                                                  \
	X(R, w, 8, 4, U32, NONE, 0)                                                  \
	X(R, c, 12, 4, U32, NONE, 0)                                                 \
	X(R, p, 16, 4, U32, NONE, 0)
MM_LAYOUT(image, SHARD_IMAGE_SEGMENT, "shard-image-segment");

const mm_layout *const mm_shard_layouts[] = {&hdr_layout,  &blk_layout,  &brec_layout,  &drec_layout,
					     &doch_layout, &text_layout, &image_layout, NULL};

enum {
	HDR_SIZE = sizeof(hdr_bytes),    // file header
	BLK_HDR = sizeof(blk_bytes),     // block header before each zstd frame
	BLK_ENTRY = sizeof(brec_bytes),  // per-block record in the index
	DOC_ENTRY = sizeof(drec_bytes),  // per-document record in the index
	DOC_HDR = sizeof(doch_bytes),    // segment count before a document's segments
	TEXT_SEG = sizeof(text_bytes),   // a text segment before its tokens
	IMAGE_SEG = sizeof(image_bytes), // an image segment before its pixels
};
_Static_assert(HDR_SIZE == 128, "the header is 128 bytes, as its header_size field says");
// parse_doc reads a segment's type before it knows which kind the segment is.
_Static_assert(MM_AT(text, type) == MM_AT(image, type) && TEXT_SEG <= IMAGE_SEG, "segment headers");
#define MAX_INDEX (1u << 28) // largest uncompressed index

typedef unsigned long long ull;


// ---------------------------------------------------------------- shared checks

// Image geometry is all zero (a text-only shard) or describes images that split into patches
// and whose pixels, with a segment header and a document header, fit in one block.
static const char *geometry_problem(const mm_shard_info *in)
{
	uint32_t h = in->img_h, w = in->img_w, c = in->img_c, p = in->patch;
	if (!h && !w && !c && !p)
		return NULL;
	if (!h || !w || !c || !p)
		return "some but not all of height, width, channels and patch are zero";
	if (h % p || w % p)
		return "the patch size does not divide the height and width";
	if ((uint64_t)h * w * c > MM_SHARD_MAX_BLOCK - 64)
		return "an image is larger than a block may be";
	return NULL;
}

static int has_images(const mm_shard_info *in) { return in->img_h != 0; }

int mm_shard_info_compatible(const mm_shard_info *a, const char *path_a, const mm_shard_info *b,
			     const char *path_b)
{
	if (a->tokenizer_hash != b->tokenizer_hash)
		return mm_fail(MM_EMISMATCH, "%s and %s: different tokenizers (hash %016llx and %016llx)",
			       path_a, path_b, (ull)a->tokenizer_hash, (ull)b->tokenizer_hash);
	if (a->vocab_size != b->vocab_size)
		return mm_fail(MM_EMISMATCH, "%s and %s: different vocab size (%u and %u)", path_a, path_b,
			       a->vocab_size, b->vocab_size);
	if (a->img_h != b->img_h || a->img_w != b->img_w || a->img_c != b->img_c || a->patch != b->patch)
		return mm_fail(MM_EMISMATCH,
			       "%s and %s: different image geometry (%ux%ux%u patch %u and %ux%ux%u patch %u)",
			       path_a, path_b, a->img_h, a->img_w, a->img_c, a->patch, b->img_h, b->img_w,
			       b->img_c, b->patch);
	return 0;
}

// A growable byte buffer.
typedef struct {
	uint8_t *p;
	size_t len, cap;
} buf_t;

static int buf_reserve(buf_t *b, size_t extra)
{
	if (extra > SIZE_MAX - b->len)
		return -1;
	size_t need = b->len + extra;
	if (need <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	uint8_t *p = realloc(b->p, cap);
	if (!p)
		return -1;
	b->p = p;
	b->cap = cap;
	return 0;
}

// ---------------------------------------------------------------- writer

struct mm_shard_writer {
	mm_afile af;
	mm_shard_info info;
	uint32_t target;  // flush a block once its uncompressed size reaches this
	ZSTD_CCtx *cctx;
	buf_t block;      // documents of the block being filled, encoded
	uint32_t block_docs;
	buf_t cbuf;       // block header + compressed frame, or the compressed index
	buf_t blocks;     // index records of the blocks written (BLK_ENTRY bytes each)
	buf_t doc_lens;   // index records of the documents added (DOC_ENTRY bytes each)
	uint64_t n_docs, n_blocks;
	uint64_t offset;  // bytes in the file so far
	int failed;       // a write failed: the file is unusable, only close or abort remain
};

int mm_shard_writer_open(mm_shard_writer **out, const char *path, const mm_shard_info *info, int level)
{
	*out = NULL;
	const char *why = geometry_problem(info);
	if (why)
		return mm_fail(MM_EINVAL, "%s: image geometry %ux%ux%u patch %u: %s", path, info->img_h,
			       info->img_w, info->img_c, info->patch, why);
	if (info->vocab_size == 0)
		return mm_fail(MM_EINVAL, "%s: vocab size is 0", path);
	if (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel())
		return mm_fail(MM_EINVAL, "%s: zstd level %d outside [%d, %d]", path, level, ZSTD_minCLevel(),
			       ZSTD_maxCLevel());
	mm_shard_writer *w = calloc(1, sizeof *w);
	if (!w)
		return mm_fail(MM_ENOMEM, "%s: out of memory", path);
	w->info = *info;
	w->info.n_docs = 0;
	w->target = MM_SHARD_BLOCK_SIZE;
	w->cctx = ZSTD_createCCtx();
	if (!w->cctx) {
		free(w);
		return mm_fail(MM_ENOMEM, "%s: out of memory", path);
	}
	// The parameters stay with the context for every frame. At level 1 (mm-tokenize's) the
	// match table has 2^11 entries where zstd picks 2^13 for a 64 KiB input: measured on the
	// blocks of Fashion-MNIST shards, a quarter faster on pixels for under 0.6% more bytes, and
	// 7% faster on text for 2% more.
	if (ZSTD_isError(ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, level)) ||
	    (level == 1 && ZSTD_isError(ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_hashLog, 11)))) {
		ZSTD_freeCCtx(w->cctx);
		free(w);
		return mm_fail(MM_EINVAL, "%s: zstd refused level %d", path, level);
	}
	int rc = mm_afile_open(&w->af, path);
	if (rc) {
		ZSTD_freeCCtx(w->cctx);
		free(w);
		return rc;
	}
	// The header is written last (its counts are known only then); reserve its place.
	uint8_t zero[HDR_SIZE] = {0};
	rc = mm_afile_write(&w->af, zero, sizeof zero);
	if (rc) {
		mm_shard_writer_abort(w);
		return rc;
	}
	w->offset = HDR_SIZE;
	*out = w;
	return 0;
}

int mm_shard_writer_set_block_size(mm_shard_writer *w, uint32_t bytes)
{
	if (bytes < 1 || bytes > MM_SHARD_MAX_BLOCK)
		return mm_fail(MM_EINVAL, "%s: block size %u outside [1, %u]", w->af.path, bytes,
			       MM_SHARD_MAX_BLOCK);
	w->target = bytes;
	return 0;
}

uint64_t mm_shard_writer_bytes(const mm_shard_writer *w) { return w->offset; }
uint64_t mm_shard_writer_docs(const mm_shard_writer *w) { return w->n_docs; }

static void writer_free(mm_shard_writer *w)
{
	ZSTD_freeCCtx(w->cctx);
	free(w->block.p);
	free(w->cbuf.p);
	free(w->blocks.p);
	free(w->doc_lens.p);
	free(w);
}

void mm_shard_writer_abort(mm_shard_writer *w)
{
	if (!w)
		return;
	mm_afile_abort(&w->af);
	writer_free(w);
}

// Checks a document against the shard's info and returns its encoded size in *size.
static int doc_check(const mm_shard_writer *w, const mm_doc *d, uint64_t *size)
{
	const char *path = w->af.path;
	ull k = (ull)w->n_docs;
	uint64_t n = DOC_HDR;
	for (uint32_t i = 0; i < d->n_segs; i++) {
		const mm_segment *s = &d->segs[i];
		if (s->type == MM_SEG_TEXT) {
			if (s->n_tokens && !s->tokens)
				return mm_fail(MM_EINVAL, "%s: document %llu, segment %u: no token array", path, k, i);
			for (uint32_t j = 0; j < s->n_tokens; j++)
				if (s->tokens[j] >= w->info.vocab_size)
					return mm_fail(MM_ERANGE,
						       "%s: document %llu, segment %u: token id %u at position %u is not below the vocab size %u",
						       path, k, i, s->tokens[j], j, w->info.vocab_size);
			n += TEXT_SEG + 4 * (uint64_t)s->n_tokens;
		} else if (s->type == MM_SEG_IMAGE) {
			const mm_shard_info *in = &w->info;
			if (!has_images(in))
				return mm_fail(MM_EMISMATCH, "%s: document %llu, segment %u: an image in a text-only shard",
					       path, k, i);
			if (s->h != in->img_h || s->w != in->img_w || s->c != in->img_c || s->p != in->patch)
				return mm_fail(MM_EMISMATCH,
					       "%s: document %llu, segment %u: image %ux%ux%u patch %u, the shard holds %ux%ux%u patch %u",
					       path, k, i, s->h, s->w, s->c, s->p, in->img_h, in->img_w, in->img_c, in->patch);
			if (!s->pixels)
				return mm_fail(MM_EINVAL, "%s: document %llu, segment %u: no pixel array", path, k, i);
			n += IMAGE_SEG + (uint64_t)s->h * s->w * s->c;
		} else {
			return mm_fail(MM_EINVAL, "%s: document %llu, segment %u: unknown segment type %u", path, k,
				       i, s->type);
		}
		if (n > MM_SHARD_MAX_BLOCK)
			return mm_fail(MM_ERANGE, "%s: document %llu is larger than %u bytes", path, k,
				       MM_SHARD_MAX_BLOCK);
	}
	*size = n;
	return 0;
}

static void doc_encode(const mm_doc *d, uint8_t *p)
{
	mm_put_u32(p + MM_AT(doch, n_segs), d->n_segs);
	p += DOC_HDR;
	for (uint32_t i = 0; i < d->n_segs; i++) {
		const mm_segment *s = &d->segs[i];
		if (s->type == MM_SEG_TEXT) {
			mm_put_u32(p + MM_AT(text, type), MM_SEG_TEXT);
			mm_put_u32(p + MM_AT(text, n_tokens), s->n_tokens);
			p += TEXT_SEG;
			for (uint32_t j = 0; j < s->n_tokens; j++, p += 4)
				mm_put_u32(p, s->tokens[j]);
		} else {
			mm_put_u32(p + MM_AT(image, type), MM_SEG_IMAGE);
			mm_put_u32(p + MM_AT(image, h), s->h);
			mm_put_u32(p + MM_AT(image, w), s->w);
			mm_put_u32(p + MM_AT(image, c), s->c);
			mm_put_u32(p + MM_AT(image, p), s->p);
			p += IMAGE_SEG;
			size_t n = (size_t)s->h * s->w * s->c;
			memcpy(p, s->pixels, n);
			p += n;
		}
	}
}

static int writer_put(mm_shard_writer *w, const void *data, size_t n)
{
	int rc = mm_afile_write(&w->af, data, n);
	if (rc)
		w->failed = 1;
	else
		w->offset += n;
	return rc;
}

// Compresses the pending documents into one block: header, frame, and an index record.
static int flush_block(mm_shard_writer *w)
{
	if (!w->block.len)
		return 0;
	size_t bound = ZSTD_compressBound(w->block.len);
	w->cbuf.len = 0;
	if (buf_reserve(&w->cbuf, BLK_HDR + bound) || buf_reserve(&w->blocks, BLK_ENTRY)) {
		w->failed = 1;
		return mm_fail(MM_ENOMEM, "%s: out of memory", w->af.path);
	}
	uint8_t *h = w->cbuf.p;
	size_t cs = ZSTD_compress2(w->cctx, h + BLK_HDR, bound, w->block.p, w->block.len);
	if (ZSTD_isError(cs) || cs > UINT32_MAX) {
		w->failed = 1;
		return mm_fail(MM_EIO, "%s: zstd compression failed: %s", w->af.path,
			       ZSTD_isError(cs) ? ZSTD_getErrorName(cs) : "frame too large");
	}
	uint32_t crc = mm_crc32c(0, h + BLK_HDR, cs);
	blk_values bh = {.csize = cs, .usize = w->block.len, .crc = crc};
	mm_layout_put(&blk_layout, &bh, h);
	brec_values rec = {.offset = w->offset, .csize = cs, .usize = w->block.len, .crc = crc, .n_docs = w->block_docs};
	mm_layout_put(&brec_layout, &rec, w->blocks.p + w->blocks.len);
	int rc = writer_put(w, h, BLK_HDR + cs);
	if (rc)
		return rc;
	w->blocks.len += BLK_ENTRY;
	w->n_blocks++;
	w->block.len = 0;
	w->block_docs = 0;
	return 0;
}

int mm_shard_writer_add(mm_shard_writer *w, const mm_doc *doc)
{
	if (w->failed)
		return mm_fail(MM_EIO, "%s: an earlier write failed", w->af.path);
	uint64_t size = 0;
	int rc = doc_check(w, doc, &size);
	if (rc)
		return rc;
	// The index must stay within its limit even if this document starts a new block.
	if (w->n_docs >= UINT32_MAX ||
	    (w->n_docs + 1) * DOC_ENTRY + (w->n_blocks + 2) * BLK_ENTRY > MAX_INDEX)
		return mm_fail(MM_ERANGE, "%s: too many documents for one shard (%llu)", w->af.path,
			       (ull)w->n_docs);
	if (w->block.len && w->block.len + size > w->target && (rc = flush_block(w)))
		return rc;
	if (buf_reserve(&w->block, size) || buf_reserve(&w->doc_lens, DOC_ENTRY)) {
		w->failed = 1;
		return mm_fail(MM_ENOMEM, "%s: out of memory", w->af.path);
	}
	doc_encode(doc, w->block.p + w->block.len);
	w->block.len += size;
	mm_put_u32(w->doc_lens.p + w->doc_lens.len + MM_AT(drec, length), (uint32_t)size);
	w->doc_lens.len += DOC_ENTRY;
	w->block_docs++;
	w->n_docs++;
	if (w->block.len >= w->target)
		return flush_block(w);
	return 0;
}

static void header_encode(const mm_shard_writer *w, uint8_t *h, uint64_t index_csize,
			  uint64_t index_usize, uint32_t index_crc)
{
	const mm_shard_info *in = &w->info;
	hdr_values v = {
		.vocab_size = in->vocab_size, .tokenizer_hash = in->tokenizer_hash,
		.img_h = in->img_h, .img_w = in->img_w, .img_c = in->img_c, .patch = in->patch,
		.n_docs = w->n_docs, .n_blocks = w->n_blocks,
		.index_offset = w->offset, .index_csize = index_csize, .index_usize = index_usize,
		.index_crc = index_crc,
	};
	mm_layout_put(&hdr_layout, &v, h);
}

// Flushes the last block, appends the index and fills in the header.
static int writer_finish(mm_shard_writer *w)
{
	const char *path = w->af.path;
	if (w->failed)
		return mm_fail(MM_EIO, "%s: an earlier write failed", path);
	int rc = flush_block(w);
	if (rc)
		return rc;
	// The index: block records, then document records; both are already encoded.
	size_t usize = w->blocks.len + w->doc_lens.len;
	if (buf_reserve(&w->blocks, w->doc_lens.len))
		return mm_fail(MM_ENOMEM, "%s: out of memory", path);
	if (w->doc_lens.len)
		memcpy(w->blocks.p + w->blocks.len, w->doc_lens.p, w->doc_lens.len);
	size_t bound = ZSTD_compressBound(usize);
	w->cbuf.len = 0;
	if (buf_reserve(&w->cbuf, bound))
		return mm_fail(MM_ENOMEM, "%s: out of memory", path);
	size_t cs = ZSTD_compress2(w->cctx, w->cbuf.p, bound, w->blocks.p, usize);
	if (ZSTD_isError(cs))
		return mm_fail(MM_EIO, "%s: zstd compression failed: %s", path, ZSTD_getErrorName(cs));
	uint32_t crc = mm_crc32c(0, w->cbuf.p, cs);
	uint8_t h[HDR_SIZE];
	header_encode(w, h, cs, usize, crc);
	if ((rc = writer_put(w, w->cbuf.p, cs)))
		return rc;
	if (fflush(w->af.f) != 0)
		return mm_fail(MM_EIO, "%s: write failed: %s", path, strerror(errno));
	if (pwrite(fileno(w->af.f), h, HDR_SIZE, 0) != HDR_SIZE)
		return mm_fail(MM_EIO, "%s: write failed at offset 0: %s", path, strerror(errno));
	return 0;
}

int mm_shard_writer_close(mm_shard_writer *w)
{
	int rc = writer_finish(w);
	if (rc)
		mm_afile_abort(&w->af);
	else
		rc = mm_afile_commit(&w->af);
	writer_free(w);
	return rc;
}

int mm_shard_writer_seal(mm_shard_writer *w, uint64_t *bytes)
{
	int rc = writer_finish(w);
	*bytes = w->af.written;
	if (rc)
		mm_afile_abort(&w->af);
	else
		rc = mm_afile_seal(&w->af);
	writer_free(w);
	return rc;
}

// ---------------------------------------------------------------- reader

typedef struct {
	uint64_t offset;    // of the block header in the file
	uint64_t first_doc; // number of the block's first document
	uint32_t csize, usize, crc, n_docs;
} block_ent;

typedef struct {
	uint32_t offset, len; // inside the decompressed block
} doc_ent;

struct mm_shard_reader {
	int fd;
	char *path;
	uint64_t file_size;
	mm_shard_info info;
	hdr_values hdr;      // the header's fields, as read
	block_ent *blocks;
	doc_ent *docs;
	ZSTD_DCtx *dctx;
	buf_t cbuf, ubuf;    // the block in hand, compressed and decompressed
	int64_t cached;      // the block held in ubuf, or -1
	uint32_t *tok;       // scratch for decoding token ids
	size_t tok_cap;
};

const mm_shard_info *mm_shard_get_info(const mm_shard_reader *r) { return &r->info; }
const char *mm_shard_path(const mm_shard_reader *r) { return r->path; }

void mm_shard_close(mm_shard_reader *r)
{
	if (!r)
		return;
	if (r->fd >= 0)
		close(r->fd);
	ZSTD_freeDCtx(r->dctx);
	free(r->path);
	free(r->blocks);
	free(r->docs);
	free(r->cbuf.p);
	free(r->ubuf.p);
	free(r->tok);
	free(r);
}

// Validates the 128-byte header against itself and the file size (VALIDATION, steps 1 to 4).
static int read_header(mm_shard_reader *r)
{
	const char *path = r->path;
	uint64_t size = r->file_size;
	uint8_t h[HDR_SIZE];
	size_t n = size < HDR_SIZE ? (size_t)size : HDR_SIZE;
	int rc = mm_pread_all(r->fd, h, n, 0, path);
	if (rc)
		return rc;
	if (!mm_layout_magic_ok(&hdr_layout, h, n))
		return mm_fail(MM_EFORMAT, "%s: not an mm shard (bad magic at offset 0)", path);
	if (n < HDR_SIZE)
		return mm_fail(MM_ETRUNC, "%s: truncated: file is %llu bytes, the header needs %d (offset %llu)",
			       path, (ull)size, HDR_SIZE, (ull)size);
	for (int stage = MM_STAGE_IDENT; stage <= MM_STAGE_FIELDS; stage++)
		if ((rc = mm_layout_check(&hdr_layout, h, stage, path, 0)))
			return rc;
	hdr_values *hd = &r->hdr;
	mm_layout_get(&hdr_layout, h, hd);
	// u32 fields fit the info's uint32_t; the geometry, which none of the checks above
	// covers, is checked next.
	mm_shard_info *in = &r->info;
	in->vocab_size = (uint32_t)hd->vocab_size;
	in->tokenizer_hash = hd->tokenizer_hash;
	in->img_h = (uint32_t)hd->img_h;
	in->img_w = (uint32_t)hd->img_w;
	in->img_c = (uint32_t)hd->img_c;
	in->patch = (uint32_t)hd->patch;
	in->n_docs = hd->n_docs;
	const char *why = geometry_problem(in);
	if (why)
		return mm_fail(MM_EFORMAT, "%s: image geometry at offset %zu: %s", path, MM_AT(hdr, img_h), why);
	if (hd->n_blocks > in->n_docs || (in->n_docs && !hd->n_blocks))
		return mm_fail(MM_EFORMAT, "%s: block count %llu at offset %zu does not fit %llu documents",
			       path, (ull)hd->n_blocks, MM_AT(hdr, n_blocks), (ull)in->n_docs);
	if (hd->index_usize != hd->n_blocks * BLK_ENTRY + in->n_docs * DOC_ENTRY || hd->index_usize > MAX_INDEX)
		return mm_fail(MM_EFORMAT, "%s: index size %llu at offset %zu does not match %llu blocks and %llu documents (or is over %u)",
			       path, (ull)hd->index_usize, MM_AT(hdr, index_usize), (ull)hd->n_blocks,
			       (ull)in->n_docs, MAX_INDEX);
	// The index is the last thing in the file: it ends exactly where the file does.
	if (hd->index_offset < HDR_SIZE)
		return mm_fail(MM_EFORMAT, "%s: index offset %llu at offset %zu is inside the header", path,
			       (ull)hd->index_offset, MM_AT(hdr, index_offset));
	if (hd->index_offset > size || hd->index_csize > size || hd->index_offset + hd->index_csize > size)
		return mm_fail(MM_ETRUNC, "%s: truncated: file is %llu bytes, the index at offset %llu needs %llu",
			       path, (ull)size, (ull)hd->index_offset, (ull)hd->index_csize);
	if (hd->index_offset + hd->index_csize < size)
		return mm_fail(MM_EFORMAT, "%s: %llu unexpected bytes after the index, at offset %llu", path,
			       (ull)(size - hd->index_offset - hd->index_csize),
			       (ull)(hd->index_offset + hd->index_csize));
	if (hd->index_csize == 0)
		return mm_fail(MM_EFORMAT, "%s: empty index at offset %llu", path, (ull)hd->index_offset);
	// Every block takes at least its header and one byte of frame.
	if (hd->n_blocks > (hd->index_offset - HDR_SIZE) / (BLK_HDR + 1))
		return mm_fail(MM_EFORMAT, "%s: %llu blocks cannot fit before the index at offset %llu", path,
			       (ull)hd->n_blocks, (ull)hd->index_offset);
	return 0;
}

// Reads one zstd frame of exactly usize bytes of content from src.
static int unzstd(mm_shard_reader *r, void *dst, size_t usize, const void *src, size_t csize,
		  const char *what, ull off)
{
	unsigned long long fcs = ZSTD_getFrameContentSize(src, csize);
	if (fcs != usize)
		return mm_fail(MM_EFORMAT, "%s: %s at offset %llu: zstd frame does not declare %zu bytes", r->path,
			       what, off, usize);
	size_t got = ZSTD_decompressDCtx(r->dctx, dst, usize, src, csize);
	if (ZSTD_isError(got))
		return mm_fail(MM_EFORMAT, "%s: %s at offset %llu: zstd: %s", r->path, what, off,
			       ZSTD_getErrorName(got));
	if (got != usize)
		return mm_fail(MM_EFORMAT, "%s: %s at offset %llu: decompressed to %zu bytes, expected %zu", r->path,
			       what, off, got, usize);
	return 0;
}

// Checks the block records: contiguous from the header to the index, sizes within limits,
// document counts adding up (VALIDATION, step 6).
static int parse_blocks(mm_shard_reader *r, const uint8_t *ix)
{
	uint64_t expect = HDR_SIZE, first = 0;
	for (uint64_t b = 0; b < r->hdr.n_blocks; b++, ix += BLK_ENTRY) {
		block_ent *e = &r->blocks[b];
		brec_values v;
		mm_layout_get(&brec_layout, ix, &v);
		e->offset = v.offset;
		e->csize = (uint32_t)v.csize;
		e->usize = (uint32_t)v.usize;
		e->crc = (uint32_t)v.crc;
		e->n_docs = (uint32_t)v.n_docs;
		e->first_doc = first;
		if (e->offset != expect)
			return mm_fail(MM_EFORMAT, "%s: index at offset %llu: block %llu at offset %llu, expected %llu",
				       r->path, (ull)r->hdr.index_offset, (ull)b, (ull)e->offset, (ull)expect);
		uint64_t room = r->hdr.index_offset - expect; // expect <= index_offset holds here
		if (!e->csize || !e->n_docs || e->usize > MM_SHARD_MAX_BLOCK ||
		    e->usize < (uint64_t)e->n_docs * DOC_HDR || e->n_docs > r->info.n_docs - first ||
		    room < BLK_HDR || e->csize > room - BLK_HDR)
			return mm_fail(MM_EFORMAT, "%s: index at offset %llu: block %llu at offset %llu has bad sizes",
				       r->path, (ull)r->hdr.index_offset, (ull)b, (ull)e->offset);
		expect += BLK_HDR + (uint64_t)e->csize;
		first += e->n_docs;
	}
	if (expect != r->hdr.index_offset || first != r->info.n_docs)
		return mm_fail(MM_EFORMAT, "%s: index at offset %llu: blocks end at offset %llu and hold %llu documents",
			       r->path, (ull)r->hdr.index_offset, (ull)expect, (ull)first);
	return 0;
}

// Document records: each at least a segment count long, filling its block exactly
// (VALIDATION, step 7).
static int parse_docs(mm_shard_reader *r, const uint8_t *ix)
{
	uint64_t k = 0;
	for (uint64_t b = 0; b < r->hdr.n_blocks; b++) {
		const block_ent *e = &r->blocks[b];
		uint64_t off = 0;
		for (uint32_t i = 0; i < e->n_docs; i++, k++, ix += DOC_ENTRY) {
			uint32_t len = mm_get_u32(ix + MM_AT(drec, length));
			if (len < DOC_HDR || len > e->usize - off)
				return mm_fail(MM_EFORMAT, "%s: index at offset %llu: document %llu has length %u, block %llu has %llu bytes left",
					       r->path, (ull)r->hdr.index_offset, (ull)k, len, (ull)b, (ull)(e->usize - off));
			r->docs[k].offset = (uint32_t)off;
			r->docs[k].len = len;
			off += len;
		}
		if (off != e->usize)
			return mm_fail(MM_EFORMAT, "%s: index at offset %llu: documents of block %llu fill %llu of its %u bytes",
				       r->path, (ull)r->hdr.index_offset, (ull)b, (ull)off, e->usize);
	}
	return 0;
}

// The index: checksum, decompression (VALIDATION, step 5), then its records.
static int read_index(mm_shard_reader *r)
{
	uint8_t *c = malloc(r->hdr.index_csize);
	uint8_t *u = malloc(r->hdr.index_usize ? r->hdr.index_usize : 1);
	r->blocks = calloc(r->hdr.n_blocks ? r->hdr.n_blocks : 1, sizeof *r->blocks);
	r->docs = calloc(r->info.n_docs ? r->info.n_docs : 1, sizeof *r->docs);
	int rc = 0;
	if (!c || !u || !r->blocks || !r->docs) {
		rc = mm_fail(MM_ENOMEM, "%s: out of memory for the index", r->path);
		goto out;
	}
	if ((rc = mm_pread_all(r->fd, c, r->hdr.index_csize, r->hdr.index_offset, r->path)))
		goto out;
	uint32_t crc = mm_crc32c(0, c, r->hdr.index_csize);
	if (MM_CRC_BAD(r->hdr.index_crc, crc)) {
		rc = mm_fail(MM_ECHECKSUM, "%s: index checksum mismatch at offset %llu (stored %08x, computed %08x)",
			     r->path, (ull)r->hdr.index_offset, (uint32_t)r->hdr.index_crc, crc);
		goto out;
	}
	if ((rc = unzstd(r, u, r->hdr.index_usize, c, r->hdr.index_csize, "index", (ull)r->hdr.index_offset)))
		goto out;
	if ((rc = parse_blocks(r, u)))
		goto out;
	rc = parse_docs(r, u + r->hdr.n_blocks * BLK_ENTRY);
out:
	free(c);
	free(u);
	return rc;
}

int mm_shard_open(mm_shard_reader **out, const char *path)
{
	*out = NULL;
	mm_shard_reader *r = calloc(1, sizeof *r);
	if (!r)
		return mm_fail(MM_ENOMEM, "%s: out of memory", path);
	r->fd = -1;
	r->cached = -1;
	r->path = strdup(path);
	r->dctx = ZSTD_createDCtx();
	if (!r->path || !r->dctx) {
		mm_shard_close(r);
		return mm_fail(MM_ENOMEM, "%s: out of memory", path);
	}
	int rc = 0;
	struct stat st;
	r->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (r->fd < 0)
		rc = mm_fail(MM_EIO, "%s: cannot open: %s", path, strerror(errno));
	else if (fstat(r->fd, &st) != 0)
		rc = mm_fail(MM_EIO, "%s: cannot stat: %s", path, strerror(errno));
	else if (!S_ISREG(st.st_mode))
		rc = mm_fail(MM_EFORMAT, "%s: not a regular file", path);
	if (!rc) {
		r->file_size = (uint64_t)st.st_size;
		rc = read_header(r);
	}
	if (!rc)
		rc = read_index(r);
	if (rc) {
		mm_shard_close(r);
		return rc;
	}
	*out = r;
	return 0;
}

// Brings block b into ubuf, checking its header against the index, its CRC and its size
// (VALIDATION, step 8).
static int load_block(mm_shard_reader *r, uint64_t b)
{
	if (r->cached == (int64_t)b)
		return 0;
	r->cached = -1;
	const block_ent *e = &r->blocks[b];
	size_t n = BLK_HDR + (size_t)e->csize;
	r->cbuf.len = r->ubuf.len = 0;
	if (buf_reserve(&r->cbuf, n) || buf_reserve(&r->ubuf, e->usize ? e->usize : 1))
		return mm_fail(MM_ENOMEM, "%s: out of memory for block %llu", r->path, (ull)b);
	int rc = mm_pread_all(r->fd, r->cbuf.p, n, e->offset, r->path);
	if (rc)
		return rc;
	const uint8_t *h = r->cbuf.p;
	blk_values bh;
	mm_layout_get(&blk_layout, h, &bh);
	if (!mm_layout_magic_ok(&blk_layout, h, BLK_HDR) || bh.csize != e->csize || bh.usize != e->usize ||
	    bh.crc != e->crc)
		return mm_fail(MM_EFORMAT, "%s: block %llu at offset %llu: block header disagrees with the index",
			       r->path, (ull)b, (ull)e->offset);
	uint32_t crc = mm_crc32c(0, h + BLK_HDR, e->csize);
	if (MM_CRC_BAD(e->crc, crc))
		return mm_fail(MM_ECHECKSUM, "%s: block %llu at offset %llu: checksum mismatch (stored %08x, computed %08x)",
			       r->path, (ull)b, (ull)e->offset, e->crc, crc);
	rc = unzstd(r, r->ubuf.p, e->usize, h + BLK_HDR, e->csize, "block", (ull)e->offset);
	if (rc)
		return rc;
	r->cached = (int64_t)b;
	return 0;
}

static int doc_fail(mm_shard_reader *r, uint64_t b, uint64_t k, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int doc_fail(mm_shard_reader *r, uint64_t b, uint64_t k, const char *fmt, ...)
{
	char why[200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	return mm_fail(MM_EFORMAT, "%s: block %llu at offset %llu: document %llu: %s", r->path, (ull)b,
		       (ull)r->blocks[b].offset, (ull)k, why);
}

// Decodes document k of block b (already in ubuf) into doc (VALIDATION, step 9).
static int parse_doc(mm_shard_reader *r, uint64_t b, uint64_t k, mm_doc *doc)
{
	const mm_shard_info *in = &r->info;
	const uint8_t *p = r->ubuf.p + r->docs[k].offset;
	uint32_t len = r->docs[k].len, pos = DOC_HDR; // parse_docs checked len >= DOC_HDR
	uint32_t n_segs = mm_get_u32(p + MM_AT(doch, n_segs));
	// Each segment takes at least TEXT_SEG bytes: this bounds the count before anything is
	// allocated.
	if (n_segs > (len - DOC_HDR) / TEXT_SEG)
		return doc_fail(r, b, k, "%u segments cannot fit in %u bytes", n_segs, len);
	for (uint32_t i = 0; i < n_segs; i++) {
		if (len - pos < TEXT_SEG)
			return doc_fail(r, b, k, "segment %u runs past the document's end", i);
		uint32_t type = mm_get_u32(p + pos + MM_AT(text, type));
		int rc;
		if (type == MM_SEG_TEXT) {
			uint32_t n = mm_get_u32(p + pos + MM_AT(text, n_tokens));
			pos += TEXT_SEG;
			if (n > (len - pos) / 4)
				return doc_fail(r, b, k, "segment %u: %u tokens run past the document's end", i, n);
			if (n > r->tok_cap) {
				uint32_t *t = realloc(r->tok, (size_t)n * sizeof *t);
				if (!t)
					return mm_fail(MM_ENOMEM, "%s: out of memory", r->path);
				r->tok = t;
				r->tok_cap = n;
			}
			for (uint32_t j = 0; j < n; j++, pos += 4) {
				r->tok[j] = mm_get_u32(p + pos);
				if (r->tok[j] >= in->vocab_size)
					return doc_fail(r, b, k, "segment %u: token id %u is not below the vocab size %u",
							i, r->tok[j], in->vocab_size);
			}
			rc = mm_doc_add_text(doc, r->tok, n);
		} else if (type == MM_SEG_IMAGE) {
			if (len - pos < IMAGE_SEG)
				return doc_fail(r, b, k, "segment %u runs past the document's end", i);
			const uint8_t *s = p + pos;
			uint32_t h = mm_get_u32(s + MM_AT(image, h)), w = mm_get_u32(s + MM_AT(image, w));
			uint32_t c = mm_get_u32(s + MM_AT(image, c)), pa = mm_get_u32(s + MM_AT(image, p));
			if (!has_images(in) || h != in->img_h || w != in->img_w || c != in->img_c || pa != in->patch)
				return doc_fail(r, b, k, "segment %u: image %ux%ux%u patch %u, the shard holds %ux%ux%u patch %u",
						i, h, w, c, pa, in->img_h, in->img_w, in->img_c, in->patch);
			pos += IMAGE_SEG;
			size_t n = (size_t)h * w * c; // bounded by geometry_problem()
			if (n > len - pos)
				return doc_fail(r, b, k, "segment %u: pixels run past the document's end", i);
			rc = mm_doc_add_image(doc, h, w, c, pa, p + pos);
			pos += (uint32_t)n;
		} else {
			return doc_fail(r, b, k, "segment %u: unknown type %u", i, type);
		}
		if (rc)
			return rc;
	}
	if (pos != len)
		return doc_fail(r, b, k, "%u bytes left over after the last segment", len - pos);
	return 0;
}

static uint64_t block_of(const mm_shard_reader *r, uint64_t k)
{
	uint64_t lo = 0, hi = r->hdr.n_blocks; // the block holding k is in [lo, hi)
	while (hi - lo > 1) {
		uint64_t mid = lo + (hi - lo) / 2;
		if (r->blocks[mid].first_doc <= k)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

int mm_shard_read(mm_shard_reader *r, uint64_t k, mm_doc *doc)
{
	mm_doc_clear(doc);
	if (k >= r->info.n_docs)
		return mm_fail(MM_ERANGE, "%s: document %llu out of range (the shard holds %llu)", r->path,
			       (ull)k, (ull)r->info.n_docs);
	uint64_t b = block_of(r, k);
	int rc = load_block(r, b);
	if (!rc)
		rc = parse_doc(r, b, k, doc);
	if (rc)
		mm_doc_clear(doc);
	return rc;
}

int mm_shard_verify(mm_shard_reader *r)
{
	mm_doc doc;
	mm_doc_init(&doc);
	int rc = 0;
	for (uint64_t b = 0; b < r->hdr.n_blocks && !rc; b++) {
		r->cached = -1; // read the bytes on disk now, not a block checked earlier
		rc = load_block(r, b);
		const block_ent *e = &r->blocks[b];
		for (uint64_t k = e->first_doc; k < e->first_doc + e->n_docs && !rc; k++) {
			mm_doc_clear(&doc);
			rc = parse_doc(r, b, k, &doc);
		}
	}
	mm_doc_free(&doc);
	return rc;
}
