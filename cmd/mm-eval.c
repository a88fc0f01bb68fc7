// mm-eval: measures a checkpoint on held-out shards (man/mm-eval.1). The work is in lib/eval.c,
// lib/bpd.c and lib/eval_gen.c; the output in cmd/eval_out.c.
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "eval.h"
#include "eval_out.h"
#include "kernels.h"
#include "mm.h"
#include "opts.h"
#include "prof.h"
#include "sample.h"

static struct {
	struct opt_list data, reference;
	char *model, *classes, *samples, *json_file, *bpd_t1, *captions, *t2i, *compare;
	int ema, bpd, bpd_uncond, no_losses, json, help, pmi;
	long long max_docs, batch, buckets, bpd_samples, per_class, steps, seed, threads, per_caption, read_draws;
	long long compare_rows, compare_scale;
	double bpd_t0, cfg, read_t, cfg_interval[2];
} o = {.batch = 32, .buckets = 10, .bpd_samples = 10, .bpd_t0 = 1e-3, .steps = 50, .cfg = 2, .cfg_interval = {MM_CFG_FROM, 1},
       .seed = 1, .read_t = 0.9, .read_draws = 1, .per_caption = 1, .compare_rows = 24, .compare_scale = 2};

#define BIG 1e18
static double t1 = 0;                // --bpd-t1, 0 for auto
static int sampler = MM_ODE_HEUN;    // --sampler

// --bpd-t1: T1 or auto (0).
static const char *parse_t1(void *p, const char *v, char *why, size_t n)
{
	char *end;
	double x = strcmp(v, "auto") ? strtod(v, &end) : 0;
	if (strcmp(v, "auto") && (end == v || *end || !isfinite(x)))
		return snprintf(why, n, "'%s' is not a number or auto", v), why;
	if (strcmp(v, "auto") && !(0.5 <= x && x <= 0.99999))
		return snprintf(why, n, "%g is out of range [0.5, 0.99999]", x), why;
	if (x == 0.5)
		return "T1 must be above 0.5";
	*(double *)p = x;
	return NULL;
}

static void show_t1(const void *p, char *buf, size_t n)
{
	if (*(const double *)p)
		snprintf(buf, n, "%g", *(const double *)p);
	else
		snprintf(buf, n, "auto");
}

