// The model: tensor table, initialisation, batch validation, the mask's consequences, run-to-run
// and thread-count determinism; every parameter's gradient against central differences with the
// whole model in double; the float model against the double one; and, with the PyTorch
// fixtures of tests/ref, outputs, losses, gradients and 10 AdamW steps against the reference.
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REAL double
#define KFN(name) mmd_##name
#define MM_GEMM cblas_dgemm
#include "kernels_typed_priv.h"
#include "model_typed_priv.h"

#include "check.h"
#include "mm.h"
#include "optim.h"
#include "refio.h"

// Worst |a - b| over max |b| (per tensor): the error measure used throughout.
static double relerr_fd(const float *a, const double *b, size_t n)
{
	double e = 0, m = 1e-30;
	for (size_t i = 0; i < n; i++) {
		e = fmax(e, fabs(a[i] - b[i]));
		m = fmax(m, fabs(b[i]));
	}
	return e / m;
}

// Tiny configurations: images with a bottleneck and qk-norm; plain patch embedding; text only.
static const mm_config cfg_img = {.dim = 16, .layers = 2, .heads = 2, .mlp = 24, .vocab = 13,
				  .img_h = 4, .img_w = 4, .img_c = 1, .patch = 2, .bottleneck = 3,
				  .qk_norm = 1, .seq_len = 18, .image_weight = 5};
static const mm_config cfg_rgb = {.dim = 12, .layers = 1, .heads = 3, .mlp = 20, .vocab = 9,
				  .img_h = 2, .img_w = 4, .img_c = 3, .patch = 2, .bottleneck = 0,
				  .qk_norm = 0, .seq_len = 14, .image_weight = 2};
static const mm_config cfg_text = {.dim = 8, .layers = 2, .heads = 1, .mlp = 12, .vocab = 7,
				   .qk_norm = 1, .seq_len = 10, .image_weight = 5};

// Fills row `row` from a layout: 't' text token, 'i' an image (all its patches), '|' next
// document, '.' padding. An image's values x are uniform in [-1, 1], all drawn before its eps.
static void fill_row(mm_batch *b, const mm_config *c, int row, const char *spec, mm_rng *r)
{
	int T = b->T, P = MM_PDIM(c), NP = MM_NPATCH(c), at = row * T, end = at + T, d = 0, p = 0, im = 0;
	mm_batch_clear_row(b, row, P);
	for (int n = at; n < end; n++) // MM_TOK_PAD is beyond these vocabularies: padding's token
		b->token[n] = (row & 1) ? -1 : 0; // is none in odd rows, token 0 in even ones
	for (; *spec && at < end; spec++) {
		if (*spec == '|') {
			d++, p = 0;
		} else if (*spec == '.') {
			at++;
		} else if (*spec == 't') {
			mm_batch_put_text(b, at++, (int32_t)mm_rng_below(r, (uint64_t)c->vocab), d, p++);
		} else if (*spec == 'i') {
			float t = (float)mm_rng_uniform(r);
			if (row == 1 && im == 0)
				t = 0.98f; // s = max(1 - t, MM_T_FLOOR) at its floor
			int n = NP < end - at ? NP : end - at;
			mm_batch_put_patches(b, at, n, d, p, im++, t);
			float *x = b->x + (size_t)at * P;
			for (int v = 0; v < n * P; v++)
				x[v] = (float)(2 * mm_rng_uniform(r) - 1);
			mm_batch_noise_image(b->z + (size_t)at * P, x, (size_t)n * P, t, r);
			at += n, p += n;
		}
	}
}

// Targets follow the spec: next token of the same document, from text.
static void make_batch(mm_batch *b, const mm_config *c, int B, const char *const *rows, uint64_t seed)
{
	CHECK_OK(mm_batch_alloc(b, B, c->seq_len, MM_PDIM(c)));
	mm_rng r;
	mm_rng_seed(&r, seed, 1);
	for (int i = 0; i < B; i++)
		fill_row(b, c, i, rows[i], &r);
	mm_batch_set_targets(b);
}

static const char *const rows_img[] = {"tttittt|ttt.", "itt|tt|titit", "ttt|itt......"};
static const char *const rows_text[] = {"ttttt|ttt.", "tt|ttttttt"};

