// mm-tokenize: documents (JSONL, image folders, IDX, plain text) into shards, and back.
// The work is in lib/ingest.c; this is options, checks and messages (man/mm-tokenize.1).
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "ingest.h"
#include "mm.h"

static const char usage_text[] =
	"Usage: mm-tokenize [options] -o PREFIX INPUT...\n"
	"       mm-tokenize --train-tokenizer FILE --vocab-size N [options] [-o PREFIX] INPUT...\n"
	"       mm-tokenize --list SHARD...\n"
	"       mm-tokenize [--tokenizer FILE] --extract DIR SHARD...\n"
	"Turn documents into shards: JSONL manifests, folders of images with .txt captions, IDX\n"
	"files (MNIST family), plain text; '-' reads standard input.\n"
	"\n"
	"Input:\n"
	"  --format F              jsonl, dir, idx, text or image (default: from each file)\n"
	"  --labels FILE           IDX: class names, one per line\n"
	"  --caption-template STR  IDX: caption of an image, {label} is its class (default {label})\n"
	"  --doc-separator STR     text: a line equal to STR ends a document (default: blank lines)\n"
	"  --skip-bad              skip bad documents (counted) instead of stopping\n"
	"Images:\n"
	"  --image-size N|WxH      size of every image (default 28)\n"
	"  --channels 1|3          gray or RGB (default 1)\n"
	"  --patch P               patch side, divides the size (default 4)\n"
	"  --fit crop|pad|stretch  how to reach the size (default crop)\n"
	"  --background COLOR      white, black or #RRGGBB, under alpha and around pad (default white)\n"
	"  --max-pixels N          refuse larger source images (default 64M)\n"
	"Text:\n"
	"  --tokenizer FILE        use this tokenizer (default: plain bytes)\n"
	"  --train-tokenizer FILE  learn a BPE tokenizer from the input text, write it to FILE\n"
	"  --vocab-size N          its vocabulary size (261 and up)\n"
	"Output:\n"
	"  -o, --output PREFIX     write PREFIX-00000.mms, PREFIX-00001.mms ...\n"
	"  --shard-size SIZE       start a new shard past SIZE bytes (default 256M)\n"
	"  --val-fraction F        send this share of documents to PREFIX-val-00000.mms ...\n"
	"  --seed S                which documents are validation documents (default 0)\n"
	"  --threads N             decode images on N threads; same output for every N (default 1)\n"
	"Shards:\n"
	"  --list SHARD...         one line per document, then the totals\n"
	"  --extract DIR SHARD...  write the documents to DIR as files and DIR/manifest.jsonl\n"
	"  -h, --help              this help\n"
	"  -V, --version           the version\n";

enum {
	O_FORMAT = 256, O_LABELS, O_TEMPLATE, O_SEPARATOR, O_SKIP_BAD, O_SIZE, O_CHANNELS, O_PATCH, O_FIT,
	O_BACKGROUND, O_MAX_PIXELS, O_TOKENIZER, O_TRAIN, O_VOCAB, O_SHARD_SIZE, O_VAL, O_SEED, O_THREADS,
	O_LIST, O_EXTRACT,
};

static const struct option options[] = {
	{"output", required_argument, 0, 'o'},
	{"format", required_argument, 0, O_FORMAT},
	{"labels", required_argument, 0, O_LABELS},
	{"caption-template", required_argument, 0, O_TEMPLATE},
	{"doc-separator", required_argument, 0, O_SEPARATOR},
	{"skip-bad", no_argument, 0, O_SKIP_BAD},
	{"image-size", required_argument, 0, O_SIZE},
	{"channels", required_argument, 0, O_CHANNELS},
	{"patch", required_argument, 0, O_PATCH},
	{"fit", required_argument, 0, O_FIT},
	{"background", required_argument, 0, O_BACKGROUND},
	{"max-pixels", required_argument, 0, O_MAX_PIXELS},
	{"tokenizer", required_argument, 0, O_TOKENIZER},
	{"train-tokenizer", required_argument, 0, O_TRAIN},
	{"vocab-size", required_argument, 0, O_VOCAB},
	{"shard-size", required_argument, 0, O_SHARD_SIZE},
	{"val-fraction", required_argument, 0, O_VAL},
	{"seed", required_argument, 0, O_SEED},
	{"threads", required_argument, 0, O_THREADS},
	{"list", no_argument, 0, O_LIST},
	{"extract", required_argument, 0, O_EXTRACT},
	{"help", no_argument, 0, 'h'},
	{"version", no_argument, 0, 'V'},
	{0, 0, 0, 0},
};

typedef struct args {
	mm_ingest_opts o;
	const char *tokenizer, *train, *extract;
	uint32_t vocab;
	int list;
	char tok_only[40]; // first option given that only makes sense when tokenizing
} args;

static void parse_image_size(const char *s, mm_prep *p)
{
	unsigned w, h;
	int n = 0;
	if (sscanf(s, "%5u%n", &w, &n) == 1 && !s[n] && strspn(s, "0123456789") == (size_t)n)
		h = w;
	else if (!(sscanf(s, "%5ux%5u%n", &w, &h, &n) == 2 && !s[n] && strspn(s, "0123456789x") == (size_t)n))
		die_usage("--image-size: '%s' is not N or WxH", s);
	if (!w || !h || w > 16384 || h > 16384)
		die_usage("--image-size: %ux%u is out of range [1, 16384]", w, h);
	p->w = w, p->h = h;
}

