// Shard format v1: the committed golden file, round trips, and every kind of damage.
//
// tests/golden/v1.mms is read on every run and checked field by field against the formulas
// below; later versions of the code must keep reading it unchanged. It is regenerated only by
// hand, and only if the v1 format itself was wrong:
//   tests/bin/test_shard --write-golden tests/golden/v1.mms
// tests/bin/test_shard --write-example PATH writes the tiny shard whose hexdump is printed in
// man/mm-shard.5 (EXAMPLE); the test checks that the man page matches what the code writes.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "check.h"
#include "mm.h"
#include "prof.h"

#define GOLDEN_HASH 0x0123456789abcdefULL

// ---------------------------------------------------------------- helpers

static int doc_equal(const mm_doc *a, const mm_doc *b)
{
	if (a->n_segs != b->n_segs)
		return 0;
	for (uint32_t i = 0; i < a->n_segs; i++) {
		const mm_segment *s = &a->segs[i], *t = &b->segs[i];
		if (s->type != t->type)
			return 0;
		if (s->type == MM_SEG_TEXT) {
			if (s->n_tokens != t->n_tokens ||
			    memcmp(s->tokens, t->tokens, (size_t)s->n_tokens * sizeof *s->tokens) != 0)
				return 0;
		} else {
			if (s->h != t->h || s->w != t->w || s->c != t->c || s->p != t->p ||
			    memcmp(s->pixels, t->pixels, (size_t)s->h * s->w * s->c) != 0)
				return 0;
		}
	}
	return 1;
}

static uint8_t *slurp(const char *path, size_t *n)
{
	uint8_t *b = NULL;
	if (mm_read_file(path, 1 << 30, &b, n) != 0) {
		fprintf(stderr, "%s\n", mm_errmsg());
		exit(1);
	}
	return b;
}

static void spit(const char *path, const uint8_t *b, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(b, 1, n, f) != n || fclose(f) != 0) {
		fprintf(stderr, "%s: cannot write\n", path);
		exit(1);
	}
}

// Opens, verifies and reads every document; 0 only if all of it succeeds and matches want
// (when given). Returns the first error code otherwise.
static int read_all(const char *path, const mm_doc *want, uint64_t n_want)
{
	mm_shard_reader *r;
	int rc = mm_shard_open(&r, path);
	if (rc)
		return rc;
	rc = mm_shard_verify(r);
	mm_doc d;
	mm_doc_init(&d);
	uint64_t n = mm_shard_get_info(r)->n_docs;
	if (!rc && want && n != n_want)
		rc = -MM_EINVAL;
	for (uint64_t k = 0; k < n && !rc; k++) {
		rc = mm_shard_read(r, k, &d);
		if (!rc && want && !doc_equal(&d, &want[k]))
			rc = -MM_EINVAL;
	}
	mm_doc_free(&d);
	mm_shard_close(r);
	return rc;
}

// The failure carries the code, the file's path and the word "offset".
#define CHECK_FAIL(rc, code, path)                                                           \
	do {                                                                                 \
		CHECK_MSG((rc) == -(code), "rc %d, want %d: %s", (rc), -(code), mm_errmsg()); \
		CHECK_MSG(strstr(mm_errmsg(), (path)) != NULL, "no path in: %s", mm_errmsg()); \
		CHECK_MSG(strstr(mm_errmsg(), "offset") != NULL, "no offset in: %s", mm_errmsg()); \
	} while (0)

static int write_shard(const char *path, const mm_shard_info *info, uint32_t block_size, const mm_doc *docs,
		       uint64_t n)
{
	mm_shard_writer *w;
	int rc = mm_shard_writer_open(&w, path, info, 3);
	if (rc)
		return rc;
	if (block_size)
		CHECK_OK(mm_shard_writer_set_block_size(w, block_size));
	for (uint64_t k = 0; k < n; k++)
		if ((rc = mm_shard_writer_add(w, &docs[k]))) {
			mm_shard_writer_abort(w);
			return rc;
		}
	return mm_shard_writer_close(w);
}

// ---------------------------------------------------------------- golden v1 file

// Segments of each golden document: T<n> is a text segment of n tokens, I an image.
static const char *golden_spec[] = {
	"T20",       // text only
	"I",         // image only
	"T5 I T7",   // interleaved
	"T0 I T3",   // an empty text segment
	"T4 I I T2", // two images
	"",          // no segments at all
	"T300",      // every token id 0..299 once (7 is prime to 300)
};
#define GOLDEN_DOCS (sizeof golden_spec / sizeof *golden_spec)

static mm_shard_info golden_info(void)
{
	mm_shard_info in = {.tokenizer_hash = GOLDEN_HASH, .vocab_size = 300, .img_h = 8, .img_w = 8, .img_c = 3,
			    .patch = 4};
	return in;
}