// Random weights, larger than the initial ones so that every nonlinearity is exercised.
static void randomize(mm_model *m, uint64_t seed)
{
	mm_rng r;
	mm_rng_seed(&r, seed, 2);
	float *p = mm_model_params(m);
	for (int i = 0; i < mm_model_ntensors(m); i++) {
		const mm_tensor *t = &mm_model_tensors(m)[i];
		int norm = strstr(t->name, "norm") != NULL;
		for (size_t j = 0; j < t->size; j++)
			p[t->offset + j] = (float)((norm ? 1 : 0) + (t->kind == 'v' ? 0.3 : 0.25) *
								mm_rng_normal(&r));
	}
}

// The row blocks of a tensor that the model's earlier layout kept as separate tensors: wqkv
// (q, k, v) and w13 (gate, up). Checks measure each block against its own largest value.
static size_t row_blocks(const char *name)
{
	size_t n = strlen(name);
	return n >= 4 && !strcmp(name + n - 4, "wqkv") ? 3 : n >= 3 && !strcmp(name + n - 3, "w13") ? 2 : 1;
}

static void test_table(void)
{
	mm_model *m;
	CHECK_OK(mm_model_new(&m, &cfg_img, 3));
	size_t off = 0;
	int nlayer = 0;
	const mm_tensor *t0;
	for (int i = 0; i < mm_model_ntensors(m); i++) {
		const mm_tensor *t = &mm_model_tensors(m)[i];
		CHECK_EQ_INT(t->offset, off);
		CHECK_EQ_INT(t->size, (size_t)t->rows * t->cols);
		CHECK(mm_model_find(m, t->name) == t);
		off += t->size;
		nlayer += t->layer >= 0;
	}
	CHECK_EQ_INT(off, mm_model_nparams(m));
	CHECK_EQ_INT(nlayer, 2 * 8); // 8 per-layer tensors with qk-norm
	t0 = mm_model_find(m, "layers.1.wqkv");
	CHECK(t0 && t0->rows == 3 * 16 && t0->cols == 16 && t0->kind == 'm' && t0->layer == 1);
	t0 = mm_model_find(m, "layers.0.w13");
	CHECK(t0 && t0->rows == 2 * 24 && t0->cols == 16 && t0->kind == 'm' && t0->layer == 0);
	CHECK(mm_model_find(m, "layers.0.wq") == NULL && mm_model_find(m, "layers.0.w1") == NULL);
	const mm_tensor *t = mm_model_find(m, "layers.1.w2");
	CHECK(t && t->rows == 16 && t->cols == 24 && t->kind == 'm' && t->layer == 1);
	t = mm_model_find(m, "layers.0.q_norm");
	CHECK(t && t->rows == 8 && t->cols == 1 && t->kind == 'v');
	t = mm_model_find(m, "pe_w1");
	CHECK(t && t->rows == 3 && t->cols == 4);
	CHECK(mm_model_find(m, "pe_w") == NULL);   // absent with a bottleneck
	CHECK(mm_model_find(m, "layers.2.wqkv") == NULL);
	CHECK(!strcmp(mm_model_tensors(m)[0].name, "tok_emb"));
	CHECK(!strcmp(mm_model_tensors(m)[mm_model_ntensors(m) - 1].name, "ph_b"));
	mm_model_free(m);

	CHECK_OK(mm_model_new(&m, &cfg_text, 2));
	CHECK(mm_model_find(m, "pos2d") == NULL && mm_model_find(m, "ph_w") == NULL);
	CHECK(mm_model_find(m, "lm_head") != NULL);
	mm_model_free(m);

	mm_config bad = cfg_img;
	bad.heads = 3; // 16 / 3
	CHECK_EQ_INT(mm_model_new(&m, &bad, 1), -MM_EINVAL);
	CHECK(m == NULL);
	bad = cfg_img, bad.heads = 16; // head size 1: rotary needs pairs
	CHECK_EQ_INT(mm_config_check(&bad), -MM_EINVAL);
	bad = cfg_img, bad.img_w = 5;
	CHECK_EQ_INT(mm_config_check(&bad), -MM_EINVAL);
	bad = cfg_text, bad.bottleneck = 4;
	CHECK_EQ_INT(mm_config_check(&bad), -MM_EINVAL);
	CHECK_EQ_INT(mm_model_new(&m, &cfg_img, 0), -MM_EINVAL);
	CHECK_EQ_INT(mm_model_new(&m, &cfg_img, 1 << 30), -MM_EINVAL);
}

