// Table-driven options: one table gives the command-line flags, the --config file keys, the
// settings saved in a checkpoint and the --help text, so the four never disagree.
#ifndef MM_OPTS_H
#define MM_OPTS_H

#include <stdint.h>

enum opt_type {
	OPT_INT,    // long long
	OPT_FLOAT,  // double
	OPT_STR,    // char * (strdup'd)
	OPT_LIST,   // struct opt_list: repeatable string
	OPT_FLAG,   // int set to 1, no argument ("--name=0|1" also accepted)
	OPT_HEADING // a --help section title, no option
};

struct opt_list {
	int n;
	char *v[64];
};

struct opt {
	const char *name; // long flag without "--", and config key
	enum opt_type type;
	void *ptr;
	const char *arg;  // metavariable for --help
	const char *help;
	double lo, hi;    // range for numbers
	int saved;        // stored in checkpoints and restored on --resume
	int set;          // given on the command line (filled by opts_parse)
};

// Parses argv (from index 1): "--name value", "--name=value", flags. Positional arguments are
// refused. Dies with a usage error on anything unknown or out of range.
void opts_parse(struct opt *t, int argc, char **argv);
// Applies "key = value" text (a --config file or a checkpoint's settings) to options not
// already set on the command line. from_ckpt: only saved options are accepted.
int opts_apply_kv(struct opt *t, const char *text, uint64_t n, const char *name, int from_ckpt);
// Writes every saved option as "key = value" lines into a malloc'd string.
char *opts_dump(const struct opt *t);
struct opt *opts_find(struct opt *t, const char *name);
void opts_help(const struct opt *t, const char *usage);

#endif
