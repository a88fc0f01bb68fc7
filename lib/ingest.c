// The ingest driver: inputs are read in order into batches of raw documents; a batch is
// tokenized and its images prepared in parallel; then its documents are written in order, so
// the shards are the same bytes for every thread count (the pipeline is under "the run").
#include "ingest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bytes.h"
#include "checksum.h"
#include "err.h"
#include "fileio.h"
#include "prof.h"
#include "source_priv.h"
#include "source_readers_priv.h"

// Documents per batch: enough to keep the threads busy, few enough to bound memory. Fixed, so
// that nothing about the output depends on the thread count.
#define BATCH 256
#define MAX_THREADS 256

void mm_ingest_opts_default(mm_ingest_opts *o)
{
	memset(o, 0, sizeof *o);
	o->format = MM_FMT_AUTO;
	o->prep.channels = 1;
	o->prep.w = o->prep.h = 28;
	o->prep.patch = 4;
	o->prep.fit = MM_FIT_CROP;
	memset(o->prep.background, 255, 3);
	o->prep.max_pixels = (uint64_t)64 << 20;
	o->shard_size = (uint64_t)256 << 20;
	o->threads = 1;
	o->zstd_level = 1;
}

// ---------------------------------------------------------------- inputs

typedef struct input {
	const char *path, *labels; // borrowed from the caller or the stdin list
	int format;
	uint64_t weight;
} input;

typedef struct inputs {
	input *v;
	int n;
	uint64_t total_weight; // 0 when some input's size is unknown
	char **names;          // class names for IDX captions
	uint32_t n_names;
	char *names_buf;
	char **owned; // paths made here (a folder's split, --split), freed with the inputs
	int n_owned;
} inputs;

static void inputs_free(inputs *in)
{
	free(in->v);
	free(in->names);
	free(in->names_buf);
	for (int i = 0; i < in->n_owned; i++)
		free(in->owned[i]);
	free(in->owned);
	memset(in, 0, sizeof *in);
}

static int load_names(inputs *in, const char *path)
{
	size_t n;
	int rc = mm_read_file(path, (size_t)1 << 24, (uint8_t **)&in->names_buf, &n);
	if (rc)
		return rc;
	size_t lines = 1;
	for (size_t i = 0; i < n; i++)
		lines += in->names_buf[i] == '\n';
	if (!(in->names = malloc(lines * sizeof *in->names)))
		return mm_fail(MM_ENOMEM, "out of memory");
	char *p = in->names_buf, *end = p + n;
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		char *e = nl ? nl : end;
		*e = 0;
		if (e > p && e[-1] == '\r')
			e[-1] = 0;
		in->names[in->n_names++] = p;
		p = e + 1;
	}
	if (!in->n_names)
		return mm_fail(MM_EFORMAT, "%s: no class names", path);
	return 0;
}

static int content_format(int f) { return f == MM_FMT_JSONL || f == MM_FMT_TEXT || f == MM_FMT_WDS; }

// --split NAME: a folder input stands for its split subfolder DIR/NAME, which must be a folder.
static int split_path(inputs *in, const char *dir, const char *split, const char **out)
{
	char *p = mm_src_path_join(dir, split);
	char **v = p ? realloc(in->owned, (size_t)(in->n_owned + 1) * sizeof *v) : NULL;
	if (!v) {
		free(p);
		return mm_fail(MM_ENOMEM, "out of memory");
	}
	in->owned = v;
	in->owned[in->n_owned++] = p;
	struct stat st;
	if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode))
		return mm_fail(MM_EINVAL, "%s: no split folder %s in it (--split)", dir, split);
	*out = p;
	return 0;
}

static int inputs_add(inputs *in, int *cap, const char *path, int format, const char *labels)
{
	if (in->n == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		input *v = realloc(in->v, (size_t)*cap * sizeof *v);
		if (!v)
			return mm_fail(MM_ENOMEM, "out of memory");
		in->v = v;
	}
	in->v[in->n++] = (input){path, labels, format, 0};
	return 0;
}

