#include "opts.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "mm.h"
#include "kv.h"

// '-' and '_' are the same character in option names (config keys are written with either).
static int same_char(char a, char b)
{
	return a == b || ((a == '-' || a == '_') && (b == '-' || b == '_'));
}

struct opt *opts_find(struct opt *t, const char *name)
{
	for (; t->name; t++) {
		if (t->type == OPT_HEADING || t->type == OPT_ARGS)
			continue;
		const char *a = t->name, *b = name;
		while (*a && *b && same_char(*a, *b))
			a++, b++;
		if (!*a && !*b)
			return t;
	}
	return NULL;
}

static long long int_get(const struct opt *o)
{
	if (o->size == 4)
		return o->lo < 0 ? (long long)*(int32_t *)o->ptr : (long long)*(uint32_t *)o->ptr;
	return *(long long *)o->ptr;
}

static void int_put(const struct opt *o, long long x)
{
	if (o->size == 4 && o->lo < 0)
		*(int32_t *)o->ptr = (int32_t)x;
	else if (o->size == 4)
		*(uint32_t *)o->ptr = (uint32_t)x;
	else
		*(long long *)o->ptr = x;
}

// A range bound as an integer: INT64_MAX is not a double, 2^63 is its nearest.
static long long int_bound(double x)
{
	return x >= 0x1p63 ? LLONG_MAX : x <= -0x1p63 ? LLONG_MIN : (long long)x;
}

static int size_parse(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return -1;
	int shift = 0;
	if (*end == 'K' || *end == 'k')
		shift = 10, end++;
	else if (*end == 'M' || *end == 'm')
		shift = 20, end++;
	else if (*end == 'G' || *end == 'g')
		shift = 30, end++;
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end || v == 0 || (shift && v > (UINT64_MAX >> shift)))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

// "a, b or c" from a choice list.
static void choice_names(const struct opt *o, char *buf, size_t n)
{
	size_t k = 0;
	buf[0] = 0;
	for (int i = 0; o->choices[i] && k < n; i++)
		k += (size_t)snprintf(buf + k, n - k, "%s%s", i == 0 ? "" : o->choices[i + 1] ? ", " : " or ",
				      o->choices[i]);
}

