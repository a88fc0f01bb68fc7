// Input readers of the ingest (internal to libmm): each input format yields raw documents
// (text bytes and image references) in a fixed order; ingest.c tokenizes and prepares them.
#ifndef MM_SOURCE_READERS_PRIV_H
#define MM_SOURCE_READERS_PRIV_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

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
	uint32_t w, h; // 0 x 0 with px set: px holds len bytes of an encoded PNG or JPEG
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
	const char *text_key; // JSONL, WebDataset .json: the field holding the text (NULL: "text")
	void (*warn)(void *ctx, const char *msg); // NULL: no warnings
	void *warn_ctx;
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

// Appends a segment of the given type to d (NULL when out of memory).
mm_rawseg *mm_rawdoc_push(mm_rawdoc *d, uint32_t type);

// ---------------------------------------------------------------- compressed streams

enum { MM_ZIN_PLAIN, MM_ZIN_GZIP, MM_ZIN_ZSTD };
typedef struct mm_zin mm_zin;
// The compression that the magic bytes m[0..n) start (gzip 1f 8b, zstd 28 b5 2f fd).
int mm_zin_magic(const uint8_t *m, size_t n);
// A stream of raw's content, decompressed when it starts with a gzip or zstd magic; *z is the
// layer (NULL when raw is plain, seekable and always is 0: then *out is raw itself). Closing
// *out closes raw when own.
int mm_zin_open(FILE *raw, int own, int always, FILE **out, mm_zin **z);
// Bytes read from the underlying stream; the layer's error after a failed read, or NULL.
uint64_t mm_zin_raw_bytes(const mm_zin *z);
const char *mm_zin_error(const mm_zin *z);
// Up to n bytes of path's content, decompressed, and its compression.
int mm_zin_peek(const char *path, uint8_t *buf, size_t n, size_t *got, int *kind);

// ---------------------------------------------------------------- WebDataset tar

typedef struct mm_wds mm_wds;
int mm_wds_open(mm_wds **w, FILE *f, const char *name, const mm_source_opts *o);
// 1: a sample in d; 0: end; < 0: the stream is unusable. *bytes grows by the bytes read.
int mm_wds_next(mm_wds *w, mm_rawdoc *d, uint64_t *bytes);
void mm_wds_close(mm_wds *w);
// Whether a 512-byte block is a tar header (ustar magic or a valid checksum).
int mm_tar_header_ok(const uint8_t *h);

// ---------------------------------------------------------------- CSV (an ImageFolder's metadata.csv)

#define MM_CSV_FIELDS_MAX 256
typedef struct mm_csv {
	char *buf;
	size_t cap, n; // the record: n fields, NUL-terminated in buf
	char *field[MM_CSV_FIELDS_MAX];
	size_t len[MM_CSV_FIELDS_MAX];
	uint64_t lineno; // lines read (a quoted field may span several)
	char *header;    // the header row's names, copied, and its size
	size_t n_header;
	int file_col, text_col; // -1: none
} mm_csv;
// 1: a record in c; 0: end of input; < 0: an error naming name and the line.
int mm_csv_record(mm_csv *c, FILE *f, const char *name, uint64_t *bytes);
void mm_csv_free(mm_csv *c);

// Warns once about the string fields of the JSON object j that hold text but are not read.
void mm_json_unread_keys(void *j, const char *name, const char *const *read, int n_read,
			 const mm_source_opts *o, int *warned);

#endif
