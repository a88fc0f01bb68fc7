// mm-tokenize: documents (JSONL, image folders, IDX, plain text) into shards, and back.
// The work is in lib/ingest.c; this is options, checks and messages (man/mm-tokenize.1).
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "ingest.h"
#include "mm.h"
#include "opts.h"

static struct args {
	mm_ingest_opts o;
	char *tokenizer, *train, *extract;
	uint32_t vocab;
	int list;
	struct opt_args inputs;
} a;

// --image-size N or WxH.
static const char *parse_image_size(void *p, const char *s, char *why, size_t n)
{
	mm_prep *prep = p;
	unsigned w, h;
	int k = 0;
	if (sscanf(s, "%5u%n", &w, &k) == 1 && !s[k] && strspn(s, "0123456789") == (size_t)k)
		h = w;
	else if (!(sscanf(s, "%5ux%5u%n", &w, &h, &k) == 2 && !s[k] && strspn(s, "0123456789x") == (size_t)k))
		return snprintf(why, n, "'%s' is not N or WxH", s), why;
	if (!w || !h || w > 16384 || h > 16384)
		return snprintf(why, n, "%ux%u is out of range [1, 16384]", w, h), why;
	prep->w = w, prep->h = h;
	return NULL;
}

static void show_image_size(const void *p, char *buf, size_t n)
{
	const mm_prep *prep = p;
	if (prep->w == prep->h)
		snprintf(buf, n, "%u", prep->w);
	else
		snprintf(buf, n, "%ux%u", prep->w, prep->h);
}

// --background white, black or #RRGGBB.
static const char *parse_background(void *p, const char *s, char *why, size_t len)
{
	uint8_t *rgb = p;
	unsigned v = 0;
	int n = 0;
	if (strcmp(s, "white") == 0)
		v = 0xffffff;
	else if (strcmp(s, "black") == 0)
		v = 0;
	else if (!(s[0] == '#' && strlen(s) == 7 && sscanf(s + 1, "%6x%n", &v, &n) == 1 && n == 6))
		return snprintf(why, len, "'%s' is not white, black or #RRGGBB", s), why;
	rgb[0] = (uint8_t)(v >> 16), rgb[1] = (uint8_t)(v >> 8), rgb[2] = (uint8_t)v;
	return NULL;
}

static void show_background(const void *p, char *buf, size_t n)
{
	const uint8_t *c = p;
	unsigned v = (unsigned)c[0] << 16 | (unsigned)c[1] << 8 | c[2];
	snprintf(buf, n, v == 0xffffff ? "white" : v ? "#%06x" : "black", v);
}

static const char *parse_channels(void *p, const char *s, char *why, size_t n)
{
	char *end;
	errno = 0;
	long long c = strtoll(s, &end, 10);
	if (errno || end == s || *end)
		return snprintf(why, n, "'%s' is not an integer", s), why;
	if (c < 1 || c > 3)
		return snprintf(why, n, "%lld is out of range [1, 3]", c), why;
	if (c == 2)
		return "2 is not 1 (gray) or 3 (RGB)";
	*(uint32_t *)p = (uint32_t)c;
	return NULL;
}

static void show_channels(const void *p, char *buf, size_t n)
{
	snprintf(buf, n, "%u", *(const uint32_t *)p);
}

static const char *parse_separator(void *p, const char *s, char *why, size_t n)
{
	(void)why, (void)n;
	if (!*s)
		return "the separator is empty";
	*(const char **)p = s;
	return NULL;
}