static uint32_t golden_token(uint32_t d, uint32_t s, uint32_t i) { return (d * 37 + s * 11 + i * 7) % 300; }
static uint8_t golden_pixel(uint32_t d, uint32_t s, uint32_t i) { return (uint8_t)(d * 29 + s * 13 + i * 3); }

static void golden_doc(uint32_t d, mm_doc *doc)
{
	mm_doc_clear(doc);
	const char *p = golden_spec[d];
	uint32_t tok[300];
	uint8_t pix[8 * 8 * 3];
	for (uint32_t s = 0; *p; s++) {
		if (*p == 'T') {
			uint32_t n = (uint32_t)strtoul(p + 1, (char **)&p, 10);
			for (uint32_t i = 0; i < n; i++)
				tok[i] = golden_token(d, s, i);
			CHECK_OK(mm_doc_add_text(doc, tok, n));
		} else {
			for (uint32_t i = 0; i < sizeof pix; i++)
				pix[i] = golden_pixel(d, s, i);
			CHECK_OK(mm_doc_add_image(doc, 8, 8, 3, 4, pix));
			p++;
		}
		while (*p == ' ')
			p++;
	}
}

static int write_golden(const char *path)
{
	mm_doc docs[GOLDEN_DOCS];
	for (uint32_t d = 0; d < GOLDEN_DOCS; d++) {
		mm_doc_init(&docs[d]);
		golden_doc(d, &docs[d]);
	}
	mm_shard_info in = golden_info();
	// Small blocks, so that the golden file has several.
	int rc = write_shard(path, &in, 256, docs, GOLDEN_DOCS);
	for (uint32_t d = 0; d < GOLDEN_DOCS; d++)
		mm_doc_free(&docs[d]);
	return rc;
}

static void test_golden(void)
{
	char path[4096];
	const char *t = getenv("T");
	snprintf(path, sizeof path, "%s/golden/v1.mms", t ? t : "tests");
	size_t n;
	uint8_t *raw = slurp(path, &n);
	// The header's fixed fields, read straight from the bytes.
	CHECK(n > 128 && memcmp(raw, "\x89MMS\r\n\x1a\n", 8) == 0);
	CHECK_EQ_INT(mm_get_u32(raw + 8), 1);
	CHECK_EQ_INT(mm_get_u32(raw + 12), 128);
	CHECK_EQ_INT(mm_get_u32(raw + 16), 0);
	CHECK(mm_get_u64(raw + 56) >= 3); // several blocks
	CHECK_EQ_INT(mm_get_u64(raw + 64) + mm_get_u64(raw + 72), n);
	CHECK_EQ_INT(mm_get_u32(raw + 124), mm_crc32c(0, raw, 124));
	CHECK(memcmp(raw + 128, "MBLK", 4) == 0);
	free(raw);

	mm_shard_reader *r;
	CHECK_OK(mm_shard_open(&r, path));
	if (!r)
		return;
	const mm_shard_info *in = mm_shard_get_info(r);
	CHECK(in->tokenizer_hash == GOLDEN_HASH);
	CHECK_EQ_INT(in->vocab_size, 300);
	CHECK_EQ_INT(in->img_h, 8);
	CHECK_EQ_INT(in->img_w, 8);
	CHECK_EQ_INT(in->img_c, 3);
	CHECK_EQ_INT(in->patch, 4);
	CHECK_EQ_INT(in->n_docs, GOLDEN_DOCS);
	CHECK(strcmp(mm_shard_path(r), path) == 0);
	CHECK_OK(mm_shard_verify(r));
	mm_doc doc;
	mm_doc_init(&doc);
	int bad = 0;
	for (uint32_t d = 0; d < GOLDEN_DOCS; d++) {
		CHECK_OK(mm_shard_read(r, d, &doc));
		const char *p = golden_spec[d];
		uint32_t s = 0;
		for (; *p; s++) {
			if (s >= doc.n_segs) {
				bad++;
				break;
			}
			const mm_segment *g = &doc.segs[s];
			if (*p == 'T') {
				uint32_t n_tok = (uint32_t)strtoul(p + 1, (char **)&p, 10);
				CHECK_EQ_INT(g->type, MM_SEG_TEXT);
				CHECK_EQ_INT(g->n_tokens, n_tok);
				for (uint32_t i = 0; i < n_tok && i < g->n_tokens; i++)
					bad += g->tokens[i] != golden_token(d, s, i);
			} else {
				p++;
				CHECK_EQ_INT(g->type, MM_SEG_IMAGE);
				CHECK(g->h == 8 && g->w == 8 && g->c == 3 && g->p == 4);
				for (uint32_t i = 0; i < 8 * 8 * 3 && g->type == MM_SEG_IMAGE; i++)
					bad += g->pixels[i] != golden_pixel(d, s, i);
			}
			while (*p == ' ')
				p++;
		}
		CHECK_EQ_INT(doc.n_segs, s);
	}
	CHECK_EQ_INT(bad, 0);
	mm_doc_free(&doc);
	mm_shard_close(r);
}

