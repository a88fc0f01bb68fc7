// Evaluation (lib/eval.c, lib/bpd.c): the figures against independent computations on a small
// shard and an untrained model, determinism, the bound's terms, and refusals.
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "eval.h"
#include "mm.h"
#include "rng.h"
#include "sample.h"

enum { T = 32, B = 4, NP = 4, P = 16 };
static mm_config cfg = {.dim = 16, .layers = 1, .heads = 2, .mlp = 32, .vocab = 261, .img_h = 8, .img_w = 8,
			.img_c = 1, .patch = 4, .qk_norm = 1, .seq_len = T, .image_weight = 1};
static mm_tokenizer *tok;

static void add_str(mm_doc *d, const char *s)
{
	uint32_t t[256];
	size_t n = strlen(s);
	for (size_t i = 0; i < n; i++)
		t[i] = (uint8_t)s[i];
	CHECK_OK(mm_doc_add_text(d, t, (uint32_t)n));
}

static void add_img(mm_doc *d, int seed)
{
	uint8_t px[NP * P];
	for (int k = 0; k < NP * P; k++)
		px[k] = (uint8_t)(k % 7 == 0 ? (seed & 1) * 255 : seed * 53 + 29 * k); // some 0 and 255
	CHECK_OK(mm_doc_add_image(d, 8, 8, 1, 4, px));
}

enum { NDOCS = 9 };
static mm_doc docs[NDOCS];

static void write_shard(const char *path, uint64_t hash, uint32_t vocab, uint32_t patch)
{
	mm_shard_info in = {.tokenizer_hash = hash, .vocab_size = vocab, .img_h = 8, .img_w = 8, .img_c = 1,
			    .patch = patch};
	mm_shard_writer *w;
	CHECK_OK(mm_shard_writer_open(&w, path, &in, 3));
	for (int i = 0; i < NDOCS && patch == 4; i++)
		CHECK_OK(mm_shard_writer_add(w, &docs[i]));
	CHECK_OK(mm_shard_writer_close(w));
}

// Caption pairs of the three classes in both orders, one caption of no class, a text-only
// document, and text and images interleaved.
static void make_docs(void)
{
	const char *cap[] = {"cat", "a dog", "bird", "cat", "a dog", "fish"};
	for (int i = 0; i < NDOCS; i++)
		mm_doc_init(&docs[i]);
	for (int i = 0; i < 6; i++) {
		if (i % 2)
			add_img(&docs[i], i);
		add_str(&docs[i], cap[i]);
		if (!(i % 2))
			add_img(&docs[i], i);
	}
	add_str(&docs[6], "hello, world");
	add_str(&docs[7], "one");
	add_img(&docs[7], 7);
	add_str(&docs[7], "two");
	add_img(&docs[7], 8);
	add_img(&docs[8], 9);
}

static const char *shard = "eval.mms";

static mm_eval *open_eval(const mm_eval_opts *o)
{
	mm_eval *e = NULL;
	CHECK_OK(mm_eval_open(&e, &shard, 1, &cfg, tok, o));
	return e;
}

// ---- A plain forward of one sequence in a batch of one row ----

typedef struct row {
	int32_t token[T], target[T], doc[T], img[T], pos[T], patch[T];
	float t[T], z[T * P], x[T * P];
	int n, nimg;
} row;

static void row_init(row *r)
{
	memset(r, 0, sizeof *r);
	for (int i = 0; i < T; i++) {
		r->token[i] = MM_TOK_PAD;
		r->target[i] = r->doc[i] = r->img[i] = r->patch[i] = -1;
	}
}

static void row_tok(row *r, int32_t t)
{
	r->token[r->n] = t, r->doc[r->n] = 0, r->pos[r->n] = r->n;
	r->n++;
}

// An image at noise level t: z = t x + (1 - t) eps, eps from g in patch order (t = 1: z = x).
static void row_img_t(row *r, const uint8_t *px, float t, mm_rng *g)
{
	row_tok(r, MM_TOK_BOI);
	for (int j = 0; j < NP; j++) {
		int i = r->n;
		row_tok(r, -1);
		r->img[i] = r->nimg, r->patch[i] = j, r->t[i] = t;
		for (int v = 0; v < P; v++) {
			float x = (float)(px[j * P + v] / 127.5 - 1.0);
			r->x[i * P + v] = x;
			r->z[i * P + v] = t == 1 ? x : t * x + (1.0f - t) * (float)mm_rng_normal(g);
		}
	}
	r->nimg++;
	row_tok(r, MM_TOK_EOI);
}

static void row_img(row *r, const uint8_t *px)
{
	row_img_t(r, px, 1, NULL);
}

static void row_forward(mm_model *m, row *r)
{
	for (int i = 0; i + 1 < r->n; i++)
		if (r->token[i + 1] >= 0 && r->patch[i] < 0)
			r->target[i] = r->token[i + 1];
	mm_batch b = {1, T, r->token, r->target, r->doc, r->img, r->pos, r->patch, r->t, r->z, r->x};
	CHECK_OK(mm_model_forward(m, &b, NULL));
}

// log p(target) at position i of the last row_forward.
static double row_logprob(mm_model *m, const row *r, int i)
{
	int n;
	const int32_t *rows;
	const float *l = mm_model_logits(m, &n, &rows);
	for (int k = 0; k < n; k++) {
		if (rows[k] != i)
			continue;
		const float *v = l + (size_t)k * cfg.vocab;
		double mx = v[0], s = 0;
		for (int j = 0; j < cfg.vocab; j++)
			mx = v[j] > mx ? v[j] : mx;
		for (int j = 0; j < cfg.vocab; j++)
			s += exp(v[j] - mx);
		return v[r->target[i]] - mx - log(s);
	}
	return NAN;
}