// Expands "-", detects every format, pairs IDX images with the labels that follow them.
static int inputs_resolve(inputs *in, const mm_ingest_opts *o, char *const *argv, int argc)
{
	memset(in, 0, sizeof *in);
	int cap = 0, rc = 0;
	char **list = NULL;
	int n_list = 0;
	for (int i = 0; i < argc && !rc; i++) {
		if (strcmp(argv[i], "-") == 0 && content_format(o->format)) {
			rc = inputs_add(in, &cap, "-", o->format, NULL);
			continue;
		}
		char *const *paths = argv + i;
		int np = 1;
		if (strcmp(argv[i], "-") == 0) {
			if ((rc = mm_stdin_paths(&list, &n_list)))
				break;
			paths = list, np = n_list;
		}
		for (int k = 0; k < np && !rc; k++) {
			int fmt, kind;
			if ((rc = mm_source_detect(paths[k], o->format, &fmt, &kind)))
				break;
			input *prev = in->n ? &in->v[in->n - 1] : NULL;
			if (fmt == MM_FMT_IDX && kind == 1) {
				if (!prev || prev->format != MM_FMT_IDX || prev->labels)
					rc = mm_fail(MM_EINVAL, "%s: IDX labels must follow their IDX images file",
						     paths[k]);
				else
					prev->labels = paths[k];
				continue;
			}
			const char *path = paths[k];
			if (fmt == MM_FMT_DIR && o->split && (rc = split_path(in, path, o->split, &path)))
				break;
			rc = inputs_add(in, &cap, path, fmt, NULL);
		}
	}
	if (!rc && o->labels)
		rc = load_names(in, o->labels);
	if (rc) {
		inputs_free(in);
		return rc;
	}
	// Weights only drive the progress line: without one, a folder is not listed twice.
	in->total_weight = 0;
	for (int i = 0; i < in->n && o->progress; i++) {
		input *p = &in->v[i];
		p->weight = mm_source_weight(p->path, p->format);
		if (p->labels)
			p->weight += mm_source_weight(p->labels, MM_FMT_IDX);
		if (!p->weight && strcmp(p->path, "-") == 0) {
			in->total_weight = 0;
			break;
		}
		in->total_weight += p->weight;
	}
	return 0;
}

static int source_open(mm_source **s, const inputs *in, const input *p, const mm_ingest_opts *o)
{
	mm_source_opts so = {o->doc_separator, o->text_key, o->warn, o->warn_ctx, in->names, in->n_names,
			     o->caption_template, o->prep.max_pixels};
	return mm_source_open(s, p->format, p->path, p->labels, &so);
}

// ---------------------------------------------------------------- tokenizer training

int mm_ingest_train(const mm_ingest_opts *o, char *const *argv, int argc, uint32_t vocab_size, mm_tokenizer **out,
		    uint64_t *skipped)
{
	*out = NULL;
	uint64_t bad = 0;
	int rc = 0;
	for (int i = 0; i < argc && !rc; i++)
		if (strcmp(argv[i], "-") == 0 && content_format(o->format))
			rc = mm_stdin_spool();
	inputs in;
	if (rc || (rc = inputs_resolve(&in, o, argv, argc)))
		return rc;
	mm_bpe_trainer *tr = NULL;
	mm_rawdoc d = {0};
	rc = mm_bpe_trainer_new(&tr);
	for (int i = 0; i < in.n && !rc; i++) {
		mm_source *s;
		if ((rc = source_open(&s, &in, &in.v[i], o)))
			break;
		while ((rc = mm_source_next(s, &d)) == 1) {
			if (d.err) {
				if (!o->skip_bad) {
					rc = mm_fail(d.err, "%s", d.msg);
					break;
				}
				bad++;
				continue;
			}
			for (uint32_t k = 0; k < d.n_segs && rc == 1; k++)
				if (d.segs[k].type == MM_SEG_TEXT && d.segs[k].len)
					rc = mm_bpe_trainer_feed(tr, d.segs[k].text, d.segs[k].len) ? -1 : 1;
			if (rc != 1)
				break;
		}
		mm_source_close(s);
	}
	mm_rawdoc_free(&d);
	if (!rc)
		rc = mm_bpe_trainer_finish(tr, vocab_size, out);
	mm_bpe_trainer_free(tr);
	inputs_free(&in);
	if (skipped)
		*skipped = bad;
	return rc;
}

