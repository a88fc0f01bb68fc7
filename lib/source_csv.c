// CSV records as RFC 4180 writes them: fields separated by commas, records by CRLF or LF; a
// field in double quotes may hold commas, line breaks and "" for a quote. A record is bounded
// by MM_SOURCE_LINE_MAX bytes, its fields by MM_CSV_FIELDS_MAX.
#include "source_readers_priv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

static int grow(mm_csv *c, size_t need)
{
	if (need <= c->cap)
		return 0;
	if (need > MM_SOURCE_LINE_MAX)
		return 1;
	size_t nc = c->cap ? c->cap : 4096;
	while (nc < need)
		nc *= 2;
	if (nc > MM_SOURCE_LINE_MAX)
		nc = MM_SOURCE_LINE_MAX;
	char *b = realloc(c->buf, nc);
	if (!b)
		return -1;
	c->buf = b, c->cap = nc;
	return 0;
}

int mm_csv_record(mm_csv *c, FILE *f, const char *name, uint64_t *bytes)
{
	size_t n = 0, starts[MM_CSV_FIELDS_MAX];
	c->n = 0;
	int quoted = 0, after_quote = 0, any = 0, ch;
	starts[0] = 0;
	uint64_t line0 = c->lineno + 1;
	for (;;) {
		ch = getc_unlocked(f);
		if (ch == EOF) {
			if (ferror(f))
				return mm_fail(MM_EIO, "%s: read error: %s", name, strerror(errno));
			if (quoted)
				return mm_fail(MM_EFORMAT, "%s:%llu: a quoted field is not closed", name,
					       (unsigned long long)line0);
			if (!any)
				return 0;
			break;
		}
		(*bytes)++;
		any = 1;
		if (quoted) {
			if (ch == '"') {
				int next = getc_unlocked(f);
				if (next == '"')
					(*bytes)++;
				else {
					if (next != EOF)
						ungetc(next, f);
					quoted = 0, after_quote = 1;
					continue;
				}
			} else if (ch == '\n')
				c->lineno++;
		} else if (ch == '"' && n == starts[c->n] && !after_quote) {
			quoted = 1;
			continue;
		} else if (ch == ',' || ch == '\n') {
			if (ch == '\n' && n > starts[c->n] && c->buf[n - 1] == '\r' && !after_quote)
				n--;
			int r = grow(c, n + 1);
			if (r)
				return r < 0 ? mm_fail(MM_ENOMEM, "out of memory")
					     : mm_fail(MM_EFORMAT, "%s:%llu: record longer than %u bytes", name,
						       (unsigned long long)line0, MM_SOURCE_LINE_MAX);
			c->buf[n++] = 0;
			if (++c->n == MM_CSV_FIELDS_MAX)
				return mm_fail(MM_EFORMAT, "%s:%llu: more than %d fields", name, (unsigned long long)line0,
					       MM_CSV_FIELDS_MAX);
			starts[c->n] = n;
			after_quote = 0;
			if (ch == '\n') {
				c->lineno++;
				goto done;
			}
			continue;
		} else if (after_quote) {
			if (ch == '\r')
				continue;
			return mm_fail(MM_EFORMAT, "%s:%llu: text after a closing quote", name, (unsigned long long)line0);
		}
		int r = grow(c, n + 2);
		if (r)
			return r < 0 ? mm_fail(MM_ENOMEM, "out of memory")
				     : mm_fail(MM_EFORMAT, "%s:%llu: record longer than %u bytes", name,
					       (unsigned long long)line0, MM_SOURCE_LINE_MAX);
		c->buf[n++] = (char)ch;
	}
	// the last record without a final newline
	if (grow(c, n + 1))
		return mm_fail(MM_ENOMEM, "out of memory");
	c->buf[n++] = 0;
	c->n++;
	c->lineno++;
done:
	for (size_t i = 0; i < c->n; i++) {
		c->field[i] = c->buf + starts[i];
		c->len[i] = (i + 1 < c->n ? starts[i + 1] : n) - starts[i] - 1;
	}
	return 1;
}

void mm_csv_free(mm_csv *c)
{
	free(c->buf);
	free(c->header);
	memset(c, 0, sizeof *c);
}
