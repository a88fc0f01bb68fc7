// Which format an input is in: by its content (magic bytes), the name only choosing between
// formats that content cannot tell apart (a JSONL manifest is also text). Anything else is
// refused with one line naming the file and the formats mm reads.
#include "source_readers_priv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <zlib.h>

#include "err.h"
#include "ingest.h"

// Bytes read to recognise a file: enough for a tar header and for a fair UTF-8 check.
#define SNIFF 4096

#define READS                                                                                          \
	"mm reads JSONL manifests, image folders, PNG, JPEG, IDX, WebDataset tar, plain UTF-8 text, and " \
	"JSONL, text or tar compressed with gzip or zstd; --format text takes any bytes as text"

static int has_suffix(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);
	return a >= b && strcasecmp(s + a - b, suf) == 0;
}

static int idx_magic(const char *path, int *kind)
{
	gzFile g = gzopen(path, "rb");
	if (!g)
		return mm_fail(MM_EIO, "%s: cannot open: %s", path, strerror(errno ? errno : ENOMEM));
	uint8_t m[4];
	int got = gzread(g, m, 4);
	gzclose(g);
	if (got != 4)
		return mm_fail(MM_EFORMAT, "%s: not an IDX file (shorter than its 4-byte magic)", path);
	uint32_t magic = (uint32_t)m[0] << 24 | (uint32_t)m[1] << 16 | (uint32_t)m[2] << 8 | m[3];
	if (magic != 0x803 && magic != 0x801)
		return mm_fail(MM_EFORMAT,
			       "%s: not an IDX file of bytes (magic 0x%08x; expected 0x00000803 for images or "
			       "0x00000801 for labels)",
			       path, magic);
	*kind = (int)(magic & 0xff);
	return 0;
}

// Whether p[0..n) is UTF-8; a sequence cut by the end of the sniffed bytes (full: more follow)
// is given the benefit of the doubt. NUL bytes are not text.
static int utf8_prefix(const uint8_t *p, size_t n, int full)
{
	size_t i = 0;
	while (i < n) {
		uint8_t c = p[i];
		if (c < 0x80) {
			if (!c)
				return 0;
			i++;
			continue;
		}
		size_t k = c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xf0 && c <= 0xf4 ? 3 : 0;
		if (!k)
			return 0;
		for (size_t j = 1; j <= k; j++) {
			if (i + j >= n)
				return full;
			if ((p[i + j] & 0xc0) != 0x80)
				return 0;
		}
		if ((c == 0xe0 && p[i + 1] < 0xa0) || (c == 0xed && p[i + 1] > 0x9f) || (c == 0xf0 && p[i + 1] < 0x90) ||
		    (c == 0xf4 && p[i + 1] > 0x8f))
			return 0;
		i += k + 1;
	}
	return 1;
}

// Formats that the content names but mm does not read.
static const char *foreign(const uint8_t *m, size_t n)
{
	if (n >= 4 && memcmp(m, "PAR1", 4) == 0)
		return "Parquet";
	if (n >= 12 && memcmp(m, "RIFF", 4) == 0 && memcmp(m + 8, "WEBP", 4) == 0)
		return "WebP";
	if (n >= 6 && (memcmp(m, "GIF87a", 6) == 0 || memcmp(m, "GIF89a", 6) == 0))
		return "GIF";
	if (n >= 4 && memcmp(m, "PK\3\4", 4) == 0)
		return "zip";
	if (n >= 5 && memcmp(m, "%PDF-", 5) == 0)
		return "PDF";
	if (n >= 4 && (memcmp(m, "II*\0", 4) == 0 || memcmp(m, "MM\0*", 4) == 0))
		return "TIFF";
	if (n >= 2 && m[0] == 'B' && m[1] == 'M' && n >= 14 && !m[6] && !m[7] && !m[8] && !m[9])
		return "BMP";
	if (n >= 3 && memcmp(m, "BZh", 3) == 0)
		return "bzip2";
	if (n >= 6 && memcmp(m, "\xfd" "7zXZ\0", 6) == 0)
		return "xz";
	if (n >= 12 && memcmp(m + 4, "ftyp", 4) == 0)
		return "an ISO media file (AVIF, HEIC or MP4)";
	return NULL;
}

// Names that promise a format the content must then hold.
static const char *const promised[] = {".png", ".jpg", ".jpeg", ".tar", ".gz", ".tgz", ".zst", ".parquet",
				       ".webp", ".csv", ".tsv", ".idx", "-ubyte", NULL};

static int refuse(const char *path, const char *what)
{
	return mm_fail(MM_EFORMAT, "%s: %s; %s", path, what, READS);
}

