// Input streams that may be compressed: a gzip or zstd stream is recognised by its magic bytes,
// whatever its name, and read through a stdio stream that decompresses it, so that every
// line-based reader (JSONL, text) and the tar reader work on it unchanged and in constant
// memory. Standard input gets the same treatment: its first bytes are read, then handed back.
#define _GNU_SOURCE
#include "source_readers_priv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "err.h"

#define ZIN_BUF ((size_t)1 << 16)

struct mm_zin {
	FILE *raw;
	int own, kind;
	uint8_t *in;
	size_t in_n, in_at; // input bytes held, and consumed
	uint64_t raw_bytes; // read from the underlying stream
	z_stream z;
	int z_live, z_end; // z initialised; the last gzip member ended
	ZSTD_DStream *zs;
	size_t zs_want; // ZSTD_decompressStream's last hint: 0 when a frame just ended
	const char *err; // what went wrong, for the reader's message
};

int mm_zin_magic(const uint8_t *m, size_t n)
{
	if (n >= 2 && m[0] == 0x1f && m[1] == 0x8b)
		return MM_ZIN_GZIP;
	if (n >= 4 && m[0] == 0x28 && m[1] == 0xb5 && m[2] == 0x2f && m[3] == 0xfd)
		return MM_ZIN_ZSTD;
	return MM_ZIN_PLAIN;
}

static int refill(mm_zin *z)
{
	if (z->in_at < z->in_n)
		return 1;
	z->in_n = fread(z->in, 1, ZIN_BUF, z->raw);
	z->in_at = 0;
	z->raw_bytes += z->in_n;
	if (!z->in_n && ferror(z->raw)) {
		z->err = strerror(errno);
		return -1;
	}
	return z->in_n > 0;
}

static ssize_t read_gzip(mm_zin *z, char *buf, size_t size)
{
	size_t out = 0;
	while (out < size) {
		int r = refill(z);
		if (r < 0)
			return -1;
		if (!r) {
			if (!z->z_end) {
				z->err = "truncated gzip data";
				return out ? (ssize_t)out : -1;
			}
			break;
		}
		if (z->z_end) { // another member follows (cat a.gz b.gz is one gzip stream)
			if (inflateReset(&z->z) != Z_OK)
				return z->err = "gzip: cannot restart", -1;
			z->z_end = 0;
		}
		z->z.next_in = z->in + z->in_at;
		z->z.avail_in = (uInt)(z->in_n - z->in_at);
		z->z.next_out = (Bytef *)buf + out;
		z->z.avail_out = (uInt)(size - out);
		int rc = inflate(&z->z, Z_NO_FLUSH);
		z->in_at = z->in_n - z->z.avail_in;
		out = size - z->z.avail_out;
		if (rc == Z_STREAM_END)
			z->z_end = 1;
		else if (rc != Z_OK && rc != Z_BUF_ERROR) {
			z->err = z->z.msg ? z->z.msg : "corrupt gzip data";
			return out ? (ssize_t)out : -1;
		}
		if (out)
			break; // what is there now is enough for stdio
	}
	return (ssize_t)out;
}

static ssize_t read_zstd(mm_zin *z, char *buf, size_t size)
{
	ZSTD_outBuffer ob = {buf, size, 0};
	while (ob.pos == 0) {
		int r = refill(z);
		if (r < 0)
			return -1;
		if (!r) {
			if (z->zs_want) {
				z->err = "truncated zstd data";
				return -1;
			}
			break;
		}
		ZSTD_inBuffer ib = {z->in, z->in_n, z->in_at};
		size_t rc = ZSTD_decompressStream(z->zs, &ob, &ib);
		z->in_at = ib.pos;
		if (ZSTD_isError(rc)) {
			z->err = ZSTD_getErrorName(rc);
			return -1;
		}
		z->zs_want = rc;
	}
	return (ssize_t)ob.pos;
}

