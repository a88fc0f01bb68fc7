// Reader for the PyTorch reference fixtures tests/ref/*.bin (format: tests/ref/README.md).
// Test code, header-only. The fixtures are untrusted input like any file: every count, length
// and dimension is checked against the bytes that remain before it is used, and a bad file
// gives a negative MM_E* code with a message (mm_errmsg) naming the file and the offset.
//
//   ref_file f;
//   if (ref_load(&f, "tests/ref/tiny_a.bin") < 0) ... mm_errmsg() ...
//   const float *lg = ref_f32(&f, "out.logits", 3, B, T, V);  // NULL unless present and that shape
//   ref_free(&f);
#ifndef MM_TESTS_REFIO_H
#define MM_TESTS_REFIO_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mm.h"

#define REF_MAGIC "MMREF\0\0\1"
#define REF_MAX_NAME 255
#define REF_MAX_NDIM 8
#define REF_MAX_FILE (1u << 30)

enum { REF_F32 = 0, REF_I32 = 1 };

typedef struct ref_tensor {
	char name[REF_MAX_NAME + 1];
	int dtype; // REF_F32 or REF_I32
	int ndim;
	uint32_t dims[REF_MAX_NDIM];
	size_t n;   // number of values (1 for ndim 0)
	void *data; // n floats or int32s, host order
} ref_tensor;

typedef struct ref_file {
	int count;
	ref_tensor *t;
} ref_file;

static inline void ref_free(ref_file *f)
{
	for (int i = 0; f->t && i < f->count; i++)
		free(f->t[i].data);
	free(f->t);
	f->t = NULL;
	f->count = 0;
}

static inline ref_tensor *ref_lookup(const ref_file *f, const char *name)
{
	for (int i = 0; i < f->count; i++)
		if (strcmp(f->t[i].name, name) == 0)
			return &f->t[i];
	return NULL;
}

// Reads one tensor entry at *off; on success the entry is filled and *off moves past it.
static inline int ref_parse_entry(ref_tensor *t, const uint8_t *buf, size_t len, size_t *off, const char *what)
{
	size_t o = *off;
	if (len - o < 4)
		return mm_fail(MM_ETRUNC, "%s: truncated name length at offset %zu", what, o);
	uint32_t nl = mm_get_u32(buf + o);
	o += 4;
	if (nl == 0 || nl > REF_MAX_NAME)
		return mm_fail(MM_EFORMAT, "%s: name length %u out of range at offset %zu", what, nl, o - 4);
	if (len - o < nl)
		return mm_fail(MM_ETRUNC, "%s: truncated name at offset %zu", what, o);
	for (uint32_t i = 0; i < nl; i++)
		if (buf[o + i] < 0x21 || buf[o + i] > 0x7e)
			return mm_fail(MM_EFORMAT, "%s: non-printable byte in name at offset %zu", what, o + i);
	memcpy(t->name, buf + o, nl);
	t->name[nl] = 0;
	o += nl;
	if (len - o < 8)
		return mm_fail(MM_ETRUNC, "%s: %s: truncated header at offset %zu", what, t->name, o);
	uint32_t dt = mm_get_u32(buf + o), nd = mm_get_u32(buf + o + 4);
	if (dt != REF_F32 && dt != REF_I32)
		return mm_fail(MM_EFORMAT, "%s: %s: unknown dtype %u at offset %zu", what, t->name, dt, o);
	if (nd > REF_MAX_NDIM)
		return mm_fail(MM_EFORMAT, "%s: %s: %u dimensions at offset %zu", what, t->name, nd, o + 4);
	o += 8;
	if (len - o < 4 * (size_t)nd)
		return mm_fail(MM_ETRUNC, "%s: %s: truncated dimensions at offset %zu", what, t->name, o);
	// The values must fit in the bytes that remain: bounding n by them also rules out overflow.
	size_t n = 1, room = len - o - 4 * (size_t)nd;
	for (uint32_t i = 0; i < nd; i++) {
		t->dims[i] = mm_get_u32(buf + o + 4 * i);
		if (t->dims[i] && n > room / 4 / t->dims[i])
			return mm_fail(MM_ETRUNC, "%s: %s: %u values of dimension %u do not fit in the file at offset %zu",
				       what, t->name, t->dims[i], i, o + 4 * i);
		n *= t->dims[i];
	}
	o += 4 * (size_t)nd;
	if (n > room / 4)
		return mm_fail(MM_ETRUNC, "%s: %s: truncated values at offset %zu", what, t->name, o);
	t->dtype = (int)dt;
	t->ndim = (int)nd;
	t->n = n;
	t->data = malloc(n ? 4 * n : 1);
	if (!t->data)
		return mm_fail(MM_ENOMEM, "%s: %s: %zu values", what, t->name, n);
	for (size_t i = 0; i < n; i++) {
		uint32_t v = mm_get_u32(buf + o + 4 * i);
		memcpy((char *)t->data + 4 * i, &v, 4);
	}
	*off = o + 4 * n;
	return 0;
}

