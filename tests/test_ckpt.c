// The checkpoint container: round trip, and every corruption or truncation refused. A training
// checkpoint's contents: round trip, STAT and RANK at the offsets of man/mm-checkpoint.5, the
// last K kept. (The field tables against the man page: tests/test_layout.c.)
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "mm.h"
#include "ckpt.h"

#define TAG_A MM_CKPT_TAG('A', 'A', 'A', 'A')
#define TAG_B MM_CKPT_TAG('B', 'B', 'B', 'B')

static int write_bytes(const char *path, const uint8_t *b, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	size_t w = fwrite(b, 1, n, f);
	fclose(f);
	return w == n ? 0 : -1;
}

// A training checkpoint written, read back, and its fixed sections byte for byte.
static void train_contents(void)
{
	mm_tokenizer *tok;
	CHECK_OK(mm_tok_new_bytes(&tok));
	mm_config cfg = {.dim = 8, .layers = 1, .heads = 2, .mlp = 16, .vocab = (int)mm_tok_vocab_size(tok), .seq_len = 8,
			 .image_weight = 5};
	float p[10], adam[20], ema[10];
	for (int i = 0; i < 20; i++)
		adam[i] = (float)i / 7, p[i % 10] = (float)i, ema[i % 10] = -(float)i;
	mm_ckpt_rank rank[3] = {{1, 2, 3}, {4, 5, 6}, {7, 8, 9}};
	mm_ckpt_train t = {.conf = "dim = 8\n", .cfg = &cfg, .tok = tok, .nparams = 10, .params = p, .adam = adam,
			   .ema = ema, .ranks = 3, .rank = rank};
	t.stat = (mm_ckpt_stat){.step = 1, .total_steps = 12, .seconds = 2.5, .epoch = 3, .cursor = 4, .offset = 5,
				.adam_step = 6};
	char *path, want[32];
	CHECK(mkdir("run", 0777) == 0 || errno == EEXIST);
	for (uint64_t s = 1; s <= 3; s++) {
		t.stat.step = s;
		CHECK_OK(mm_ckpt_save_train("run", &t, 2, &path));
		snprintf(want, sizeof want, "run/ckpt-%llu.mmc", (unsigned long long)s);
		CHECK(path && strcmp(path, want) == 0);
		free(path);
	}
	CHECK(access("run/ckpt-1.mmc", F_OK) != 0 && access("run/ckpt-2.mmc", F_OK) == 0);
	uint8_t *latest;
	size_t n;
	CHECK_OK(mm_read_file("run/latest", 100, &latest, &n));
	CHECK(n == 11 && memcmp(latest, "ckpt-3.mmc\n", 11) == 0);
	free(latest);

	mm_ckpt *ck;
	CHECK_OK(mm_ckpt_read(&ck, "run/ckpt-3.mmc"));
	// STAT and RANK at the offsets of the man page, written by hand.
	uint8_t stat[64] = {0}, ranks[8 + 3 * 24] = {0};
	uint64_t sv[7] = {3, 12, 0, 3, 4, 5, 6};
	double sec = 2.5;
	memcpy(&sv[2], &sec, 8);
	for (int i = 0; i < 7; i++)
		mm_put_u64(stat + 8 * i, sv[i]);
	mm_put_u32(ranks, 3);
	for (int i = 0; i < 9; i++)
		mm_put_u64(ranks + 8 + 8 * i, (uint64_t)i + 1);
	const void *d;
	CHECK_OK(mm_ckpt_need(ck, MM_SEC_STAT, sizeof stat, &d));
	CHECK(memcmp(d, stat, sizeof stat) == 0);
	CHECK_OK(mm_ckpt_need(ck, MM_SEC_RANK, sizeof ranks, &d));
	CHECK(memcmp(d, ranks, sizeof ranks) == 0);

	mm_ckpt_train r;
	CHECK_OK(mm_ckpt_get_train(ck, 10, 1, &r));
	CHECK(memcmp(r.params, p, sizeof p) == 0 && memcmp(r.adam, adam, sizeof adam) == 0);
	CHECK(memcmp(r.ema, ema, sizeof ema) == 0);
	CHECK(r.stat.step == 3 && r.stat.total_steps == 12 && r.stat.seconds == 2.5 && r.stat.epoch == 3 &&
	      r.stat.cursor == 4 && r.stat.offset == 5 && r.stat.adam_step == 6);
	CHECK(r.ranks == 3 && memcmp(r.rank, rank, sizeof rank) == 0);
	free(r.rank);
	CHECK(mm_ckpt_get_train(ck, 11, 1, &r) == -MM_EFORMAT); // another model's size
	free(r.rank);
	mm_config c2;
	CHECK_OK(mm_ckpt_config(ck, &c2));
	CHECK(c2.dim == 8 && c2.mlp == 16 && c2.vocab == cfg.vocab);
	mm_tokenizer *tok2;
	CHECK_OK(mm_ckpt_tokenizer(ck, &tok2));
	CHECK(mm_tok_hash(tok2) == mm_tok_hash(tok));
	mm_tok_free(tok2);
	mm_ckpt_free(ck);

	// One rank: no RANK section; asked for EMA weights that are not there: refused.
	t.ranks = 1, t.ema = NULL;
	CHECK_OK(mm_ckpt_write_train("one.mmc", &t));
	CHECK_OK(mm_ckpt_read(&ck, "one.mmc"));
	CHECK(mm_ckpt_find(ck, MM_SEC_RANK) == NULL);
	CHECK_OK(mm_ckpt_get_train(ck, 10, 0, &r));
	CHECK(r.ranks == 1 && r.rank == NULL && r.ema == NULL);
	CHECK(mm_ckpt_get_train(ck, 10, 1, &r) == -MM_EFORMAT);
	mm_ckpt_free(ck);
	// A RANK section that does not hold whole positions is refused.
	mm_ckpt_section bad[] = {{MM_SEC_PARM, sizeof p, p}, {MM_SEC_ADAM, sizeof adam, adam},
				 {MM_SEC_STAT, sizeof stat, stat}, {MM_SEC_RANK, sizeof ranks - 8, ranks}};
	CHECK_OK(mm_ckpt_write("bad-rank.mmc", bad, 4));
	CHECK_OK(mm_ckpt_read(&ck, "bad-rank.mmc"));
	CHECK(mm_ckpt_get_train(ck, 10, 0, &r) == -MM_EFORMAT);
	CHECK(strstr(mm_errmsg(), "section RANK of 72 bytes does not hold whole data positions") != NULL);
	free(r.rank);
	mm_ckpt_free(ck);
	mm_tok_free(tok);
}