// ---------------------------------------------------------------- the man page's example

static int write_example(const char *path)
{
	mm_shard_info in = {.tokenizer_hash = GOLDEN_HASH, .vocab_size = 300};
	mm_doc docs[2];
	mm_doc_init(&docs[0]);
	mm_doc_init(&docs[1]);
	const uint32_t t0[] = {72, 105, 33}, t1[] = {299};
	CHECK_OK(mm_doc_add_text(&docs[0], t0, 3));
	CHECK_OK(mm_doc_add_text(&docs[1], t1, 1));
	int rc = write_shard(path, &in, 0, docs, 2);
	mm_doc_free(&docs[0]);
	mm_doc_free(&docs[1]);
	return rc;
}

// The hexdump lines of man/mm-shard.5 ("00000010: 0100 ...") must be exactly the bytes that
// write_example() produces.
static void test_man_example(void)
{
	CHECK_OK(write_example("example.mms"));
	size_t n;
	uint8_t *want = slurp("example.mms", &n);
	char path[4096];
	const char *t = getenv("T");
	snprintf(path, sizeof path, "%s/../man/mm-shard.5", t ? t : "tests");
	FILE *f = fopen(path, "r");
	CHECK_MSG(f != NULL, "%s: %s", path, strerror(errno));
	if (!f) {
		free(want);
		return;
	}
	uint8_t got[4096];
	size_t m = 0;
	char line[256];
	while (fgets(line, sizeof line, f)) {
		unsigned off;
		if (strlen(line) < 10 || sscanf(line, "%8x:", &off) != 1 || line[8] != ':')
			continue;
		CHECK_EQ_INT(off, m);
		// Hex pairs sit in columns 10..49, in groups of four digits.
		for (const char *p = line + 10; p < line + 50 && *p && *p != '\n';) {
			unsigned v;
			if (*p == ' ') {
				p++;
				continue;
			}
			if (sscanf(p, "%2x", &v) != 1 || m == sizeof got)
				break;
			got[m++] = (uint8_t)v;
			p += 2;
		}
	}
	fclose(f);
	CHECK_MSG(m == n && memcmp(got, want, n) == 0,
		  "man/mm-shard.5 hexdump (%zu bytes) differs from what the writer makes (%zu bytes): rerun "
		  "tests/bin/test_shard --write-example x.mms && xxd x.mms",
		  m, n);
	CHECK_OK(read_all("example.mms", NULL, 0));
	free(want);
}

// ---------------------------------------------------------------- random documents

static mm_shard_info rand_info(void)
{
	mm_shard_info in = {.tokenizer_hash = 42, .vocab_size = 5000, .img_h = 16, .img_w = 16, .img_c = 3, .patch = 4};
	return in;
}

static void rand_doc(mm_rng *g, const mm_shard_info *in, mm_doc *d)
{
	uint32_t tok[600];
	uint8_t pix[16 * 16 * 3];
	uint32_t n_segs = (uint32_t)mm_rng_below(g, 6);
	for (uint32_t s = 0; s < n_segs; s++) {
		if (!in->img_h || mm_rng_below(g, 10) < 7) {
			uint32_t n = (uint32_t)mm_rng_below(g, mm_rng_below(g, 8) ? 60 : 600);
			for (uint32_t i = 0; i < n; i++)
				tok[i] = (uint32_t)mm_rng_below(g, in->vocab_size);
			CHECK_OK(mm_doc_add_text(d, tok, n));
		} else {
			// Half noise, half smooth: both the incompressible and the easy case.
			int smooth = (int)mm_rng_below(g, 2);
			for (uint32_t i = 0; i < sizeof pix; i++)
				pix[i] = smooth ? (uint8_t)(i / 7 + s) : (uint8_t)mm_rng_u64(g);
			CHECK_OK(mm_doc_add_image(d, 16, 16, 3, 4, pix));
		}
	}
}

static mm_doc *rand_docs(uint64_t seed, const mm_shard_info *in, uint64_t n)
{
	mm_rng g;
	mm_rng_seed(&g, seed, 0);
	mm_doc *docs = calloc(n, sizeof *docs);
	for (uint64_t k = 0; k < n; k++)
		rand_doc(&g, in, &docs[k]);
	return docs;
}

static void free_docs(mm_doc *docs, uint64_t n)
{
	for (uint64_t k = 0; k < n; k++)
		mm_doc_free(&docs[k]);
	free(docs);
}

