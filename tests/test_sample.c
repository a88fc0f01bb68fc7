// The inference engine against the training forward: incremental decoding (text, an image at a
// noise level, text after it) gives mm_model_forward's logits and x_pred; prefix reuse and
// recomputation agree; the guided Heun, Euler and DPM-Solver++(2M) samplers agree with the same
// ODE run on mm_model_forward; token choice (greedy, bans, top-k, top-p, temperature); mm_generate's
// determinism, guidance 1, context limits and outputs.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "mm.h"
#include "sample.h"

static const mm_config cfg_a = {.dim = 32, .layers = 2, .heads = 4, .mlp = 48, .vocab = 300,
				.img_h = 8, .img_w = 8, .img_c = 3, .patch = 2, .bottleneck = 0,
				.qk_norm = 1, .seq_len = 48, .image_weight = 5};
static const mm_config cfg_b = {.dim = 24, .layers = 3, .heads = 2, .mlp = 40, .vocab = 270,
				.img_h = 4, .img_w = 8, .img_c = 1, .patch = 2, .bottleneck = 5,
				.qk_norm = 0, .seq_len = 40, .image_weight = 5};

// A model with weights large enough for sharp attention (the mask then matters).
static mm_model *new_model(const mm_config *c, uint64_t seed)
{
	mm_model *m;
	CHECK_OK(mm_model_new(&m, c, 2));
	mm_model_init(m, seed);
	float *p = mm_model_params(m);
	mm_rng r;
	mm_rng_seed(&r, seed, 7);
	for (size_t i = 0; i < mm_model_nparams(m); i++)
		p[i] = p[i] * 2 + (float)(0.05 * mm_rng_normal(&r)); // norms and biases away from 1 and 0
	return m;
}

static double maxdiff(const float *a, const float *b, size_t n)
{
	double e = 0;
	for (size_t i = 0; i < n; i++)
		e = fmax(e, fabs((double)a[i] - b[i]));
	return e;
}

// One test document: BOS, NA tokens, BOI, an image at noise level t, EOI, NB tokens.
enum { NA = 5, NB = 4 };
typedef struct tdoc {
	int32_t tok[64]; // the whole sequence's tokens, -1 at patches
	float *z;        // (NP, P)
	float t;
	int len, boi;    // positions; index of BOI
} tdoc;

static void make_doc(tdoc *d, const mm_config *c, mm_rng *r, float t)
{
	int NP = MM_NPATCH(c), P = MM_PDIM(c), n = 0;
	d->tok[n++] = MM_TOK_BOS;
	for (int i = 0; i < NA; i++)
		d->tok[n++] = (int32_t)mm_rng_below(r, (uint64_t)c->vocab);
	d->boi = n;
	d->tok[n++] = MM_TOK_BOI;
	for (int i = 0; i < NP; i++)
		d->tok[n++] = -1;
	d->tok[n++] = MM_TOK_EOI;
	for (int i = 0; i < NB; i++)
		d->tok[n++] = (int32_t)mm_rng_below(r, 256);
	d->len = n;
	d->t = t;
	d->z = malloc((size_t)NP * P * sizeof(float));
	for (int i = 0; i < NP * P; i++)
		d->z[i] = (float)mm_rng_normal(r);
}

// The training forward over B documents (one per row, T = their length): logits at every text
// position (out_logits (B, T, V), rows of patches left alone) and x_pred (B, NP, P).
static void full_forward(mm_model *m, tdoc *d, int B, float *out_logits, float *out_xpred)
{
	const mm_config *c = mm_model_config(m);
	int T = d[0].len, P = MM_PDIM(c), V = c->vocab;
	mm_batch b;
	CHECK_OK(mm_batch_alloc(&b, B, T, P));
	for (int r = 0; r < B; r++)
		for (int i = 0; i < T; i++) {
			int n = r * T + i, patch = i - d[r].boi - 1, isimg = d[r].tok[i] < 0;
			b.token[n] = d[r].tok[i];
			b.target[n] = isimg ? -1 : 0; // a target wherever logits are wanted
			b.doc[n] = 0, b.pos[n] = i;
			b.img[n] = isimg ? 0 : -1;
			b.patch[n] = isimg ? patch : -1;
			b.t[n] = isimg ? d[r].t : 0;
			if (isimg)
				for (int p = 0; p < P; p++)
					b.z[(size_t)n * P + p] = b.x[(size_t)n * P + p] = d[r].z[patch * P + p];
		}
	CHECK_OK(mm_model_forward(m, &b, NULL));
	int nl, nx;
	const int32_t *rows;
	const float *lg = mm_model_logits(m, &nl, &rows);
	for (int i = 0; i < nl; i++)
		memcpy(out_logits + (size_t)rows[i] * V, lg + (size_t)i * V, (size_t)V * sizeof(float));
	const float *xp = mm_model_x_pred(m, &nx, NULL);
	memcpy(out_xpred, xp, (size_t)nx * P * sizeof(float));
	mm_batch_free(&b);
}

