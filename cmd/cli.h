// Helpers shared by the mm-* tools: messages, exit codes, checked number parsing.
// Exit status: 0 success, 1 runtime error, 2 usage error.
#ifndef MM_CLI_H
#define MM_CLI_H

#include <stdint.h>
#include <stdnoreturn.h>

#include <stdio.h>

extern const char *cli_prog; // set by cli_init, used as the message prefix
// The forms of the command, one a line, each without the program's name (set by opts_parse).
extern const char *cli_synopsis;

void cli_init(const char *prog);
// "prog: message" on stderr, exit 1. Also removes temporary files of unfinished atomic writes.
noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
// Dies with the library's message for the last failure (rc is a negative MM_E* code).
noreturn void die_mm(int rc);
// "Usage: prog ..." (every line of cli_synopsis), the heading of --help and of usage errors.
void cli_usage(FILE *f);
// "prog: message", the usage and "Try 'prog --help'." on stderr, exit 2.
noreturn void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

// Parse a whole string as a number within [lo, hi]; die_usage naming the option otherwise.
long long cli_int(const char *opt, const char *s, long long lo, long long hi);
double cli_double(const char *opt, const char *s, double lo, double hi);

// x as the shortest %.{1..17}g that strtod reads back as x (0.1, not 0.10000000000000001),
// for what a person reads; buf holds 32 bytes. Returns buf.
const char *cli_shortest(double x, char *buf);
// The same for a float: the shortest %.{1..9}g that reads back as the same float (the loss
// 0.1f prints 0.1, not 0.100000001).
const char *cli_shortest_float(float x, char *buf);
// Rewrites, in place, every real number of the JSON text s (outside strings) as the shortest
// form that reads back as the same double, keeping a '.' or an exponent so it stays a real:
// jansson prints 17 digits. The text only gets shorter.
void cli_json_shortest(char *s);

// Outputs are made ready before long work starts, so that hours of work do not end in an
// unwritable path. Both refuse '-' (a usage error naming opt: the output is files, not a
// stream), create missing directories with their parents, and check that a file can be created
// there (by creating and removing one); failures die naming the path.
// cli_output_file: path is a file or a file-name prefix; its directory is made ready.
void cli_output_file(const char *opt, const char *path);
// cli_output_dir: dir itself is made ready.
void cli_output_dir(const char *opt, const char *dir);
// Creates dir and any missing parents; dies naming the part that could not be made.
void cli_mkdirs(const char *dir);

// Printed (with the program's name) by the handlers of cli_cleanup_on_signal before they exit,
// to say what the interruption left behind; NULL: nothing.
extern const char *cli_interrupt_note;

// Installs SIGINT/SIGTERM handlers that remove unfinished temporary files and exit 130/143.
// Tools that checkpoint on a signal install their own instead.
void cli_cleanup_on_signal(void);

#endif