// Writes n random documents in blocks of block_size (0: the default), reads them back in order,
// in a random permutation (if permute) and at n_random random picks.
static void round_trip(uint32_t block_size, uint64_t n, int permute, int n_random)
{
	mm_shard_info in = rand_info();
	mm_doc *docs = rand_docs(block_size + n, &in, n);
	mm_shard_writer *w;
	CHECK_OK(mm_shard_writer_open(&w, "rt.mms", &in, 3));
	if (!w)
		return;
	if (block_size)
		CHECK_OK(mm_shard_writer_set_block_size(w, block_size));
	uint64_t last = mm_shard_writer_bytes(w);
	CHECK_EQ_INT(last, 128);
	for (uint64_t k = 0; k < n; k++) {
		CHECK_OK(mm_shard_writer_add(w, &docs[k]));
		CHECK(mm_shard_writer_bytes(w) >= last);
		last = mm_shard_writer_bytes(w);
	}
	CHECK_EQ_INT(mm_shard_writer_docs(w), n);
	CHECK_OK(mm_shard_writer_close(w));
	struct stat st;
	CHECK(stat("rt.mms", &st) == 0 && (uint64_t)st.st_size > last);
	size_t len;
	uint8_t *raw = slurp("rt.mms", &len);
	uint64_t n_blocks = mm_get_u64(raw + 56);
	free(raw);
	CHECK_MSG(n_blocks >= (block_size ? (n < 100 ? n : 100) : 3), "%llu blocks", (unsigned long long)n_blocks);

	mm_shard_reader *r;
	CHECK_OK(mm_shard_open(&r, "rt.mms"));
	if (!r)
		return;
	CHECK_EQ_INT(mm_shard_get_info(r)->n_docs, n);
	CHECK_OK(mm_shard_info_compatible(mm_shard_get_info(r), "rt.mms", &in, "(writer)"));
	CHECK_OK(mm_shard_verify(r));
	mm_doc d;
	mm_doc_init(&d);
	int bad = 0;
	for (uint64_t k = 0; k < n; k++) {
		CHECK_OK(mm_shard_read(r, k, &d));
		bad += !doc_equal(&d, &docs[k]);
	}
	// Random order: a permutation, then some repeats.
	uint64_t *perm = malloc(n * sizeof *perm);
	for (uint64_t k = 0; k < n; k++)
		perm[k] = k;
	mm_rng g;
	mm_rng_seed(&g, 7, 1);
	for (uint64_t k = n - 1; k > 0; k--) {
		uint64_t j = mm_rng_below(&g, k + 1), t = perm[k];
		perm[k] = perm[j];
		perm[j] = t;
	}
	for (uint64_t k = 0; k < n && permute; k++) {
		CHECK_OK(mm_shard_read(r, perm[k], &d));
		bad += !doc_equal(&d, &docs[perm[k]]);
	}
	for (int i = 0; i < n_random; i++) {
		uint64_t k = mm_rng_below(&g, n);
		CHECK_OK(mm_shard_read(r, k, &d));
		bad += !doc_equal(&d, &docs[k]);
	}
	CHECK_EQ_INT(bad, 0);
	CHECK_EQ_INT(mm_shard_read(r, n, &d), -MM_ERANGE);
	CHECK(strstr(mm_errmsg(), "rt.mms") != NULL);
	free(perm);
	mm_doc_free(&d);
	mm_shard_close(r);
	free_docs(docs, n);
}

static void test_round_trip(void)
{
	round_trip(0, 4000, 0, 100);     // default 1 MiB blocks: several of them
	round_trip(4096, 1500, 1, 1000); // hundreds of small blocks
	round_trip(1, 50, 1, 100);       // one document per block

	// A text-only shard, and an empty one.
	mm_shard_info in = {.tokenizer_hash = 9, .vocab_size = 1};
	mm_doc *docs = rand_docs(3, &in, 20);
	CHECK_OK(write_shard("text.mms", &in, 0, docs, 20));
	CHECK_OK(read_all("text.mms", docs, 20));
	free_docs(docs, 20);
	CHECK_OK(write_shard("empty.mms", &in, 0, NULL, 0));
	CHECK_OK(read_all("empty.mms", NULL, 0));
	mm_shard_reader *r;
	CHECK_OK(mm_shard_open(&r, "empty.mms"));
	if (r) {
		CHECK_EQ_INT(mm_shard_get_info(r)->n_docs, 0);
		mm_doc d;
		mm_doc_init(&d);
		CHECK_EQ_INT(mm_shard_read(r, 0, &d), -MM_ERANGE);
		mm_shard_close(r);
	}

	// Same documents, same bytes.
	in = rand_info();
	docs = rand_docs(5, &in, 300);
	CHECK_OK(write_shard("same1.mms", &in, 8192, docs, 300));
	CHECK_OK(write_shard("same2.mms", &in, 8192, docs, 300));
	free_docs(docs, 300);
	size_t n1, n2;
	uint8_t *b1 = slurp("same1.mms", &n1), *b2 = slurp("same2.mms", &n2);
	CHECK(n1 == n2 && memcmp(b1, b2, n1) == 0);
	free(b1);
	free(b2);
}

