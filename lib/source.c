#include "source_readers_priv.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <zlib.h>

#include "doc.h"
#include "err.h"
#include "fileio.h"
#include "ingest.h"
#include "source_priv.h"

// A caption or a text file named by a manifest is read whole; this bounds the memory.
#define TEXT_FILE_MAX ((size_t)1 << 30)
// IDX dimensions beyond this are not an image dataset; refusing them bounds every allocation.
#define IDX_MAX_SIDE 65535u

// ---------------------------------------------------------------- raw documents

void mm_rawdoc_clear(mm_rawdoc *d)
{
	for (uint32_t i = 0; i < d->n_segs; i++) {
		free(d->segs[i].text);
		if (!d->segs[i].lent)
			free(d->segs[i].path);
		free(d->segs[i].px);
	}
	d->n_segs = 0;
	free(d->msg);
	free(d->where);
	d->msg = d->where = NULL;
	d->err = 0;
}

void mm_rawdoc_free(mm_rawdoc *d)
{
	mm_rawdoc_clear(d);
	free(d->segs);
	memset(d, 0, sizeof *d);
}

static mm_rawseg *raw_push(mm_rawdoc *d, uint32_t type)
{
	if (d->n_segs == d->cap_segs) {
		uint32_t cap = d->cap_segs ? d->cap_segs * 2 : 4;
		mm_rawseg *s = realloc(d->segs, cap * sizeof *s);
		if (!s)
			return NULL;
		d->segs = s;
		d->cap_segs = cap;
	}
	mm_rawseg *s = &d->segs[d->n_segs++];
	memset(s, 0, sizeof *s);
	s->type = type;
	return s;
}

mm_rawseg *mm_rawdoc_push(mm_rawdoc *d, uint32_t type) { return raw_push(d, type); }

// Takes ownership of text (NULL-safe for n == 0).
static int raw_text(mm_rawdoc *d, uint8_t *text, size_t n)
{
	mm_rawseg *s = raw_push(d, MM_SEG_TEXT);
	if (!s) {
		free(text);
		return mm_fail(MM_ENOMEM, "out of memory");
	}
	s->text = text;
	s->len = n;
	return 0;
}

int mm_src_text_copy(mm_rawdoc *d, const char *text, size_t n)
{
	uint8_t *t = malloc(n ? n : 1);
	if (!t)
		return mm_fail(MM_ENOMEM, "out of memory");
	memcpy(t, text, n);
	return raw_text(d, t, n);
}

int mm_src_image_path(mm_rawdoc *d, const char *dir, const char *name)
{
	size_t a = strlen(dir), b = strlen(name);
	char *p = malloc(a + b + 1);
	mm_rawseg *s = p ? raw_push(d, MM_SEG_IMAGE) : NULL;
	if (!s) {
		free(p);
		return mm_fail(MM_ENOMEM, "out of memory");
	}
	memcpy(p, dir, a);
	memcpy(p + a, name, b + 1);
	s->path = p;
	return 0;
}

// Marks d bad with the current library message (the caller fails or skips it in order).
int mm_src_bad(mm_rawdoc *d, int rc)
{
	mm_rawdoc_clear(d);
	d->err = rc;
	d->msg = strdup(mm_errmsg());
	return d->msg ? 1 : mm_fail(MM_ENOMEM, "out of memory");
}

// d->where = "NAME:LINE" for a document read from line s->lineno; 1, or an error.
int mm_src_where_line(const mm_source *s, mm_rawdoc *d)
{
	char where[64];
	snprintf(where, sizeof where, ":%llu", (unsigned long long)s->lineno);
	size_t a = strlen(s->name), b = strlen(where);
	if (!(d->where = malloc(a + b + 1)))
		return mm_fail(MM_ENOMEM, "out of memory");
	memcpy(d->where, s->name, a);
	memcpy(d->where + a, where, b + 1);
	return 1;
}

// ---------------------------------------------------------------- small helpers

// Whether the name s, of length a, ends in suf (any case).
static int has_suffix(const char *s, size_t a, const char *suf)
{
	size_t b = strlen(suf);
	return a >= b && strcasecmp(s + a - b, suf) == 0;
}

static int is_image_name(const char *name, size_t len)
{
	return has_suffix(name, len, ".png") || has_suffix(name, len, ".jpg") || has_suffix(name, len, ".jpeg");
}

