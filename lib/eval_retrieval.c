// Retrieval over an open list of captions (see eval.h): each image's own caption ranked among
// all captions by likelihood, and images generated from captions matched to the nearest image
// of a reference set.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "eval_state_priv.h"
#include "image.h"
#include "rng.h"
#include "sample.h"

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

// Scores captions js[0..nj) of c, each closed by the token end, after what slot 0 holds (whose
// last logits gave first[]): ll[js[i]] = first + the rest, copies of slot 0 continued S at a time.
static int score_rest(mm_eval *e, mm_sampler *s, const mm_eval_classes *c, const int *js, int nj, int32_t end,
		      int32_t *seqs, int32_t **rows, int *lens, int *slots, double *part, const double *first,
		      double *ll)
{
	int S = mm_sampler_slots(s) - 1, T = e->T, rc = 0;
	for (int i0 = 0; i0 < nj && !rc; i0 += S) {
		int k = nj - i0 < S ? nj - i0 : S;
		for (int i = 0; i < k && !rc; i++) {
			int j = js[i0 + i], n = 0;
			int32_t *q = seqs + (size_t)i * T;
			for (uint32_t u = 0; u < c->ntok[j]; u++)
				q[n++] = (int32_t)c->tok[j][u];
			q[n++] = end;
			rows[i] = q, lens[i] = n, slots[i] = i + 1;
			rc = mm_sampler_copy(s, i + 1, 0);
		}
		if (!rc)
			rc = mm_sampler_score(s, k, slots, (const int32_t *const *)rows, lens, part);
		for (int i = 0; i < k && !rc; i++)
			ll[js[i0 + i]] = first[js[i0 + i]] + part[i];
	}
	return rc;
}

// The scores that decide the rank of caption lab after one image (px, patch order), read at
// read_t with the eps of stream index: BOS BOI image EOI runs once, in slot 0; its last logits
// give every caption's first token. The own caption is scored whole; then only the captions
// whose first token alone scores at least as high: a log-probability only falls as tokens are
// added, so any other caption scores below the own one whatever its remaining tokens are. ll[j]
// is the score of caption j, or for one left out, its first token's (an upper bound, below
// ll[lab]). With prior (each caption's log-probability alone), also the captions whose first
// token less their prior reaches the own caption's PMI. *scored counts the captions scored whole.
static int score_image(mm_eval *e, mm_sampler *s, const mm_eval_classes *c, int lab, const uint8_t *px,
		       uint64_t index, const double *prior, float *z, int32_t *seqs, int32_t **rows, int *lens,
		       int *slots, double *part, double *first, int *js, double *ll, uint64_t *scored)
{
	int V = e->V, zero = 0, two = 2;
	size_t np = (size_t)e->NP * e->P;
	int32_t head[2] = {MM_TOK_BOS, MM_TOK_BOI};
	const int32_t *hp = head;
	mm_sampler_clear(s, 0);
	int rc = mm_sampler_append_tokens(s, 1, &zero, &hp, &two);
	if (rc)
		return rc;
	mm_rng r;
	mm_rng_seed(&r, e->o.seed ^ MM_EVAL_READ_TAG, index);
	float t = mm_read_level(mm_model_config(mm_sampler_model(s)), (float)e->o.read_t);
	mm_pixels_to_float(px, np, z);
	if (t < 1)
		mm_batch_noise_image(z, z, np, t, &r);
	if ((rc = mm_sampler_append_image(s, 1, &zero, z, t, 1)))
		return rc;
	const float *lg0 = mm_sampler_logits(s, 0);
	for (int j = 0; j < c->n; j++)
		ll[j] = first[j] = mm_logprob(lg0, V, c->ntok[j] ? (int)c->tok[j][0] : MM_TOK_EOS);
	if ((rc = score_rest(e, s, c, &lab, 1, MM_TOK_EOS, seqs, rows, lens, slots, part, first, ll)))
		return rc;
	int nj = 0;
	for (int j = 0; j < c->n; j++)
		if (j != lab && (first[j] >= ll[lab] || (prior && first[j] - prior[j] >= ll[lab] - prior[lab])))
			js[nj++] = j;
	*scored += 1 + (uint64_t)nj;
	return score_rest(e, s, c, js, nj, MM_TOK_EOS, seqs, rows, lens, slots, part, first, ll);
}