static const uint8_t *image_of(const mm_doc *d)
{
	for (uint32_t k = 0; k < d->n_segs; k++)
		if (d->segs[k].type == MM_SEG_IMAGE)
			return d->segs[k].pixels;
	return NULL;
}

// ---- Tests ----

// Text: every document alone, clean images, caption first; NLL from the model's own mean
// cross-entropy. Images: the model's own L_image over the loader's batches at each level.
static void test_losses(mm_model *m, mm_model *m1)
{
	mm_eval_opts o;
	mm_eval_opts_default(&o);
	o.batch = B, o.buckets = 3;
	mm_eval *e = open_eval(&o);
	mm_eval_losses L;
	CHECK_OK(mm_eval_losses_run(e, m, &L));
	double nll = 0;
	uint64_t tokens = 0, bytes = 0;
	for (int d = 0; d < NDOCS; d++) {
		row r;
		row_init(&r);
		row_tok(&r, MM_TOK_BOS);
		const mm_doc *doc = &docs[d];
		int pair = doc->n_segs == 2 && doc->segs[0].type != doc->segs[1].type;
		for (uint32_t k = 0; k < doc->n_segs; k++) {
			const mm_segment *s = &doc->segs[pair ? (doc->segs[0].type == MM_SEG_TEXT ? k : 1 - k) : k];
			if (s->type == MM_SEG_IMAGE) {
				row_img(&r, s->pixels);
				continue;
			}
			for (uint32_t j = 0; j < s->n_tokens; j++)
				row_tok(&r, (int32_t)s->tokens[j]);
			bytes += s->n_tokens; // the byte tokenizer: one byte a token
		}
		row_tok(&r, MM_TOK_EOS);
		row_forward(m1, &r);
		float lt;
		mm_model_losses(m1, &lt, NULL);
		int n;
		mm_model_logits(m1, &n, NULL);
		nll += (double)lt * n;
		tokens += (uint64_t)n;
	}
	CHECK_EQ_INT(L.docs, NDOCS);
	CHECK_EQ_INT(L.tokens, tokens);
	CHECK_EQ_INT(L.bytes, bytes);
	CHECK_MSG(fabs(L.nll - nll / tokens) < 1e-5, "%.9f vs %.9f", L.nll, nll / tokens);
	CHECK(fabs(L.ppl - exp(L.nll)) < 1e-9 * L.ppl);
	CHECK(fabs(L.bits_per_byte - L.nll * tokens / log(2) / bytes) < 1e-9);
	CHECK_EQ_INT(L.images, 9);
	CHECK_EQ_INT(L.buckets, 3);
	double mean = 0;
	for (int k = 0; k < 3; k++) {
		CHECK(fabs(L.t[k] - (k + 0.5) / 3) < 1e-12);
		mm_loader_opts lo;
		mm_loader_opts_init(&lo);
		lo.batch = B, lo.seq_len = T, lo.validation = 1, lo.val_t = L.t[k];
		mm_loader *l;
		CHECK_OK(mm_loader_open(&l, &shard, 1, &lo));
		mm_batch b;
		CHECK_OK(mm_loader_batch_alloc(l, &b));
		double sum = 0, cnt = 0;
		while (mm_loader_next(l, &b) > 0) {
			CHECK_OK(mm_model_forward(m, &b, NULL));
			float li;
			int n;
			mm_model_losses(m, NULL, &li);
			mm_model_x_pred(m, &n, NULL);
			sum += (double)li * n, cnt += n;
			for (int i = 0; i < b.B * b.T; i++)
				CHECK(b.img[i] < 0 || b.t[i] == (float)L.t[k]);
		}
		CHECK_MSG(fabs(L.loss[k] - sum / cnt) < 1e-5 * (1 + sum / cnt), "level %d: %.9f vs %.9f", k, L.loss[k],
			  sum / cnt);
		mean += L.loss[k] / 3;
		mm_batch_free(&b);
		mm_loader_close(l);
	}
	CHECK(fabs(L.image_loss - mean) < 1e-12);
	mm_eval_losses L2;
	CHECK_OK(mm_eval_losses_run(e, m, &L2));
	CHECK(!memcmp(&L, &L2, sizeof L));
	mm_eval_close(e);

	o.max_docs = 2;
	e = open_eval(&o);
	CHECK_EQ_INT(mm_eval_docs(e), 2);
	CHECK_OK(mm_eval_losses_run(e, m, &L2));
	CHECK_EQ_INT(L2.images, 2);
	CHECK_EQ_INT(L2.bytes, 3 + 5);
	mm_eval_close(e);
}

static void write_file(const char *path, const char *s)
{
	FILE *f = fopen(path, "w");
	fputs(s, f);
	fclose(f);
}

static int ncap(const mm_eval_cls *r, int i) // images of true class i
{
	uint64_t s = 0;
	for (int j = 0; j < r->n; j++)
		s += r->confusion[i * r->n + j];
	return (int)s;
}

