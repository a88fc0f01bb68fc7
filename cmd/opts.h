// Table-driven options: one table per tool gives its command-line flags, their defaults (the
// values the table points at before parsing), the --config file keys, the settings saved in a
// checkpoint, the positional arguments and the --help text, so none of them can disagree.
// Every tool parses with opts_parse; --list-options (hidden) prints the table's flags, for the
// man page test and the bash completion (cmd/completion.sh).
#ifndef MM_OPTS_H
#define MM_OPTS_H

#include <stddef.h>
#include <stdint.h>

enum opt_type {
	OPT_INT,     // long long, or an int / uint32_t when .size is 4
	OPT_FLOAT,   // double
	OPT_STR,     // char * (strdup'd; the default must be NULL or malloc'd)
	OPT_LIST,    // struct opt_list: repeatable string
	OPT_FLAG,    // int set to 1, no argument ("--name=0|1" also accepted)
	OPT_CHOICE,  // int: one of the names in .choices, stored as .values[i] (i without .values)
	OPT_SIZE,    // uint64_t: bytes, with an optional K, M or G suffix (powers of 1024)
	OPT_FUNC,    // read by .parse, its default shown by .show
	OPT_ARGS,    // struct opt_args: the positional arguments; .name is their metavariable
	OPT_HELP,    // prints the help and exits 0
	OPT_VERSION, // prints the version and exits 0
	OPT_HEADING  // a --help section title (.name), no option
};

struct opt_list {
	int n;
	char *v[64];
};

struct opt_args {
	int n;
	char **v; // pointers into argv, in order
};

struct opt {
	const char *name; // long flag without "--", and config key
	enum opt_type type;
	void *ptr;
	const char *arg;  // metavariable for --help (OPT_CHOICE: the names joined by '|' if NULL)
	const char *help; // one line; '\n' starts another
	double lo, hi;    // range for numbers
	int saved;        // stored in checkpoints and restored on --resume
	int set;          // given on the command line: its position in argv (0: not given)
	char letter;      // short flag (-o), or 0
	int size;         // OPT_INT: sizeof the integer, 0 for long long
	const char *const *choices;  // OPT_CHOICE: the names, NULL-terminated
	const int *values;           // OPT_CHOICE: what each name stores (NULL: its index)
	// OPT_FUNC: stores v, or returns why not (in why, or a static string).
	const char *(*parse)(void *ptr, const char *v, char *why, size_t whylen);
	void (*show)(const void *ptr, char *buf, size_t n); // OPT_FUNC: the value, for --help
	const char *def;  // --help: the default in words, where the value cannot say it ("": none)
};

#define OPT_HEAD(title) {.name = (title), .type = OPT_HEADING}
// The last rows of every table.
#define OPT_STD_END                                                                                   \
	{"help", OPT_HELP, NULL, NULL, "show this help and exit", .letter = 'h'},                         \
	{"version", OPT_VERSION, NULL, NULL, "show the version and exit", .letter = 'V'}, {.name = NULL}

// Parses argv from index 1: "--name value", "--name=value", "-x value", "-xvalue", flags, and
// positional arguments (only where the table has an OPT_ARGS row) anywhere; "--" ends the
// options. synopsis is the usage, one line per form, each without the program's name; about
// (or NULL) follows it in --help. Dies with a usage error (exit 2) on anything unknown or out
// of range; exits 0 after --help, --version and --list-options.
void opts_parse(struct opt *t, const char *synopsis, const char *about, int argc, char **argv);
// Applies "key = value" text (a --config file or a checkpoint's settings) to options not
// already set on the command line. from_ckpt: only saved options are accepted.
int opts_apply_kv(struct opt *t, const char *text, uint64_t n, const char *name, int from_ckpt);
// Writes every saved option as "key = value" lines into a malloc'd string.
char *opts_dump(const struct opt *t);
// The same lines for a person: numbers printed shortest (cli_shortest), the saved bytes unchanged.
char *opts_show(const struct opt *t);
struct opt *opts_find(struct opt *t, const char *name);
// OPT_FUNC for an interval of noise levels "A,B" with 0 <= A <= B <= 1, into double[2].
const char *opt_parse_interval(void *p, const char *s, char *why, size_t n);
void opt_show_interval(const void *p, char *buf, size_t n);
// The help: the usage, about, then every option with its default.
void opts_help(const struct opt *t, const char *about);

#endif
