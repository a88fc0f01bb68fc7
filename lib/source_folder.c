// Hugging Face ImageFolder layouts: a folder read through its metadata.jsonl or metadata.csv,
// and a folder without images of its own read through its split and class subfolders.
#include "source_readers_priv.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "doc.h"
#include "err.h"
#include "ingest.h"
#include "source_priv.h"

char *mm_src_path_join(const char *dir, const char *name)
{
	size_t a = strlen(dir), b = strlen(name);
	int slash = a && dir[a - 1] == '/';
	char *p = malloc(a + b + 2);
	if (p) {
		memcpy(p, dir, a);
		p[a] = '/';
		memcpy(p + a + !slash, name, b + 1);
	}
	return p;
}

static const char *const split_names[] = {"train", "test", "validation", "valid", "val", "dev", NULL};

// The header row of a metadata.csv: which columns hold the file name and the text.
static int csv_header(mm_source *s)
{
	mm_csv *c = s->csv;
	int rc = mm_csv_record(c, s->f, s->name, &s->bytes);
	if (rc <= 0)
		return rc ? rc : mm_fail(MM_EFORMAT, "%s: empty (a header row is expected)", s->name);
	size_t total = 0;
	for (size_t i = 0; i < c->n; i++)
		total += c->len[i] + 1;
	if (!(c->header = malloc(total)))
		return mm_fail(MM_ENOMEM, "out of memory");
	memcpy(c->header, c->field[0], total); // the fields lie one after another in the buffer
	c->n_header = c->n;
	const char *tkey = s->o.text_key ? s->o.text_key : "text";
	c->file_col = c->text_col = -1;
	for (size_t i = 0, at = 0; i < c->n; at += c->len[i++] + 1) {
		if (!strcmp(c->header + at, "file_name"))
			c->file_col = (int)i;
		if (!strcmp(c->header + at, tkey))
			c->text_col = (int)i;
	}
	if (c->file_col < 0)
		return mm_fail(MM_EFORMAT, "%s: no \"file_name\" column in its header row", s->name);
	return 0;
}

// One record of a metadata.csv as a [text, image] document.
static int csv_doc(mm_source *s, mm_rawdoc *d)
{
	mm_csv *c = s->csv;
	s->lineno = c->lineno;
	if (c->n != c->n_header)
		return mm_fail(MM_EFORMAT, "%s:%llu: %zu fields, but the header row has %zu", s->name,
			       (unsigned long long)c->lineno, c->n, c->n_header);
	int rc = 0;
	if (c->text_col >= 0 && c->len[c->text_col])
		rc = mm_src_text_copy(d, c->field[c->text_col], c->len[c->text_col]);
	const char *file = c->field[c->file_col];
	if (!rc && c->len[c->file_col])
		rc = mm_src_image_path(d, file[0] == '/' ? "" : s->dir, file);
	if (rc || s->warned || !s->o.warn)
		return rc;
	char msg[512];
	int at = snprintf(msg, sizeof msg, "%s:", s->name), n = 0;
	for (size_t i = 0, h = 0; i < c->n; h += strlen(c->header + h) + 1, i++) {
		char *end;
		if ((int)i == c->file_col || (int)i == c->text_col || !c->len[i] || at > (int)sizeof msg - 128)
			continue;
		strtod(c->field[i], &end);
		if (!*end) // a number: not text
			continue;
		at += snprintf(msg + at, sizeof msg - (size_t)at, "%s \"%.40s\"", n++ ? "," : "", c->header + h);
	}
	if (n) {
		s->warned = 1;
		snprintf(msg + at, sizeof msg - (size_t)at, " hold%s text that is not read (--text-key NAME reads a column)",
			 n > 1 ? "" : "s");
		s->o.warn(s->o.warn_ctx, msg);
	}
	return 0;
}

int mm_src_next_csv(mm_source *s, mm_rawdoc *d)
{
	for (;;) {
		int rc = mm_csv_record(s->csv, s->f, s->name, &s->bytes);
		if (rc <= 0)
			return rc;
		if (s->csv->n == 1 && !s->csv->len[0])
			continue; // a blank line
		if ((rc = csv_doc(s, d)))
			return mm_src_bad(d, rc);
		if (!d->n_segs)
			continue;
		return mm_src_where_line(s, d);
	}
}

