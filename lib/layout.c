// The walks over a record's field table (lib/layout.h): write, read, check.
#include "layout.h"

#include <string.h>

#include "bytes.h"
#include "checksum.h"
#include "err.h"

typedef unsigned long long ull;


// A number field's value in the values struct, as its 8 bytes (a uint64_t, or an f64's double).
static uint64_t load(const void *values, const mm_field *f)
{
	uint64_t v;
	memcpy(&v, (const char *)values + f->slot, 8);
	return v;
}

static void store(void *values, const mm_field *f, uint64_t v) { memcpy((char *)values + f->slot, &v, 8); }

static uint64_t get(const mm_field *f, const uint8_t *in)
{
	return f->type == MM_FIELD_U32 ? mm_get_u32(in + f->offset) : mm_get_u64(in + f->offset);
}

static void put(const mm_field *f, uint8_t *out, uint64_t v)
{
	if (f->type == MM_FIELD_U32)
		mm_put_u32(out + f->offset, (uint32_t)v);
	else
		mm_put_u64(out + f->offset, v);
}

void mm_layout_put(const mm_layout *L, const void *values, uint8_t *out)
{
	memset(out, 0, L->size);
	for (int i = 0; i < L->n_fields; i++) {
		const mm_field *f = &L->fields[i];
		if (f->type == MM_FIELD_BYTES) {
			if (f->check != MM_CHECK_ZERO)
				memcpy(out + f->offset, f->bytes, f->n_bytes);
			continue;
		}
		switch (f->check) {
		case MM_CHECK_MAGIC:
		case MM_CHECK_VERSION:
		case MM_CHECK_EQ:
		case MM_CHECK_KNOWN:
			put(f, out, f->want);
			break;
		case MM_CHECK_ZERO:
			break;
		case MM_CHECK_CRC: // the fields are in offset order: every byte before it is written
			put(f, out, mm_crc32c(0, out, f->offset));
			break;
		default:
			put(f, out, load(values, f));
		}
	}
}

void mm_layout_get(const mm_layout *L, const uint8_t *in, void *values)
{
	for (int i = 0; i < L->n_fields; i++) {
		const mm_field *f = &L->fields[i];
		if (f->type != MM_FIELD_BYTES)
			store(values, f, get(f, in));
	}
}

static int stage_of(mm_check c)
{
	switch (c) {
	case MM_CHECK_NONE:
		return -1;
	case MM_CHECK_MAGIC:
	case MM_CHECK_VERSION:
		return MM_STAGE_IDENT;
	case MM_CHECK_CRC:
		return MM_STAGE_CRC;
	default:
		return MM_STAGE_FIELDS;
	}
}

// A BYTES field's content for a message: printable ASCII up to the first NUL, '?' for the rest.
static void printable(const uint8_t *p, uint32_t n, char *out, size_t cap)
{
	size_t k = 0;
	for (uint32_t i = 0; i < n && p[i] && k + 1 < cap; i++)
		out[k++] = p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' ? (char)p[i] : '?';
	out[k] = 0;
}

static int check_bytes(const mm_field *f, const uint8_t *in, const char *path, ull at)
{
	const uint8_t *p = in + f->offset;
	for (uint32_t i = 0; i < f->size; i++) {
		uint8_t want = f->check == MM_CHECK_ZERO || i >= f->n_bytes ? 0 : f->bytes[i];
		if (p[i] == want)
			continue;
		if (f->check == MM_CHECK_ZERO)
			return mm_fail(MM_EFORMAT, "%s: %s byte at offset %llu is not zero", path, f->name, at + i);
		if (f->check == MM_CHECK_MAGIC)
			return mm_fail(MM_EFORMAT, "%s: bad %s at offset %llu", path, f->name, at);
		char got[64];
		printable(p, f->size, got, sizeof got);
		int known = f->check == MM_CHECK_KNOWN;
		return mm_fail(known ? MM_EUNSUPPORTED : MM_EFORMAT, "%s: %s \"%s\" at offset %llu is not \"%.*s\"%s",
			       path, f->name, got, at, (int)f->n_bytes, (const char *)f->bytes,
			       known ? ", the one this reader knows" : "");
	}
	return 0;
}

static int check_number(const mm_field *f, const uint8_t *in, const char *path, ull at)
{
	uint64_t v = get(f, in);
	ull w = f->want;
	switch (f->check) {
	case MM_CHECK_CRC: {
		uint32_t crc = mm_crc32c(0, in, f->offset);
		if (MM_CRC_BAD(v, crc))
			return mm_fail(MM_ECHECKSUM, "%s: %s mismatch at offset %llu (stored %08x, computed %08x)",
				       path, f->name, at, (uint32_t)v, crc);
		return 0;
	}
	case MM_CHECK_VERSION:
		if (v != w)
			return mm_fail(MM_EVERSION, "%s: format %s %llu at offset %llu; this reader knows %s %llu",
				       path, f->name, (ull)v, at, f->name, w);
		return 0;
	case MM_CHECK_MAGIC:
	case MM_CHECK_EQ:
		if (v != w)
			return mm_fail(MM_EFORMAT, "%s: %s %llu at offset %llu, expected %llu", path, f->name,
				       (ull)v, at, w);
		return 0;
	case MM_CHECK_KNOWN:
		if (v != w)
			return mm_fail(MM_EUNSUPPORTED, "%s: %s %llu at offset %llu is not supported (this reader knows %llu)",
				       path, f->name, (ull)v, at, w);
		return 0;
	case MM_CHECK_ZERO:
		if (v)
			return mm_fail(MM_EFORMAT, "%s: %s %llu at offset %llu, must be 0", path, f->name, (ull)v, at);
		return 0;
	case MM_CHECK_MIN:
		if (v < w)
			return mm_fail(MM_EFORMAT, "%s: %s %llu at offset %llu, must be at least %llu", path,
				       f->name, (ull)v, at, w);
		return 0;
	case MM_CHECK_MAX:
		if (v > w)
			return mm_fail(MM_EFORMAT, "%s: %s %llu at offset %llu is over the limit of %llu", path,
				       f->name, (ull)v, at, w);
		return 0;
	default:
		return 0;
	}
}

int mm_layout_check(const mm_layout *L, const uint8_t *in, int stage, const char *path, uint64_t base)
{
	for (int i = 0; i < L->n_fields; i++) {
		const mm_field *f = &L->fields[i];
		if (stage_of(f->check) != stage)
			continue;
		ull at = (ull)base + f->offset;
		int rc = f->type == MM_FIELD_BYTES ? check_bytes(f, in, path, at) : check_number(f, in, path, at);
		if (rc)
			return rc;
	}
	return 0;
}

int mm_layout_magic_ok(const mm_layout *L, const uint8_t *in, size_t n)
{
	for (int i = 0; i < L->n_fields; i++) {
		const mm_field *f = &L->fields[i];
		if (f->check != MM_CHECK_MAGIC || f->type != MM_FIELD_BYTES || f->offset >= n)
			continue;
		size_t k = n - f->offset < f->size ? n - f->offset : f->size;
		for (size_t j = 0; j < k; j++)
			if (in[f->offset + j] != (j < f->n_bytes ? f->bytes[j] : 0))
				return 0;
	}
	return 1;
}
