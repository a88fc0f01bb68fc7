// mm-sample: text, images, interleaved documents and captions from a checkpoint.
// The work is in lib/sample.c and lib/generate.c; this is options, files and the transcript
// (man/mm-sample.1).
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "font.h"
#include "ingest.h"
#include "kernels.h"
#include "mm.h"
#include "opts.h"
#include "prof.h"
#include "sample.h"

static struct {
	char *model, *prompt, *prompts, *out, *grid, *caption_list;
	int ema, image, caption, recompute;
	long long max_tokens, top_k, steps, samples, batch, seed, threads, grid_scale;
	double temperature, top_p, cfg, cfg_interval[2], read_t;
	int method;
	struct opt_args files; // --caption's images
} o = {.max_tokens = 256, .top_p = 1, .steps = 50, .cfg = 2, .cfg_interval = {MM_CFG_FROM, 1}, .samples = 1, .batch = 8,
       .grid_scale = 1, .seed = 1, .method = MM_ODE_HEUN, .read_t = 0.9};

static struct opt table[] = {
	OPT_HEAD("Model"),
	{"model", OPT_STR, &o.model, "CKPT|DIR", .help = "checkpoint file, or run directory (its latest checkpoint)"},
	{"ema", OPT_FLAG, &o.ema, NULL, .help = "use the checkpoint's EMA weights"},
	OPT_HEAD("Text"),
	{"prompt", OPT_STR, &o.prompt, "TEXT", .help = "the beginning of the document", .def = "empty"},
	{"prompts", OPT_STR, &o.prompts, "FILE",
	 .help = "one prompt a line ('-': standard input), each continued\n--samples times, in batches"},
	{"max-tokens", OPT_INT, &o.max_tokens, "N", .help = "tokens sampled per document, at most", 0, 1 << 30},
	{"temperature", OPT_FLOAT, &o.temperature, "T", .help = "0 is greedy", 0, 1000},
	{"top-k", OPT_INT, &o.top_k, "K", .help = "sample among the K likeliest tokens; 0: all", 0, 1 << 30},
	{"top-p", OPT_FLOAT, &o.top_p, "P", .help = "... and among the fewest whose probability reaches P", 1e-9, 1},
	OPT_HEAD("Images"),
	{"image", OPT_FLAG, &o.image, NULL, .help = "generate an image right after the prompt"},
	{"sampler", OPT_CHOICE, &o.method, NULL, .help = "ODE sampler", .choices = mm_ode_names},
	{"steps", OPT_INT, &o.steps, "N", .help = "sampler steps", 1, 100000},
	{"cfg", OPT_FLOAT, &o.cfg, "G", .help = "classifier-free guidance scale, 1 = none", 0, 100},
	{"cfg-interval", OPT_FUNC, o.cfg_interval, "A,B", .help = "guide only at noise levels t in [A, B]",
	 .parse = opt_parse_interval, .show = opt_show_interval},
	{"recompute", OPT_FLAG, &o.recompute, NULL,
	 .help = "rerun the prefix at every step instead of reusing its keys\n"
		 "and values (same result up to rounding; for measurements)"},
	OPT_HEAD("Output"),
	{"out", OPT_STR, &o.out, "DIR", .help = "write images as DIR/000.png ... (created, with its parents)", .letter = 'o'},
	{"samples", OPT_INT, &o.samples, "N", .help = "documents to generate", 1, 1000000, .letter = 'n'},
	{"batch", OPT_INT, &o.batch, "B", .help = "documents generated together", 1, 4096},
	{"grid", OPT_STR, &o.grid, "FILE.png", .help = "also tile every generated image into one PNG\n(with --prompts: a row per prompt, labelled with it)"},
	{"grid-scale", OPT_INT, &o.grid_scale, "N", .help = "enlarge the grid's images N times (nearest pixel)", 1, 64},
	{"caption", OPT_FLAG, &o.caption, "IMAGE...", .help = "caption each image: one line 'name<TAB>caption' per image"},
	{"caption-list", OPT_STR, &o.caption_list, "FILE",
	 .help = "caption the images named in FILE, one path a line\n('-': standard input)"},
	{"IMAGE", OPT_ARGS, &o.files, NULL, .help = "the images of --caption"},
	{"read-t", OPT_FLOAT, &o.read_t, "T",
	 .help = "read the images to caption at noise level T, z = T x + (1 - T) eps,\n"
		 "as training shows images before text; 1 = clean", 1e-6, 1},
	{"seed", OPT_INT, &o.seed, "S", .help = "random seed", 0, INT64_MAX},
	{"threads", OPT_INT, &o.threads, "N", .help = "threads of the matrix products; 0: all processors", 0, 4096},
	OPT_HEAD("Information"),
	OPT_STD_END,
};

