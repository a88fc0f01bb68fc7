// The small foundations: error messages, byte order, CRC-32C, RNG, atomic files.
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "mm.h"
#include "kv.h"

static void test_errors(void)
{
	int rc = mm_fail(MM_EFORMAT, "%s: bad magic at offset %d", "x.mms", 8);
	CHECK_EQ_INT(rc, -MM_EFORMAT);
	CHECK(strcmp(mm_errmsg(), "x.mms: bad magic at offset 8") == 0);
	mm_errctx("reading %s", "list");
	CHECK(strcmp(mm_errmsg(), "reading list: x.mms: bad magic at offset 8") == 0);
	CHECK(strcmp(mm_strerror(-MM_ETRUNC), "truncated file") == 0);
	CHECK(strcmp(mm_strerror(9999), "unknown error") == 0);
}

static void test_bytes(void)
{
	uint8_t b[8];
	mm_put_u32(b, 0x12345678u);
	CHECK(b[0] == 0x78 && b[3] == 0x12);
	CHECK_EQ_INT(mm_get_u32(b), 0x12345678u);
	mm_put_u64(b, 0x0102030405060708ULL);
	CHECK(b[0] == 8 && b[7] == 1);
	CHECK(mm_get_u64(b) == 0x0102030405060708ULL);
	mm_put_f32(b, -1.5f);
	CHECK(mm_get_f32(b) == -1.5f);
}

static void test_crc(void)
{
	CHECK_EQ_INT(mm_crc32c(0, "123456789", 9), 0xE3069283u);
	// Incremental equals one-shot, across the 8-byte fast path.
	const char *s = "The quick brown fox jumps over the lazy dog, twice over.";
	size_t n = strlen(s);
	CHECK_EQ_INT(mm_crc32c(mm_crc32c(0, s, 13), s + 13, n - 13), mm_crc32c(0, s, n));
	CHECK_EQ_INT(mm_crc32c_soft(0, "123456789", 9), 0xE3069283u);
	// The instruction path (where there is one) equals the tables at every length and alignment.
	uint8_t buf[300];
	for (size_t i = 0; i < sizeof buf; i++)
		buf[i] = (uint8_t)(i * 131 + 7 + (i >> 3));
	int same = 1;
	for (size_t off = 0; off < 8; off++)
		for (size_t len = 0; off + len <= sizeof buf; len += 1 + len / 16)
			same &= mm_crc32c(0x1234567u, buf + off, len) == mm_crc32c_soft(0x1234567u, buf + off, len);
	CHECK(same);
	CHECK(mm_hash64(MM_HASH64_INIT, "a", 1) != mm_hash64(MM_HASH64_INIT, "b", 1));
}

static void test_rng(void)
{
	mm_rng a, b;
	mm_rng_seed(&a, 42, 0);
	mm_rng_seed(&b, 42, 0);
	int same = 1;
	for (int i = 0; i < 100; i++)
		same &= mm_rng_u64(&a) == mm_rng_u64(&b);
	CHECK(same);
	mm_rng_seed(&b, 42, 1);
	CHECK(mm_rng_u64(&a) != mm_rng_u64(&b));
	double sum = 0, sq = 0;
	int n = 100000, below_ok = 1;
	for (int i = 0; i < n; i++) {
		double z = mm_rng_normal(&a);
		sum += z;
		sq += z * z;
		below_ok &= mm_rng_below(&a, 7) < 7;
	}
	CHECK_MSG(fabs(sum / n) < 0.02, "mean %g", sum / n);
	CHECK_MSG(fabs(sq / n - 1) < 0.02, "var %g", sq / n);
	CHECK(below_ok);
}

static void test_afile(void)
{
	mm_afile a;
	CHECK_OK(mm_afile_open(&a, "out.bin"));
	CHECK_OK(mm_afile_write(&a, "hello", 5));
	CHECK(access("out.bin", F_OK) != 0); // not visible before commit
	CHECK_OK(mm_afile_commit(&a));
	uint8_t *buf;
	size_t len;
	CHECK_OK(mm_read_file("out.bin", 100, &buf, &len));
	CHECK(len == 5 && memcmp(buf, "hello", 5) == 0);
	free(buf);
	CHECK(mm_read_file("out.bin", 4, &buf, &len) == -MM_ERANGE);
	CHECK(mm_read_file("missing.bin", 4, &buf, &len) == -MM_EIO);
	CHECK(strstr(mm_errmsg(), "missing.bin") != NULL);
	CHECK_OK(mm_read_file("out.bin", 5, &buf, &len)); // exactly the limit
	CHECK(len == 5 && buf[5] == 0);
	free(buf);
	// Under a directory descriptor; messages name the given path.
	CHECK(mkdir("sub", 0755) == 0 || errno == EEXIST);
	FILE *f = fopen("sub/in.txt", "wb");
	CHECK(f && fwrite("abc\n", 1, 4, f) == 4);
	if (f)
		fclose(f);
	int dfd = open("sub", O_RDONLY | O_DIRECTORY);
	CHECK(dfd >= 0);
	CHECK_OK(mm_read_file_at(dfd, "in.txt", "sub/in.txt", 100, &buf, &len));
	CHECK(len == 4 && memcmp(buf, "abc\n", 5) == 0);
	free(buf);
	CHECK(mm_read_file_at(dfd, "nope.txt", "sub/nope.txt", 100, &buf, &len) == -MM_EIO);
	CHECK_MSG(strncmp(mm_errmsg(), "sub/nope.txt: cannot open", 25) == 0, "%s", mm_errmsg());
	close(dfd);
	// A directory is a read error; a file whose size fstat does not know is read to its end.
	CHECK(mm_read_file("sub", 100, &buf, &len) == -MM_EIO);
	CHECK_OK(mm_read_file("/proc/self/status", 1 << 20, &buf, &len));
	CHECK(len > 16 && strncmp((char *)buf, "Name:", 5) == 0 && strlen((char *)buf) == len);
	free(buf);

	CHECK_OK(mm_afile_open(&a, "gone.bin"));
	char *tmp = strdup(a.tmp);
	mm_afile_abort(&a);
	CHECK(access("gone.bin", F_OK) != 0);
	CHECK(access(tmp, F_OK) != 0);
	free(tmp);
}

static void test_kv(void)
{
	const char *text = "# model\ndim = 384\n  image_weight=5 # lambda\n\nname = a b \n";
	mm_kv *kv;
	int n;
	CHECK_OK(mm_kv_parse(text, strlen(text), "c.conf", &kv, &n));
	CHECK_EQ_INT(n, 3);
	if (n == 3) {
		CHECK(strcmp(kv[0].key, "dim") == 0 && strcmp(kv[0].value, "384") == 0 && kv[0].line == 2);
		CHECK(strcmp(kv[1].key, "image-weight") == 0 && strcmp(kv[1].value, "5") == 0);
		CHECK(strcmp(kv[2].value, "a b") == 0 && kv[2].line == 5);
	}
	mm_kv_free(kv, n);
	const char *bad = "dim = 3\nlayers 6\n";
	CHECK(mm_kv_parse(bad, strlen(bad), "c.conf", &kv, &n) == -MM_EFORMAT);
	CHECK(strcmp(mm_errmsg(), "c.conf:2: expected 'key = value'") == 0);
	const char *badkey = "d!m = 3\n";
	CHECK(mm_kv_parse(badkey, strlen(badkey), "c.conf", &kv, &n) == -MM_EFORMAT);
}

int main(void)
{
	test_kv();
	test_errors();
	test_bytes();
	test_crc();
	test_rng();
	test_afile();
	return check_done();
}