// Two documents decoded in one batch of slots {2, 0}, piece by piece, against the training
// forward: logits after every piece, x_pred of the image both with and without prefix reuse.
static void check_incremental(const mm_config *c, uint64_t seed)
{
	mm_model *m = new_model(c, seed);
	int V = c->vocab, NP = MM_NPATCH(c), P = MM_PDIM(c);
	mm_rng r;
	mm_rng_seed(&r, seed, 1);
	tdoc d[2];
	make_doc(&d[0], c, &r, 0.3f);
	make_doc(&d[1], c, &r, 0.83f);
	int T = d[0].len;
	float *ref = calloc((size_t)2 * T * V, sizeof(float)), *refx = calloc((size_t)2 * NP * P, sizeof(float));
	full_forward(m, d, 2, ref, refx);

	mm_sampler *s;
	CHECK_OK(mm_sampler_new(&s, m, 3));
	int slots[2] = {2, 0};
	double e_logit = 0, e_x = 0, e_rc = 0;
	// pieces: [0, 3), [3, 4), [4, boi + 1), image + EOI, then one token at a time
	int cuts[] = {0, 3, 4, d[0].boi + 1};
	for (int k = 0; k + 1 < 4; k++) {
		const int32_t *tp[2] = {d[0].tok + cuts[k], d[1].tok + cuts[k]};
		int n[2] = {cuts[k + 1] - cuts[k], cuts[k + 1] - cuts[k]};
		CHECK_OK(mm_sampler_append_tokens(s, 2, slots, tp, n));
		for (int i = 0; i < 2; i++)
			e_logit = fmax(e_logit, maxdiff(mm_sampler_logits(s, i), ref + ((size_t)i * T + cuts[k + 1] - 1) * V, V));
	}
	CHECK_EQ_INT(mm_sampler_len(s, 2), d[0].boi + 1);
	float *z = malloc((size_t)2 * NP * P * sizeof(float)), *xp = malloc((size_t)2 * NP * P * sizeof(float));
	float *xq = malloc((size_t)2 * NP * P * sizeof(float));
	for (int i = 0; i < 2; i++) { // one call per noise level
		memcpy(z, d[i].z, (size_t)NP * P * sizeof(float));
		CHECK_OK(mm_sampler_denoise(s, 1, &slots[i], z, d[i].t, 0, xp));
		CHECK_OK(mm_sampler_denoise(s, 1, &slots[i], z, d[i].t, 1, xq));
		e_x = fmax(e_x, maxdiff(xp, refx + (size_t)i * NP * P, (size_t)NP * P));
		e_rc = fmax(e_rc, maxdiff(xp, xq, (size_t)NP * P));
		CHECK_OK(mm_sampler_append_image(s, 1, &slots[i], z, d[i].t, 1));
		e_logit = fmax(e_logit, maxdiff(mm_sampler_logits(s, 0), ref + ((size_t)i * T + d[i].boi + NP + 1) * V, V));
	}
	CHECK_EQ_INT(mm_sampler_len(s, 0), d[0].boi + NP + 2);
	for (int at = d[0].boi + NP + 2; at < T; at++) {
		const int32_t *tp[2] = {d[0].tok + at, d[1].tok + at};
		int n[2] = {1, 1};
		CHECK_OK(mm_sampler_append_tokens(s, 2, slots, tp, n));
		for (int i = 0; i < 2; i++)
			e_logit = fmax(e_logit, maxdiff(mm_sampler_logits(s, i), ref + ((size_t)i * T + at) * V, V));
	}
	printf("dim %d: max |diff| logits %.3g, x_pred %.3g, reuse vs recompute %.3g\n", c->dim, e_logit, e_x, e_rc);
	CHECK(e_logit < 1e-5);
	CHECK(e_x < 1e-5);
	CHECK(e_rc < 1e-5);
	// The context is enforced: slot 2 is full after T + (48 - T) positions.
	int32_t many[64] = {0};
	const int32_t *mp = many;
	int room = c->seq_len - mm_sampler_len(s, 2), over = room + 1;
	CHECK(mm_sampler_append_tokens(s, 1, &slots[0], &mp, &over) == -MM_ERANGE);
	CHECK_OK(mm_sampler_append_tokens(s, 1, &slots[0], &mp, &room));
	CHECK(mm_sampler_denoise(s, 1, &slots[0], z, 0.5f, 0, xp) == -MM_ERANGE);
	int bad = V;
	const int32_t *bp = &bad;
	int one = 1;
	mm_sampler_clear(s, 1);
	CHECK(mm_sampler_append_tokens(s, 1, (int[]){1}, &bp, &one) == -MM_EINVAL);
	CHECK(mm_sampler_append_tokens(s, 2, (int[]){1, 1}, (const int32_t *[]){mp, mp}, (int[]){1, 1}) == -MM_EINVAL);

	free(z), free(xp), free(xq), free(ref), free(refx), free(d[0].z), free(d[1].z);
	mm_sampler_free(s);
	mm_model_free(m);
}

