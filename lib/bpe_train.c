// BPE training with incremental pair counts.
//
// Text is cut into chunks (mm_tok_chunk) and only the distinct chunks are kept, each with its
// count; a chunk becomes a "word", a sequence of symbol ids. Every adjacent pair of symbols is
// counted, weighted by the word's count (overlapping pairs such as the two in "aaa" both
// count), and each pair keeps the list of words it occurs in. A merge rewrites only the words
// on the chosen pair's list and adjusts only the counts of the pairs around each rewritten
// position; a max-heap with lazy deletion finds the next most frequent pair. Within a word a
// merge is applied left to right without overlap, exactly as encoding does.
#include <stdlib.h>
#include <string.h>

#include "checksum.h"
#include "err.h"
#include "tok_rules_priv.h"
#include "tokenizer.h"

typedef struct {
	size_t off;    // bytes in pool
	uint32_t len;
	uint64_t hash;
	uint64_t count;
} chunk_rec;

struct mm_bpe_trainer {
	uint8_t *pool;
	size_t pool_len, pool_cap;
	chunk_rec *chunks;
	size_t n_chunks, chunks_cap;
	uint32_t *slots; // chunk index + 1, 0 = empty
	size_t mask;
};

int mm_bpe_trainer_new(mm_bpe_trainer **out)
{
	mm_bpe_trainer *tr = calloc(1, sizeof *tr);
	if (tr)
		tr->slots = calloc(1024, sizeof *tr->slots);
	if (!tr || !tr->slots) {
		free(tr);
		return mm_fail(MM_ENOMEM, "BPE trainer: out of memory");
	}
	tr->mask = 1023;
	*out = tr;
	return 0;
}

void mm_bpe_trainer_free(mm_bpe_trainer *tr)
{
	if (!tr)
		return;
	free(tr->pool);
	free(tr->chunks);
	free(tr->slots);
	free(tr);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	size_t c = *cap ? *cap : 64;
	while (c < need)
		c *= 2;
	void *q = realloc(*p, c * elem);
	if (!q)
		return mm_fail(MM_ENOMEM, "BPE trainer: out of memory");
	*p = q;
	*cap = c;
	return 0;
}

static int rehash(mm_bpe_trainer *tr)
{
	size_t slots = (tr->mask + 1) * 2;
	uint32_t *s = calloc(slots, sizeof *s);
	if (!s)
		return mm_fail(MM_ENOMEM, "BPE trainer: out of memory");
	for (size_t c = 0; c < tr->n_chunks; c++) {
		size_t j = tr->chunks[c].hash & (slots - 1);
		while (s[j])
			j = (j + 1) & (slots - 1);
		s[j] = (uint32_t)c + 1;
	}
	free(tr->slots);
	tr->slots = s;
	tr->mask = slots - 1;
	return 0;
}

static int add_chunk(mm_bpe_trainer *tr, const uint8_t *s, size_t len)
{
	uint64_t h = mm_hash64(MM_HASH64_INIT, s, len);
	size_t j = h & tr->mask;
	for (; tr->slots[j]; j = (j + 1) & tr->mask) {
		chunk_rec *c = &tr->chunks[tr->slots[j] - 1];
		if (c->hash == h && c->len == len && memcmp(tr->pool + c->off, s, len) == 0) {
			c->count++;
			return 0;
		}
	}
	if (tr->n_chunks >= UINT32_MAX - 1)
		return mm_fail(MM_ERANGE, "BPE trainer: more than %u distinct chunks", UINT32_MAX - 2);
	int rc = grow((void **)&tr->chunks, &tr->chunks_cap, tr->n_chunks + 1, sizeof *tr->chunks);
	if (rc == 0)
		rc = grow((void **)&tr->pool, &tr->pool_cap, tr->pool_len + len, 1);
	if (rc)
		return rc;
	memcpy(tr->pool + tr->pool_len, s, len);
	tr->chunks[tr->n_chunks] = (chunk_rec){tr->pool_len, (uint32_t)len, h, 1};
	tr->pool_len += len;
	tr->slots[j] = (uint32_t)++tr->n_chunks;
	if (tr->n_chunks * 4 > tr->mask * 3)
		return rehash(tr);
	return 0;
}