static struct opt table[] = {
	OPT_HEAD("Input"),
	{"model", OPT_STR, &o.model, "CKPT|DIR", .help = "checkpoint file, or run directory (its latest checkpoint)"},
	{"data", OPT_LIST, &o.data, "PATTERN", .help = "held-out shards: a file, a directory or a quoted glob (repeatable)"},
	{"ema", OPT_FLAG, &o.ema, NULL, .help = "the EMA weights for --bpd, --classes, --per-class, --captions\nand --t2i (the losses show both)"},
	{"max-docs", OPT_INT, &o.max_docs, "N", .help = "read only the first N documents; 0: all", 0, BIG},
	{"batch", OPT_INT, &o.batch, "B", .help = "rows of the model's context per model call", 1, 65536},
	OPT_HEAD("Losses"),
	{"buckets", OPT_INT, &o.buckets, "K", .help = "noise levels t = (k + 0.5) / K of the image loss", 1, MM_EVAL_MAX_BUCKETS},
	{"no-losses", OPT_FLAG, &o.no_losses, NULL, .help = "skip the text and image losses"},
	OPT_HEAD("Bits per dimension"),
	{"bpd", OPT_FLAG, &o.bpd, NULL, .help = "the variational bound of each image, in bits per dimension"},
	{"bpd-samples", OPT_INT, &o.bpd_samples, "S", .help = "(t, eps) draws per image", 1, 1000000},
	{"bpd-t0", OPT_FLOAT, &o.bpd_t0, "T0", .help = "noisiest level of the bound, 0 <= T0 < 0.5", 0, 0.5},
	{"bpd-t1", OPT_FUNC, &t1, "T1|auto", .help = "cleanest level, 0.5 < T1 <= 0.99999;\nauto: the best of the curve up to 0.999",
	 .parse = parse_t1, .show = show_t1},
	{"bpd-uncond", OPT_FLAG, &o.bpd_uncond, NULL, .help = "images alone, not after their caption"},
	OPT_HEAD("Classes"),
	{"classes", OPT_STR, &o.classes, "FILE", .help = "class captions, one a line: classify the labelled images"},
	{"read-t", OPT_FLOAT, &o.read_t, "T", .help = "noise level of the images to caption, 0 < T <= 1, 1 = clean", 1e-6, 1},
	{"read-draws", OPT_INT, &o.read_draws, "K", .help = "read each image K times, each with its own noise, and\naverage a caption's log-probabilities", 1, MM_EVAL_MAX_DRAWS},
	{"per-class", OPT_INT, &o.per_class, "N", .help = "also generate N images per caption and classify them", 0, 1000000},
	{"sampler", OPT_CHOICE, &sampler, NULL, .help = "ODE sampler of the generated images",
	 .choices = mm_ode_names},
	{"steps", OPT_INT, &o.steps, "N", .help = "sampler steps", 1, 100000},
	{"cfg", OPT_FLOAT, &o.cfg, "G", .help = "classifier-free guidance scale, 1 = none", 0, 100},
	{"cfg-interval", OPT_FUNC, o.cfg_interval, "A,B", .help = "guide only at noise levels t in [A, B]",
	 .parse = opt_parse_interval, .show = opt_show_interval},
	{"samples", OPT_STR, &o.samples, "DIR", .help = "write a grid of the generated images of each class into DIR"},
	OPT_HEAD("Retrieval"),
	{"captions", OPT_STR, &o.captions, "FILE", .help = "an open list of captions, one a line: rank each caption pair's\nown caption among them by likelihood"},
	{"pmi", OPT_FLAG, &o.pmi, NULL, .help = "with --captions, also rank by pointwise mutual information:\n"
						 "log p(caption | image) - log p(caption)"},
	{"t2i", OPT_STR, &o.t2i, "FILE", .help = "captions, one a line: generate from each and find the nearest\nreference image"},
	{"per-caption", OPT_INT, &o.per_caption, "N", .help = "images generated per --t2i caption", 1, 1000000},
	{"reference", OPT_LIST, &o.reference, "PATTERN", .help = "shards of --t2i's reference images (repeatable); default: --data"},
	{"compare", OPT_STR, &o.compare, "FILE.png", .help = "a PNG of the first --compare-rows --t2i captions: real image,\ngenerated ones, nearest reference"},
	{"compare-rows", OPT_INT, &o.compare_rows, "N", .help = "captions shown in --compare", 1, 100000},
	{"compare-scale", OPT_INT, &o.compare_scale, "N", .help = "enlarge --compare's images N times (nearest pixel)", 1, 64},
	OPT_HEAD("Output"),
	{"json", OPT_FLAG, &o.json, NULL, .help = "print one JSON object instead of the table"},
	{"json-file", OPT_STR, &o.json_file, "FILE", .help = "also write the JSON object into FILE"},
	{"seed", OPT_INT, &o.seed, "S", .help = "seed of the bound's draws and of the generated images", 0, BIG},
	{"threads", OPT_INT, &o.threads, "N", .help = "OpenMP and OpenBLAS threads; 0: all processors", 0, 4096},
	OPT_HEAD("Information"),
	OPT_STD_END,
};

static const char synopsis[] = "--model CKPT|DIR --data PATTERN [--bpd] [--classes FILE] [--captions FILE] [--t2i FILE] [options]";
static const char about[] = "Measure a checkpoint on held-out shards: losses, bits per dimension, classification,\nretrieval.";

static void parse(int argc, char **argv)
{
	opts_parse(table, synopsis, about, argc, argv);
	if (!o.model)
		die_usage("--model is required");
	if (!o.data.n)
		die_usage("--data is required");
	if (!(o.bpd_t0 < 0.5))
		die_usage("--bpd-t0 must be below 0.5");
	if (o.per_class && !o.classes)
		die_usage("--per-class needs --classes");
	if (o.samples && !o.per_class)
		die_usage("--samples needs --per-class");
	if (o.no_losses && !o.bpd && !o.classes && !o.captions && !o.t2i)
		die_usage("nothing to evaluate: --no-losses without --bpd, --classes, --captions or --t2i");
	if (o.reference.n && !o.t2i)
		die_usage("--reference needs --t2i");
	if (o.compare && !o.t2i)
		die_usage("--compare needs --t2i");
	if (o.pmi && !o.captions)
		die_usage("--pmi needs --captions");
	if (o.read_draws > 1 && !o.classes)
		die_usage("--read-draws needs --classes");
	if (o.read_draws > 1 && o.captions)
		die_usage("--read-draws applies to --classes; caption retrieval reads each image once");
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
	fprintf(stderr, "%s: %s: %.1f s\n", cli_prog, what, mm_now() - t0);
}