static void test_init(void)
{
	mm_config c = cfg_img;
	c.dim = 64, c.mlp = 128, c.heads = 4;
	mm_model *a, *b;
	CHECK_OK(mm_model_new(&a, &c, 1));
	CHECK_OK(mm_model_new(&b, &c, 1));
	mm_model_init(a, 5);
	mm_model_init(b, 5);
	CHECK(!memcmp(mm_model_params(a), mm_model_params(b), mm_model_nparams(a) * sizeof(float)));
	mm_model_init(b, 6);
	CHECK(memcmp(mm_model_params(a), mm_model_params(b), mm_model_nparams(a) * sizeof(float)));
	const char *names[] = {"layers.0.wqkv", "layers.1.w13", "layers.1.w2", "tok_emb"};
	double want[] = {0.02, 0.02, 0.02 / 2, 0.02}; // wo, w2 scaled by 1/sqrt(2 L) = 1/2
	for (int k = 0; k < 4; k++) {
		const mm_tensor *t = mm_model_find(a, names[k]);
		double s = 0, mean = 0;
		for (size_t j = 0; j < t->size; j++) {
			double v = mm_model_params(a)[t->offset + j];
			s += v * v, mean += v;
		}
		double sd = sqrt(s / t->size);
		CHECK_MSG(fabs(sd / want[k] - 1) < 0.1, "%s: std %g, want %g", names[k], sd, want[k]);
		CHECK(fabs(mean / t->size) < 0.2 * want[k]);
	}
	const mm_tensor *t = mm_model_find(a, "layers.1.k_norm"), *u = mm_model_find(a, "ph_b");
	CHECK(mm_model_params(a)[t->offset] == 1 && mm_model_params(a)[t->offset + t->size - 1] == 1);
	CHECK(mm_model_params(a)[u->offset] == 0);
	mm_model_free(a);
	mm_model_free(b);
}

// Version 1's layout had wq, wk, wv (and w1, w3) each as one block of all layers: its value at
// (tensor j, layer l, element e) moves to row block j of layer l's wqkv (w13), element e.
static void test_v1_layout(void)
{
	mm_config c = cfg_img;
	c.layers = 3;
	mm_model *m;
	CHECK_OK(mm_model_new(&m, &c, 1));
	size_t np = mm_model_nparams(m), L = 3, DD = 16 * 16, FD = 24 * 16;
	CHECK_EQ_INT(mm_config_nparams(&c), np);
	float *p = mm_model_params(m);
	for (size_t i = 0; i < np; i++)
		p[i] = (float)i;
	mm_params_from_v1(&c, p);
	size_t q0 = mm_model_find(m, "layers.0.wqkv")->offset, g0 = mm_model_find(m, "layers.0.w13")->offset;
	int bad = 0;
	for (size_t l = 0; l < L; l++) {
		char nq[32], ng[32];
		snprintf(nq, sizeof nq, "layers.%zu.wqkv", l);
		snprintf(ng, sizeof ng, "layers.%zu.w13", l);
		const float *qkv = p + mm_model_find(m, nq)->offset, *g13 = p + mm_model_find(m, ng)->offset;
		for (size_t j = 0; j < 3; j++)
			for (size_t e = 0; e < DD; e++)
				bad += qkv[j * DD + e] != (float)(q0 + (j * L + l) * DD + e);
		for (size_t j = 0; j < 2; j++)
			for (size_t e = 0; e < FD; e++)
				bad += g13[j * FD + e] != (float)(g0 + (j * L + l) * FD + e);
	}
	CHECK_EQ_INT(bad, 0);
	// everything else stays
	const mm_tensor *wo = mm_model_find(m, "layers.2.wo"), *w2 = mm_model_find(m, "layers.0.w2");
	CHECK(p[wo->offset] == (float)wo->offset && p[w2->offset + 5] == (float)(w2->offset + 5));
	CHECK(p[np - 1] == (float)(np - 1) && p[0] == 0);
	mm_model_free(m);
}

