#include "ckpt.h"

#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bytes.h"
#include "checksum.h"
#include "err.h"
#include "fileio.h"
#include "layout.h"
#include "model.h"
#include "tokenizer.h"

// The container, all little-endian (the tables below, and man/mm-checkpoint.5):
//   header, 32 bytes; then per section a 24-byte section header, the payload, and zero
//   padding to a multiple of 8 bytes.
#define CKPT_MAGIC "MMCKPT\r\n"
// Version 2: the parameters in the fused layout of lib/model.h (wqkv, w13). A version 1 file
// (separate wq, wk, wv, w1, w3) is still read: ckpt_from_v1 reorders its arrays on loading.
#define CKPT_VERSION 2
#define CKPT_VERSION_MIN 1
#define CKPT_HDR 32
#define CKPT_SEC_HDR 24
#define CKPT_MAX_SECTIONS 4096

// The header and the section header, records of lib/layout.h (the man page's first tables).
#define CKPT_HEADER_FIELDS(X, R)                                        \
	X(R, magic, 0, 8, BYTES, MAGIC, CKPT_MAGIC)                     \
	X(R, version, 8, 4, U32, VERSION, CKPT_VERSION)                 \
	X(R, sections, 12, 4, U32, MAX, CKPT_MAX_SECTIONS)              \
	X(R, size, 16, 8, U64, NONE, 0)    /* of the whole file */      \
	X(R, reserved, 24, 4, U32, ZERO, 0)                             \
	X(R, crc, 28, 4, U32, CRC, 0)
#define CKPT_SECTION_FIELDS(X, R)                                       \
	X(R, tag, 0, 4, U32, NONE, 0)                                   \
	X(R, reserved, 4, 4, U32, ZERO, 0)                              \
	X(R, size, 8, 8, U64, NONE, 0)     /* of the payload */         \
	X(R, data_crc, 16, 4, U32, NONE, 0)                             \
	X(R, crc, 20, 4, U32, CRC, 0)
MM_LAYOUT(ckh, CKPT_HEADER_FIELDS, "checkpoint-header");
MM_LAYOUT(cks, CKPT_SECTION_FIELDS, "checkpoint-section");
MM_LAYOUT(ckstat, MM_CKPT_STAT_FIELDS, "checkpoint-stat");
MM_LAYOUT(ckrh, MM_CKPT_RANK_HEAD_FIELDS, "checkpoint-rank");
MM_LAYOUT(ckr, MM_CKPT_RANK_FIELDS, "checkpoint-rank-entry");
const mm_layout *const mm_ckpt_layouts[] = {&ckh_layout, &cks_layout, &ckstat_layout, &ckrh_layout, &ckr_layout, NULL};
_Static_assert(sizeof(ckh_bytes) == CKPT_HDR && sizeof(cks_bytes) == CKPT_SEC_HDR, "container layouts");
_Static_assert(sizeof(ckstat_bytes) == MM_CKPT_STAT_SIZE && sizeof(ckstat_values) == sizeof(mm_ckpt_stat),
	       "STAT layout");
_Static_assert(sizeof(ckrh_bytes) == MM_CKPT_RANK_HEAD_SIZE && sizeof(ckr_bytes) == MM_CKPT_RANK_ENTRY_SIZE &&
		       sizeof(ckr_values) == sizeof(mm_ckpt_rank),
	       "RANK layout");

struct mm_ckpt {
	char *path;
	uint8_t *bytes;
	size_t n_bytes;
	int n;
	mm_ckpt_section *secs;
	uint32_t version;
};

static uint64_t pad8(uint64_t n) { return (n + 7) & ~(uint64_t)7; }