// ---------------------------------------------------------------- one batch

typedef struct job {
	mm_rawdoc raw;
	mm_doc doc;
	uint64_t index; // of the document in the whole input, for the validation draw
	int err;
	char *msg;
	uint64_t bytes_in;
	uint64_t tokens;
	uint32_t images, invalid_utf8;
	uint8_t *spare; // pixels of an earlier document of this slot, reused by the next image
} job;

static int utf8_valid(const uint8_t *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint8_t c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t k;
		uint32_t cp, min;
		if ((c & 0xe0) == 0xc0)
			k = 1, cp = c & 0x1f, min = 0x80;
		else if ((c & 0xf0) == 0xe0)
			k = 2, cp = c & 0x0f, min = 0x800;
		else if ((c & 0xf8) == 0xf0)
			k = 3, cp = c & 0x07, min = 0x10000;
		else
			return 0;
		if (n - i <= k)
			return 0;
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + j] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += k + 1;
	}
	return 1;
}

static int job_segment(job *j, const mm_rawseg *s, const mm_tokenizer *tok, const mm_prep *p, uint32_t **ids,
		       size_t *cap)
{
	if (s->type == MM_SEG_TEXT) {
		size_t n_ids;
		int rc = mm_tok_encode(tok, s->text, s->len, ids, cap, &n_ids);
		if (rc)
			return rc;
		if (n_ids > UINT32_MAX)
			return mm_fail(MM_ERANGE, "a text of %zu tokens is too long", n_ids);
		j->tokens += n_ids;
		j->invalid_utf8 += !utf8_valid(s->text, s->len);
		return mm_doc_add_text(&j->doc, *ids, (uint32_t)n_ids);
	}
	uint8_t *px = j->spare ? j->spare : malloc(mm_prep_bytes(p)); // becomes the document's
	j->spare = NULL;
	if (!px)
		return mm_fail(MM_ENOMEM, "out of memory");
	int rc;
	if (s->path) { // read here, on the worker: the reader thread only lists names
		rc = mm_prep_image_file_at(s->lent ? s->dirfd : AT_FDCWD, s->path + s->name, s->path, p, px,
					   &j->bytes_in);
	} else if (!s->w) { // an encoded image held in memory (a tar member)
		mm_image img;
		rc = mm_image_load_mem(s->px, s->len, j->raw.where ? j->raw.where : "image", p->max_pixels, &img);
		if (!rc)
			rc = mm_prep_image(&img, p, px);
		mm_image_free(&img);
	} else {
		mm_image img = {s->w, s->h, 1, s->px};
		rc = mm_prep_image(&img, p, px);
	}
	j->images++;
	if (rc) {
		free(px);
		return rc;
	}
	return mm_doc_take_image(&j->doc, p->h, p->w, p->channels, p->patch, px);
}

// Runs on a worker thread: everything a document needs before it can be written.
static void job_run(job *j, const mm_tokenizer *tok, const mm_prep *p)
{
	j->tokens = j->images = j->invalid_utf8 = 0;
	j->bytes_in = 0;
	mm_doc_clear(&j->doc);
	if (j->raw.err) {
		j->err = j->raw.err;
		j->msg = strdup(j->raw.msg);
		return;
	}
	uint32_t *ids = NULL;
	size_t cap = 0;
	int rc = 0;
	for (uint32_t k = 0; k < j->raw.n_segs && !rc; k++)
		rc = job_segment(j, &j->raw.segs[k], tok, p, &ids, &cap);
	free(ids);
	if (rc) {
		if (j->raw.where)
			mm_errctx("%s", j->raw.where);
		j->err = rc;
		j->msg = strdup(mm_errmsg());
	}
}