int main(void)
{
	train_contents();
	float w[37];
	for (int i = 0; i < 37; i++)
		w[i] = (float)i * 0.5f - 3;
	const char *text = "dim = 32\nlayers = 2\n";
	mm_ckpt_section secs[] = {
		{TAG_A, strlen(text), text},
		{TAG_B, sizeof w, w},
	};
	CHECK_OK(mm_ckpt_write("a.mmc", secs, 2));

	mm_ckpt *ck;
	CHECK_OK(mm_ckpt_read(&ck, "a.mmc"));
	const void *data;
	CHECK_OK(mm_ckpt_need(ck, TAG_B, sizeof w, &data));
	CHECK(memcmp(data, w, sizeof w) == 0);
	CHECK(mm_ckpt_find(ck, TAG_A)->size == strlen(text));
	CHECK(mm_ckpt_find(ck, MM_CKPT_TAG('Z', 'Z', 'Z', 'Z')) == NULL);
	CHECK(mm_ckpt_need(ck, TAG_B, 4, &data) == -MM_EFORMAT);
	CHECK(strstr(mm_errmsg(), "a.mmc") != NULL);
	mm_ckpt_free(ck);

	uint8_t *orig;
	size_t n;
	CHECK_OK(mm_read_file("a.mmc", 1 << 20, &orig, &n));
	// Every single flipped byte is refused (all bytes are under a CRC or must be zero).
	int undetected = 0;
	for (size_t i = 0; i < n; i++) {
		orig[i] ^= 0x20;
		CHECK(write_bytes("bad.mmc", orig, n) == 0);
		if (mm_ckpt_read(&ck, "bad.mmc") == 0) {
			undetected++;
			mm_ckpt_free(ck);
		}
		orig[i] ^= 0x20;
	}
	CHECK_EQ_INT(undetected, 0);
	// Every truncation is refused, with the file named.
	int accepted = 0;
	for (size_t len = 0; len < n; len++) {
		CHECK(write_bytes("short.mmc", orig, len) == 0);
		int rc = mm_ckpt_read(&ck, "short.mmc");
		if (rc == 0) {
			accepted++;
			mm_ckpt_free(ck);
		} else if (!strstr(mm_errmsg(), "short.mmc")) {
			accepted++;
		}
	}
	CHECK_EQ_INT(accepted, 0);
	// Written as version 2; version 1 (the parameters' former order, reordered on loading
	// when the file has a model) is read too, version 3 is not.
	CHECK_EQ_INT(mm_get_u32(orig + 8), 2);
	for (uint32_t v = 1; v <= 3; v += 2) {
		mm_put_u32(orig + 8, v);
		mm_put_u32(orig + 28, mm_crc32c(0, orig, 28));
		CHECK(write_bytes("v.mmc", orig, n) == 0);
		int rc = mm_ckpt_read(&ck, "v.mmc");
		CHECK_EQ_INT(rc, v == 1 ? 0 : -MM_EVERSION);
		if (rc == 0) {
			CHECK_OK(mm_ckpt_need(ck, TAG_B, sizeof w, &data));
			CHECK(memcmp(data, w, sizeof w) == 0); // no model section: nothing to reorder
			mm_ckpt_free(ck);
		}
	}
	CHECK(mm_ckpt_read(&ck, "nonexistent.mmc") == -MM_EIO);
	free(orig);
	return check_done();
}
