// Fuzz target for the tools' number parsing: the input is an option's argument, given to the
// option table's parser (cmd/opts.c: integers of each width, reals, sizes, flags, choices) and to
// cli_int and cli_double (cmd/cli.c). Those two end the process on a bad argument (die_usage), so
// their exit is turned into a jump back here. An accepted number is within its range.
#include "fuzz.h"

#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdnoreturn.h>

static jmp_buf cli_fuzz_jmp;
static int cli_fuzz_status;

static noreturn void cli_fuzz_exit(int status)
{
	cli_fuzz_status = status;
	longjmp(cli_fuzz_jmp, 1);
}

#define exit cli_fuzz_exit
#include "../../cmd/cli.c"
#include "../../cmd/opts.c"
#undef exit

static void cli_fuzz_table(const char *s)
{
	static long long ll;
	static int32_t i32;
	static uint32_t u32;
	static double d;
	static uint64_t size;
	static int flag, choice;
	static const char *const names[] = {"euler", "heun", "ddim", NULL};
	static const int values[] = {7, 8, 9};
	struct opt t[] = {
		{"ll", OPT_INT, &ll, .lo = (double)LLONG_MIN, .hi = (double)LLONG_MAX},
		{"small", OPT_INT, &ll, .lo = -5, .hi = 1 << 20},
		{"i32", OPT_INT, &i32, .lo = INT32_MIN, .hi = INT32_MAX, .size = 4},
		{"u32", OPT_INT, &u32, .lo = 0, .hi = UINT32_MAX, .size = 4},
		{"real", OPT_FLOAT, &d, .lo = -1e3, .hi = 1e3},
		{"any", OPT_FLOAT, &d, .lo = -HUGE_VAL, .hi = HUGE_VAL},
		{"size", OPT_SIZE, &size, .lo = 0},
		{"flag", OPT_FLAG, &flag, .lo = 0},
		{"choice", OPT_CHOICE, &choice, .choices = names, .values = values},
	};
	char why[256];
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		ll = i32 = u32 = flag = choice = 0, d = 0, size = 0;
		if (opt_set(&t[i], s, why, sizeof why))
			continue;
		double v = t[i].type == OPT_INT ? (double)int_get(&t[i]) : d;
		if (((t[i].type == OPT_INT || t[i].type == OPT_FLOAT) && !(v >= t[i].lo && v <= t[i].hi)) ||
		    (t[i].type == OPT_SIZE && size == 0) || (t[i].type == OPT_CHOICE && (choice < 7 || choice > 9)))
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 256)
		return 0;
	char s[257];
	memcpy(s, data, size);
	s[size] = 0;
	cli_fuzz_table(s);
	// volatile: read again after the jump back from die_usage.
	volatile int stage = 0;
	if (setjmp(cli_fuzz_jmp)) {
		if (cli_fuzz_status != 2)
			abort();
		stage++;
	}
	switch (stage) {
	case 0: {
		long long v = cli_int("--n", s, -5, 1 << 20);
		if (v < -5 || v > 1 << 20)
			abort();
		stage++;
	} // fall through
	case 1: {
		double v = cli_double("--x", s, -1e3, 1e3);
		if (!(v >= -1e3 && v <= 1e3))
			abort();
		stage++;
	} // fall through
	default:
		break;
	}
	return 0;
}