// Stores a value; returns NULL or an error message (in why, or static).
static const char *opt_set(struct opt *o, const char *v, char *why, size_t whylen)
{
	char *end;
	switch (o->type) {
	case OPT_INT: {
		errno = 0;
		long long x = strtoll(v, &end, 10);
		if (end == v || *end || errno)
			return snprintf(why, whylen, "'%s' is not an integer", v), why;
		if (x < o->lo || x > o->hi)
			return snprintf(why, whylen, "%lld is out of range [%lld, %lld]", x, int_bound(o->lo),
					int_bound(o->hi)), why;
		int_put(o, x);
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
	case OPT_CHOICE: {
		for (int i = 0; o->choices[i]; i++)
			if (strcmp(v, o->choices[i]) == 0) {
				*(int *)o->ptr = o->values ? o->values[i] : i;
				return NULL;
			}
		char names[200];
		choice_names(o, names, sizeof names);
		return snprintf(why, whylen, "'%s' is not %s", v, names), why;
	}
	case OPT_SIZE:
		if (size_parse(v, o->ptr))
			return snprintf(why, whylen, "'%s' is not a size", v), why;
		return NULL;
	case OPT_FUNC:
		return o->parse(o->ptr, v, why, whylen);
	case OPT_ARGS:
	case OPT_HELP:
	case OPT_VERSION:
	case OPT_HEADING:
		break;
	}
	return "not a setting";
}

// The default as --help shows it: from the value the option points at; "" for none.
static void opt_show(const struct opt *o, char *buf, size_t n)
{
	buf[0] = 0;
	if (o->def) {
		snprintf(buf, n, "%s", o->def);
		return;
	}
	switch (o->type) {
	case OPT_INT:
		snprintf(buf, n, "%lld", int_get(o));
		break;
	case OPT_FLOAT:
		snprintf(buf, n, "%g", *(double *)o->ptr);
		break;
	case OPT_STR:
		if (*(char **)o->ptr)
			snprintf(buf, n, "%s", *(char **)o->ptr);
		break;
	case OPT_CHOICE:
		for (int i = 0; o->choices[i]; i++)
			if (*(int *)o->ptr == (o->values ? o->values[i] : i))
				snprintf(buf, n, "%s", o->choices[i]);
		break;
	case OPT_SIZE: {
		uint64_t v = *(uint64_t *)o->ptr;
		int k = 0;
		while (k < 3 && v && v % 1024 == 0)
			v /= 1024, k++;
		snprintf(buf, n, "%llu%.*s", (unsigned long long)v, k ? 1 : 0, k ? &"KMG"[k - 1] : "");
		break;
	}
	case OPT_FUNC:
		if (o->show)
			o->show(o->ptr, buf, n);
		break;
	default:
		break;
	}
}

static int takes_value(const struct opt *o)
{
	return o->type != OPT_FLAG && o->type != OPT_HELP && o->type != OPT_VERSION;
}

// The metavariable of an option that takes a value; names: a choice's names even where the
// table gives a shorter metavariable.
static const char *metavar(const struct opt *o, int names, char *buf, size_t n)
{
	if (o->type != OPT_CHOICE || (o->arg && !names))
		return o->arg ? o->arg : "X";
	size_t k = 0;
	buf[0] = 0;
	for (int i = 0; o->choices[i] && k < n; i++)
		k += (size_t)snprintf(buf + k, n - k, "%s%s", i ? "|" : "", o->choices[i]);
	return buf;
}

void opts_help(const struct opt *t, const char *about)
{
	cli_usage(stdout);
	if (about)
		printf("%s\n", about);
	for (; t->name; t++) {
		if (t->type == OPT_HEADING) {
			printf("\n%s:\n", t->name);
			continue;
		}
		char left[96], mv[96], def[128];
		int k = 0;
		if (t->type == OPT_ARGS)
			k = snprintf(left, sizeof left, "%s...", t->name);
		else if (t->letter)
			k = snprintf(left, sizeof left, "-%c, ", t->letter);
		if (t->type != OPT_ARGS)
			k += snprintf(left + k, sizeof left - (size_t)k, "--%s", t->name);
		if (t->type != OPT_ARGS && (takes_value(t) || t->arg))
			snprintf(left + k, sizeof left - (size_t)k, " %s", metavar(t, 0, mv, sizeof mv));
		printf("  %-24s", left);
		if (strlen(left) > 24)
			printf("\n  %24s", "");
		for (const char *h = t->help; *h; h++) {
			if (*h == '\n')
				printf("\n  %24s", "");
			else
				putchar(*h);
		}
		opt_show(t, def, sizeof def);
		printf(def[0] ? " (default: %s)\n" : "\n", def);
	}
}

// Hidden --list-options: every flag a line, with the metavariable of those that take a value
// (the names of a choice), and the positional arguments' metavariable.
static void list_options(const struct opt *t)
{
	char mv[96];
	for (; t->name; t++) {
		if (t->type == OPT_HEADING)
			continue;
		const char *m = takes_value(t) ? metavar(t, 1, mv, sizeof mv) : NULL;
		if (t->type == OPT_ARGS) {
			printf("%s...\n", t->name);
			continue;
		}
		if (t->letter)
			printf("-%c%s%s\n", t->letter, m ? " " : "", m ? m : "");
		printf("--%s%s%s\n", t->name, m ? " " : "", m ? m : "");
	}
}

// Optimal string alignment distance (edits: insert, delete, substitute, swap two neighbours).
static int distance(const char *a, const char *b)
{
	int n = (int)strlen(a), m = (int)strlen(b);
	if (n > 40 || m > 40)
		return 99;
	int d[41][41];
	for (int i = 0; i <= n; i++)
		d[i][0] = i;
	for (int j = 0; j <= m; j++)
		d[0][j] = j;
	for (int i = 1; i <= n; i++)
		for (int j = 1; j <= m; j++) {
			int x = d[i - 1][j - 1] + !same_char(a[i - 1], b[j - 1]);
			if (d[i - 1][j] + 1 < x)
				x = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < x)
				x = d[i][j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < x)
				x = d[i - 2][j - 2] + 1;
			d[i][j] = x;
		}
	return d[n][m];
}

