// Fuzz target for the tools' number parsing (cmd/cli.c: cli_int, cli_double, cli_size): the
// input is an option's argument. The parsers end the process on a bad argument (die_usage), so
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
#undef exit

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 256)
		return 0;
	char s[257];
	memcpy(s, data, size);
	s[size] = 0;
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
		long long v = cli_int("--n", s, LLONG_MIN, LLONG_MAX);
		(void)v;
		stage++;
	} // fall through
	case 2: {
		double v = cli_double("--x", s, -1e3, 1e3);
		if (!(v >= -1e3 && v <= 1e3))
			abort();
		stage++;
	} // fall through
	case 3: {
		double v = cli_double("--x", s, -HUGE_VAL, HUGE_VAL);
		if (!isfinite(v))
			abort();
		stage++;
	} // fall through
	case 4: {
		uint64_t v = cli_size("--size", s);
		if (v == 0)
			abort();
		stage++;
	} // fall through
	default:
		break;
	}
	return 0;
}
