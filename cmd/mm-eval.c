// mm-eval: measures a checkpoint on held-out shards (man/mm-eval.1). The work is in lib/eval.c,
// lib/bpd.c and lib/eval_gen.c; the output in cmd/eval_out.c.
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "eval.h"
#include "eval_out.h"
#include "mm.h"
#include "opts.h"
#include "train.h"

static struct {
	struct opt_list data;
	char *model, *classes, *sampler, *samples;
	int ema, bpd, bpd_uncond, no_losses, json, help;
	long long max_docs, batch, buckets, bpd_samples, per_class, steps, seed, threads;
	double bpd_t0, bpd_t1, cfg;
} o = {.batch = 32, .buckets = 10, .bpd_samples = 10, .bpd_t0 = 1e-3, .bpd_t1 = 0.999, .steps = 50, .cfg = 2,
       .seed = 1};

#define BIG 1e18
static struct opt table[] = {
	{"Input", OPT_HEADING, 0, 0, 0, 0, 0, 0, 0},
	{"model", OPT_STR, &o.model, "CKPT|DIR", "checkpoint file, or run directory (its latest checkpoint)", 0, 0, 0, 0},
	{"data", OPT_LIST, &o.data, "PATTERN", "held-out shards: a file, a directory or a quoted glob (repeatable)", 0, 0, 0, 0},
	{"ema", OPT_FLAG, &o.ema, NULL, "the EMA weights for --bpd, --classes and --per-class (the losses show both)", 0, 1, 0, 0},
	{"max-docs", OPT_INT, &o.max_docs, "N", "read only the first N documents (0: all)", 0, BIG, 0, 0},
	{"batch", OPT_INT, &o.batch, "B", "rows of the model's context per model call (32)", 1, 65536, 0, 0},
	{"Losses", OPT_HEADING, 0, 0, 0, 0, 0, 0, 0},
	{"buckets", OPT_INT, &o.buckets, "K", "noise levels t = (k + 0.5) / K of the image loss (10)", 1, MM_EVAL_MAX_BUCKETS, 0, 0},
	{"no-losses", OPT_FLAG, &o.no_losses, NULL, "skip the text and image losses", 0, 1, 0, 0},
	{"Bits per dimension", OPT_HEADING, 0, 0, 0, 0, 0, 0, 0},
	{"bpd", OPT_FLAG, &o.bpd, NULL, "the variational bound of each image, in bits per dimension", 0, 1, 0, 0},
	{"bpd-samples", OPT_INT, &o.bpd_samples, "S", "(t, eps) draws per image (10)", 1, 1000000, 0, 0},
	{"bpd-t0", OPT_FLOAT, &o.bpd_t0, "T0", "noisiest level of the bound, 0 <= T0 < 0.5 (0.001)", 0, 0.5, 0, 0},
	{"bpd-t1", OPT_FLOAT, &o.bpd_t1, "T1", "cleanest level, 0.5 < T1 <= 0.99999 (0.999)", 0.5, 0.99999, 0, 0},
	{"bpd-uncond", OPT_FLAG, &o.bpd_uncond, NULL, "images alone, not after their caption", 0, 1, 0, 0},
	{"Classes", OPT_HEADING, 0, 0, 0, 0, 0, 0, 0},
	{"classes", OPT_STR, &o.classes, "FILE", "class captions, one a line: classify the labelled images", 0, 0, 0, 0},
	{"per-class", OPT_INT, &o.per_class, "N", "also generate N images per caption and classify them (0)", 0, 1000000, 0, 0},
	{"sampler", OPT_STR, &o.sampler, "euler|heun", "ODE sampler of the generated images (heun)", 0, 0, 0, 0},
	{"steps", OPT_INT, &o.steps, "N", "sampler steps (50)", 1, 100000, 0, 0},
	{"cfg", OPT_FLOAT, &o.cfg, "G", "classifier-free guidance scale, 1 = none (2)", 0, 100, 0, 0},
	{"samples", OPT_STR, &o.samples, "DIR", "write a grid of the generated images of each class into DIR", 0, 0, 0, 0},
	{"Output", OPT_HEADING, 0, 0, 0, 0, 0, 0, 0},
	{"json", OPT_FLAG, &o.json, NULL, "print one JSON object instead of the table", 0, 1, 0, 0},
	{"seed", OPT_INT, &o.seed, "S", "seed of the bound's draws and of the generated images (1)", 0, BIG, 0, 0},
	{"threads", OPT_INT, &o.threads, "N", "OpenMP and OpenBLAS threads (0: all processors)", 0, 4096, 0, 0},
	{"help", OPT_FLAG, &o.help, NULL, "show this help", 0, 1, 0, 0},
	{NULL, 0, 0, 0, 0, 0, 0, 0, 0},
};

static const char usage[] = "usage: mm-eval --model CKPT|DIR --data PATTERN [--bpd] [--classes FILE [--per-class N]] [options]";