static int fake_pred[16];
static int fake_captioner(void *ctx, const uint8_t *px, int n, uint64_t index0, int *pred)
{
	(void)px;
	int *calls = ctx;
	CHECK_EQ_INT(index0, *calls); // the labelled images before these
	for (int i = 0; i < n; i++)
		pred[i] = fake_pred[*calls + i];
	*calls += n;
	return 0;
}

// log p(caption j, EOS | image read at t) by a plain forward of BOS BOI image EOI caption EOS.
static double caption_logprob(mm_model *m1, const uint8_t *px, float t, mm_rng *g, const mm_eval_classes *c, int j)
{
	row r;
	row_init(&r);
	row_tok(&r, MM_TOK_BOS);
	row_img_t(&r, px, t, g);
	for (uint32_t k = 0; k < c->ntok[j]; k++)
		row_tok(&r, (int32_t)c->tok[j][k]);
	row_tok(&r, MM_TOK_EOS);
	row_forward(m1, &r);
	double ref = 0;
	for (int q = NP + 2; q < r.n - 1; q++)
		ref += row_logprob(m1, &r, q);
	return ref;
}

// Batched scores equal plain forwards of each sequence; classification takes their maximum.
static void test_classes(mm_model *m, mm_model *m1)
{
	write_file("classes.txt", "cat\na dog\r\nbird\n");
	mm_eval_classes c;
	CHECK_OK(mm_eval_classes_load(&c, "classes.txt", tok, &cfg));
	CHECK_EQ_INT(c.n, 3);
	CHECK(!strcmp(c.text[1], "a dog"));
	CHECK_EQ_INT(c.ntok[1], 5);
	CHECK_EQ_INT(mm_eval_class_of(&c, (const uint8_t *)"bird", 4), 2);
	CHECK_EQ_INT(mm_eval_class_of(&c, (const uint8_t *)"bird ", 5), -1);
	mm_eval_opts o;
	mm_eval_opts_default(&o);
	CHECK(o.read_t == 0.9);
	o.batch = B;
	o.read_t = 1;
	mm_eval *e = open_eval(&o);
	enum { N = 5 };
	uint8_t px[N * NP * P];
	for (int i = 0; i < N; i++)
		memcpy(px + i * NP * P, image_of(&docs[i]), NP * P);
	double ll[N * 3], lt[N * 3];
	// Images read noised: image i of the call draws from (seed ^ MM_EVAL_READ_TAG, index0 + i).
	o.read_t = 0.75f, o.seed = 9;
	mm_eval *en = open_eval(&o);
	CHECK_OK(mm_eval_score(en, m, &c, px, N, 40, lt));
	for (int i = 0; i < N; i++) {
		for (int j = 0; j < 3; j++) {
			mm_rng g;
			mm_rng_seed(&g, 9 ^ MM_EVAL_READ_TAG, 40 + (uint64_t)i);
			double ref = caption_logprob(m1, px + i * NP * P, 0.75f, &g, &c, j);
			CHECK_MSG(fabs(lt[i * 3 + j] - ref) < 1e-4, "noised image %d class %d: %.6f vs %.6f", i, j,
				  lt[i * 3 + j], ref);
		}
	}
	double l2[N * 3];
	CHECK_OK(mm_eval_score(en, m, &c, px, N, 41, l2)); // other draws, other scores
	CHECK(memcmp(l2, lt, sizeof lt) != 0);
	mm_eval_close(en);
	// Three reads of each image: the mean of the three log-probabilities, draw d's eps from
	// seed ^ tag ^ d x step (draw 0 the single read's).
	o.read_draws = 3;
	en = open_eval(&o);
	double l3[N * 3];
	CHECK_OK(mm_eval_score(en, m, &c, px, N, 40, l3));
	for (int i = 0; i < N; i++) {
		for (int j = 0; j < 3; j++) {
			double ref = 0;
			for (uint64_t d = 0; d < 3; d++) {
				mm_rng g;
				mm_rng_seed(&g, 9 ^ MM_EVAL_READ_TAG ^ (d * MM_EVAL_DRAW_STEP), 40 + (uint64_t)i);
				ref += caption_logprob(m1, px + i * NP * P, 0.75f, &g, &c, j);
			}
			ref /= 3;
			CHECK_MSG(fabs(l3[i * 3 + j] - ref) < 1e-4, "3 reads, image %d class %d: %.6f vs %.6f", i, j,
				  l3[i * 3 + j], ref);
			CHECK(l3[i * 3 + j] != lt[i * 3 + j]);
		}
	}
	mm_eval_ret rr;
	CHECK(mm_eval_retrieve_captions(en, m, &c, 2, 0, &rr) == -MM_EINVAL);
	CHECK(strstr(mm_errmsg(), "once") != NULL);
	mm_eval_close(en);
	o.read_draws = 1;
	CHECK_OK(mm_eval_score(e, m, &c, px, N, 0, ll));
	CHECK(memcmp(ll, lt, sizeof lt) != 0);
	int best[N];
	for (int i = 0; i < N; i++) {
		best[i] = 0;
		for (int j = 0; j < 3; j++) {
			double ref = caption_logprob(m1, px + i * NP * P, 1, NULL, &c, j);
			CHECK_MSG(fabs(ll[i * 3 + j] - ref) < 1e-4, "image %d class %d: %.6f vs %.6f", i, j, ll[i * 3 + j], ref);
			best[i] = ll[i * 3 + j] > ll[i * 3 + best[i]] ? j : best[i];
		}
	}
	// Documents 0..4 are labelled 0, 1, 2, 0, 1; document 5 is a caption of no class.
	int label[N] = {0, 1, 2, 0, 1}, calls = 0;
	fake_pred[0] = 0, fake_pred[1] = -1, fake_pred[2] = 1, fake_pred[3] = 0, fake_pred[4] = 7;
	mm_eval_cls r;
	CHECK_OK(mm_eval_classify(e, m, &c, fake_captioner, &calls, &r));
	CHECK_EQ_INT(calls, N);
	CHECK_EQ_INT(r.images, N);
	CHECK_EQ_INT(r.unmatched, 1);
	uint64_t want[9] = {0}, correct = 0;
	for (int i = 0; i < N; i++)
		want[label[i] * 3 + best[i]]++, correct += label[i] == best[i];
	CHECK(!memcmp(r.confusion, want, sizeof want));
	CHECK_EQ_INT(r.correct, correct);
	CHECK(ncap(&r, 0) == 2 && ncap(&r, 1) == 2 && ncap(&r, 2) == 1);
	CHECK_EQ_INT(r.correct_greedy, 2);
	CHECK_EQ_INT(r.confusion_greedy[0 * 4 + 0], 2);
	CHECK_EQ_INT(r.confusion_greedy[1 * 4 + 3], 2); // -1 and 7: no class
	CHECK_EQ_INT(r.confusion_greedy[2 * 4 + 1], 1);
	mm_eval_cls_free(&r);
	mm_eval_close(e);
	mm_eval_classes_free(&c);
}