static const char synopsis[] = "--model CKPT|DIR [--prompt TEXT] [--image -o DIR] [options]\n"
			       "--model CKPT|DIR --caption IMAGE...";
static const char about[] = "Continue a prompt with text and images, or caption images, with a trained model.";

static void parse(int argc, char **argv)
{
	opts_parse(table, synopsis, about, argc, argv);
	if (o.out) // "dir/" names its images dir/000.png
		for (size_t n = strlen(o.out); n > 1 && o.out[n - 1] == '/'; n--)
			o.out[n - 1] = 0;
	if (!o.model)
		die_usage("--model is required");
	if (o.caption_list)
		o.caption = 1;
	if (o.caption && !o.files.n && !o.caption_list)
		die_usage("--caption needs at least one image");
	if (!o.caption && o.files.n)
		die_usage("unexpected argument '%s'", o.files.v[0]);
	if (o.caption && (o.prompt || o.prompts || o.image || o.out || o.grid || o.samples != 1))
		die_usage("%s excludes --prompt, --prompts, --image, --out, --grid and --samples",
			  o.caption_list ? "--caption-list" : "--caption");
	if (o.grid_scale != 1 && !o.grid)
		die_usage("--grid-scale needs --grid FILE.png");
	if (o.prompt && o.prompts)
		die_usage("--prompt and --prompts cannot be used together");
	if ((o.top_k || o.top_p < 1) && o.temperature == 0)
		die_usage("--top-k and --top-p need --temperature above 0");
	if ((o.image || o.grid) && !o.out)
		die_usage("%s needs -o DIR for the images", o.image ? "--image" : "--grid");
}

// The image of a document segment as an ordinary image (rows of pixels).
static void segment_image(const mm_segment *sg, mm_image *img)
{
	if (mm_image_alloc(img, sg->w, sg->h, sg->c))
		die_mm(-MM_ENOMEM);
	mm_image_from_patches(sg->pixels, sg->h, sg->w, sg->c, sg->p, img->px);
}

static void print_text(const mm_tokenizer *tok, const uint32_t *ids, size_t n, int *at_bol)
{
	static uint8_t *buf;
	static size_t cap;
	size_t len;
	int rc = mm_tok_decode(tok, ids, n, &buf, &cap, &len);
	if (rc)
		die_mm(rc);
	fwrite(buf, 1, len, stdout);
	if (len)
		*at_bol = buf[len - 1] == '\n';
}

// A prompt of the run and its tokens.
struct prompt {
	char *text; // "" for none
	uint32_t *ids;
	size_t n;
	int line; // of --prompts; 0 for --prompt
	mm_doc doc;
};

// The images of the run, each with the number of its prompt, for --grid.
struct grid {
	mm_image *im;
	int *row;
	int n;
};

// Tiles the images, each enlarged o.grid_scale times, into one PNG: rows of ceil(sqrt(n)), or
// with --prompts one row per prompt, its text at the left.
static void write_grid(const char *path, const struct grid *gr, const struct prompt *pr, int np)
{
	int n = gr->n;
	if (!n) {
		warnx("no images were generated: %s not written", path);
		return;
	}
	int cols = (int)ceil(sqrt(n)), rows = (n + cols - 1) / cols;
	int *at = calloc((size_t)np, sizeof *at); // images placed in each prompt's row so far
	const char **label = calloc((size_t)np, sizeof *label);
	if (!at || !label)
		die_mm(-MM_ENOMEM);
	if (o.prompts) {
		cols = 0, rows = np;
		for (int i = 0; i < n; i++)
			if (++at[gr->row[i]] > cols)
				cols = at[gr->row[i]];
		memset(at, 0, (size_t)np * sizeof *at);
		for (int r = 0; r < np; r++)
			label[r] = pr[r].text;
	}
	const mm_image **cell = calloc((size_t)rows * cols, sizeof *cell);
	if (!cell)
		die_mm(-MM_ENOMEM);
	for (int i = 0; i < n; i++)
		cell[o.prompts ? gr->row[i] * cols + at[gr->row[i]]++ : i] = &gr->im[i];
	int rc = grid_save(path, cell, rows, cols, o.prompts ? label : NULL, (uint32_t)o.grid_scale);
	if (rc)
		die_mm(rc);
	free(at), free(label), free(cell);
}

