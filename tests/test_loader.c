// The training loader: sequence layout, targets, packing, noise, shuffling, resume, ranks,
// validation mode, and refusals. Shards are written into the working directory.
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "mm.h"

#define VOCAB 1000

static mm_shard_info geom(uint32_t h, uint32_t w, uint32_t c, uint32_t p)
{
	mm_shard_info in = {0};
	in.tokenizer_hash = 0x1234;
	in.vocab_size = VOCAB;
	in.img_h = h, in.img_w = w, in.img_c = c, in.patch = p;
	return in;
}

static void write_shard(const char *path, const mm_shard_info *in, mm_doc *docs, int n)
{
	mm_shard_writer *w;
	CHECK_OK(mm_shard_writer_open(&w, path, in, 3));
	for (int i = 0; i < n; i++)
		CHECK_OK(mm_shard_writer_add(w, &docs[i]));
	CHECK_OK(mm_shard_writer_close(w));
}

static void add_text(mm_doc *d, uint32_t first, uint32_t n)
{
	uint32_t tok[4096];
	for (uint32_t i = 0; i < n; i++)
		tok[i] = first + i;
	CHECK_OK(mm_doc_add_text(d, tok, n));
}

// An image whose pixels are (seed * 37 + 11 * k) mod 256 in patch order.
static void add_image(mm_doc *d, const mm_shard_info *in, uint32_t seed)
{
	uint8_t px[4096];
	size_t n = (size_t)in->img_h * in->img_w * in->img_c;
	for (size_t k = 0; k < n; k++)
		px[k] = (uint8_t)(seed * 37 + 11 * k);
	CHECK_OK(mm_doc_add_image(d, in->img_h, in->img_w, in->img_c, in->patch, px));
}

static void free_docs(mm_doc *docs, int n)
{
	for (int i = 0; i < n; i++)
		mm_doc_free(&docs[i]);
}

static mm_loader *open1(const char *pattern, int B, int T, uint64_t seed, int validation)
{
	mm_loader_opts o;
	mm_loader_opts_init(&o);
	o.batch = B, o.seq_len = T, o.seed = seed, o.validation = validation;
	mm_loader *l = NULL;
	CHECK_OK(mm_loader_open(&l, &pattern, 1, &o));
	return l;
}

// Every rule of loader.h that can be read off one batch; returns the number of violations.
static int check_rules(const mm_batch *b, int np)
{
	int bad = 0;
	for (int r = 0; r < b->B; r++) {
		int next_doc = 0, next_img = 0, start = 0, ended = 0;
		for (int c = 0; c < b->T; c++) {
			size_t i = (size_t)r * b->T + c;
			if (b->doc[i] < 0) {
				ended = 1;
				bad += b->token[i] != MM_TOK_PAD || b->target[i] != -1 || b->img[i] != -1 ||
				       b->patch[i] != -1 || b->pos[i] != 0;
				continue;
			}
			bad += ended; // a piece after padding
			if (c == 0 || b->doc[i] != b->doc[i - 1]) {
				bad += b->doc[i] != next_doc++;
				start = c;
			}
			bad += b->pos[i] != c - start;
			if (b->token[i] >= 0) {
				bad += b->img[i] != -1 || b->patch[i] != -1;
			} else {
				bad += b->patch[i] < 0 || b->patch[i] >= np || b->img[i] < 0;
				if (b->patch[i] == 0) { // BOI before, NP patches, EOI after, one image number
					bad += c == 0 || b->token[i - 1] != MM_TOK_BOI || b->doc[i - 1] != b->doc[i];
					bad += b->img[i] != next_img++;
					bad += c + np >= b->T;
					for (int j = 0; !bad && j < np; j++)
						bad += b->patch[i + j] != j || b->img[i + j] != b->img[i] ||
						       b->doc[i + j] != b->doc[i];
					if (!bad)
						bad += b->token[i + np] != MM_TOK_EOI || b->doc[i + np] != b->doc[i];
				}
			}
			int want = -1;
			if (c + 1 < b->T && b->doc[i + 1] == b->doc[i] && b->token[i + 1] >= 0 && b->patch[i] < 0)
				want = b->token[i + 1];
			bad += b->target[i] != want;
		}
	}
	return bad;
}