// ---------------------------------------------------------------- output

typedef struct out {
	const mm_ingest_opts *o;
	mm_shard_info info;
	mm_shard_writer *w[2]; // train, val
	uint32_t next[2];      // number of the next shard of each kind
	uint64_t bytes_done;   // of the shards sealed so far
} out;

static char *shard_name(const char *prefix, int val, uint32_t k)
{
	size_t n = strlen(prefix) + 32;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s-%s%05u.mms", prefix, val ? "val-" : "", k);
	return p;
}

// The shards stay under temporary names until the whole set is done (out_finish).
static int out_close(out *u, int val)
{
	uint64_t bytes = 0;
	int rc = mm_shard_writer_seal(u->w[val], &bytes);
	u->w[val] = NULL;
	if (!rc)
		u->bytes_done += bytes;
	return rc;
}

static int out_add(out *u, int val, const mm_doc *doc)
{
	if (!u->w[val]) {
		char *path = shard_name(u->o->prefix, val, u->next[val]);
		if (!path)
			return mm_fail(MM_ENOMEM, "out of memory");
		int rc = mm_shard_writer_open(&u->w[val], path, &u->info, u->o->zstd_level);
		free(path);
		if (rc)
			return rc;
		// The writer's size grows a block at a time: blocks well under the shard size let
		// a small --shard-size cut where asked, and leave the default (1 MB) alone.
		uint64_t block = u->o->shard_size / 4;
		block = block < 1 ? 1 : block > MM_SHARD_BLOCK_SIZE ? MM_SHARD_BLOCK_SIZE : block;
		if ((rc = mm_shard_writer_set_block_size(u->w[val], (uint32_t)block))) {
			mm_shard_writer_abort(u->w[val]);
			u->w[val] = NULL;
			return rc;
		}
		u->next[val]++;
	}
	int rc = mm_shard_writer_add(u->w[val], doc);
	if (!rc && mm_shard_writer_bytes(u->w[val]) >= u->o->shard_size)
		rc = out_close(u, val);
	return rc;
}

static uint64_t out_bytes(const out *u)
{
	uint64_t b = u->bytes_done;
	for (int v = 0; v < 2; v++)
		if (u->w[v])
			b += mm_shard_writer_bytes(u->w[v]);
	return b;
}

// All or nothing: the open shards and the sealed ones are removed; the final names untouched.
static void out_discard(out *u)
{
	for (int v = 0; v < 2; v++)
		if (u->w[v])
			mm_shard_writer_abort(u->w[v]);
	memset(u->w, 0, sizeof u->w);
	mm_afile_discard_sealed();
}

// The number of a shard of an earlier set under the same prefix: name is
// "BASE-NNNNN.mms" (*val 0) or "BASE-val-NNNNN.mms" (*val 1), five digits or more; -1 if not.
static long long stale_number(const char *name, const char *base, int *val)
{
	size_t n = strlen(base);
	if (strncmp(name, base, n) != 0 || name[n] != '-')
		return -1;
	const char *p = name + n + 1;
	*val = strncmp(p, "val-", 4) == 0;
	p += *val ? 4 : 0;
	size_t digits = strspn(p, "0123456789");
	if (digits < 5 || digits > 10 || strcmp(p + digits, ".mms") != 0)
		return -1;
	return strtoll(p, NULL, 10);
}