// Prints one document (prompt, then what was generated) and writes its images.
// Images are DIR/000.png ... in the order of the run, or with --prompts DIR/pLLL-NNN.png: the
// line LLL of the prompt, the image's number NNN among that prompt's (*pimg counts them).
static void emit(const mm_tokenizer *tok, const uint32_t *pt, size_t npt, int line, int row, const mm_doc *d,
		 struct grid *gr, int *pimg)
{
	int bol = 1;
	print_text(tok, pt, npt, &bol);
	for (uint32_t k = 0; k < d->n_segs; k++) {
		const mm_segment *sg = &d->segs[k];
		if (sg->type == MM_SEG_TEXT) {
			print_text(tok, sg->tokens, sg->n_tokens, &bol);
			continue;
		}
		char path[4096];
		if (o.prompts)
			snprintf(path, sizeof path, "%s/p%03d-%03d.png", o.out, line, (*pimg)++);
		else
			snprintf(path, sizeof path, "%s/%03d.png", o.out, gr->n);
		mm_image *im = realloc(gr->im, (size_t)(gr->n + 1) * sizeof *im);
		int *rows = realloc(gr->row, (size_t)(gr->n + 1) * sizeof *rows);
		if (im)
			gr->im = im;
		if (rows)
			gr->row = rows;
		if (!im || !rows)
			die_mm(-MM_ENOMEM);
		gr->row[gr->n] = row;
		mm_image *img = &gr->im[gr->n++];
		segment_image(sg, img);
		int rc = mm_image_save_png(path, img);
		if (rc)
			die_mm(rc);
		printf("%simage: %s\n", bol ? "" : "\n", path);
		bol = 1;
	}
	if (!bol)
		putchar('\n');
}

static void gen_opts(mm_gen_opts *g)
{
	mm_gen_opts_default(g);
	g->text = (mm_text_opts){(float)o.temperature, (int)o.top_k, (float)o.top_p};
	g->image = (mm_image_opts){o.method, (int)o.steps, (float)o.cfg, (float)o.cfg_interval[0], (float)o.cfg_interval[1],
				   o.recompute};
	g->max_tokens = (int)o.max_tokens;
	g->image_first = o.image;
	g->images = o.out != NULL;
	g->seed = (uint64_t)o.seed;
	g->read_t = (float)o.read_t;
}

// The lines of a file ('-': standard input) that are not blank, with their line numbers (from
// 1); a trailing CR is dropped. A line over MAX_LINE bytes is refused before more is read.
#define MAX_LINE (1 << 20)
struct lines {
	int n;
	char **v;
	int *no;
};

static void read_lines(const char *opt, const char *path, struct lines *l)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	if (!f)
		die("%s %s: cannot open: %s", opt, path, strerror(errno));
	char *buf = malloc(MAX_LINE + 2);
	if (!buf)
		die_mm(-MM_ENOMEM);
	memset(l, 0, sizeof *l);
	for (int no = 1; fgets(buf, MAX_LINE + 2, f); no++) {
		size_t len = strlen(buf);
		if (len > MAX_LINE || (len == MAX_LINE + 1 && buf[len - 1] != '\n'))
			die("%s %s:%d: a line longer than %d bytes", opt, path, no, MAX_LINE);
		while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
			buf[--len] = 0;
		if (!len)
			continue;
		if (l->n == INT32_MAX / 2)
			die("%s %s: too many lines", opt, path);
		char **v = realloc(l->v, (size_t)(l->n + 1) * sizeof *v);
		int *nos = realloc(l->no, (size_t)(l->n + 1) * sizeof *nos);
		if (v)
			l->v = v;
		if (nos)
			l->no = nos;
		if (!v || !nos || !(l->v[l->n] = strdup(buf)))
			die_mm(-MM_ENOMEM);
		l->no[l->n++] = no;
	}
	if (ferror(f))
		die("%s %s: read error", opt, path);
	if (f != stdin)
		fclose(f);
	free(buf);
	if (!l->n)
		die("%s %s: no %s in it", opt, path, strcmp(opt, "--prompts") ? "image path" : "prompt");
}

// The prompts of the run: --prompt (or none), or every line of --prompts, encoded and checked
// against the model's context before any generation.