static int batches_equal(const mm_batch *a, const mm_batch *b, int pd)
{
	size_t bt = (size_t)a->B * a->T;
	return memcmp(a->token, b->token, bt * 4) == 0 && memcmp(a->target, b->target, bt * 4) == 0 &&
	       memcmp(a->doc, b->doc, bt * 4) == 0 && memcmp(a->img, b->img, bt * 4) == 0 &&
	       memcmp(a->pos, b->pos, bt * 4) == 0 && memcmp(a->patch, b->patch, bt * 4) == 0 &&
	       memcmp(a->t, b->t, bt * 4) == 0 &&
	       (!pd || (memcmp(a->z, b->z, bt * pd * 4) == 0 && memcmp(a->x, b->x, bt * pd * 4) == 0));
}

// The exact layout of one interleaved document: text, a 4x6 image in 2x2 patches, text.
static void test_layout(void)
{
	mm_shard_info in = geom(4, 6, 1, 2); // NP = 6, P = 4
	mm_doc d;
	mm_doc_init(&d);
	add_text(&d, 10, 3);
	add_image(&d, &in, 5);
	add_text(&d, 13, 2);
	write_shard("layout.mms", &in, &d, 1);
	mm_loader *l = open1("layout.mms", 2, 20, 1, 0);
	if (!l)
		return;
	CHECK_EQ_INT(mm_loader_info(l)->n_docs, 1);
	CHECK_EQ_INT(mm_loader_info(l)->patch, 2);
	mm_batch b;
	CHECK_OK(mm_loader_batch_alloc(l, &b));
	CHECK_EQ_INT(mm_loader_next(l, &b), 2);
	// BOS 10 11 12 BOI p0..p5 EOI 13 14 EOS, 5 padding
	int32_t tok[20] = {MM_TOK_BOS, 10, 11, 12, MM_TOK_BOI, -1, -1, -1, -1, -1, -1, MM_TOK_EOI, 13, 14, MM_TOK_EOS,
			   MM_TOK_PAD, MM_TOK_PAD, MM_TOK_PAD, MM_TOK_PAD, MM_TOK_PAD};
	int32_t tgt[20] = {10, 11, 12, MM_TOK_BOI, -1, -1, -1, -1, -1, -1, -1, 13, 14, MM_TOK_EOS, -1, -1, -1, -1, -1, -1};
	for (int r = 0; r < 2; r++) // the second row is the same document in epoch 1
		for (int i = 0; i < 20; i++) {
			size_t k = (size_t)r * 20 + i;
			CHECK_EQ_INT(b.token[k], tok[i]);
			CHECK_EQ_INT(b.target[k], tgt[i]);
			CHECK_EQ_INT(b.doc[k], i < 15 ? 0 : -1);
			CHECK_EQ_INT(b.pos[k], i < 15 ? i : 0);
			CHECK_EQ_INT(b.img[k], i >= 5 && i < 11 ? 0 : -1);
			CHECK_EQ_INT(b.patch[k], i >= 5 && i < 11 ? i - 5 : -1);
		}
	CHECK_EQ_INT(check_rules(&b, 6), 0);
	float t = b.t[5];
	CHECK(t > 0 && t < 1);
	CHECK(b.t[25] != t); // another epoch, another draw
	int xs_ok = 1, zs_ok = 1;
	for (int j = 0; j < 6; j++) {
		CHECK(b.t[5 + j] == t);
		for (int v = 0; v < 4; v++) {
			size_t k = (size_t)(5 + j) * 4 + v;
			uint8_t px = (uint8_t)(5 * 37 + 11 * (j * 4 + v));
			xs_ok &= fabsf(b.x[k] - (px / 127.5f - 1)) < 1e-6f;
			double eps = (b.z[k] - t * b.x[k]) / (1 - t);
			zs_ok &= isfinite(eps) && fabs(eps) < 6;
		}
	}
	CHECK(xs_ok);
	CHECK(zs_ok);
	CHECK(b.x[0] == 0 && b.z[4 * 4] == 0); // text positions hold zeros
	uint64_t pad, tot;
	CHECK(fabs(mm_loader_padding(l, &pad, &tot) - 0.25) < 1e-12);
	CHECK_EQ_INT(pad, 10);
	CHECK_EQ_INT(tot, 40);
	mm_batch_free(&b);
	mm_loader_close(l);
	mm_doc_free(&d);
}

