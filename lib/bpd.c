// Image likelihood in bits per dimension: the continuous-time variational bound of diffusion
// (Kingma, Salimans, Poole and Ho, "Variational Diffusion Models", 2021) on mm's noise path.
//
// The path. x in [-1, 1]^D (pixel p is x = p / 127.5 - 1), z_t = t x + (1 - t) eps, eps ~ N(0, I),
// t from 0 (noise) to 1 (clean): alpha_t = t, sigma_t = 1 - t, signal-to-noise ratio
//   SNR(t) = alpha^2 / sigma^2 = t^2 / (1 - t)^2,  increasing,  SNR'(t) = 2 t / (1 - t)^3.
// The path need not preserve variance: for s < t (s noisier), q(z_s | z_t, x) is Gaussian as
// long as SNR(s) < SNR(t), and the bound below depends on the path only through SNR and the
// endpoints.
//
// The bound, truncated to [t0, t1] (0 < t0 < t1 < 1):
//   -log p(x) <= L_prior + L_diffusion + L_recon
// L_prior = KL(q(z_t0 | x) || N(0, I)), q(z_t0 | x) = N(t0 x, (1 - t0)^2 I):
//   per dimension 1/2 ((1 - t0)^2 + t0^2 x^2 - 1 - 2 log(1 - t0)) = t0^2 (1 + x^2 / 2) + O(t0^3),
//   which vanishes as t0 -> 0.
// L_diffusion: a model step from z_s to z_t (s < t) is q(z_t | z_s, x = x_pred(z_s, s)); its KL
//   to the true step is 1/2 (SNR(t) - SNR(s)) ||x - x_pred(z_s, s)||^2. Summed over a fine grid
//   from t0 to t1, in the limit:
//   L_diffusion = 1/2 int_t0^t1 SNR'(t) E_eps ||x - x_pred(z_t, t)||^2 dt.
//   (VDM writes -1/2 E[SNR'(t) ...] with its t running from clean to noise; here t runs the
//   other way, SNR' > 0, and the sign is +.) Every draw needs one model call on the image.
// L_recon = E_eps[-log p(x | z_t1)], the decoder reading the clean end: each value's 8-bit bin
//   [x - 1/255, x + 1/255] (the end bins reach to -inf and +inf) under N(z_t1 / t1, sigma1^2),
//   sigma1 = (1 - t1) / t1: the distribution of x given z_t1 under a flat prior. With
//   a = (1/255) / sigma1 and z_t1 / t1 = x + sigma1 eps, the bin's probability is
//   Phi(a - eps) - Phi(-a - eps) (an end bin: Phi(a - eps)), whose expectation over eps is
//   taken here by quadrature: no model, no noise.
//
// Importance sampling of t. Uniform t would spend its draws where SNR' is small and meet rare
// draws with an enormous weight near t1. With lambda = log(1 + SNR(t)) uniform on
// [lambda(t0), lambda(t1)], dt = (1 + SNR) / SNR' dlambda, so one draw estimates the term as
//   1/2 (lambda(t1) - lambda(t0)) (1 + SNR(t)) ||x - x_pred(z_t, t)||^2,
// constant in t for an ideal denoiser of Gaussian data (error D / (1 + SNR)). An image's S draws
// are stratified: u_i = (i + U) / S with one uniform U per image.
//
// The curve. A draw with t <= t1' < t1 also serves the bound truncated at t1': the term up to t1'
// is estimated by the same draws with those above t1' counted as 0 (still unbiased). mm-train's
// models are rarely trained above t = 0.9 and denoise poorly there, so the bound is reported at
// a list of clean ends, and with bpd_auto at the lowest of them.
//
// Units: nats per image divided by D log 2: bits per dimension. The standard error is that of
// the mean over images of each image's estimate (its S draws together); it includes both the
// Monte Carlo noise and the spread between images.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "checksum.h"
#include "err.h"
#include "eval_state_priv.h"
#include "rng.h"

#define TAG_U 0x6270642d75ULL   // "bpd-u": each image's stratification offset
#define TAG_EPS 0x6270642d65ULL // "bpd-e": the eps of each draw

