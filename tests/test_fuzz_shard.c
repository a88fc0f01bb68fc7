// Replays the shard fuzz corpus (tests/fuzz/corpus/shard) and the golden file through the fuzz
// target, without libFuzzer: every input must be read or refused cleanly.
// The target comes first: it defines _GNU_SOURCE before any system header.
#include "fuzz/fuzz_shard.c"

#include <dirent.h>

#include "check.h"
#include "fileio.h"

static int replay(const char *path)
{
	uint8_t *b;
	size_t n;
	if (mm_read_file(path, 1 << 24, &b, &n) != 0) {
		fprintf(stderr, "%s\n", mm_errmsg());
		return 0;
	}
	LLVMFuzzerTestOneInput(b, n);
	free(b);
	return 1;
}

int main(void)
{
	const char *t = getenv("T");
	char dir[4096], path[8192];
	snprintf(dir, sizeof dir, "%s/fuzz/corpus/shard", t ? t : "tests");
	int n = 0;
	DIR *d = opendir(dir);
	CHECK_MSG(d != NULL, "%s: cannot open", dir);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		n += replay(path);
	}
	if (d)
		closedir(d);
	snprintf(path, sizeof path, "%s/golden/v1.mms", t ? t : "tests");
	n += replay(path);
	CHECK(n >= 4);
	printf("%d inputs replayed\n", n);
	return check_done();
}