static void test_validation(void)
{
	mm_model *m;
	CHECK_OK(mm_model_new(&m, &cfg_img, 3));
	mm_batch tb;
	make_batch(&tb, &cfg_img, 3, rows_img, 1);
	mm_batch *b = &tb;
	float loss;
	CHECK_OK(mm_model_forward(m, b, &loss));
	CHECK(isfinite(loss));
	int n0 = 2; // a text position of row 0
	struct {
		int32_t *field;
		int pos;
		int32_t value;
	} bad[] = {
		{b->token, n0, 13}, {b->token, n0, -2},    {b->target, n0, 13},
		{b->patch, 3, 4},   {b->patch, 3, -1},     {b->target, 3, 5}, // image position 3
	};
	for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
		int32_t save = bad[k].field[bad[k].pos];
		bad[k].field[bad[k].pos] = bad[k].value;
		CHECK_EQ_INT(mm_model_forward(m, b, &loss), -MM_EINVAL);
		CHECK(strstr(mm_errmsg(), "row 0 position") != NULL);
		bad[k].field[bad[k].pos] = save;
	}
	CHECK_EQ_INT(mm_model_backward(m), -MM_EINVAL); // the last forward failed
	b->t[3] = 1.5f;
	CHECK_EQ_INT(mm_model_forward(m, b, &loss), -MM_EINVAL);
	b->t[3] = NAN;
	CHECK_EQ_INT(mm_model_forward(m, b, &loss), -MM_EINVAL);
	b->t[3] = 0.5f;
	b->B = 4;
	CHECK_EQ_INT(mm_model_forward(m, b, &loss), -MM_EINVAL);
	b->B = 3, b->T = 19;
	CHECK_EQ_INT(mm_model_forward(m, b, &loss), -MM_EINVAL);
	b->T = 18;
	float *z = b->z;
	b->z = NULL;
	CHECK_EQ_INT(mm_model_forward(m, b, &loss), -MM_EINVAL);
	b->z = z;
	b->T = 12; // shorter rows than the model's longest are fine
	CHECK_OK(mm_model_forward(m, b, &loss));
	CHECK_OK(mm_model_backward(m));
	mm_model_free(m);

	// images in a text-only model
	CHECK_OK(mm_model_new(&m, &cfg_text, 3));
	b->T = 10;
	CHECK_EQ_INT(mm_model_forward(m, b, &loss), -MM_EINVAL);
	mm_model_free(m);
	mm_batch_free(&tb);
}

// Changing one input changes exactly the outputs that the mask lets see it.
static void test_mask(void)
{
	mm_model *m;
	CHECK_OK(mm_model_new(&m, &cfg_img, 3));
	randomize(m, 3);
	mm_batch tb;
	make_batch(&tb, &cfg_img, 3, rows_img, 2);
	mm_batch *b = &tb;
	int T = b->T, P = MM_PDIM(&cfg_img);
	// row 0 = "tttittt|ttt.": text 0-2, image 3-6, text 7-9, document 1 at 10-12, padding 13-17
	int nl, nx;
	const int32_t *rl, *rx;
	float loss;
	CHECK_OK(mm_model_forward(m, b, &loss));
	const float *lg = mm_model_logits(m, &nl, &rl), *xp = mm_model_x_pred(m, &nx, &rx);
	size_t V = cfg_img.vocab;
	float *lg0 = malloc(nl * V * sizeof *lg0), *xp0 = malloc((size_t)nx * P * sizeof *xp0);
	memcpy(lg0, lg, nl * V * sizeof *lg0);
	memcpy(xp0, xp, (size_t)nx * P * sizeof *xp0);
	// which (row-0) outputs changed after a change at position `at` of row 0
	struct {
		int at;
		const char *what;
		const char *changed; // over positions 0..12 of row 0: '1' = output must change
	} cases[] = {
		{8, "a later text token", "0000000010000"}, // position 7 does not see it
		{11, "another document", "0000000000010"},
		{6, "the last patch of an image", "0001111111000"}, // the image sees it whole
		{14, "padding", "0000000000000"},
	};
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		int at = cases[k].at;
		if (b->img[at] >= 0)
			b->z[(size_t)at * P] += 0.5f;
		else
			b->token[at] = (b->token[at] + 1) % 13;
		CHECK_OK(mm_model_forward(m, b, &loss));
		for (int i = 0; i < nl; i++) {
			if (rl[i] >= 13)
				continue;
			int same = !memcmp(lg + i * V, lg0 + i * V, V * sizeof *lg);
			int want = cases[k].changed[rl[i]] == '1';
			CHECK_MSG(same == !want, "%s at %d: logits at %d %s", cases[k].what, at, rl[i],
				  same ? "unchanged" : "changed");
		}
		for (int i = 0; i < nx; i++) {
			if (rx[i] >= T)
				continue;
			int same = !memcmp(xp + i * P, xp0 + i * P, P * sizeof *xp);
			int want = cases[k].changed[rx[i]] == '1';
			CHECK_MSG(same == !want, "%s at %d: x_pred at %d %s", cases[k].what, at, rx[i],
				  same ? "unchanged" : "changed");
		}
		// rows 1 and 2 never change
		for (int i = 0; i < nl; i++)
			if (rl[i] >= T)
				CHECK(!memcmp(lg + i * V, lg0 + i * V, V * sizeof *lg));
		if (b->img[at] >= 0)
			b->z[(size_t)at * P] -= 0.5f;
		else
			b->token[at] = (b->token[at] + 12) % 13;
	}
	free(lg0), free(xp0);
	mm_batch_free(&tb);
	mm_model_free(m);
}