double mm_bpd_prior(double x, double t0)
{
	// (1 - t0)^2 - 1 - 2 log(1 - t0) without the cancellation of small t0
	return 0.5 * (t0 * t0 * (1 + x * x) - 2 * (t0 + log1p(-t0)));
}

static double upper(double u) { return 0.5 * erfc(u / M_SQRT2); } // P(N(0, 1) > u)

// log(Phi(hi) - Phi(lo)), lo < hi, lo = -INFINITY allowed, without cancellation in the tails.
static double log_bin(double lo, double hi)
{
	if (lo >= 0)
		return log(upper(lo) - upper(hi));
	if (hi <= 0)
		return log(upper(-hi) - (isinf(lo) ? 0 : upper(-lo)));
	return log1p(-(upper(hi) + (isinf(lo) ? 0 : upper(-lo))));
}

double mm_bpd_recon(int edge, double t1)
{
	double a = (1.0 / 255) / ((1 - t1) / t1);
	// Simpson's rule over eps in [-12, 12]; the normal density outside is below 1e-31.
	enum { N = 4800 };
	double h = 24.0 / N, sum = 0;
	for (int i = 0; i <= N; i++) {
		double e = -12 + i * h, wt = i == 0 || i == N ? 1 : (i % 2 ? 4 : 2);
		double p = log_bin(edge ? -INFINITY : -a - e, a - e);
		sum += wt * exp(-0.5 * e * e) * -p;
	}
	return sum * h / 3 / sqrt(2 * M_PI);
}

static double lam(double t) { return log1p(t * t / ((1 - t) * (1 - t))); }

void mm_bpd_draw(double u, double t0, double t1, float *t, double *w)
{
	double l0 = lam(t0), l1 = lam(t1), snr = expm1(l0 + u * (l1 - l0)), r = sqrt(snr);
	float tf = (float)(r / (1 + r));
	if (tf < t0)
		tf = (float)t0;
	if (tf > t1)
		tf = (float)t1;
	double td = tf;
	*t = tf;
	*w = 0.5 * (l1 - l0) * (1 + td * td / ((1 - td) * (1 - td)));
}

// The images of one chunk: pixels, the text read before each, and the sums of their draws.
typedef struct bpd_chunk {
	int n, cap;
	uint8_t *px;     // (cap, NP P)
	uint32_t *ctx;   // (cap, T)
	int *nctx;
	uint64_t *index; // image number over the whole evaluation
	double *diff;    // (cap, NC): sum over draws of the diffusion estimate up to each clean end, nats
	ev_seq *seq;     // (cap S)
} bpd_chunk;

static const double cuts[] = {0.8, 0.85, 0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999, 0.9995, 0.9999};
enum { NCUTS = sizeof cuts / sizeof *cuts };

// Running means (Welford) in nats per image, at each clean end (the last is t1): the bound,
// its diffusion and reconstruction terms; and the prior term, the same at every end.
typedef struct bpd_sums {
	uint64_t n;
	double prior;
	int nc;
	double t1[MM_BPD_MAX_CUTS], r_int[MM_BPD_MAX_CUTS], r_edge[MM_BPD_MAX_CUTS];
	double mean[MM_BPD_MAX_CUTS], m2[MM_BPD_MAX_CUTS], dmean[MM_BPD_MAX_CUTS], dm2[MM_BPD_MAX_CUTS];
	double recon[MM_BPD_MAX_CUTS];
} bpd_sums;

static void welford(double x, uint64_t n, double *mean, double *m2)
{
	double d = x - *mean;
	*mean += d / (double)n;
	*m2 += d * (x - *mean);
}

