// The source object and the helpers its readers share (internal to source*.c).
#ifndef MM_SOURCE_PRIV_H
#define MM_SOURCE_PRIV_H

#include <dirent.h>
#include <zlib.h>

#include "source_readers_priv.h"

typedef struct name_chunk name_chunk;

struct mm_source {
	int format;
	char *name; // for messages: the path, or "stdin"
	mm_source_opts o;
	uint64_t bytes, size; // bytes read; input size (0 = unknown)
	// jsonl, text, wds
	FILE *f;
	int own_f;
	mm_zin *z;   // the decompressing layer under f, or NULL
	mm_wds *wds; // wds: the tar reader over f
	int warned;  // jsonl: the unread text keys were named once
	mm_csv *csv; // jsonl read from a metadata.csv instead
	char *line;
	size_t line_cap;
	uint64_t lineno;
	char *dir; // jsonl: prefix of relative paths
	// dir, image
	DIR *folder;        // dir: the folder, open until the source closes
	size_t at;          // dir: where the names start in their paths
	name_chunk *chunks; // where names and txt point
	char **names;
	size_t n_names, next;
	char **txt; // dir: the .txt files of the folder, sorted (a caption is looked up, not probed)
	size_t n_txt;
	int listed; // dir: txt is the whole list of captions
	// dir without images of its own: its subfolders (splits, classes), read one after another
	char **subdirs;
	size_t n_sub, next_sub;
	mm_source *sub, **done; // the one being read; those read (their paths are lent)
	char *class_name;       // a class folder: the caption of an image without one
	int depth;
	// idx
	gzFile gi, gl;
	char *labels_name;
	uint64_t count, item;
	uint32_t rows, cols;
};

int mm_src_text_copy(mm_rawdoc *d, const char *text, size_t n);
// An image path: dir (a prefix ending in '/', or "") then name.
int mm_src_image_path(mm_rawdoc *d, const char *dir, const char *name);
// Marks d bad with the current library message (the caller fails or skips it in order).
int mm_src_bad(mm_rawdoc *d, int rc);
int mm_src_where_line(const mm_source *s, mm_rawdoc *d);
// "a/b/c.jsonl" -> "a/b/"; "c.jsonl" -> "".
char *mm_src_dir_prefix(const char *path);
// dir/name, one slash between.
char *mm_src_path_join(const char *dir, const char *name);
// Opens path ("-": standard input) as s->f, decompressing gzip and zstd.
int mm_src_stream(mm_source *s, const char *path);

// A folder's metadata.jsonl or metadata.csv, if it has one (*found), opened as s.
int mm_src_open_metadata(mm_source *s, const char *path, int *found);
int mm_src_next_csv(mm_source *s, mm_rawdoc *d);
// The next document of a folder read through its subfolders.
int mm_src_next_sub(mm_source *s, mm_rawdoc *d);

#endif
