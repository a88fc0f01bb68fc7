// mm-sample's image files: with a checkpoint made here by mm-tokenize and mm-train, every PNG
// decodes (mm_image_load) at the model's size, the grid holds the same pixels tile by tile, and
// the images are the same bytes at 1 and 2 threads (what mm-sample(1) reports as observed).
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "mm.h"

static int run(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	int rc = system(cmd);
	CHECK_MSG(rc == 0, "%s: status %d", cmd, rc);
	return rc;
}

static int same_file(const char *a, const char *b)
{
	uint8_t *x, *y;
	size_t nx, ny;
	if (mm_read_file(a, 1 << 24, &x, &nx) || mm_read_file(b, 1 << 24, &y, &ny))
		return 0;
	int same = nx == ny && !memcmp(x, y, nx);
	free(x), free(y);
	return same;
}

int main(void)
{
	const char *mm = getenv("MM"), *data = getenv("DATA");
	if (!mm || !data) {
		fprintf(stderr, "MM and DATA must be set (tests/run.sh does)\n");
		return 1;
	}
	const char *F = "fashion-mnist";
	if (run("%s/mm-tokenize --format idx %s/%s/t10k-images-idx3-ubyte.gz %s/%s/t10k-labels-idx1-ubyte.gz "
		"--labels %s/%s/labels.txt --caption-template 'a photo of a {label}' -o fm 2>/dev/null",
		mm, data, F, data, F, data, F) ||
	    run("%s/mm-train --data fm-00000.mms --out run --dim 32 --layers 1 --heads 2 --seq-len 80 --batch 4 "
		"--steps 3 --threads 1 2>/dev/null", mm))
		return check_done();
	const char *args = "--model run --prompt 'a photo of a bag' --image --steps 3 -n 5 --batch 2 --max-tokens 2";
	run("%s/mm-sample %s --threads 1 -o one --grid one.png >/dev/null 2>&1", mm, args);
	run("%s/mm-sample %s --threads 2 -o two --grid two.png >/dev/null 2>&1", mm, args);

	mm_image grid, img;
	CHECK_OK(mm_image_load("one.png", 0, &grid));
	// 5 images: 3 columns, 2 rows, 2 pixels apart and around
	CHECK(grid.w == 3 * 30 + 2 && grid.h == 2 * 30 + 2 && grid.c == 1);
	for (int i = 0; i < 5; i++) {
		char a[64], b[64];
		snprintf(a, sizeof a, "one/%03d.png", i);
		snprintf(b, sizeof b, "two/%03d.png", i);
		CHECK_OK(mm_image_load(a, 0, &img));
		CHECK(img.w == 28 && img.h == 28 && img.c == 1);
		int x0 = 2 + (i % 3) * 30, y0 = 2 + (i / 3) * 30, diff = 0;
		for (int y = 0; y < 28 && img.px; y++)
			diff |= memcmp(img.px + y * 28, grid.px + (size_t)(y0 + y) * grid.w + x0, 28);
		CHECK_MSG(!diff, "tile %d differs from %s", i, a);
		CHECK_MSG(same_file(a, b), "%s and %s differ (1 and 2 threads)", a, b);
		mm_image_free(&img);
	}
	mm_image_free(&grid);
	CHECK(same_file("one.png", "two.png"));
	return check_done();
}
