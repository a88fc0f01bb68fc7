#include "kv.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

static char *dup_range(const char *a, const char *b)
{
	while (a < b && isspace((unsigned char)*a))
		a++;
	while (b > a && isspace((unsigned char)b[-1]))
		b--;
	char *s = malloc((size_t)(b - a) + 1);
	if (s) {
		memcpy(s, a, (size_t)(b - a));
		s[b - a] = 0;
	}
	return s;
}

int mm_kv_parse(const char *text, size_t n, const char *name, mm_kv **out, int *count)
{
	*out = NULL;
	*count = 0;
	mm_kv *kv = NULL;
	int len = 0, cap = 0, line = 0;
	const char *p = text, *end = text + n;
	while (p < end) {
		line++;
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol)
			eol = end;
		// A NUL would end the key or value early and hide what follows it on the line.
		if (memchr(p, 0, (size_t)(eol - p))) {
			mm_kv_free(kv, len);
			return mm_fail(MM_EFORMAT, "%s:%d: NUL byte", name, line);
		}
		const char *hash = memchr(p, '#', (size_t)(eol - p));
		const char *stop = hash ? hash : eol;
		const char *eq = memchr(p, '=', (size_t)(stop - p));
		const char *q = p;
		while (q < stop && isspace((unsigned char)*q))
			q++;
		if (q < stop) {
			if (!eq) {
				mm_kv_free(kv, len);
				return mm_fail(MM_EFORMAT, "%s:%d: expected 'key = value'", name, line);
			}
			if (len == cap) {
				cap = cap ? cap * 2 : 16;
				mm_kv *nk = realloc(kv, (size_t)cap * sizeof *nk);
				if (!nk) {
					mm_kv_free(kv, len);
					return mm_fail(MM_ENOMEM, "out of memory");
				}
				kv = nk;
			}
			char *key = dup_range(p, eq), *value = dup_range(eq + 1, stop);
			if (!key || !value) {
				free(key);
				free(value);
				mm_kv_free(kv, len);
				return mm_fail(MM_ENOMEM, "out of memory");
			}
			int ok = *key != 0;
			for (char *c = key; *c; c++) {
				if (*c == '_')
					*c = '-';
				ok &= isalnum((unsigned char)*c) || *c == '-';
			}
			if (!ok) {
				free(key);
				free(value);
				mm_kv_free(kv, len);
				return mm_fail(MM_EFORMAT, "%s:%d: bad key", name, line);
			}
			kv[len++] = (mm_kv){key, value, line};
		}
		p = eol + 1;
	}
	*out = kv;
	*count = len;
	return 0;
}

void mm_kv_free(mm_kv *kv, int count)
{
	for (int i = 0; i < count; i++) {
		free(kv[i].key);
		free(kv[i].value);
	}
	free(kv);
}