// "a/b/c.jsonl" -> "a/b/"; "c.jsonl" -> "" (paths in a manifest are relative to it).
char *mm_src_dir_prefix(const char *path)
{
	const char *slash = strrchr(path, '/');
	size_t n = slash ? (size_t)(slash - path) + 1 : 0;
	char *p = malloc(n + 1);
	if (p) {
		memcpy(p, path, n);
		p[n] = 0;
	}
	return p;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

// Sorts v[0..n) in strcmp order, given that the strings agree on their first d bytes: radix on
// one byte at a time, insertion below 16 strings. tmp has room for n pointers. Sorting a
// folder's 8,000 names took 1.7 ms with qsort and strcmp (measured on make bench's machine).
static void sort_names(char **v, size_t n, size_t d, char **tmp)
{
	while (n >= 16) {
		size_t at[257] = {0};
		for (size_t i = 0; i < n; i++)
			at[(unsigned char)v[i][d] + 1]++;
		if (at[(unsigned char)v[0][d] + 1] == n) { // one byte for all: look at the next
			if (!v[0][d])
				return; // all equal
			d++;
			continue;
		}
		for (int c = 1; c < 257; c++)
			at[c] += at[c - 1];
		for (size_t i = 0; i < n; i++)
			tmp[at[(unsigned char)v[i][d]]++] = v[i];
		memcpy(v, tmp, n * sizeof *v);
		// at[b] is now where the strings with byte b at d end; those that end at d are equal
		for (int b = 1; b < 256; b++)
			if (at[b] - at[b - 1] > 1)
				sort_names(v + at[b - 1], at[b] - at[b - 1], d + 1, tmp);
		return;
	}
	for (size_t i = 1; i < n; i++) {
		char *x = v[i];
		size_t j = i;
		for (; j > 0 && strcmp(v[j - 1] + d, x + d) > 0; j--)
			v[j] = v[j - 1];
		v[j] = x;
	}
}

// Names of a listed folder are carved out of chunks, freed together: one allocation per
// NAME_CHUNK bytes instead of one per name.
#define NAME_CHUNK ((size_t)64 << 10)
struct name_chunk {
	struct name_chunk *next;
	size_t used, size;
	char data[];
};

static char *name_alloc(name_chunk **head, size_t n)
{
	name_chunk *c = *head;
	if (!c || c->size - c->used < n) {
		size_t size = n > NAME_CHUNK ? n : NAME_CHUNK;
		if (!(c = malloc(sizeof *c + size)))
			return NULL;
		c->next = *head, c->used = 0, c->size = size;
		*head = c;
	}
	char *p = c->data + c->used;
	c->used += n;
	return p;
}

// Reads the caption beside an image (cat.png -> cat.txt) into d. A missing caption is fine;
// an empty one counts as missing; a final newline is dropped. txt (n_txt, sorted): the
// folder's .txt files when it was listed, where the caption is looked up instead of probed.
static int read_caption(mm_rawdoc *d, const char *image_path, char *const *txt, size_t n_txt, int listed)
{
	if (listed && !n_txt) // a folder without .txt files: nothing to look up
		return 0;
	const char *dot = strrchr(image_path, '.');
	size_t stem = dot ? (size_t)(dot - image_path) : strlen(image_path);
	char *cap = malloc(stem + 5);
	if (!cap)
		return mm_fail(MM_ENOMEM, "out of memory");
	memcpy(cap, image_path, stem);
	memcpy(cap + stem, ".txt", 5);
	struct stat st;
	int missing = listed ? !bsearch(&cap, txt, n_txt, sizeof *txt, name_cmp)
			     : stat(cap, &st) != 0 && errno == ENOENT;
	if (missing) {
		free(cap);
		return 0;
	}
	uint8_t *text;
	size_t n;
	int rc = mm_read_file(cap, TEXT_FILE_MAX, &text, &n);
	free(cap);
	if (rc)
		return rc;
	if (n && text[n - 1] == '\n')
		n--;
	if (n && text[n - 1] == '\r')
		n--;
	if (!n) {
		free(text);
		return 0;
	}
	return raw_text(d, text, n);
}

// ---------------------------------------------------------------- standard input

static char **stdin_list;
static int stdin_n;
static int stdin_listed;
static FILE *stdin_spool;

int mm_stdin_paths(char ***paths, int *n)
{
	if (!stdin_listed) {
		char *line = NULL;
		size_t cap = 0;
		ssize_t len;
		int cap_list = 0;
		while ((len = getline(&line, &cap, stdin)) >= 0) {
			while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
				line[--len] = 0;
			if (!len)
				continue;
			if (stdin_n == cap_list) {
				cap_list = cap_list ? cap_list * 2 : 64;
				char **l = realloc(stdin_list, (size_t)cap_list * sizeof *l);
				if (!l) {
					free(line);
					return mm_fail(MM_ENOMEM, "out of memory");
				}
				stdin_list = l;
			}
			if (!(stdin_list[stdin_n] = strdup(line))) {
				free(line);
				return mm_fail(MM_ENOMEM, "out of memory");
			}
			stdin_n++;
		}
		free(line);
		if (ferror(stdin))
			return mm_fail(MM_EIO, "stdin: read error");
		stdin_listed = 1;
	}
	*paths = stdin_list;
	*n = stdin_n;
	return 0;
}

int mm_stdin_spool(void)
{
	if (stdin_spool)
		return 0;
	FILE *f = tmpfile();
	if (!f)
		return mm_fail(MM_EIO, "cannot create a temporary file for stdin: %s", strerror(errno));
	char buf[1 << 16];
	size_t got;
	while ((got = fread(buf, 1, sizeof buf, stdin)) > 0)
		if (fwrite(buf, 1, got, f) != got) {
			fclose(f);
			return mm_fail(MM_EIO, "cannot copy stdin to a temporary file: %s", strerror(errno));
		}
	if (ferror(stdin)) {
		fclose(f);
		return mm_fail(MM_EIO, "stdin: read error");
	}
	stdin_spool = f;
	return 0;
}

static FILE *stdin_content(void)
{
	if (stdin_spool) {
		rewind(stdin_spool);
		return stdin_spool;
	}
	return stdin;
}

// ---------------------------------------------------------------- detection

uint64_t mm_source_weight(const char *path, int format)
{
	struct stat st;
	if (strcmp(path, "-") == 0 || stat(path, &st) != 0)
		return 0;
	if (format != MM_FMT_DIR)
		return (uint64_t)st.st_size;
	DIR *dir = opendir(path);
	if (!dir)
		return 0;
	// A folder weighs 4 KiB per image, about what a small one holds: a stat per file to weigh
	// it exactly cost more than the rest of tokenizing a folder of thumbnails.
	uint64_t sum = 0;
	struct dirent *e;
	while ((e = readdir(dir)))
		if (e->d_name[0] != '.' && is_image_name(e->d_name, strlen(e->d_name)))
			sum += 4096;
	closedir(dir);
	return sum;
}

// ---------------------------------------------------------------- the source object


// A gzip or zstd stream is decompressed on the way (its magic says so, whatever its name).
int mm_src_stream(mm_source *s, const char *path)
{
	FILE *raw = strcmp(path, "-") == 0 ? stdin_content() : fopen(path, "rb");
	if (!raw)
		return mm_fail(MM_EIO, "%s: cannot open: %s", path, strerror(errno));
	int own = raw != stdin && raw != stdin_spool;
	struct stat st;
	if (own && fstat(fileno(raw), &st) == 0 && S_ISREG(st.st_mode))
		s->size = (uint64_t)st.st_size;
	int rc = mm_zin_open(raw, own, 0, &s->f, &s->z);
	s->own_f = !rc && (own || s->z);
	return rc;
}

// Appends p to the list (l, n, cap).
static int push_name(char ***l, size_t *n, size_t *cap, char *p)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 256;
		char **nl = realloc(*l, c * sizeof *nl);
		if (!nl)
			return mm_fail(MM_ENOMEM, "out of memory");
		*l = nl, *cap = c;
	}
	(*l)[(*n)++] = p;
	return 0;
}

