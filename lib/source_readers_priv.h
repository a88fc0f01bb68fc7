// Input readers of the ingest (internal to libmm): each input format yields raw documents
// (text bytes and image references) in a fixed order; ingest.c tokenizes and prepares them.
#ifndef MM_SOURCE_READERS_PRIV_H
#define MM_SOURCE_READERS_PRIV_H

#include <stddef.h>
#include <stdint.h>

// Longest line of a JSONL manifest or a text input, and longest text document, in bytes
// (man/mm-tokenize.1, LIMITS): a longer one is refused before more is allocated.
#define MM_SOURCE_LINE_MAX (64u << 20)
#define MM_SOURCE_DOC_MAX (256u << 20)

// One segment before tokenizing: text bytes, an image file, or an in-memory gray image (IDX).
typedef struct mm_rawseg {
	uint32_t type; // MM_SEG_TEXT or MM_SEG_IMAGE
	uint8_t *text;
	size_t len;
	char *path;   // image file, or NULL when px holds the pixels
	uint8_t *px;  // h*w gray pixels
	uint32_t w, h;
	int lent;     // path belongs to the source (a folder), not to the document; then
	int dirfd;    // the folder is open as dirfd (AT_FDCWD for a single image), and
	size_t name;  // path + name is the file's name in it (0 when not lent: the whole path)
} mm_rawseg;

// A document as the source read it. A bad document (invalid JSON, say) comes back with err
// set to a negative MM_E* code and msg to its message, so that the caller can fail or skip it
// in input order.
typedef struct mm_rawdoc {
	uint32_t n_segs, cap_segs;
	mm_rawseg *segs;
	int err;
	char *msg;
	char *where; // "file:line" to put before image errors, or NULL
} mm_rawdoc;

void mm_rawdoc_clear(mm_rawdoc *d);
void mm_rawdoc_free(mm_rawdoc *d);

typedef struct mm_source_opts {
	const char *doc_separator;
	char **label_names; // IDX class names, or NULL
	uint32_t n_labels;
	const char *caption_template;
	uint64_t max_pixels;
} mm_source_opts;

typedef struct mm_source mm_source;

// Detects the format of path (a directory, *.jsonl, IDX magic, PNG/JPEG magic, else text).
// For IDX it also says whether the file holds images (*idx_kind 3) or labels (1).
int mm_source_detect(const char *path, int forced, int *format, int *idx_kind);

// Opens an input. For IDX, path is the image file and labels the label file (or NULL).
// path "-" is standard input (jsonl or text content).
int mm_source_open(mm_source **s, int format, const char *path, const char *labels, const mm_source_opts *o);
// 1: a document in d (cleared first); 0: end of input; < 0: the input itself is unusable.
// The image paths of a folder's documents are lent by the source (mm_rawseg.lent): close it
// only once its documents are done with.
int mm_source_next(mm_source *s, mm_rawdoc *d);
// Share of the input read so far, in [0, 1].
double mm_source_progress(const mm_source *s);
// Bytes read from the input files themselves (not the images they name).
uint64_t mm_source_bytes(const mm_source *s);
void mm_source_close(mm_source *s);

// Size of an input on disk, to weigh progress (a directory: the sum of its files); 0 if unknown.
uint64_t mm_source_weight(const char *path, int format);

// Standard input: the list of paths it holds, read once and kept (the caller must not free
// them), and its content, copied to a temporary file when it must be read twice.
int mm_stdin_paths(char ***paths, int *n);
int mm_stdin_spool(void);

#endif