// A caption's log-probability alone (its tokens, then BOI, after BOS), one token at a time.
static double prior_ref(mm_model *m, const mm_eval_classes *c, int j)
{
	mm_sampler *s;
	CHECK_OK(mm_sampler_new(&s, m, 1));
	int zero = 0, one = 1;
	int32_t t = MM_TOK_BOS;
	const int32_t *tp = &t;
	double lp = 0;
	CHECK_OK(mm_sampler_append_tokens(s, 1, &zero, &tp, &one));
	for (uint32_t u = 0; u <= c->ntok[j]; u++) {
		t = u < c->ntok[j] ? (int32_t)c->tok[j][u] : MM_TOK_BOI;
		lp += mm_logprob(mm_sampler_logits(s, 0), cfg.vocab, t);
		if (u < c->ntok[j])
			CHECK_OK(mm_sampler_append_tokens(s, 1, &zero, &tp, &one));
	}
	mm_sampler_free(s);
	return lp;
}

// The rank of lab among n scores (ties: the one listed first ranks higher).
static uint32_t rank_by(const double *x, int n, int lab)
{
	uint32_t rank = 1;
	for (int j = 0; j < n; j++)
		rank += x[j] > x[lab] || (x[j] == x[lab] && j < lab);
	return rank;
}

// Caption retrieval: each caption pair's rank among an open list equals the rank by
// mm_eval_score's likelihoods of the same image with the same eps (stream k for the k-th ranked
// image), whatever the number of slots; the captions left unscored are the ones that cannot win.
static void test_retrieval(mm_model *m, int want_pruned)
{
	write_file("open.txt", "a dog\nfish\ncat\nhello, world\nbird\n");
	mm_eval_classes c;
	CHECK_OK(mm_eval_classes_load(&c, "open.txt", tok, &cfg));
	mm_eval_opts o;
	mm_eval_opts_default(&o);
	o.batch = B, o.read_t = 0.75f, o.seed = 9;
	mm_eval *e = open_eval(&o);
	// docs 0..5: cat, a dog, bird, cat, a dog, fish
	int lab[6] = {2, 0, 4, 2, 0, 1};
	uint32_t want[6], want_pmi[6];
	double prior[5];
	for (int j = 0; j < 5; j++)
		prior[j] = prior_ref(m, &c, j);
	for (int k = 0; k < 6; k++) {
		double ll[5], pmi[5];
		CHECK_OK(mm_eval_score(e, m, &c, image_of(&docs[k]), 1, (uint64_t)k, ll));
		want[k] = rank_by(ll, 5, lab[k]);
		for (int j = 0; j < 5; j++)
			pmi[j] = ll[j] - prior[j];
		want_pmi[k] = rank_by(pmi, 5, lab[k]);
	}
	// the priors matter here: some image ranks its caption otherwise by PMI
	CHECK(memcmp(want, want_pmi, sizeof want) != 0);
	for (int slots = 1; slots <= 8; slots += 7) {
		mm_eval_ret r;
		CHECK_OK(mm_eval_retrieve_captions(e, m, &c, slots, slots > 1, &r));
		CHECK(r.pmi == (slots > 1) && (r.rank_pmi != NULL) == (slots > 1));
		for (int j = 0; j < 5 && r.pmi; j++)
			CHECK_MSG(fabs(r.prior[j] - prior[j]) <= 1e-4 * (1 + fabs(prior[j])), "caption %d: prior %g, %g one token at a time",
				  j, r.prior[j], prior[j]);
		for (int k = 0; k < 6 && r.pmi; k++)
			CHECK_MSG(r.rank_pmi[k] == want_pmi[k], "image %d: PMI rank %u, by mm_eval_score and the priors %u", k,
				  r.rank_pmi[k], want_pmi[k]);
		uint64_t top1_pmi = 0;
		for (int k = 0; k < 6; k++)
			top1_pmi += want_pmi[k] == 1;
		CHECK(!r.pmi || r.top1_pmi == top1_pmi);
		CHECK_EQ_INT(r.n, 5);
		CHECK_EQ_INT(r.images, 6);
		CHECK_EQ_INT(r.unmatched, 0);
		CHECK(r.scored >= 6 && r.scored <= 30);
		CHECK(want_pruned ? r.scored < 30 : r.scored == 30);
		uint64_t top1 = 0;
		for (int k = 0; k < 6; k++) {
			CHECK_MSG(r.rank[k] == want[k], "slots %d image %d: rank %u, by mm_eval_score %u", slots, k,
				  r.rank[k], want[k]);
			top1 += want[k] == 1;
		}
		CHECK_EQ_INT(r.top1, top1);
		CHECK_EQ_INT(r.top5, 6 - (uint64_t)(want[0] > 5) - (want[1] > 5) - (want[2] > 5) - (want[3] > 5) -
					   (want[4] > 5) - (want[5] > 5));
		uint32_t s[6];
		memcpy(s, want, sizeof s);
		for (int i = 0; i < 6; i++) // sort for the median
			for (int j = i + 1; j < 6; j++)
				if (s[j] < s[i]) {
					uint32_t x = s[i];
					s[i] = s[j], s[j] = x;
				}
		CHECK(r.median_rank == 0.5 * (s[2] + s[3]));
		mm_eval_ret_free(&r);
	}
	// A list without some captions: their pairs are counted, not ranked.
	write_file("open2.txt", "fish\nbird\n");
	mm_eval_classes c2;
	CHECK_OK(mm_eval_classes_load(&c2, "open2.txt", tok, &cfg));
	mm_eval_ret r2;
	CHECK_OK(mm_eval_retrieve_captions(e, m, &c2, 4, 1, &r2));
	CHECK_EQ_INT(r2.images, 2);
	CHECK_EQ_INT(r2.unmatched, 4);
	mm_eval_ret_free(&r2);
	mm_eval_classes_free(&c2);
	mm_eval_close(e);
	mm_eval_classes_free(&c);
}