// Lists the images of a folder in byte order of their names, so that the output does not
// depend on the order the file system returns them in, and its .txt files (the captions).
// The entry's type from readdir saves a stat per file where the file system gives it.
static int open_dir(mm_source *s, const char *path)
{
	int meta;
	int rc = mm_src_open_metadata(s, path, &meta);
	if (rc || meta)
		return rc;
	DIR *dir = opendir(path);
	if (!dir)
		return mm_fail(MM_EIO, "%s: cannot open: %s", path, strerror(errno));
	size_t cap = 0, tcap = 0, scap = 0, plen = strlen(path);
	int slash = plen && path[plen - 1] == '/';
	size_t at = plen + !slash; // where each name starts in its path
	struct dirent *e;
	while ((e = readdir(dir)) && !rc) {
		size_t len = strlen(e->d_name);
		int img = is_image_name(e->d_name, len), txt = has_suffix(e->d_name, len, ".txt");
		if (e->d_name[0] == '.')
			continue;
		if (!img && !txt) { // a subfolder is read when the folder holds no images
			if (e->d_type == DT_DIR || e->d_type == DT_UNKNOWN || e->d_type == DT_LNK) {
				char *p = name_alloc(&s->chunks, len + 1);
				if (!p)
					rc = mm_fail(MM_ENOMEM, "out of memory");
				else {
					memcpy(p, e->d_name, len + 1);
					rc = push_name(&s->subdirs, &s->n_sub, &scap, p);
				}
			}
			continue;
		}
		char *p = name_alloc(&s->chunks, at + len + 1);
		if (!p) {
			rc = mm_fail(MM_ENOMEM, "out of memory");
			break;
		}
		memcpy(p, path, plen);
		p[plen] = '/'; // overwritten by the name when path already ends in one
		memcpy(p + at, e->d_name, len + 1);
		struct stat st;
		if (e->d_type != DT_REG && (stat(p, &st) != 0 || !S_ISREG(st.st_mode))) {
			s->chunks->used -= at + len + 1; // the last name carved: give its bytes back
			continue;
		}
		rc = img ? push_name(&s->names, &s->n_names, &cap, p) : push_name(&s->txt, &s->n_txt, &tcap, p);
	}
	s->folder = dir, s->at = at; // its files are opened relative to it
	size_t n = s->n_names > s->n_txt ? s->n_names : s->n_txt;
	char **tmp = rc || n < 16 ? NULL : malloc(n * sizeof *tmp);
	if (!rc && n >= 16 && !tmp)
		rc = mm_fail(MM_ENOMEM, "out of memory");
	if (!rc) {
		sort_names(s->names, s->n_names, at, tmp);
		sort_names(s->txt, s->n_txt, at, tmp);
	}
	free(tmp);
	s->listed = !rc;
	if (!rc && !s->n_names) {
		if (s->n_sub)
			qsort(s->subdirs, s->n_sub, sizeof *s->subdirs, name_cmp);
		else
			rc = mm_fail(MM_EFORMAT, "%s: no images (*.png, *.jpg, *.jpeg), metadata.jsonl or subfolders", path);
	}
	return rc;
}