// The guided ODE run directly on mm_model_forward: rows (conditional, unconditional) of the
// whole sequences at every call. The sampler's result must agree, with and without reuse.
static void ref_image(mm_model *m, const int32_t *prefix, int np, const mm_image_opts *o, float *z)
{
	const mm_config *c = mm_model_config(m);
	int NP = MM_NPATCH(c), P = MM_PDIM(c), n = NP * P;
	tdoc d[2];
	float *v1 = malloc((size_t)n * sizeof(float)), *v2 = malloc((size_t)n * sizeof(float));
	float *ze = malloc((size_t)n * sizeof(float)), *xp = malloc((size_t)2 * n * sizeof(float));
	float *lg = malloc((size_t)2 * (np + NP + 1) * c->vocab * sizeof(float));
	double lam_prev = 0; // DPM-Solver++(2M): lambda at the previous call
	float *xprev = malloc((size_t)n * sizeof(float));
	for (int step = 0; step < 2 * o->steps; step++) {
		int i = step / 2, second = step % 2, N = o->steps;
		if (second && o->method == MM_ODE_DPM2M)
			continue;
		if (second && (o->method == MM_ODE_EULER || i + 1 == N))
			continue;
		// the grid i / N, shifted toward noise by the model's S: t = u / (u + S (1 - u))
		double S = c->noise_shift > 0 ? c->noise_shift : 1, u0 = (double)i / N, u1 = (double)(i + 1) / N;
		float t0 = (float)(u0 / (u0 + S * (1 - u0))), t1 = (float)(u1 / (u1 + S * (1 - u1))), dt = t1 - t0;
		float t = second ? t1 : t0, *zz = second ? ze : z, *v = second ? v2 : v1;
		// both rows the conditional length: the unconditional one is BOS BOI, then padding
		// would change nothing, so it is given the same length by repeating the prefix shape.
		for (int r = 0; r < 2; r++) {
			const int32_t *pre = r ? (const int32_t[]){MM_TOK_BOS, MM_TOK_BOI} : prefix;
			int npre = r ? 2 : np;
			memcpy(d[r].tok, pre, (size_t)npre * sizeof(int32_t));
			for (int k = 0; k < NP; k++)
				d[r].tok[npre + k] = -1;
			d[r].len = npre + NP, d[r].boi = npre - 1, d[r].t = t, d[r].z = zz;
		}
		int guided = o->cfg != 1 && t >= o->cfg_lo && t <= o->cfg_hi;
		full_forward(m, &d[0], 1, lg, xp);
		if (guided)
			full_forward(m, &d[1], 1, lg, xp + n);
		float sc = 1 - t > (float)MM_T_FLOOR ? 1 - t : (float)MM_T_FLOOR;
		if (o->method == MM_ODE_DPM2M) {
			// lambda = log(alpha / sigma); the paper's update, with the first order wherever a
			// lambda in it is infinite (from t = 0, into t = 1, after the first step)
			double lam0 = t0 > 0 ? log(t0 / (1.0 - t0)) : -INFINITY;
			double lam1 = t1 < 1 ? log(t1 / (1.0 - t1)) : INFINITY, h = lam1 - lam0;
			for (int k = 0; k < n; k++) {
				double x = guided ? xp[n + k] + o->cfg * (xp[k] - xp[n + k]) : xp[k], D = x;
				if (isfinite(h) && i >= 2) {
					double r = (lam0 - lam_prev) / h;
					D = (1 + 1 / (2 * r)) * x - 1 / (2 * r) * xprev[k];
				}
				z[k] = (float)((1 - t1) / (1 - t0) * z[k] - t1 * expm1(-h) * D);
				xprev[k] = (float)x;
			}
			lam_prev = lam0;
			continue;
		}
		for (int k = 0; k < n; k++) {
			float x = guided ? xp[n + k] + o->cfg * (xp[k] - xp[n + k]) : xp[k];
			v[k] = (x - zz[k]) / sc;
		}
		if (second) {
			for (int k = 0; k < n; k++)
				z[k] += dt * 0.5f * (v1[k] + v2[k]);
		} else if (o->method == MM_ODE_EULER || i + 1 == N) {
			for (int k = 0; k < n; k++)
				z[k] += dt * v1[k];
		} else {
			for (int k = 0; k < n; k++)
				ze[k] = z[k] + dt * v1[k];
		}
	}
	free(v1), free(v2), free(ze), free(xp), free(lg), free(xprev);
}