// A Hugging Face ImageFolder: metadata.jsonl beside the images is the manifest of the folder.
int mm_src_open_metadata(mm_source *s, const char *path, int *found)
{
	char *meta = mm_src_path_join(path, "metadata.jsonl");
	*found = 0;
	if (!meta)
		return mm_fail(MM_ENOMEM, "out of memory");
	struct stat st;
	*found = stat(meta, &st) == 0 && S_ISREG(st.st_mode);
	if (!*found) {
		free(meta);
		if (!(meta = mm_src_path_join(path, "metadata.csv")))
			return mm_fail(MM_ENOMEM, "out of memory");
		*found = stat(meta, &st) == 0 && S_ISREG(st.st_mode);
		if (!*found) {
			free(meta);
			return 0;
		}
		if (!(s->csv = calloc(1, sizeof *s->csv))) {
			free(meta);
			return mm_fail(MM_ENOMEM, "out of memory");
		}
	}
	free(s->name);
	s->name = meta;
	s->format = MM_FMT_JSONL;
	int rc = mm_src_stream(s, meta);
	if (!rc && !(s->dir = mm_src_dir_prefix(meta)))
		rc = mm_fail(MM_ENOMEM, "out of memory");
	return rc || !s->csv ? rc : csv_header(s);
}

// The next subfolder of a folder without images: a split (train/, test/ ...) is read as a folder
// of its own; any other subfolder is a class, whose name captions its uncaptioned images.
static int open_next_sub(mm_source *s, int *opened)
{
	*opened = 0;
	while (s->next_sub < s->n_sub) {
		const char *name = s->subdirs[s->next_sub++];
		char *p = mm_src_path_join(s->name, name);
		if (!p)
			return mm_fail(MM_ENOMEM, "out of memory");
		struct stat st;
		if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
			free(p);
			continue;
		}
		if (s->depth >= 4) {
			free(p);
			return mm_fail(MM_EFORMAT, "%s: folders nested deeper than 4 levels", s->name);
		}
		mm_source *sub;
		int rc = mm_source_open(&sub, MM_FMT_DIR, p, NULL, &s->o);
		free(p);
		if (rc)
			return rc;
		sub->depth = s->depth + 1;
		int split = 0;
		for (int i = 0; split_names[i] && !split; i++)
			split = strcmp(name, split_names[i]) == 0;
		if (!split && !(sub->class_name = strdup(name))) {
			mm_source_close(sub);
			return mm_fail(MM_ENOMEM, "out of memory");
		}
		mm_source **dn = realloc(s->done, s->next_sub * sizeof *dn);
		if (!dn) {
			mm_source_close(sub);
			return mm_fail(MM_ENOMEM, "out of memory");
		}
		s->done = dn;
		s->done[s->next_sub - 1] = s->sub = sub;
		*opened = 1;
		return 0;
	}
	return 0;
}

int mm_src_next_sub(mm_source *s, mm_rawdoc *d)
{
	for (;;) {
		if (s->sub) {
			int rc = mm_source_next(s->sub, d);
			if (rc)
				return rc;
			s->bytes += mm_source_bytes(s->sub);
			s->sub = NULL; // kept in done: its documents may still be in flight
		}
		int opened, rc = open_next_sub(s, &opened);
		if (rc || !opened)
			return rc;
	}
}

void mm_json_unread_keys(void *jv, const char *name, const char *const *read, int n_read, const mm_source_opts *o,
			 int *warned)
{
	json_t *j = jv;
	if (*warned || !o->warn)
		return;
	char msg[512];
	int at = snprintf(msg, sizeof msg, "%s:", name), n = 0;
	const char *key;
	json_t *v;
	json_object_foreach(j, key, v) {
		int r = 0;
		for (int i = 0; i < n_read && !r; i++)
			r = strcmp(key, read[i]) == 0;
		if (r || !json_is_string(v) || !json_string_length(v) || at < 0 || at > (int)sizeof msg - 128)
			continue;
		at += snprintf(msg + at, sizeof msg - (size_t)at, "%s \"%.40s\"", n ? "," : "", key);
		n++;
	}
	if (!n)
		return;
	*warned = 1;
	snprintf(msg + at, sizeof msg - (size_t)at, " hold%s text that is not read (--text-key NAME reads a field)",
		 n > 1 ? "" : "s");
	o->warn(o->warn_ctx, msg);
}