// Parses a whole fixture held in memory; `what` names it in messages. On failure f is empty.
static inline int ref_parse(ref_file *f, const uint8_t *buf, size_t len, const char *what)
{
	f->count = 0;
	f->t = NULL;
	if (len < 12)
		return mm_fail(MM_ETRUNC, "%s: %zu bytes, shorter than the 12-byte header", what, len);
	if (memcmp(buf, REF_MAGIC, 8) != 0)
		return mm_fail(MM_EFORMAT, "%s: bad magic at offset 0", what);
	uint32_t count = mm_get_u32(buf + 8);
	// Each entry takes at least 13 bytes (name length, one name byte, dtype, ndim).
	if (count > (len - 12) / 13)
		return mm_fail(MM_EFORMAT, "%s: %u tensors cannot fit in %zu bytes (offset 8)", what, count, len);
	f->t = calloc(count ? count : 1, sizeof *f->t);
	if (!f->t)
		return mm_fail(MM_ENOMEM, "%s: table of %u tensors", what, count);
	size_t off = 12;
	for (uint32_t i = 0; i < count; i++) {
		size_t at = off;
		int rc = ref_parse_entry(&f->t[i], buf, len, &off, what);
		if (rc < 0) {
			ref_free(f);
			return rc;
		}
		if (ref_lookup(f, f->t[i].name)) {
			rc = mm_fail(MM_EFORMAT, "%s: tensor %s appears twice (offset %zu)", what, f->t[i].name, at);
			free(f->t[i].data);
			ref_free(f);
			return rc;
		}
		f->count = (int)i + 1;
	}
	if (off != len) {
		ref_free(f);
		return mm_fail(MM_EFORMAT, "%s: %zu stray bytes after the last tensor at offset %zu", what, len - off, off);
	}
	return 0;
}