static void check_image_ode(const mm_config *c, int method, float cfg, float lo, float hi)
{
	mm_model *m = new_model(c, 11);
	int NP = MM_NPATCH(c), P = MM_PDIM(c), n = NP * P;
	mm_sampler *s;
	CHECK_OK(mm_sampler_new(&s, m, 4));
	int32_t prefix[] = {MM_TOK_BOS, 65, 66, 67, MM_TOK_BOI}, un[] = {MM_TOK_BOS, MM_TOK_BOI};
	int np = 5, two = 2;
	int slots[2] = {0, 3}, uncond[2] = {1, 2};
	for (int i = 0; i < 2; i++) {
		const int32_t *a = prefix, *b = un;
		CHECK_OK(mm_sampler_append_tokens(s, 1, &slots[i], &a, &np));
		CHECK_OK(mm_sampler_append_tokens(s, 1, &uncond[i], &b, &two));
	}
	mm_image_opts o;
	mm_image_opts_default(&o);
	o.method = method, o.steps = method == MM_ODE_DPM2M ? 6 : 4, o.cfg = cfg, o.cfg_lo = lo, o.cfg_hi = hi;
	float *z0 = malloc((size_t)2 * n * sizeof(float)), *za = malloc((size_t)2 * n * sizeof(float));
	float *zb = malloc((size_t)2 * n * sizeof(float)), *zr = malloc((size_t)n * sizeof(float));
	mm_rng r;
	mm_rng_seed(&r, 5, 0);
	for (int i = 0; i < 2 * n; i++)
		z0[i] = (float)mm_rng_normal(&r);
	memcpy(za, z0, (size_t)2 * n * sizeof(float));
	memcpy(zb, z0, (size_t)2 * n * sizeof(float));
	CHECK_OK(mm_sampler_image(s, 2, slots, uncond, &o, za));
	// The slots are unchanged: the next image from the same noise is the same.
	CHECK_OK(mm_sampler_image(s, 2, slots, uncond, &o, zb));
	CHECK(memcmp(za, zb, (size_t)2 * n * sizeof(float)) == 0);
	CHECK_EQ_INT(mm_sampler_len(s, 0), np);
	memcpy(zb, z0, (size_t)2 * n * sizeof(float));
	o.recompute = 1;
	CHECK_OK(mm_sampler_image(s, 2, slots, uncond, &o, zb));
	o.recompute = 0;
	memcpy(zr, z0 + n, (size_t)n * sizeof(float)); // the second image, on the training forward
	ref_image(m, prefix, np, &o, zr);
	double e_rc = maxdiff(za, zb, (size_t)2 * n), e_ref = maxdiff(za + n, zr, (size_t)n);
	printf("ode %s cfg %g [%g, %g]: reuse vs recompute %.3g, vs training forward %.3g\n",
	       method == MM_ODE_HEUN ? "heun" : method == MM_ODE_DPM2M ? "dpm2m" : "euler", cfg, lo, hi, e_rc, e_ref);
	CHECK(e_rc < 1e-5);
	// the reference's DPM-Solver++ works in double (log, expm1, the extrapolation), the sampler's
	// z update in float: 3e-5 apart after 6 steps at S = 3
	CHECK(e_ref < (method == MM_ODE_DPM2M ? 1e-4 : 1e-5));
	CHECK(maxdiff(za, z0, (size_t)n) > 0.1); // it moved
	free(z0), free(za), free(zb), free(zr);
	mm_sampler_free(s);
	mm_model_free(m);
}

