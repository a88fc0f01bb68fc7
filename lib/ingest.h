// Ingest: turning input files (JSONL manifests, image folders, IDX files, plain text) into
// shards of tokenized documents, and shards back into files. The engine of mm-tokenize
// (man/mm-tokenize.1 describes the input formats in the user's terms).
#ifndef MM_INGEST_H
#define MM_INGEST_H

#include <stdint.h>
#include <stdio.h>

#include "image.h"
#include "shard.h"
#include "tokenizer.h"

// How an image file becomes the pixels of a shard segment.
typedef struct mm_prep {
	uint32_t channels;     // 1 or 3
	uint32_t w, h;         // output size in pixels
	uint32_t patch;        // divides w and h
	enum mm_fit fit;       // how the aspect ratio is reconciled
	uint8_t background[3]; // alpha is composited on it; pad fills with it
	uint64_t max_pixels;   // larger source images are refused before decoding
} mm_prep;

// 0 if the geometry is usable, else MM_EINVAL with a message.
int mm_prep_check(const mm_prep *o);
// Bytes of one prepared image: w * h * channels.
size_t mm_prep_bytes(const mm_prep *o);
// Converts a decoded image (any of 1..4 channels) to o's channels and size, in patch order
// (doc.h). out holds mm_prep_bytes(o) bytes.
int mm_prep_image(const mm_image *img, const mm_prep *o, uint8_t *out);
// Loads a PNG or JPEG file and prepares it as above; adds the file's size to *bytes_read
// (NULL: not wanted). Errors name the path.
int mm_prep_image_file(const char *path, const mm_prep *o, uint8_t *out, uint64_t *bytes_read);
// The same for the file name under the open directory dirfd, path naming it in messages.
int mm_prep_image_file_at(int dirfd, const char *name, const char *path, const mm_prep *o, uint8_t *out,
			  uint64_t *bytes_read);

enum mm_format {
	MM_FMT_AUTO = 0, // from the file: directory, *.jsonl, IDX magic, PNG/JPEG magic, else text
	MM_FMT_JSONL,
	MM_FMT_DIR,
	MM_FMT_IDX,
	MM_FMT_TEXT,
	MM_FMT_IMAGE, // one image file (with its sidecar caption, as in a folder)
	MM_FMT_WDS,   // WebDataset tar shards: key.png|jpg|jpeg with key.txt or key.json
};

typedef struct mm_ingest_stats {
	uint64_t docs;          // documents written (train + val)
	uint64_t val_docs;      // of which went to the validation shards
	uint64_t text_tokens;
	uint64_t images;
	uint64_t bytes_in;      // input bytes read (gzip-compressed IDX counted decompressed)
	uint64_t bytes_out;     // shard bytes written
	uint64_t skipped;       // bad documents skipped (skip_bad)
	uint64_t invalid_utf8;  // text segments that are not valid UTF-8 (kept as bytes)
	uint32_t shards, val_shards;
	double seconds;
	double fraction;        // share of the input done, in [0, 1]; -1 when the total is unknown
} mm_ingest_stats;

typedef struct mm_ingest_opts {
	int format;                   // enum mm_format, applied to every input
	const char *labels;           // IDX: file of class names, one per line (or NULL)
	const char *caption_template; // IDX: "{label}" is replaced by the class name (NULL: "{label}")
	const char *doc_separator;    // text: a line equal to it ends a document (NULL: blank lines)
	const char *text_key;         // JSONL, metadata, WebDataset .json: the caption field (NULL: "text")
	const char *split;            // folders: read only the split subfolder of this name (NULL: all)
	void (*warn)(void *ctx, const char *msg); // a note about the input, e.g. text left unread
	void *warn_ctx;
	mm_prep prep;
	// Output (mm_ingest_run only).
	const char *prefix;   // PREFIX-00000.mms ..., PREFIX-val-00000.mms ...
	uint64_t shard_size;  // a shard is closed once it reaches this many bytes
	double val_fraction;  // share of documents sent to the validation shards
	uint64_t seed;        // chooses which documents are validation documents
	int threads;          // images decoded and text encoded in parallel; output identical for all
	int skip_bad;         // count and skip bad documents instead of failing
	int zstd_level;       // of the shards' blocks (1; level 3 made the 60,000 Fashion-MNIST images
			      // 0.4% smaller, 27,239,047 bytes against 27,357,665, and took longer)
	// Called after every batch from the calling thread (NULL: none).
	void (*progress)(void *ctx, const mm_ingest_stats *st);
	void *progress_ctx;
} mm_ingest_opts;

// Defaults: everything as documented in mm-tokenize(1).
void mm_ingest_opts_default(mm_ingest_opts *o);

// Reads the text of every input ("-" is standard input: see mm_ingest_run) and learns a
// byte-level BPE tokenizer of vocab_size ids. Images are not decoded. Standard input is kept
// (in a temporary file) for the mm_ingest_run that follows. skipped counts bad
// documents skipped (may be NULL).
int mm_ingest_train(const mm_ingest_opts *o, char *const *inputs, int n, uint32_t vocab_size, mm_tokenizer **out,
		    uint64_t *skipped);

// Tokenizes the inputs into shards. Inputs are read in order; an IDX image file followed by an
// IDX label file forms one input. "-" reads standard input: its content when the format is
// jsonl or text, otherwise a list of input paths, one per line. All or nothing: on failure no
// shard of this run is left behind. stats may be NULL.
int mm_ingest_run(const mm_ingest_opts *o, const mm_tokenizer *tok, char *const *inputs, int n,
		  mm_ingest_stats *stats);

// Writes one line per document of the shards to out (index, segments, text tokens, image
// sizes), then a totals line whose first field is the number of documents.
int mm_shards_list(char *const *paths, int n, FILE *out);

typedef struct mm_extract_stats {
	uint64_t docs, texts, images;
	mm_shard_info info; // of the shards, to tell the user the geometry to re-tokenize with
} mm_extract_stats;

// Writes every document of the shards into dir (created if missing): images as PNG, texts as
// files, and dir/manifest.jsonl, one line per document in the {"texts": [...], "images": [...]}
// form. Tokenizing the manifest with the same tokenizer and geometry gives the same shards.
// tok must be the tokenizer the shards were made with (its hash is checked).
int mm_shards_extract(const char *dir, char *const *paths, int n, const mm_tokenizer *tok, mm_extract_stats *st);

#endif
