#include "opts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "mm.h"
#include "kv.h"

struct opt *opts_find(struct opt *t, const char *name)
{
	for (; t->name; t++) {
		if (t->type == OPT_HEADING)
			continue;
		const char *a = t->name, *b = name;
		// '-' and '_' are the same character in option names.
		while (*a && *b && (*a == *b || ((*a == '-' || *a == '_') && (*b == '-' || *b == '_'))))
			a++, b++;
		if (!*a && !*b)
			return t;
	}
	return NULL;
}

// Stores a value; returns NULL or an error message (static).
static const char *opt_set(struct opt *o, const char *v, char *why, size_t whylen)
{
	char *end;
	switch (o->type) {
	case OPT_INT: {
		long long x = strtoll(v, &end, 10);
		if (end == v || *end)
			return snprintf(why, whylen, "'%s' is not an integer", v), why;
		if (x < o->lo || x > o->hi)
			return snprintf(why, whylen, "%lld is out of range [%g, %g]", x, o->lo, o->hi), why;
		*(long long *)o->ptr = x;
		return NULL;
	}
	case OPT_FLOAT: {
		double x = strtod(v, &end);
		if (end == v || *end || x != x)
			return snprintf(why, whylen, "'%s' is not a number", v), why;
		if (x < o->lo || x > o->hi)
			return snprintf(why, whylen, "%g is out of range [%g, %g]", x, o->lo, o->hi), why;
		*(double *)o->ptr = x;
		return NULL;
	}
	case OPT_FLAG:
		if (strcmp(v, "1") && strcmp(v, "0"))
			return snprintf(why, whylen, "'%s' is not 0 or 1", v), why;
		*(int *)o->ptr = *v == '1';
		return NULL;
	case OPT_STR:
		free(*(char **)o->ptr);
		*(char **)o->ptr = strdup(v);
		return NULL;
	case OPT_LIST: {
		struct opt_list *l = o->ptr;
		if (l->n == (int)(sizeof l->v / sizeof l->v[0]))
			return snprintf(why, whylen, "given too many times"), why;
		l->v[l->n++] = strdup(v);
		return NULL;
	}
	case OPT_HEADING:
		break;
	}
	return "bad option";
}

void opts_parse(struct opt *t, int argc, char **argv)
{
	char why[256];
	for (int i = 1; i < argc; i++) {
		char *a = argv[i];
		if (strncmp(a, "--", 2) != 0 || !a[2])
			die_usage("unexpected argument '%s'", a);
		char name[128];
		const char *val = NULL;
		char *eq = strchr(a + 2, '=');
		size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
		if (len >= sizeof name)
			die_usage("unknown option '%s'", a);
		memcpy(name, a + 2, len);
		name[len] = 0;
		struct opt *o = opts_find(t, name);
		if (!o)
			die_usage("unknown option '--%s'", name);
		if (eq)
			val = eq + 1;
		else if (o->type == OPT_FLAG)
			val = "1";
		else if (i + 1 < argc)
			val = argv[++i];
		else
			die_usage("--%s needs a value", name);
		if (o->set && o->type != OPT_LIST)
			die_usage("--%s given twice", o->name);
		const char *err = opt_set(o, val, why, sizeof why);
		if (err)
			die_usage("--%s: %s", o->name, err);
		o->set = 1;
	}
}

int opts_apply_kv(struct opt *t, const char *text, uint64_t n, const char *name, int from_ckpt)
{
	mm_kv *kv;
	int count;
	int rc = mm_kv_parse(text, n, name, &kv, &count);
	if (rc)
		return rc;
	char why[256];
	for (int i = 0; i < count && !rc; i++) {
		struct opt *o = opts_find(t, kv[i].key);
		if (!o || (from_ckpt && !o->saved))
			rc = mm_fail(MM_EFORMAT, "%s:%d: unknown setting '%s'", name, kv[i].line, kv[i].key);
		else if (!o->set) {
			const char *err = opt_set(o, kv[i].value, why, sizeof why);
			if (err)
				rc = mm_fail(MM_EFORMAT, "%s:%d: %s: %s", name, kv[i].line, kv[i].key, err);
		}
	}
	// A list given in a file counts as set, so a second source does not append to it.
	for (int i = 0; i < count; i++) {
		struct opt *o = opts_find(t, kv[i].key);
		if (o && o->type == OPT_LIST)
			o->set = 1;
	}
	mm_kv_free(kv, count);
	return rc;
}

char *opts_dump(const struct opt *t)
{
	size_t cap = 4096, len = 0;
	char *s = malloc(cap);
	if (!s)
		return NULL;
	s[0] = 0;
	for (; t->name; t++) {
		if (!t->saved || t->type == OPT_HEADING)
			continue;
		char line[4200];
		int k = 0;
		switch (t->type) {
		case OPT_INT:
			k = snprintf(line, sizeof line, "%s = %lld\n", t->name, *(long long *)t->ptr);
			break;
		case OPT_FLOAT:
			k = snprintf(line, sizeof line, "%s = %.17g\n", t->name, *(double *)t->ptr);
			break;
		case OPT_FLAG:
			k = snprintf(line, sizeof line, "%s = %d\n", t->name, *(int *)t->ptr);
			break;
		case OPT_STR: {
			const char *v = *(char **)t->ptr;
			if (v)
				k = snprintf(line, sizeof line, "%s = %s\n", t->name, v);
			break;
		}
		case OPT_LIST: {
			const struct opt_list *l = t->ptr;
			for (int i = 0; i < l->n && k < (int)sizeof line - 300; i++)
				k += snprintf(line + k, sizeof line - (size_t)k, "%s = %.255s\n", t->name, l->v[i]);
			break;
		}
		case OPT_HEADING:
			break;
		}
		if (k >= (int)sizeof line)
			k = (int)sizeof line - 1;
		while (len + (size_t)k + 1 > cap) {
			cap *= 2;
			char *ns = realloc(s, cap);
			if (!ns) {
				free(s);
				return NULL;
			}
			s = ns;
		}
		memcpy(s + len, line, (size_t)k);
		len += (size_t)k;
		s[len] = 0;
	}
	return s;
}

void opts_help(const struct opt *t, const char *usage)
{
	printf("%s\n", usage);
	for (; t->name; t++) {
		if (t->type == OPT_HEADING) {
			printf("\n%s:\n", t->name);
			continue;
		}
		char left[64];
		snprintf(left, sizeof left, "--%s%s%s", t->name, t->arg ? " " : "", t->arg ? t->arg : "");
		printf("  %-24s %s\n", left, t->help);
	}
}