static int idx_header(gzFile g, const char *path, uint32_t want_magic, uint32_t *dims, int ndims, uint64_t *bytes)
{
	uint8_t h[16];
	size_t n = 4 + 4 * (size_t)ndims;
	if (gzread(g, h, (unsigned)n) != (int)n)
		return mm_fail(MM_ETRUNC, "%s: truncated IDX header", path);
	uint32_t magic = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
	if (magic != want_magic)
		return mm_fail(MM_EFORMAT, "%s: IDX magic 0x%08x, expected 0x%08x (%s)", path, magic, want_magic,
			       want_magic == 0x803 ? "images" : "labels");
	for (int i = 0; i < ndims; i++) {
		const uint8_t *p = h + 4 + 4 * i;
		dims[i] = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	}
	*bytes += n;
	return 0;
}

static int open_idx(mm_source *s, const char *path, const char *labels)
{
	s->gi = gzopen(path, "rb");
	if (!s->gi)
		return mm_fail(MM_EIO, "%s: cannot open: %s", path, strerror(errno ? errno : ENOMEM));
	gzbuffer(s->gi, 1 << 17);
	uint32_t d[3];
	int rc = idx_header(s->gi, path, 0x803, d, 3, &s->bytes);
	if (rc)
		return rc;
	if (!d[1] || !d[2] || d[1] > IDX_MAX_SIDE || d[2] > IDX_MAX_SIDE)
		return mm_fail(MM_EFORMAT, "%s: IDX images of %ux%u pixels are not supported", path, d[2], d[1]);
	if ((uint64_t)d[1] * d[2] > s->o.max_pixels)
		return mm_fail(MM_ERANGE, "%s: IDX images of %ux%u pixels are over the limit of %llu pixels", path, d[2],
			       d[1], (unsigned long long)s->o.max_pixels);
	s->count = d[0], s->rows = d[1], s->cols = d[2];
	if (!labels)
		return 0;
	s->labels_name = strdup(labels);
	s->gl = gzopen(labels, "rb");
	if (!s->labels_name || !s->gl)
		return mm_fail(MM_EIO, "%s: cannot open: %s", labels, strerror(errno ? errno : ENOMEM));
	if ((rc = idx_header(s->gl, labels, 0x801, d, 1, &s->bytes)))
		return rc;
	if (d[0] != s->count)
		return mm_fail(MM_EFORMAT, "%s has %llu images but %s has %u labels", path, (unsigned long long)s->count,
			       labels, d[0]);
	return 0;
}

