// Fuzz target for the shard reader: the input is a whole shard file. It must never crash,
// and every refusal must name the file.
//
// libFuzzer build; CRCs are not enforced in this mode, so that mutations reach the parsers
// behind them (see CRC_BAD in lib/shard.c and lib/layout.c):
//   clang -g -O1 -fsanitize=fuzzer,address,undefined -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
//     -Ilib tests/fuzz/fuzz_shard.c lib/shard.c lib/layout.c lib/doc.c lib/err.c lib/checksum.c
//     lib/fileio.c -lzstd -o fuzz_shard   (one line)
//   ./fuzz_shard -max_len=65536 tests/fuzz/corpus/shard
// tests/test_fuzz_shard.c replays the corpus under `make test`, without libFuzzer.
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "doc.h"
#include "err.h"
#include "shard.h"

static char fuzz_path[64];

static void fuzz_refused(void)
{
	if (!strstr(mm_errmsg(), fuzz_path)) {
		fprintf(stderr, "error message without the file name: %s\n", mm_errmsg());
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	// The reader takes a path: an in-memory file keeps the disk out of the loop.
	static int fd = -1;
	if (fd < 0) {
		fd = memfd_create("fuzz_shard", 0);
		if (fd < 0)
			abort();
		snprintf(fuzz_path, sizeof fuzz_path, "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) != 0 || (size && pwrite(fd, data, size, 0) != (ssize_t)size))
		abort();
	mm_shard_reader *r;
	if (mm_shard_open(&r, fuzz_path) != 0) {
		fuzz_refused();
		return 0;
	}
	const mm_shard_info *in = mm_shard_get_info(r);
	if (mm_shard_verify(r) != 0)
		fuzz_refused();
	mm_doc d;
	mm_doc_init(&d);
	for (uint64_t k = 0; k < in->n_docs && k < 1000; k++) {
		if (mm_shard_read(r, k, &d) != 0) {
			fuzz_refused();
			continue;
		}
		// What the reader returns keeps the header's promises.
		for (uint32_t i = 0; i < d.n_segs; i++) {
			const mm_segment *s = &d.segs[i];
			if (s->type == MM_SEG_TEXT) {
				for (uint32_t j = 0; j < s->n_tokens; j++)
					if (s->tokens[j] >= in->vocab_size)
						abort();
			} else if (s->type != MM_SEG_IMAGE || s->h != in->img_h || s->w != in->img_w ||
				   s->c != in->img_c || s->p != in->patch) {
				abort();
			}
		}
	}
	mm_doc_free(&d);
	mm_shard_close(r);
	return 0;
}