static struct prompt *load_prompts(const mm_tokenizer *tok, const mm_config *c, int *np)
{
	struct lines l = {1, (char *[]){o.prompt}, (int[]){0}};
	if (o.prompts)
		read_lines("--prompts", o.prompts, &l);
	struct prompt *p = calloc((size_t)l.n, sizeof *p);
	if (!p)
		die_mm(-MM_ENOMEM);
	for (int i = 0; i < l.n; i++) {
		size_t cap = 0;
		int rc = 0;
		p[i].line = l.no[i];
		if (!(p[i].text = strdup(l.v[i] ? l.v[i] : "")))
			die_mm(-MM_ENOMEM);
		mm_doc_init(&p[i].doc);
		if (l.v[i] && (rc = mm_tok_encode(tok, (const uint8_t *)l.v[i], strlen(l.v[i]), &p[i].ids, &cap, &p[i].n)))
			die_mm(rc);
		if (p[i].n && (rc = mm_doc_add_text(&p[i].doc, p[i].ids, (uint32_t)p[i].n)))
			die_mm(rc);
		long long need = 1 + (long long)p[i].n + (o.image ? MM_NPATCH(c) + 2 : 0);
		if (need > c->seq_len && o.prompts)
			die("--prompts %s:%d: the prompt takes %lld positions%s; the model's context holds %d", o.prompts,
			    p[i].line, need, o.image ? " with its image" : "", c->seq_len);
		if (need > c->seq_len)
			die("the prompt takes %lld positions%s; the model's context holds %d", need,
			    o.image ? " with its image" : "", c->seq_len);
		if (o.prompts)
			free(l.v[i]);
	}
	if (o.prompts)
		free(l.v), free(l.no);
	*np = l.n;
	return p;
}

// Documents are prompt-major: document d continues prompt d / samples, and draws its numbers
// from (seed, d), whatever the batch.
static void run_samples(mm_model *m, const mm_tokenizer *tok)
{
	const mm_config *c = mm_model_config(m);
	int rc, np;
	if (o.image && !MM_NPATCH(c))
		die("%s: the model has no image geometry: it cannot generate images", o.model);
	struct prompt *pr = load_prompts(tok, c, &np);
	// Before the sampling, so that it does not end in an unwritable path.
	if (o.out)
		cli_output_dir("-o", o.out);
	if (o.grid)
		cli_output_file("--grid", o.grid);
	mm_gen_opts g;
	gen_opts(&g);
	long long total = np * o.samples;
	int batch = (int)(o.batch < total ? o.batch : total), guided = g.image.cfg != 1;
	mm_sampler *s;
	if ((rc = mm_sampler_new(&s, m, batch * (guided ? 2 : 1))))
		die_mm(rc);
	mm_doc *pre = calloc((size_t)batch, sizeof *pre), *out = calloc((size_t)batch, sizeof *out);
	if (!pre || !out)
		die_mm(-MM_ENOMEM);
	struct grid gr = {0};
	int pimg = 0;
	double t0 = mm_now();
	for (long long first = 0; first < total; first += batch) {
		int k = (int)(total - first < batch ? total - first : batch);
		for (int i = 0; i < k; i++)
			pre[i] = pr[(first + i) / o.samples].doc; // shared, read only
		if ((rc = mm_generate(s, pre, k, (uint64_t)first, &g, out)))
			die_mm(rc);
		for (int i = 0; i < k; i++) {
			const struct prompt *p = &pr[(first + i) / o.samples];
			if (first + i)
				putchar('\n');
			if ((first + i) % o.samples == 0)
				pimg = 0;
			emit(tok, p->ids, p->n, p->line, (int)((first + i) / o.samples), &out[i], &gr, &pimg);
		}
		fflush(stdout);
	}
	double secs = mm_now() - t0;
	int nimg = gr.n;
	if (nimg)
		fprintf(stderr, "%s: %d image%s in %.2f s (%.3f images/s)\n", cli_prog, nimg, nimg == 1 ? "" : "s",
			secs, nimg / secs);
	if (o.grid)
		write_grid(o.grid, &gr, pr, np);
	for (int i = 0; i < nimg; i++)
		mm_image_free(&gr.im[i]);
	for (int i = 0; i < batch; i++)
		mm_doc_free(&out[i]);
	for (int i = 0; i < np; i++)
		mm_doc_free(&pr[i].doc), free(pr[i].ids), free(pr[i].text);
	free(gr.im), free(gr.row), free(pre), free(out), free(pr);
	mm_sampler_free(s);
}