// The shift of noise levels: the identity at S = 1, the ends kept, logit(t') = logit(t) - log S;
// the default of mm-train; and the config text round trip (a text without the key: S = 1).
static void check_noise_shift(void)
{
	for (int i = 0; i <= 8; i++) {
		float u = (float)i / 8;
		CHECK(mm_shift_t(u, 1) == u);
		float t = mm_shift_t(u, 4);
		CHECK(t <= u);
		if (i > 0 && i < 8)
			CHECK(fabs(log(t / (1 - t)) - (log(u / (1 - u)) - log(4.0))) < 1e-5);
	}
	CHECK(mm_shift_t(0, 4) == 0 && mm_shift_t(1, 4) == 1);
	CHECK(mm_noise_shift_default(28, 28, 1) == 1 && mm_noise_shift_default(16, 16, 1) == 1);
	CHECK(fabs(mm_noise_shift_default(64, 64, 3) - sqrt(12288 / 784.0)) < 1e-12);
	mm_config c = cfg_b, back;
	c.noise_shift = 2.5f;
	char buf[1024];
	CHECK_OK(mm_config_format(&c, buf, sizeof buf));
	CHECK(strstr(buf, "noise-shift = 2.5\n") != NULL);
	CHECK_OK(mm_config_parse(buf, strlen(buf), "conf", &back));
	CHECK(back.noise_shift == 2.5f && mm_noise_shift(&back) == 2.5f);
	char *cut = strstr(buf, "noise-shift");
	*cut = 0; // the text of a checkpoint written before the key existed
	CHECK_OK(mm_config_parse(buf, strlen(buf), "old", &back));
	CHECK(back.noise_shift == 0 && mm_noise_shift(&back) == 1);
	c.noise_shift = 1000;
	CHECK(mm_config_check(&c) == -MM_EINVAL);
}

static void check_tokens(void)
{
	enum { V = 6 };
	float l[V] = {1, 3, 3, -2, 0.5f, 2};
	int work[2 * V];
	uint8_t ban[V] = {0};
	mm_rng r;
	mm_rng_seed(&r, 3, 0);
	mm_text_opts greedy = {0, 0, 1}, k1 = {1, 1, 1}, t1 = {1, 0, 1}, p = {1, 0, 0.5f}, cold = {0.05f, 0, 1};
	CHECK_EQ_INT(mm_sample_token(l, V, &greedy, NULL, &r, work), 1); // first of equal maxima
	ban[1] = 1;
	CHECK_EQ_INT(mm_sample_token(l, V, &greedy, ban, &r, work), 2);
	CHECK_EQ_INT(mm_sample_token(l, V, &k1, ban, &r, work), 2);
	// top-p 0.5: the two tied 3s hold 2 e^3 / (2 e^3 + e^2 + ...) > 0.5, so only ids 1 and 2
	ban[1] = 0;
	int count[V] = {0};
	for (int i = 0; i < 4000; i++)
		count[mm_sample_token(l, V, &p, ban, &r, work)]++;
	CHECK(count[1] + count[2] == 4000 && count[1] > 1800 && count[2] > 1800);
	// temperature 1: frequencies follow softmax
	memset(count, 0, sizeof count);
	double z = 0;
	for (int i = 0; i < V; i++)
		z += exp(l[i]);
	for (int i = 0; i < 20000; i++)
		count[mm_sample_token(l, V, &t1, ban, &r, work)]++;
	for (int i = 0; i < V; i++)
		CHECK_MSG(fabs(count[i] / 20000.0 - exp(l[i]) / z) < 0.015, "id %d: %d", i, count[i]);
	int tc = mm_sample_token(l, V, &cold, NULL, &r, work);
	CHECK(tc == 1 || tc == 2);
	memset(ban, 1, sizeof ban);
	CHECK_EQ_INT(mm_sample_token(l, V, &t1, ban, &r, work), -1);
	CHECK_EQ_INT(mm_sample_token(l, V, &greedy, ban, &r, work), -1);
}

