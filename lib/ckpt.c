#include "ckpt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bytes.h"
#include "checksum.h"
#include "err.h"
#include "fileio.h"
#include "model.h"
#include "tokenizer.h"

// Layout (all little-endian):
//   header, 32 bytes: magic "MMCKPT\r\n", u32 version (1), u32 section count,
//                     u64 total file size, u32 reserved (0), u32 CRC-32C of bytes 0..27
//   section header, 24 bytes: u32 tag, u32 reserved (0), u64 payload size,
//                     u32 CRC-32C of the payload, u32 CRC-32C of bytes 0..19 of this header
//   payload, then zero padding to a multiple of 8 bytes
#define CKPT_MAGIC "MMCKPT\r\n"
#define CKPT_VERSION 1
#define CKPT_HDR 32
#define CKPT_SEC_HDR 24
#define CKPT_MAX_SECTIONS 4096

struct mm_ckpt {
	char *path;
	uint8_t *bytes;
	size_t n_bytes;
	int n;
	mm_ckpt_section *secs;
};

static uint64_t pad8(uint64_t n) { return (n + 7) & ~(uint64_t)7; }

int mm_ckpt_write(const char *path, const mm_ckpt_section *secs, int n)
{
	if (n < 0 || n > CKPT_MAX_SECTIONS)
		return mm_fail(MM_EINVAL, "%s: %d sections", path, n);
	uint64_t total = CKPT_HDR;
	for (int i = 0; i < n; i++)
		total += CKPT_SEC_HDR + pad8(secs[i].size);
	uint8_t hdr[CKPT_HDR] = {0};
	memcpy(hdr, CKPT_MAGIC, 8);
	mm_put_u32(hdr + 8, CKPT_VERSION);
	mm_put_u32(hdr + 12, (uint32_t)n);
	mm_put_u64(hdr + 16, total);
	mm_put_u32(hdr + 28, mm_crc32c(0, hdr, 28));
	mm_afile a;
	int rc = mm_afile_open(&a, path);
	if (rc)
		return rc;
	rc = mm_afile_write(&a, hdr, sizeof hdr);
	static const uint8_t zeros[8];
	for (int i = 0; i < n && !rc; i++) {
		uint8_t sh[CKPT_SEC_HDR] = {0};
		mm_put_u32(sh, secs[i].tag);
		mm_put_u64(sh + 8, secs[i].size);
		mm_put_u32(sh + 16, mm_crc32c(0, secs[i].data, secs[i].size));
		mm_put_u32(sh + 20, mm_crc32c(0, sh, 20));
		rc = mm_afile_write(&a, sh, sizeof sh);
		if (!rc)
			rc = mm_afile_write(&a, secs[i].data, secs[i].size);
		if (!rc)
			rc = mm_afile_write(&a, zeros, pad8(secs[i].size) - secs[i].size);
	}
	if (rc) {
		mm_afile_abort(&a);
		return rc;
	}
	return mm_afile_commit(&a);
}

static char *tagstr(uint32_t tag, char out[5])
{
	for (int i = 0; i < 4; i++) {
		char c = (char)(tag >> (8 * i));
		out[i] = c >= 32 && c < 127 ? c : '?';
	}
	out[4] = 0;
	return out;
}

