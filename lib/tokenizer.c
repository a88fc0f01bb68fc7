// Byte-level BPE: pre-tokenization into chunks, encoding by merge rank, decoding through a piece
// table, and the tokenizer file (man/mm-tokenizer.5). Training is in bpe_train.c.
#include "tokenizer.h"

#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "checksum.h"
#include "err.h"
#include "fileio.h"
#include "layout.h"
#include "tok_rules_priv.h"

// The file's header, as the field table of man/mm-tokenizer.5 gives it (tests/test_layout.c
// compares the two): X(R, name, offset, size, type, check, arg), see lib/layout.h. The merges
// and a CRC-32C of everything before it follow.
#define TOK_HEADER_FIELDS(X, R)                                                    \
	X(R, magic, 0, 8, BYTES, MAGIC, "MMTOKBPE")                                  \
	X(R, version, 8, 4, U32, VERSION, 1)                                         \
	X(R, vocab_size, 12, 4, U32, NONE, 0)                                        \
	X(R, pad_id, 16, 4, U32, EQ, MM_TOK_PAD)                                     \
	X(R, bos_id, 20, 4, U32, EQ, MM_TOK_BOS)                                     \
	X(R, eos_id, 24, 4, U32, EQ, MM_TOK_EOS)                                     \
	X(R, boi_id, 28, 4, U32, EQ, MM_TOK_BOI)                                     \
	X(R, eoi_id, 32, 4, U32, EQ, MM_TOK_EOI)                                     \
	X(R, n_merges, 36, 4, U32, MAX, MM_TOK_MAX_VOCAB - MM_TOK_FIRST_MERGE)       \
	X(R, pretokenizer, 40, 16, BYTES, KNOWN, MM_TOK_PRETOK_NAME)                 \
	X(R, chunk_max, 56, 4, U32, KNOWN, MM_TOK_CHUNK_MAX)                         \
	X(R, reserved, 60, 4, U32, ZERO, 0)
MM_LAYOUT(tokh, TOK_HEADER_FIELDS, "tokenizer-header");

const mm_layout *const mm_tok_layouts[] = {&tokh_layout, NULL};

#define TOK_HEADER ((int)sizeof(tokh_bytes))
#define NO_RANK UINT32_MAX
#define EMPTY_KEY UINT64_MAX

struct mm_tokenizer {
	uint32_t n_merges;
	uint32_t *merges;    // (left, right) of merge k at [2k], [2k+1]; its id is 261 + k
	uint64_t *map_keys;  // open addressing: left << 32 | right -> rank k
	uint32_t *map_vals;
	uint64_t map_mask;
	uint32_t *byte_rank; // rank of every pair of two bytes, indexed left << 8 | right
	uint32_t *piece_off; // bytes of id i: pool[piece_off[i] .. piece_off[i] + piece_len[i]]
	uint16_t *piece_len;
	uint8_t *pool;
	uint64_t hash;
};

// ---- pre-tokenization (the rule is stated in man/mm-tokenizer.5) ----

enum { C_LETTER, C_DIGIT, C_SPACE, C_SYMBOL };