// Several documents share a row; a document that does not fit starts the next row.
static void test_packing(void)
{
	mm_shard_info in = geom(0, 0, 0, 0);
	mm_doc d[3];
	for (int i = 0; i < 3; i++)
		mm_doc_init(&d[i]);
	add_text(&d[0], 100, 3); // 5 positions
	add_text(&d[1], 200, 2); // 4
	add_text(&d[2], 300, 6); // 8
	write_shard("pack.mms", &in, d, 3);
	mm_loader *l = open1("pack.mms", 3, 10, 0, 1);
	if (!l)
		return;
	mm_batch b;
	CHECK_OK(mm_loader_batch_alloc(l, &b));
	CHECK(b.z == NULL && b.x == NULL);
	CHECK_EQ_INT(mm_loader_next(l, &b), 2);
	CHECK_EQ_INT(check_rules(&b, 0), 0);
	CHECK_EQ_INT(b.doc[4], 0);
	CHECK_EQ_INT(b.target[4], -1); // EOS of the first document predicts nothing
	CHECK_EQ_INT(b.doc[5], 1);
	CHECK_EQ_INT(b.pos[5], 0);
	CHECK_EQ_INT(b.token[6], 200);
	CHECK_EQ_INT(b.doc[9], -1);
	CHECK_EQ_INT(b.token[10], MM_TOK_BOS);
	CHECK_EQ_INT(b.token[11], 300);
	CHECK_EQ_INT(b.doc[18], -1);
	CHECK_EQ_INT(b.doc[20], -1); // third row: full padding
	CHECK_EQ_INT(mm_loader_next(l, &b), 0);
	uint64_t pad, tot;
	mm_loader_padding(l, &pad, &tot);
	CHECK_EQ_INT(pad, 30 - 17);
	CHECK_EQ_INT(tot, 30);
	mm_batch_free(&b);
	mm_loader_close(l);
	free_docs(d, 3);
}

// Collects the tokens of every piece of one validation pass, in order, as one stream with
// -2 between pieces.
static int pass_tokens(mm_loader *l, int32_t *out, int cap, int np)
{
	mm_batch b;
	int n = 0;
	CHECK_OK(mm_loader_batch_alloc(l, &b));
	while (mm_loader_next(l, &b) > 0) {
		CHECK_EQ_INT(check_rules(&b, np), 0);
		for (int i = 0; i < b.B * b.T; i++) {
			if (b.doc[i] < 0)
				continue;
			if (b.pos[i] == 0 && n < cap)
				out[n++] = -2;
			if (n < cap)
				out[n++] = b.token[i] >= 0 ? b.token[i] : -1;
		}
	}
	mm_batch_free(&b);
	return n;
}