static int ckpt_parse(mm_ckpt *ck)
{
	const uint8_t *b = ck->bytes;
	const char *path = ck->path;
	if (ck->n_bytes < CKPT_HDR)
		return mm_fail(MM_ETRUNC, "%s: truncated: %zu bytes, shorter than the header", path, ck->n_bytes);
	if (memcmp(b, CKPT_MAGIC, 8) != 0)
		return mm_fail(MM_EFORMAT, "%s: not an mm checkpoint (bad magic at offset 0)", path);
	if (mm_get_u32(b + 28) != mm_crc32c(0, b, 28))
		return mm_fail(MM_ECHECKSUM, "%s: header checksum mismatch at offset 0", path);
	uint32_t version = mm_get_u32(b + 8);
	if (version != CKPT_VERSION)
		return mm_fail(MM_EVERSION, "%s: checkpoint version %u, this mm reads version %d", path, version,
			       CKPT_VERSION);
	uint32_t n = mm_get_u32(b + 12);
	uint64_t total = mm_get_u64(b + 16);
	if (n > CKPT_MAX_SECTIONS)
		return mm_fail(MM_EFORMAT, "%s: %u sections (at most %d) at offset 12", path, n, CKPT_MAX_SECTIONS);
	if (total != ck->n_bytes)
		return mm_fail(total > ck->n_bytes ? MM_ETRUNC : MM_EFORMAT,
			       "%s: file is %zu bytes, header says %llu%s", path, ck->n_bytes,
			       (unsigned long long)total, total > ck->n_bytes ? " (truncated)" : "");
	ck->secs = calloc(n ? n : 1, sizeof *ck->secs);
	if (!ck->secs)
		return mm_fail(MM_ENOMEM, "%s: out of memory", path);
	uint64_t off = CKPT_HDR;
	char ts[5];
	for (uint32_t i = 0; i < n; i++) {
		if (ck->n_bytes - off < CKPT_SEC_HDR)
			return mm_fail(MM_ETRUNC, "%s: truncated at offset %llu (section %u header)", path,
				       (unsigned long long)off, i);
		const uint8_t *sh = b + off;
		if (mm_get_u32(sh + 20) != mm_crc32c(0, sh, 20))
			return mm_fail(MM_ECHECKSUM, "%s: section header checksum mismatch at offset %llu", path,
				       (unsigned long long)off);
		uint64_t size = mm_get_u64(sh + 8);
		uint64_t room = ck->n_bytes - off - CKPT_SEC_HDR;
		if (size > room || pad8(size) > room)
			return mm_fail(MM_ETRUNC, "%s: section '%s' at offset %llu runs past the end of the file", path,
				       tagstr(mm_get_u32(sh), ts), (unsigned long long)off);
		const uint8_t *data = sh + CKPT_SEC_HDR;
		if (mm_get_u32(sh + 16) != mm_crc32c(0, data, size))
			return mm_fail(MM_ECHECKSUM, "%s: section '%s' checksum mismatch at offset %llu", path,
				       tagstr(mm_get_u32(sh), ts), (unsigned long long)(off + CKPT_SEC_HDR));
		for (uint64_t k = size; k < pad8(size); k++)
			if (data[k])
				return mm_fail(MM_EFORMAT, "%s: non-zero padding at offset %llu", path,
					       (unsigned long long)(off + CKPT_SEC_HDR + k));
		ck->secs[i].tag = mm_get_u32(sh);
		ck->secs[i].size = size;
		ck->secs[i].data = data;
		off += CKPT_SEC_HDR + pad8(size);
	}
	if (off != ck->n_bytes)
		return mm_fail(MM_EFORMAT, "%s: %llu unexpected bytes after the last section at offset %llu", path,
			       (unsigned long long)(ck->n_bytes - off), (unsigned long long)off);
	ck->n = (int)n;
	return 0;
}

int mm_ckpt_read(mm_ckpt **out, const char *path)
{
	*out = NULL;
	uint8_t *bytes;
	size_t n;
	int rc = mm_read_file(path, (size_t)1 << 40, &bytes, &n);
	return rc ? rc : mm_ckpt_read_mem(out, bytes, n, path);
}

int mm_ckpt_read_mem(mm_ckpt **out, uint8_t *bytes, size_t n, const char *path)
{
	*out = NULL;
	mm_ckpt *ck = calloc(1, sizeof *ck);
	if (!ck || !(ck->path = strdup(path))) {
		free(ck);
		free(bytes);
		return mm_fail(MM_ENOMEM, "%s: out of memory", path);
	}
	ck->bytes = bytes;
	ck->n_bytes = n;
	int rc = ckpt_parse(ck);
	if (rc) {
		mm_ckpt_free(ck);
		return rc;
	}
	*out = ck;
	return 0;
}

const mm_ckpt_section *mm_ckpt_find(const mm_ckpt *ck, uint32_t tag)
{
	for (int i = 0; i < ck->n; i++)
		if (ck->secs[i].tag == tag)
			return &ck->secs[i];
	return NULL;
}