#define SZ(field) .size = sizeof(field)
static struct opt table[] = {
	OPT_HEAD("Input"),
	{"format", OPT_CHOICE, &a.o.format, "F", .help = "jsonl, dir, idx, text, image or wds", .def = "from each file",
	 .choices = (const char *const[]){"jsonl", "dir", "idx", "text", "image", "wds", NULL},
	 .values = (const int[]){MM_FMT_JSONL, MM_FMT_DIR, MM_FMT_IDX, MM_FMT_TEXT, MM_FMT_IMAGE, MM_FMT_WDS}},
	{"text-key", OPT_STR, &a.o.text_key, "NAME", .help = "JSONL, metadata, WebDataset .json: the caption field",
	 .def = "text"},
	{"split", OPT_STR, &a.o.split, "NAME", .help = "folders: read only the split subfolder NAME (train, test ...)",
	 .def = "every split"},
	{"labels", OPT_STR, &a.o.labels, "FILE", .help = "IDX: class names, one per line"},
	{"caption-template", OPT_STR, &a.o.caption_template, "STR",
	 .help = "IDX: caption of an image, {label} is its class", .def = "{label}"},
	{"doc-separator", OPT_FUNC, &a.o.doc_separator, "STR", .help = "text: a line equal to STR ends a document",
	 .parse = parse_separator, .def = "blank lines"},
	{"skip-bad", OPT_FLAG, &a.o.skip_bad, NULL, .help = "skip bad documents (counted) instead of stopping"},
	{"INPUT", OPT_ARGS, &a.inputs, NULL, .help = "files and directories; '-' reads standard input"},
	OPT_HEAD("Images"),
	{"image-size", OPT_FUNC, &a.o.prep, "N|WxH", .help = "size of every image", .parse = parse_image_size,
	 .show = show_image_size},
	{"channels", OPT_FUNC, &a.o.prep.channels, "1|3", .help = "gray or RGB", .parse = parse_channels,
	 .show = show_channels},
	{"patch", OPT_INT, &a.o.prep.patch, "P", .help = "patch side, divides the size", 1, 16384, SZ(a.o.prep.patch)},
	{"fit", OPT_CHOICE, &a.o.prep.fit, NULL, .help = "how to reach the size",
	 .choices = (const char *const[]){"crop", "pad", "stretch", NULL},
	 .values = (const int[]){MM_FIT_CROP, MM_FIT_PAD, MM_FIT_STRETCH}},
	{"background", OPT_FUNC, a.o.prep.background, "COLOR", .help = "white, black or #RRGGBB, under alpha and around pad",
	 .parse = parse_background, .show = show_background},
	{"max-pixels", OPT_SIZE, &a.o.prep.max_pixels, "N", .help = "refuse larger source images"},
	OPT_HEAD("Text"),
	{"tokenizer", OPT_STR, &a.tokenizer, "FILE", .help = "use this tokenizer", .def = "plain bytes"},
	{"train-tokenizer", OPT_STR, &a.train, "FILE", .help = "learn a BPE tokenizer from the input text, write it to FILE"},
	{"vocab-size", OPT_INT, &a.vocab, "N", .help = "its vocabulary size (261 and up)", MM_TOK_FIRST_MERGE, 1 << 24,
	 SZ(a.vocab), .def = ""},
	OPT_HEAD("Output"),
	{"output", OPT_STR, &a.o.prefix, "PREFIX", .help = "write PREFIX-00000.mms, PREFIX-00001.mms ...", .letter = 'o'},
	{"shard-size", OPT_SIZE, &a.o.shard_size, "SIZE", .help = "start a new shard past SIZE bytes"},
	{"val-fraction", OPT_FLOAT, &a.o.val_fraction, "F", .help = "send this share of documents to PREFIX-val-00000.mms ...",
	 0, 1},
	{"seed", OPT_INT, &a.o.seed, "S", .help = "which documents are validation documents", 0, INT64_MAX},
	{"threads", OPT_INT, &a.o.threads, "N", .help = "decode images on N threads; same output for every N", 1, 256,
	 SZ(a.o.threads)},
	OPT_HEAD("Shards"),
	{"list", OPT_FLAG, &a.list, "SHARD...", .help = "one line per document, then the totals"},
	{"extract", OPT_STR, &a.extract, "DIR SHARD...", .help = "write the documents to DIR as files and DIR/manifest.jsonl"},
	OPT_HEAD("Information"),
	OPT_STD_END,
};