static ssize_t zin_read(void *c, char *buf, size_t size)
{
	mm_zin *z = c;
	if (z->err) {
		errno = EIO;
		return -1;
	}
	ssize_t n;
	if (z->kind == MM_ZIN_GZIP)
		n = read_gzip(z, buf, size);
	else if (z->kind == MM_ZIN_ZSTD)
		n = read_zstd(z, buf, size);
	else if (z->in_at < z->in_n) { // the sniffed bytes first
		n = (ssize_t)(z->in_n - z->in_at < size ? z->in_n - z->in_at : size);
		memcpy(buf, z->in + z->in_at, (size_t)n);
		z->in_at += (size_t)n;
	} else {
		n = (ssize_t)fread(buf, 1, size, z->raw);
		z->raw_bytes += (uint64_t)n;
		if (!n && ferror(z->raw))
			z->err = strerror(errno), n = -1;
	}
	if (n < 0)
		errno = EIO;
	return n;
}

static int zin_close(void *c)
{
	mm_zin *z = c;
	if (z->own)
		fclose(z->raw);
	if (z->z_live)
		inflateEnd(&z->z);
	ZSTD_freeDStream(z->zs);
	free(z->in);
	free(z);
	return 0;
}

int mm_zin_open(FILE *raw, int own, int always, FILE **out, mm_zin **zout)
{
	*out = NULL, *zout = NULL;
	mm_zin *z = calloc(1, sizeof *z);
	uint8_t *in = malloc(ZIN_BUF);
	if (!z || !in) {
		free(z), free(in);
		if (own)
			fclose(raw);
		return mm_fail(MM_ENOMEM, "out of memory");
	}
	z->raw = raw, z->own = own, z->in = in;
	long pos = ftell(raw); // -1 on a pipe: then the sniffed bytes are handed back by the layer
	z->in_n = fread(in, 1, 4, raw);
	z->raw_bytes = z->in_n;
	z->kind = mm_zin_magic(in, z->in_n);
	int rc = 0;
	if (z->kind == MM_ZIN_PLAIN && !always) {
		// A plain file is read directly, as before: no layer in the way of its bytes.
		if (pos >= 0 && fseek(raw, pos, SEEK_SET) == 0) {
			free(in), free(z);
			*out = raw;
			return 0;
		}
	}
	if (z->kind == MM_ZIN_GZIP) {
		if (inflateInit2(&z->z, 15 + 16) != Z_OK)
			rc = mm_fail(MM_ENOMEM, "out of memory");
		z->z_live = !rc;
	} else if (z->kind == MM_ZIN_ZSTD && !(z->zs = ZSTD_createDStream()))
		rc = mm_fail(MM_ENOMEM, "out of memory");
	FILE *f = rc ? NULL : fopencookie(z, "rb", (cookie_io_functions_t){zin_read, NULL, NULL, zin_close});
	if (!f) {
		zin_close(z);
		return rc ? rc : mm_fail(MM_ENOMEM, "out of memory");
	}
	*out = f, *zout = z;
	return 0;
}

uint64_t mm_zin_raw_bytes(const mm_zin *z) { return z->raw_bytes; }

const char *mm_zin_error(const mm_zin *z) { return z ? z->err : NULL; }

// Reads up to n bytes of path's content (decompressed when it is gzip or zstd) into buf.
int mm_zin_peek(const char *path, uint8_t *buf, size_t n, size_t *got, int *kind)
{
	FILE *raw = fopen(path, "rb");
	if (!raw)
		return mm_fail(MM_EIO, "%s: cannot open: %s", path, strerror(errno));
	FILE *f;
	mm_zin *z;
	int rc = mm_zin_open(raw, 1, 0, &f, &z);
	if (rc)
		return rc;
	*kind = z ? z->kind : MM_ZIN_PLAIN;
	*got = fread(buf, 1, n, f);
	const char *err = mm_zin_error(z);
	if (err && !*got)
		rc = mm_fail(MM_EFORMAT, "%s: %s", path, err);
	fclose(f);
	return rc;
}