int mm_ckpt_need(const mm_ckpt *ck, uint32_t tag, uint64_t size, const void **data)
{
	char ts[5];
	const mm_ckpt_section *s = mm_ckpt_find(ck, tag);
	if (!s)
		return mm_fail(MM_EFORMAT, "%s: no '%s' section", ck->path, tagstr(tag, ts));
	if (s->size != size)
		return mm_fail(MM_EFORMAT, "%s: section '%s' is %llu bytes, expected %llu", ck->path, tagstr(tag, ts),
			       (unsigned long long)s->size, (unsigned long long)size);
	*data = s->data;
	return 0;
}

const char *mm_ckpt_path(const mm_ckpt *ck) { return ck->path; }

void mm_ckpt_free(mm_ckpt *ck)
{
	if (!ck)
		return;
	free(ck->path);
	free(ck->bytes);
	free(ck->secs);
	free(ck);
}

int mm_ckpt_resolve(const char *arg, char **path)
{
	*path = NULL;
	struct stat st;
	if (stat(arg, &st) != 0)
		return mm_fail(MM_EIO, "%s: %s", arg, strerror(errno));
	if (!S_ISDIR(st.st_mode)) {
		*path = strdup(arg);
		return *path ? 0 : mm_fail(MM_ENOMEM, "out of memory");
	}
	size_t n = strlen(arg) + 16;
	char *latest = malloc(n);
	if (!latest)
		return mm_fail(MM_ENOMEM, "out of memory");
	snprintf(latest, n, "%s/latest", arg);
	uint8_t *name;
	size_t len;
	int rc = mm_read_file(latest, 4096, &name, &len);
	if (rc) {
		rc = mm_fail(MM_EIO, "%s: not a checkpoint and no %s: %s", arg, latest, mm_errmsg());
		free(latest);
		return rc;
	}
	while (len && (name[len - 1] == '\n' || name[len - 1] == '\r'))
		name[--len] = 0;
	if (!len || memchr(name, '/', len) || strlen((char *)name) != len) {
		rc = mm_fail(MM_EFORMAT, "%s: does not name a checkpoint", latest);
		free(name);
		free(latest);
		return rc;
	}
	free(latest);
	n = strlen(arg) + len + 2;
	*path = malloc(n);
	if (*path)
		snprintf(*path, n, "%s/%s", arg, (char *)name);
	free(name);
	return *path ? 0 : mm_fail(MM_ENOMEM, "out of memory");
}

int mm_ckpt_load_model(const char *arg, int ema, int max_batch, mm_model **m, mm_tokenizer **tok, int *has_ema)
{
	*m = NULL;
	*tok = NULL;
	char *path;
	int rc = mm_ckpt_resolve(arg, &path);
	if (rc)
		return rc;
	mm_ckpt *ck = NULL;
	mm_config c;
	const mm_ckpt_section *s;
	const void *w;
	if ((rc = mm_ckpt_read(&ck, path)))
		goto out;
	if (!(s = mm_ckpt_find(ck, MM_SEC_MODL))) {
		rc = mm_fail(MM_EFORMAT, "%s: no model section", path);
		goto out;
	}
	if ((rc = mm_config_parse(s->data, s->size, path, &c)))
		goto out;
	if (!(s = mm_ckpt_find(ck, MM_SEC_TOKN))) {
		rc = mm_fail(MM_EFORMAT, "%s: no tokenizer section", path);
		goto out;
	}
	if ((rc = mm_tok_load_mem(tok, s->data, s->size, path)))
		goto out;
	if (mm_tok_vocab_size(*tok) != (uint32_t)c.vocab) {
		rc = mm_fail(MM_EFORMAT, "%s: tokenizer vocab %u, model vocab %d", path, mm_tok_vocab_size(*tok), c.vocab);
		goto out;
	}
	if (has_ema)
		*has_ema = mm_ckpt_find(ck, MM_SEC_EMA) != NULL;
	if ((rc = mm_model_new(m, &c, max_batch)))
		goto out;
	size_t bytes = mm_model_nparams(*m) * sizeof(float);
	if ((rc = mm_ckpt_need(ck, ema ? MM_SEC_EMA : MM_SEC_PARM, bytes, &w)))
		goto out;
	memcpy(mm_model_params(*m), w, bytes);
out:
	if (rc) {
		mm_model_free(*m);
		mm_tok_free(*tok);
		*m = NULL;
		*tok = NULL;
	}
	mm_ckpt_free(ck);
	free(path);
	return rc;
}
