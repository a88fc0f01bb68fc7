// Data-parallel slices against one process: with documents that each fill one row, one loader
// of 2B rows and two rank loaders of B rows serve the same rows, bit for bit (tokens, targets,
// noise, pixels), step after step and across an epoch; this is what lets a 2-rank run match a
// 1-rank run. With documents that share rows, the ranks pack their slices on their own, so a
// step's documents differ at the batch's edges: the test shows it, as man/mm-train.1 says.
#include <string.h>

#include "check.h"
#include "mm.h"

enum { NDOC = 41, B = 3, T = 15, PD = 16 }; // NDOC odd: the stride crosses epochs unevenly

// Caption pairs: a caption of 1 to 5 tokens and an 8x8 grey image in 4x4 patches (NP = 4), so a
// document takes 8 to 13 positions and two never share a row of 15.
static void write_pairs(const char *path)
{
	mm_shard_info in = {0};
	in.tokenizer_hash = 0x1234;
	in.vocab_size = 1000;
	in.img_h = 8, in.img_w = 8, in.img_c = 1, in.patch = 4;
	mm_shard_writer *w;
	CHECK_OK(mm_shard_writer_open(&w, path, &in, 3));
	for (int i = 0; i < NDOC; i++) {
		mm_doc d;
		mm_doc_init(&d);
		uint32_t tok[5];
		for (int k = 0; k < 5; k++)
			tok[k] = (uint32_t)(300 + i * 5 + k);
		uint8_t px[64];
		for (int k = 0; k < 64; k++)
			px[k] = (uint8_t)(i * 37 + 11 * k);
		CHECK_OK(mm_doc_add_text(&d, tok, 1 + (uint32_t)i % 5));
		CHECK_OK(mm_doc_add_image(&d, 8, 8, 1, 4, px));
		CHECK_OK(mm_shard_writer_add(w, &d));
		mm_doc_free(&d);
	}
	CHECK_OK(mm_shard_writer_close(w));
}

// Short text documents, several to a row: document i is BOS, 261 + i, i % 3 more tokens, EOS.
static void write_texts(const char *path)
{
	mm_shard_info in = {0};
	in.tokenizer_hash = 0x1234;
	in.vocab_size = 1000;
	mm_shard_writer *w;
	CHECK_OK(mm_shard_writer_open(&w, path, &in, 3));
	for (int i = 0; i < NDOC; i++) {
		mm_doc d;
		mm_doc_init(&d);
		uint32_t tok[3] = {(uint32_t)(261 + i), 900, 901};
		CHECK_OK(mm_doc_add_text(&d, tok, 1 + (uint32_t)i % 3));
		CHECK_OK(mm_shard_writer_add(w, &d));
		mm_doc_free(&d);
	}
	CHECK_OK(mm_shard_writer_close(w));
}

static mm_loader *open_rank(const char *pat, int batch, int rank, int world)
{
	mm_loader_opts o;
	mm_loader_opts_init(&o);
	o.batch = batch, o.seq_len = T, o.seed = 5, o.rank = rank, o.world = world;
	mm_loader *l = NULL;
	CHECK_OK(mm_loader_open(&l, &pat, 1, &o));
	return l;
}

static int rows_equal(const mm_batch *a, int ra, const mm_batch *b, int rb, int pd)
{
	size_t ia = (size_t)ra * T, ib = (size_t)rb * T;
	int32_t *ai[] = {a->token, a->target, a->doc, a->img, a->pos, a->patch};
	int32_t *bi[] = {b->token, b->target, b->doc, b->img, b->pos, b->patch};
	for (int k = 0; k < 6; k++)
		if (memcmp(ai[k] + ia, bi[k] + ib, T * sizeof(int32_t)))
			return 0;
	if (!pd)
		return 1;
	return !memcmp(a->t + ia, b->t + ib, T * sizeof(float)) &&
	       !memcmp(a->z + ia * pd, b->z + ib * pd, T * pd * sizeof(float)) &&
	       !memcmp(a->x + ia * pd, b->x + ib * pd, T * pd * sizeof(float));
}

// The first token after BOS of every document in the batch, as a bit set over the documents.
static void docs_of(const mm_batch *b, unsigned char *seen)
{
	for (int i = 0; i + 1 < b->B * b->T; i++)
		if (b->token[i] == MM_TOK_BOS && b->token[i + 1] >= 261 && b->token[i + 1] < 261 + NDOC)
			seen[b->token[i + 1] - 261] = 1;
}

int main(void)
{
	write_pairs("pairs.mms");
	mm_loader *one = open_rank("pairs.mms", 2 * B, 0, 1);
	mm_loader *r[2] = {open_rank("pairs.mms", B, 0, 2), open_rank("pairs.mms", B, 1, 2)};
	if (!one || !r[0] || !r[1])
		return check_done();
	mm_batch b1, b2[2];
	CHECK_OK(mm_loader_batch_alloc(one, &b1));
	CHECK_OK(mm_loader_batch_alloc(r[0], &b2[0]));
	CHECK_OK(mm_loader_batch_alloc(r[1], &b2[1]));
	// Row j of the big batch holds permutation position 2B s + j; rank j % 2 holds it in its
	// row j / 2. 20 steps of 6 documents run through nearly three epochs of 41.
	int bad = 0;
	for (int step = 0; step < 20; step++) {
		CHECK_EQ_INT(mm_loader_next(one, &b1), 2 * B);
		CHECK_EQ_INT(mm_loader_next(r[0], &b2[0]), B);
		CHECK_EQ_INT(mm_loader_next(r[1], &b2[1]), B);
		for (int j = 0; j < 2 * B; j++)
			bad += !rows_equal(&b1, j, &b2[j % 2], j / 2, PD);
	}
	CHECK_EQ_INT(bad, 0);
	CHECK(mm_loader_epochs_done(one) > 2.9);
	mm_batch_free(&b1);
	for (int k = 0; k < 2; k++) {
		mm_batch_free(&b2[k]);
		mm_loader_close(r[k]);
	}
	mm_loader_close(one);

	// Documents sharing rows: over the first step, the two ranks' documents are not those of
	// the single loader (each rank fills its rows from its own stride).
	write_texts("texts.mms");
	one = open_rank("texts.mms", 2, 0, 1);
	r[0] = open_rank("texts.mms", 1, 0, 2);
	r[1] = open_rank("texts.mms", 1, 1, 2);
	if (!one || !r[0] || !r[1])
		return check_done();
	CHECK_OK(mm_loader_batch_alloc(one, &b1));
	CHECK_OK(mm_loader_batch_alloc(r[0], &b2[0]));
	CHECK_OK(mm_loader_batch_alloc(r[1], &b2[1]));
	int differ = 0;
	for (int step = 0; step < 5; step++) {
		unsigned char s1[NDOC] = {0}, s2[NDOC] = {0};
		CHECK_EQ_INT(mm_loader_next(one, &b1), 2);
		CHECK_EQ_INT(mm_loader_next(r[0], &b2[0]), 1);
		CHECK_EQ_INT(mm_loader_next(r[1], &b2[1]), 1);
		docs_of(&b1, s1);
		docs_of(&b2[0], s2);
		docs_of(&b2[1], s2);
		differ += memcmp(s1, s2, NDOC) != 0;
	}
	CHECK(differ > 0);
	mm_batch_free(&b1);
	for (int k = 0; k < 2; k++) {
		mm_batch_free(&b2[k]);
		mm_loader_close(r[k]);
	}
	mm_loader_close(one);
	return check_done();
}