// The read level follows the model's noise shift: the same weights with S = 4 read images at
// --read-t 0.75 as the unshifted model does at 0.75 / (0.75 + 4 x 0.25), in classification's
// scores and in caption retrieval's ranks.
static void test_read_shift(mm_model *m)
{
	write_file("open.txt", "a dog\nfish\ncat\nhello, world\nbird\n");
	mm_eval_classes c;
	CHECK_OK(mm_eval_classes_load(&c, "open.txt", tok, &cfg));
	mm_config c4 = cfg;
	c4.noise_shift = 4;
	mm_model *m4;
	CHECK_OK(mm_model_new(&m4, &c4, B));
	memcpy(mm_model_params(m4), mm_model_params(m), mm_model_nparams(m) * sizeof(float));
	mm_eval_opts o;
	mm_eval_opts_default(&o);
	o.batch = B, o.read_t = 0.75f, o.seed = 9;
	mm_eval *e = open_eval(&o);
	o.read_t = 0.75f / (0.75f + 4 * 0.25f);
	mm_eval *el = open_eval(&o);
	int lab[6] = {2, 0, 4, 2, 0, 1}, moved = 0;
	uint32_t want[6];
	for (int k = 0; k < 6; k++) {
		double l4[5], l1[5], l75[5];
		CHECK_OK(mm_eval_score(e, m4, &c, image_of(&docs[k]), 1, (uint64_t)k, l4));
		CHECK_OK(mm_eval_score(el, m, &c, image_of(&docs[k]), 1, (uint64_t)k, l1));
		CHECK_OK(mm_eval_score(e, m, &c, image_of(&docs[k]), 1, (uint64_t)k, l75));
		CHECK_MSG(!memcmp(l4, l1, sizeof l4), "image %d: scores of the shifted model at 0.75 differ from the "
						      "plain model's at the shifted level", k);
		moved += memcmp(l4, l75, sizeof l4) != 0;
		want[k] = rank_by(l1, 5, lab[k]);
	}
	CHECK_EQ_INT(moved, 6);
	mm_eval_ret r;
	CHECK_OK(mm_eval_retrieve_captions(e, m4, &c, 4, 0, &r));
	for (int k = 0; k < 6; k++)
		CHECK_MSG(r.rank[k] == want[k], "image %d: rank %u on the shifted model, %u at the shifted level", k,
			  r.rank[k], want[k]);
	mm_eval_ret_free(&r);
	mm_eval_close(e);
	mm_eval_close(el);
	mm_model_free(m4);
	mm_eval_classes_free(&c);
}