int mm_source_open(mm_source **out, int format, const char *path, const char *labels, const mm_source_opts *o)
{
	*out = NULL;
	mm_source *s = calloc(1, sizeof *s);
	if (!s)
		return mm_fail(MM_ENOMEM, "out of memory");
	s->format = format;
	s->o = *o;
	s->name = strdup(strcmp(path, "-") == 0 ? "stdin" : path);
	int rc = s->name ? 0 : mm_fail(MM_ENOMEM, "out of memory");
	if (!rc) {
		switch (format) {
		case MM_FMT_JSONL:
			rc = mm_src_stream(s, path);
			if (!rc && !(s->dir = mm_src_dir_prefix(strcmp(path, "-") == 0 ? "" : path)))
				rc = mm_fail(MM_ENOMEM, "out of memory");
			break;
		case MM_FMT_TEXT:
			rc = mm_src_stream(s, path);
			break;
		case MM_FMT_WDS:
			if (!(rc = mm_src_stream(s, path)))
				rc = mm_wds_open(&s->wds, s->f, s->name, &s->o);
			break;
		case MM_FMT_DIR:
			rc = open_dir(s, path);
			break;
		case MM_FMT_IMAGE:
			s->names = malloc(sizeof *s->names);
			if (!s->names || !(s->names[0] = name_alloc(&s->chunks, strlen(path) + 1)))
				rc = mm_fail(MM_ENOMEM, "out of memory");
			else {
				strcpy(s->names[0], path);
				s->n_names = 1;
			}
			break;
		case MM_FMT_IDX:
			rc = open_idx(s, path, labels);
			break;
		default:
			rc = mm_fail(MM_EINVAL, "%s: unknown input format %d", path, format);
		}
	}
	if (rc) {
		mm_source_close(s);
		return rc;
	}
	*out = s;
	return 0;
}

void mm_source_close(mm_source *s)
{
	if (!s)
		return;
	mm_wds_close(s->wds);
	if (s->csv)
		mm_csv_free(s->csv);
	free(s->csv);
	for (size_t i = 0; s->done && i < s->next_sub; i++)
		mm_source_close(s->done[i]);
	free(s->done);
	free(s->subdirs);
	free(s->class_name);
	if (s->own_f)
		fclose(s->f);
	free(s->line);
	free(s->dir);
	if (s->folder)
		closedir(s->folder);
	free(s->names);
	free(s->txt);
	for (name_chunk *c = s->chunks, *next; c; c = next) {
		next = c->next;
		free(c);
	}
	if (s->gi)
		gzclose(s->gi);
	if (s->gl)
		gzclose(s->gl);
	free(s->labels_name);
	free(s->name);
	free(s);
}

double mm_source_progress(const mm_source *s)
{
	switch (s->format) {
	case MM_FMT_DIR:
	case MM_FMT_IMAGE:
		if (!s->n_names && s->n_sub)
			return (double)(s->next_sub - (s->sub != NULL)) / (double)s->n_sub;
		return s->n_names ? (double)s->next / (double)s->n_names : 1;
	case MM_FMT_IDX:
		return s->count ? (double)s->item / (double)s->count : 1;
	default:
		if (s->z) // the compressed bytes against the file's size
			return s->size ? (double)mm_zin_raw_bytes(s->z) / (double)s->size : 0;
		return s->size ? (double)s->bytes / (double)s->size : 0;
	}
}

uint64_t mm_source_bytes(const mm_source *s) { return s->bytes + (s->sub ? mm_source_bytes(s->sub) : 0); }

// ---------------------------------------------------------------- JSONL

// A text entry of a manifest: a string, or {"file": "name"} for bytes that JSON cannot hold
// (invalid UTF-8, as written by mm_shards_extract).
static int json_text(mm_source *s, mm_rawdoc *d, json_t *v)
{
	if (json_is_string(v))
		return mm_src_text_copy(d, json_string_value(v), json_string_length(v));
	json_t *f = json_is_object(v) ? json_object_get(v, "file") : NULL;
	if (!json_is_string(f))
		return mm_fail(MM_EFORMAT, "%s:%llu: a text is neither a string nor {\"file\": NAME}", s->name,
			       (unsigned long long)s->lineno);
	size_t a = strlen(s->dir), b = strlen(json_string_value(f));
	char *p = malloc(a + b + 1);
	if (!p)
		return mm_fail(MM_ENOMEM, "out of memory");
	memcpy(p, s->dir, a);
	memcpy(p + a, json_string_value(f), b + 1);
	uint8_t *text;
	size_t n;
	int rc = mm_read_file(p, TEXT_FILE_MAX, &text, &n);
	free(p);
	if (rc) {
		mm_errctx("%s:%llu", s->name, (unsigned long long)s->lineno);
		return rc;
	}
	return raw_text(d, text, n);
}

