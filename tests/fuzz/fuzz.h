// Shared by the fuzz targets (tests/fuzz/fuzz_*.c): the readers under test take paths, so the
// input goes into an in-memory file (memfd: nothing on disk, nothing left behind), named by its
// /proc/self/fd path. Each target is one file defining LLVMFuzzerTestOneInput; libFuzzer builds
// it alone (make fuzz), tests/test_fuzz.c includes them all and replays every corpus.
#ifndef MM_FUZZ_H
#define MM_FUZZ_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE // memfd_create
#endif

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "err.h"

#define FUZZ_FILES 2

// Path of in-memory file number slot (0 or 1), holding exactly the n bytes of data.
static inline const char *fuzz_file(int slot, const uint8_t *data, size_t n)
{
	static int fd[FUZZ_FILES] = {-1, -1};
	static char path[FUZZ_FILES][64];
	if (fd[slot] < 0) {
		fd[slot] = memfd_create("mm-fuzz", 0);
		if (fd[slot] < 0)
			abort();
		snprintf(path[slot], sizeof path[slot], "/proc/self/fd/%d", fd[slot]);
	}
	if (ftruncate(fd[slot], 0) != 0 || (n && pwrite(fd[slot], data, n, 0) != (ssize_t)n))
		abort();
	return path[slot];
}

// A refusal must say which input it is about.
static inline void fuzz_refused(const char *name)
{
	const char *m = mm_errmsg();
	if (!m || !strstr(m, name)) {
		fprintf(stderr, "error message without '%s': %s\n", name, m ? m : "(none)");
		abort();
	}
}

// A writable copy of the input, for targets that mend its checksums before reading it.
static inline uint8_t *fuzz_copy(const uint8_t *data, size_t n)
{
	uint8_t *b = malloc(n ? n : 1);
	if (!b)
		abort();
	memcpy(b, data, n);
	return b;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