int mm_bpe_trainer_feed(mm_bpe_trainer *tr, const uint8_t *text, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t len = mm_tok_chunk(text + i, n - i);
		if (len > 1) { // a single byte has no pair to count
			int rc = add_chunk(tr, text + i, len);
			if (rc)
				return rc;
		}
		i += len;
	}
	return 0;
}

// ---- training state ----

typedef struct {
	uint32_t left, right;
	int64_t count;
	uint32_t *where; // words that contain (or once contained) the pair
	uint32_t n_where, cap_where;
	uint32_t round;  // last merge round that raised the count
} pair_rec;

typedef struct {
	int64_t count;
	uint32_t left, right, pair;
} heap_ent;

typedef struct {
	uint32_t *sym;   // all words' symbols, word w at sym[woff[w]], woff[w + 1] - woff[w] slots
	size_t *woff;
	uint32_t *wlen;  // current length (shrinks as merges apply)
	int64_t *wcount;
	uint32_t *wround; // last round that rewrote the word (a word can be listed twice)
	uint32_t n_words;
	pair_rec *pairs;
	size_t n_pairs, cap_pairs;
	uint64_t *keys;  // open addressing: left << 32 | right -> pair index
	uint32_t *vals;
	size_t mask;
	heap_ent *heap;
	size_t n_heap, cap_heap;
	uint32_t *raised; // pairs whose count rose in this round, to be pushed afresh
	size_t n_raised, cap_raised;
	uint32_t round;
	int err;
} train;

static int map_grow(train *s)
{
	size_t slots = (s->mask + 1) * 2;
	uint64_t *k = malloc(slots * sizeof *k);
	uint32_t *v = malloc(slots * sizeof *v);
	if (!k || !v) {
		free(k);
		free(v);
		return mm_fail(MM_ENOMEM, "BPE trainer: out of memory");
	}
	memset(k, 0xff, slots * sizeof *k);
	for (size_t i = 0; i < s->n_pairs; i++) {
		uint64_t key = (uint64_t)s->pairs[i].left << 32 | s->pairs[i].right;
		size_t j = mm_mix64(key) & (slots - 1);
		while (k[j] != UINT64_MAX)
			j = (j + 1) & (slots - 1);
		k[j] = key;
		v[j] = (uint32_t)i;
	}
	free(s->keys);
	free(s->vals);
	s->keys = k;
	s->vals = v;
	s->mask = slots - 1;
	return 0;
}

// Index of pair (l, r), created with count 0 if new; -1 on allocation failure (s->err set).
static int64_t pair_get(train *s, uint32_t l, uint32_t r)
{
	uint64_t key = (uint64_t)l << 32 | r;
	size_t j = mm_mix64(key) & s->mask;
	for (; s->keys[j] != UINT64_MAX; j = (j + 1) & s->mask)
		if (s->keys[j] == key)
			return s->vals[j];
	int rc = grow((void **)&s->pairs, &s->cap_pairs, s->n_pairs + 1, sizeof *s->pairs);
	if (rc) {
		s->err = rc;
		return -1;
	}
	s->keys[j] = key;
	s->vals[j] = (uint32_t)s->n_pairs;
	s->pairs[s->n_pairs] = (pair_rec){.left = l, .right = r};
	size_t idx = s->n_pairs++;
	if (s->n_pairs * 4 > s->mask * 3 && (rc = map_grow(s)) != 0) {
		s->err = rc;
		return -1;
	}
	return (int64_t)idx;
}

