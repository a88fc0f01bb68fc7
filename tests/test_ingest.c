// The ingest library below mm-tokenize: image preparation, IDX pixels stored bit for bit,
// UTF-8 counting, statistics and progress, all-or-nothing output.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "ingest.h"
#include "mm.h"

static void write_file(const char *path, const void *data, size_t n)
{
	FILE *f = fopen(path, "wb");
	CHECK(f && fwrite(data, 1, n, f) == n);
	if (f)
		fclose(f);
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

static void test_prep_check(void)
{
	mm_ingest_opts o;
	mm_ingest_opts_default(&o);
	CHECK_OK(mm_prep_check(&o.prep));
	CHECK_EQ_INT(mm_prep_bytes(&o.prep), 28 * 28);
	o.prep.patch = 5;
	CHECK_EQ_INT(mm_prep_check(&o.prep), -MM_EINVAL);
	o.prep.patch = 4;
	o.prep.channels = 2;
	CHECK_EQ_INT(mm_prep_check(&o.prep), -MM_EINVAL);
}

// An image already at the target size and channels is not resampled: its pixels come back in
// patch order, unchanged.
static void test_prep_identity(void)
{
	mm_prep p = {3, 8, 4, 2, MM_FIT_CROP, {255, 255, 255}, 1 << 20};
	mm_image img;
	CHECK_OK(mm_image_alloc(&img, 8, 4, 3));
	for (int i = 0; i < 8 * 4 * 3; i++)
		img.px[i] = (uint8_t)(i * 7 + 3);
	uint8_t got[96], want[96];
	CHECK_OK(mm_prep_image(&img, &p, got));
	mm_image_to_patches(img.px, 4, 8, 3, 2, want);
	CHECK(memcmp(got, want, sizeof want) == 0);
	mm_image_free(&img);
}

// An IDX file with labels: every stored image equals the original pixels, every caption the
// template filled with the class name.
static void test_idx_pixels(void)
{
	enum { N = 300, R = 12, C = 8 };
	static uint8_t idx[16 + N * R * C], lab[8 + N];
	put_be32(idx, 0x803), put_be32(idx + 4, N), put_be32(idx + 8, R), put_be32(idx + 12, C);
	put_be32(lab, 0x801), put_be32(lab + 4, N);
	mm_rng rng;
	mm_rng_seed(&rng, 1, 0);
	for (size_t i = 16; i < sizeof idx; i++)
		idx[i] = (uint8_t)mm_rng_below(&rng, 256);
	for (int i = 0; i < N; i++)
		lab[8 + i] = (uint8_t)(i % 3);
	write_file("px-idx3-ubyte", idx, sizeof idx);
	write_file("px-idx1-ubyte", lab, sizeof lab);
	write_file("names.txt", "cat\ndog\nemu\n", 12);

	mm_ingest_opts o;
	mm_ingest_opts_default(&o);
	o.prep.w = C, o.prep.h = R, o.prep.patch = 4;
	o.prefix = "px";
	o.labels = "names.txt";
	o.caption_template = "a {label}!";
	o.threads = 3;
	char *inputs[] = {"px-idx3-ubyte", "px-idx1-ubyte"};
	mm_tokenizer *tok;
	CHECK_OK(mm_tok_new_bytes(&tok));
	mm_ingest_stats st;
	CHECK_OK(mm_ingest_run(&o, tok, inputs, 2, &st));
	CHECK_EQ_INT(st.docs, N);
	CHECK_EQ_INT(st.images, N);
	CHECK_EQ_INT(st.bytes_in, sizeof idx + sizeof lab);
	CHECK_EQ_INT(st.text_tokens, N * 6);
	CHECK_EQ_INT(st.shards, 1);

	mm_shard_reader *r;
	CHECK_OK(mm_shard_open(&r, "px-00000.mms"));
	if (!r) {
		mm_tok_free(tok);
		return;
	}
	CHECK_EQ_INT(mm_shard_get_info(r)->n_docs, N);
	CHECK(mm_shard_get_info(r)->tokenizer_hash == mm_tok_hash(tok));
	mm_doc d;
	mm_doc_init(&d);
	uint8_t px[R * C];
	int bad_px = 0, bad_text = 0;
	for (int k = 0; k < N; k++) {
		CHECK_OK(mm_shard_read(r, (uint64_t)k, &d));
		if (d.n_segs != 2 || d.segs[0].type != MM_SEG_TEXT || d.segs[1].type != MM_SEG_IMAGE) {
			bad_text++;
			continue;
		}
		char want[16];
		snprintf(want, sizeof want, "a %s!", (const char *[]){"cat", "dog", "emu"}[k % 3]);
		int same = d.segs[0].n_tokens == strlen(want);
		for (uint32_t i = 0; same && i < d.segs[0].n_tokens; i++)
			same = d.segs[0].tokens[i] == (uint8_t)want[i];
		bad_text += !same;
		mm_image_from_patches(d.segs[1].pixels, R, C, 1, 4, px);
		bad_px += memcmp(px, idx + 16 + (size_t)k * R * C, sizeof px) != 0;
	}
	CHECK_EQ_INT(bad_text, 0);
	CHECK_EQ_INT(bad_px, 0);
	mm_doc_free(&d);
	mm_shard_close(r);
	mm_tok_free(tok);
}

// Invalid UTF-8 is kept and counted (overlong, surrogate, truncated, stray continuation) when
// the input is text by --format; recognised from its content, such a file is refused.
static void test_utf8_count(void)
{
	const char text[] = "plain\n\n\xc0\xaf\n\n\xed\xa0\x80\n\n\xe2\x82\n\n\x80x\n\n"
			    "\xf0\x9f\x98\x80 \xc3\xa9\n\ncaf\xc3\xa9\n";
	write_file("u.txt", text, sizeof text - 1);
	mm_ingest_opts o;
	mm_ingest_opts_default(&o);
	o.prefix = "u";
	char *inputs[] = {"u.txt"};
	mm_tokenizer *tok;
	CHECK_OK(mm_tok_new_bytes(&tok));
	mm_ingest_stats st;
	CHECK_EQ_INT(mm_ingest_run(&o, tok, inputs, 1, &st), -MM_EFORMAT);
	o.format = MM_FMT_TEXT;
	CHECK_OK(mm_ingest_run(&o, tok, inputs, 1, &st));
	CHECK_EQ_INT(st.docs, 7);
	CHECK_EQ_INT(st.invalid_utf8, 4);
	CHECK_EQ_INT(st.images, 0);
	mm_tok_free(tok);
}

static int progress_calls;
static double progress_last;
static int progress_backwards;

static void on_progress(void *ctx, const mm_ingest_stats *st)
{
	(void)ctx;
	progress_calls++;
	if (st->fraction < progress_last || st->fraction > 1)
		progress_backwards++;
	progress_last = st->fraction;
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

// A folder's images come in byte order of their names whatever order the file system lists
// them in: 700 names sharing long prefixes, prefixes of each other, bytes above 0x7f and a
// few that differ only in case. Image k of the sorted names holds k in its first two pixels.
static void test_folder_order(void)
{
	enum { N = 700 };
	static const char *const stem[] = {"a", "ab", "a-b", "A", "\xc3\xa9", "\xff", "0", "00", "img_0001", "b"};
	static char name[N][48], *sorted[N];
	mm_rng rng;
	mm_rng_seed(&rng, 7, 0);
	CHECK(mkdir("order", 0755) == 0 || access("order", F_OK) == 0);
	for (int i = 0; i < N; i++) {
		int dup;
		do { // a stem, up to 12 more bytes from a small alphabet, a suffix in some case
			char *p = name[i] + snprintf(name[i], 48, "%s", stem[mm_rng_below(&rng, 10)]);
			for (uint32_t k = mm_rng_below(&rng, 13); k > 0; k--)
				*p++ = "0a-_.\x80"[mm_rng_below(&rng, 6)];
			strcpy(p, mm_rng_below(&rng, 4) ? ".png" : ".PNG");
			dup = 0;
			for (int j = 0; j < i && !dup; j++)
				dup = strcmp(name[i], name[j]) == 0;
		} while (dup);
		sorted[i] = name[i];
	}
	qsort(sorted, N, sizeof *sorted, str_cmp);
	mm_image img;
	CHECK_OK(mm_image_alloc(&img, 4, 4, 1));
	for (int k = 0; k < N; k++) {
		char path[64];
		snprintf(path, sizeof path, "order/%s", sorted[k]);
		memset(img.px, 0, 16);
		img.px[0] = (uint8_t)(k >> 8), img.px[1] = (uint8_t)k;
		CHECK_OK(mm_image_save_png(path, &img));
	}
	mm_image_free(&img);

	mm_ingest_opts o;
	mm_ingest_opts_default(&o);
	o.prep.w = o.prep.h = 4, o.prep.patch = 4;
	o.prefix = "order";
	char *inputs[] = {"order"};
	mm_tokenizer *tok;
	CHECK_OK(mm_tok_new_bytes(&tok));
	mm_ingest_stats st;
	CHECK_OK(mm_ingest_run(&o, tok, inputs, 1, &st));
	CHECK_EQ_INT(st.docs, N);
	mm_shard_reader *r;
	CHECK_OK(mm_shard_open(&r, "order-00000.mms"));
	if (r) {
		mm_doc d;
		mm_doc_init(&d);
		int wrong = 0;
		for (int k = 0; k < N; k++) {
			CHECK_OK(mm_shard_read(r, (uint64_t)k, &d));
			wrong += d.n_segs != 1 || d.segs[0].type != MM_SEG_IMAGE ||
				 (d.segs[0].pixels[0] << 8 | d.segs[0].pixels[1]) != k;
		}
		CHECK_EQ_INT(wrong, 0);
		mm_doc_free(&d);
		mm_shard_close(r);
	}
	mm_tok_free(tok);
}

// Progress is reported per batch with a fraction that only grows; a failure part-way
// through leaves no shard behind, not even those already finished.
static void test_progress_and_failure(void)
{
	enum { N = 1000 };
	static uint8_t idx[16 + N * 4];
	put_be32(idx, 0x803), put_be32(idx + 4, N), put_be32(idx + 8, 2), put_be32(idx + 12, 2);
	for (size_t i = 16; i < sizeof idx; i++)
		idx[i] = (uint8_t)(i * 31);
	write_file("p-idx3-ubyte", idx, sizeof idx);
	write_file("trunc-idx3-ubyte", idx, sizeof idx - 1);
	mm_ingest_opts o;
	mm_ingest_opts_default(&o);
	o.prep.w = o.prep.h = 2, o.prep.patch = 1;
	o.prefix = "p";
	o.shard_size = 4096;
	o.progress = on_progress;
	char *ok[] = {"p-idx3-ubyte"};
	mm_tokenizer *tok;
	CHECK_OK(mm_tok_new_bytes(&tok));
	mm_ingest_stats st;
	CHECK_OK(mm_ingest_run(&o, tok, ok, 1, &st));
	CHECK(progress_calls >= 3);
	CHECK_EQ_INT(progress_backwards, 0);
	CHECK(st.shards > 1);
	CHECK(access("p-00000.mms", F_OK) == 0);

	o.prefix = "q";
	char *bad[] = {"p-idx3-ubyte", "trunc-idx3-ubyte"};
	int rc = mm_ingest_run(&o, tok, bad, 2, &st);
	CHECK_EQ_INT(rc, -MM_ETRUNC);
	CHECK_MSG(strcmp(mm_errmsg(), "trunc-idx3-ubyte: truncated after 999 of its 1000 images") == 0, "%s",
		  mm_errmsg());
	CHECK(access("q-00000.mms", F_OK) != 0);
	CHECK(access("q-00001.mms", F_OK) != 0);
	mm_tok_free(tok);
}

int main(void)
{
	test_prep_check();
	test_prep_identity();
	test_idx_pixels();
	test_utf8_count();
	test_progress_and_failure();
	test_folder_order();
	return check_done();
}