int mm_ckpt_write(const char *path, const mm_ckpt_section *secs, int n)
{
	if (n < 0 || n > CKPT_MAX_SECTIONS)
		return mm_fail(MM_EINVAL, "%s: %d sections", path, n);
	ckh_values h = {.sections = (uint64_t)n, .size = CKPT_HDR};
	for (int i = 0; i < n; i++)
		h.size += CKPT_SEC_HDR + pad8(secs[i].size);
	uint8_t hdr[CKPT_HDR];
	mm_layout_put(&ckh_layout, &h, hdr);
	mm_afile a;
	int rc = mm_afile_open(&a, path);
	if (rc)
		return rc;
	rc = mm_afile_write(&a, hdr, sizeof hdr);
	static const uint8_t zeros[8];
	for (int i = 0; i < n && !rc; i++) {
		cks_values s = {.tag = secs[i].tag, .size = secs[i].size, .data_crc = mm_crc32c(0, secs[i].data, secs[i].size)};
		uint8_t sh[CKPT_SEC_HDR];
		mm_layout_put(&cks_layout, &s, sh);
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
	// The header's own messages first (what mm has always said), then the table's checks.
	ckh_values h;
	mm_layout_get(&ckh_layout, b, &h);
	if (!mm_layout_magic_ok(&ckh_layout, b, CKPT_HDR))
		return mm_fail(MM_EFORMAT, "%s: not an mm checkpoint (bad magic at offset 0)", path);
	if (h.crc != mm_crc32c(0, b, MM_AT(ckh, crc)))
		return mm_fail(MM_ECHECKSUM, "%s: header checksum mismatch at offset 0", path);
	if (h.version < CKPT_VERSION_MIN || h.version > CKPT_VERSION)
		return mm_fail(MM_EVERSION, "%s: checkpoint version %u, this mm reads versions %d to %d", path,
			       (uint32_t)h.version, CKPT_VERSION_MIN, CKPT_VERSION);
	ck->version = (uint32_t)h.version;
	uint32_t n = (uint32_t)h.sections;
	uint64_t total = h.size;
	if (n > CKPT_MAX_SECTIONS)
		return mm_fail(MM_EFORMAT, "%s: %u sections (at most %d) at offset 12", path, n, CKPT_MAX_SECTIONS);
	if (total != ck->n_bytes)
		return mm_fail(total > ck->n_bytes ? MM_ETRUNC : MM_EFORMAT,
			       "%s: file is %zu bytes, header says %llu%s", path, ck->n_bytes,
			       (unsigned long long)total, total > ck->n_bytes ? " (truncated)" : "");
	int rc = mm_layout_check(&ckh_layout, b, MM_STAGE_FIELDS, path, 0);
	if (rc)
		return rc;
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
		cks_values s;
		mm_layout_get(&cks_layout, sh, &s);
		if (s.crc != mm_crc32c(0, sh, MM_AT(cks, crc)))
			return mm_fail(MM_ECHECKSUM, "%s: section header checksum mismatch at offset %llu", path,
				       (unsigned long long)off);
		if ((rc = mm_layout_check(&cks_layout, sh, MM_STAGE_FIELDS, path, off)))
			return rc;
		uint64_t room = ck->n_bytes - off - CKPT_SEC_HDR;
		if (s.size > room || pad8(s.size) > room)
			return mm_fail(MM_ETRUNC, "%s: section '%s' at offset %llu runs past the end of the file", path,
				       tagstr((uint32_t)s.tag, ts), (unsigned long long)off);
		const uint8_t *data = sh + CKPT_SEC_HDR;
		if (s.data_crc != mm_crc32c(0, data, s.size))
			return mm_fail(MM_ECHECKSUM, "%s: section '%s' checksum mismatch at offset %llu", path,
				       tagstr((uint32_t)s.tag, ts), (unsigned long long)(off + CKPT_SEC_HDR));
		for (uint64_t k = s.size; k < pad8(s.size); k++)
			if (data[k])
				return mm_fail(MM_EFORMAT, "%s: non-zero padding at offset %llu", path,
					       (unsigned long long)(off + CKPT_SEC_HDR + k));
		ck->secs[i].tag = (uint32_t)s.tag;
		ck->secs[i].size = s.size;
		ck->secs[i].data = data;
		off += CKPT_SEC_HDR + pad8(s.size);
	}
	if (off != ck->n_bytes)
		return mm_fail(MM_EFORMAT, "%s: %llu unexpected bytes after the last section at offset %llu", path,
			       (unsigned long long)(ck->n_bytes - off), (unsigned long long)off);
	ck->n = (int)n;
	return 0;
}