// Long documents are cut into pieces at text positions only; an image is never split.
static void test_cutting(void)
{
	mm_shard_info in = geom(4, 6, 1, 2); // image: 8 positions with BOI and EOI
	mm_doc d[3];
	for (int i = 0; i < 3; i++)
		mm_doc_init(&d[i]);
	add_text(&d[0], 400, 8); // BOS + 8 tokens, then an image that a cut at 12 would split
	add_image(&d[0], &in, 1);
	add_text(&d[0], 500, 3);
	add_text(&d[1], 600, 35); // 37 positions: 12 + 12 + 12, then a lone EOS, dropped
	add_text(&d[2], 700, 29); // 31 positions: 12 + 12 + 7
	write_shard("cut.mms", &in, d, 3);
	mm_loader_opts o;
	mm_loader_opts_init(&o);
	o.batch = 2, o.seq_len = 8, o.validation = 1;
	mm_loader *l = NULL;
	const char *pat = "cut.mms";
	CHECK(mm_loader_open(&l, &pat, 1, &o) == -MM_ERANGE); // NP + 3 = 9 > 8
	CHECK(strstr(mm_errmsg(), "cut.mms") && strstr(mm_errmsg(), "4x6"));
	l = open1("cut.mms", 2, 12, 0, 1);
	if (!l)
		return;
	int32_t got[200];
	int n = pass_tokens(l, got, 200, 6);
	int32_t want[200];
	int k = 0;
	want[k++] = -2, want[k++] = MM_TOK_BOS;
	for (int i = 0; i < 8; i++)
		want[k++] = 400 + i;
	want[k++] = -2, want[k++] = MM_TOK_BOI;
	for (int i = 0; i < 6; i++)
		want[k++] = -1;
	want[k++] = MM_TOK_EOI;
	for (int i = 0; i < 3; i++)
		want[k++] = 500 + i;
	want[k++] = MM_TOK_EOS;
	want[k++] = -2, want[k++] = MM_TOK_BOS;
	for (int i = 0; i < 35; i++) {
		if (i == 11 || i == 23)
			want[k++] = -2;
		want[k++] = 600 + i;
	}
	want[k++] = -2, want[k++] = MM_TOK_BOS;
	for (int i = 0; i < 29; i++) {
		if (i == 11 || i == 23)
			want[k++] = -2;
		want[k++] = 700 + i;
	}
	want[k++] = MM_TOK_EOS;
	CHECK_EQ_INT(n, k);
	CHECK(n == k && memcmp(got, want, (size_t)k * sizeof *want) == 0);
	mm_loader_close(l);
	free_docs(d, 3);
}

enum { NDOC = 51 };

// NDOC text documents; document i is BOS, 261 + i, then i % 4 more tokens, EOS.
static void write_numbered(const char *path)
{
	mm_shard_info in = geom(0, 0, 0, 0);
	mm_doc d[NDOC];
	for (int i = 0; i < NDOC; i++) {
		mm_doc_init(&d[i]);
		add_text(&d[i], 261 + i, 1 + i % 4);
	}
	write_shard(path, &in, d, NDOC);
	free_docs(d, NDOC);
}

// The document numbers of the next n documents the loader serves.
static void doc_sequence(mm_loader *l, int *ids, int n)
{
	mm_batch b;
	CHECK_OK(mm_loader_batch_alloc(l, &b));
	int k = 0;
	while (k < n && mm_loader_next(l, &b) > 0)
		for (int i = 0; i < b.B * b.T && k < n; i++)
			if (b.token[i] == MM_TOK_BOS)
				ids[k++] = b.token[i + 1] - 261;
	mm_batch_free(&b);
	CHECK_EQ_INT(k, n);
}

static int is_permutation(const int *ids, int n)
{
	int seen[NDOC] = {0};
	for (int i = 0; i < n; i++) {
		if (ids[i] < 0 || ids[i] >= NDOC || seen[ids[i]])
			return 0;
		seen[ids[i]] = 1;
	}
	return 1;
}