// The fixtures name the parameters of version 1 of the model's layout (lib/model.h): separate
// wq, wk, wv (D, D) and w1, w3 (F, D) per layer. Each group, under any prefix ("grad.", ...),
// becomes the model's one tensor, rows stacked in that order: ...wqkv (3D, D), ...w13 (2F, D).
// The values are not touched, so the checks against them are as strict as before.
static inline int ref_fuse_group(ref_file *f, const char *what, const char *const *parts, int k,
				 const char *fused)
{
	for (int i = 0; i < f->count; i++) {
		size_t nl = strlen(f->t[i].name), pl = strlen(parts[0]);
		if (nl < pl + 1 || strcmp(f->t[i].name + nl - pl, parts[0]) || f->t[i].name[nl - pl - 1] != '.')
			continue;
		char stem[REF_MAX_NAME + 1], name[REF_MAX_NAME + 64];
		snprintf(stem, sizeof stem, "%.*s", (int)(nl - pl), f->t[i].name);
		ref_tensor *g[3];
		for (int j = 0; j < k; j++) {
			snprintf(name, sizeof name, "%s%s", stem, parts[j]);
			g[j] = ref_lookup(f, name);
			if (!g[j] || g[j]->dtype != REF_F32 || g[j]->ndim != 2 || g[j]->dims[1] != g[0]->dims[1] ||
			    g[j]->dims[0] != g[0]->dims[0])
				return mm_fail(MM_EFORMAT, "%s: %s%s: missing, or not the shape of %s%s", what, stem,
					       parts[j], stem, parts[0]);
		}
		size_t n = g[0]->n;
		float *data = malloc(k * n * sizeof *data);
		if (!data)
			return mm_fail(MM_ENOMEM, "%s: %s%s", what, stem, fused);
		for (int j = 0; j < k; j++)
			memcpy(data + j * n, g[j]->data, n * sizeof *data);
		// the first part becomes the fused tensor; the others leave the table
		free(g[0]->data);
		g[0]->data = data;
		g[0]->n = k * n;
		g[0]->dims[0] *= (uint32_t)k;
		snprintf(g[0]->name, sizeof g[0]->name, "%s%s", stem, fused);
		for (int j = 1; j < k; j++) {
			int at = (int)(g[j] - f->t);
			free(g[j]->data);
			f->t[at] = f->t[--f->count];
			for (int q = j + 1; q < k; q++) // the last entry moved: find the rest again
				if (g[q] == &f->t[f->count]) g[q] = &f->t[at];
			if (g[0] == &f->t[f->count])
				g[0] = &f->t[at];
		}
		i = -1; // the table changed: from the start
	}
	return 0;
}

static inline int ref_fuse_v1(ref_file *f, const char *what)
{
	static const char *const qkv[] = {"wq", "wk", "wv"}, *const g13[] = {"w1", "w3"};
	int rc = ref_fuse_group(f, what, qkv, 3, "wqkv");
	return rc ? rc : ref_fuse_group(f, what, g13, 2, "w13");
}

// Reads the file at path whole and parses it; the parameters in the model's layout (ref_fuse_v1).
static inline int ref_load(ref_file *f, const char *path)
{
	f->count = 0;
	f->t = NULL;
	FILE *fp = fopen(path, "rb");
	if (!fp)
		return mm_fail(MM_EIO, "%s: cannot open", path);
	size_t cap = 1 << 16, len = 0;
	uint8_t *buf = malloc(cap);
	int rc = buf ? 0 : mm_fail(MM_ENOMEM, "%s: read buffer", path);
	while (rc == 0) {
		if (len == cap) {
			if (cap >= REF_MAX_FILE) {
				rc = mm_fail(MM_EFORMAT, "%s: larger than %u bytes", path, REF_MAX_FILE);
				break;
			}
			uint8_t *nb = realloc(buf, cap * 2);
			if (!nb) {
				rc = mm_fail(MM_ENOMEM, "%s: read buffer of %zu bytes", path, cap * 2);
				break;
			}
			buf = nb;
			cap *= 2;
		}
		size_t got = fread(buf + len, 1, cap - len, fp);
		len += got;
		if (got == 0) {
			if (ferror(fp))
				rc = mm_fail(MM_EIO, "%s: read error at offset %zu", path, len);
			break;
		}
	}
	fclose(fp);
	if (rc == 0)
		rc = ref_parse(f, buf, len, path);
	free(buf);
	if (rc == 0 && (rc = ref_fuse_v1(f, path)) < 0)
		ref_free(f);
	return rc;
}

static inline const ref_tensor *ref_find(const ref_file *f, const char *name)
{
	return ref_lookup(f, name);
}

