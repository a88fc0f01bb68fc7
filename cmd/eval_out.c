// mm-eval's output: a table for people, one JSON object for scripts (see eval_out.h).
#include "eval_out.h"

#include <jansson.h>
#include <math.h>
#include <string.h>

#include "cli.h"

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
	fprintf(f, "\nBits per dimension (%s; %llu images of %d values, %d draws each, t0 = %g, t1 = %g)\n",
		r->weights, (unsigned long long)b->images, b->dims, b->samples, b->t0, b->t1);
	fprintf(f, "  %-35s%12.4f +- %.4f\n", "bound", b->total, b->total_se);
	fprintf(f, "  %-35s%12.4f +- %.4f\n", "  diffusion term", b->diffusion, b->diffusion_se);
	fprintf(f, "  %-35s%12.3g\n", "  prior term", b->prior);
	fprintf(f, "  %-35s%12.3g\n", "  8-bit reconstruction term", b->recon);
}

static void table_classes(FILE *f, const struct eval_report *r)
{
	const mm_eval_cls *c = &r->cls;
	fprintf(f, "\nClassification (%s; %d classes, %llu labelled images, %llu caption pairs of no class)\n",
		r->weights, c->n, (unsigned long long)c->images, (unsigned long long)c->unmatched);
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
	fprintf(f, "\nText to image (%s; %d images per caption, %s sampler, %d steps, guidance %g)\n", r->weights,
		t->per_class, r->sampler, r->steps, r->cfg);
	for (int i = 0; i < t->n; i++)
		fprintf(f, "  %4d %-30s%11.2f%%\n", i, r->classes->text[i],
			pct(t->confusion[(size_t)i * t->n + i], (uint64_t)t->per_class));
	fprintf(f, "  %-35s%11.2f%%\n", "mean", 100 * t->mean);
	print_confusion(f, r->classes, t->confusion, t->n, "generated images");
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
	json_t *o = json_pack("{s:s, s:o, s:i, s:i, s:o, s:o}", "weights", r->weights, "images", cnt(b->images),
			      "dims", b->dims, "samples", b->samples, "t0", num(b->t0), "t1", num(b->t1));
	json_object_set_new(o, "bpd", num(b->total));
	json_object_set_new(o, "bpd_se", num(b->total_se));
	json_object_set_new(o, "diffusion", num(b->diffusion));
	json_object_set_new(o, "diffusion_se", num(b->diffusion_se));
	json_object_set_new(o, "prior", num(b->prior));
	json_object_set_new(o, "recon", num(b->recon));
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

static json_t *json_t2i(const struct eval_report *r)
{
	const mm_eval_t2i *t = &r->t2i;
	json_t *o = json_pack("{s:s, s:i, s:s, s:i, s:o}", "weights", r->weights, "per_class", t->per_class,
			      "sampler", r->sampler, "steps", r->steps, "cfg", num(r->cfg));
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
	char *s = json_dumps(o, JSON_PRESERVE_ORDER | JSON_COMPACT | JSON_REAL_PRECISION(17));
	if (!s)
		die("out of memory");
	fprintf(f, "%s\n", s);
	free(s);
	json_decref(o);
}
