#include "cli.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mm.h"

const char *cli_prog = "mm";
const char *cli_synopsis;

void cli_init(const char *prog)
{
	const char *slash = strrchr(prog, '/');
	cli_prog = slash ? slash + 1 : prog;
}

static void vmsg(const char *fmt, va_list ap)
{
	fprintf(stderr, "%s: ", cli_prog);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmsg(fmt, ap);
	va_end(ap);
	mm_afile_unlink_all();
	exit(1);
}

void die_mm(int rc)
{
	const char *m = mm_errmsg();
	die("%s", m && *m ? m : mm_strerror(rc));
}

void cli_usage(FILE *f)
{
	const char *s = cli_synopsis ? cli_synopsis : "[options]";
	for (int first = 1; *s; first = 0) {
		size_t n = strcspn(s, "\n");
		fprintf(f, "%s %s %.*s\n", first ? "Usage:" : "      ", cli_prog, (int)n, s);
		s += n + (s[n] == '\n');
	}
}

void die_usage(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmsg(fmt, ap);
	va_end(ap);
	cli_usage(stderr);
	fprintf(stderr, "Try '%s --help'.\n", cli_prog);
	exit(2);
}

void warnx(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmsg(fmt, ap);
	va_end(ap);
}

long long cli_int(const char *opt, const char *s, long long lo, long long hi)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end)
		die_usage("%s: '%s' is not an integer", opt, s);
	if (v < lo || v > hi)
		die_usage("%s: %lld is out of range [%lld, %lld]", opt, v, lo, hi);
	return v;
}

double cli_double(const char *opt, const char *s, double lo, double hi)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v))
		die_usage("%s: '%s' is not a number", opt, s);
	if (v < lo || v > hi)
		die_usage("%s: %g is out of range [%g, %g]", opt, v, lo, hi);
	return v;
}

const char *cli_interrupt_note;

static void write_str(const char *s)
{
	size_t n = strlen(s);
	while (n) {
		ssize_t k = write(2, s, n);
		if (k <= 0)
			return;
		s += k, n -= (size_t)k;
	}
}

static void on_signal(int sig)
{
	mm_afile_unlink_all();
	if (cli_interrupt_note) { // write(2) only: stdio is not safe in a handler
		write_str(cli_prog);
		write_str(": ");
		write_str(cli_interrupt_note);
		write_str("\n");
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

void cli_cleanup_on_signal(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

void cli_mkdirs(const char *dir)
{
	char *p = strdup(dir);
	if (!p)
		die_mm(-MM_ENOMEM);
	for (char *c = p + 1;; c++) {
		if (*c && *c != '/')
			continue;
		char end = *c;
		*c = 0;
		if (mkdir(p, 0777) && errno != EEXIST)
			die("%s: cannot create: %s", p, strerror(errno));
		if (!(*c = end))
			break;
	}
	free(p);
	struct stat st;
	if (stat(dir, &st) || !S_ISDIR(st.st_mode))
		die("%s: not a directory", dir);
}

void cli_output_dir(const char *opt, const char *dir)
{
	if (strcmp(dir, "-") == 0)
		die_usage("%s: '-' is not a directory: this output is files, not a stream", opt);
	cli_mkdirs(dir);
	size_t n = strlen(dir) + 32;
	char *probe = malloc(n);
	if (!probe)
		die_mm(-MM_ENOMEM);
	snprintf(probe, n, "%s/.mm-probe.XXXXXX", dir);
	int fd = mkstemp(probe);
	if (fd < 0)
		die("%s: cannot write there: %s", dir, strerror(errno));
	close(fd);
	unlink(probe);
	free(probe);
}

void cli_output_file(const char *opt, const char *path)
{
	if (strcmp(path, "-") == 0)
		die_usage("%s: '-' cannot be used: this output is a file, not a stream", opt);
	if (!*path)
		die_usage("%s: the path is empty", opt);
	const char *slash = strrchr(path, '/');
	if (slash && !slash[1])
		die_usage("%s: '%s' names a directory, not a file", opt, path);
	char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
	if (!dir)
		die_mm(-MM_ENOMEM);
	cli_output_dir(opt, dir);
	free(dir);
}

const char *cli_shortest_float(float x, char *buf)
{
	for (int p = 1; p <= 9; p++) {
		snprintf(buf, 32, "%.*g", p, (double)x);
		if (strtof(buf, NULL) == x || x != x)
			break;
	}
	return buf;
}

void cli_json_shortest(char *s)
{
	char *w = s, num[40];
	for (const char *r = s; *r;) {
		if (*r == '"') { // a string, escapes and all, copied as it is
			*w++ = *r++;
			while (*r && *r != '"') {
				if (*r == '\\' && r[1])
					*w++ = *r++;
				*w++ = *r++;
			}
			if (*r)
				*w++ = *r++;
			continue;
		}
		if (*r != '-' && !(*r >= '0' && *r <= '9')) {
			*w++ = *r++;
			continue;
		}
		size_t n = strspn(r, "-+0123456789.eE");
		if (n >= sizeof num || (!memchr(r, '.', n) && !memchr(r, 'e', n) && !memchr(r, 'E', n))) {
			memmove(w, r, n); // an integer (or something too long to be a double): as it is
			w += n, r += n;
			continue;
		}
		memcpy(num, r, n);
		num[n] = 0;
		char out[40];
		cli_shortest(strtod(num, NULL), out);
		if (!strpbrk(out, ".eEin"))
			strcat(out, ".0");
		size_t m = strlen(out);
		if (m > n) // never longer than what it replaces
			memcpy(out, num, (m = n) + 1);
		memcpy(w, out, m);
		w += m, r += n;
	}
	*w = 0;
}

const char *cli_shortest(double x, char *buf)
{
	for (int p = 1; p <= 17; p++) {
		snprintf(buf, 32, "%.*g", p, x);
		if (strtod(buf, NULL) == x || x != x)
			break;
	}
	return buf;
}