static void test_shuffle_and_ranks(void)
{
	write_numbered("num.mms");
	mm_loader *l = open1("num.mms", 2, 16, 7, 0);
	if (!l)
		return;
	CHECK_EQ_INT(mm_loader_docs_per_epoch(l), NDOC);
	int ids[3 * NDOC];
	doc_sequence(l, ids, 3 * NDOC);
	CHECK(is_permutation(ids, NDOC));
	CHECK(is_permutation(ids + NDOC, NDOC));
	CHECK(is_permutation(ids + 2 * NDOC, NDOC));
	CHECK(memcmp(ids, ids + NDOC, sizeof(int) * NDOC) != 0);
	int identity = 1;
	for (int i = 0; i < NDOC; i++)
		identity &= ids[i] == i;
	CHECK(!identity);
	mm_loader_state st;
	mm_loader_get_state(l, &st);
	CHECK(st.epoch >= 3 || (st.epoch == 2 && st.cursor > 0));
	CHECK(mm_loader_epochs_done(l) >= 2.9);
	mm_loader_close(l);

	// world = 2: rank r serves permutation positions r, r + 2, ...
	int part[2][2 * NDOC];
	for (int r = 0; r < 2; r++) {
		mm_loader_opts o;
		mm_loader_opts_init(&o);
		o.batch = 3, o.seq_len = 16, o.seed = 7, o.rank = r, o.world = 2;
		const char *pat = "num.mms";
		CHECK_OK(mm_loader_open(&l, &pat, 1, &o));
		if (!l)
			return;
		int n = r ? NDOC / 2 : NDOC / 2 + 1;
		doc_sequence(l, part[r], n + 3); // into the next epoch
		for (int i = 0; i < n; i++)
			CHECK_EQ_INT(part[r][i], ids[2 * i + r]);
		// NDOC is odd: the stride runs on, so rank r starts epoch 1 at position 1 - r.
		for (int i = 0; i < 3; i++)
			CHECK_EQ_INT(part[r][n + i], ids[NDOC + 2 * i + 1 - r]);
		mm_loader_close(l);
	}

	mm_loader_opts o;
	mm_loader_opts_init(&o);
	o.batch = 1, o.seq_len = 16, o.world = 52;
	o.rank = 51;
	const char *pat = "num.mms";
	CHECK(mm_loader_open(&l, &pat, 1, &o) == -MM_EINVAL); // more ranks than documents
}

// Caption pairs with images 4x4x1 in 2x2 patches: frequencies of drop and order, noise levels.
static void test_captions(void)
{
	enum { N = 3000 };
	mm_shard_info in = geom(4, 4, 1, 2); // NP = 4, P = 4
	mm_shard_writer *w;
	CHECK_OK(mm_shard_writer_open(&w, "cap.mms", &in, 3));
	for (int i = 0; i < N; i++) {
		mm_doc d;
		mm_doc_init(&d);
		if (i % 2) { // stored either way round
			add_text(&d, 300, 3);
			add_image(&d, &in, (uint32_t)i);
		} else {
			add_image(&d, &in, (uint32_t)i);
			add_text(&d, 300, 3);
		}
		CHECK_OK(mm_shard_writer_add(w, &d));
		mm_doc_free(&d);
	}
	CHECK_OK(mm_shard_writer_close(w));
	for (int val = 0; val < 2; val++) {
		mm_loader *l = open1("cap.mms", 8, 32, 3, val);
		if (!l)
			return;
		mm_batch b;
		CHECK_OK(mm_loader_batch_alloc(l, &b));
		int docs = 0, dropped = 0, img_first = 0, low_t = 0, bad = 0;
		double lt = 0, lt2 = 0, e1 = 0, e2 = 0;
		long n_lt = 0, n_e = 0;
		mm_loader_state st;
		do {
			int rows = mm_loader_next(l, &b);
			if (rows <= 0)
				break;
			bad += check_rules(&b, 4);
			for (int i = 0; i < b.B * b.T; i++) {
				if (b.token[i] != MM_TOK_BOS)
					continue;
				docs++;
				int first = b.token[i + 1] == MM_TOK_BOI;
				int has_text = first ? b.token[i + 7] == 300 : 1;
				dropped += first && !has_text;
				img_first += first && has_text;
				int p = first ? i + 2 : i + 5; // first patch
				float t = b.t[p];
				low_t += first && has_text && t < 0.5f;
				if (!first) {
					lt += log(t / (1 - t)), lt2 += log(t / (1 - t)) * log(t / (1 - t)), n_lt++;
					for (int v = 0; v < 16; v++) {
						double e = (b.z[(size_t)p * 4 + v] - t * b.x[(size_t)p * 4 + v]) / (1 - t);
						e1 += e, e2 += e * e, n_e++;
					}
				}
			}
			mm_loader_get_state(l, &st);
		} while (val || st.epoch == 0);
		CHECK_EQ_INT(bad, 0);
		CHECK(docs >= N && docs < N + 8 * 3); // training: the last batch reaches into epoch 1
		CHECK_EQ_INT(low_t, 0);
		double m = lt / n_lt, sd = sqrt(lt2 / n_lt - m * m);
		CHECK_MSG(fabs(m + 0.8) < 0.06 && fabs(sd - 0.8) < 0.05, "logit t mean %g sd %g", m, sd);
		m = e1 / n_e, sd = sqrt(e2 / n_e - m * m);
		CHECK_MSG(fabs(m) < 0.02 && fabs(sd - 1) < 0.02, "eps mean %g sd %g", m, sd);
		if (val) {
			CHECK_EQ_INT(dropped, 0);
			CHECK_EQ_INT(img_first, 0);
		} else {
			double fd = (double)dropped / N, ff = (double)img_first / (N - dropped);
			CHECK_MSG(fabs(fd - 0.1) < 0.02, "drop frequency %g", fd);
			CHECK_MSG(fabs(ff - 0.2) < 0.025, "image-first frequency %g", ff);
		}
		mm_batch_free(&b);
		mm_loader_close(l);
	}
}