// After the new set is in place: the shards of an earlier run under the same prefix that the
// new set did not replace (a larger earlier run) would be read by a glob with the new ones.
static int out_remove_stale(void *ctx)
{
	const out *u = ctx;
	char *dir = strdup(u->o->prefix);
	if (!dir)
		return mm_fail(MM_ENOMEM, "out of memory");
	char *slash = strrchr(dir, '/');
	const char *base = slash ? slash + 1 : dir;
	const char *dname = slash ? (slash == dir ? "/" : dir) : ".";
	if (slash)
		*slash = 0;
	int rc = 0, dfd = open(dname, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!d) {
		if (dfd >= 0)
			close(dfd);
		rc = mm_fail(MM_EIO, "%s: cannot list: %s", dname, strerror(errno));
	}
	for (struct dirent *e; d && (e = readdir(d));) {
		int val = 0;
		long long k = stale_number(e->d_name, base, &val);
		if (k >= 0 && k >= u->next[val] && unlinkat(dfd, e->d_name, 0) != 0 && errno != ENOENT && !rc)
			rc = mm_fail(MM_EIO, "%s/%s: cannot remove the older shard: %s", dname, e->d_name,
				     strerror(errno));
	}
	if (d)
		closedir(d);
	free(dir);
	return rc;
}

static int out_finish(out *u)
{
	int rc = 0;
	for (int v = 0; v < 2 && !rc; v++)
		if (u->w[v])
			rc = out_close(u, v);
	if (rc) {
		out_discard(u);
		return rc;
	}
	return mm_afile_publish(out_remove_stale, u);
}

// A fixed function of (seed, document index): the same documents go to validation whatever
// the thread count, the shard size, or the other documents.
static int is_val(uint64_t seed, uint64_t index, double f)
{
	if (f <= 0)
		return 0;
	if (f >= 1)
		return 1;
	uint8_t b[16];
	mm_put_u64(b, seed);
	mm_put_u64(b + 8, index);
	uint64_t h = mm_hash64(MM_HASH64_INIT, b, sizeof b);
	return (double)(h >> 11) * 0x1p-53 < f;
}

// ---------------------------------------------------------------- the run

// Batches move through three stages: read (one thread, input order), prepare (every thread),
// write (one thread, input order). While batch k is written, batch k+1 is prepared and batch
// k+2 read, so the serial reading and compressing overlap with each other and with the
// decoding. Errors are kept with their batch and reported in input order.
typedef struct batch {
	job jobs[BATCH];
	int n;
} batch;

typedef struct run {
	const mm_ingest_opts *o;
	const mm_tokenizer *tok;
	inputs in;
	out u;
	batch *b[3]; // being written, being prepared, being read
	mm_ingest_stats st;
	// the reader
	int cur;            // input being read
	mm_source *src;     // its source, or NULL
	int read_rc;        // an input went bad (< 0): nothing more is read
	char *read_msg;     // its message (reading may run on another thread)
	uint64_t index;     // documents read so far
	uint64_t src_bytes; // bytes of the finished sources
	// Finished sources stay open until their last documents are written (they lend image
	// paths): retired[k] finished in step retired_at[k].
	mm_source **retired;
	unsigned *retired_at;
	int n_retired;
	unsigned step; // steps finished
	uint64_t weight_done;
	double t0;
} run;

// Keeps a finished source open until the documents read from it are written (room for one
// source an input was made at the start).
static void retire(run *r, mm_source *s)
{
	r->retired[r->n_retired] = s;
	r->retired_at[r->n_retired++] = r->step;
}

// Closes the retired sources whose documents are all written, or all of them.
static void close_retired(run *r, int all)
{
	int keep = 0;
	for (int k = 0; k < r->n_retired; k++) {
		// read in step t, prepared in t + 1, written in t + 2 and cleared at its end
		if (all || r->retired_at[k] + 2 < r->step)
			mm_source_close(r->retired[k]);
		else
			r->retired[keep] = r->retired[k], r->retired_at[keep++] = r->retired_at[k];
	}
	r->n_retired = keep;
}