// Runs every draw of the chunk's images and adds their estimates to the sums.
static int bpd_chunk_run(mm_eval *e, mm_model *m, bpd_chunk *ch, bpd_sums *s)
{
	const mm_eval_opts *o = &e->o;
	int S = o->bpd_samples, np = e->NP * e->P, rc = 0, nc = s->nc;
	size_t total = (size_t)ch->n * S;
	double *wt = malloc(total * sizeof *wt);
	if (!wt)
		return mm_fail(MM_ENOMEM, "out of memory");
	uint64_t eps_seed = mm_mix64(o->seed ^ TAG_EPS);
	for (int j = 0; j < ch->n; j++) {
		mm_rng r;
		mm_rng_seed(&r, o->seed ^ TAG_U, ch->index[j]);
		double U = mm_rng_uniform(&r);
		for (int c = 0; c < nc; c++)
			ch->diff[(size_t)j * nc + c] = 0;
		for (int i = 0; i < S; i++) {
			ev_seq *q = &ch->seq[(size_t)j * S + i];
			*q = (ev_seq){.pre = ch->ctx + (size_t)j * e->T, .npre = ch->nctx[j],
				      .px = ch->px + (size_t)j * np, .seed = eps_seed,
				      .stream = ch->index[j] * (uint64_t)S + (uint64_t)i};
			mm_bpd_draw((i + U) / S, o->bpd_t0, o->bpd_t1, &q->t, &wt[(size_t)j * S + i]);
		}
	}
	for (size_t done = 0; done < total && !rc;) {
		int k = ev_pack(e, ch->seq + done, (int)(total - done), 0);
		if ((rc = k < 0 ? k : ev_forward(e, m)))
			break;
		int nx;
		const float *xp = mm_model_x_pred(m, &nx, NULL);
		for (int q = 0; q < k; q++) {
			const ev_seq *sq = &ch->seq[done + q];
			int first = sq->at + 2 + sq->npre; // after BOS, the text, BOI
			double sse = 0;
			for (int p = 0; p < e->NP; p++) {
				const float *a = xp + (size_t)e->xrow[first + p] * e->P, *x = e->b.x + (size_t)(first + p) * e->P;
				for (int v = 0; v < e->P; v++)
					sse += ((double)a[v] - x[v]) * ((double)a[v] - x[v]);
			}
			for (int c = 0; c < nc; c++)
				if (c == nc - 1 || sq->t <= s->t1[c])
					ch->diff[(done + q) / S * nc + c] += wt[done + q] * sse;
		}
		done += (size_t)k;
	}
	for (int j = 0; j < ch->n && !rc; j++) {
		const uint8_t *px = ch->px + (size_t)j * np;
		double prior = 0;
		int edges = 0;
		for (int v = 0; v < np; v++) {
			prior += mm_bpd_prior(px[v] / 127.5 - 1.0, o->bpd_t0);
			edges += px[v] == 0 || px[v] == 255;
		}
		s->n++;
		for (int c = 0; c < nc; c++) {
			double diff = ch->diff[(size_t)j * nc + c] / S;
			double recon = edges * s->r_edge[c] + (np - edges) * s->r_int[c];
			welford(prior + diff + recon, s->n, &s->mean[c], &s->m2[c]);
			welford(diff, s->n, &s->dmean[c], &s->dm2[c]);
			s->recon[c] += (recon - s->recon[c]) / (double)s->n;
		}
		s->prior += (prior - s->prior) / (double)s->n;
	}
	free(wt);
	ch->n = 0;
	return rc;
}

// Adds the images of document d to the chunk, each with the text segment read just before it.
static int bpd_add_doc(mm_eval *e, bpd_chunk *ch, const mm_doc *d, uint64_t *index, uint32_t *order)
{
	int n = ev_order(d, order), room = e->T - e->NP - 3, np = e->NP * e->P;
	for (int k = 0; k < n; k++) {
		const mm_segment *sg = &d->segs[order[k]];
		if (sg->type != MM_SEG_IMAGE)
			continue;
		if (ch->n == ch->cap)
			return 1; // the caller runs the chunk and comes back
		int j = ch->n;
		memcpy(ch->px + (size_t)j * np, sg->pixels, (size_t)np);
		ch->nctx[j] = 0;
		const mm_segment *prev = k ? &d->segs[order[k - 1]] : NULL;
		if (prev && prev->type == MM_SEG_TEXT && !e->o.bpd_uncond) {
			uint32_t len = prev->n_tokens < (uint32_t)room ? prev->n_tokens : (uint32_t)room;
			memcpy(ch->ctx + (size_t)j * e->T, prev->tokens + (prev->n_tokens - len), len * sizeof(uint32_t));
			ch->nctx[j] = (int)len;
		}
		ch->index[j] = (*index)++;
		ch->n++;
	}
	return 0;
}