// Each caption's log-probability alone, as a caption-first document opens: its tokens and BOI
// after BOS, into prior[] (first[] and js[] are room).
static int score_prior(mm_eval *e, mm_sampler *s, const mm_eval_classes *c, int32_t *seqs, int32_t **rows,
		       int *lens, int *slots, double *part, double *first, int *js, double *prior)
{
	int zero = 0, one = 1;
	int32_t bos = MM_TOK_BOS;
	const int32_t *bp = &bos;
	mm_sampler_clear(s, 0);
	int rc = mm_sampler_append_tokens(s, 1, &zero, &bp, &one);
	if (rc)
		return rc;
	const float *lg = mm_sampler_logits(s, 0);
	for (int j = 0; j < c->n; j++)
		first[j] = mm_logprob(lg, e->V, c->ntok[j] ? (int)c->tok[j][0] : MM_TOK_BOI), js[j] = j;
	return score_rest(e, s, c, js, c->n, MM_TOK_BOI, seqs, rows, lens, slots, part, first, prior);
}

// Appends v to *a (n entries, room for *cap).
static int push_rank(uint32_t **a, size_t *cap, uint64_t n, uint32_t v)
{
	if (n == *cap) {
		size_t nc = *cap ? 2 * *cap : 256;
		uint32_t *na = realloc(*a, nc * sizeof *na);
		if (!na)
			return mm_fail(MM_ENOMEM, "out of memory");
		*a = na, *cap = nc;
	}
	(*a)[n] = v;
	return 0;
}

// The median of n ranks (0 for none) into *med.
static int median_rank(const uint32_t *rank, uint64_t n, double *med)
{
	*med = 0;
	if (!n)
		return 0;
	uint32_t *sorted = malloc(n * sizeof *sorted);
	if (!sorted)
		return mm_fail(MM_ENOMEM, "out of memory");
	memcpy(sorted, rank, n * sizeof *sorted);
	qsort(sorted, n, sizeof *sorted, cmp_u32);
	size_t h = n / 2;
	*med = n % 2 ? sorted[h] : 0.5 * ((double)sorted[h - 1] + sorted[h]);
	free(sorted);
	return 0;
}

// The rank of caption lab by score ll[j] - (prior ? prior[j] : 0): 1 + the captions scoring
// strictly higher, + those equal and listed before it.
static uint32_t rank_of(const double *ll, const double *prior, int n, int lab)
{
	uint32_t rank = 1;
	double own = ll[lab] - (prior ? prior[lab] : 0);
	for (int j = 0; j < n; j++) {
		double x = ll[j] - (prior ? prior[j] : 0);
		rank += x > own || (x == own && j < lab);
	}
	return rank;
}

int mm_eval_retrieve_captions(mm_eval *e, mm_model *m, const mm_eval_classes *c, int slots, int pmi,
			      mm_eval_ret *r)
{
	memset(r, 0, sizeof *r);
	if (!e->P)
		return mm_fail(MM_EINVAL, "eval: the model reads no images");
	if (slots < 1 || slots > 4096)
		return mm_fail(MM_EINVAL, "eval: %d slots not in [1, 4096]", slots);
	if (e->o.read_draws != 1)
		return mm_fail(MM_EINVAL, "eval: caption retrieval reads each image once, not %d times", e->o.read_draws);
	if (c->max_tok + 1 + e->NP + 3 > e->T)
		return mm_fail(MM_ERANGE, "eval: a caption of %d tokens after an image does not fit rows of %d",
			       c->max_tok, e->T);
	mm_sampler *s = NULL;
	size_t np = (size_t)e->NP * e->P;
	int rc = mm_sampler_new(&s, m, slots + 1);
	float *z = malloc(np * sizeof *z);
	int32_t *seqs = malloc((size_t)slots * e->T * sizeof *seqs);
	int32_t **rows = malloc((size_t)slots * sizeof *rows);
	int *lens = malloc((size_t)slots * sizeof *lens), *sl = malloc((size_t)slots * sizeof *sl);
	double *ll = malloc((size_t)c->n * sizeof *ll), *part = malloc((size_t)slots * sizeof *part);
	double *first = malloc((size_t)c->n * sizeof *first);
	int *js = malloc((size_t)c->n * sizeof *js);
	r->pmi = pmi != 0;
	if (pmi)
		r->prior = malloc((size_t)c->n * sizeof *r->prior);
	size_t cap = 0, cap_pmi = 0;
	if (!rc && (!z || !seqs || !rows || !lens || !sl || !ll || !part || !first || !js || (pmi && !r->prior)))
		rc = mm_fail(MM_ENOMEM, "out of memory");
	if (!rc && pmi)
		rc = score_prior(e, s, c, seqs, rows, lens, sl, part, first, js, r->prior);
	for (uint64_t g = 0; g < e->ndocs && !rc; g++) {
		if ((rc = mm_loader_read(e->ld, g, &e->doc)))
			break;
		const mm_segment *img = NULL;
		int lab = ev_pair_label(e, c, &e->doc, &img);
		if (lab == -1)
			r->unmatched++;
		if (lab < 0)
			continue;
		if ((rc = score_image(e, s, c, lab, img->pixels, r->images, r->prior, z, seqs, rows, lens, sl, part,
				      first, js, ll, &r->scored)))
			break;
		uint32_t rank = rank_of(ll, NULL, c->n, lab);
		if ((rc = push_rank(&r->rank, &cap, r->images, rank)))
			break;
		r->top1 += rank == 1;
		r->top5 += rank <= 5;
		if (pmi) {
			uint32_t rp = rank_of(ll, r->prior, c->n, lab);
			if ((rc = push_rank(&r->rank_pmi, &cap_pmi, r->images, rp)))
				break;
			r->top1_pmi += rp == 1;
			r->top5_pmi += rp <= 5;
		}
		r->images++;
		ev_progress(e, "caption retrieval", g + 1, e->ndocs);
	}
	r->n = c->n;
	if (!rc)
		rc = median_rank(r->rank, r->images, &r->median_rank);
	if (!rc && pmi)
		rc = median_rank(r->rank_pmi, r->images, &r->median_rank_pmi);
	mm_sampler_free(s);
	free(z), free(seqs), free(rows), free(lens), free(sl), free(ll), free(part), free(first), free(js);
	if (rc)
		mm_eval_ret_free(r);
	return rc;
}