static void parse_background(const char *s, uint8_t rgb[3])
{
	unsigned v = 0;
	int n = 0;
	if (strcmp(s, "white") == 0)
		v = 0xffffff;
	else if (strcmp(s, "black") == 0)
		v = 0;
	else if (!(s[0] == '#' && strlen(s) == 7 && sscanf(s + 1, "%6x%n", &v, &n) == 1 && n == 6))
		die_usage("--background: '%s' is not white, black or #RRGGBB", s);
	rgb[0] = (uint8_t)(v >> 16), rgb[1] = (uint8_t)(v >> 8), rgb[2] = (uint8_t)v;
}

static void parse_option(args *a, int c, const char *arg, const char *name)
{
	mm_ingest_opts *o = &a->o;
	if (c != O_LIST && c != O_EXTRACT && c != O_TOKENIZER && !a->tok_only[0])
		snprintf(a->tok_only, sizeof a->tok_only, "%s", name);
	switch (c) {
	case 'o': o->prefix = arg; break;
	case O_FORMAT:
		if ((o->format = mm_format_parse(arg)) < 0)
			die_usage("--format: '%s' is not jsonl, dir, idx, text or image", arg);
		break;
	case O_LABELS: o->labels = arg; break;
	case O_TEMPLATE: o->caption_template = arg; break;
	case O_SEPARATOR:
		if (!*arg)
			die_usage("--doc-separator: the separator is empty");
		o->doc_separator = arg;
		break;
	case O_SKIP_BAD: o->skip_bad = 1; break;
	case O_SIZE: parse_image_size(arg, &o->prep); break;
	case O_CHANNELS:
		o->prep.channels = (uint32_t)cli_int("--channels", arg, 1, 3);
		if (o->prep.channels == 2)
			die_usage("--channels: 2 is not 1 (gray) or 3 (RGB)");
		break;
	case O_PATCH: o->prep.patch = (uint32_t)cli_int("--patch", arg, 1, 16384); break;
	case O_FIT:
		if (strcmp(arg, "crop") == 0)
			o->prep.fit = MM_FIT_CROP;
		else if (strcmp(arg, "pad") == 0)
			o->prep.fit = MM_FIT_PAD;
		else if (strcmp(arg, "stretch") == 0)
			o->prep.fit = MM_FIT_STRETCH;
		else
			die_usage("--fit: '%s' is not crop, pad or stretch", arg);
		break;
	case O_BACKGROUND: parse_background(arg, o->prep.background); break;
	case O_MAX_PIXELS: o->prep.max_pixels = cli_size("--max-pixels", arg); break;
	case O_TOKENIZER: a->tokenizer = arg; break;
	case O_TRAIN: a->train = arg; break;
	case O_VOCAB: a->vocab = (uint32_t)cli_int("--vocab-size", arg, MM_TOK_FIRST_MERGE, 1 << 24); break;
	case O_SHARD_SIZE: o->shard_size = cli_size("--shard-size", arg); break;
	case O_VAL: o->val_fraction = cli_double("--val-fraction", arg, 0, 1); break;
	case O_SEED: o->seed = (uint64_t)cli_int("--seed", arg, 0, INT64_MAX); break;
	case O_THREADS: o->threads = (int)cli_int("--threads", arg, 1, 256); break;
	case O_LIST: a->list = 1; break;
	case O_EXTRACT: a->extract = arg; break;
	}
}

static void parse(args *a, int argc, char **argv)
{
	mm_ingest_opts_default(&a->o);
	int c, idx;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":o:hV", options, &idx)) != -1) {
		if (c == 'h') {
			fputs(usage_text, stdout);
			exit(0);
		}
		if (c == 'V') {
			puts("mm-tokenize (mm) 0.1");
			exit(0);
		}
		if (c == '?')
			die_usage("unknown option '%s'", argv[optind - 1]);
		if (c == ':')
			die_usage("option '%s' needs a value", argv[optind - 1]);
		char name[40] = "-o";
		for (const struct option *p = options; c != 'o' && p->name; p++)
			if (p->val == c)
				snprintf(name, sizeof name, "--%s", p->name);
		parse_option(a, c, optarg, name);
	}
}

// Bad combinations are usage errors, found before any work starts.
static void check(const args *a, int n_inputs, char **inputs)
{
	const mm_ingest_opts *o = &a->o;
	const char *mode = a->list ? "--list" : a->extract ? "--extract" : NULL;
	if (a->list && a->extract)
		die_usage("--list and --extract cannot be used together");
	if (mode && a->tok_only[0])
		die_usage("%s cannot be used with %s", a->tok_only, mode);
	if (a->list && a->tokenizer)
		die_usage("--tokenizer cannot be used with --list");
	if (!n_inputs)
		die_usage(mode ? "no shard given" : "no input given");
	if (mode)
		return;
	if (!o->prefix && !a->train)
		die_usage("no output: give -o PREFIX");
	if (a->tokenizer && a->train)
		die_usage("--tokenizer and --train-tokenizer cannot be used together");
	if (a->train && !a->vocab)
		die_usage("--train-tokenizer needs --vocab-size N");
	if (a->vocab && !a->train)
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

static mm_tokenizer *get_tokenizer(const args *a, int n, char **inputs)
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

static void tokenize(args *a, int n, char **inputs)
{
	mm_tokenizer *tok = get_tokenizer(a, n, inputs);
	if (!a->o.prefix) {
		mm_tok_free(tok);
		return;
	}
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

static void extract(const args *a, int n, char **shards)
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

int main(int argc, char **argv)
{
	cli_init(argv[0]);
	cli_cleanup_on_signal();
	args a = {0};
	parse(&a, argc, argv);
	int n = argc - optind;
	char **rest = argv + optind;
	check(&a, n, rest);
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
