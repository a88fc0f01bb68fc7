// mm-eval's output: a table for people, one JSON object for scripts (see eval_out.h).
#include "eval_out.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "image.h"

#include "cli.h"
#include "font.h"

static double pct(uint64_t a, uint64_t b) { return b ? 100.0 * (double)a / (double)b : NAN; }

static void print_confusion(FILE *f, const mm_eval_classes *c, const uint64_t *m, int cols, const char *what)
{
	fprintf(f, "  confusion, %s (rows: true class, columns: predicted%s)\n", what,
		cols > c->n ? "; '-': no class" : "");
	fprintf(f, "  %4s", "");
	for (int j = 0; j < cols; j++)
		if (j < c->n)
			fprintf(f, " %5d", j);
		else
			fprintf(f, " %5s", "-");
	fputc('\n', f);
	for (int i = 0; i < c->n; i++) {
		fprintf(f, "  %4d", i);
		for (int j = 0; j < cols; j++)
			fprintf(f, " %5llu", (unsigned long long)m[(size_t)i * cols + j]);
		fprintf(f, "  %s\n", c->text[i]);
	}
}

static void table_losses(FILE *f, const struct eval_report *r)
{
	fprintf(f, "\nLosses%*s", 31, "");
	for (int k = 0; k < r->nloss; k++)
		fprintf(f, "%12s", r->loss_name[k]);
	fprintf(f, "\n");
	const mm_eval_losses *l = r->loss;
#define ROW(label, fmt, expr)                                   \
	do {                                                    \
		fprintf(f, "  %-35s", label);                   \
		for (int k = 0; k < r->nloss; k++)              \
			fprintf(f, fmt, expr);                  \
		fputc('\n', f);                                 \
	} while (0)
	ROW("text tokens scored", "%12llu", (unsigned long long)l[k].tokens);
	ROW("  their UTF-8 bytes", "%12llu", (unsigned long long)l[k].bytes);
	ROW("text NLL (nats per token)", "%12.4f", l[k].nll);
	ROW("perplexity", "%12.4f", l[k].ppl);
	ROW("bits per byte", "%12.4f", l[k].bits_per_byte);
	if (l[0].buckets) {
		ROW("images scored at each level", "%12llu", (unsigned long long)l[k].images);
		char lab[64];
		snprintf(lab, sizeof lab, "image loss (mean of %d levels)", l[0].buckets);
		ROW(lab, "%12.4f", l[k].image_loss);
		for (int b = 0; b < l[0].buckets; b++) {
			snprintf(lab, sizeof lab, "  t = %.4f", l[0].t[b]);
			ROW(lab, "%12.4f", l[k].loss[b]);
		}
	}
#undef ROW
}

static void table_bpd(FILE *f, const struct eval_report *r)
{
	const mm_eval_bpd *b = &r->bpd;
	fprintf(f, "\nBits per dimension (%s; %llu images of %d values, %d draws each, t0 = %g, t1 = %g%s)\n",
		r->weights, (unsigned long long)b->images, b->dims, b->samples, b->t0, b->t1,
		r->bpd_auto ? ", the best of the curve below" : "");
	fprintf(f, "  %-35s%12.4f +- %.4f\n", "bound", b->total, b->total_se);
	fprintf(f, "  %-35s%12.4f +- %.4f\n", "  diffusion term", b->diffusion, b->diffusion_se);
	fprintf(f, "  %-35s%12.3g\n", "  prior term", b->prior);
	fprintf(f, "  %-35s%12.3g\n", "  8-bit reconstruction term", b->recon);
	fprintf(f, "  the bound with an earlier clean end t1' (the same draws):\n");
	fprintf(f, "  %12s %12s %9s %14s\n", "t1'", "bound", "+-", "reconstruction");
	for (int c = 0; c < b->ncuts; c++)
		fprintf(f, "  %12g %12.4f %9.4f %14.3g\n", b->cut_t1[c], b->cut_total[c], b->cut_se[c], b->cut_recon[c]);
}