void mm_eval_ret_free(mm_eval_ret *r)
{
	free(r->rank), free(r->rank_pmi), free(r->prior);
	r->rank = r->rank_pmi = NULL, r->prior = NULL;
}

void mm_eval_thumb(const uint8_t *px, int h, int w, int ch, int p, uint8_t *raster, float *out)
{
	mm_image_from_patches(px, (uint32_t)h, (uint32_t)w, (uint32_t)ch, (uint32_t)p, raster);
	int G = MM_THUMB;
	for (int i = 0; i < G; i++)
		for (int j = 0; j < G; j++) {
			// cell (i, j): rows [i h / G, (i + 1) h / G), at least one row and column
			int y0 = i * h / G, y1 = (i + 1) * h / G, x0 = j * w / G, x1 = (j + 1) * w / G;
			y1 = y1 > y0 ? y1 : y0 + 1, x1 = x1 > x0 ? x1 : x0 + 1;
			for (int k = 0; k < 3; k++) {
				double sum = 0;
				int kc = ch == 3 ? k : 0;
				for (int y = y0; y < y1; y++)
					for (int x = x0; x < x1; x++)
						sum += raster[((size_t)y * w + x) * ch + kc];
				out[(i * G + j) * 3 + k] = (float)(sum / ((double)(y1 - y0) * (x1 - x0)) / 255.0);
			}
		}
}

void mm_eval_nn_free(mm_eval_nn *r)
{
	free(r->nearest), free(r->own), free(r->ref_px);
	r->nearest = r->own = NULL, r->ref_px = NULL;
}

// The reference set: every image of ref's documents, its thumbnail and the caption of c it
// carries (-1: none).
static int read_refs(mm_eval *ref, const mm_eval_classes *c, mm_eval_nn *r, float **thumbs, int **label)
{
	size_t np = (size_t)ref->NP * ref->P, cap = 0, tn = (size_t)MM_THUMB * MM_THUMB * 3;
	uint8_t *raster = malloc(np);
	int rc = raster ? 0 : mm_fail(MM_ENOMEM, "out of memory");
	for (uint64_t g = 0; g < ref->ndocs && !rc; g++) {
		if ((rc = mm_loader_read(ref->ld, g, &ref->doc)))
			break;
		const mm_segment *pimg = NULL;
		int lab = ev_pair_label(ref, c, &ref->doc, &pimg);
		for (uint32_t k = 0; k < ref->doc.n_segs && !rc; k++) {
			const mm_segment *sg = &ref->doc.segs[k];
			if (sg->type != MM_SEG_IMAGE)
				continue;
			if (r->refs == cap) {
				size_t nc = cap ? 2 * cap : 256;
				uint8_t *npx = realloc(r->ref_px, nc * np);
				if (npx)
					r->ref_px = npx;
				float *nt = realloc(*thumbs, nc * tn * sizeof *nt);
				if (nt)
					*thumbs = nt;
				int *nl = realloc(*label, nc * sizeof *nl);
				if (nl)
					*label = nl;
				if (!npx || !nt || !nl) {
					rc = mm_fail(MM_ENOMEM, "out of memory for %zu reference images", nc);
					break;
				}
				cap = nc;
			}
			memcpy(r->ref_px + r->refs * np, sg->pixels, np);
			mm_eval_thumb(sg->pixels, ref->c.img_h, ref->c.img_w, ref->c.img_c, ref->c.patch, raster,
				      *thumbs + r->refs * tn);
			(*label)[r->refs++] = sg == pimg ? lab : -1;
		}
	}
	free(raster);
	return rc;
}