static const char synopsis[] = "[options] -o PREFIX INPUT...\n"
			       "--train-tokenizer FILE --vocab-size N [options] [-o PREFIX] INPUT...\n"
			       "--list SHARD...\n"
			       "[--tokenizer FILE] --extract DIR SHARD...";
static const char about[] = "Turn documents into shards: JSONL manifests, folders of images with .txt captions, IDX\n"
			    "files (MNIST family), plain text; '-' reads standard input.";

// The first option given that only makes sense when tokenizing, as it was spelled, or NULL.
static const char *tokenizing_option(void)
{
	static char name[40];
	const struct opt *first = NULL;
	for (const struct opt *t = table; t->name; t++)
		if (t->set && t->ptr != &a.list && t->ptr != &a.extract && t->ptr != &a.tokenizer &&
		    (!first || t->set < first->set))
			first = t;
	if (!first)
		return NULL;
	if (first->letter)
		snprintf(name, sizeof name, "-%c", first->letter);
	else
		snprintf(name, sizeof name, "--%s", first->name);
	return name;
}

// Bad combinations are usage errors, found before any work starts.
static void check(int n_inputs, char **inputs)
{
	const mm_ingest_opts *o = &a.o;
	const char *mode = a.list ? "--list" : a.extract ? "--extract" : NULL, *tok_only = tokenizing_option();
	if (a.list && a.extract)
		die_usage("--list and --extract cannot be used together");
	if (mode && tok_only)
		die_usage("%s cannot be used with %s", tok_only, mode);
	if (a.list && a.tokenizer)
		die_usage("--tokenizer cannot be used with --list");
	if (!n_inputs)
		die_usage(mode ? "no shard given" : "no input given");
	if (mode)
		return;
	if (!o->prefix && !a.train)
		die_usage("no output: give -o PREFIX");
	if (a.tokenizer && a.train)
		die_usage("--tokenizer and --train-tokenizer cannot be used together");
	if (a.train && !a.vocab)
		die_usage("--train-tokenizer needs --vocab-size N");
	if (a.vocab && !a.train)
		die_usage("--vocab-size needs --train-tokenizer FILE");
	if (o->prep.w % o->prep.patch || o->prep.h % o->prep.patch)
		die_usage("--patch %u does not divide the image size %ux%u", o->prep.patch, o->prep.w, o->prep.h);
	int dashes = 0;
	for (int i = 0; i < n_inputs; i++)
		dashes += strcmp(inputs[i], "-") == 0;
	if (dashes > 1)
		die_usage("'-' (standard input) can be given only once");
}

// On a terminal only: documents/s, MB/s, and the time left when the total is known.
static void progress(void *ctx, const mm_ingest_stats *st)
{
	double *last = ctx;
	if (st->seconds - *last < 0.5)
		return;
	*last = st->seconds;
	double s = st->seconds > 0 ? st->seconds : 1e-9;
	fprintf(stderr, "\r%s: %llu documents, %.0f documents/s, %.1f MB/s", cli_prog,
		(unsigned long long)(st->docs + st->skipped), (double)(st->docs + st->skipped) / s,
		(double)st->bytes_in / s / 1e6);
	if (st->fraction > 0) {
		long left = (long)(st->seconds * (1 - st->fraction) / st->fraction + 0.5);
		fprintf(stderr, ", %.0f%%, %ld:%02ld:%02ld left", 100 * st->fraction, left / 3600, left / 60 % 60,
			left % 60);
	}
	fputs("\033[K", stderr);
}