// ---------------------------------------------------------------- damage

// A small shard of several blocks, its documents, and its bytes.
#define SMALL_DOCS 12
static mm_doc *small_docs;
static uint8_t *small;
static size_t small_n;

static void make_small(void)
{
	mm_shard_info in = golden_info();
	small_docs = calloc(SMALL_DOCS, sizeof *small_docs);
	mm_rng g;
	mm_rng_seed(&g, 11, 0);
	uint32_t tok[8];
	uint8_t pix[8 * 8 * 3];
	for (int k = 0; k < SMALL_DOCS; k++) {
		for (int i = 0; i < 8; i++)
			tok[i] = (uint32_t)mm_rng_below(&g, 300);
		for (size_t i = 0; i < sizeof pix; i++)
			pix[i] = (uint8_t)(i * k);
		CHECK_OK(mm_doc_add_text(&small_docs[k], tok, 1 + k % 8));
		if (k % 3 == 1)
			CHECK_OK(mm_doc_add_image(&small_docs[k], 8, 8, 3, 4, pix));
	}
	CHECK_OK(write_shard("small.mms", &in, 200, small_docs, SMALL_DOCS));
	small = slurp("small.mms", &small_n);
	CHECK(mm_get_u64(small + 56) >= 4);
}

// One flipped byte in each region, and the message it gives.
static void test_regions(void)
{
	uint64_t ix = mm_get_u64(small + 64);
	uint8_t *b = malloc(small_n);
	struct {
		size_t at;
		int code;
		int at_open; // detected by mm_shard_open, else only when the block is read
	} cases[] = {
		{20, MM_ECHECKSUM, 1},          // header: vocab size
		{125, MM_ECHECKSUM, 1},         // header: its own CRC
		{0, MM_EFORMAT, 1},             // magic
		{128 + 5, MM_EFORMAT, 0},       // block 0's header
		{128 + 16 + 6, MM_ECHECKSUM, 0}, // block 0's zstd frame
		{ix + 3, MM_ECHECKSUM, 1},      // the index
		{small_n - 1, MM_ECHECKSUM, 1}, // the index's last byte
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		memcpy(b, small, small_n);
		b[cases[i].at] ^= 0x10;
		spit("flip.mms", b, small_n);
		mm_shard_reader *r;
		int rc = mm_shard_open(&r, "flip.mms");
		if (cases[i].at_open) {
			CHECK_FAIL(rc, cases[i].code, "flip.mms");
			if (cases[i].at)
				CHECK(strstr(mm_errmsg(), "offset 0") == NULL);
			continue;
		}
		CHECK_OK(rc);
		if (rc)
			continue;
		mm_doc d;
		mm_doc_init(&d);
		CHECK_FAIL(mm_shard_read(r, 0, &d), cases[i].code, "flip.mms");
		CHECK(strstr(mm_errmsg(), "block 0 at offset 128") != NULL);
		CHECK_EQ_INT(d.n_segs, 0);
		// Other blocks are still readable.
		CHECK_OK(mm_shard_read(r, SMALL_DOCS - 1, &d));
		CHECK(doc_equal(&d, &small_docs[SMALL_DOCS - 1]));
		CHECK_FAIL(mm_shard_verify(r), cases[i].code, "flip.mms");
		mm_doc_free(&d);
		mm_shard_close(r);
	}
	// Bytes after the index.
	memcpy(b, small, small_n);
	spit("flip.mms", b, small_n);
	FILE *f = fopen("flip.mms", "ab");
	fputc(0, f);
	fclose(f);
	CHECK_FAIL(read_all("flip.mms", NULL, 0), MM_EFORMAT, "flip.mms");
	free(b);
}

static void test_truncation(void)
{
	int bad = 0;
	spit("trunc.mms", small, small_n);
	for (size_t n = small_n; n-- > 0;) {
		CHECK(truncate("trunc.mms", (off_t)n) == 0);
		int rc = read_all("trunc.mms", NULL, 0);
		if (rc != -MM_ETRUNC || !strstr(mm_errmsg(), "trunc.mms") || !strstr(mm_errmsg(), "offset")) {
			if (bad++ < 5)
				fprintf(stderr, "truncated to %zu: rc %d: %s\n", n, rc, mm_errmsg());
		}
	}
	CHECK_EQ_INT(bad, 0);
}