// Thumbnails: cell means; text to image retrieval: the nearest reference image of each generated
// image, recomputed here by brute force from the images it returns.
static void test_t2i_nearest(mm_model *m)
{
	uint8_t px[NP * P], raster[NP * P];
	float th[MM_THUMB * MM_THUMB * 3];
	for (int k = 0; k < NP * P; k++)
		px[k] = 51;
	mm_eval_thumb(px, 8, 8, 1, 4, raster, th);
	for (int k = 0; k < MM_THUMB * MM_THUMB * 3; k++)
		CHECK(fabsf(th[k] - 0.2f) < 1e-6f);
	// Left half 0, right half 255 (patches 0 and 2 are the left ones): cells of columns < 8 are 0.
	for (int j = 0; j < NP; j++)
		for (int v = 0; v < P; v++)
			px[j * P + v] = (j % 2) ? 255 : 0;
	mm_eval_thumb(px, 8, 8, 1, 4, raster, th);
	CHECK(th[(3 * MM_THUMB + 2) * 3 + 1] == 0 && th[(3 * MM_THUMB + 12) * 3 + 2] == 1);
	write_file("t2i.txt", "cat\nbird\nhello, world\n");
	mm_eval_classes c;
	CHECK_OK(mm_eval_classes_load(&c, "t2i.txt", tok, &cfg));
	mm_eval_opts o;
	mm_eval_opts_default(&o);
	o.batch = B;
	mm_eval *e = open_eval(&o);
	mm_eval_gen *g;
	CHECK_OK(mm_eval_gen_new(&g, e, m, tok, &c, 2));
	mm_eval_t2i_opts to = {.per_class = 2, .seed = 4};
	mm_image_opts_default(&to.image);
	to.image.method = MM_ODE_EULER, to.image.steps = 3, to.image.cfg = 1.5f;
	mm_eval_nn r;
	uint8_t gen[3 * 2 * NP * P];
	CHECK_OK(mm_eval_t2i_nearest(e, g, &to, &r, gen));
	CHECK_EQ_INT(r.refs, 9); // six caption pairs, two images in doc 7, one in doc 8
	CHECK_EQ_INT(r.generated, 6);
	CHECK_EQ_INT(r.without_ref, 1); // "hello, world" is a text-only document
	CHECK(r.own[0] == 0 && r.own[1] == 2 && r.own[2] == -1);
	CHECK(r.top1 <= r.top5 && r.top5 <= 4);
	const mm_doc *imgdoc[9] = {&docs[0], &docs[1], &docs[2], &docs[3], &docs[4], &docs[5], NULL, NULL, &docs[8]};
	float ref[9][MM_THUMB * MM_THUMB * 3];
	for (int k = 0; k < 9; k++) {
		const uint8_t *rp = k == 6 || k == 7 ? docs[7].segs[k == 6 ? 1 : 3].pixels : image_of(imgdoc[k]);
		CHECK(!memcmp(r.ref_px + (size_t)k * NP * P, rp, NP * P));
		mm_eval_thumb(rp, 8, 8, 1, 4, raster, ref[k]);
	}
	uint64_t top1 = 0;
	for (int i = 0; i < 6; i++) {
		mm_eval_thumb(gen + (size_t)i * NP * P, 8, 8, 1, 4, raster, th);
		int best = 0;
		float bd = INFINITY;
		for (int k = 0; k < 9; k++) {
			float d = 0;
			for (int v = 0; v < MM_THUMB * MM_THUMB * 3; v++)
				d += (th[v] - ref[k][v]) * (th[v] - ref[k][v]);
			if (d < bd)
				bd = d, best = k;
		}
		CHECK_EQ_INT(r.nearest[i], best);
		top1 += (i / 2 == 0 && (best == 0 || best == 3)) || (i / 2 == 1 && best == 2);
	}
	CHECK_EQ_INT(r.top1, top1);
	mm_eval_nn_free(&r);
	mm_eval_gen_free(g);
	mm_eval_close(e);
	mm_eval_classes_free(&c);
}

// The terms without a model: limits, ordering, and the importance weights against the integral
// they stand for.
static void test_bpd_terms(void)
{
	CHECK(mm_bpd_prior(0.3, 0) == 0);
	CHECK(mm_bpd_prior(0.3, 1e-2) > mm_bpd_prior(0.3, 1e-3) && mm_bpd_prior(0.3, 1e-3) > mm_bpd_prior(0.3, 1e-4));
	CHECK(mm_bpd_prior(0.3, 1e-4) > 0 && mm_bpd_prior(1, 1e-3) > mm_bpd_prior(0, 1e-3));
	CHECK(fabs(mm_bpd_prior(0.5, 1e-3) - 1e-6 * (1 + 0.125)) < 1e-8);
	double r1 = mm_bpd_recon(0, 0.99), r2 = mm_bpd_recon(0, 0.999), r3 = mm_bpd_recon(0, 0.9999);
	CHECK(r1 > r2 && r2 > r3 && r3 >= 0 && r3 < 1e-12);
	CHECK(mm_bpd_recon(1, 0.99) < r1 && mm_bpd_recon(1, 0.99) > 0);
	// Monte Carlo of the interior term at t1 = 0.99: E[-log(Phi(a - e) - Phi(-a - e))].
	double a = (1.0 / 255) / (0.01 / 0.99), mc = 0;
	mm_rng g;
	mm_rng_seed(&g, 5, 0);
	enum { M = 200000 };
	for (int i = 0; i < M; i++) {
		double e = mm_rng_normal(&g);
		mc -= log(0.5 * erfc(-(a - e) / M_SQRT2) - 0.5 * erfc(-(-a - e) / M_SQRT2)) / M;
	}
	CHECK_MSG(fabs(mc - r1) < 0.01 * r1, "recon %.6f, Monte Carlo %.6f", r1, mc);
	// With g(t) = (1 - t)^2: 1/2 int SNR' g dt = int t / (1 - t) dt = [-t - log(1 - t)].
	double t0 = 1e-3, t1 = 0.999, sum = 0;
	for (int i = 0; i < M; i++) {
		float t;
		double w;
		mm_bpd_draw((i + 0.5) / M, t0, t1, &t, &w);
		sum += w * (1 - (double)t) * (1 - (double)t) / M;
	}
	double exact = (-t1 - log(1 - t1)) - (-t0 - log(1 - t0));
	CHECK_MSG(fabs(sum - exact) < 1e-3 * exact, "%.6f vs %.6f", sum, exact);
	float t;
	double w;
	mm_bpd_draw(0, t0, t1, &t, &w);
	CHECK(fabs(t - t0) < 1e-6);
	mm_bpd_draw(1, t0, t1, &t, &w);
	CHECK(fabs(t - t1) < 1e-6);
}