// --image-first-t: an image before its caption has t' = T + (1 - T) t, t drawn as for the
// others; the default is 0.5 (the goldens of the other tests hold its batches to their bytes).
static void test_first_t(void)
{
	const char *pattern = "cap.mms"; // test_captions's shard: half of 3,000 stored image first
	mm_loader_opts o;
	mm_loader_opts_init(&o);
	CHECK(o.first_t == 0.5);
	o.batch = 8, o.seq_len = 32, o.seed = 3, o.image_first = 0.5, o.first_t = 0.8;
	mm_loader *l = NULL;
	CHECK_OK(mm_loader_open(&l, &pattern, 1, &o));
	if (!l)
		return;
	mm_batch b;
	CHECK_OK(mm_loader_batch_alloc(l, &b));
	int n = 0, below = 0;
	double lt = 0, lt2 = 0;
	for (int k = 0; k < 100; k++) {
		CHECK(mm_loader_next(l, &b) > 0);
		for (int i = 0; i + 7 < b.B * b.T; i++) {
			if (b.token[i] != MM_TOK_BOS || b.token[i + 1] != MM_TOK_BOI || b.token[i + 7] != 300)
				continue;
			float t = b.t[i + 2];
			below += t < 0.8f;
			double u = (t - 0.8) / 0.2; // the level drawn before the mapping
			if (u > 0 && u < 1)
				lt += log(u / (1 - u)), lt2 += log(u / (1 - u)) * log(u / (1 - u)), n++;
		}
	}
	CHECK_EQ_INT(below, 0);
	CHECK_MSG(n > 300, "%d images before their caption", n);
	double m = lt / n, sd = sqrt(lt2 / n - m * m);
	CHECK_MSG(fabs(m + 0.8) < 0.1 && fabs(sd - 0.8) < 0.08, "logit of the drawn level: mean %g sd %g", m, sd);
	mm_batch_free(&b);
	mm_loader_close(l);
	o.first_t = 1.5; // out of range: refused
	l = NULL;
	CHECK(mm_loader_open(&l, &pattern, 1, &o) == -MM_EINVAL);
}

