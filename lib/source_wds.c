// WebDataset shards: tar archives whose members are grouped into samples by key (the member's
// path without its last extension): key.png, key.jpg or key.jpeg is the image, key.txt or the
// text field of key.json its caption. The archive is read as a stream of 512-byte headers, one
// sample in memory at a time, so that `cat shards-*.tar | mm-tokenize --format wds -` reads
// more data than fits in memory.
#include "source_readers_priv.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "doc.h"
#include "err.h"

#define TAR_BLOCK 512
// A member's path: longer ones (GNU long names, pax paths) are refused, not allocated.
#define TAR_PATH_MAX 4096u
// A pax header is read whole to find its path; larger ones are skipped.
#define TAR_PAX_MAX 65536u
// Members of one sample that mm reads (images, captions): more is not a WebDataset sample.
#define WDS_SAMPLE_MEMBERS 1024

enum { M_OTHER, M_IMAGE, M_TXT, M_JSON };

struct mm_wds {
	FILE *f;
	const char *name;
	const mm_source_opts *o;
	uint64_t member; // members read, for messages
	// The member read ahead: it starts the next sample.
	int have;
	char *path;
	int kind;
	uint8_t *data;
	size_t len;
	char *long_name; // a GNU 'L' or pax path for the next member
	int end, warned;
};

int mm_tar_header_ok(const uint8_t *h)
{
	if (memcmp(h + 257, "ustar", 5) == 0)
		return 1;
	unsigned long sum = 0, want = 0;
	for (int i = 0; i < TAR_BLOCK; i++)
		sum += i >= 148 && i < 156 ? ' ' : h[i];
	int digits = 0;
	for (int i = 148; i < 156 && h[i] != 0 && h[i] != ' '; i++, digits++) {
		if (h[i] < '0' || h[i] > '7')
			return 0;
		want = want * 8 + (unsigned long)(h[i] - '0');
	}
	return digits && sum == want && h[0];
}

// The octal number of a header field; -1 if it is not one (base-256 sizes are over any limit).
static long long octal(const uint8_t *p, int n)
{
	long long v = 0;
	int i = 0, digits = 0;
	while (i < n && p[i] == ' ')
		i++;
	for (; i < n && p[i] >= '0' && p[i] <= '7'; i++, digits++) {
		if (v > (1LL << 40))
			return -1;
		v = v * 8 + (p[i] - '0');
	}
	if (i < n && p[i] != 0 && p[i] != ' ')
		return -1;
	return digits ? v : -1;
}

static int read_exact(mm_wds *w, void *buf, size_t n, uint64_t *bytes)
{
	size_t got = fread(buf, 1, n, w->f);
	*bytes += got;
	if (got != n)
		return mm_fail(ferror(w->f) ? MM_EIO : MM_ETRUNC, "%s: tar archive truncated in member %llu", w->name,
			       (unsigned long long)w->member);
	return 0;
}

// Reads a member's data (size bytes, then padding to a block) into a new buffer.
static int read_data(mm_wds *w, size_t size, uint8_t **out, uint64_t *bytes)
{
	*out = malloc(size + 1);
	if (!*out)
		return mm_fail(MM_ENOMEM, "out of memory");
	int rc = read_exact(w, *out, size, bytes);
	(*out)[size] = 0;
	uint8_t pad[TAR_BLOCK];
	size_t padn = (TAR_BLOCK - size % TAR_BLOCK) % TAR_BLOCK;
	if (!rc && padn)
		rc = read_exact(w, pad, padn, bytes);
	if (rc) {
		free(*out);
		*out = NULL;
	}
	return rc;
}

static int skip_data(mm_wds *w, size_t size, uint64_t *bytes)
{
	uint8_t buf[TAR_BLOCK];
	size_t left = (size + TAR_BLOCK - 1) / TAR_BLOCK;
	for (; left; left--) {
		int rc = read_exact(w, buf, TAR_BLOCK, bytes);
		if (rc)
			return rc;
	}
	return 0;
}

static int member_kind(const char *path)
{
	const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
	if (!dot || (slash && dot < slash))
		return M_OTHER;
	if (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg"))
		return M_IMAGE;
	if (!strcasecmp(dot, ".txt"))
		return M_TXT;
	if (!strcasecmp(dot, ".json"))
		return M_JSON;
	return M_OTHER;
}

// The key: the path up to its last extension.
static size_t key_len(const char *path)
{
	const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
	return dot && (!slash || dot > slash) ? (size_t)(dot - path) : strlen(path);
}

// A pax header's "path" record, if any, becomes the next member's name.
static int pax_path(mm_wds *w, const uint8_t *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		size_t len = 0, j = i;
		while (j < n && p[j] >= '0' && p[j] <= '9' && len < n)
			len = len * 10 + (size_t)(p[j++] - '0');
		if (j >= n || p[j] != ' ' || len <= j - i || len > n - i)
			return mm_fail(MM_EFORMAT, "%s: member %llu: malformed pax header", w->name,
				       (unsigned long long)w->member);
		const uint8_t *rec = p + j + 1, *end = p + i + len - 1; // end: the record's newline
		if (end - rec > 5 && memcmp(rec, "path=", 5) == 0) {
			size_t pl = (size_t)(end - rec - 5);
			free(w->long_name);
			if (!(w->long_name = malloc(pl + 1)))
				return mm_fail(MM_ENOMEM, "out of memory");
			memcpy(w->long_name, rec + 5, pl);
			w->long_name[pl] = 0;
		}
		i += len;
	}
	return 0;
}