static void check(int rc)
{
	if (rc) {
		if (isatty(2))
			fputs("\r\033[K", stderr);
		die_mm(rc);
	}
}

// What one run holds: the weights (and the EMA weights), the shards, the classes.
static struct run {
	mm_model *m[2];  // the weights and the EMA weights (NULL when not needed or absent)
	mm_model *main;  // the weights of --bpd, --classes and --per-class
	mm_tokenizer *tok, *tok2;
	const mm_config *cfg;
	mm_eval_classes classes;
	mm_eval *e;
	mm_eval_gen *gen;
	uint8_t *images; // the generated images, for --samples
	mm_eval_classes captions, t2i; // --captions, --t2i
	mm_eval *ref;    // --reference (NULL: e)
	mm_eval_gen *gen_t2i;
	uint8_t *t2i_images;
} run;

static void load(struct eval_report *r)
{
	int has_ema = 0;
	check(mm_ckpt_load_model(o.model, 0, (int)o.batch, &run.m[0], &run.tok, &has_ema));
	if (o.ema && !has_ema)
		die("%s: the checkpoint holds no EMA weights (mm-train --ema D keeps them)", o.model);
	if (o.ema || (has_ema && !o.no_losses))
		check(mm_ckpt_load_model(o.model, 1, (int)o.batch, &run.m[1], &run.tok2, NULL));
	run.main = o.ema ? run.m[1] : run.m[0];
	run.cfg = mm_model_config(run.m[0]);
	mm_eval_opts eo;
	mm_eval_opts_default(&eo);
	eo.batch = (int)o.batch, eo.max_docs = (uint64_t)o.max_docs, eo.seed = (uint64_t)o.seed;
	eo.buckets = (int)o.buckets, eo.bpd_samples = (int)o.bpd_samples;
	eo.bpd_t0 = o.bpd_t0, eo.bpd_uncond = o.bpd_uncond, eo.read_t = o.read_t, eo.read_draws = (int)o.read_draws;
	r->read_t = o.read_t, r->read_level = mm_read_level(run.cfg, (float)o.read_t), r->read_draws = (int)o.read_draws;
	if (t1)
		eo.bpd_t1 = t1, eo.bpd_auto = 0;
	r->bpd_auto = eo.bpd_auto;
	if (isatty(2))
		eo.progress = progress;
	if (o.classes) {
		check(mm_eval_classes_load(&run.classes, o.classes, run.tok, run.cfg));
		r->classes = &run.classes;
	}
	if (o.captions) {
		check(mm_eval_classes_load(&run.captions, o.captions, run.tok, run.cfg));
		r->captions_file = o.captions;
	}
	if (o.t2i) {
		check(mm_eval_classes_load(&run.t2i, o.t2i, run.tok, run.cfg));
		r->t2i_file = o.t2i;
	}
	check(mm_eval_open(&run.e, (const char *const *)o.data.v, o.data.n, run.cfg, run.tok, &eo));
	if (o.reference.n) {
		mm_eval_opts ro = eo;
		ro.max_docs = 0; // the whole reference set
		check(mm_eval_open(&run.ref, (const char *const *)o.reference.v, o.reference.n, run.cfg, run.tok, &ro));
	}
	r->docs = mm_eval_docs(run.e);
	if ((o.bpd || o.captions || o.t2i) && !run.cfg->patch)
		die("%s: the model reads no images, so --%s has nothing to measure", o.model,
		    o.bpd ? "bpd" : o.captions ? "captions" : "t2i");
}

// The generation settings of --per-class and --t2i (per images per caption), noted in r.
static mm_eval_t2i_opts gen_opts(long long per, struct eval_report *r)
{
	mm_eval_t2i_opts to = {.per_class = (int)per, .seed = (uint64_t)o.seed,
			       .image = {sampler, (int)o.steps, (float)o.cfg, (float)o.cfg_interval[0],
					 (float)o.cfg_interval[1], 0}};
	r->sampler = mm_ode_names[sampler], r->steps = (int)o.steps, r->cfg = o.cfg;
	r->cfg_lo = o.cfg_interval[0], r->cfg_hi = o.cfg_interval[1];
	return to;
}

// Room for per images of each of n captions, or death.
static uint8_t *images_for(int n, int per)
{
	size_t bytes = (size_t)n * per * MM_NPATCH(run.cfg) * MM_PDIM(run.cfg);
	uint8_t *p = malloc(bytes);
	if (!p)
		die("out of memory for %zu MiB of images", bytes >> 20);
	return p;
}