// "images read at t = 0.9", where the noise shift moves it ", 0.694 after the noise shift", and
// for more than one draw ", 4 draws averaged".
static void print_read(FILE *f, const struct eval_report *r, int draws)
{
	fprintf(f, "images read at t = %g", r->read_t);
	if ((float)r->read_level != (float)r->read_t)
		fprintf(f, ", %.3g after the noise shift", r->read_level);
	if (draws > 1)
		fprintf(f, ", %d draws averaged", draws);
}

static void table_classes(FILE *f, const struct eval_report *r)
{
	const mm_eval_cls *c = &r->cls;
	fprintf(f, "\nClassification (%s; %d classes, %llu labelled images, %llu caption pairs of no class; ", r->weights,
		c->n, (unsigned long long)c->images, (unsigned long long)c->unmatched);
	print_read(f, r, r->read_draws);
	fputs(")\n", f);
	fprintf(f, "  %-35s%11.2f%%\n", "by caption likelihood", pct(c->correct, c->images));
	if (c->greedy)
		fprintf(f, "  %-35s%11.2f%%\n", "greedy caption, exact", pct(c->correct_greedy, c->images));
	print_confusion(f, r->classes, c->confusion, c->n, "by likelihood");
	if (c->greedy)
		print_confusion(f, r->classes, c->confusion_greedy, c->n + 1, "greedy caption");
}

static void table_t2i(FILE *f, const struct eval_report *r)
{
	const mm_eval_t2i *t = &r->t2i;
	fprintf(f, "\nText to image (%s; %d images per caption, %s sampler, %d steps, guidance %g at t in [%g, %g])\n",
		r->weights, t->per_class, r->sampler, r->steps, r->cfg, r->cfg_lo, r->cfg_hi);
	for (int i = 0; i < t->n; i++)
		fprintf(f, "  %4d %-30s%11.2f%%\n", i, r->classes->text[i],
			pct(t->confusion[(size_t)i * t->n + i], (uint64_t)t->per_class));
	fprintf(f, "  %-35s%11.2f%%\n", "mean", 100 * t->mean);
	print_confusion(f, r->classes, t->confusion, t->n, "generated images");
}

static void table_ret(FILE *f, const struct eval_report *r)
{
	const mm_eval_ret *t = &r->ret;
	fprintf(f, "\nCaption retrieval (%s; %llu images ranked among the %d captions of %s, %llu caption pairs "
		   "not in the list; ",
		r->weights, (unsigned long long)t->images, t->n, r->captions_file, (unsigned long long)t->unmatched);
	print_read(f, r, 1);
	fputs(")\n", f);
	fprintf(f, "  %-35s%11.2f%%\n", "top-1", pct(t->top1, t->images));
	fprintf(f, "  %-35s%11.2f%%\n", "top-5", pct(t->top5, t->images));
	fprintf(f, "  %-35s%12g\n", "median rank", t->median_rank);
	if (t->pmi) {
		fprintf(f, "  %-35s%11.2f%%\n", "top-1 by PMI", pct(t->top1_pmi, t->images));
		fprintf(f, "  %-35s%11.2f%%\n", "top-5 by PMI", pct(t->top5_pmi, t->images));
		fprintf(f, "  %-35s%12g\n", "median rank by PMI", t->median_rank_pmi);
	}
	fprintf(f, "  %-35s%12.1f\n", "captions scored whole per image", t->images ? (double)t->scored / t->images : 0.0);
}

static void table_nn(FILE *f, const struct eval_report *r)
{
	const mm_eval_nn *t = &r->nn;
	fprintf(f, "\nText-to-image retrieval (%s; %d images per caption of %s, %s sampler, %d steps, guidance %g at t in [%g, %g]; "
		   "nearest of %llu reference images by L2 on %dx%d RGB thumbnails; %d captions without one)\n",
		r->weights, t->per_class, r->t2i_file, r->sampler, r->steps, r->cfg, r->cfg_lo, r->cfg_hi,
		(unsigned long long)t->refs,
		MM_THUMB, MM_THUMB, t->without_ref);
	fprintf(f, "  %-35s%11.2f%%\n", "top-1", pct(t->top1, t->generated));
	fprintf(f, "  %-35s%11.2f%%\n", "top-5", pct(t->top5, t->generated));
}

