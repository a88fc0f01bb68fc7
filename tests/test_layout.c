// The fixed-layout records of the file formats (lib/layout.h): the tables the code walks against
// the field tables of the man pages, and the walks themselves.
//
// A man page marks a field table with the roff comment `.\" layout: NAME` just before its .TS.
// Its rows, after the `_` line, are Offset, Size, Type, Name, Meaning separated by tabs. The
// rows whose offset and size are plain numbers must be exactly the fields of the code's record
// NAME, in order (offset, size, type, name); any rows after them describe what follows the
// record (a frame, tokens, merges) and the first of those starts at the record's size. Every
// record of a format is marked exactly once in its page.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "layout.h"
#include "mm.h"

static const char *type_name(mm_field_type t)
{
	return t == MM_FIELD_BYTES ? "bytes" : t == MM_FIELD_U32 ? "u32" : t == MM_FIELD_U64 ? "u64" : "f64";
}

static int is_number(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

// Splits line (modified) at tabs into at most n cells; returns the count.
static int cells(char *line, char **cell, int n)
{
	int k = 0;
	cell[k++] = line;
	for (char *p = line; *p && k < n; p++)
		if (*p == '\t') {
			*p = 0;
			cell[k++] = p + 1;
		}
	return k;
}

static const mm_layout *find(const mm_layout *const *set, const char *name)
{
	for (int i = 0; set[i]; i++)
		if (strcmp(set[i]->name, name) == 0)
			return set[i];
	return NULL;
}

// Compares the marked tables of a man page (text, modified) with the records of set; returns
// the number of disagreements, each printed (quiet: none printed).
static int compare_page(char *text, const char *page, const mm_layout *const *set, int quiet)
{
	int bad = 0, seen[64] = {0}, n_set = 0;
	while (set[n_set])
		n_set++;
#define DISAGREE(...)                                                   \
	do {                                                            \
		bad++;                                                  \
		if (!quiet) {                                           \
			fprintf(stderr, "%s: ", page);                  \
			fprintf(stderr, __VA_ARGS__);                   \
			fputc('\n', stderr);                            \
		}                                                       \
	} while (0)
	const char *mark = ".\\\" layout: ";
	char *line = text, *next;
	const mm_layout *L = NULL; // the table being read
	int state = 0, row = 0;    // 0 outside, 1 before the `_` line, 2 in the rows
	for (; line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		if (strncmp(line, mark, strlen(mark)) == 0) {
			const char *name = line + strlen(mark);
			L = find(set, name);
			if (!L) {
				DISAGREE("table marked \"%s\": no such record in the code", name);
				continue;
			}
			for (int i = 0; i < n_set; i++)
				if (set[i] == L)
					seen[i]++;
			state = 1;
			row = 0;
			continue;
		}
		if (!L)
			continue;
		if (state == 1) {
			if (strcmp(line, "_") == 0)
				state = 2;
			else if (strcmp(line, ".TE") == 0)
				DISAGREE("%s: table has no `_` line before its rows", L->name);
			if (state == 2 || strcmp(line, ".TE") != 0)
				continue;
		}
		char *c[5];
		int fixed = 0, n = 0;
		if (strcmp(line, ".TE") != 0) {
			n = cells(line, c, 5);
			fixed = n >= 4 && is_number(c[0]) && is_number(c[1]);
		}
		if (fixed && row < L->n_fields) {
			const mm_field *f = &L->fields[row];
			char off[16], size[16];
			snprintf(off, sizeof off, "%u", f->offset);
			snprintf(size, sizeof size, "%u", f->size);
			if (strcmp(c[0], off) || strcmp(c[1], size) || strcmp(c[2], type_name(f->type)) ||
			    strcmp(c[3], f->name))
				DISAGREE("%s, row %d: %s %s %s %s in the page, %s %s %s %s in the code", L->name, row + 1,
					 c[0], c[1], c[2], c[3], off, size, type_name(f->type), f->name);
			row++;
			continue;
		}
		if (fixed) {
			DISAGREE("%s: field %s at offset %s is in the page, not in the code", L->name, c[3], c[0]);
			continue;
		}
		if (row < L->n_fields) {
			DISAGREE("%s: the code's field %s at offset %u is missing from the page", L->name,
				 L->fields[row].name, L->fields[row].offset);
			row = L->n_fields;
		}
		if (strcmp(line, ".TE") == 0) {
			L = NULL;
			state = 0;
			continue;
		}
		// The first row after the record's fields starts where the record ends.
		if (row == L->n_fields) {
			char size[16];
			snprintf(size, sizeof size, "%u", L->size);
			if (strcmp(c[0], size) != 0)
				DISAGREE("%s: the row after the fields starts at %s, the record ends at %s", L->name,
					 c[0], size);
			row++;
		}
	}
	if (L)
		DISAGREE("%s: table never ends (.TE)", L->name);
	for (int i = 0; i < n_set; i++)
		if (seen[i] != 1)
			DISAGREE("record %s: %d tables marked with its name, expected 1", set[i]->name, seen[i]);
#undef DISAGREE
	return bad;
}

static char *read_page(const char *name)
{
	const char *t = getenv("T");
	char path[4096];
	snprintf(path, sizeof path, "%s/../man/%s", t ? t : "tests", name);
	uint8_t *b = NULL;
	size_t n = 0;
	if (mm_read_file(path, 1 << 20, &b, &n) != 0) {
		fprintf(stderr, "%s\n", mm_errmsg());
		return NULL;
	}
	char *s = malloc(n + 1);
	memcpy(s, b, n);
	s[n] = 0;
	free(b);
	return s;
}

static void test_pages(void)
{
	struct {
		const char *page;
		const mm_layout *const *set;
	} pages[] = {{"mm-shard.5", mm_shard_layouts}, {"mm-tokenizer.5", mm_tok_layouts},
		     {"mm-checkpoint.5", mm_ckpt_layouts}};
	for (size_t i = 0; i < sizeof pages / sizeof *pages; i++) {
		char *text = read_page(pages[i].page);
		CHECK_MSG(text != NULL, "%s: cannot read", pages[i].page);
		if (!text)
			continue;
		char *copy = strdup(text);
		CHECK_EQ_INT(compare_page(copy, pages[i].page, pages[i].set, 0), 0);
		free(copy);

		// The comparison can fail: a changed offset, size, type or name in the first row of
		// the first marked table, a dropped row, an extra row, a lost mark, each is caught.
		char *mark = strstr(text, ".\\\" layout: ");
		char *row = mark ? strstr(mark, "\n_\n") : NULL;
		char *end = row ? strstr(row, "\n.TE\n") : NULL;
		CHECK(end != NULL);
		if (!end) {
			free(text);
			continue;
		}
		size_t at = (size_t)(row + 3 - text), at_end = (size_t)(end + 1 - text);
		const char *with[] = {"9", "7", "u16", "x"};
		for (int e = 0; e < 7; e++) {
			copy = malloc(strlen(text) + 64);
			strcpy(copy, text);
			char *r = copy + at;
			if (e < 4) { // replace the e-th cell of the row
				for (int k = 0; k < e; k++)
					r = strchr(r, '\t') + 1;
				size_t len = strcspn(r, "\t\n");
				memmove(r + strlen(with[e]), r + len, strlen(r + len) + 1);
				memcpy(r, with[e], strlen(with[e]));
			} else if (e == 4) { // drop the row
				char *nl = strchr(r, '\n') + 1;
				memmove(r, nl, strlen(nl) + 1);
			} else if (e == 5) { // lose the mark
				copy[mark - text] = 'X';
			} else { // a field in the page that the code lacks, after the others
				const char *extra = "200\t4\tu32\textra\tx\n";
				memmove(copy + at_end + strlen(extra), copy + at_end, strlen(copy + at_end) + 1);
				memcpy(copy + at_end, extra, strlen(extra));
			}
			CHECK_MSG(compare_page(copy, pages[i].page, pages[i].set, 1) > 0, "%s: edit %d not caught",
				  pages[i].page, e);
			free(copy);
		}
		free(text);
	}
}

// Each record's table: fields in order and contiguous (the compile-time checks say so too),
// names unique, each check one that its type can carry.
static void test_tables(void)
{
	const mm_layout *const *sets[] = {mm_shard_layouts, mm_tok_layouts, mm_ckpt_layouts};
	int n = 0;
	for (size_t s = 0; s < 3; s++)
		for (int i = 0; sets[s][i]; i++, n++) {
			const mm_layout *L = sets[s][i];
			uint32_t at = 0;
			for (int j = 0; j < L->n_fields; j++) {
				const mm_field *f = &L->fields[j];
				CHECK_MSG(f->offset == at, "%s.%s at %u, expected %u", L->name, f->name, f->offset, at);
				at = f->offset + f->size;
				for (int k = 0; k < j; k++)
					CHECK_MSG(strcmp(L->fields[k].name, f->name) != 0, "%s.%s twice", L->name, f->name);
				if (f->type == MM_FIELD_BYTES)
					CHECK_MSG(f->check == MM_CHECK_MAGIC || f->check == MM_CHECK_KNOWN ||
							  f->check == MM_CHECK_EQ || f->check == MM_CHECK_ZERO,
						  "%s.%s", L->name, f->name);
				if (f->check == MM_CHECK_CRC)
					CHECK(f->type == MM_FIELD_U32);
				if (f->type == MM_FIELD_F64)
					CHECK_MSG(f->check == MM_CHECK_NONE, "%s.%s", L->name, f->name);
			}
			CHECK_MSG(at == L->size, "%s: fields end at %u, the record has %u bytes", L->name, at, L->size);
		}
	CHECK_EQ_INT(n, 13);
}

// Writing then reading a record gives back its values and passes every check; changing any
// checked field is refused at its stage, with the field's file offset in the message.
static void test_walks(void)
{
	const mm_layout *const *sets[] = {mm_shard_layouts, mm_tok_layouts, mm_ckpt_layouts};
	for (size_t s = 0; s < 3; s++)
		for (int i = 0; sets[s][i]; i++) {
			const mm_layout *L = sets[s][i];
			uint64_t in[32] = {0}, out[32];
			for (int j = 0; j < L->n_fields; j++) {
				const mm_field *f = &L->fields[j];
				if (f->type == MM_FIELD_BYTES)
					continue;
				CHECK(f->slot + 8 <= sizeof in);
				uint64_t v = f->type == MM_FIELD_U32 ? 0x01020304u * (j + 1) : 0x0102030405060708ull * (j + 1);
				if (f->check == MM_CHECK_MIN || f->check == MM_CHECK_MAX)
					v = f->want;
				in[f->slot / 8] = v;
			}
			uint8_t rec[256], bad[256];
			CHECK(L->size <= sizeof rec);
			mm_layout_put(L, in, rec);
			memset(out, 0xa5, sizeof out);
			mm_layout_get(L, rec, out);
			for (int st = MM_STAGE_IDENT; st <= MM_STAGE_FIELDS; st++)
				CHECK_OK(mm_layout_check(L, rec, st, "rec", 1000));
			CHECK(mm_layout_magic_ok(L, rec, L->size));
			for (int j = 0; j < L->n_fields; j++) {
				const mm_field *f = &L->fields[j];
				if (f->type != MM_FIELD_BYTES && (f->check == MM_CHECK_NONE || f->check == MM_CHECK_MIN ||
								  f->check == MM_CHECK_MAX))
					CHECK_MSG(out[f->slot / 8] == in[f->slot / 8], "%s.%s", L->name, f->name);
				if (f->check == MM_CHECK_NONE)
					continue;
				memcpy(bad, rec, L->size);
				// Out of range for MIN and MAX; different for the rest.
				if (f->check == MM_CHECK_MIN)
					mm_put_u32(bad + f->offset, (uint32_t)f->want - 1);
				else if (f->check == MM_CHECK_MAX && f->type == MM_FIELD_U64)
					mm_put_u64(bad + f->offset, f->want + 1);
				else if (f->check == MM_CHECK_MAX)
					mm_put_u32(bad + f->offset, (uint32_t)f->want + 1);
				else
					bad[f->offset + f->size - 1] ^= 0x40;
				int st = f->check == MM_CHECK_MAGIC || f->check == MM_CHECK_VERSION ? MM_STAGE_IDENT
					 : f->check == MM_CHECK_CRC				 ? MM_STAGE_CRC
												 : MM_STAGE_FIELDS;
				int rc = mm_layout_check(L, bad, st, "rec", 1000);
				int want = f->check == MM_CHECK_VERSION ? MM_EVERSION
					   : f->check == MM_CHECK_CRC   ? MM_ECHECKSUM
					   : f->check == MM_CHECK_KNOWN ? MM_EUNSUPPORTED
									: MM_EFORMAT;
				CHECK_MSG(rc == -want, "%s.%s: rc %d: %s", L->name, f->name, rc, mm_errmsg());
				char off[32];
				snprintf(off, sizeof off, "offset %u", 1000 + f->offset + (f->check == MM_CHECK_ZERO &&
											      f->type == MM_FIELD_BYTES ? f->size - 1 : 0));
				CHECK_MSG(strstr(mm_errmsg(), "rec: ") == mm_errmsg() && strstr(mm_errmsg(), f->name) &&
						  strstr(mm_errmsg(), off),
					  "%s.%s: %s", L->name, f->name, mm_errmsg());
				if (f->check == MM_CHECK_MAGIC) {
					CHECK(!mm_layout_magic_ok(L, bad, L->size));
					CHECK(mm_layout_magic_ok(L, bad, f->offset + f->size - 1)); // a prefix still agrees
				}
			}
		}
}

int main(void)
{
	test_tables();
	test_walks();
	test_pages();
	return check_done();
}