static void parse(int argc, char **argv)
{
	opts_parse(table, argc, argv);
	if (o.help) {
		opts_help(table, usage);
		exit(0);
	}
	if (!o.model)
		die_usage("--model is required");
	if (!o.data.n)
		die_usage("--data is required");
	if (!(o.bpd_t0 < 0.5) || !(o.bpd_t1 > 0.5))
		die_usage("the bound needs --bpd-t0 below 0.5 and --bpd-t1 above 0.5");
	if (o.per_class && !o.classes)
		die_usage("--per-class needs --classes");
	if (o.samples && !o.per_class)
		die_usage("--samples needs --per-class");
	if (o.sampler && strcmp(o.sampler, "euler") && strcmp(o.sampler, "heun"))
		die_usage("--sampler: '%s' is not euler or heun", o.sampler);
	if (o.no_losses && !o.bpd && !o.classes)
		die_usage("nothing to evaluate: --no-losses without --bpd or --classes");
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void progress(void *ctx, const char *stage, uint64_t done, uint64_t total)
{
	(void)ctx;
	fprintf(stderr, "\r%s: %s %llu/%llu\033[K", cli_prog, stage, (unsigned long long)done, (unsigned long long)total);
}

static void timed(const char *what, double t0)
{
	if (isatty(2))
		fputs("\r\033[K", stderr);
	fprintf(stderr, "%s: %s: %.1f s\n", cli_prog, what, now() - t0);
}

static void check(int rc)
{
	if (rc) {
		if (isatty(2))
			fputs("\r\033[K", stderr);
		die_mm(rc);
	}
}

int main(int argc, char **argv)
{
	cli_init(argv[0]);
	parse(argc, argv);
	train_set_threads(o.threads);
	struct eval_report r = {.model = o.model, .seed = o.seed, .threads = omp_get_max_threads(), .batch = o.batch,
				.weights = o.ema ? "ema" : "weights"};
	mm_model *m[2] = {NULL, NULL}; // the weights and the EMA weights
	mm_tokenizer *tok, *tok2 = NULL;
	int has_ema = 0;
	check(mm_ckpt_load_model(o.model, 0, (int)o.batch, &m[0], &tok, &has_ema));
	if (o.ema && !has_ema)
		die("%s: the checkpoint holds no EMA weights (mm-train --ema D keeps them)", o.model);
	if (o.ema || (has_ema && !o.no_losses))
		check(mm_ckpt_load_model(o.model, 1, (int)o.batch, &m[1], &tok2, NULL));
	mm_model *main_model = o.ema ? m[1] : m[0];
	const mm_config *cfg = mm_model_config(m[0]);

	mm_eval_opts eo;
	mm_eval_opts_default(&eo);
	eo.batch = (int)o.batch, eo.max_docs = (uint64_t)o.max_docs, eo.seed = (uint64_t)o.seed;
	eo.buckets = (int)o.buckets, eo.bpd_samples = (int)o.bpd_samples;
	eo.bpd_t0 = o.bpd_t0, eo.bpd_t1 = o.bpd_t1, eo.bpd_uncond = o.bpd_uncond;
	if (isatty(2))
		eo.progress = progress;
	mm_eval_classes classes = {0};
	if (o.classes) {
		check(mm_eval_classes_load(&classes, o.classes, tok, cfg));
		r.classes = &classes;
	}
	mm_eval *e;
	check(mm_eval_open(&e, (const char *const *)o.data.v, o.data.n, cfg, tok, &eo));
	r.docs = mm_eval_docs(e);
	if (o.bpd && !cfg->patch)
		die("%s: the model reads no images, so --bpd has nothing to measure", o.model);

	for (int k = 0; k < 2 && !o.no_losses; k++) {
		if (!m[k])
			continue;
		double t0 = now();
		r.loss_name[r.nloss] = k ? "ema" : "weights";
		check(mm_eval_losses_run(e, m[k], &r.loss[r.nloss++]));
		timed(k ? "losses, EMA weights" : "losses", t0);
	}
	if (o.bpd) {
		double t0 = now();
		check(mm_eval_bpd_run(e, main_model, &r.bpd));
		r.has_bpd = 1;
		timed("bits per dimension", t0);
	}
	if (o.classes) {
		double t0 = now();
		check(mm_eval_classify(e, main_model, &classes, NULL, NULL, &r.cls));
		r.has_cls = 1;
		timed("classification", t0);
	}

	if (o.json)
		eval_print_json(stdout, &r);
	else
		eval_print_table(stdout, &r);
	if (fflush(stdout) || ferror(stdout))
		die("cannot write the output");
	mm_eval_cls_free(&r.cls);
	mm_eval_close(e);
	mm_eval_classes_free(&classes);
	mm_model_free(m[0]);
	mm_model_free(m[1]);
	mm_tok_free(tok);
	mm_tok_free(tok2);
	return 0;
}