// The option a misspelled name most likely meant: the closest within a third of its length
// (at least 1), else the only one it begins; NULL when none is close.
static const char *suggest(const struct opt *t, const char *name)
{
	const char *best = NULL, *prefixed = NULL;
	int bestd = (int)strlen(name) / 3 > 1 ? (int)strlen(name) / 3 : 1, nprefixed = 0;
	for (; t->name; t++) {
		if (t->type == OPT_HEADING || t->type == OPT_ARGS)
			continue;
		int d = distance(name, t->name);
		if (d <= bestd && (!best || d < bestd))
			best = t->name, bestd = d;
		if (strlen(name) >= 3 && strncmp(t->name, name, strlen(name)) == 0)
			prefixed = t->name, nprefixed++;
	}
	return best ? best : nprefixed == 1 ? prefixed : NULL;
}

enum { W_END, W_OPT, W_ARG, W_ERR };

// A walk over argv, one option (with its value) or positional argument at a time.
struct walk {
	int argc, i, dashdash;
	char **argv;
	int pos;          // argv index of the last option returned
	char spell[140];  // the option as given, without "=value"
	char why[300];    // the error, after W_ERR
};

static const struct opt list_opt = {.name = "list-options", .type = OPT_FLAG};

static int walk_next(struct walk *w, struct opt *t, struct opt **o, const char **val)
{
	if (w->i >= w->argc)
		return W_END;
	char *a = w->argv[w->i++];
	if (w->dashdash || a[0] != '-' || !a[1]) {
		*val = a;
		return W_ARG;
	}
	if (strcmp(a, "--") == 0) {
		w->dashdash = 1;
		return walk_next(w, t, o, val);
	}
	w->pos = w->i - 1;
	const char *inline_val = NULL;
	if (a[1] != '-') { // -x, -xVALUE
		snprintf(w->spell, sizeof w->spell, "-%c", a[1]);
		*o = NULL;
		for (struct opt *p = t; p->name; p++)
			if (p->letter == a[1] && p->type != OPT_HEADING)
				*o = p;
		if (!*o || (a[2] && !takes_value(*o)))
			return snprintf(w->why, sizeof w->why, "unknown option '%s'", a), W_ERR;
		if (a[2])
			inline_val = a + 2;
	} else { // --name, --name=VALUE
		const char *eq = strchr(a + 2, '=');
		size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
		if (len > 128)
			return snprintf(w->why, sizeof w->why, "unknown option '%.40s...'", a), W_ERR;
		snprintf(w->spell, sizeof w->spell, "--%.*s", (int)len, a + 2);
		*o = opts_find(t, w->spell + 2);
		if (!*o && strcmp(w->spell, "--list-options") == 0)
			*o = (struct opt *)&list_opt;
		if (!*o) {
			const char *s = suggest(t, w->spell + 2);
			return snprintf(w->why, sizeof w->why, "unknown option '%s'%s%s%s", w->spell,
					s ? "; did you mean --" : "", s ? s : "", s ? "?" : ""), W_ERR;
		}
		if (eq)
			inline_val = eq + 1;
	}
	if (inline_val && (*o)->type != OPT_FLAG && !takes_value(*o))
		return snprintf(w->why, sizeof w->why, "option '%s' takes no value", w->spell), W_ERR;
	if (inline_val)
		*val = inline_val;
	else if (!takes_value(*o))
		*val = "1";
	else if (w->i < w->argc)
		*val = w->argv[w->i++];
	else
		return snprintf(w->why, sizeof w->why, "option '%s' needs a value", w->spell), W_ERR;
	return W_OPT;
}

