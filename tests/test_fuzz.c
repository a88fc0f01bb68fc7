// Replays every fuzz corpus (tests/fuzz/corpus/NAME, regression cases included) through its
// target (tests/fuzz/fuzz_NAME.c), built with the normal compiler and without libFuzzer: every
// input must be read or refused cleanly. A target aborts on a broken promise; `make test
// SANITIZE=1` adds ASan and UBSan. Each target is included under its own name.
#include "fuzz/fuzz.h"

#include <dirent.h>

#define LLVMFuzzerTestOneInput fuzz_shard
#include "fuzz/fuzz_shard.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_ckpt
#include "fuzz/fuzz_ckpt.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_tokenizer
#include "fuzz/fuzz_tokenizer.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_jsonl
#include "fuzz/fuzz_jsonl.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_text
#include "fuzz/fuzz_text.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_idx
#include "fuzz/fuzz_idx.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_wds
#include "fuzz/fuzz_wds.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_png
#include "fuzz/fuzz_png.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_jpeg
#include "fuzz/fuzz_jpeg.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_kv
#include "fuzz/fuzz_kv.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_cli
#include "fuzz/fuzz_cli.c"
#undef LLVMFuzzerTestOneInput

#include "check.h"
#include "fileio.h"

static const struct {
	const char *name;
	int (*one)(const uint8_t *data, size_t size);
	const char *extra; // a file outside the corpus replayed too (under tests/), or NULL
} targets[] = {
	{"shard", fuzz_shard, "golden/v1.mms"},
	{"ckpt", fuzz_ckpt, NULL},
	{"tokenizer", fuzz_tokenizer, "golden/tokenizer-v1.tok"},
	{"jsonl", fuzz_jsonl, NULL},
	{"text", fuzz_text, NULL},
	{"idx", fuzz_idx, NULL},
	{"wds", fuzz_wds, NULL},
	{"png", fuzz_png, NULL},
	{"jpeg", fuzz_jpeg, NULL},
	{"kv", fuzz_kv, NULL},
	{"cli", fuzz_cli, NULL},
};

static int replay(int (*one)(const uint8_t *, size_t), const char *path)
{
	uint8_t *b;
	size_t n;
	if (mm_read_file(path, 1 << 24, &b, &n) != 0) {
		fprintf(stderr, "%s\n", mm_errmsg());
		return 0;
	}
	one(b, n);
	free(b);
	return 1;
}

int main(void)
{
	const char *t = getenv("T");
	t = t ? t : "tests";
	char dir[4096], path[8192];
	int total = 0;
	for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
		snprintf(dir, sizeof dir, "%s/fuzz/corpus/%s", t, targets[i].name);
		int n = 0;
		DIR *d = opendir(dir);
		CHECK_MSG(d != NULL, "%s: cannot open", dir);
		struct dirent *e;
		while (d && (e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
			n += replay(targets[i].one, path);
		}
		if (d)
			closedir(d);
		if (targets[i].extra) {
			snprintf(path, sizeof path, "%s/%s", t, targets[i].extra);
			n += replay(targets[i].one, path);
		}
		// A corpus that went missing would pass without replaying anything.
		CHECK_MSG(n >= 2, "%s: %d inputs", targets[i].name, n);
		printf("%-10s %d inputs replayed\n", targets[i].name, n);
		total += n;
	}
	printf("%d inputs replayed\n", total);
	return check_done();
}