static void evaluate(struct eval_report *r)
{
	for (int k = 0; k < 2 && !o.no_losses; k++) {
		if (!run.m[k])
			continue;
		double t0 = mm_now();
		r->loss_name[r->nloss] = k ? "ema" : "weights";
		check(mm_eval_losses_run(run.e, run.m[k], &r->loss[r->nloss++]));
		timed(k ? "losses, EMA weights" : "losses", t0);
	}
	if (o.bpd) {
		double t0 = mm_now();
		check(mm_eval_bpd_run(run.e, run.main, &r->bpd));
		r->has_bpd = 1;
		timed("bits per dimension", t0);
	}
	if (o.classes) {
		double t0 = mm_now();
		check(mm_eval_gen_new(&run.gen, run.e, run.main, run.tok, &run.classes, (int)o.batch));
		check(mm_eval_classify(run.e, run.main, &run.classes, mm_eval_caption, run.gen, &r->cls));
		r->has_cls = 1;
		timed("classification", t0);
	}
	if (o.per_class) {
		mm_eval_t2i_opts to = gen_opts(o.per_class, r);
		if (o.samples)
			run.images = images_for(run.classes.n, to.per_class);
		double t0 = mm_now();
		check(mm_eval_t2i_run(run.e, run.main, run.gen, &to, &r->t2i, run.images));
		r->has_t2i = 1;
		timed("text to image", t0);
		if (o.samples)
			eval_write_grids(o.samples, &run.classes, run.cfg, run.images, to.per_class);
	}
	if (o.captions) {
		double t0 = mm_now();
		check(mm_eval_retrieve_captions(run.e, run.main, &run.captions, 128, o.pmi, &r->ret));
		r->has_ret = 1;
		timed("caption retrieval", t0);
	}
	if (o.t2i) {
		mm_eval_t2i_opts to = gen_opts(o.per_caption, r);
		run.t2i_images = images_for(run.t2i.n, to.per_class);
		double t0 = mm_now();
		check(mm_eval_gen_new(&run.gen_t2i, run.e, run.main, run.tok, &run.t2i, (int)o.batch));
		check(mm_eval_t2i_nearest(run.ref ? run.ref : run.e, run.gen_t2i, &to, &r->nn, run.t2i_images));
		r->has_nn = 1;
		timed("text-to-image retrieval", t0);
		if (o.compare)
			eval_write_compare(o.compare, &run.t2i, run.cfg, &r->nn, run.t2i_images, (int)o.compare_rows,
					   (int)o.compare_scale);
	}
}

int main(int argc, char **argv)
{
	cli_init(argv[0]);
	parse(argc, argv);
	mm_threads_set(o.threads);
	// Opened first, so a long evaluation does not end in an unwritable path; written atomically,
	// so a failed run leaves no half-written file.
	mm_afile jf = {0};
	if (o.samples)
		cli_output_dir("--samples", o.samples);
	if (o.compare)
		cli_output_file("--compare", o.compare);
	if (o.json_file) {
		cli_output_file("--json-file", o.json_file);
		int rc = mm_afile_open(&jf, o.json_file);
		if (rc)
			die_mm(rc);
	}
	struct eval_report r = {.model = o.model, .seed = o.seed, .threads = omp_get_max_threads(), .batch = o.batch,
				.weights = o.ema ? "ema" : "weights"};
	load(&r);
	evaluate(&r);
	if (o.json)
		eval_print_json(stdout, &r);
	else
		eval_print_table(stdout, &r);
	if (fflush(stdout) || ferror(stdout))
		die("cannot write the output");
	if (o.json_file) {
		eval_print_json(jf.f, &r);
		int rc = ferror(jf.f) ? mm_fail(MM_EIO, "%s: cannot write", o.json_file) : mm_afile_commit(&jf);
		if (rc)
			die_mm(rc);
	}
	mm_eval_cls_free(&r.cls);
	mm_eval_t2i_free(&r.t2i);
	mm_eval_gen_free(run.gen);
	free(run.images);
	mm_eval_ret_free(&r.ret);
	mm_eval_nn_free(&r.nn);
	mm_eval_gen_free(run.gen_t2i);
	free(run.t2i_images);
	mm_eval_close(run.ref);
	mm_eval_classes_free(&run.captions);
	mm_eval_classes_free(&run.t2i);
	mm_eval_close(run.e);
	mm_eval_classes_free(&run.classes);
	mm_model_free(run.m[0]);
	mm_model_free(run.m[1]);
	mm_tok_free(run.tok);
	mm_tok_free(run.tok2);
	return 0;
}