static int json_image(mm_source *s, mm_rawdoc *d, json_t *v, const char *key)
{
	if (!json_is_string(v))
		return mm_fail(MM_EFORMAT, "%s:%llu: \"%s\" holds a non-string image name", s->name,
			       (unsigned long long)s->lineno, key);
	const char *name = json_string_value(v);
	return mm_src_image_path(d, name[0] == '/' ? "" : s->dir, name);
}

static int json_obelics(mm_source *s, mm_rawdoc *d, json_t *texts, json_t *images)
{
	unsigned long long ln = (unsigned long long)s->lineno;
	if (!json_is_array(texts) || !json_is_array(images))
		return mm_fail(MM_EFORMAT, "%s:%llu: \"texts\" and \"images\" must both be arrays", s->name, ln);
	size_t n = json_array_size(texts);
	if (json_array_size(images) != n)
		return mm_fail(MM_EFORMAT, "%s:%llu: \"texts\" has %zu entries but \"images\" has %zu", s->name, ln, n,
			       json_array_size(images));
	for (size_t i = 0; i < n; i++) {
		json_t *t = json_array_get(texts, i), *im = json_array_get(images, i);
		int has_t = !json_is_null(t), has_i = !json_is_null(im);
		if (has_t == has_i)
			return mm_fail(MM_EFORMAT, "%s:%llu: position %zu must hold exactly one of a text and an image",
				       s->name, ln, i);
		int rc = has_t ? json_text(s, d, t) : json_image(s, d, im, "images");
		if (rc)
			return rc;
	}
	return 0;
}


// One manifest line into d. Returns 0 or a document error (the caller marks d bad).
static int json_doc(mm_source *s, mm_rawdoc *d, const char *line, size_t len)
{
	unsigned long long ln = (unsigned long long)s->lineno;
	json_error_t e;
	json_t *j = json_loadb(line, len, JSON_ALLOW_NUL, &e);
	if (!j)
		return mm_fail(MM_EFORMAT, "%s:%llu: invalid JSON: %s", s->name, ln, e.text);
	int rc = 0;
	json_t *texts = json_object_get(j, "texts"), *images = json_object_get(j, "images");
	const char *tkey = s->o.text_key ? s->o.text_key : "text";
	json_t *file = json_object_get(j, "file_name"), *text = json_object_get(j, tkey);
	if (!json_is_object(j))
		rc = mm_fail(MM_EFORMAT, "%s:%llu: expected a JSON object", s->name, ln);
	else if (texts || images)
		rc = json_obelics(s, d, texts, images);
	else if (file || text) {
		if (text && !json_is_null(text) && !json_is_string(text))
			rc = mm_fail(MM_EFORMAT, "%s:%llu: \"%s\" is not a string", s->name, ln, tkey);
		else if (json_is_string(text) && json_string_length(text))
			rc = mm_src_text_copy(d, json_string_value(text), json_string_length(text));
		if (!rc && file)
			rc = json_image(s, d, file, "file_name");
		if (!rc && !s->warned) {
			const char *read[] = {"file_name", tkey};
			mm_json_unread_keys(j, s->name, read, 2, &s->o, &s->warned);
		}
	} else
		rc = mm_fail(MM_EFORMAT, "%s:%llu: no \"file_name\", \"%s\", or \"texts\" and \"images\"", s->name, ln,
			     tkey);
	json_decref(j);
	return rc;
}