// --help, --version and --list-options act before any value is stored, so --help shows the
// defaults whatever else the line holds; an error before them is reported by the real pass.
static void scan_info(struct opt *t, const char *about, int argc, char **argv)
{
	struct walk w = {.argc = argc, .i = 1, .argv = argv};
	struct opt *o;
	const char *v;
	int r;
	while ((r = walk_next(&w, t, &o, &v)) != W_END && r != W_ERR) {
		if (r != W_OPT)
			continue;
		if (o->type == OPT_HELP)
			opts_help(t, about);
		else if (o->type == OPT_VERSION)
			printf("%s (mm) %s\n", cli_prog, MM_VERSION);
		else if (o == &list_opt)
			list_options(t);
		else
			continue;
		if (fflush(stdout) || ferror(stdout))
			die("standard output: write error");
		exit(0);
	}
}

void opts_parse(struct opt *t, const char *synopsis, const char *about, int argc, char **argv)
{
	cli_synopsis = synopsis;
	scan_info(t, about, argc, argv);
	struct opt_args *args = NULL;
	for (struct opt *p = t; p->name; p++)
		if (p->type == OPT_ARGS)
			args = p->ptr;
	if (args && !(args->v = calloc((size_t)argc, sizeof *args->v)))
		die("out of memory");
	struct walk w = {.argc = argc, .i = 1, .argv = argv};
	struct opt *o;
	const char *v;
	char why[256];
	for (int r; (r = walk_next(&w, t, &o, &v)) != W_END;) {
		if (r == W_ERR)
			die_usage("%s", w.why);
		if (r == W_ARG) {
			if (!args)
				die_usage("unexpected argument '%s'", v);
			args->v[args->n++] = (char *)v;
			continue;
		}
		if (o == &list_opt || o->type == OPT_HELP || o->type == OPT_VERSION)
			continue; // handled by scan_info
		// An option given twice: the last wins (a string's first value is freed).
		const char *err = opt_set(o, v, why, sizeof why);
		if (err)
			die_usage("--%s: %s", o->name, err);
		o->set = w.pos;
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
		if (!o || (from_ckpt && !o->saved) || o->type == OPT_HELP || o->type == OPT_VERSION)
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

static char *dump(const struct opt *t, int shortest);

char *opts_dump(const struct opt *t)
{
	return dump(t, 0);
}

char *opts_show(const struct opt *t)
{
	return dump(t, 1);
}

// %.17g in checkpoints: their bytes stay those of every earlier version.
static char *dump(const struct opt *t, int shortest)
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
			k = snprintf(line, sizeof line, "%s = %lld\n", t->name, int_get(t));
			break;
		case OPT_FLOAT:
			if (shortest) {
				char num[32];
				k = snprintf(line, sizeof line, "%s = %s\n", t->name, cli_shortest(*(double *)t->ptr, num));
			} else
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
		default: // only numbers, flags, strings and lists are saved
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

const char *opt_parse_interval(void *p, const char *s, char *why, size_t n)
{
	double *ab = p;
	char *end;
	ab[0] = strtod(s, &end);
	if (end == s || *end != ',')
		return snprintf(why, n, "'%s' is not A,B", s), why;
	const char *b = end + 1;
	ab[1] = strtod(b, &end);
	if (end == b || *end || !(0 <= ab[0] && ab[0] <= ab[1] && ab[1] <= 1))
		return snprintf(why, n, "'%s' is not A,B with 0 <= A <= B <= 1", s), why;
	return NULL;
}

void opt_show_interval(const void *p, char *buf, size_t n)
{
	snprintf(buf, n, "%g,%g", ((const double *)p)[0], ((const double *)p)[1]);
}