// A loader set to a saved state gives, bit for bit, the batches the original gives next.
static void test_resume(void)
{
	mm_shard_info in = geom(4, 4, 1, 2); // 6 positions per image
	mm_doc d[40];
	for (int i = 0; i < 40; i++) {
		mm_doc_init(&d[i]);
		if (i % 3 == 0) { // caption pair
			add_text(&d[i], 300 + i, 2 + i % 5);
			add_image(&d[i], &in, (uint32_t)i);
		} else if (i % 3 == 1) { // long interleaved: crosses rows and batches
			add_text(&d[i], 300, 9 + i);
			add_image(&d[i], &in, (uint32_t)i);
			add_text(&d[i], 400, 5);
			add_image(&d[i], &in, (uint32_t)i + 1);
		} else {
			add_text(&d[i], 500, 1 + i % 7);
		}
	}
	write_shard("res-a.mms", &in, d, 20);
	write_shard("res-b.mms", &in, d + 20, 20);
	free_docs(d, 40);
	mkdir("res", 0755);
	rename("res-a.mms", "res/a.mms");
	rename("res-b.mms", "res/b.mms");
	enum { STEPS = 60, AHEAD = 3 };
	mm_loader *a = open1("res", 2, 12, 99, 0), *c = open1("res/*.mms", 2, 12, 99, 0);
	if (!a || !c)
		return;
	CHECK_EQ_INT(mm_loader_n_shards(a), 2);
	CHECK(strcmp(mm_loader_shard_path(a, 1), "res/b.mms") == 0);
	mm_batch x, y;
	CHECK_OK(mm_loader_batch_alloc(a, &x));
	CHECK_OK(mm_loader_batch_alloc(a, &y));
	int same = 1, mid_doc = 0, bad = 0;
	mm_loader_state states[STEPS];
	mm_batch hist[STEPS + AHEAD];
	for (int s = 0; s < STEPS + AHEAD; s++) {
		if (s < STEPS)
			mm_loader_get_state(a, &states[s]);
		CHECK_OK(mm_loader_batch_alloc(a, &hist[s]));
		CHECK_EQ_INT(mm_loader_next(a, &hist[s]), 2);
		bad += check_rules(&hist[s], 4);
		CHECK_EQ_INT(mm_loader_next(c, &y), 2); // a glob over the same shards: the same data
		same &= batches_equal(&hist[s], &y, 4);
	}
	CHECK(same);
	CHECK_EQ_INT(bad, 0);
	mm_loader_state last;
	mm_loader_get_state(a, &last);
	CHECK(last.epoch >= 1);
	for (int s = 0; s < STEPS; s += 1) {
		mid_doc += states[s].offset > 0;
		CHECK_OK(mm_loader_set_state(c, &states[s]));
		for (int k = 0; k < AHEAD; k++) {
			CHECK_EQ_INT(mm_loader_next(c, &x), 2);
			same &= batches_equal(&x, &hist[s + k], 4);
		}
	}
	CHECK(same);
	CHECK(mid_doc > 0);
	mm_loader_state bogus = {0, 41, 0};
	CHECK(mm_loader_set_state(c, &bogus) == -MM_EINVAL);
	bogus.cursor = 0, bogus.offset = 1000;
	CHECK_OK(mm_loader_set_state(c, &bogus));
	CHECK(mm_loader_next(c, &x) == -MM_EINVAL);
	for (int s = 0; s < STEPS + AHEAD; s++)
		mm_batch_free(&hist[s]);

	// Another seed, other batches; one shard of the two, half the documents.
	mm_loader *e = open1("res", 2, 12, 100, 0), *f = open1("res/a.mms", 2, 12, 99, 0);
	if (e && f) {
		CHECK_OK(mm_loader_set_state(a, &states[0]));
		CHECK_EQ_INT(mm_loader_next(a, &x), 2);
		CHECK_EQ_INT(mm_loader_next(e, &y), 2);
		CHECK(!batches_equal(&x, &y, 4));
		CHECK_EQ_INT(mm_loader_docs_per_epoch(f), 20);
	}
	mm_loader_close(e);
	mm_loader_close(f);
	mm_batch_free(&x);
	mm_batch_free(&y);
	mm_loader_close(a);
	mm_loader_close(c);
}

// Validation: the same batches from two opens and after a rewind; the last one partial.
static void test_validation(void)
{
	mm_loader *a = open1("res", 4, 24, 1, 1), *b = open1("res", 4, 24, 2, 1);
	if (!a || !b)
		return;
	mm_batch x, y;
	CHECK_OK(mm_loader_batch_alloc(a, &x));
	CHECK_OK(mm_loader_batch_alloc(a, &y));
	int same = 1, n = 0, last = 0;
	for (int pass = 0; pass < 2; pass++) {
		int rx, ry;
		while ((rx = mm_loader_next(a, &x)) > 0) {
			ry = mm_loader_next(b, &y);
			same &= rx == ry && batches_equal(&x, &y, 4);
			last = rx;
			n++;
		}
		CHECK_EQ_INT(rx, 0);
		CHECK_EQ_INT(mm_loader_next(b, &y), 0);
		mm_loader_rewind(a);
		mm_loader_rewind(b);
		if (pass == 0) // the second pass runs against the first pass of the other loader
			mm_loader_close(b), b = open1("res", 4, 24, 1, 1);
	}
	CHECK(same);
	CHECK(n > 2);
	CHECK(last > 0 && last < 4); // 40 documents do not fill whole batches here
	mm_batch_free(&x);
	mm_batch_free(&y);
	mm_loader_close(a);
	mm_loader_close(b);
}