void eval_print_table(FILE *f, const struct eval_report *r)
{
	fprintf(f, "mm-eval: %s on %llu documents (seed %lld, %lld threads)\n", r->model, (unsigned long long)r->docs,
		r->seed, r->threads);
	if (r->nloss)
		table_losses(f, r);
	if (r->has_bpd)
		table_bpd(f, r);
	if (r->has_cls)
		table_classes(f, r);
	if (r->has_t2i)
		table_t2i(f, r);
	if (r->has_ret)
		table_ret(f, r);
	if (r->has_nn)
		table_nn(f, r);
}

// ---- JSON ----

static json_t *num(double x) { return isfinite(x) ? json_real(x) : json_null(); }
static json_t *cnt(uint64_t x) { return json_integer((json_int_t)x); }

static json_t *matrix(const uint64_t *m, int rows, int cols)
{
	json_t *a = json_array();
	for (int i = 0; i < rows; i++) {
		json_t *row = json_array();
		for (int j = 0; j < cols; j++)
			json_array_append_new(row, cnt(m[(size_t)i * cols + j]));
		json_array_append_new(a, row);
	}
	return a;
}

static json_t *json_losses(const mm_eval_losses *l)
{
	json_t *o = json_pack("{s:o, s:o, s:o, s:o, s:o}", "tokens", cnt(l->tokens), "bytes", cnt(l->bytes), "nll",
			      num(l->nll), "perplexity", num(l->ppl), "bits_per_byte", num(l->bits_per_byte));
	json_object_set_new(o, "images", cnt(l->images));
	json_object_set_new(o, "image_loss", num(l->image_loss));
	json_t *b = json_array();
	for (int k = 0; k < l->buckets; k++)
		json_array_append_new(b, json_pack("{s:o, s:o}", "t", num(l->t[k]), "loss", num(l->loss[k])));
	json_object_set_new(o, "levels", b);
	return o;
}

static json_t *json_bpd(const struct eval_report *r)
{
	const mm_eval_bpd *b = &r->bpd;
	json_t *o = json_pack("{s:s, s:o, s:i, s:i, s:o, s:o, s:b}", "weights", r->weights, "images", cnt(b->images),
			      "dims", b->dims, "samples", b->samples, "t0", num(b->t0), "t1", num(b->t1), "t1_auto",
			      r->bpd_auto);
	json_object_set_new(o, "bpd", num(b->total));
	json_object_set_new(o, "bpd_se", num(b->total_se));
	json_object_set_new(o, "diffusion", num(b->diffusion));
	json_object_set_new(o, "diffusion_se", num(b->diffusion_se));
	json_object_set_new(o, "prior", num(b->prior));
	json_object_set_new(o, "recon", num(b->recon));
	json_t *cuts = json_array();
	for (int c = 0; c < b->ncuts; c++)
		json_array_append_new(cuts, json_pack("{s:o, s:o, s:o, s:o}", "t1", num(b->cut_t1[c]), "bpd",
						      num(b->cut_total[c]), "bpd_se", num(b->cut_se[c]), "recon",
						      num(b->cut_recon[c])));
	json_object_set_new(o, "by_t1", cuts);
	return o;
}

static json_t *json_captions(const mm_eval_classes *c)
{
	json_t *a = json_array();
	for (int i = 0; i < c->n; i++)
		json_array_append_new(a, json_string(c->text[i]));
	return a;
}

static json_t *json_classes(const struct eval_report *r)
{
	const mm_eval_cls *c = &r->cls;
	json_t *o = json_pack("{s:s, s:o, s:o, s:o}", "weights", r->weights, "captions", json_captions(r->classes),
			      "images", cnt(c->images), "unmatched", cnt(c->unmatched));
	json_object_set_new(o, "read_t", num(r->read_t));
	json_object_set_new(o, "read_level", num(r->read_level));
	json_object_set_new(o, "read_draws", json_integer(r->read_draws));
	json_object_set_new(o, "correct", cnt(c->correct));
	json_object_set_new(o, "accuracy", num(c->images ? (double)c->correct / (double)c->images : NAN));
	json_object_set_new(o, "confusion", matrix(c->confusion, c->n, c->n));
	if (c->greedy) {
		double acc = c->images ? (double)c->correct_greedy / (double)c->images : NAN;
		json_object_set_new(o, "greedy", json_pack("{s:o, s:o, s:o}", "correct", cnt(c->correct_greedy),
							   "accuracy", num(acc), "confusion",
							   matrix(c->confusion_greedy, c->n, c->n + 1)));
	}
	return o;
}