// Big enough for the matmuls to be split across threads: 4 rows of 48 positions, dim 128.
static const mm_config cfg_mid = {.dim = 128, .layers = 2, .heads = 4, .mlp = 256, .vocab = 300,
				  .img_h = 8, .img_w = 8, .img_c = 1, .patch = 2, .bottleneck = 0,
				  .qk_norm = 1, .seq_len = 48, .image_weight = 5};
static const char *const rows_mid[] = {"ttttittttttttt|tttttttttttttt", "itttttttttt|ttttttttttttttt..",
				       "tttttttttttttttttttttt|ttttittttt", "tt|tt|tt|ttttitt|tttt"};

static void test_determinism(void)
{
	mm_model *m;
	CHECK_OK(mm_model_new(&m, &cfg_mid, 4));
	randomize(m, 4);
	mm_batch tb;
	make_batch(&tb, &cfg_mid, 4, rows_mid, 3);
	size_t n = mm_model_nparams(m);
	float *g[3], loss[3];
	for (int k = 0; k < 3; k++) {
		omp_set_num_threads(k == 2 ? 1 : 2);
		mm_model_zero_grad(m);
		CHECK_OK(mm_model_forward(m, &tb, &loss[k]));
		CHECK_OK(mm_model_backward(m));
		g[k] = malloc(n * sizeof(float));
		memcpy(g[k], mm_model_grads(m), n * sizeof(float));
	}
	omp_set_num_threads(2);
	CHECK(loss[0] == loss[1] && loss[0] == loss[2]);
	CHECK(!memcmp(g[0], g[1], n * sizeof(float)));
	CHECK_MSG(!memcmp(g[0], g[2], n * sizeof(float)), "gradients differ between 1 and 2 threads");
	// backward accumulates
	CHECK_OK(mm_model_backward(m));
	CHECK(mm_model_grads(m)[7] == 2 * g[2][7]);
	for (int k = 0; k < 3; k++)
		free(g[k]);
	mm_batch_free(&tb);
	mm_model_free(m);
}

