// The checkpoint container: round trip, and every corruption or truncation refused.
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "mm.h"
#include "ckpt.h"

#define TAG_A MM_CKPT_TAG('A', 'A', 'A', 'A')
#define TAG_B MM_CKPT_TAG('B', 'B', 'B', 'B')

static int write_bytes(const char *path, const uint8_t *b, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	size_t w = fwrite(b, 1, n, f);
	fclose(f);
	return w == n ? 0 : -1;
}

int main(void)
{
	float w[37];
	for (int i = 0; i < 37; i++)
		w[i] = (float)i * 0.5f - 3;
	const char *text = "dim = 32\nlayers = 2\n";
	mm_ckpt_section secs[] = {
		{TAG_A, strlen(text), text},
		{TAG_B, sizeof w, w},
	};
	CHECK_OK(mm_ckpt_write("a.mmc", secs, 2));

	mm_ckpt *ck;
	CHECK_OK(mm_ckpt_read(&ck, "a.mmc"));
	const void *data;
	CHECK_OK(mm_ckpt_need(ck, TAG_B, sizeof w, &data));
	CHECK(memcmp(data, w, sizeof w) == 0);
	CHECK(mm_ckpt_find(ck, TAG_A)->size == strlen(text));
	CHECK(mm_ckpt_find(ck, MM_CKPT_TAG('Z', 'Z', 'Z', 'Z')) == NULL);
	CHECK(mm_ckpt_need(ck, TAG_B, 4, &data) == -MM_EFORMAT);
	CHECK(strstr(mm_errmsg(), "a.mmc") != NULL);
	mm_ckpt_free(ck);

	uint8_t *orig;
	size_t n;
	CHECK_OK(mm_read_file("a.mmc", 1 << 20, &orig, &n));
	// Every single flipped byte is refused (all bytes are under a CRC or must be zero).
	int undetected = 0;
	for (size_t i = 0; i < n; i++) {
		orig[i] ^= 0x20;
		CHECK(write_bytes("bad.mmc", orig, n) == 0);
		if (mm_ckpt_read(&ck, "bad.mmc") == 0) {
			undetected++;
			mm_ckpt_free(ck);
		}
		orig[i] ^= 0x20;
	}
	CHECK_EQ_INT(undetected, 0);
	// Every truncation is refused, with the file named.
	int accepted = 0;
	for (size_t len = 0; len < n; len++) {
		CHECK(write_bytes("short.mmc", orig, len) == 0);
		int rc = mm_ckpt_read(&ck, "short.mmc");
		if (rc == 0) {
			accepted++;
			mm_ckpt_free(ck);
		} else if (!strstr(mm_errmsg(), "short.mmc")) {
			accepted++;
		}
	}
	CHECK_EQ_INT(accepted, 0);
	CHECK(mm_ckpt_read(&ck, "nonexistent.mmc") == -MM_EIO);
	free(orig);
	return check_done();
}