// The next line of s->f into s->line, newline included: its length, 0 at the end of the file,
// or an error for a read error or a line over MM_SOURCE_LINE_MAX bytes. The buffer grows with
// the bytes actually read, so a hostile line costs at most the limit.
static ssize_t read_line(mm_source *s, int *rc)
{
	size_t n = 0;
	*rc = 0;
	for (;;) {
		if (s->line_cap < n + 2) {
			size_t nc = s->line_cap ? 2 * s->line_cap : 4096;
			if (nc > MM_SOURCE_LINE_MAX + 2)
				nc = MM_SOURCE_LINE_MAX + 2;
			char *nl = realloc(s->line, nc);
			if (!nl) {
				*rc = mm_fail(MM_ENOMEM, "out of memory");
				return -1;
			}
			s->line = nl, s->line_cap = nc;
		}
		int c = getc_unlocked(s->f);
		if (c == EOF) {
			if (ferror(s->f)) {
				const char *ze = mm_zin_error(s->z);
				*rc = ze ? mm_fail(MM_EFORMAT, "%s: %s", s->name, ze)
					 : mm_fail(MM_EIO, "%s: read error: %s", s->name, strerror(errno));
				return -1;
			}
			break;
		}
		s->line[n++] = (char)c;
		if (c == '\n')
			break;
		if (n > MM_SOURCE_LINE_MAX) {
			*rc = mm_fail(MM_EFORMAT, "%s:%llu: line longer than %u bytes (the limit of a line)", s->name,
				      (unsigned long long)s->lineno + 1, MM_SOURCE_LINE_MAX);
			return -1;
		}
	}
	s->line[n] = 0;
	return (ssize_t)n;
}

static int next_jsonl(mm_source *s, mm_rawdoc *d)
{
	for (;;) {
		errno = 0;
		int err;
		ssize_t len = read_line(s, &err);
		if (len <= 0)
			return err;
		s->lineno++;
		s->bytes += (uint64_t)len;
		size_t i = 0;
		while (i < (size_t)len && isspace((unsigned char)s->line[i]))
			i++;
		if (i == (size_t)len)
			continue; // blank lines separate nothing
		int rc = json_doc(s, d, s->line, (size_t)len);
		if (rc)
			return mm_src_bad(d, rc);
		if (!d->n_segs)
			continue;
		return mm_src_where_line(s, d);
	}
}

// ---------------------------------------------------------------- plain text

static int is_blank(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isspace((unsigned char)p[i]))
			return 0;
	return 1;
}

// Documents are runs of non-blank lines, or (with a separator) the lines between separator
// lines. A document's last newline is dropped; whitespace-only documents are skipped.
static int next_text(mm_source *s, mm_rawdoc *d)
{
	const char *sep = s->o.doc_separator;
	size_t seplen = sep ? strlen(sep) : 0;
	uint8_t *buf = NULL;
	size_t n = 0, cap = 0;
	for (;;) {
		errno = 0;
		int rc;
		ssize_t len = read_line(s, &rc);
		if (rc) {
			free(buf);
			return rc;
		}
		if (len == 0)
			len = -1;
		s->lineno++;
		int end = len < 0;
		if (!end) {
			s->bytes += (uint64_t)len;
			size_t body = (size_t)len;
			if (body && s->line[body - 1] == '\n')
				body--;
			if (body && s->line[body - 1] == '\r')
				body--;
			end = sep ? body == seplen && memcmp(s->line, sep, seplen) == 0 : is_blank(s->line, (size_t)len);
		}
		if (end) {
			if (n && !is_blank((char *)buf, n)) {
				if (buf[n - 1] == '\n')
					n--;
				if (n && buf[n - 1] == '\r')
					n--;
				return raw_text(d, buf, n) ? mm_fail(MM_ENOMEM, "out of memory") : 1;
			}
			n = 0;
			if (len < 0) {
				free(buf);
				return 0;
			}
			continue;
		}
		if (n + (size_t)len > MM_SOURCE_DOC_MAX) {
			free(buf);
			return mm_fail(MM_EFORMAT, "%s:%llu: a document longer than %u bytes (the limit of a text document)",
				       s->name, (unsigned long long)s->lineno, MM_SOURCE_DOC_MAX);
		}
		if (n + (size_t)len > cap) {
			size_t nc = cap ? cap : 4096;
			while (nc < n + (size_t)len)
				nc *= 2;
			uint8_t *nb = realloc(buf, nc);
			if (!nb) {
				free(buf);
				return mm_fail(MM_ENOMEM, "out of memory");
			}
			buf = nb, cap = nc;
		}
		memcpy(buf + n, s->line, (size_t)len);
		n += (size_t)len;
	}
}

// ---------------------------------------------------------------- images, IDX