// Every parameter's gradient against central differences, with the model in double; then the
// float model against the double one.
static void test_gradcheck(const char *what, const mm_config *c, const char *const *rows, int B)
{
	printf("%s: whole-model gradient check in double\n", what);
	mm_model *m;
	CHECK_OK(mm_model_new(&m, c, B));
	randomize(m, 5);
	mm_batch tb;
	make_batch(&tb, c, B, rows, 6);
	size_t np = mm_model_nparams(m);
	double *P = malloc(np * sizeof *P), *G = calloc(np, sizeof *G);
	double *A = calloc(m->nacts, sizeof *A);
	for (size_t i = 0; i < np; i++)
		P[i] = mm_model_params(m)[i];
	CHECK_OK(mm_model_prepare(m, &tb));
	CHECK(m->nt > 0 && (m->ni > 0 || !MM_PDIM(c)));
	mmd_model_forward_pass(m, P, A, &tb);
	double loss = m->loss, lt = m->loss_text, li = m->loss_image;
	mmd_model_backward_pass(m, P, G, A);
	// Up to 48 values of every tensor (all of the small ones); one thread, as the tiny
	// shapes only pay for waking the others.
	const double h = 1e-5;
	double worst = 0;
	mm_rng r;
	mm_rng_seed(&r, 9, 0);
	omp_set_num_threads(1);
	for (int i = 0; i < mm_model_ntensors(m); i++)
	for (size_t part = 0, nparts = row_blocks(mm_model_tensors(m)[i].name); part < nparts; part++) {
		// wqkv and w13 by their row blocks, each checked as the separate tensor it was
		mm_tensor tp = mm_model_tensors(m)[i], *t = &tp;
		t->size /= nparts, t->offset += part * t->size;
		char label[64];
		snprintf(label, sizeof label, nparts > 1 ? "%s/%zu" : "%s", t->name, part);
		double e = 0, mx = 1e-30;
		for (size_t j = t->offset; j < t->offset + t->size; j++)
			mx = fmax(mx, fabs(G[j]));
		size_t ns = t->size < 48 ? t->size : 48;
		for (size_t k = 0; k < ns; k++) {
			size_t j = t->offset + (ns == t->size ? k : mm_rng_below(&r, t->size));
			double save = P[j];
			P[j] = save + h;
			mmd_model_forward_pass(m, P, A, &tb);
			double fp = m->loss;
			P[j] = save - h;
			mmd_model_forward_pass(m, P, A, &tb);
			double fm = m->loss;
			P[j] = save;
			e = fmax(e, fabs((fp - fm) / (2 * h) - G[j]));
		}
		printf("  %-20s %2zu of %4zu values  max |grad| %.2e  worst rel err %.1e\n", label,
		       ns, t->size, mx, e / mx);
		CHECK_MSG(e / mx < 1e-6, "%s: gradient off by %g", label, e / mx);
		CHECK_MSG(mx > 1e-8, "%s: no gradient", label);
		worst = fmax(worst, e / mx);
	}
	printf("  worst over all tensors %.1e\n", worst);
	omp_set_num_threads(2);

	// the float model on the same weights
	float loss_f, lt_f, li_f;
	mm_model_zero_grad(m);
	CHECK_OK(mm_model_forward(m, &tb, &loss_f));
	mm_model_losses(m, &lt_f, &li_f);
	double *A2 = calloc(m->nacts, sizeof *A2);
	mmd_model_forward_pass(m, P, A2, &tb); // outputs of the double model, for comparison
	CHECK_OK(mm_model_backward(m));
	printf("  float vs double: loss %.7g / %.7g, text %.7g / %.7g, image %.7g / %.7g\n", loss_f,
	       loss, lt_f, lt, li_f, li);
	CHECK(fabs(loss_f - loss) < 1e-5 * fabs(loss));
	CHECK(fabs(lt_f - lt) < 1e-5 * fabs(lt) && fabs(li_f - li) <= 1e-5 * fabs(li));
	int nl, nx;
	const float *lg = mm_model_logits(m, &nl, NULL), *xp = mm_model_x_pred(m, &nx, NULL);
	double e = relerr_fd(lg, A2 + m->al.off.logits, (size_t)nl * c->vocab);
	CHECK_MSG(e < 1e-5, "logits: float vs double %g", e);
	double ex = nx ? relerr_fd(xp, A2 + m->al.off.xpred, (size_t)nx * MM_PDIM(c)) : 0;
	CHECK_MSG(ex < 1e-5, "x_pred: float vs double %g", ex);
	double eg = 0;
	for (int i = 0; i < mm_model_ntensors(m); i++) {
		const mm_tensor *t = &mm_model_tensors(m)[i];
		double et = relerr_fd(mm_model_grads(m) + t->offset, G + t->offset, t->size);
		CHECK_MSG(et < 1e-4, "%s: float gradient vs double %g", t->name, et);
		eg = fmax(eg, et);
	}
	printf("  float vs double: logits %.1e, x_pred %.1e, worst gradient tensor %.1e\n", e, ex, eg);
	free(P), free(G), free(A), free(A2);
	mm_batch_free(&tb);
	mm_model_free(m);
}

static int ref_shape_ok(const ref_file *f, const char *name, const mm_tensor *t)
{
	return t->cols == 1 ? ref_f32(f, name, 1, t->rows) != NULL
			    : ref_f32(f, name, 2, t->rows, t->cols) != NULL;
}