// Fills b with the next documents of the inputs (fewer at the end).
static void read_batch(run *r, batch *b)
{
	b->n = 0;
	while (b->n < BATCH && !r->read_rc && r->cur < r->in.n) {
		const input *p = &r->in.v[r->cur];
		int rc = r->src ? 0 : source_open(&r->src, &r->in, p, r->o);
		if (!rc && (rc = mm_source_next(r->src, &b->jobs[b->n].raw)) == 1) {
			b->jobs[b->n++].index = r->index++;
			continue;
		}
		if (r->src) {
			r->src_bytes += mm_source_bytes(r->src);
			retire(r, r->src);
			r->src = NULL;
		}
		r->weight_done += p->weight;
		r->cur++;
		if (rc < 0) {
			r->read_rc = rc;
			r->read_msg = strdup(mm_errmsg());
		}
	}
}

// Writes the documents of a batch in order; the first bad one fails the run (or is skipped).
static int write_batch(run *r, batch *b)
{
	for (int i = 0; i < b->n; i++) {
		job *j = &b->jobs[i];
		if (j->err) {
			if (!r->o->skip_bad)
				return mm_fail(j->err, "%s", j->msg ? j->msg : mm_strerror(j->err));
			r->st.skipped++;
			continue;
		}
		int val = is_val(r->o->seed, j->index, r->o->val_fraction);
		int rc = out_add(&r->u, val, &j->doc);
		if (rc)
			return rc;
		r->st.docs++;
		r->st.val_docs += (uint64_t)val;
		r->st.text_tokens += j->tokens;
		r->st.images += j->images;
		r->st.invalid_utf8 += j->invalid_utf8;
		r->st.bytes_in += j->bytes_in;
	}
	return 0;
}

static void batch_clear(batch *b)
{
	for (int i = 0; i < b->n; i++) {
		free(b->jobs[i].msg);
		b->jobs[i].msg = NULL;
		b->jobs[i].err = 0;
		mm_rawdoc_clear(&b->jobs[i].raw);
		mm_doc *d = &b->jobs[i].doc; // every image of a run has the same size: keep one
		if (!b->jobs[i].spare && d->n_segs && d->segs[d->n_segs - 1].type == MM_SEG_IMAGE) {
			b->jobs[i].spare = d->segs[d->n_segs - 1].pixels;
			d->segs[d->n_segs - 1].pixels = NULL;
		}
		mm_doc_clear(d);
	}
	b->n = 0;
}

static void batch_free(batch *b)
{
	if (!b)
		return;
	for (int i = 0; i < BATCH; i++) {
		mm_rawdoc_free(&b->jobs[i].raw);
		mm_doc_free(&b->jobs[i].doc);
		free(b->jobs[i].msg);
		free(b->jobs[i].spare);
	}
	free(b);
}

static void run_progress(run *r)
{
	if (!r->o->progress)
		return;
	r->st.seconds = mm_now() - r->t0;
	r->st.bytes_out = out_bytes(&r->u);
	r->st.fraction = -1;
	if (r->in.total_weight) {
		double cur = r->src ? (double)r->in.v[r->cur].weight * mm_source_progress(r->src) : 0;
		r->st.fraction = ((double)r->weight_done + cur) / (double)r->in.total_weight;
	}
	uint64_t keep = r->st.bytes_in;
	r->st.bytes_in += r->src_bytes + (r->src ? mm_source_bytes(r->src) : 0);
	r->o->progress(r->o->progress_ctx, &r->st);
	r->st.bytes_in = keep;
}

// One step of the pipeline: write b[0], prepare b[1], read b[2], all at once. The calling
// thread writes, the last helper reads, and each joins the preparation when done. Helpers live
// through the whole run and wait for each step on a condition variable: they block rather than
// spin when idle, which matters on a machine shared with other work. Only the hand-over between
// steps spins, briefly, and only when every thread has a processor of its own: a step lasts a
// few milliseconds, and waking a blocked thread cost about 0.1 ms at each end (measured: the
// spin took mm-tokenize on make bench's 8,000 PNGs from 0.70 to 0.76 of the decode-only speed).
typedef struct step {
	run *r;
	int next; // next job of b[1] to prepare
	int wrc;
	char *wmsg;
} step;