static void test_bpd(mm_model *m)
{
	mm_eval_opts o;
	mm_eval_opts_default(&o);
	o.batch = B, o.bpd_samples = 3, o.bpd_auto = 0;
	mm_eval *e = open_eval(&o);
	mm_eval_bpd b1, b2;
	CHECK_OK(mm_eval_bpd_run(e, m, &b1));
	CHECK_OK(mm_eval_bpd_run(e, m, &b2));
	CHECK(!memcmp(&b1, &b2, sizeof b1));
	CHECK_EQ_INT(b1.images, 9);
	CHECK_EQ_INT(b1.dims, 64);
	CHECK(isfinite(b1.total) && b1.total > 8 && b1.total_se > 0);
	CHECK(fabs(b1.total - (b1.prior + b1.diffusion + b1.recon)) < 1e-9 * b1.total);
	CHECK(b1.prior > 0 && b1.prior < 1e-5 && b1.recon > 0 && b1.recon < 0.05);
	// The curve: 0.8 .. 0.998 below t1 = 0.999, then t1; the last is the figure.
	CHECK_EQ_INT(b1.ncuts, 9);
	CHECK(b1.cut_t1[0] == 0.8 && b1.cut_t1[8] == 0.999 && b1.t1 == 0.999);
	CHECK(b1.cut_total[8] == b1.total && b1.cut_recon[8] == b1.recon);
	for (int c = 1; c < b1.ncuts; c++)
		CHECK(b1.cut_recon[c] < b1.cut_recon[c - 1]);
	mm_eval_close(e);
	// Automatic clean end: the lowest point of the same curve.
	o.bpd_auto = 1;
	e = open_eval(&o);
	CHECK_OK(mm_eval_bpd_run(e, m, &b2));
	int best = 0;
	for (int c = 0; c < b2.ncuts; c++) {
		CHECK(b2.cut_total[c] == b1.cut_total[c]);
		best = b2.cut_total[c] < b2.cut_total[best] ? c : best;
	}
	CHECK(b2.total == b2.cut_total[best] && b2.t1 == b2.cut_t1[best] && b2.recon == b2.cut_recon[best]);
	CHECK(fabs(b2.total - (b2.prior + b2.diffusion + b2.recon)) < 1e-9 * b2.total);
	mm_eval_close(e);
	o.bpd_auto = 0;
	// Another seed: other draws, a similar figure.
	o.seed = 2;
	e = open_eval(&o);
	CHECK_OK(mm_eval_bpd_run(e, m, &b2));
	CHECK(b2.total != b1.total && fabs(b2.total - b1.total) < 5 * (b1.total_se + b2.total_se));
	mm_eval_close(e);
	// Truncation: t0 -> 0 drives the prior to 0; the decoder term at t1 is as computed.
	o.bpd_t0 = 1e-5, o.bpd_t1 = 0.99;
	e = open_eval(&o);
	CHECK_OK(mm_eval_bpd_run(e, m, &b2));
	CHECK(b2.prior < b1.prior * 1e-3 && b2.recon > b1.recon);
	mm_eval_close(e);
	o.bpd_uncond = 1;
	e = open_eval(&o);
	CHECK_OK(mm_eval_bpd_run(e, m, &b2));
	CHECK(isfinite(b2.total) && b2.images == 9);
	mm_eval_close(e);
}