// Guidance's interval of noise levels, [A, B].
static json_t *interval(const struct eval_report *r)
{
	json_t *a = json_array();
	json_array_append_new(a, num(r->cfg_lo));
	json_array_append_new(a, num(r->cfg_hi));
	return a;
}

static json_t *json_t2i(const struct eval_report *r)
{
	const mm_eval_t2i *t = &r->t2i;
	json_t *o = json_pack("{s:s, s:i, s:s, s:i, s:o, s:o}", "weights", r->weights, "per_class", t->per_class,
			      "sampler", r->sampler, "steps", r->steps, "cfg", num(r->cfg), "cfg_interval", interval(r));
	json_t *acc = json_array();
	for (int i = 0; i < t->n; i++)
		json_array_append_new(acc, num((double)t->confusion[(size_t)i * t->n + i] / t->per_class));
	json_object_set_new(o, "accuracy", acc);
	json_object_set_new(o, "mean", num(t->mean));
	json_object_set_new(o, "confusion", matrix(t->confusion, t->n, t->n));
	return o;
}

void eval_print_json(FILE *f, const struct eval_report *r)
{
	json_t *o = json_pack("{s:s, s:o, s:I, s:I, s:I}", "model", r->model, "docs", cnt(r->docs), "seed",
			      (json_int_t)r->seed, "threads", (json_int_t)r->threads, "batch", (json_int_t)r->batch);
	if (!o)
		die("out of memory");
	if (r->nloss) {
		json_t *l = json_object();
		for (int k = 0; k < r->nloss; k++)
			json_object_set_new(l, r->loss_name[k], json_losses(&r->loss[k]));
		json_object_set_new(o, "losses", l);
	}
	if (r->has_bpd)
		json_object_set_new(o, "bpd", json_bpd(r));
	if (r->has_cls)
		json_object_set_new(o, "classes", json_classes(r));
	if (r->has_t2i)
		json_object_set_new(o, "t2i", json_t2i(r));
	if (r->has_ret) {
		const mm_eval_ret *t = &r->ret;
		json_t *ret = json_pack("{s:s, s:s, s:i, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "weights", r->weights,
					"captions", r->captions_file, "n", t->n, "images", cnt(t->images), "unmatched",
					cnt(t->unmatched), "scored", cnt(t->scored), "read_t", num(r->read_t), "top1",
					num(pct(t->top1, t->images) / 100), "top5", num(pct(t->top5, t->images) / 100),
					"median_rank", num(t->median_rank));
		json_object_set_new(ret, "read_level", num(r->read_level));
		if (t->pmi) {
			json_object_set_new(ret, "top1_pmi", num(pct(t->top1_pmi, t->images) / 100));
			json_object_set_new(ret, "top5_pmi", num(pct(t->top5_pmi, t->images) / 100));
			json_object_set_new(ret, "median_rank_pmi", num(t->median_rank_pmi));
		}
		json_object_set_new(o, "caption_retrieval", ret);
	}
	if (r->has_nn) {
		const mm_eval_nn *t = &r->nn;
		json_object_set_new(o, "t2i_retrieval",
				    json_pack("{s:s, s:s, s:i, s:s, s:i, s:o, s:o, s:o, s:i, s:o, s:i, s:o, s:o}", "weights",
					      r->weights, "captions", r->t2i_file, "per_caption", t->per_class,
					      "sampler", r->sampler, "steps", r->steps, "cfg", num(r->cfg), "cfg_interval",
					      interval(r), "references",
					      cnt(t->refs), "thumbnail", MM_THUMB, "generated", cnt(t->generated),
					      "without_reference", t->without_ref, "top1",
					      num(pct(t->top1, t->generated) / 100), "top5",
					      num(pct(t->top5, t->generated) / 100)));
	}
	char *s = json_dumps(o, JSON_PRESERVE_ORDER | JSON_COMPACT | JSON_REAL_PRECISION(17));
	if (!s)
		die("out of memory");
	cli_json_shortest(s);
	fprintf(f, "%s\n", s);
	free(s);
	json_decref(o);
}