typedef struct pool pool;
typedef struct helper {
	pool *p;
	int role; // 1: read first, 2: prepare only
} helper;

struct pool {
	pthread_mutex_t mu;
	pthread_cond_t go, done;
	unsigned gen;  // steps started
	unsigned pending; // helpers still working on the current step
	int quit;
	int n;         // helpers started
	int spin;      // every thread has a processor: wait a little before blocking
	step *st;      // the current step
	pthread_t tid[MAX_THREADS];
	helper h[MAX_THREADS];
};

static void step_work(step *st, int role)
{
	run *r = st->r;
	batch *p = r->b[1];
	if (role == 0 && r->b[0]->n && (st->wrc = write_batch(r, r->b[0])))
		st->wmsg = strdup(mm_errmsg());
	if (role == 1)
		read_batch(r, r->b[2]);
	for (int i; (i = __atomic_fetch_add(&st->next, 1, __ATOMIC_RELAXED)) < p->n;)
		job_run(&p->jobs[i], r->tok, &r->o->prep);
}

// Spins while (*v == x) == same, for at most 4096 pauses (0.11 ms on the AMD EPYC of make bench).
static void spin_while(const unsigned *v, unsigned x, int same)
{
	for (int i = 0; i < 4096; i++) {
		if ((__atomic_load_n(v, __ATOMIC_ACQUIRE) == x) != same)
			return;
#if defined(__x86_64__) || defined(__i386__)
		__builtin_ia32_pause();
#endif
	}
}