static int next_image(mm_source *s, mm_rawdoc *d)
{
	if (s->next == s->n_names)
		return 0;
	char *p = s->names[s->next++];
	int rc = read_caption(d, p, s->txt, s->n_txt, s->listed);
	if (!rc && !d->n_segs && s->class_name)
		rc = mm_src_text_copy(d, s->class_name, strlen(s->class_name));
	if (rc)
		return mm_src_bad(d, rc);
	if (d->n_segs)
		s->bytes += d->segs[0].len;
	mm_rawseg *seg = raw_push(d, MM_SEG_IMAGE);
	if (!seg)
		return mm_src_bad(d, mm_fail(MM_ENOMEM, "out of memory"));
	seg->path = p; // lent: the name stays with the source
	seg->lent = 1;
	seg->dirfd = s->folder ? dirfd(s->folder) : AT_FDCWD; // an image input: its path
	seg->name = s->folder ? s->at : 0;
	return 1;
}

static char *caption(const char *tmpl, const char *label, size_t *len)
{
	static const char key[] = "{label}";
	size_t kl = sizeof key - 1, ll = strlen(label), n = 0;
	for (const char *p = tmpl; (p = strstr(p, key)); p += kl)
		n++;
	size_t total = strlen(tmpl) + n * ll - n * kl;
	char *out = malloc(total + 1), *o = out;
	if (!out)
		return NULL;
	for (const char *p = tmpl, *q; *p; p = q + kl) {
		if (!(q = strstr(p, key))) {
			strcpy(o, p);
			o += strlen(p);
			break;
		}
		memcpy(o, p, (size_t)(q - p));
		o += q - p;
		memcpy(o, label, ll);
		o += ll;
	}
	*o = 0;
	*len = (size_t)(o - out);
	return out;
}

static int next_idx(mm_source *s, mm_rawdoc *d)
{
	if (s->item == s->count)
		return 0;
	size_t n = (size_t)s->rows * s->cols;
	uint8_t *px = malloc(n);
	if (!px)
		return mm_fail(MM_ENOMEM, "out of memory");
	int got = gzread(s->gi, px, (unsigned)n);
	if (got != (int)n) {
		free(px);
		return mm_fail(MM_ETRUNC, "%s: truncated after %llu of its %llu images", s->name,
			       (unsigned long long)s->item, (unsigned long long)s->count);
	}
	s->bytes += n;
	int rc = 0;
	if (s->gl) {
		uint8_t lab;
		if (gzread(s->gl, &lab, 1) != 1) {
			free(px);
			return mm_fail(MM_ETRUNC, "%s: truncated after %llu of its %llu labels", s->labels_name,
				       (unsigned long long)s->item, (unsigned long long)s->count);
		}
		s->bytes++;
		char num[8];
		const char *label = num;
		snprintf(num, sizeof num, "%u", lab);
		if (s->o.label_names && lab >= s->o.n_labels)
			rc = mm_fail(MM_ERANGE, "%s: item %llu has label %u but the class-name list has %u names",
				     s->labels_name, (unsigned long long)s->item, lab, s->o.n_labels);
		else if (s->o.label_names)
			label = s->o.label_names[lab];
		size_t len = 0;
		char *c = rc ? NULL : caption(s->o.caption_template ? s->o.caption_template : "{label}", label, &len);
		if (!rc && !c)
			rc = mm_fail(MM_ENOMEM, "out of memory");
		if (!rc && len)
			rc = raw_text(d, (uint8_t *)c, len);
		else if (!rc)
			free(c);
	}
	s->item++;
	mm_rawseg *im = rc ? NULL : raw_push(d, MM_SEG_IMAGE);
	if (!rc && !im)
		rc = mm_fail(MM_ENOMEM, "out of memory");
	if (rc) {
		free(px);
		return rc == -MM_ENOMEM ? rc : mm_src_bad(d, rc);
	}
	im->px = px, im->w = s->cols, im->h = s->rows;
	return 1;
}

int mm_source_next(mm_source *s, mm_rawdoc *d)
{
	mm_rawdoc_clear(d);
	switch (s->format) {
	case MM_FMT_JSONL:
		return s->csv ? mm_src_next_csv(s, d) : next_jsonl(s, d);
	case MM_FMT_TEXT:
		return next_text(s, d);
	case MM_FMT_DIR:
		return !s->n_names && s->n_sub ? mm_src_next_sub(s, d) : next_image(s, d);
	case MM_FMT_IMAGE:
		return next_image(s, d);
	case MM_FMT_IDX:
		return next_idx(s, d);
	case MM_FMT_WDS:
		return mm_wds_next(s->wds, d, &s->bytes);
	}
	return mm_fail(MM_EINVAL, "%s: unknown input format", s->name);
}
