// Shards back into files: a listing of their documents, and an extraction into a folder that
// mm-tokenize reads back to the same shards.
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "fileio.h"
#include "ingest.h"

int mm_shards_list(char *const *paths, int n, FILE *out)
{
	uint64_t k = 0, segs = 0, tokens = 0, images = 0;
	mm_doc d;
	mm_doc_init(&d);
	int rc = 0;
	for (int i = 0; i < n && !rc; i++) {
		mm_shard_reader *r;
		if ((rc = mm_shard_open(&r, paths[i])))
			break;
		uint64_t nd = mm_shard_get_info(r)->n_docs;
		for (uint64_t j = 0; j < nd && !rc; j++, k++) {
			if ((rc = mm_shard_read(r, j, &d)))
				break;
			uint64_t t = 0;
			uint32_t im = 0;
			fprintf(out, "%llu\t%u\t", (unsigned long long)k, d.n_segs);
			for (uint32_t s = 0; s < d.n_segs; s++)
				t += d.segs[s].type == MM_SEG_TEXT ? d.segs[s].n_tokens : 0;
			fprintf(out, "%llu\t", (unsigned long long)t);
			for (uint32_t s = 0; s < d.n_segs; s++)
				if (d.segs[s].type == MM_SEG_IMAGE)
					fprintf(out, "%s%ux%ux%u", im++ ? "," : "", d.segs[s].w, d.segs[s].h, d.segs[s].c);
			fputs(im ? "\n" : "-\n", out);
			segs += d.n_segs, tokens += t, images += im;
		}
		mm_shard_close(r);
	}
	mm_doc_free(&d);
	if (!rc)
		fprintf(out, "%llu documents, %llu segments, %llu text tokens, %llu images\n", (unsigned long long)k,
			(unsigned long long)segs, (unsigned long long)tokens, (unsigned long long)images);
	return rc;
}

// ---------------------------------------------------------------- extraction

typedef struct ex {
	const char *dir;
	const mm_tokenizer *tok;
	mm_afile manifest;
	uint8_t *text;
	size_t text_cap;
	uint8_t *px;
	size_t px_cap;
	mm_extract_stats *st;
} ex;

static int valid_utf8(const uint8_t *s, size_t n)
{
	// Let jansson judge: whatever it accepts as a string, it writes and reads back unchanged.
	json_t *j = json_stringn((const char *)s, n);
	json_decref(j);
	return j != NULL;
}

// Written under a temporary name and renamed, so no half-written file appears under its final
// name; not synced to disk one by one (an extraction can be rerun, and thousands of fsyncs
// would dominate its time).
static int write_bytes(const char *path, const void *data, size_t n)
{
	size_t pl = strlen(path);
	char *tmp = malloc(pl + 5);
	if (!tmp)
		return mm_fail(MM_ENOMEM, "out of memory");
	memcpy(tmp, path, pl);
	memcpy(tmp + pl, ".tmp", 5);
	FILE *f = fopen(tmp, "wb");
	int rc = f ? 0 : mm_fail(MM_EIO, "%s: cannot create: %s", tmp, strerror(errno));
	if (!rc && n && fwrite(data, 1, n, f) != n)
		rc = mm_fail(MM_EIO, "%s: write failed: %s", tmp, strerror(errno));
	if (f && fclose(f) != 0 && !rc)
		rc = mm_fail(MM_EIO, "%s: write failed: %s", tmp, strerror(errno));
	if (!rc && rename(tmp, path) != 0)
		rc = mm_fail(MM_EIO, "%s: cannot rename into place: %s", path, strerror(errno));
	if (rc && f)
		unlink(tmp);
	free(tmp);
	return rc;
}

static int ex_text(ex *e, const mm_segment *s, const char *name, const char *path, json_t *texts)
{
	size_t n;
	int rc = mm_tok_decode(e->tok, s->tokens, s->n_tokens, &e->text, &e->text_cap, &n);
	if (!rc)
		rc = write_bytes(path, e->text, n);
	if (rc)
		return rc;
	json_t *v = valid_utf8(e->text, n) ? json_stringn((const char *)e->text, n) : json_pack("{ss}", "file", name);
	e->st->texts++;
	return v && json_array_append_new(texts, v) == 0 ? 0 : mm_fail(MM_ENOMEM, "out of memory");
}