static void chunk_free(bpd_chunk *ch)
{
	free(ch->px);
	free(ch->ctx);
	free(ch->nctx);
	free(ch->index);
	free(ch->diff);
	free(ch->seq);
}

int mm_eval_bpd_run(mm_eval *e, mm_model *m, mm_eval_bpd *out)
{
	const mm_eval_opts *o = &e->o;
	memset(out, 0, sizeof *out);
	out->samples = o->bpd_samples, out->t0 = o->bpd_t0, out->t1 = o->bpd_t1;
	out->dims = e->NP * e->P;
	if (!e->P)
		return mm_fail(MM_EINVAL, "eval: the model reads no images");
	// A document holds at most T / (NP + 2) images, so one always fits an empty chunk.
	bpd_chunk ch = {.cap = 64 > e->T ? 64 : e->T};
	size_t np = (size_t)e->NP * e->P, cap = (size_t)ch.cap;
	ch.px = malloc(cap * np);
	ch.ctx = malloc(cap * e->T * sizeof *ch.ctx);
	ch.nctx = malloc(cap * sizeof *ch.nctx);
	ch.index = malloc(cap * sizeof *ch.index);
	bpd_sums s = {0};
	for (int c = 0; c < NCUTS; c++)
		if (cuts[c] > o->bpd_t0 && cuts[c] < o->bpd_t1)
			s.t1[s.nc++] = cuts[c];
	s.t1[s.nc++] = o->bpd_t1;
	for (int c = 0; c < s.nc; c++)
		s.r_int[c] = mm_bpd_recon(0, s.t1[c]), s.r_edge[c] = mm_bpd_recon(1, s.t1[c]);
	ch.diff = malloc(cap * s.nc * sizeof *ch.diff);
	ch.seq = malloc(cap * o->bpd_samples * sizeof *ch.seq);
	uint32_t *order = NULL;
	int rc = 0;
	if (!ch.px || !ch.ctx || !ch.nctx || !ch.index || !ch.diff || !ch.seq)
		rc = mm_fail(MM_ENOMEM, "out of memory");
	uint64_t index = 0;
	for (uint64_t g = 0; g < e->ndocs && !rc; g++) {
		if ((rc = mm_loader_read(e->ld, g, &e->doc)))
			break;
		uint32_t *no = realloc(order, (e->doc.n_segs + 1) * sizeof *order);
		if (!no) {
			rc = mm_fail(MM_ENOMEM, "out of memory");
			break;
		}
		order = no;
		uint64_t before = index;
		if (bpd_add_doc(e, &ch, &e->doc, &index, order)) {
			// Full: undo this document's images, run the chunk, then add the document again.
			ch.n -= (int)(index - before);
			index = before;
			if (!(rc = bpd_chunk_run(e, m, &ch, &s)))
				bpd_add_doc(e, &ch, &e->doc, &index, order);
			ev_progress(e, "bpd", g, e->ndocs);
		}
	}
	if (!rc && ch.n)
		rc = bpd_chunk_run(e, m, &ch, &s);
	ev_progress(e, "bpd", e->ndocs, e->ndocs);
	chunk_free(&ch);
	free(order);
	if (rc)
		return rc;
	double k = 1 / (out->dims * log(2.0)), n = (double)s.n;
	out->images = s.n;
	out->ncuts = s.nc;
	int best = s.nc - 1;
	for (int c = 0; c < s.nc; c++) {
		out->cut_t1[c] = s.t1[c];
		out->cut_total[c] = s.n ? s.mean[c] * k : NAN;
		out->cut_se[c] = s.n > 1 ? sqrt(s.m2[c] / (n - 1) / n) * k : NAN;
		out->cut_recon[c] = s.n ? s.recon[c] * k : NAN;
		if (o->bpd_auto && s.mean[c] < s.mean[best])
			best = c;
	}
	out->t1 = s.t1[best];
	out->total = out->cut_total[best];
	out->total_se = out->cut_se[best];
	out->recon = out->cut_recon[best];
	out->diffusion = s.n ? s.dmean[best] * k : NAN;
	out->diffusion_se = s.n > 1 ? sqrt(s.dm2[best] / (n - 1) / n) * k : NAN;
	out->prior = s.n ? s.prior * k : NAN;
	return 0;
}