// A slot given no tokens in a batch keeps its state, and the others' logits stay in place.
static void check_empty_span(void)
{
	mm_model *m = new_model(&cfg_a, 4);
	mm_sampler *s;
	CHECK_OK(mm_sampler_new(&s, m, 3));
	int32_t a[] = {MM_TOK_BOS, 10, 11}, b[] = {MM_TOK_BOS, 12};
	int sl[3] = {0, 1, 2}, n[3] = {3, 0, 2};
	const int32_t *tp[3] = {a, a, b};
	CHECK_OK(mm_sampler_append_tokens(s, 3, sl, tp, n));
	int V = cfg_a.vocab;
	float *la = malloc((size_t)2 * V * sizeof(float));
	memcpy(la, mm_sampler_logits(s, 0), (size_t)V * sizeof(float));
	memcpy(la + V, mm_sampler_logits(s, 2), (size_t)V * sizeof(float));
	CHECK_EQ_INT(mm_sampler_len(s, 1), 0);
	mm_sampler_clear(s, 0);
	mm_sampler_clear(s, 2);
	CHECK_OK(mm_sampler_append_tokens(s, 1, &sl[0], &tp[0], &n[0]));
	CHECK(maxdiff(la, mm_sampler_logits(s, 0), (size_t)V) < 1e-5);
	CHECK_OK(mm_sampler_append_tokens(s, 1, &sl[2], &tp[2], &n[2]));
	CHECK(maxdiff(la + V, mm_sampler_logits(s, 0), (size_t)V) < 1e-5);
	free(la);
	mm_sampler_free(s);
	mm_model_free(m);
}

static int same_docs(const mm_doc *a, const mm_doc *b)
{
	if (a->n_segs != b->n_segs)
		return 0;
	for (uint32_t k = 0; k < a->n_segs; k++) {
		const mm_segment *x = &a->segs[k], *y = &b->segs[k];
		if (x->type != y->type || x->n_tokens != y->n_tokens)
			return 0;
		if (x->type == MM_SEG_TEXT && memcmp(x->tokens, y->tokens, x->n_tokens * sizeof(uint32_t)))
			return 0;
		if (x->type == MM_SEG_IMAGE && (x->h != y->h || memcmp(x->pixels, y->pixels, (size_t)x->h * x->w * x->c)))
			return 0;
	}
	return 1;
}