// Worst relative error of every tensor of the table against the fixture's prefix.<name>.
static double ref_compare_tensors(const ref_file *f, const mm_model *m, const float *vals,
				  const char *prefix, double tol)
{
	double worst = 0;
	for (int i = 0; i < mm_model_ntensors(m); i++) {
		const mm_tensor *t = &mm_model_tensors(m)[i];
		char name[64];
		snprintf(name, sizeof name, "%s%s", prefix, t->name);
		if (!ref_shape_ok(f, name, t)) {
			CHECK_MSG(0, "%s", mm_errmsg());
			continue;
		}
		const float *r = ref_find(f, name)->data;
		// wqkv and w13 by their row blocks (q, k, v; gate, up), each measured against its own
		// largest value, as when they were separate tensors
		size_t parts = row_blocks(name), n = t->size / parts;
		double worst_t = 0;
		for (size_t p = 0; p < parts; p++) {
			double e = 0, mx = 1e-30;
			for (size_t j = p * n; j < (p + 1) * n; j++) {
				e = fmax(e, fabs(vals[t->offset + j] - r[j]));
				mx = fmax(mx, fabs(r[j]));
			}
			CHECK_MSG(e / mx < tol, "%s (row block %zu): %g", name, p, e / mx);
			worst_t = fmax(worst_t, e / mx);
		}
		printf("  %-28s worst rel err %.1e\n", name, worst_t);
		worst = fmax(worst, worst_t);
	}
	return worst;
}

// 10 AdamW steps on the fixture's batch from its initial weights: losses, gradient norms and
// the final weights against the reference.
static void ref_adam(const ref_file *f, mm_model *m, const mm_batch *b)
{
	float loss;
	const float *hp = ref_f32(f, "adam.hparams", 1, 6), *al = ref_f32(f, "adam.loss", 1, 10);
	const float *an = ref_f32(f, "adam.grad_norm", 1, 10);
	CHECK(hp && al && an);
	if (!hp || !al || !an)
		return;
	mm_adamw_hp h = {.lr = hp[0], .beta1 = hp[1], .beta2 = hp[2], .eps = hp[3], .weight_decay = hp[4]};
	mm_optim *o;
	CHECK_OK(mm_optim_new(&o, mm_model_nparams(m)));
	double el = 0, en = 0;
	for (int s = 0; s < 10; s++) {
		mm_model_zero_grad(m);
		CHECK_OK(mm_model_forward(m, b, &loss));
		CHECK_OK(mm_model_backward(m));
		double norm = mm_optim_grad_norm(mm_model_grads(m), mm_model_nparams(m));
		mm_optim_step(o, mm_model_params(m), mm_model_grads(m), mm_model_tensors(m),
			      mm_model_ntensors(m), &h, mm_optim_clip_scale(norm, hp[5]));
		printf("  adam step %2d: loss %.7g / %.7g  grad norm %.6g / %.6g\n", s + 1, loss, al[s],
		       norm, an[s]);
		el = fmax(el, fabs(loss - al[s]) / fabs(al[s]));
		en = fmax(en, fabs(norm - an[s]) / fabs(an[s]));
	}
	printf("  adam: losses worst rel err %.1e, grad norms %.1e\n", el, en);
	CHECK_MSG(el < 1e-4, "AdamW losses: %g", el);
	CHECK_MSG(en < 1e-4, "AdamW gradient norms: %g", en);
	// Looser for the weights themselves: Adam moves a weight whose gradient is near 0 by about
	// lr per step whatever its size, so float rounding there shows at ~1e-4 of the tensor.
	double ep = ref_compare_tensors(f, m, mm_model_params(m), "adam.final.", 2e-3);
	printf("  parameters after 10 steps: worst tensor %.1e\n", ep);
	mm_optim_free(o);
}