// Every byte of a v1 file is covered by a CRC or checked against a CRC-covered field, so every
// single-byte change must be refused; never a crash, never different documents.
static void test_every_byte(void)
{
	spit("brute.mms", small, small_n);
	int fd = open("brute.mms", O_WRONLY);
	CHECK(fd >= 0);
	int accepted = 0, no_path = 0;
	const uint8_t flips[] = {0x01, 0x80, 0xff};
	for (size_t at = 0; at < small_n; at++) {
		for (size_t f = 0; f < sizeof flips; f++) {
			uint8_t v = small[at] ^ flips[f];
			CHECK(pwrite(fd, &v, 1, (off_t)at) == 1);
			int rc = read_all("brute.mms", small_docs, SMALL_DOCS);
			if (rc == 0 || rc == -MM_EINVAL) { // EINVAL: read_all saw different documents
				if (accepted++ < 5)
					fprintf(stderr, "byte %zu ^ %02x accepted (rc %d)\n", at, flips[f], rc);
			} else if (!strstr(mm_errmsg(), "brute.mms")) {
				if (no_path++ < 5)
					fprintf(stderr, "byte %zu ^ %02x: %s\n", at, flips[f], mm_errmsg());
			}
		}
		CHECK(pwrite(fd, &small[at], 1, (off_t)at) == 1);
	}
	close(fd);
	CHECK_EQ_INT(accepted, 0);
	CHECK_EQ_INT(no_path, 0);
	CHECK_OK(read_all("brute.mms", small_docs, SMALL_DOCS));
}

// Rewrites the header's CRC after an edit, to reach the checks behind it.
static void reseal_header(uint8_t *b) { mm_put_u32(b + 124, mm_crc32c(0, b, 124)); }

// Headers and indexes with valid checksums but impossible content: refused before any
// allocation they would size.
static void test_crafted(void)
{
	uint8_t *b = malloc(small_n + 64);
	struct {
		size_t at;
		int width;
		uint64_t v;
		int code;
	} cases[] = {
		{8, 4, 2, MM_EVERSION},               // a future version
		{12, 4, 256, MM_EFORMAT},             // header size
		{16, 4, 1, MM_EUNSUPPORTED},          // flags
		{20, 4, 0, MM_EFORMAT},               // vocab size 0
		{36, 4, 0, MM_EFORMAT},               // partial geometry
		{44, 4, 3, MM_EFORMAT},               // patch does not divide 8
		{32, 4, 1u << 20, MM_EFORMAT},        // image too large for a block
		{48, 8, 1ULL << 40, MM_EFORMAT},      // document count
		{48, 8, 100000000, MM_EFORMAT},       // document count vs index size
		{56, 8, 1ULL << 60, MM_EFORMAT},      // block count
		{56, 8, 0, MM_EFORMAT},               // no blocks for the documents
		{64, 8, 1ULL << 62, MM_ETRUNC},       // index offset past the end
		{64, 8, 3, MM_EFORMAT},               // index offset inside the header
		{72, 8, UINT64_MAX, MM_ETRUNC},       // index size
		{80, 8, 1ULL << 40, MM_EFORMAT},      // uncompressed index size
		{100, 4, 1, MM_EFORMAT},              // reserved bytes
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		memcpy(b, small, small_n);
		if (cases[i].width == 4)
			mm_put_u32(b + cases[i].at, (uint32_t)cases[i].v);
		else
			mm_put_u64(b + cases[i].at, cases[i].v);
		reseal_header(b);
		spit("craft.mms", b, small_n);
		int rc = read_all("craft.mms", NULL, 0);
		CHECK_MSG(rc == -cases[i].code, "case %zu: rc %d: %s", i, rc, mm_errmsg());
		CHECK_MSG(strstr(mm_errmsg(), "craft.mms") && strstr(mm_errmsg(), "offset"), "case %zu: %s", i,
			  mm_errmsg());
	}

	// A rewritten index: same size and checksum rules, wrong content.
	uint64_t ix = mm_get_u64(small + 64), ics = mm_get_u64(small + 72), ius = mm_get_u64(small + 80);
	uint64_t nb = mm_get_u64(small + 56);
	uint8_t *u = malloc(ius);
	CHECK_EQ_INT(ZSTD_decompress(u, ius, small + ix, ics), ius);
	uint64_t first_pair = 0; // the first document of the first block holding two or more
	for (uint64_t i = 0; i < nb && mm_get_u32(u + 24 * i + 20) < 2; i++)
		first_pair += mm_get_u32(u + 24 * i + 20);
	CHECK(first_pair + 1 < SMALL_DOCS);
	for (int c = 0; c < 4; c++) {
		uint8_t *v = malloc(ius);
		memcpy(v, u, ius);
		int code = MM_EFORMAT, at_open = 1;
		if (c == 0) {
			mm_put_u64(v, 129); // block 0 must start right after the header
		} else if (c == 1) {
			mm_put_u32(v + 20, mm_get_u32(v + 20) + 1); // block 0's document count
		} else {
			// Move one byte between two documents of one block: the lengths still fill
			// the block, but the documents no longer parse.
			uint8_t *d = v + nb * 24 + 4 * first_pair;
			int delta = c == 2 ? 1 : -1;
			mm_put_u32(d, mm_get_u32(d) + delta);
			mm_put_u32(d + 4, mm_get_u32(d + 4) - delta);
			at_open = 0;
		}
		size_t bound = ZSTD_compressBound(ius);
		memcpy(b, small, ix);
		size_t cs = ZSTD_compress(b + ix, bound < 64 + ics ? bound : 64 + ics, v, ius, 3);
		CHECK(!ZSTD_isError(cs));
		mm_put_u64(b + 72, cs);
		mm_put_u32(b + 88, mm_crc32c(0, b + ix, cs));
		reseal_header(b);
		spit("craft.mms", b, ix + cs);
		mm_shard_reader *r;
		int rc = mm_shard_open(&r, "craft.mms");
		if (!at_open) {
			CHECK_OK(rc);
			if (!rc) {
				mm_doc d;
				mm_doc_init(&d);
				rc = mm_shard_read(r, first_pair, &d);
				if (rc == 0)
					rc = mm_shard_read(r, first_pair + 1, &d);
				mm_doc_free(&d);
				mm_shard_close(r);
			}
		}
		CHECK_MSG(rc == -code, "index case %d: rc %d: %s", c, rc, mm_errmsg());
		CHECK(strstr(mm_errmsg(), "craft.mms") && strstr(mm_errmsg(), "offset"));
		free(v);
	}
	free(u);

	// Not a shard at all, and a missing file.
	spit("craft.mms", (const uint8_t *)"hello, world\n", 13);
	CHECK_FAIL(read_all("craft.mms", NULL, 0), MM_EFORMAT, "craft.mms");
	CHECK_EQ_INT(read_all("no-such.mms", NULL, 0), -MM_EIO);
	CHECK(strstr(mm_errmsg(), "no-such.mms") != NULL);
	free(b);
}