static void check_generate(void)
{
	const mm_config *c = &cfg_b;
	mm_model *m = new_model(c, 21);
	mm_sampler *s;
	CHECK_OK(mm_sampler_new(&s, m, 6));
	mm_doc pre[3], out[3], out2[3];
	uint32_t words[3][4] = {{70, 71, 72, 73}, {80, 81}, {90}};
	for (int i = 0; i < 3; i++) {
		mm_doc_init(&pre[i]), mm_doc_init(&out[i]), mm_doc_init(&out2[i]);
		CHECK_OK(mm_doc_add_text(&pre[i], words[i], i == 0 ? 4 : 3 - i));
	}
	mm_gen_opts o;
	mm_gen_opts_default(&o);
	o.image_first = 1, o.max_tokens = 6, o.image.steps = 3, o.image.cfg = 3;
	o.text.temperature = 1.5f, o.text.top_k = 50;
	CHECK_OK(mm_generate(s, pre, 3, 0, &o, out));
	for (int i = 0; i < 3; i++) {
		CHECK(out[i].n_segs >= 1 && out[i].segs[0].type == MM_SEG_IMAGE);
		CHECK(out[i].segs[0].h == 4 && out[i].segs[0].w == 8 && out[i].segs[0].c == 1 && out[i].segs[0].p == 2);
		uint32_t ntext = 0;
		for (uint32_t k = 0; k < out[i].n_segs; k++)
			ntext += out[i].segs[k].type == MM_SEG_TEXT ? out[i].segs[k].n_tokens : 1;
		CHECK(ntext <= 1 + 6);
	}
	// Same seed, same documents; a document does not depend on its batch: the third alone with
	// index 2 is what it was in the batch (up to the rounding of other product shapes, so the
	// image is compared loosely and the rest of the run follows from it).
	CHECK_OK(mm_generate(s, pre, 3, 0, &o, out2));
	for (int i = 0; i < 3; i++)
		CHECK(same_docs(&out[i], &out2[i]));
	CHECK_OK(mm_generate(s, pre + 2, 1, 2, &o, out2));
	int close = 1;
	for (int v = 0; v < 32; v++)
		close &= abs(out2[0].segs[0].pixels[v] - out[2].segs[0].pixels[v]) <= 1;
	CHECK(close);
	// Guidance 1 is the plain conditional sampler: the same as guidance 3 applied nowhere.
	o.image.cfg = 1;
	CHECK_OK(mm_generate(s, pre, 3, 0, &o, out));
	o.image.cfg = 3, o.image.cfg_lo = o.image.cfg_hi = 1; // t = 1 is never evaluated
	CHECK_OK(mm_generate(s, pre, 3, 0, &o, out2));
	for (int i = 0; i < 3; i++)
		CHECK(same_docs(&out[i], &out2[i]));
	o.image.cfg_lo = 0;
	CHECK_OK(mm_generate(s, pre, 3, 0, &o, out2));
	CHECK(!same_docs(&out[0], &out2[0]));
	// A prefix with an image (captioning): text only after it, greedy, no images sampled.
	mm_gen_opts oc;
	mm_gen_opts_default(&oc);
	oc.images = 0, oc.max_tokens = 5;
	mm_doc cap;
	mm_doc_init(&cap);
	CHECK_OK(mm_doc_add_image(&cap, 4, 8, 1, 2, out[0].segs[0].pixels));
	CHECK_OK(mm_generate(s, &cap, 1, 0, &oc, out2));
	CHECK(out2[0].n_segs <= 1);
	if (out2[0].n_segs)
		CHECK(out2[0].segs[0].type == MM_SEG_TEXT && out2[0].segs[0].n_tokens <= 5);
	// A prompt image read at read_t < 1: z = t x + (1 - t) eps, eps the first draws of the
	// document's generator, the token's draw after them. One sampled token, against the same
	// prefix appended by hand and the same generator (its order shows in every token). The
	// level is shifted by the model's noise shift: the same weights with S = 4 read 0.6 at
	// 0.6 / (0.6 + 4 x 0.4).
	oc.read_t = 0.6f, oc.max_tokens = 1, oc.seed = 17, oc.text.temperature = 1;
	int *work = malloc(2 * (size_t)c->vocab * sizeof *work);
	uint8_t *ban = calloc((size_t)c->vocab, 1);
	ban[MM_TOK_PAD] = ban[MM_TOK_BOS] = ban[MM_TOK_EOI] = ban[MM_TOK_BOI] = 1;
	mm_config c4 = *c;
	c4.noise_shift = 4;
	mm_model *m4 = new_model(&c4, 21);
	mm_sampler *s4;
	CHECK_OK(mm_sampler_new(&s4, m4, 6));
	enum { TRIALS = 20 };
	for (int shifted = 0; shifted < 2; shifted++) {
		mm_sampler *ss = shifted ? s4 : s;
		float tr = shifted ? 0.6f / (0.6f + 4 * 0.4f) : 0.6f;
		int agree = 0, differ = 0;
		for (int trial = 0; trial < TRIALS; trial++) {
			CHECK_OK(mm_generate(ss, &cap, 1, 5 + trial, &oc, out2));
			mm_rng g;
			mm_rng_seed(&g, 17, 5 + (uint64_t)trial);
			float z[32], z6[32];
			mm_pixels_to_float(out[0].segs[0].pixels, 32, z);
			for (int v = 0; v < 32; v++) {
				float e = (float)mm_rng_normal(&g);
				z6[v] = 0.6f * z[v] + (1 - 0.6f) * e;
				z[v] = tr * z[v] + (1 - tr) * e;
			}
			int slot = 0, two = 2;
			int32_t head[2] = {MM_TOK_BOS, MM_TOK_BOI};
			const int32_t *hp = head;
			mm_sampler_clear(ss, 0);
			CHECK_OK(mm_sampler_append_tokens(ss, 1, &slot, &hp, &two));
			CHECK_OK(mm_sampler_append_image(ss, 1, &slot, z, tr, 1));
			float lg[512];
			memcpy(lg, mm_sampler_logits(ss, 0), (size_t)c->vocab * sizeof *lg);
			int want = mm_sample_token(lg, c->vocab, &oc.text, ban, &g, work);
			if (want == MM_TOK_EOS)
				agree += out2[0].n_segs == 0;
			else
				agree += out2[0].n_segs == 1 && out2[0].segs[0].n_tokens == 1 &&
					 out2[0].segs[0].tokens[0] == (uint32_t)want;
			// the unshifted level would give other logits on the shifted model
			mm_sampler_clear(ss, 0);
			CHECK_OK(mm_sampler_append_tokens(ss, 1, &slot, &hp, &two));
			CHECK_OK(mm_sampler_append_image(ss, 1, &slot, z6, 0.6f, 1));
			differ += memcmp(lg, mm_sampler_logits(ss, 0), (size_t)c->vocab * sizeof *lg) != 0;
		}
		CHECK_EQ_INT(agree, TRIALS);
		CHECK(differ == (shifted ? TRIALS : 0));
	}
	mm_sampler_free(s4);
	mm_model_free(m4);
	free(work), free(ban);
	oc.text.temperature = 0;
	oc.read_t = 0;
	CHECK(mm_generate(s, &cap, 1, 0, &oc, out2) == -MM_EINVAL);
	oc.read_t = 1, oc.max_tokens = 5;
	// Errors: too long a prompt, too many documents for the slots, an image of another size.
	uint32_t lots[40] = {0};
	mm_doc big;
	mm_doc_init(&big);
	CHECK_OK(mm_doc_add_text(&big, lots, 40 - 8 - 2)); // BOS + 30 + BOI + 8 patches + EOI = 41
	CHECK(mm_generate(s, &big, 1, 0, &o, out) == -MM_ERANGE);
	CHECK(strstr(mm_errmsg(), "context") != NULL);
	o.image_first = 0;
	CHECK_OK(mm_generate(s, &big, 1, 0, &o, out));
	CHECK(mm_generate(s, pre, 4, 0, &o, out) == -MM_EINVAL);
	mm_doc odd;
	mm_doc_init(&odd);
	uint8_t gray[32] = {0};
	CHECK_OK(mm_doc_add_image(&odd, 8, 4, 1, 2, gray));
	CHECK(mm_generate(s, &odd, 1, 0, &oc, out) == -MM_EMISMATCH);
	for (int i = 0; i < 3; i++)
		mm_doc_free(&pre[i]), mm_doc_free(&out[i]), mm_doc_free(&out2[i]);
	mm_doc_free(&cap), mm_doc_free(&big), mm_doc_free(&odd);
	mm_sampler_free(s);
	mm_model_free(m);
}