// Adds delta to the count of (l, r); a positive delta also lists word w under the pair.
static void pair_add(train *s, uint32_t l, uint32_t r, int64_t delta, uint32_t w)
{
	int64_t i = pair_get(s, l, r);
	if (i < 0)
		return;
	pair_rec *p = &s->pairs[i];
	p->count += delta;
	if (delta <= 0)
		return;
	if (p->round != s->round) {
		p->round = s->round;
		int rc = grow((void **)&s->raised, &s->cap_raised, s->n_raised + 1, sizeof *s->raised);
		if (rc) {
			s->err = rc;
			return;
		}
		s->raised[s->n_raised++] = (uint32_t)i;
	}
	if (p->n_where && p->where[p->n_where - 1] == w)
		return;
	if (p->n_where == p->cap_where) {
		uint32_t c = p->cap_where ? 2 * p->cap_where : 4;
		uint32_t *q = realloc(p->where, c * sizeof *q);
		if (!q) {
			s->err = mm_fail(MM_ENOMEM, "BPE trainer: out of memory");
			return;
		}
		p->where = q;
		p->cap_where = c;
	}
	p->where[p->n_where++] = w;
}

// Heap order: higher count first, then the smaller (left, right).
static inline int heap_before(const heap_ent *a, const heap_ent *b)
{
	if (a->count != b->count)
		return a->count > b->count;
	if (a->left != b->left)
		return a->left < b->left;
	return a->right < b->right;
}

static int heap_push(train *s, uint32_t pair)
{
	int rc = grow((void **)&s->heap, &s->cap_heap, s->n_heap + 1, sizeof *s->heap);
	if (rc)
		return rc;
	const pair_rec *p = &s->pairs[pair];
	heap_ent e = {p->count, p->left, p->right, pair};
	size_t i = s->n_heap++;
	while (i > 0 && heap_before(&e, &s->heap[(i - 1) / 2])) {
		s->heap[i] = s->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	s->heap[i] = e;
	return 0;
}

static heap_ent heap_pop(train *s)
{
	heap_ent top = s->heap[0], v = s->heap[--s->n_heap];
	size_t i = 0, n = s->n_heap;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && heap_before(&s->heap[c + 1], &s->heap[c]))
			c++;
		if (!heap_before(&s->heap[c], &v))
			break;
		s->heap[i] = s->heap[c];
		i = c;
	}
	if (n)
		s->heap[i] = v;
	return top;
}

// The most frequent pair, or -1. Every live pair has a heap entry with at least its count (a
// rise pushes a fresh entry, a fall leaves an entry that is too high), so an entry whose count
// is current is a true maximum; one that is too high is pushed again with the current count.
static int64_t best_pair(train *s)
{
	while (s->n_heap) {
		heap_ent e = heap_pop(s);
		int64_t c = s->pairs[e.pair].count;
		if (c == e.count)
			return e.pair;
		if (c > 0 && c < e.count && (s->err = heap_push(s, e.pair)) != 0)
			return -1;
	}
	return -1;
}

// Rewrites word w with pair (a, b) merged into id x, updating the neighbouring pairs.
static void merge_word(train *s, uint32_t w, uint32_t a, uint32_t b, uint32_t x)
{
	uint32_t *sym = s->sym + s->woff[w], len = s->wlen[w], j = 0;
	int64_t c = s->wcount[w];
	for (uint32_t i = 0; i < len;) {
		if (i + 1 < len && sym[i] == a && sym[i + 1] == b) {
			if (j > 0) {
				pair_add(s, sym[j - 1], a, -c, w);
				pair_add(s, sym[j - 1], x, c, w);
			}
			if (i + 2 < len) {
				pair_add(s, b, sym[i + 2], -c, w);
				pair_add(s, x, sym[i + 2], c, w);
			}
			pair_add(s, a, b, -c, w);
			sym[j++] = x;
			i += 2;
		} else {
			sym[j++] = sym[i++];
		}
	}
	s->wlen[w] = j;
}

