// Image decoding against the committed fixtures' formulas, robustness on cut and damaged files,
// the decompression-bomb guard, colour conversion, resizing, patch order and PNG writing.
// `test_image --gen DIR` rewrites the fixtures (see image_fixtures.h).
#include <dirent.h>
#include <math.h>
#include <string.h>
#include <zlib.h>

#include "check.h"
#include "image_fixtures.h"
#include "mm.h"
#include "prof.h"

#define MAXPX (64u << 20)

static char fixdir[512];

static const char *fix_path(const char *name)
{
	static char p[1024];
	snprintf(p, sizeof p, "%s/%s", fixdir, name);
	return p;
}

static void test_png_fixtures(void)
{
	for (size_t i = 0; i < N_PNG_FIXTURES; i++) {
		const png_fixture *f = &png_fixtures[i];
		mm_image img;
		int rc = mm_image_load(fix_path(f->name), MAXPX, &img);
		CHECK_MSG(rc == 0, "%s: %s", f->name, mm_errmsg());
		if (rc)
			continue;
		CHECK_MSG(img.w == f->w && img.h == f->h && img.c == f->decoded_c, "%s: %ux%ux%u", f->name, img.w, img.h,
			  img.c);
		int bad = 0;
		for (uint32_t y = 0; y < img.h && img.c == f->decoded_c; y++)
			for (uint32_t x = 0; x < img.w; x++)
				for (uint32_t k = 0; k < img.c; k++) {
					uint8_t got = img.px[((size_t)y * img.w + x) * img.c + k];
					uint8_t want = fix_expected(f, x, y, k);
					if (got != want && bad++ < 3)
						fprintf(stderr, "%s (%u,%u) ch %u: %u, want %u\n", f->name, x, y, k, got, want);
				}
		CHECK_MSG(bad == 0, "%s: %d samples differ", f->name, bad);
		mm_image_free(&img);
	}
	// The 16-bit formula must exercise rounding: plain truncation (v >> 8) would differ somewhere.
	int differs = 0;
	for (uint32_t y = 0; y < FIX_H; y++)
		for (uint32_t x = 0; x < FIX_W; x++) {
			uint32_t v = fix_sample(16, x, y, 0);
			differs += (v >> 8) != (v * 255 + 32767) / 65535;
		}
	CHECK(differs > 0);
}

// JPEG is lossy: every sample within 8 of the formula and the mean error under 1.5 (quality 95,
// 4:2:0 chroma; measured with libjpeg-turbo 2.1.5: 5 and 0.94 for colour, exact for gray).
static void test_jpeg_fixtures(void)
{
	for (size_t i = 0; i < N_JPEG_FIXTURES; i++) {
		const jpeg_fixture *f = &jpeg_fixtures[i];
		mm_image img;
		int rc = mm_image_load(fix_path(f->name), MAXPX, &img);
		if (f->cmyk) {
			CHECK_MSG(rc == -MM_EUNSUPPORTED, "%s: rc %d", f->name, rc);
			CHECK(strstr(mm_errmsg(), "CMYK") && strstr(mm_errmsg(), f->name));
			continue;
		}
		CHECK_MSG(rc == 0, "%s: %s", f->name, mm_errmsg());
		if (rc)
			continue;
		CHECK(img.w == JPG_W && img.h == JPG_H && img.c == (f->gray ? 1u : 3u));
		int maxerr = 0;
		double sum = 0;
		for (uint32_t y = 0; y < img.h; y++)
			for (uint32_t x = 0; x < img.w; x++)
				for (uint32_t k = 0; k < img.c; k++) {
					int want = f->gray ? fix_jpeg_gray(x, y) : fix_jpeg_rgb(x, y, k);
					int e = abs(img.px[((size_t)y * img.w + x) * img.c + k] - want);
					maxerr = e > maxerr ? e : maxerr;
					sum += e;
				}
		double mean = sum / ((double)img.w * img.h * img.c);
		CHECK_MSG(maxerr <= 8 && mean < 1.5, "%s: max error %d, mean %.2f", f->name, maxerr, mean);
		mm_image_free(&img);
	}
}