static inline int byte_class(uint8_t c)
{
	if (c >= 0x80 || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z'))
		return C_LETTER; // bytes >= 0x80 keep UTF-8 words in one chunk
	if (c >= '0' && c <= '9')
		return C_DIGIT;
	if (c == ' ' || (c >= 9 && c <= 13))
		return C_SPACE;
	return C_SYMBOL;
}

size_t mm_tok_chunk(const uint8_t *s, size_t n)
{
	size_t lim = n < MM_TOK_CHUNK_MAX ? n : MM_TOK_CHUNK_MAX;
	int c = byte_class(s[0]);
	size_t i = 1;
	if (s[0] == ' ' && n > 1 && (byte_class(s[1]) == C_LETTER || byte_class(s[1]) == C_SYMBOL)) {
		c = byte_class(s[1]);
		i = 2;
	}
	if (c != C_SPACE) {
		while (i < lim && byte_class(s[i]) == c)
			i++;
		return i;
	}
	// A whitespace run gives its last space to a following word. Only whether the natural end
	// lies within the cap matters, so the scan stops one byte past it: linear on long runs.
	size_t look = n < MM_TOK_CHUNK_MAX + 1 ? n : MM_TOK_CHUNK_MAX + 1;
	while (i < look && byte_class(s[i]) == C_SPACE)
		i++;
	if (i >= 2 && i < n && s[i - 1] == ' ' && (byte_class(s[i]) == C_LETTER || byte_class(s[i]) == C_SYMBOL))
		i--;
	return i < lim ? i : lim;
}

// ---- merge map ----

static inline uint64_t pair_key(uint32_t l, uint32_t r) { return (uint64_t)l << 32 | r; }

static inline uint32_t merge_rank(const mm_tokenizer *t, uint32_t l, uint32_t r)
{
	if ((l | r) < 256) // most look-ups: the first pass over a chunk's bytes
		return t->byte_rank[l << 8 | r];
	uint64_t key = pair_key(l, r);
	for (uint64_t h = mm_mix64(key) & t->map_mask;; h = (h + 1) & t->map_mask) {
		if (t->map_keys[h] == key)
			return t->map_vals[h];
		if (t->map_keys[h] == EMPTY_KEY)
			return NO_RANK;
	}
}

void mm_tok_free(mm_tokenizer *t)
{
	if (!t)
		return;
	free(t->merges);
	free(t->map_keys);
	free(t->map_vals);
	free(t->byte_rank);
	free(t->piece_off);
	free(t->piece_len);
	free(t->pool);
	free(t);
}

static size_t tok_file_size(uint32_t n_merges) { return TOK_HEADER + 8 * (size_t)n_merges + 4; }

// Writes the file (tok_file_size bytes at p): header, merges, CRC.
static void tok_encode(const mm_tokenizer *t, uint8_t *p)
{
	size_t size = tok_file_size(t->n_merges);
	tokh_values v = {.vocab_size = MM_TOK_FIRST_MERGE + t->n_merges, .n_merges = t->n_merges};
	mm_layout_put(&tokh_layout, &v, p);
	for (size_t i = 0; i < 2 * (size_t)t->n_merges; i++)
		mm_put_u32(p + TOK_HEADER + 4 * i, t->merges[i]);
	mm_put_u32(p + size - 4, mm_crc32c(0, p, size - 4));
}

// The identity hash covers the file from the pre-tokenizer name to the last merge: everything
// that decides how text is split into ids.
static int tok_identity(mm_tokenizer *t)
{
	size_t n = tok_file_size(t->n_merges), from = MM_AT(tokh, pretokenizer);
	uint8_t *b = malloc(n);
	if (!b)
		return mm_fail(MM_ENOMEM, "tokenizer: out of memory");
	tok_encode(t, b);
	t->hash = mm_hash64(MM_HASH64_INIT, b + from, n - 4 - from);
	free(b);
	return 0;
}

// Checks merge k against the ones before it and adds it to the map and the piece table.
static int add_merge(mm_tokenizer *t, uint32_t k, const char *name, uint64_t base)
{
	uint32_t l = t->merges[2 * k], r = t->merges[2 * k + 1], id = MM_TOK_FIRST_MERGE + k;
	unsigned long long off = base + 8ULL * k;
	if (l >= id || r >= id)
		return mm_fail(MM_EFORMAT, "%s: merge %u at offset %llu uses id %u, not below its own id %u", name,
			       k, off, l >= id ? l : r, id);
	if ((l >= MM_TOK_PAD && l < MM_TOK_FIRST_MERGE) || (r >= MM_TOK_PAD && r < MM_TOK_FIRST_MERGE))
		return mm_fail(MM_EFORMAT, "%s: merge %u at offset %llu uses special token %u", name, k, off,
			       l >= MM_TOK_PAD && l < MM_TOK_FIRST_MERGE ? l : r);
	size_t len = (size_t)t->piece_len[l] + t->piece_len[r];
	if (len > MM_TOK_CHUNK_MAX)
		return mm_fail(MM_EFORMAT, "%s: merge %u at offset %llu makes a %zu-byte piece, over the %d-byte chunk limit",
			       name, k, off, len, MM_TOK_CHUNK_MAX);
	uint64_t key = pair_key(l, r), h = mm_mix64(key) & t->map_mask;
	for (; t->map_keys[h] != EMPTY_KEY; h = (h + 1) & t->map_mask)
		if (t->map_keys[h] == key)
			return mm_fail(MM_EFORMAT, "%s: merge %u at offset %llu repeats merge %u (%u, %u)", name, k, off,
				       t->map_vals[h], l, r);
	t->map_keys[h] = key;
	t->map_vals[h] = k;
	if ((l | r) < 256)
		t->byte_rank[l << 8 | r] = k;
	return 0;
}

int mm_tok_from_merges(mm_tokenizer **out, const uint32_t *pairs, uint32_t n_merges, const char *name, uint64_t base)
{
	*out = NULL;
	if (n_merges > MM_TOK_MAX_VOCAB - MM_TOK_FIRST_MERGE)
		return mm_fail(MM_ERANGE, "%s: %u merges, over the limit of %u", name, n_merges,
			       MM_TOK_MAX_VOCAB - MM_TOK_FIRST_MERGE);
	uint32_t vocab = MM_TOK_FIRST_MERGE + n_merges;
	uint64_t slots = 16;
	while (slots < 2ULL * n_merges)
		slots *= 2;
	mm_tokenizer *t = calloc(1, sizeof *t);
	if (!t)
		return mm_fail(MM_ENOMEM, "%s: out of memory", name);
	t->n_merges = n_merges;
	t->merges = malloc(sizeof(uint32_t) * 2 * (n_merges ? n_merges : 1));
	t->map_keys = malloc(sizeof(uint64_t) * slots);
	t->byte_rank = malloc(sizeof(uint32_t) * 65536);
	t->map_vals = malloc(sizeof(uint32_t) * slots);
	t->map_mask = slots - 1;
	t->piece_off = malloc(sizeof(uint32_t) * vocab);
	t->piece_len = malloc(sizeof(uint16_t) * vocab);
	if (!t->merges || !t->map_keys || !t->byte_rank || !t->map_vals || !t->piece_off || !t->piece_len) {
		mm_tok_free(t);
		return mm_fail(MM_ENOMEM, "%s: out of memory", name);
	}
	if (n_merges)
		memcpy(t->merges, pairs, sizeof(uint32_t) * 2 * n_merges);
	memset(t->map_keys, 0xff, sizeof(uint64_t) * slots);
	memset(t->byte_rank, 0xff, sizeof(uint32_t) * 65536);
	size_t pool_len = 256;
	for (uint32_t i = 0; i < MM_TOK_FIRST_MERGE; i++) {
		t->piece_off[i] = i < 256 ? i : 0;
		t->piece_len[i] = i < 256;
	}
	for (uint32_t k = 0; k < n_merges; k++) {
		int rc = add_merge(t, k, name, base);
		if (rc) {
			mm_tok_free(t);
			return rc;
		}
		uint32_t id = MM_TOK_FIRST_MERGE + k;
		t->piece_len[id] = (uint16_t)(t->piece_len[pairs[2 * k]] + t->piece_len[pairs[2 * k + 1]]);
		pool_len += t->piece_len[id];
	}
	// At most 256 bytes per piece and 2^24 pieces: the pool fits 32-bit offsets.
	t->pool = malloc(pool_len);
	if (!t->pool) {
		mm_tok_free(t);
		return mm_fail(MM_ENOMEM, "%s: out of memory", name);
	}
	for (uint32_t i = 0; i < 256; i++)
		t->pool[i] = (uint8_t)i;
	uint32_t at = 256;
	for (uint32_t k = 0; k < n_merges; k++) {
		uint32_t id = MM_TOK_FIRST_MERGE + k, l = pairs[2 * k], r = pairs[2 * k + 1];
		t->piece_off[id] = at;
		memcpy(t->pool + at, t->pool + t->piece_off[l], t->piece_len[l]);
		memcpy(t->pool + at + t->piece_len[l], t->pool + t->piece_off[r], t->piece_len[r]);
		at += t->piece_len[id];
	}
	int rc = tok_identity(t);
	if (rc) {
		mm_tok_free(t);
		return rc;
	}
	*out = t;
	return 0;
}

int mm_tok_new_bytes(mm_tokenizer **t) { return mm_tok_from_merges(t, NULL, 0, "byte tokenizer", 0); }

uint32_t mm_tok_vocab_size(const mm_tokenizer *t) { return MM_TOK_FIRST_MERGE + t->n_merges; }

uint64_t mm_tok_hash(const mm_tokenizer *t) { return t->hash; }

const uint8_t *mm_tok_piece(const mm_tokenizer *t, uint32_t id, size_t *len)
{
	if (id >= mm_tok_vocab_size(t)) {
		*len = 0;
		return NULL;
	}
	*len = t->piece_len[id];
	return t->pool + t->piece_off[id];
}

// ---- the file ----

int mm_tok_serialize(const mm_tokenizer *t, uint8_t **out, size_t *n)
{
	size_t size = tok_file_size(t->n_merges);
	uint8_t *p = malloc(size);
	if (!p)
		return mm_fail(MM_ENOMEM, "tokenizer: out of memory");
	tok_encode(t, p);
	*out = p;
	*n = size;
	return 0;
}

int mm_tok_save(const mm_tokenizer *t, const char *path)
{
	uint8_t *buf = NULL;
	size_t n = 0;
	int rc = mm_tok_serialize(t, &buf, &n);
	if (rc)
		return rc;
	mm_afile f;
	rc = mm_afile_open(&f, path);
	if (rc == 0) {
		rc = mm_afile_write(&f, buf, n);
		if (rc == 0)
			rc = mm_afile_commit(&f);
		else
			mm_afile_abort(&f);
	}
	free(buf);
	return rc;
}

static int check_header(const uint8_t *p, size_t n, const char *name, uint32_t *n_merges)
{
	if (n < MM_SIZE(tokh, magic))
		return mm_fail(MM_ETRUNC, "%s: truncated: %zu bytes, too short for a tokenizer file", name, n);
	if (!mm_layout_magic_ok(&tokh_layout, p, n))
		return mm_fail(MM_EFORMAT, "%s: bad magic at offset 0 (not an mm tokenizer file)", name);
	if (n < TOK_HEADER + 4)
		return mm_fail(MM_ETRUNC, "%s: truncated: %zu bytes, the header alone needs %d", name, n, TOK_HEADER + 4);
	int rc = mm_layout_check(&tokh_layout, p, MM_STAGE_IDENT, name, 0);
	if (rc)
		return rc;
	tokh_values v;
	mm_layout_get(&tokh_layout, p, &v);
	uint64_t want = TOK_HEADER + 8 * v.n_merges + 4;
	if (n < want)
		return mm_fail(MM_ETRUNC, "%s: truncated: %zu bytes, %llu merges need %llu", name, n,
			       (unsigned long long)v.n_merges, (unsigned long long)want);
	if (n > want)
		return mm_fail(MM_EFORMAT, "%s: %llu unexpected bytes after offset %llu", name,
			       (unsigned long long)(n - want), (unsigned long long)want);
	uint32_t crc = mm_get_u32(p + n - 4), got = mm_crc32c(0, p, n - 4);
	if (crc != got)
		return mm_fail(MM_ECHECKSUM, "%s: CRC-32C mismatch at offset %zu: stored %08x, computed %08x", name,
			       n - 4, crc, got);
	if (v.vocab_size != MM_TOK_FIRST_MERGE + v.n_merges)
		return mm_fail(MM_EFORMAT, "%s: vocab size %llu at offset %zu does not match %llu merges", name,
			       (unsigned long long)v.vocab_size, MM_AT(tokh, vocab_size), (unsigned long long)v.n_merges);
	if ((rc = mm_layout_check(&tokh_layout, p, MM_STAGE_FIELDS, name, 0)))
		return rc;
	*n_merges = (uint32_t)v.n_merges;
	return 0;
}

int mm_tok_load_mem(mm_tokenizer **t, const uint8_t *data, size_t n, const char *name)
{
	*t = NULL;
	uint32_t m = 0;
	int rc = check_header(data, n, name, &m);
	if (rc)
		return rc;
	uint32_t *pairs = malloc(sizeof(uint32_t) * 2 * (m ? m : 1));
	if (!pairs)
		return mm_fail(MM_ENOMEM, "%s: out of memory", name);
	for (size_t i = 0; i < 2 * (size_t)m; i++)
		pairs[i] = mm_get_u32(data + TOK_HEADER + 4 * i);
	rc = mm_tok_from_merges(t, pairs, m, name, TOK_HEADER);
	free(pairs);
	return rc;
}

int mm_tok_load(mm_tokenizer **t, const char *path)
{
	*t = NULL;
	uint8_t *buf;
	size_t n;
	int rc = mm_read_file(path, TOK_HEADER + 8ULL * MM_TOK_MAX_VOCAB + 4, &buf, &n);
	if (rc)
		return rc;
	rc = mm_tok_load_mem(t, buf, n, path);
	free(buf);
	return rc;
}

// ---- encoding ----

// Short chunks: find the lowest-rank adjacent pair, merge it, repeat; rank[i] is the rank of
// the pair at (i, i + 1), and a merge changes only the two around it. Merging the leftmost
// occurrence first gives the same result as applying each merge to the whole chunk in order.
static size_t bpe_scan(const mm_tokenizer *t, const uint8_t *s, size_t len, uint32_t *out)
{
	uint32_t rank[32];
	for (size_t i = 0; i < len; i++)
		out[i] = s[i];
	for (size_t i = 0; i + 1 < len; i++)
		rank[i] = merge_rank(t, out[i], out[i + 1]);
	while (len > 1) {
		uint32_t best = NO_RANK;
		size_t at = 0;
		for (size_t i = 0; i + 1 < len; i++)
			if (rank[i] < best) {
				best = rank[i];
				at = i;
			}
		if (best == NO_RANK)
			break;
		out[at] = MM_TOK_FIRST_MERGE + best;
		memmove(out + at + 1, out + at + 2, sizeof(uint32_t) * (len - at - 2));
		memmove(rank + at + 1, rank + at + 2, sizeof(uint32_t) * (len - at - 2));
		len--;
		if (at > 0)
			rank[at - 1] = merge_rank(t, out[at - 1], out[at]);
		if (at + 1 < len)
			rank[at] = merge_rank(t, out[at], out[at + 1]);
	}
	return len;
}

// Min-heap of (rank << 9 | position): the lowest rank first, leftmost among equals.
static void heap_push(uint64_t *h, size_t *n, uint64_t v)
{
	size_t i = (*n)++;
	while (i > 0 && h[(i - 1) / 2] > v) {
		h[i] = h[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	h[i] = v;
}

static uint64_t heap_pop(uint64_t *h, size_t *n)
{
	uint64_t top = h[0], v = h[--*n];
	size_t i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= *n)
			break;
		if (c + 1 < *n && h[c + 1] < h[c])
			c++;
		if (h[c] >= v)
			break;
		h[i] = h[c];
		i = c;
	}
	if (*n)
		h[i] = v;
	return top;
}

// Long chunks: a linked list of symbols and a heap of candidate merges, O(len log len).
static size_t bpe_heap(const mm_tokenizer *t, const uint8_t *s, size_t len, uint32_t *out)
{
	uint32_t sym[MM_TOK_CHUNK_MAX];
	int16_t nxt[MM_TOK_CHUNK_MAX], prv[MM_TOK_CHUNK_MAX];
	uint64_t heap[3 * MM_TOK_CHUNK_MAX]; // len - 1 at the start, then at most 2 per merge
	size_t hn = 0;
	for (size_t i = 0; i < len; i++) {
		sym[i] = s[i];
		prv[i] = (int16_t)i - 1;
		nxt[i] = i + 1 < len ? (int16_t)(i + 1) : -1;
	}
	for (size_t i = 0; i + 1 < len; i++) {
		uint32_t r = merge_rank(t, sym[i], sym[i + 1]);
		if (r != NO_RANK)
			heap_push(heap, &hn, (uint64_t)r << 9 | i);
	}
	while (hn) {
		uint64_t e = heap_pop(heap, &hn);
		uint32_t r = (uint32_t)(e >> 9);
		int p = (int)(e & 511), q = nxt[p];
		// Stale if p was absorbed or either side has changed since the push.
		if (sym[p] == NO_RANK || q < 0 || sym[p] != t->merges[2 * r] || sym[q] != t->merges[2 * r + 1])
			continue;
		sym[p] = MM_TOK_FIRST_MERGE + r;
		sym[q] = NO_RANK;
		nxt[p] = nxt[q];
		if (nxt[q] >= 0)
			prv[nxt[q]] = (int16_t)p;
		uint32_t r2;
		if (prv[p] >= 0 && (r2 = merge_rank(t, sym[prv[p]], sym[p])) != NO_RANK)
			heap_push(heap, &hn, (uint64_t)r2 << 9 | (uint64_t)prv[p]);
		if (nxt[p] >= 0 && (r2 = merge_rank(t, sym[p], sym[nxt[p]])) != NO_RANK)
			heap_push(heap, &hn, (uint64_t)r2 << 9 | (uint64_t)p);
	}
	size_t k = 0;
	for (int i = 0; i >= 0; i = nxt[i])
		out[k++] = sym[i];
	return k;
}

// Per-call memo of chunk -> ids, so that repeated words are merged once. Keys point into the
// caller's text and values into the output being written, so nothing is copied.
typedef struct {
	size_t text_off, ids_off;
	uint32_t hash, len, n_ids;
} memo_slot;

typedef struct {
	memo_slot *slots;
	size_t mask, used;
} memo;

static inline uint32_t chunk_hash(const uint8_t *s, size_t len)
{
	uint64_t h = len * 0x9E3779B97F4A7C15ULL;
	size_t i = 0;
	for (; i + 8 <= len; i += 8) {
		uint64_t w;
		memcpy(&w, s + i, 8);
		h = (h ^ w) * 0xff51afd7ed558ccdULL;
		h ^= h >> 32;
	}
	uint64_t w = 0;
	memcpy(&w, s + i, len - i);
	h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
	return (uint32_t)(h >> 32) | 1; // 0 marks an empty slot
}

int mm_tok_encode(const mm_tokenizer *t, const uint8_t *text, size_t n, uint32_t **ids, size_t *cap, size_t *n_ids)
{
	// Every byte yields at most one id, so one allocation of n suffices.
	if (!*ids || *cap < n) {
		size_t want = n ? n : 1;
		if (want > SIZE_MAX / sizeof(uint32_t))
			return mm_fail(MM_ENOMEM, "tokenizer: %zu bytes is too much text to encode at once", n);
		uint32_t *p = realloc(*ids, want * sizeof(uint32_t));
		if (!p)
			return mm_fail(MM_ENOMEM, "tokenizer: out of memory encoding %zu bytes", n);
		*ids = p;
		*cap = want;
	}
	uint32_t *out = *ids;
	size_t k = 0;
	if (t->n_merges == 0) {
		for (size_t i = 0; i < n; i++)
			out[i] = text[i];
		*n_ids = n;
		return 0;
	}
	memo m = {0};
	if (n >= 4096) { // below that, the memo costs more than it saves
		size_t slots = 1024;
		while (slots < n / 16 && slots < (1u << 16))
			slots *= 2;
		m.slots = calloc(slots, sizeof *m.slots); // without it, encoding just runs slower
		m.mask = slots - 1;
	}
	for (size_t i = 0; i < n;) {
		size_t len = mm_tok_chunk(text + i, n - i);
		const uint8_t *s = text + i;
		if (len == 1) {
			out[k++] = s[0];
			i++;
			continue;
		}
		memo_slot *slot = NULL;
		if (m.slots) {
			uint32_t h = chunk_hash(s, len);
			size_t j = h & m.mask;
			for (; m.slots[j].hash; j = (j + 1) & m.mask) {
				memo_slot *e = &m.slots[j];
				if (e->hash == h && e->len == len && memcmp(text + e->text_off, s, len) == 0)
					break;
			}
			if (m.slots[j].hash) {
				memcpy(out + k, out + m.slots[j].ids_off, sizeof(uint32_t) * m.slots[j].n_ids);
				k += m.slots[j].n_ids;
				i += len;
				continue;
			}
			if (m.used < m.mask / 4 * 3) { // full: stop remembering, keep encoding
				slot = &m.slots[j];
				*slot = (memo_slot){i, k, h, (uint32_t)len, 0};
				m.used++;
			}
		}
		size_t got = len <= 32 ? bpe_scan(t, s, len, out + k) : bpe_heap(t, s, len, out + k);
		if (slot)
			slot->n_ids = (uint32_t)got;
		k += got;
		i += len;
	}
	free(m.slots);
	*n_ids = k;
	return 0;
}

int mm_tok_decode(const mm_tokenizer *t, const uint32_t *ids, size_t n, uint8_t **out, size_t *cap, size_t *n_out)
{
	uint32_t vocab = mm_tok_vocab_size(t);
	size_t total = 0;
	for (size_t i = 0; i < n; i++) {
		if (ids[i] >= vocab)
			return mm_fail(MM_ERANGE, "tokenizer: token id %u at position %zu is out of range (vocab size %u)",
				       ids[i], i, vocab);
		total += t->piece_len[ids[i]];
	}
	if (!*out || *cap < total) {
		size_t want = total ? total : 1;
		uint8_t *p = realloc(*out, want);
		if (!p)
			return mm_fail(MM_ENOMEM, "tokenizer: out of memory decoding %zu tokens", n);
		*out = p;
		*cap = want;
	}
	uint8_t *o = *out;
	for (size_t i = 0; i < n; i++) {
		memcpy(o, t->pool + t->piece_off[ids[i]], t->piece_len[ids[i]]);
		o += t->piece_len[ids[i]];
	}
	*n_out = total;
	return 0;
}