static mm_tokenizer *get_tokenizer(const struct args *a, int n, char **inputs)
{
	mm_tokenizer *tok;
	int rc;
	if (a->train) {
		uint64_t skipped;
		if ((rc = mm_ingest_train(&a->o, inputs, n, a->vocab, &tok, &skipped)) ||
		    (rc = mm_tok_save(tok, a->train)))
			die_mm(rc);
		fprintf(stderr, "%s: wrote the tokenizer %s (%u ids)\n", cli_prog, a->train, mm_tok_vocab_size(tok));
	} else if (a->tokenizer)
		rc = mm_tok_load(&tok, a->tokenizer);
	else
		rc = mm_tok_new_bytes(&tok);
	if (rc)
		die_mm(rc);
	return tok;
}

static void tokenize(struct args *a, int n, char **inputs)
{
	mm_tokenizer *tok = get_tokenizer(a, n, inputs);
	if (!a->o.prefix) {
		mm_tok_free(tok);
		return;
	}
	static char note[600];
	snprintf(note, sizeof note, "interrupted: no shard written; any shards already under %.500s are as they were",
		 a->o.prefix);
	cli_interrupt_note = note;
	double last = 0;
	if (isatty(2)) {
		a->o.progress = progress;
		a->o.progress_ctx = &last;
	}
	mm_ingest_stats st;
	int rc = mm_ingest_run(&a->o, tok, inputs, n, &st);
	if (last > 0)
		fputs("\r\033[K", stderr);
	mm_tok_free(tok);
	if (rc)
		die_mm(rc);
	fprintf(stderr,
		"%s: %llu documents (%llu val), %llu text tokens, %llu images, %llu bytes in, %llu bytes out, "
		"ratio %.2f, %llu bad skipped, %llu texts with invalid UTF-8\n",
		cli_prog, (unsigned long long)st.docs, (unsigned long long)st.val_docs,
		(unsigned long long)st.text_tokens, (unsigned long long)st.images, (unsigned long long)st.bytes_in,
		(unsigned long long)st.bytes_out, st.bytes_out ? (double)st.bytes_in / (double)st.bytes_out : 0.0,
		(unsigned long long)st.skipped, (unsigned long long)st.invalid_utf8);
}

static void extract(const struct args *a, int n, char **shards)
{
	mm_tokenizer *tok;
	int rc = a->tokenizer ? mm_tok_load(&tok, a->tokenizer) : mm_tok_new_bytes(&tok);
	if (rc)
		die_mm(rc);
	mm_extract_stats st;
	rc = mm_shards_extract(a->extract, shards, n, tok, &st);
	mm_tok_free(tok);
	if (rc)
		die_mm(rc);
	fprintf(stderr, "%s: %llu documents (%llu texts, %llu images) in %s; re-tokenize with --image-size %ux%u "
		"--channels %u --patch %u\n", cli_prog, (unsigned long long)st.docs, (unsigned long long)st.texts,
		(unsigned long long)st.images, a->extract, st.info.img_w, st.info.img_h, st.info.img_c, st.info.patch);
}

static void warn_input(void *ctx, const char *msg)
{
	(void)ctx;
	warnx("warning: %s", msg);
}

int main(int argc, char **argv)
{
	cli_init(argv[0]);
	cli_cleanup_on_signal();
	mm_ingest_opts_default(&a.o);
	a.o.warn = warn_input;
	opts_parse(table, synopsis, about, argc, argv);
	int n = a.inputs.n;
	char **rest = a.inputs.v;
	check(n, rest);
	if (a.o.prefix)
		cli_output_file("-o", a.o.prefix);
	if (a.train)
		cli_output_file("--train-tokenizer", a.train);
	if (a.extract)
		cli_output_dir("--extract", a.extract);
	if (a.list) {
		int rc = mm_shards_list(rest, n, stdout);
		if (fflush(stdout) != 0)
			die("cannot write the listing");
		if (rc)
			die_mm(rc);
	} else if (a.extract)
		extract(&a, n, rest);
	else
		tokenize(&a, n, rest);
	return 0;
}