int mm_source_detect(const char *path, int forced, int *format, int *idx_kind)
{
	*idx_kind = 0;
	struct stat st;
	if (stat(path, &st) != 0)
		return mm_fail(MM_EIO, "%s: cannot open: %s", path, strerror(errno));
	int isdir = S_ISDIR(st.st_mode);
	if (forced == MM_FMT_DIR && !isdir)
		return mm_fail(MM_EINVAL, "%s: not a directory", path);
	if (forced != MM_FMT_AUTO && forced != MM_FMT_DIR && isdir)
		return mm_fail(MM_EINVAL, "%s: is a directory", path);
	*format = forced;
	if (forced == MM_FMT_IDX)
		return idx_magic(path, idx_kind);
	if (forced != MM_FMT_AUTO)
		return 0;
	if (isdir) {
		*format = MM_FMT_DIR;
		return 0;
	}
	// The raw bytes first: images and IDX as before (gzread passes plain files through).
	uint8_t m[4] = {0};
	gzFile g = gzopen(path, "rb");
	if (!g)
		return mm_fail(MM_EIO, "%s: cannot open: %s", path, strerror(errno ? errno : ENOMEM));
	int got = gzread(g, m, 4);
	gzclose(g);
	if (got == 4 && m[0] == 0 && m[1] == 0 && m[2] == 8 && (m[3] == 1 || m[3] == 3)) {
		*format = MM_FMT_IDX;
		*idx_kind = m[3];
		return 0;
	}
	if (has_suffix(path, ".jsonl")) { // read as before; its lines say what is wrong
		*format = MM_FMT_JSONL;
		return 0;
	}
	if (got >= 3 && ((m[0] == 0x89 && m[1] == 'P' && m[2] == 'N') || (m[0] == 0xff && m[1] == 0xd8 && m[2] == 0xff))) {
		*format = MM_FMT_IMAGE; // the 4 bytes already read say so: nothing more per image
		return 0;
	}
	uint8_t buf[SNIFF + 1];
	size_t n;
	int z;
	int rc = mm_zin_peek(path, buf, SNIFF, &n, &z);
	if (rc)
		return rc;
	FILE *raw = fopen(path, "rb"); // the raw magic, to name a foreign format
	uint8_t r[16] = {0};
	size_t rn = raw ? fread(r, 1, sizeof r, raw) : 0;
	if (raw)
		fclose(raw);
	if (n >= 512 && mm_tar_header_ok(buf)) {
		*format = MM_FMT_WDS;
		return 0;
	}
	const char *f = foreign(z ? buf : r, z ? n : rn);
	if (f) {
		char what[160];
		snprintf(what, sizeof what, "%s%s data, which mm does not read", z ? "compressed " : "", f);
		return refuse(path, what);
	}
	// gzip-compressed IDX that is not IDX, or an IDX name: the IDX message says what is wrong.
	if (!z && (has_suffix(path, "-ubyte") || strstr(path, ".idx")))
		return idx_magic(path, idx_kind);
	const char *name = path;
	char inner[64] = "";
	if (z) { // x.jsonl.gz: the name inside the compression
		size_t len = strlen(path);
		const char *dot = strrchr(path, '.');
		if (dot && dot > path && (size_t)(dot - path) < len) {
			size_t k = (size_t)(dot - path);
			const char *d2 = NULL;
			for (size_t i = k; i-- > 0 && path[i] != '/';)
				if (path[i] == '.') {
					d2 = path + i;
					break;
				}
			if (d2 && (size_t)(dot - d2) < sizeof inner) {
				memcpy(inner, d2, (size_t)(dot - d2));
				inner[dot - d2] = 0;
				name = inner;
			}
		}
		if (has_suffix(name, ".jsonl") || has_suffix(name, ".json")) {
			*format = MM_FMT_JSONL;
			return 0;
		}
	}
	if (!utf8_prefix(buf, n, n == SNIFF))
		return refuse(path, z ? "compressed data that is neither a tar archive nor UTF-8 text"
				      : "not a format mm recognises (nor UTF-8 text)");
	for (int i = 0; promised[i]; i++)
		if (has_suffix(name, promised[i]) && !(z && i >= 4 && i <= 6)) {
			char what[160];
			snprintf(what, sizeof what, "named *%s but holds text, not %s", promised[i],
				 !strcmp(promised[i], ".csv") || !strcmp(promised[i], ".tsv")
					 ? "a format read alone (CSV is read as an image folder's metadata.csv)"
					 : "that format");
			return refuse(path, what);
		}
	*format = MM_FMT_TEXT;
	return 0;
}