// The parameter arrays of a version 1 file (PARM, EMA, both halves of ADAM) into the current
// layout, in the loaded bytes, so that every reader of the sections sees one layout. Without
// a model shape (MODL), or where a section's size does not fit it, nothing can load them:
// they are left for mm_ckpt_need and mm_ckpt_config to refuse.
static void ckpt_from_v1(mm_ckpt *ck)
{
	const mm_ckpt_section *m = mm_ckpt_find(ck, MM_SEC_MODL);
	mm_config c;
	if (!m || mm_config_parse(m->data, m->size, ck->path, &c))
		return;
	size_t np = mm_config_nparams(&c);
	for (int i = 0; i < ck->n; i++) {
		uint32_t tag = ck->secs[i].tag;
		int arrays = tag == MM_SEC_ADAM ? 2 : tag == MM_SEC_PARM || tag == MM_SEC_EMA ? 1 : 0;
		if (!arrays || ck->secs[i].size != arrays * np * sizeof(float))
			continue;
		// the payload lies in ck->bytes, ours to change; 8-byte aligned, as every section
		float *p = (float *)(ck->bytes + ((const uint8_t *)ck->secs[i].data - ck->bytes));
		for (int a = 0; a < arrays; a++)
			mm_params_from_v1(&c, p + a * np);
	}
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
	if (!rc && ck->version == 1)
		ckpt_from_v1(ck);
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

// ---------------------------------------------------------------- a training run's contents

int mm_ckpt_write_train(const char *path, const mm_ckpt_train *t)
{
	char modl[1024];
	uint8_t *tokb = NULL, *ranks = NULL;
	size_t tokn, np = t->nparams;
	int rc = mm_config_format(t->cfg, modl, sizeof modl);
	if (rc || (rc = mm_tok_serialize(t->tok, &tokb, &tokn)))
		return rc;
	uint8_t stat[MM_CKPT_STAT_SIZE];
	mm_layout_put(&ckstat_layout, &t->stat, stat);
	// RANK is left out with one rank, as before data-parallel training.
	size_t ranks_size = t->ranks > 1 ? MM_CKPT_RANK_HEAD_SIZE + (size_t)t->ranks * MM_CKPT_RANK_ENTRY_SIZE : 0;
	if (ranks_size) {
		if (!(ranks = malloc(ranks_size))) {
			free(tokb);
			return mm_fail(MM_ENOMEM, "%s: out of memory", path);
		}
		ckrh_values h = {.ranks = t->ranks};
		mm_layout_put(&ckrh_layout, &h, ranks);
		for (uint32_t r = 0; r < t->ranks; r++)
			mm_layout_put(&ckr_layout, &t->rank[r], ranks + MM_CKPT_RANK_HEAD_SIZE + (size_t)r * MM_CKPT_RANK_ENTRY_SIZE);
	}
	mm_ckpt_section secs[8] = {
		{MM_SEC_CONF, strlen(t->conf), t->conf},
		{MM_SEC_MODL, strlen(modl), modl},
		{MM_SEC_TOKN, tokn, tokb},
		{MM_SEC_PARM, np * sizeof(float), t->params},
		{MM_SEC_ADAM, 2 * np * sizeof(float), t->adam},
		{MM_SEC_STAT, MM_CKPT_STAT_SIZE, stat},
	};
	int nsec = 6;
	if (t->ema)
		secs[nsec++] = (mm_ckpt_section){MM_SEC_EMA, np * sizeof(float), t->ema};
	if (ranks_size)
		secs[nsec++] = (mm_ckpt_section){MM_SEC_RANK, ranks_size, ranks};
	rc = mm_ckpt_write(path, secs, nsec);
	free(tokb);
	free(ranks);
	return rc;
}

static char *join(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s/%s", dir, name);
	return p;
}

char *mm_ckpt_train_path(const char *dir, uint64_t step)
{
	char name[64];
	snprintf(name, sizeof name, "ckpt-%llu.mmc", (unsigned long long)step);
	return join(dir, name);
}

// A temporary file of the run directory's own writes (mm_afile: NAME.tmp.XXXXXX). Only one
// run writes a directory, and it has committed its own when it calls remove_old: one still
// there was left by a process killed while writing it.
static int stale_temporary(const char *name)
{
	const char *t = strstr(name, ".tmp.");
	if (!t || strlen(t) != 11)
		return 0;
	return strncmp(name, "ckpt-", 5) == 0 || strncmp(name, "latest.", 7) == 0 ||
	       strncmp(name, "log.jsonl.", 10) == 0;
}

// Removes the checkpoints of dir beyond the newest keep, and the temporary files of writes
// that were killed (a directory it cannot list is left).
static void remove_old(const char *dir, long long keep)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	unsigned long long steps[4096];
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) && n < 4096) {
		unsigned long long s;
		char tail[8];
		if (stale_temporary(e->d_name)) {
			char *tmp = join(dir, e->d_name);
			if (tmp)
				unlink(tmp);
			free(tmp);
		} else if (sscanf(e->d_name, "ckpt-%llu.mm%2s", &s, tail) == 2 && strcmp(tail, "c") == 0) {
			steps[n++] = s;
		}
	}
	closedir(d);
	for (int i = 0; i < n; i++) {
		int newer = 0;
		for (int j = 0; j < n; j++)
			newer += steps[j] > steps[i];
		if (newer >= keep) {
			char *old = mm_ckpt_train_path(dir, steps[i]);
			if (old)
				unlink(old);
			free(old);
		}
	}
}