// ---- Sample grids ----

void eval_write_grids(const char *dir, const mm_eval_classes *c, const mm_config *cfg, const uint8_t *images,
		      int per_class)
{
	if (mkdir(dir, 0777) && errno != EEXIST)
		die("%s: cannot create the directory: %s", dir, strerror(errno));
	uint32_t h = (uint32_t)cfg->img_h, w = (uint32_t)cfg->img_w, ch = (uint32_t)cfg->img_c, gap = 2;
	uint32_t cols = 1, n = (uint32_t)per_class;
	while (cols * cols < n)
		cols++;
	uint32_t rows = (n + cols - 1) / cols;
	size_t np = (size_t)h * w * ch;
	mm_image grid, one;
	if (mm_image_alloc(&grid, cols * (w + gap) - gap, rows * (h + gap) - gap, ch) || mm_image_alloc(&one, w, h, ch))
		die("out of memory for a grid of %u images", n);
	for (int j = 0; j < c->n; j++) {
		memset(grid.px, 255, (size_t)grid.w * grid.h * ch);
		for (uint32_t i = 0; i < n; i++) {
			mm_image_from_patches(images + ((size_t)j * n + i) * np, h, w, ch, (uint32_t)cfg->patch, one.px);
			uint32_t x0 = (i % cols) * (w + gap), y0 = (i / cols) * (h + gap);
			for (uint32_t y = 0; y < h; y++)
				memcpy(grid.px + ((size_t)(y0 + y) * grid.w + x0) * ch, one.px + (size_t)y * w * ch, (size_t)w * ch);
		}
		// The caption in the name, reduced to letters, digits and dashes.
		char name[64], path[4096];
		size_t k = 0;
		for (const char *p = c->text[j]; *p && k + 1 < sizeof name; p++) {
			int ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9');
			if (ok || (k && name[k - 1] != '-'))
				name[k++] = ok ? *p : '-';
		}
		while (k && name[k - 1] == '-')
			k--;
		name[k] = 0;
		snprintf(path, sizeof path, "%s/%02d%s%s.png", dir, j, k ? "-" : "", name);
		int rc = mm_image_save_png(path, &grid);
		if (rc)
			die_mm(rc);
	}
	mm_image_free(&grid);
	mm_image_free(&one);
}

void eval_write_compare(const char *path, const mm_eval_classes *c, const mm_config *cfg, const mm_eval_nn *nn,
			const uint8_t *images, int rows, int scale)
{
	uint32_t h = (uint32_t)cfg->img_h, w = (uint32_t)cfg->img_w, ch = (uint32_t)cfg->img_c, p = (uint32_t)cfg->patch;
	size_t np = (size_t)h * w * ch;
	int cols = nn->per_class + 2;
	rows = rows < c->n ? rows : c->n;
	mm_image *im = calloc((size_t)rows * cols, sizeof *im);
	const mm_image **cell = calloc((size_t)rows * cols, sizeof *cell);
	if (!im || !cell)
		die("out of memory for the comparison grid");
	for (int r = 0; r < rows; r++)
		for (int k = 0; k < cols; k++) {
			const uint8_t *src = k == 0 ? (nn->own[r] >= 0 ? nn->ref_px + (size_t)nn->own[r] * np : NULL)
					   : k == cols - 1
					       ? nn->ref_px + (size_t)nn->nearest[(size_t)r * nn->per_class] * np
					       : images + ((size_t)r * nn->per_class + (size_t)(k - 1)) * np;
			mm_image *a = &im[r * cols + k];
			if (!src)
				continue;
			if (mm_image_alloc(a, w, h, ch))
				die("out of memory for the comparison grid");
			mm_image_from_patches(src, h, w, ch, p, a->px);
			cell[r * cols + k] = a;
		}
	int rc = grid_save(path, cell, rows, cols, (const char *const *)c->text, (uint32_t)scale);
	for (int i = 0; i < rows * cols; i++)
		if (cell[i])
			mm_image_free(&im[i]);
	free(im), free(cell);
	if (rc)
		die_mm(rc);
}