static void check_fails(const char *path, int code, const char *words)
{
	mm_image img = {0};
	int rc = mm_image_load(path, MAXPX, &img);
	CHECK_MSG(rc == -code, "%s: rc %d, want %d (%s)", path, rc, -code, mm_errmsg());
	CHECK_MSG(strstr(mm_errmsg(), path) && strstr(mm_errmsg(), words), "%s: message '%s'", path, mm_errmsg());
	CHECK(img.px == NULL);
}

static void test_bad_files(void)
{
	check_fails(fix_path("truncated.png"), MM_EIMAGE, "truncated");
	check_fails(fix_path("truncated.jpg"), MM_EIMAGE, "Premature end");
	check_fails(fix_path("not_image.txt"), MM_EIMAGE, "not a PNG or JPEG");
	check_fails(fix_path("missing.png"), MM_EIO, "cannot open");
	check_fails(".", MM_EIO, "");
}

static uint8_t *slurp(const char *name, size_t *n)
{
	uint8_t *data = NULL;
	CHECK_OK(mm_read_file(fix_path(name), 1 << 20, &data, n));
	return data;
}

// Every prefix of a file fails cleanly; flipping any byte never crashes. Run under ASan/UBSan
// to make "never crashes" mean "no invalid access".
static void test_damage(const char *name)
{
	size_t n;
	uint8_t *data = slurp(name, &n);
	if (!data)
		return;
	int prefix_ok = 0, flips_ok = 0;
	for (size_t len = 0; len < n; len++) {
		uint8_t *cut = malloc(len ? len : 1); // exact size: overreads show up under ASan
		memcpy(cut, data, len);
		mm_image img;
		int rc = mm_image_load_mem(cut, len, name, MAXPX, &img);
		prefix_ok += rc < 0 && strncmp(mm_errmsg(), name, strlen(name)) == 0 && img.px == NULL;
		if (rc == 0)
			fprintf(stderr, "%s: prefix of %zu bytes decoded\n", name, len);
		free(cut);
	}
	CHECK_MSG(prefix_ok == (int)n, "%s: %d of %zu prefixes refused cleanly", name, prefix_ok, n);
	uint8_t *copy = malloc(n);
	for (size_t i = 0; i < n; i++) {
		memcpy(copy, data, n);
		copy[i] ^= (uint8_t)(0x55 + i);
		mm_image img;
		int rc = mm_image_load_mem(copy, n, name, MAXPX, &img);
		if (rc == 0) {
			flips_ok += img.w * img.h > 0 && img.c >= 1 && img.c <= 4;
			mm_image_free(&img);
		} else {
			flips_ok += strncmp(mm_errmsg(), name, strlen(name)) == 0;
		}
	}
	CHECK_MSG(flips_ok == (int)n, "%s: %d of %zu damaged copies handled", name, flips_ok, n);
	free(copy);
	free(data);
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

// A header that promises more pixels than allowed is refused at once, without the pixel data.
static void test_max_pixels(void)
{
	// PNG: signature and a valid IHDR of 100000 x 100000 RGBA, nothing else.
	uint8_t png[8 + 25] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
	put_be32(png + 8, 13);
	memcpy(png + 12, "IHDR", 4);
	put_be32(png + 16, 100000);
	put_be32(png + 20, 100000);
	png[24] = 8, png[25] = 6, png[26] = 0, png[27] = 0, png[28] = 0;
	put_be32(png + 29, (uint32_t)crc32(0, png + 12, 17));
	mm_image img;
	double t = mm_now();
	CHECK_EQ_INT(mm_image_load_mem(png, sizeof png, "bomb.png", MAXPX, &img), -MM_ERANGE);
	CHECK_MSG(strstr(mm_errmsg(), "bomb.png") && strstr(mm_errmsg(), "100000x100000"), "%s", mm_errmsg());

	// JPEG: the baseline fixture with its frame header saying 60000 x 60000.
	size_t n;
	uint8_t *jpg = slurp("rgb.jpg", &n);
	size_t sof = 0;
	for (size_t i = 2; jpg && i + 9 < n; i++)
		if (jpg[i] == 0xFF && jpg[i + 1] == 0xC0) {
			sof = i;
			break;
		}
	CHECK(sof > 0);
	if (sof) {
		jpg[sof + 5] = 60000 >> 8, jpg[sof + 6] = 60000 & 255, jpg[sof + 7] = 60000 >> 8, jpg[sof + 8] = 60000 & 255;
		CHECK_EQ_INT(mm_image_load_mem(jpg, n, "bomb.jpg", MAXPX, &img), -MM_ERANGE);
		CHECK(strstr(mm_errmsg(), "bomb.jpg") && strstr(mm_errmsg(), "60000x60000"));
	}
	free(jpg);
	CHECK_MSG(mm_now() - t < 0.05, "refusals took %.3f s", mm_now() - t);

	// The limit is inclusive: 9x7 = 63 pixels.
	CHECK_EQ_INT(mm_image_load(fix_path("g8.png"), 62, &img), -MM_ERANGE);
	CHECK_OK(mm_image_load(fix_path("g8.png"), 63, &img));
	mm_image_free(&img);
	CHECK_EQ_INT(mm_image_load(fix_path("rgb.jpg"), JPG_W * JPG_H - 1, &img), -MM_ERANGE);
	CHECK_OK(mm_image_load(fix_path("rgb.jpg"), JPG_W * JPG_H, &img));
	mm_image_free(&img);
}

static mm_image make_image(uint32_t w, uint32_t h, uint32_t c, const uint8_t *px)
{
	mm_image img;
	CHECK_OK(mm_image_alloc(&img, w, h, c));
	if (px && img.px)
		memcpy(img.px, px, (size_t)w * h * c);
	return img;
}

static void test_channels(void)
{
	static const uint8_t white[3] = {255, 255, 255}, bg[3] = {10, 20, 30};
	mm_image out;
	// RGB -> gray by Rec. 601: 0.299 * 255 = 76.2, 0.587 * 255 = 149.7, 0.114 * 255 = 29.1.
	uint8_t rgb[] = {255, 0, 0, 0, 255, 0, 0, 0, 255, 200, 100, 50};
	mm_image in = make_image(4, 1, 3, rgb);
	CHECK_OK(mm_image_to_channels(&in, 1, white, &out));
	CHECK(out.c == 1 && out.px[0] == 76 && out.px[1] == 150 && out.px[2] == 29 && out.px[3] == 124);
	mm_image_free(&out);
	CHECK_OK(mm_image_to_channels(&in, 3, white, &out)); // no alpha: a copy
	CHECK(out.c == 3 && memcmp(out.px, rgb, sizeof rgb) == 0);
	mm_image_free(&out);
	mm_image_free(&in);
	// Gray -> RGB copies the value.
	uint8_t g[] = {0, 77, 255};
	in = make_image(3, 1, 1, g);
	CHECK_OK(mm_image_to_channels(&in, 3, bg, &out));
	CHECK(out.px[3] == 77 && out.px[4] == 77 && out.px[5] == 77 && out.px[8] == 255);
	mm_image_free(&out);
	mm_image_free(&in);
	// 50% red over white: (255*128 + 255*127) / 255 = 255; (255*127) / 255 = 127.
	uint8_t rgba[] = {255, 0, 0, 128, 9, 9, 9, 0, 1, 2, 3, 255};
	in = make_image(3, 1, 4, rgba);
	CHECK_OK(mm_image_to_channels(&in, 3, white, &out));
	CHECK(out.px[0] == 255 && out.px[1] == 127 && out.px[2] == 127);
	CHECK(out.px[3] == 255 && out.px[4] == 255 && out.px[5] == 255); // fully transparent
	CHECK(out.px[6] == 1 && out.px[7] == 2 && out.px[8] == 3);	  // opaque
	mm_image_free(&out);
	CHECK_OK(mm_image_to_channels(&in, 3, bg, &out));
	CHECK(out.px[3] == 10 && out.px[4] == 20 && out.px[5] == 30);
	mm_image_free(&out);
	// RGBA -> gray, one rounding: (76.245 * 128 + 255 * 127) / 255 = 165.27.
	CHECK_OK(mm_image_to_channels(&in, 1, white, &out));
	CHECK(out.px[0] == 165 && out.px[1] == 255 && out.px[2] == 2);
	mm_image_free(&out);
	mm_image_free(&in);
	// Gray+alpha: over the background's luma for gray (18.15), over its colour for RGB.
	uint8_t ga[] = {100, 0, 100, 255, 200, 51};
	in = make_image(3, 1, 2, ga);
	CHECK_OK(mm_image_to_channels(&in, 1, bg, &out));
	// (200 * 51 + 18.15 * 204) / 255 = 54.52
	CHECK(out.px[0] == 18 && out.px[1] == 100 && out.px[2] == 55);
	mm_image_free(&out);
	CHECK_OK(mm_image_to_channels(&in, 3, bg, &out));
	CHECK(out.px[0] == 10 && out.px[1] == 20 && out.px[2] == 30 && out.px[3] == 100 && out.px[5] == 100);
	CHECK(out.px[6] == 48 && out.px[7] == 56 && out.px[8] == 64); // (200*51 + bg*204) / 255
	mm_image_free(&out);
	CHECK_EQ_INT(mm_image_to_channels(&in, 2, bg, &out), -MM_EINVAL);
	mm_image_free(&in);
}

static uint8_t px_at(const mm_image *m, uint32_t x, uint32_t y, uint32_t k)
{
	return m->px[((size_t)y * m->w + x) * m->c + k];
}

static void test_resize_exact(void)
{
	static const uint8_t white[3] = {255, 255, 255}, bg[3] = {200, 200, 200};
	mm_image out;
	// 4x4 -> 2x2: block means, halves rounded up.
	uint8_t a[16] = {0, 1, 10, 20, 1, 0, 30, 40, 100, 100, 7, 8, 100, 101, 9, 9};
	mm_image in = make_image(4, 4, 1, a);
	CHECK_OK(mm_image_resize(&in, 2, 2, MM_FIT_STRETCH, white, &out));
	CHECK(out.px[0] == 1 && out.px[1] == 25 && out.px[2] == 100 && out.px[3] == 8); // .5, 25, 100.25, 8.25
	mm_image_free(&out);
	mm_image_free(&in);

	// 3x3 -> 2x2: output 0 covers source [0, 1.5): weights 1 and 1/2 per axis.
	uint8_t b[9] = {0, 90, 180, 30, 60, 255, 12, 0, 99};
	in = make_image(3, 3, 1, b);
	CHECK_OK(mm_image_resize(&in, 2, 2, MM_FIT_STRETCH, white, &out));
	const double wt[2][3] = {{1, 0.5, 0}, {0, 0.5, 1}};
	for (int oy = 0; oy < 2; oy++)
		for (int ox = 0; ox < 2; ox++) {
			double s = 0;
			for (int y = 0; y < 3; y++)
				for (int x = 0; x < 3; x++)
					s += wt[oy][y] * wt[ox][x] * b[y * 3 + x];
			int want = (int)floor(s / 2.25 + 0.5);
			CHECK_MSG(out.px[oy * 2 + ox] == want, "(%d,%d): %u, want %d", ox, oy, out.px[oy * 2 + ox], want);
		}
	// by hand: top-left (0 + 45 + 15 + 15) / 2.25 = 33.3, bottom-right (15 + 127.5 + 0 + 99) / 2.25 = 107.3
	CHECK(out.px[0] == 33 && out.px[3] == 107);
	mm_image_free(&out);
	mm_image_free(&in);

	// Crop at scale 1: 6x2 -> 2x2 keeps columns 2 and 3.
	uint8_t c[12] = {0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15};
	in = make_image(6, 2, 1, c);
	CHECK_OK(mm_image_resize(&in, 2, 2, MM_FIT_CROP, white, &out));
	CHECK(out.px[0] == 2 && out.px[1] == 3 && out.px[2] == 12 && out.px[3] == 13);
	mm_image_free(&out);
	// Pad at scale 1/3: 6x2 -> 2x2: the image becomes 2 x 2/3 pixels, centred: output rows 0 and 1
	// are each 1/3 image (source rows 0 and 1) and 2/3 background.
	CHECK_OK(mm_image_resize(&in, 2, 2, MM_FIT_PAD, bg, &out));
	// output (0, 0): (mean(0, 1, 2) + 2 * 200) / 3 = 133.7; (1, 1): (mean(13, 14, 15) + 400) / 3 = 138
	CHECK_MSG(out.px[0] == 134 && out.px[1] == 135 && out.px[2] == 137 && out.px[3] == 138, "%u %u %u %u",
		  out.px[0], out.px[1], out.px[2], out.px[3]);
	mm_image_free(&out);
	mm_image_free(&in);

	// Crop with resampling: 8x4 -> 2x2 at scale 1/2 takes the centre 4x4 block, 2x2 means.
	uint8_t d[32];
	for (int i = 0; i < 32; i++)
		d[i] = (uint8_t)(i * 7);
	in = make_image(8, 4, 1, d);
	CHECK_OK(mm_image_resize(&in, 2, 2, MM_FIT_CROP, white, &out));
	for (int oy = 0; oy < 2; oy++)
		for (int ox = 0; ox < 2; ox++) {
			int x = 2 + 2 * ox, y = 2 * oy;
			int s = d[y * 8 + x] + d[y * 8 + x + 1] + d[(y + 1) * 8 + x] + d[(y + 1) * 8 + x + 1];
			CHECK(out.px[oy * 2 + ox] == (s + 2) / 4);
		}
	mm_image_free(&out);
	mm_image_free(&in);

	// Pad, enlarging nothing: 2x4 RGB -> 4x4 puts the image in columns 1..2, background around.
	uint8_t e[24];
	for (int i = 0; i < 24; i++)
		e[i] = (uint8_t)(i + 1);
	in = make_image(2, 4, 3, e);
	static const uint8_t rgbbg[3] = {7, 8, 9};
	CHECK_OK(mm_image_resize(&in, 4, 4, MM_FIT_PAD, rgbbg, &out));
	int ok = 1;
	for (uint32_t y = 0; y < 4; y++)
		for (uint32_t x = 0; x < 4; x++)
			for (uint32_t k = 0; k < 3; k++) {
				uint8_t want = (x == 0 || x == 3) ? rgbbg[k] : e[(y * 2 + x - 1) * 3 + k];
				ok &= px_at(&out, x, y, k) == want;
			}
	CHECK(ok);
	mm_image_free(&out);
	// ... and 1x4 gray -> 4x4 is offset by 1.5 pixels: columns 1 and 2 are half image.
	uint8_t f[4] = {100, 100, 0, 0};
	mm_image in1 = make_image(1, 4, 1, f);
	CHECK_OK(mm_image_resize(&in1, 4, 4, MM_FIT_PAD, bg, &out));
	CHECK(px_at(&out, 0, 0, 0) == 200 && px_at(&out, 1, 0, 0) == 150 && px_at(&out, 2, 0, 0) == 150 &&
	      px_at(&out, 3, 0, 0) == 200 && px_at(&out, 1, 3, 0) == 100);
	mm_image_free(&out);
	mm_image_free(&in1);
	// Gray+alpha pads with the background's luma, opaque.
	mm_image in2 = make_image(1, 2, 2, (const uint8_t[]){5, 6, 7, 8});
	CHECK_OK(mm_image_resize(&in2, 3, 2, MM_FIT_PAD, rgbbg, &out));
	CHECK(px_at(&out, 0, 0, 0) == 8 && px_at(&out, 0, 0, 1) == 255 && px_at(&out, 1, 1, 0) == 7 &&
	      px_at(&out, 1, 1, 1) == 8);
	mm_image_free(&out);
	mm_image_free(&in2);
	mm_image_free(&in);

	// Enlarging is bilinear with pixel centres aligned: 2 -> 4 gives v0, 3/4 v0 + 1/4 v1, ...
	uint8_t g[2] = {0, 200};
	in = make_image(2, 1, 1, g);
	CHECK_OK(mm_image_resize(&in, 4, 1, MM_FIT_STRETCH, white, &out));
	CHECK(out.px[0] == 0 && out.px[1] == 50 && out.px[2] == 150 && out.px[3] == 200);
	mm_image_free(&out);
	// Same size: a copy whatever the fit.
	CHECK_OK(mm_image_resize(&in, 2, 1, MM_FIT_PAD, white, &out));
	CHECK(out.px[0] == 0 && out.px[1] == 200);
	mm_image_free(&out);
	CHECK_EQ_INT(mm_image_resize(&in, 0, 1, MM_FIT_PAD, white, &out), -MM_ERANGE);
	mm_image_free(&in);
}

// Reference resize in doubles, written from the definition: output pixel (i, j) covers a
// rectangle of the scaled and centred image; shrinking averages what it covers (background
// outside the image), enlarging interpolates at its centre and blends by coverage.
static double ref_axis_weights(uint32_t S, uint32_t D, double s, uint32_t i, double *wts)
{
	double o = (D - S * s) / 2, a = (i - o) / s, b = (i + 1 - o) / s;
	for (uint32_t j = 0; j < S; j++)
		wts[j] = 0;
	double lo = fmax(a, 0), hi = fmin(b, S), cov = hi > lo ? hi - lo : 0;
	if (cov == 0)
		return 0;
	if (s <= 1) {
		for (uint32_t j = 0; j < S; j++)
			wts[j] = fmax(0, fmin(hi, j + 1.0) - fmax(lo, j)) / (b - a);
	} else {
		double p = (a + b) / 2 - 0.5, j0 = floor(p), fr = p - j0;
		int k0 = j0 < 0 ? 0 : (int)j0, k1 = j0 + 1 > S - 1 ? (int)S - 1 : (int)j0 + 1;
		wts[k0] += (1 - fr) * cov / (b - a);
		wts[k1] += fr * cov / (b - a);
	}
	return cov / (b - a);
}

static void test_resize_reference(void)
{
	mm_rng r;
	mm_rng_seed(&r, 7, 0);
	const uint8_t bg[3] = {40, 90, 250};
	int bad = 0, total = 0;
	for (int t = 0; t < 300; t++) {
		uint32_t W = 1 + (uint32_t)mm_rng_below(&r, 23), H = 1 + (uint32_t)mm_rng_below(&r, 23);
		uint32_t w = 1 + (uint32_t)mm_rng_below(&r, 23), h = 1 + (uint32_t)mm_rng_below(&r, 23);
		uint32_t c = 1 + (uint32_t)mm_rng_below(&r, 4);
		enum mm_fit fit = (enum mm_fit)mm_rng_below(&r, 3);
		mm_image in = make_image(W, H, c, NULL), out;
		for (size_t i = 0; i < (size_t)W * H * c; i++)
			in.px[i] = (uint8_t)mm_rng_below(&r, 256);
		CHECK_OK(mm_image_resize(&in, w, h, fit, bg, &out));
		double sx = (double)w / W, sy = (double)h / H;
		if (fit != MM_FIT_STRETCH)
			sx = sy = (fit == MM_FIT_CROP) ? fmax(sx, sy) : fmin(sx, sy);
		double wx[32], wy[32], bgv[4] = {bg[0], bg[1], bg[2], 255};
		if (c <= 2)
			bgv[0] = floor((299.0 * bg[0] + 587.0 * bg[1] + 114.0 * bg[2]) / 1000 + 0.5), bgv[1] = 255;
		for (uint32_t oy = 0; oy < h; oy++) {
			double iny = ref_axis_weights(H, h, sy, oy, wy);
			for (uint32_t ox = 0; ox < w; ox++) {
				double inx = ref_axis_weights(W, w, sx, ox, wx);
				for (uint32_t k = 0; k < c; k++) {
					double v = (1 - iny * inx) * bgv[k];
					for (uint32_t y = 0; y < H; y++)
						for (uint32_t x = 0; x < W; x++)
							v += wy[y] * wx[x] * px_at(&in, x, y, k);
					total++;
					if (fabs(px_at(&out, ox, oy, k) - v) > 0.5 + 1e-9 && bad++ < 5)
						fprintf(stderr, "%ux%u -> %ux%u fit %d (%u,%u,%u): %u, reference %.4f\n", W, H, w, h,
							fit, ox, oy, k, px_at(&out, ox, oy, k), v);
				}
			}
		}
		mm_image_free(&in);
		mm_image_free(&out);
	}
	CHECK_MSG(bad == 0, "%d of %d samples off the reference", bad, total);
}

static void test_patches(void)
{
	uint8_t a[16], p[16], back[16];
	for (int i = 0; i < 16; i++)
		a[i] = (uint8_t)i;
	mm_image_to_patches(a, 4, 4, 1, 2, p);
	static const uint8_t want[16] = {0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15};
	CHECK(memcmp(p, want, 16) == 0);
	mm_rng r;
	mm_rng_seed(&r, 11, 0);
	static const uint32_t ps[] = {1, 2, 3, 4, 7, 16};
	int ok = 1;
	for (size_t t = 0; t < sizeof ps / sizeof ps[0]; t++)
		for (uint32_t c = 1; c <= 4; c++) {
			uint32_t pp = ps[t], h = pp * (1 + (uint32_t)mm_rng_below(&r, 4)), w = pp * (1 + (uint32_t)mm_rng_below(&r, 4));
			size_t n = (size_t)h * w * c;
			uint8_t *img = malloc(n), *pt = malloc(n), *bk = malloc(n);
			for (size_t i = 0; i < n; i++)
				img[i] = (uint8_t)mm_rng_u64(&r);
			mm_image_to_patches(img, h, w, c, pp, pt);
			mm_image_from_patches(pt, h, w, c, pp, bk);
			ok &= memcmp(img, bk, n) == 0;
			// The first patch's second row starts right after its first row of p pixels.
			ok &= pp == 1 || memcmp(pt + (size_t)pp * c, img + (size_t)w * c, (size_t)pp * c) == 0;
			free(img), free(pt), free(bk);
		}
	CHECK(ok);
	mm_image_from_patches(p, 4, 4, 1, 2, back);
	CHECK(memcmp(back, a, 16) == 0);
}

static int count_temp_files(void)
{
	DIR *d = opendir(".");
	int n = 0;
	for (struct dirent *e; d && (e = readdir(d));)
		n += strstr(e->d_name, ".tmp.") != NULL;
	if (d)
		closedir(d);
	return n;
}

static void test_save(void)
{
	mm_rng r;
	mm_rng_seed(&r, 5, 0);
	for (uint32_t c = 1; c <= 4; c++) {
		uint32_t w = 1 + (uint32_t)mm_rng_below(&r, 40), h = 1 + (uint32_t)mm_rng_below(&r, 40);
		mm_image img = make_image(w, h, c, NULL), back;
		for (size_t i = 0; i < (size_t)w * h * c; i++)
			img.px[i] = (uint8_t)mm_rng_u64(&r);
		char name[32];
		snprintf(name, sizeof name, "saved%u.png", c);
		CHECK_OK(mm_image_save_png(name, &img));
		CHECK_OK(mm_image_load(name, MAXPX, &back));
		CHECK(back.w == w && back.h == h && back.c == c && memcmp(back.px, img.px, (size_t)w * h * c) == 0);
		mm_image_free(&back);
		mm_image_free(&img);
	}
	CHECK_EQ_INT(count_temp_files(), 0);
	mm_image img = make_image(2, 2, 3, NULL);
	CHECK_EQ_INT(mm_image_save_png("no/such/dir/x.png", &img), -MM_EIO);
	CHECK(strstr(mm_errmsg(), "no/such/dir/x.png") != NULL);
	CHECK_EQ_INT(count_temp_files(), 0);
	img.c = 5;
	CHECK_EQ_INT(mm_image_save_png("x.png", &img), -MM_EINVAL);
	img.c = 3;
	mm_image_free(&img);
}

// Decoding many small PNGs is the tokenizer's hot path: report the rate.
static void bench_small_png(void)
{
	mm_image img = make_image(28, 28, 1, NULL), back;
	for (size_t i = 0; i < 28 * 28; i++)
		img.px[i] = (uint8_t)(i * 13 % 256 * (i % 3 == 0));
	CHECK_OK(mm_image_save_png("small.png", &img));
	size_t n;
	uint8_t *data = NULL;
	CHECK_OK(mm_read_file("small.png", 1 << 20, &data, &n));
	int reps = 2000;
	double t = mm_now();
	for (int i = 0; i < reps && data; i++) {
		CHECK_OK(mm_image_load_mem(data, n, "small.png", MAXPX, &back));
		mm_image_free(&back);
	}
	t = mm_now() - t;
	printf("28x28 gray PNG (%zu bytes): %.1f us per decode\n", n, t / reps * 1e6);
	free(data);
	mm_image_free(&img);
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--gen") == 0)
		return gen_fixtures(argv[2]) ? 1 : 0;
	const char *t = getenv("T");
	snprintf(fixdir, sizeof fixdir, "%s/fixtures", t ? t : "tests");
	test_png_fixtures();
	test_jpeg_fixtures();
	test_bad_files();
	test_max_pixels();
	test_damage("g8.png");
	test_damage("rgba8_adam7.png");
	test_damage("rgb.jpg");
	test_damage("progressive.jpg");
	test_channels();
	test_resize_exact();
	test_resize_reference();
	test_patches();
	test_save();
	bench_small_png();
	return check_done();
}