static void *helper_main(void *arg)
{
	helper *h = arg;
	pool *p = h->p;
	unsigned seen = 0;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		if (p->spin && p->gen == seen && !p->quit) {
			pthread_mutex_unlock(&p->mu);
			spin_while(&p->gen, seen, 1);
			pthread_mutex_lock(&p->mu);
		}
		while (p->gen == seen && !p->quit)
			pthread_cond_wait(&p->go, &p->mu);
		if (p->quit)
			break;
		seen = p->gen;
		step *st = p->st;
		int role = h->role;
		pthread_mutex_unlock(&p->mu);
		step_work(st, role);
		pthread_mutex_lock(&p->mu);
		if (__atomic_sub_fetch(&p->pending, 1, __ATOMIC_RELEASE) == 0)
			pthread_cond_signal(&p->done);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

// Starts up to threads - 1 helpers (fewer if the system refuses: the work is the same, only
// slower); the last one started reads.
static int pool_start(pool *p, int threads)
{
	memset(p, 0, sizeof *p);
	if (pthread_mutex_init(&p->mu, NULL) || pthread_cond_init(&p->go, NULL) || pthread_cond_init(&p->done, NULL))
		return mm_fail(MM_ENOMEM, "cannot make the threads' lock");
	for (int t = 0; t < threads - 1; t++) {
		p->h[t] = (helper){p, 2};
		if (pthread_create(&p->tid[t], NULL, helper_main, &p->h[t]) != 0)
			break;
		p->n++;
	}
	if (p->n)
		p->h[p->n - 1].role = 1; // read by no helper before the first step
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	p->spin = cpus > 0 && p->n + 1 <= cpus;
	return 0;
}

static void pool_stop(pool *p)
{
	pthread_mutex_lock(&p->mu);
	p->quit = 1;
	pthread_cond_broadcast(&p->go);
	pthread_mutex_unlock(&p->mu);
	for (int t = 0; t < p->n; t++)
		pthread_join(p->tid[t], NULL);
	pthread_cond_destroy(&p->go);
	pthread_cond_destroy(&p->done);
	pthread_mutex_destroy(&p->mu);
}

static int run_step(run *r, pool *p)
{
	step st = {r, 0, 0, NULL};
	if (!p->n) {
		// Nobody reads: do it here, after writing (same order, same output).
		step_work(&st, 0);
		read_batch(r, r->b[2]);
		step_work(&st, 2);
	} else {
		pthread_mutex_lock(&p->mu);
		p->st = &st;
		__atomic_store_n(&p->pending, (unsigned)p->n, __ATOMIC_RELAXED);
		__atomic_add_fetch(&p->gen, 1, __ATOMIC_RELEASE);
		pthread_cond_broadcast(&p->go);
		pthread_mutex_unlock(&p->mu);
		step_work(&st, 0);
		if (p->spin)
			spin_while(&p->pending, 0, 0);
		pthread_mutex_lock(&p->mu);
		while (p->pending)
			pthread_cond_wait(&p->done, &p->mu);
		pthread_mutex_unlock(&p->mu);
	}
	if (st.wrc)
		mm_fail(st.wrc, "%s", st.wmsg ? st.wmsg : mm_strerror(st.wrc));
	free(st.wmsg);
	batch *w = r->b[0];
	batch_clear(w);
	r->b[0] = r->b[1], r->b[1] = r->b[2], r->b[2] = w;
	r->step++;
	close_retired(r, 0);
	return st.wrc;
}

static int run_inputs(run *r)
{
	for (int k = 0; k < 3; k++)
		if (!(r->b[k] = calloc(1, sizeof *r->b[k])))
			return mm_fail(MM_ENOMEM, "out of memory");
	int threads = r->o->threads < 1 ? 1 : r->o->threads > MAX_THREADS ? MAX_THREADS : r->o->threads;
	pool p;
	int rc = pool_start(&p, threads);
	if (rc)
		return rc;
	do {
		if ((rc = run_step(r, &p)))
			break;
		run_progress(r);
	} while (r->b[0]->n || r->b[1]->n);
	pool_stop(&p);
	if (rc)
		return rc;
	// The documents read before an input went bad came first: their errors won above.
	if (r->read_rc)
		return mm_fail(r->read_rc, "%s", r->read_msg ? r->read_msg : mm_strerror(r->read_rc));
	return 0;
}

int mm_ingest_run(const mm_ingest_opts *o, const mm_tokenizer *tok, char *const *argv, int argc, mm_ingest_stats *stats)
{
	int rc = mm_prep_check(&o->prep);
	if (rc)
		return rc;
	run r;
	memset(&r, 0, sizeof r);
	r.o = o, r.tok = tok, r.t0 = mm_now();
	r.u.o = o;
	r.u.info = (mm_shard_info){mm_tok_hash(tok), mm_tok_vocab_size(tok), o->prep.h, o->prep.w, o->prep.channels,
				   o->prep.patch, 0};
	if ((rc = inputs_resolve(&r.in, o, argv, argc)))
		return rc;
	r.retired = malloc((size_t)(r.in.n ? r.in.n : 1) * sizeof *r.retired);
	r.retired_at = malloc((size_t)(r.in.n ? r.in.n : 1) * sizeof *r.retired_at);
	rc = r.retired && r.retired_at ? run_inputs(&r) : mm_fail(MM_ENOMEM, "out of memory");
	if (!rc && !r.st.docs)
		rc = mm_fail(MM_EINVAL, "no documents in the input%s", r.st.skipped ? " (every one was bad)" : "");
	if (!rc)
		rc = out_finish(&r.u);
	else
		out_discard(&r.u);
	for (int k = 0; k < 3; k++)
		batch_free(r.b[k]);
	if (r.src) {
		r.src_bytes += mm_source_bytes(r.src);
		mm_source_close(r.src);
	}
	close_retired(&r, 1);
	free(r.retired);
	free(r.retired_at);
	free(r.read_msg);
	r.st.bytes_in += r.src_bytes;
	r.st.bytes_out = r.u.bytes_done;
	r.st.shards = r.u.next[0];
	r.st.val_shards = r.u.next[1];
	r.st.seconds = mm_now() - r.t0;
	r.st.fraction = 1;
	inputs_free(&r.in);
	if (stats)
		*stats = r.st;
	return rc;
}