// Reads members up to the next one that a sample uses, into w's read-ahead; 0 at the end.
static int next_member(mm_wds *w, uint64_t *bytes)
{
	uint8_t h[TAR_BLOCK];
	while (!w->end) {
		size_t got = fread(h, 1, TAR_BLOCK, w->f);
		*bytes += got;
		if (got == 0 && !ferror(w->f))
			break; // no end blocks: tolerated, as tar does
		if (got != TAR_BLOCK)
			return mm_fail(ferror(w->f) ? MM_EIO : MM_ETRUNC, "%s: tar archive truncated after member %llu",
				       w->name, (unsigned long long)w->member);
		int zero = 1;
		for (int i = 0; i < TAR_BLOCK && zero; i++)
			zero = !h[i];
		if (zero) {
			// End of this archive; another may follow (cat a.tar b.tar): keep reading.
			continue;
		}
		if (!mm_tar_header_ok(h))
			return mm_fail(MM_EFORMAT, "%s: not a tar header after member %llu (a tar archive is expected)",
				       w->name, (unsigned long long)w->member);
		w->member++;
		long long size = octal(h + 124, 12);
		if (size < 0 || (unsigned long long)size > MM_SOURCE_DOC_MAX)
			return mm_fail(MM_EFORMAT, "%s: member %llu: size field out of range (the limit of a member is %u bytes)",
				       w->name, (unsigned long long)w->member, MM_SOURCE_DOC_MAX);
		char type = (char)h[156];
		if (type == 'L' || type == 'x') {
			if ((type == 'L' && size > TAR_PATH_MAX) || size > TAR_PAX_MAX)
				return mm_fail(MM_EFORMAT, "%s: member %llu: a long name of %lld bytes", w->name,
					       (unsigned long long)w->member, size);
			uint8_t *p;
			int rc = read_data(w, (size_t)size, &p, bytes);
			if (!rc && type == 'x')
				rc = pax_path(w, p, (size_t)size);
			if (!rc && type == 'L') {
				free(w->long_name);
				w->long_name = (char *)p, p = NULL;
			}
			free(p);
			if (rc)
				return rc;
			continue;
		}
		char *path = w->long_name;
		w->long_name = NULL;
		if (!path) { // prefix "/" name, each NUL-terminated or full
			char buf[256 + 1];
			size_t n = 0;
			if (memcmp(h + 257, "ustar\0", 6) == 0 && h[345]) {
				n = strnlen((char *)h + 345, 155);
				memcpy(buf, h + 345, n);
				buf[n++] = '/';
			}
			size_t nl = strnlen((char *)h, 100);
			memcpy(buf + n, h, nl);
			buf[n + nl] = 0;
			if (!(path = strdup(buf)))
				return mm_fail(MM_ENOMEM, "out of memory");
		}
		int kind = type == '0' || type == 0 ? member_kind(path) : M_OTHER;
		int rc = 0;
		if (kind == M_OTHER) {
			free(path);
			if ((rc = skip_data(w, type >= '1' && type <= '6' ? 0 : (size_t)size, bytes))) // links, folders: no data
				return rc;
			continue;
		}
		uint8_t *data;
		if ((rc = read_data(w, (size_t)size, &data, bytes))) {
			free(path);
			return rc;
		}
		w->have = 1, w->path = path, w->kind = kind, w->data = data, w->len = (size_t)size;
		return 1;
	}
	w->end = 1;
	return 0;
}

static void drop_member(mm_wds *w)
{
	free(w->path), free(w->data);
	w->path = NULL, w->data = NULL, w->have = 0;
}

int mm_wds_open(mm_wds **out, FILE *f, const char *name, const mm_source_opts *o)
{
	mm_wds *w = calloc(1, sizeof *w);
	if (!w)
		return mm_fail(MM_ENOMEM, "out of memory");
	w->f = f, w->name = name, w->o = o;
	*out = w;
	return 0;
}

void mm_wds_close(mm_wds *w)
{
	if (!w)
		return;
	drop_member(w);
	free(w->long_name);
	free(w);
}