int main(void)
{
	check_incremental(&cfg_a, 1);
	check_incremental(&cfg_b, 2);
	check_image_ode(&cfg_a, MM_ODE_HEUN, 2.5f, 0, 1);
	check_image_ode(&cfg_b, MM_ODE_EULER, 3, 0.3f, 0.8f);
	check_image_ode(&cfg_b, MM_ODE_HEUN, 1, 0, 1);
	mm_config shifted = cfg_b;
	shifted.noise_shift = 3;
	check_image_ode(&shifted, MM_ODE_HEUN, 2, 0, 1);
	check_image_ode(&cfg_b, MM_ODE_DPM2M, 2, 0.2f, 0.9f);
	check_image_ode(&shifted, MM_ODE_DPM2M, 1, 0, 1);
	check_noise_shift();
	check_tokens();
	check_empty_span();
	check_generate();
	uint8_t px[4] = {0, 1, 127, 255}, back[4];
	float f[4];
	mm_pixels_to_float(px, 4, f);
	mm_pixels_from_float(f, 4, back);
	CHECK(memcmp(px, back, 4) == 0);
	float wild[3] = {-7, 7, NAN};
	mm_pixels_from_float(wild, 3, back);
	CHECK(back[0] == 0 && back[1] == 255 && back[2] == 0);
	return check_done();
}