static void test_reference(const char *file)
{
	char path[1024];
	const char *dir = getenv("T") ? getenv("T") : "tests";
	snprintf(path, sizeof path, "%s/ref/%s", dir, file);
	printf("%s: against the PyTorch reference\n", path);
	ref_file f;
	mm_config c;
	mm_batch b;
	int B, failed = check_failures;
	CHECK_OK(ref_load(&f, path));
	if (check_failures > failed)
		return;
	CHECK_OK(ref_config(&f, &c, &B));
	CHECK_OK(ref_batch(&f, &c, B, &b));
	mm_model *m;
	CHECK_OK(mm_model_new(&m, &c, B));
	if (check_failures > failed)
		return;
	int T = c.seq_len, V = c.vocab, P = MM_PDIM(&c);
	// weights: every tensor of ours in the fixture, and no parameter of the fixture missing here
	int nref = 0;
	for (int i = 0; i < f.count; i++) {
		const char *n = f.t[i].name;
		if (strncmp(n, "batch.", 6) && strncmp(n, "out.", 4) && strncmp(n, "grad.", 5) &&
		    strncmp(n, "adam.", 5) && strcmp(n, "config") && strcmp(n, "image_weight") &&
		    strcmp(n, "batch_size"))
			nref++;
	}
	CHECK_EQ_INT(nref, mm_model_ntensors(m));
	for (int i = 0; i < mm_model_ntensors(m); i++) {
		const mm_tensor *t = &mm_model_tensors(m)[i];
		CHECK_MSG(ref_shape_ok(&f, t->name, t), "%s", mm_errmsg());
		if (ref_find(&f, t->name))
			memcpy(mm_model_params(m) + t->offset, ref_find(&f, t->name)->data, t->size * 4);
	}
	if (check_failures > failed)
		return;

	float loss, lt, li;
	CHECK_OK(mm_model_forward(m, &b, &loss));
	mm_model_losses(m, &lt, &li);
	const float *rl = ref_f32(&f, "out.loss", 1, 1), *rlt = ref_f32(&f, "out.loss_text", 1, 1);
	const float *rli = ref_f32(&f, "out.loss_image", 1, 1);
	const float *rlog = ref_f32(&f, "out.logits", 3, B, T, V);
	const float *rxp = ref_f32(&f, "out.x_pred", 3, B, T, P);
	CHECK(rl && rlt && rli && rlog && rxp);
	if (check_failures > failed)
		return;
	printf("  loss %.7g / %.7g  text %.7g / %.7g  image %.7g / %.7g\n", loss, *rl, lt, *rlt, li,
	       *rli);
	CHECK(fabs(loss - *rl) < 1e-4 * fabs(*rl));
	CHECK(fabs(lt - *rlt) < 1e-4 * fabs(*rlt));
	CHECK(fabs(li - *rli) < 1e-4 * fabs(*rli));
	int nl, nx;
	const int32_t *rows;
	const float *lg = mm_model_logits(m, &nl, &rows);
	double e = 0, mx = 1e-30;
	for (int i = 0; i < nl; i++)
		for (int v = 0; v < V; v++) {
			float r = rlog[(size_t)rows[i] * V + v];
			e = fmax(e, fabs(lg[(size_t)i * V + v] - r));
			mx = fmax(mx, fabs(r));
		}
	printf("  out.logits (%d target rows)      worst rel err %.1e\n", nl, e / mx);
	CHECK_MSG(e / mx < 1e-4, "logits: %g", e / mx);
	const float *xp = mm_model_x_pred(m, &nx, &rows);
	e = 0, mx = 1e-30;
	for (int i = 0; i < nx; i++)
		for (int p = 0; p < P; p++) {
			float r = rxp[(size_t)rows[i] * P + p];
			e = fmax(e, fabs(xp[(size_t)i * P + p] - r));
			mx = fmax(mx, fabs(r));
		}
	printf("  out.x_pred (%d image rows)       worst rel err %.1e\n", nx, e / mx);
	CHECK_MSG(e / mx < 1e-4, "x_pred: %g", e / mx);

	mm_model_zero_grad(m);
	CHECK_OK(mm_model_backward(m));
	double eg = ref_compare_tensors(&f, m, mm_model_grads(m), "grad.", 1e-4);
	printf("  gradients: worst tensor %.1e\n", eg);

	ref_adam(&f, m, &b);
	mm_model_free(m);
	ref_free(&f);
}

int main(void)
{
	omp_set_num_threads(2);
	test_table();
	test_init();
	test_v1_layout();
	test_validation();
	test_mask();
	test_determinism();
	test_gradcheck("images, bottleneck, qk-norm", &cfg_img, rows_img, 3);
	static const char *const rows_rgb[] = {"tti|ttt", "it|tit"};
	test_gradcheck("images, rgb, plain patch embedding", &cfg_rgb, rows_rgb, 2);
	test_gradcheck("text only", &cfg_text, rows_text, 2);
	test_reference("tiny_a.bin");
	test_reference("tiny_b.bin");
	return check_done();
}