int mm_ckpt_save_train(const char *dir, const mm_ckpt_train *t, long long keep, char **path)
{
	*path = mm_ckpt_train_path(dir, t->stat.step);
	char *latest = join(dir, "latest");
	int rc = *path && latest ? mm_ckpt_write_train(*path, t) : mm_fail(MM_ENOMEM, "%s: out of memory", dir);
	if (!rc) {
		mm_afile a;
		char line[80];
		int k = snprintf(line, sizeof line, "%s\n", strrchr(*path, '/') + 1);
		if (!(rc = mm_afile_open(&a, latest)) && !(rc = mm_afile_write(&a, line, (size_t)k)))
			rc = mm_afile_commit(&a);
	}
	free(latest);
	if (rc) {
		free(*path);
		*path = NULL;
		return rc;
	}
	remove_old(dir, keep);
	return 0;
}

int mm_ckpt_get_train(const mm_ckpt *ck, size_t nparams, int ema, mm_ckpt_train *t)
{
	memset(t, 0, sizeof *t);
	t->nparams = nparams;
	t->ranks = 1;
	const void *p;
	int rc = mm_ckpt_need(ck, MM_SEC_PARM, nparams * sizeof(float), &p);
	if (rc)
		return rc;
	t->params = p;
	if ((rc = mm_ckpt_need(ck, MM_SEC_ADAM, 2 * nparams * sizeof(float), &p)))
		return rc;
	t->adam = p;
	if (ema) {
		if ((rc = mm_ckpt_need(ck, MM_SEC_EMA, nparams * sizeof(float), &p)))
			return rc;
		t->ema = p;
	}
	if ((rc = mm_ckpt_need(ck, MM_SEC_STAT, MM_CKPT_STAT_SIZE, &p)))
		return rc;
	mm_layout_get(&ckstat_layout, p, &t->stat);
	if ((rc = mm_layout_check(&ckstat_layout, p, MM_STAGE_FIELDS, ck->path, (uint64_t)((const uint8_t *)p - ck->bytes))))
		return rc;
	const mm_ckpt_section *s = mm_ckpt_find(ck, MM_SEC_RANK);
	if (!s)
		return 0;
	ckrh_values h = {0};
	if (s->size >= MM_CKPT_RANK_HEAD_SIZE)
		mm_layout_get(&ckrh_layout, s->data, &h);
	if (s->size < MM_CKPT_RANK_HEAD_SIZE || h.ranks < 1 || h.ranks > (1u << 24) ||
	    s->size != MM_CKPT_RANK_HEAD_SIZE + (uint64_t)MM_CKPT_RANK_ENTRY_SIZE * h.ranks)
		return mm_fail(MM_EFORMAT, "%s: section RANK of %llu bytes does not hold whole data positions", ck->path,
			       (unsigned long long)s->size);
	if (!(t->rank = malloc(h.ranks * sizeof *t->rank)))
		return mm_fail(MM_ENOMEM, "%s: out of memory", ck->path);
	t->ranks = (uint32_t)h.ranks;
	for (uint32_t r = 0; r < h.ranks; r++)
		mm_layout_get(&ckr_layout, (const uint8_t *)s->data + MM_CKPT_RANK_HEAD_SIZE + (size_t)r * MM_CKPT_RANK_ENTRY_SIZE,
			      &t->rank[r]);
	return 0;
}

int mm_ckpt_config(const mm_ckpt *ck, mm_config *c)
{
	const mm_ckpt_section *s = mm_ckpt_find(ck, MM_SEC_MODL);
	if (!s)
		return mm_fail(MM_EFORMAT, "%s: no model section", ck->path);
	return mm_config_parse(s->data, s->size, ck->path, c);
}

int mm_ckpt_tokenizer(const mm_ckpt *ck, mm_tokenizer **tok)
{
	const mm_ckpt_section *s = mm_ckpt_find(ck, MM_SEC_TOKN);
	if (!s)
		return mm_fail(MM_EFORMAT, "%s: no tokenizer section", ck->path);
	return mm_tok_load_mem(tok, s->data, s->size, ck->path);
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
	const void *w;
	if ((rc = mm_ckpt_read(&ck, path)) || (rc = mm_ckpt_config(ck, &c)) || (rc = mm_ckpt_tokenizer(ck, tok)))
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
