// Shared by the fuzz targets of the ingest's input readers (fuzz_jsonl.c, fuzz_text.c,
// fuzz_idx.c, fuzz_wds.c): reads every document of a source and checks what comes back.
#ifndef MM_FUZZ_SOURCE_H
#define MM_FUZZ_SOURCE_H

#include "fuzz.h"

#include "doc.h"
#include "ingest.h"
#include "source_readers_priv.h"

// A refusal names the file it is about: path, or the label file.
static void fuzz_source_refused(const char *path, const char *labels)
{
	fuzz_refused(labels && strstr(mm_errmsg(), labels) ? labels : path);
}

// Opens path as format (IDX: with labels, or NULL) and reads up to 10,000 documents.
static void fuzz_source(int format, const char *path, const char *labels, const mm_source_opts *o)
{
	mm_source *s;
	if (mm_source_open(&s, format, path, labels, o) != 0) {
		fuzz_source_refused(path, labels);
		return;
	}
	mm_rawdoc d = {0};
	int rc = 0;
	for (int k = 0; k < 10000 && (rc = mm_source_next(s, &d)) == 1; k++) {
		if (d.err) {
			// A bad document is reported in input order, with a message that names the file.
			if (d.err > 0 || !d.msg || (!strstr(d.msg, path) && !(labels && strstr(d.msg, labels))))
				abort();
			continue;
		}
		for (uint32_t i = 0; i < d.n_segs; i++) {
			const mm_rawseg *g = &d.segs[i];
			if (g->type == MM_SEG_TEXT) {
				if (g->len && !g->text)
					abort();
			} else if (g->type != MM_SEG_IMAGE || (!g->path && !g->px) || (g->px && !g->w != !g->h)) {
				// an image: a file, gray pixels (w x h), or encoded bytes in memory (0 x 0)
				abort();
			}
		}
	}
	if (rc < 0)
		fuzz_source_refused(path, labels);
	double f = mm_source_progress(s);
	if (!(f >= 0 && f <= 1))
		abort();
	mm_rawdoc_free(&d);
	mm_source_close(s);
}

#endif