static void test_refusals(void)
{
	mm_loader_opts o;
	mm_loader_opts_init(&o);
	o.batch = 1, o.seq_len = 64;
	mm_loader *l = NULL;
	const char *none = "nothing-here-*.mms";
	CHECK(mm_loader_open(&l, &none, 1, &o) == -MM_EINVAL);
	CHECK(strstr(mm_errmsg(), "nothing-here-*.mms") != NULL);
	CHECK(l == NULL);

	mm_shard_info in = geom(0, 0, 0, 0);
	in.vocab_size = 2000;
	mm_doc d;
	mm_doc_init(&d);
	add_text(&d, 300, 4);
	write_shard("other-vocab.mms", &in, &d, 1);
	mm_doc_free(&d);
	const char *pats[2] = {"num.mms", "other-vocab.mms"};
	CHECK(mm_loader_open(&l, pats, 2, &o) == -MM_EMISMATCH);
	CHECK(strstr(mm_errmsg(), "num.mms") && strstr(mm_errmsg(), "other-vocab.mms"));

	mkdir("empty-dir", 0755);
	const char *dir = "empty-dir";
	CHECK(mm_loader_open(&l, &dir, 1, &o) == -MM_EINVAL);
	CHECK(strstr(mm_errmsg(), "empty-dir") != NULL);

	// The same shard named twice counts once.
	const char *twice[2] = {"num.mms", "num.mms"};
	CHECK_OK(mm_loader_open(&l, twice, 2, &o));
	if (l)
		CHECK_EQ_INT(mm_loader_info(l)->n_docs, NDOC);
	mm_loader_close(l);

	o.batch = 0;
	CHECK(mm_loader_open(&l, twice, 1, &o) == -MM_EINVAL);
	o.batch = 1, o.rank = 1;
	CHECK(mm_loader_open(&l, twice, 1, &o) == -MM_EINVAL);
}

// A corrupt block is reported with the shard's name, the state stays where it was, and the
// loader never crashes.
static void test_corrupt(void)
{
	uint8_t *buf = NULL;
	size_t n = 0;
	CHECK_OK(mm_read_file("num.mms", 1 << 20, &buf, &n));
	if (!buf || n < 200)
		return;
	buf[128 + 16 + 5] ^= 0x40; // inside block 0's zstd frame (man/mm-shard.5: blocks start at 128)
	FILE *f = fopen("bad.mms", "wb");
	CHECK(f && fwrite(buf, 1, n, f) == n);
	if (f)
		fclose(f);
	free(buf);
	mm_loader *l = open1("bad.mms", 2, 16, 5, 0);
	if (!l)
		return;
	mm_batch b;
	CHECK_OK(mm_loader_batch_alloc(l, &b));
	int rc = 0;
	mm_loader_state before, after;
	for (int i = 0; i < NDOC && rc >= 0; i++) {
		mm_loader_get_state(l, &before);
		rc = mm_loader_next(l, &b);
	}
	CHECK(rc < 0);
	CHECK(strstr(mm_errmsg(), "bad.mms") != NULL);
	mm_loader_get_state(l, &after);
	CHECK(memcmp(&before, &after, sizeof before) == 0);
	CHECK(mm_loader_next(l, &b) == rc); // the same document fails again
	mm_batch_free(&b);
	mm_loader_close(l);
}

int main(void)
{
	test_layout();
	test_packing();
	test_cutting();
	test_shuffle_and_ranks();
	test_captions();
	test_first_t();
	test_resume();
	test_validation();
	test_refusals();
	test_corrupt();
	return check_done();
}