static int ex_image(ex *e, const mm_segment *s, const char *name, const char *path, json_t *images)
{
	size_t n = (size_t)s->h * s->w * s->c;
	if (n > e->px_cap) {
		uint8_t *p = realloc(e->px, n);
		if (!p)
			return mm_fail(MM_ENOMEM, "out of memory");
		e->px = p, e->px_cap = n;
	}
	mm_image_from_patches(s->pixels, s->h, s->w, s->c, s->p, e->px);
	mm_image img = {s->w, s->h, s->c, e->px};
	int rc = mm_image_save_png(path, &img);
	if (rc)
		return rc;
	e->st->images++;
	json_t *v = json_string(name);
	return v && json_array_append_new(images, v) == 0 ? 0 : mm_fail(MM_ENOMEM, "out of memory");
}

// One document: its files, then its manifest line.
static int ex_doc(ex *e, const mm_doc *d, uint64_t k)
{
	json_t *texts = json_array(), *images = json_array();
	int rc = texts && images ? 0 : mm_fail(MM_ENOMEM, "out of memory");
	size_t dl = strlen(e->dir);
	char *path = malloc(dl + 64);
	if (!path)
		rc = mm_fail(MM_ENOMEM, "out of memory");
	for (uint32_t i = 0; i < d->n_segs && !rc; i++) {
		const mm_segment *s = &d->segs[i];
		int txt = s->type == MM_SEG_TEXT;
		snprintf(path, dl + 64, "%s/%08llu-%u.%s", e->dir, (unsigned long long)k, i, txt ? "txt" : "png");
		const char *name = path + dl + 1;
		rc = txt ? ex_text(e, s, name, path, texts) : ex_image(e, s, name, path, images);
		if (!rc)
			rc = json_array_append_new(txt ? images : texts, json_null()) ? mm_fail(MM_ENOMEM, "out of memory") : 0;
	}
	free(path);
	char *line = NULL;
	if (!rc) {
		json_t *o = json_pack("{sOsO}", "texts", texts, "images", images);
		line = o ? json_dumps(o, JSON_PRESERVE_ORDER) : NULL;
		json_decref(o);
		if (!line)
			rc = mm_fail(MM_ENOMEM, "out of memory");
	}
	if (!rc && !(rc = mm_afile_write(&e->manifest, line, strlen(line))))
		rc = mm_afile_write(&e->manifest, "\n", 1);
	free(line);
	json_decref(texts);
	json_decref(images);
	return rc;
}

static int ex_shard(ex *e, const char *path, uint64_t *k, const char *first_path)
{
	mm_shard_reader *r;
	int rc = mm_shard_open(&r, path);
	if (rc)
		return rc;
	const mm_shard_info *info = mm_shard_get_info(r);
	if (first_path)
		rc = mm_shard_info_compatible(&e->st->info, first_path, info, path);
	else
		e->st->info = *info;
	if (!rc && info->tokenizer_hash != mm_tok_hash(e->tok))
		rc = mm_fail(MM_EMISMATCH,
			     "%s: made with the tokenizer %016llx, not the one given (%016llx); pass the tokenizer it was "
			     "made with (--tokenizer FILE)",
			     path, (unsigned long long)info->tokenizer_hash, (unsigned long long)mm_tok_hash(e->tok));
	mm_doc d;
	mm_doc_init(&d);
	for (uint64_t j = 0; j < info->n_docs && !rc; j++, (*k)++) {
		if (!(rc = mm_shard_read(r, j, &d)))
			rc = ex_doc(e, &d, *k);
		e->st->docs += !rc;
	}
	mm_doc_free(&d);
	mm_shard_close(r);
	return rc;
}

int mm_shards_extract(const char *dir, char *const *paths, int n, const mm_tokenizer *tok, mm_extract_stats *st)
{
	memset(st, 0, sizeof *st);
	if (mkdir(dir, 0777) != 0 && errno != EEXIST)
		return mm_fail(MM_EIO, "%s: cannot create: %s", dir, strerror(errno));
	struct stat sb;
	if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
		return mm_fail(MM_EIO, "%s: not a directory", dir);
	ex e = {.dir = dir, .tok = tok, .st = st};
	size_t dl = strlen(dir);
	char *mpath = malloc(dl + 20);
	if (!mpath)
		return mm_fail(MM_ENOMEM, "out of memory");
	snprintf(mpath, dl + 20, "%s/manifest.jsonl", dir);
	int rc = mm_afile_open(&e.manifest, mpath);
	free(mpath);
	if (rc)
		return rc;
	uint64_t k = 0;
	for (int i = 0; i < n && !rc; i++)
		rc = ex_shard(&e, paths[i], &k, i ? paths[0] : NULL);
	if (rc)
		mm_afile_abort(&e.manifest);
	else
		rc = mm_afile_commit(&e.manifest);
	free(e.text);
	free(e.px);
	return rc;
}