// The tensor `name` if present with this dtype and exactly these ndim dimensions (ints);
// else NULL with a message.
static inline void *ref_vget(const ref_file *f, const char *name, int dtype, int ndim, va_list ap)
{
	ref_tensor *t = ref_lookup(f, name);
	if (!t) {
		mm_fail(MM_EFORMAT, "reference tensor %s is missing", name);
		return NULL;
	}
	if (t->dtype != dtype) {
		mm_fail(MM_EFORMAT, "reference tensor %s has dtype %d, expected %d", name, t->dtype, dtype);
		return NULL;
	}
	int ok = t->ndim == ndim;
	char want[128] = "", have[128] = "";
	for (int i = 0; i < ndim; i++) {
		int d = va_arg(ap, int);
		ok &= i < t->ndim && d >= 0 && (uint32_t)d == t->dims[i];
		size_t w = strlen(want);
		snprintf(want + w, sizeof want - w, "%s%d", i ? "," : "", d);
	}
	if (!ok) {
		for (int i = 0; i < t->ndim; i++) {
			size_t h = strlen(have);
			snprintf(have + h, sizeof have - h, "%s%u", i ? "," : "", t->dims[i]);
		}
		mm_fail(MM_EFORMAT, "reference tensor %s has shape [%s], expected [%s]", name, have, want);
		return NULL;
	}
	return t->data;
}

static inline float *ref_f32(const ref_file *f, const char *name, int ndim, ...)
{
	va_list ap;
	va_start(ap, ndim);
	void *p = ref_vget(f, name, REF_F32, ndim, ap);
	va_end(ap);
	return p;
}

static inline int32_t *ref_i32(const ref_file *f, const char *name, int ndim, ...)
{
	va_list ap;
	va_start(ap, ndim);
	void *p = ref_vget(f, name, REF_I32, ndim, ap);
	va_end(ap);
	return p;
}

// The configuration and batch size stored in a fixture, range-checked so that a test can size
// its buffers from them.
static inline int ref_config(const ref_file *f, mm_config *c, int *B)
{
	memset(c, 0, sizeof *c);
	*B = 0;
	const int32_t *v = ref_i32(f, "config", 1, 12);
	const float *w = ref_f32(f, "image_weight", 1, 1);
	const int32_t *b = ref_i32(f, "batch_size", 1, 1);
	if (!v || !w || !b)
		return -MM_EFORMAT;
	for (int i = 0; i < 12; i++)
		if (v[i] < 0 || v[i] > 1 << 16)
			return mm_fail(MM_ERANGE, "reference config[%d] = %d out of range", i, (int)v[i]);
	c->dim = v[0], c->layers = v[1], c->heads = v[2], c->mlp = v[3], c->vocab = v[4];
	c->img_h = v[5], c->img_w = v[6], c->img_c = v[7], c->patch = v[8];
	c->bottleneck = v[9], c->qk_norm = v[10], c->seq_len = v[11];
	c->image_weight = w[0];
	*B = b[0];
	if (c->heads <= 0 || c->dim % c->heads || *B <= 0 || *B > 1 << 16 || c->seq_len <= 0)
		return mm_fail(MM_ERANGE, "reference config: dim %d heads %d seq_len %d B %d", c->dim, c->heads,
			       c->seq_len, *B);
	if (c->patch && (c->img_h % c->patch || c->img_w % c->patch))
		return mm_fail(MM_ERANGE, "reference config: image %dx%d, patch %d", c->img_h, c->img_w, c->patch);
	return 0;
}

// Points b at the fixture's batch arrays (owned by f; do not write them).
static inline int ref_batch(const ref_file *f, const mm_config *c, int B, mm_batch *b)
{
	int T = c->seq_len, P = MM_PDIM(c);
	memset(b, 0, sizeof *b);
	b->B = B;
	b->T = T;
	b->token = ref_i32(f, "batch.token", 2, B, T);
	b->target = ref_i32(f, "batch.target", 2, B, T);
	b->doc = ref_i32(f, "batch.doc", 2, B, T);
	b->img = ref_i32(f, "batch.img", 2, B, T);
	b->pos = ref_i32(f, "batch.pos", 2, B, T);
	b->patch = ref_i32(f, "batch.patch", 2, B, T);
	b->t = ref_f32(f, "batch.t", 2, B, T);
	b->z = ref_f32(f, "batch.z", 3, B, T, P);
	b->x = ref_f32(f, "batch.x", 3, B, T, P);
	if (!b->token || !b->target || !b->doc || !b->img || !b->pos || !b->patch || !b->t || !b->z || !b->x)
		return -MM_EFORMAT;
	return 0;
}

#endif