static float dist2(const float *a, const float *b, size_t n)
{
	float d = 0;
	for (size_t i = 0; i < n; i++)
		d += (a[i] - b[i]) * (a[i] - b[i]);
	return d;
}

int mm_eval_t2i_nearest(mm_eval *ref, mm_eval_gen *g, const mm_eval_t2i_opts *to, mm_eval_nn *r, uint8_t *images)
{
	const mm_eval_classes *c = ev_gen_classes(g);
	memset(r, 0, sizeof *r);
	if (!ref->P)
		return mm_fail(MM_EINVAL, "eval: the model reads no images");
	if (to->per_class < 1)
		return mm_fail(MM_EINVAL, "eval: %d images per caption", to->per_class);
	size_t np = (size_t)ref->NP * ref->P, N = (size_t)to->per_class, tn = (size_t)MM_THUMB * MM_THUMB * 3;
	float *thumbs = NULL, *gt = malloc(tn * sizeof *gt);
	int *label = NULL;
	uint8_t *raster = malloc(np), *own = images ? NULL : malloc(N * np);
	r->n = c->n, r->per_class = to->per_class;
	r->nearest = malloc((size_t)c->n * N * sizeof *r->nearest);
	r->own = malloc((size_t)c->n * sizeof *r->own);
	int rc = 0;
	if (!gt || !raster || (!images && !own) || !r->nearest || !r->own)
		rc = mm_fail(MM_ENOMEM, "out of memory");
	if (!rc)
		rc = read_refs(ref, c, r, &thumbs, &label);
	if (!rc && !r->refs)
		rc = mm_fail(MM_EINVAL, "eval: no reference images");
	for (int j = 0; j < c->n && !rc; j++) {
		r->own[j] = -1;
		for (uint64_t k = 0; k < r->refs && r->own[j] < 0; k++)
			if (label[k] == j)
				r->own[j] = (int32_t)k;
		r->without_ref += r->own[j] < 0;
	}
	mm_gen_opts o;
	ev_t2i_gen_opts(to, &o);
	for (int j = 0; j < c->n && !rc; j++) {
		uint8_t *px = images ? images + (size_t)j * N * np : own;
		if ((rc = ev_generate(g, j, to->per_class, &o, px)))
			break;
		for (size_t i = 0; i < N; i++) {
			mm_eval_thumb(px + i * np, ref->c.img_h, ref->c.img_w, ref->c.img_c, ref->c.patch, raster, gt);
			// the five nearest, by insertion (ties: the earlier reference image first)
			float bd[5] = {0};
			int64_t bk[5] = {0};
			int nb = 0;
			for (uint64_t k = 0; k < r->refs; k++) {
				float d = dist2(gt, thumbs + k * tn, tn);
				if (nb == 5 && !(d < bd[4]))
					continue;
				int at = nb < 5 ? nb++ : 4;
				while (at > 0 && d < bd[at - 1]) {
					bd[at] = bd[at - 1], bk[at] = bk[at - 1];
					at--;
				}
				bd[at] = d, bk[at] = (int64_t)k;
			}
			r->nearest[(size_t)j * N + i] = (int32_t)bk[0];
			int hit = 0;
			for (int q = 0; q < nb && !hit; q++)
				if (label[bk[q]] == j)
					hit = q + 1;
			r->top1 += hit == 1;
			r->top5 += hit >= 1;
			r->generated++;
		}
		ev_progress(ref, "text to image retrieval", (uint64_t)(j + 1) * N, (uint64_t)c->n * N);
	}
	free(thumbs), free(gt), free(label), free(raster), free(own);
	if (rc)
		mm_eval_nn_free(r);
	return rc;
}