// The reader keeps the last block: reading more of it does not touch the file again, which is
// seen by damaging the block on disk after the first read.
static void test_cache(void)
{
	spit("cache.mms", small, small_n);
	mm_shard_reader *r;
	CHECK_OK(mm_shard_open(&r, "cache.mms"));
	if (!r)
		return;
	mm_doc d;
	mm_doc_init(&d);
	CHECK_OK(mm_shard_read(r, 0, &d));
	int fd = open("cache.mms", O_WRONLY);
	uint8_t v = small[128 + 20] ^ 0x40;
	CHECK(pwrite(fd, &v, 1, 128 + 20) == 1);
	close(fd);
	CHECK_OK(mm_shard_read(r, 0, &d));
	CHECK(doc_equal(&d, &small_docs[0]));
	CHECK_OK(mm_shard_read(r, SMALL_DOCS - 1, &d)); // another block evicts block 0
	CHECK_FAIL(mm_shard_read(r, 0, &d), MM_ECHECKSUM, "cache.mms");
	CHECK_FAIL(mm_shard_verify(r), MM_ECHECKSUM, "cache.mms");
	mm_doc_free(&d);
	mm_shard_close(r);
}

// ---------------------------------------------------------------- writer rules

static int dir_entries(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static void test_writer_rules(void)
{
	mm_shard_info in = golden_info();
	mm_shard_writer *w;
	// Bad info is refused at open.
	mm_shard_info bad = in;
	bad.img_w = 0;
	CHECK_EQ_INT(mm_shard_writer_open(&w, "w.mms", &bad, 3), -MM_EINVAL);
	bad = in;
	bad.patch = 3;
	CHECK_EQ_INT(mm_shard_writer_open(&w, "w.mms", &bad, 3), -MM_EINVAL);
	bad = in;
	bad.vocab_size = 0;
	CHECK_EQ_INT(mm_shard_writer_open(&w, "w.mms", &bad, 3), -MM_EINVAL);
	CHECK_EQ_INT(mm_shard_writer_open(&w, "w.mms", &in, 1000), -MM_EINVAL);
	CHECK(access("w.mms", F_OK) != 0);

	mkdir("abort", 0755);
	unlink("abort/t.mms");
	CHECK_OK(mm_shard_writer_open(&w, "abort/w.mms", &in, 3));
	CHECK_EQ_INT(mm_shard_writer_set_block_size(w, 0), -MM_EINVAL);
	mm_doc d;
	mm_doc_init(&d);
	uint32_t tok[3] = {1, 2, 300};
	uint8_t pix[16 * 16 * 3] = {0};
	CHECK_OK(mm_doc_add_text(&d, tok, 3));
	CHECK_EQ_INT(mm_shard_writer_add(w, &d), -MM_ERANGE);
	CHECK(strstr(mm_errmsg(), "abort/w.mms") && strstr(mm_errmsg(), "token id 300"));
	mm_doc_clear(&d);
	CHECK_OK(mm_doc_add_image(&d, 16, 16, 3, 4, pix));
	CHECK_EQ_INT(mm_shard_writer_add(w, &d), -MM_EMISMATCH);
	mm_doc_clear(&d);
	CHECK_OK(mm_doc_add_image(&d, 8, 8, 1, 4, pix));
	CHECK_EQ_INT(mm_shard_writer_add(w, &d), -MM_EMISMATCH);
	mm_doc_clear(&d);
	CHECK_OK(mm_doc_add_text(&d, tok, 2));
	d.segs[0].type = 7;
	CHECK_EQ_INT(mm_shard_writer_add(w, &d), -MM_EINVAL);
	d.segs[0].type = MM_SEG_TEXT;
	CHECK_OK(mm_shard_writer_add(w, &d)); // refusals leave the writer usable
	CHECK_EQ_INT(mm_shard_writer_docs(w), 1);
	mm_shard_writer_abort(w);
	CHECK(access("abort/w.mms", F_OK) != 0);
	CHECK_EQ_INT(dir_entries("abort"), 0);

	// A text-only shard refuses images; refused documents leave no trace in the file.
	mm_shard_info text = {.tokenizer_hash = 1, .vocab_size = 300};
	CHECK_OK(mm_shard_writer_open(&w, "abort/t.mms", &text, 3));
	CHECK_OK(mm_shard_writer_add(w, &d));
	mm_doc_clear(&d);
	CHECK_OK(mm_doc_add_image(&d, 8, 8, 3, 4, pix));
	CHECK_EQ_INT(mm_shard_writer_add(w, &d), -MM_EMISMATCH);
	CHECK(strstr(mm_errmsg(), "abort/t.mms") && strstr(mm_errmsg(), "text-only"));
	CHECK_EQ_INT(dir_entries("abort"), 1); // only the temporary file so far
	CHECK_OK(mm_shard_writer_close(w));
	CHECK_EQ_INT(dir_entries("abort"), 1);
	mm_doc_clear(&d);
	CHECK_OK(mm_doc_add_text(&d, tok, 2));
	CHECK_OK(read_all("abort/t.mms", &d, 1));
	mm_doc_free(&d);
}

static void test_compatible(void)
{
	mm_shard_info a = golden_info(), b = a;
	b.n_docs = 99; // the document count does not matter
	CHECK_OK(mm_shard_info_compatible(&a, "a.mms", &b, "b.mms"));
	for (int c = 0; c < 6; c++) {
		b = a;
		const char *word = "geometry";
		switch (c) {
		case 0: b.tokenizer_hash ^= 1, word = "tokenizer"; break;
		case 1: b.vocab_size = 301, word = "vocab"; break;
		case 2: b.img_h = 16; break;
		case 3: b.img_w = 4; break;
		case 4: b.img_c = 1; break;
		case 5: b.img_h = b.img_w = b.img_c = b.patch = 0; break;
		}
		CHECK_EQ_INT(mm_shard_info_compatible(&a, "a.mms", &b, "b.mms"), -MM_EMISMATCH);
		CHECK_MSG(strstr(mm_errmsg(), "a.mms") && strstr(mm_errmsg(), "b.mms") && strstr(mm_errmsg(), word),
			  "case %d: %s", c, mm_errmsg());
	}
}

#define TIMED(f)                                                             \
	do {                                                                 \
		double t0_ = mm_now();                                          \
		f();                                                         \
		fprintf(stderr, "%-20s %6.2f s\n", #f, mm_now() - t0_);        \
	} while (0)

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--write-golden") == 0) {
		if (write_golden(argv[2]) != 0) {
			fprintf(stderr, "test_shard: %s\n", mm_errmsg());
			return 1;
		}
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "--write-example") == 0) {
		if (write_example(argv[2]) != 0) {
			fprintf(stderr, "test_shard: %s\n", mm_errmsg());
			return 1;
		}
		return 0;
	}
	if (argc != 1) {
		fprintf(stderr, "usage: test_shard [--write-golden PATH | --write-example PATH]\n");
		return 2;
	}
	TIMED(test_golden);
	TIMED(test_man_example);
	TIMED(test_round_trip);
	TIMED(make_small);
	TIMED(test_regions);
	TIMED(test_truncation);
	TIMED(test_every_byte);
	TIMED(test_crafted);
	TIMED(test_cache);
	TIMED(test_writer_rules);
	TIMED(test_compatible);
	free_docs(small_docs, SMALL_DOCS);
	free(small);
	return check_done();
}