static void test_refusals(void)
{
	mm_eval_opts o;
	mm_eval_opts_default(&o);
	o.batch = B;
	mm_eval *e = NULL;
	const char *p;
	write_shard("hash.mms", 0x1234, 261, 4);
	p = "hash.mms";
	CHECK(mm_eval_open(&e, &p, 1, &cfg, tok, &o) == -MM_EMISMATCH && !e);
	CHECK(strstr(mm_errmsg(), "hash.mms") && strstr(mm_errmsg(), "tokenizer"));
	write_shard("vocab.mms", mm_tok_hash(tok), 300, 4);
	p = "vocab.mms";
	CHECK(mm_eval_open(&e, &p, 1, &cfg, tok, &o) == -MM_EMISMATCH);
	write_shard("geom.mms", mm_tok_hash(tok), 261, 2);
	p = "geom.mms";
	CHECK(mm_eval_open(&e, &p, 1, &cfg, tok, &o) == -MM_EMISMATCH);
	CHECK(strstr(mm_errmsg(), "geom.mms") && strstr(mm_errmsg(), "patches of 2"));
	// Text-only shards with a model that reads images: losses, and images scored all the same.
	mm_shard_info in = {.tokenizer_hash = mm_tok_hash(tok), .vocab_size = 261};
	mm_shard_writer *w;
	CHECK_OK(mm_shard_writer_open(&w, "text.mms", &in, 3));
	CHECK_OK(mm_shard_writer_add(w, &docs[6]));
	CHECK_OK(mm_shard_writer_close(w));
	p = "text.mms";
	CHECK_OK(mm_eval_open(&e, &p, 1, &cfg, tok, &o));
	mm_model *m;
	CHECK_OK(mm_model_new(&m, &cfg, B));
	mm_model_init(m, 1);
	mm_eval_losses L;
	CHECK_OK(mm_eval_losses_run(e, m, &L));
	CHECK(L.tokens == 13 && L.images == 0 && isnan(L.image_loss));
	write_file("two.txt", "x\ny\n");
	mm_eval_classes c2;
	CHECK_OK(mm_eval_classes_load(&c2, "two.txt", tok, &cfg));
	double ll[2];
	CHECK_OK(mm_eval_score(e, m, &c2, image_of(&docs[0]), 1, 0, ll));
	CHECK(isfinite(ll[0]) && isfinite(ll[1]) && ll[0] < 0);
	mm_eval_classes_free(&c2);
	mm_model_free(m);
	mm_eval_close(e);
	e = NULL;
	p = "missing.mms";
	CHECK(mm_eval_open(&e, &p, 1, &cfg, tok, &o) < 0);
	o.bpd_t1 = 1;
	CHECK(mm_eval_open(&e, &shard, 1, &cfg, tok, &o) == -MM_EINVAL);
	o.bpd_t1 = 0.999;
	for (int k = 0; k < 3; k++) {
		o.read_t = (double[]){0, 1.5, NAN}[k];
		CHECK(mm_eval_open(&e, &shard, 1, &cfg, tok, &o) == -MM_EINVAL && strstr(mm_errmsg(), "noise level"));
	}
	o.read_t = 0.9;
	for (int k = 0; k < 2; k++) {
		o.read_draws = (int[]){0, MM_EVAL_MAX_DRAWS + 1}[k];
		CHECK(mm_eval_open(&e, &shard, 1, &cfg, tok, &o) == -MM_EINVAL && strstr(mm_errmsg(), "times"));
	}
	o.read_draws = 1;

	mm_eval_classes c;
	const char *bad[][2] = {{"a\n\nb\n", "empty"}, {"a\nb\na\n", "repeats"}, {"a\n", "at least 2"},
				{"a\nthis caption is far too long for it\n", "tokens"}};
	for (int i = 0; i < 4; i++) {
		write_file("bad.txt", bad[i][0]);
		CHECK(mm_eval_classes_load(&c, "bad.txt", tok, &cfg) < 0);
		CHECK_MSG(strstr(mm_errmsg(), "bad.txt") && strstr(mm_errmsg(), bad[i][1]), "%s", mm_errmsg());
	}
	CHECK(mm_eval_classes_load(&c, "none.txt", tok, &cfg) < 0);
	mm_config text = cfg;
	text.img_h = text.img_w = text.img_c = text.patch = 0;
	write_file("ok.txt", "a\nb\n");
	CHECK(mm_eval_classes_load(&c, "ok.txt", tok, &text) == -MM_EINVAL);
}

// The loader features evaluation uses: a fixed noise level, a document cap, random access.
static void test_loader_extras(void)
{
	mm_loader_opts lo;
	mm_loader_opts_init(&lo);
	lo.batch = 2, lo.seq_len = T, lo.validation = 1, lo.max_docs = 3;
	mm_loader *l;
	CHECK_OK(mm_loader_open(&l, &shard, 1, &lo));
	mm_batch b;
	CHECK_OK(mm_loader_batch_alloc(l, &b));
	int seen = 0;
	while (mm_loader_next(l, &b) > 0)
		for (int i = 0; i < b.B * b.T; i++)
			seen += b.token[i] == MM_TOK_BOS;
	CHECK_EQ_INT(seen, 3);
	mm_doc d;
	mm_doc_init(&d);
	CHECK_OK(mm_loader_read(l, 7, &d));
	CHECK(d.n_segs == 4 && d.segs[0].n_tokens == 3 && !memcmp(d.segs[1].pixels, docs[7].segs[1].pixels, 64));
	CHECK(mm_loader_read(l, NDOCS, &d) == -MM_EINVAL);
	mm_doc_free(&d);
	mm_batch_free(&b);
	mm_loader_close(l);
	lo.val_t = 1.5;
	CHECK(mm_loader_open(&l, &shard, 1, &lo) == -MM_EINVAL);
}

int main(void)
{
	CHECK_OK(mm_tok_new_bytes(&tok));
	make_docs();
	write_shard(shard, mm_tok_hash(tok), 261, 4);
	mm_model *m, *m1;
	CHECK_OK(mm_model_new(&m, &cfg, B));
	CHECK_OK(mm_model_new(&m1, &cfg, 1));
	mm_model_init(m, 7);
	// Larger output weights than the initialisation's, so that images and text matter.
	float *w = mm_model_params(m);
	for (size_t i = 0; i < mm_model_nparams(m); i++)
		w[i] *= 10;
	memcpy(mm_model_params(m1), w, mm_model_nparams(m) * sizeof(float));
	test_loader_extras();
	test_losses(m, m1);
	test_classes(m, m1);
	// An untrained model scores every caption whole (no first token falls below a whole own
	// caption); tests/cli/eval_retrieval.sh checks the ranks of a trained one, which leaves most out.
	test_retrieval(m, 0);
	test_read_shift(m);
	test_t2i_nearest(m);
	test_bpd_terms();
	test_bpd(m);
	test_refusals();
	mm_model_free(m);
	mm_model_free(m1);
	for (int i = 0; i < NDOCS; i++)
		mm_doc_free(&docs[i]);
	mm_tok_free(tok);
	return check_done();
}