// One line per image: its name, a tab, the caption (tabs and line breaks made spaces).
static void print_caption(const mm_tokenizer *tok, const char *name, const mm_doc *d)
{
	static uint8_t *buf;
	static size_t cap;
	size_t len = 0;
	if (d->n_segs && d->segs[0].type == MM_SEG_TEXT) {
		int rc = mm_tok_decode(tok, d->segs[0].tokens, d->segs[0].n_tokens, &buf, &cap, &len);
		if (rc)
			die_mm(rc);
	}
	for (size_t i = 0; i < len; i++)
		if (buf[i] == '\t' || buf[i] == '\n' || buf[i] == '\r')
			buf[i] = ' ';
	printf("%s\t", name);
	if (len) // buf is NULL for an empty caption
		fwrite(buf, 1, len, stdout);
	putchar('\n');
}

static void run_captions(mm_model *m, const mm_tokenizer *tok)
{
	const mm_config *c = mm_model_config(m);
	if (!MM_NPATCH(c))
		die("%s: the model has no image geometry: it cannot caption images", o.model);
	mm_ingest_opts io;
	mm_ingest_opts_default(&io);
	mm_prep p = io.prep;
	p.channels = (uint32_t)c->img_c, p.w = (uint32_t)c->img_w, p.h = (uint32_t)c->img_h;
	p.patch = (uint32_t)c->patch;
	int rc = mm_prep_check(&p);
	if (rc)
		die_mm(rc);
	if (o.caption_list) { // after the images given as arguments
		struct lines l;
		read_lines("--caption-list", o.caption_list, &l);
		char **v = malloc((size_t)(o.files.n + l.n) * sizeof *v);
		if (!v)
			die_mm(-MM_ENOMEM);
		if (o.files.n)
			memcpy(v, o.files.v, (size_t)o.files.n * sizeof *v);
		memcpy(v + o.files.n, l.v, (size_t)l.n * sizeof *v);
		free(o.files.v); // the parser's list, whose strings are argv's
		o.files.v = v, o.files.n += l.n;
		free(l.v), free(l.no);
	}
	// Every image is read before any caption is written: a bad file stops the run cleanly.
	size_t bytes = mm_prep_bytes(&p);
	mm_doc *pre = calloc((size_t)o.files.n, sizeof *pre), *out = calloc((size_t)o.files.n, sizeof *out);
	uint8_t *px = malloc(bytes);
	if (!pre || !out || !px)
		die_mm(-MM_ENOMEM);
	for (int i = 0; i < o.files.n; i++) {
		if ((rc = mm_prep_image_file(o.files.v[i], &p, px, NULL)) ||
		    (rc = mm_doc_add_image(&pre[i], p.h, p.w, p.channels, p.patch, px)))
			die_mm(rc);
	}
	mm_gen_opts g;
	gen_opts(&g);
	g.images = 0, g.image.cfg = 1;
	int batch = (int)(o.batch < o.files.n ? o.batch : o.files.n);
	mm_sampler *s;
	if ((rc = mm_sampler_new(&s, m, batch)))
		die_mm(rc);
	for (int first = 0; first < o.files.n; first += batch) {
		int k = o.files.n - first < batch ? o.files.n - first : batch;
		if ((rc = mm_generate(s, pre + first, k, (uint64_t)first, &g, out + first)))
			die_mm(rc);
		for (int i = first; i < first + k; i++)
			print_caption(tok, o.files.v[i], &out[i]);
		fflush(stdout);
	}
	for (int i = 0; i < o.files.n; i++)
		mm_doc_free(&pre[i]), mm_doc_free(&out[i]);
	free(pre), free(out), free(px);
	mm_sampler_free(s);
}

int main(int argc, char **argv)
{
	cli_init(argv[0]);
	parse(argc, argv);
	cli_cleanup_on_signal();
	// Everything runs on the OpenMP threads, the matrix products split by the kernels and
	// attention by (document, head), as in training (kernels.h; man page, NOTES).
	mm_threads_set(o.threads);
	mm_model *m;
	mm_tokenizer *tok;
	int rc = mm_ckpt_load_model(o.model, o.ema, 1, &m, &tok, NULL);
	if (rc)
		die_mm(rc);
	if (o.caption)
		run_captions(m, tok);
	else
		run_samples(m, tok);
	if (fflush(stdout) || ferror(stdout))
		die("standard output: write error");
	mm_model_free(m);
	mm_tok_free(tok);
	return 0;
}