static int train_init(train *s, const mm_bpe_trainer *tr)
{
	s->n_words = (uint32_t)tr->n_chunks;
	size_t nw = s->n_words ? s->n_words : 1;
	s->sym = malloc((tr->pool_len ? tr->pool_len : 1) * sizeof *s->sym);
	s->woff = malloc(nw * sizeof *s->woff);
	s->wlen = malloc(nw * sizeof *s->wlen);
	s->wcount = malloc(nw * sizeof *s->wcount);
	s->wround = calloc(nw, sizeof *s->wround);
	s->keys = malloc(1024 * sizeof *s->keys);
	s->vals = malloc(1024 * sizeof *s->vals);
	if (!s->sym || !s->woff || !s->wlen || !s->wcount || !s->wround || !s->keys || !s->vals)
		return mm_fail(MM_ENOMEM, "BPE trainer: out of memory");
	memset(s->keys, 0xff, 1024 * sizeof *s->keys);
	s->mask = 1023;
	for (uint32_t w = 0; w < s->n_words; w++) {
		const chunk_rec *c = &tr->chunks[w];
		s->woff[w] = c->off;
		s->wlen[w] = c->len;
		s->wcount[w] = c->count > INT64_MAX / 2 ? INT64_MAX / 2 : (int64_t)c->count;
		for (uint32_t i = 0; i < c->len; i++)
			s->sym[c->off + i] = tr->pool[c->off + i];
		for (uint32_t i = 0; i + 1 < c->len; i++)
			pair_add(s, tr->pool[c->off + i], tr->pool[c->off + i + 1], s->wcount[w], w);
		if (s->err)
			return s->err;
	}
	for (size_t i = 0; i < s->n_pairs; i++)
		if (heap_push(s, (uint32_t)i))
			return mm_fail(MM_ENOMEM, "BPE trainer: out of memory");
	return 0;
}

static void train_free(train *s)
{
	for (size_t i = 0; i < s->n_pairs; i++)
		free(s->pairs[i].where);
	free(s->pairs);
	free(s->sym);
	free(s->woff);
	free(s->wlen);
	free(s->wcount);
	free(s->wround);
	free(s->keys);
	free(s->vals);
	free(s->heap);
	free(s->raised);
}

// Learns up to n_merges merges into merges[] (pairs); returns how many, or a negative error.
static int64_t learn(train *s, uint32_t n_merges, uint32_t *merges)
{
	uint32_t k = 0;
	for (; k < n_merges; k++) {
		int64_t p = best_pair(s);
		if (s->err)
			return s->err;
		if (p < 0 || s->pairs[p].count < 2) // a pair seen once saves nothing
			break;
		uint32_t a = s->pairs[p].left, b = s->pairs[p].right, x = MM_TOK_FIRST_MERGE + k;
		merges[2 * k] = a;
		merges[2 * k + 1] = b;
		s->round = k + 1;
		s->n_raised = 0;
		// The list may grow only for pairs containing x, never for (a, b): safe to walk.
		uint32_t *where = s->pairs[p].where, n_where = s->pairs[p].n_where;
		for (uint32_t i = 0; i < n_where; i++) {
			uint32_t w = where[i];
			if (s->wround[w] == s->round)
				continue;
			s->wround[w] = s->round;
			merge_word(s, w, a, b, x);
			if (s->err)
				return s->err;
		}
		free(s->pairs[p].where);
		s->pairs[p].where = NULL;
		s->pairs[p].n_where = s->pairs[p].cap_where = 0;
		for (size_t i = 0; i < s->n_raised; i++)
			if (s->pairs[s->raised[i]].count > 0 && (s->err = heap_push(s, s->raised[i])) != 0)
				return s->err;
	}
	return k;
}

int mm_bpe_trainer_finish(mm_bpe_trainer *tr, uint32_t vocab_size, mm_tokenizer **out)
{
	*out = NULL;
	if (vocab_size < MM_TOK_FIRST_MERGE || vocab_size > MM_TOK_MAX_VOCAB)
		return mm_fail(MM_EINVAL, "BPE trainer: vocab size %u is out of range (%d, the 256 bytes and 5 special tokens, to %u)",
			       vocab_size, MM_TOK_FIRST_MERGE, MM_TOK_MAX_VOCAB);
	uint32_t want = vocab_size - MM_TOK_FIRST_MERGE;
	uint32_t *merges = malloc(2 * sizeof(uint32_t) * (want ? want : 1));
	train s = {0};
	int64_t got = merges ? train_init(&s, tr) : mm_fail(MM_ENOMEM, "BPE trainer: out of memory");
	if (got == 0)
		got = learn(&s, want, merges);
	train_free(&s);
	int rc = got < 0 ? (int)got : mm_tok_from_merges(out, merges, (uint32_t)got, "BPE trainer", 0);
	free(merges);
	return rc;
}