// The text of a key.json member: its text field (--text-key), or nothing.
static int json_caption(mm_wds *w, mm_rawdoc *d, const uint8_t *p, size_t n, const char *where)
{
	json_error_t e;
	json_t *j = json_loadb((const char *)p, n, 0, &e);
	if (!j || !json_is_object(j)) {
		json_decref(j);
		return mm_fail(MM_EFORMAT, "%s: invalid JSON object: %s", where, j ? "not an object" : e.text);
	}
	const char *key = w->o->text_key ? w->o->text_key : "text";
	json_t *t = json_object_get(j, key);
	int rc = 0;
	if (t && !json_is_string(t) && !json_is_null(t))
		rc = mm_fail(MM_EFORMAT, "%s: \"%s\" is not a string", where, key);
	else if (json_is_string(t) && json_string_length(t)) {
		mm_rawseg *s = mm_rawdoc_push(d, MM_SEG_TEXT);
		size_t len = json_string_length(t);
		if (!s || !(s->text = malloc(len)))
			rc = mm_fail(MM_ENOMEM, "out of memory");
		else
			memcpy(s->text, json_string_value(t), len), s->len = len;
	}
	const char *read[] = {key};
	mm_json_unread_keys(j, w->name, read, 1, w->o, &w->warned);
	json_decref(j);
	return rc;
}

int mm_wds_next(mm_wds *w, mm_rawdoc *d, uint64_t *bytes)
{
	int rc;
	if (!w->have && (rc = next_member(w, bytes)) <= 0)
		return rc;
	// The sample: every member with the read-ahead's key, in archive order.
	size_t kl = key_len(w->path);
	char *key = strndup(w->path, kl);
	if (!key)
		return mm_fail(MM_ENOMEM, "out of memory");
	uint8_t *txt = NULL, *json = NULL;
	size_t txt_n = 0, json_n = 0;
	rc = 0;
	size_t total = 0, members = 0;
	while (w->have && key_len(w->path) == kl && memcmp(w->path, key, kl) == 0) {
		// A sample is held whole: bound it, however many members share its key.
		total += w->len;
		if (total > MM_SOURCE_DOC_MAX || ++members > WDS_SAMPLE_MEMBERS) {
			rc = mm_fail(MM_EFORMAT, "%s: sample \"%.200s\" is over %u bytes or %d members", w->name, key,
				     MM_SOURCE_DOC_MAX, WDS_SAMPLE_MEMBERS);
			break;
		}
		if (w->kind == M_IMAGE) {
			mm_rawseg *s = mm_rawdoc_push(d, MM_SEG_IMAGE);
			if (!s) {
				rc = mm_fail(MM_ENOMEM, "out of memory");
				break;
			}
			s->px = w->data, s->len = w->len; // encoded bytes: decoded on a worker
			w->data = NULL;
		} else if (w->kind == M_TXT && !txt)
			txt = w->data, txt_n = w->len, w->data = NULL;
		else if (w->kind == M_JSON && !json)
			json = w->data, json_n = w->len, w->data = NULL;
		drop_member(w);
		if ((rc = next_member(w, bytes)) < 0)
			break;
		rc = 0;
	}
	size_t wl = strlen(w->name) + kl + 2;
	if (!rc && !(d->where = malloc(wl)))
		rc = mm_fail(MM_ENOMEM, "out of memory");
	if (!rc)
		snprintf(d->where, wl, "%s:%s", w->name, key);
	// The caption goes first, as in a folder: [text, image].
	uint32_t before = d->n_segs;
	if (!rc && txt) {
		while (txt_n && (txt[txt_n - 1] == '\n' || txt[txt_n - 1] == '\r'))
			txt_n--;
		mm_rawseg *s = txt_n ? mm_rawdoc_push(d, MM_SEG_TEXT) : NULL;
		if (txt_n && !s)
			rc = mm_fail(MM_ENOMEM, "out of memory");
		else if (s)
			s->text = txt, s->len = txt_n, txt = NULL;
	} else if (!rc && json)
		rc = json_caption(w, d, json, json_n, d->where);
	free(txt), free(json), free(key);
	if (!rc && d->n_segs > before) { // move the text before the images
		mm_rawseg t = d->segs[d->n_segs - 1];
		memmove(d->segs + 1, d->segs, (d->n_segs - 1) * sizeof *d->segs);
		d->segs[0] = t;
	}
	if (rc == -MM_ENOMEM || rc == -MM_EIO || rc == -MM_ETRUNC || members > WDS_SAMPLE_MEMBERS ||
	    total > MM_SOURCE_DOC_MAX)
		return rc; // the stream is not usable past this point
	if (rc) { // a bad sample: the caller fails or skips it in order
		char *where = d->where;
		d->where = NULL;
		mm_rawdoc_clear(d);
		d->err = rc;
		d->msg = strdup(mm_errmsg());
		free(where);
		return d->msg ? 1 : mm_fail(MM_ENOMEM, "out of memory");
	}
	return 1;
}
