// The committed image fixtures (tests/fixtures/): the formulas their pixels follow and the
// generator that wrote them through libpng and libjpeg directly (not through lib/image.c, so a
// decoder bug cannot hide in a matching encoder bug). Regenerate with
//   tests/bin/test_image --gen tests/fixtures
// Only test_image.c includes this file.
#ifndef MM_TESTS_IMAGE_FIXTURES_H
#define MM_TESTS_IMAGE_FIXTURES_H

#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>

// PNG fixtures are 9x7 (odd: packed rows end mid-byte) unless they say otherwise.
enum { FIX_W = 9, FIX_H = 7, FIX_IW = 17, FIX_IH = 13, JPG_W = 33, JPG_H = 25 };

typedef struct png_fixture {
	const char *name;
	int depth, ctype, interlace;
	uint32_t w, h;
	uint32_t decoded_c; // channels mm_image_load gives back
	int trns;	    // palette: number of tRNS entries; gray: 1 = a tRNS key
} png_fixture;

static const png_fixture png_fixtures[] = {
	{"g1.png", 1, PNG_COLOR_TYPE_GRAY, 0, FIX_W, FIX_H, 1, 0},
	{"g2.png", 2, PNG_COLOR_TYPE_GRAY, 0, FIX_W, FIX_H, 1, 0},
	{"g4.png", 4, PNG_COLOR_TYPE_GRAY, 0, FIX_W, FIX_H, 1, 0},
	{"g8.png", 8, PNG_COLOR_TYPE_GRAY, 0, FIX_W, FIX_H, 1, 0},
	{"g16.png", 16, PNG_COLOR_TYPE_GRAY, 0, FIX_W, FIX_H, 1, 0},
	{"g8_trns.png", 8, PNG_COLOR_TYPE_GRAY, 0, FIX_W, FIX_H, 2, 1},
	{"ga8.png", 8, PNG_COLOR_TYPE_GRAY_ALPHA, 0, FIX_W, FIX_H, 2, 0},
	{"ga16.png", 16, PNG_COLOR_TYPE_GRAY_ALPHA, 0, FIX_W, FIX_H, 2, 0},
	{"rgb8.png", 8, PNG_COLOR_TYPE_RGB, 0, FIX_W, FIX_H, 3, 0},
	{"rgb16.png", 16, PNG_COLOR_TYPE_RGB, 0, FIX_W, FIX_H, 3, 0},
	{"rgba8.png", 8, PNG_COLOR_TYPE_RGB_ALPHA, 0, FIX_W, FIX_H, 4, 0},
	{"pal8.png", 8, PNG_COLOR_TYPE_PALETTE, 0, FIX_W, FIX_H, 3, 0},
	{"pal4_trns.png", 4, PNG_COLOR_TYPE_PALETTE, 0, FIX_W, FIX_H, 4, 7},
	{"rgba8_adam7.png", 8, PNG_COLOR_TYPE_RGB_ALPHA, 1, FIX_IW, FIX_IH, 4, 0},
};
#define N_PNG_FIXTURES (sizeof png_fixtures / sizeof png_fixtures[0])

enum { PAL8_N = 20, PAL4_N = 12, GRAY_TRNS_KEY = 114 };

// Raw sample k of pixel (x, y) of a non-palette fixture, in 0 .. 2^depth - 1. The odd
// multipliers make neighbouring samples differ in every bit, low bits of 16-bit samples included.
static uint32_t fix_sample(int depth, uint32_t x, uint32_t y, uint32_t k)
{
	if (depth == 16)
		return (x * 7919u + y * 30011u + k * 12289u + 3341u) & 0xFFFF;
	return (x * 37u + y * 101u + k * 59u + 13u) & ((1u << depth) - 1);
}

static uint32_t fix_index(const png_fixture *f, uint32_t x, uint32_t y)
{
	return (x * 3 + y * 5) % (f->depth == 8 ? PAL8_N : PAL4_N);
}

static void fix_palette_entry(uint32_t e, uint8_t rgb[3])
{
	rgb[0] = (uint8_t)(e * 13 + 7), rgb[1] = (uint8_t)(e * 47 + 3), rgb[2] = (uint8_t)(255 - e * 19);
}

static uint8_t fix_palette_alpha(const png_fixture *f, uint32_t e)
{
	return e < (uint32_t)f->trns ? (uint8_t)(e * 40) : 255;
}

// What mm_image_load must return for pixel (x, y), channel k: samples scaled to 8 bits exactly
// (1, 2, 4 bits: v * 255 / (2^d - 1); 16 bits: rounded to nearest), palettes looked up, tRNS
// turned into alpha.
static uint8_t fix_expected(const png_fixture *f, uint32_t x, uint32_t y, uint32_t k)
{
	if (f->ctype == PNG_COLOR_TYPE_PALETTE) {
		uint32_t e = fix_index(f, x, y);
		uint8_t rgb[3];
		fix_palette_entry(e, rgb);
		return k < 3 ? rgb[k] : fix_palette_alpha(f, e);
	}
	if (f->ctype == PNG_COLOR_TYPE_GRAY && f->trns && k == 1)
		return fix_sample(f->depth, x, y, 0) == GRAY_TRNS_KEY ? 0 : 255;
	uint32_t v = fix_sample(f->depth, x, y, k);
	if (f->depth == 16)
		return (uint8_t)((v * 255 + 32767) / 65535);
	return (uint8_t)(v * 255 / ((1u << f->depth) - 1));
}

// JPEG fixtures: smooth ramps, so that lossy coding stays close to the formula.
typedef struct jpeg_fixture {
	const char *name;
	int gray, progressive, cmyk; // cmyk: 1 = CMYK, 2 = YCCK
} jpeg_fixture;

static const jpeg_fixture jpeg_fixtures[] = {
	{"rgb.jpg", 0, 0, 0},  {"progressive.jpg", 0, 1, 0}, {"gray.jpg", 1, 0, 0},
	{"cmyk.jpg", 0, 0, 1}, {"ycck.jpg", 0, 0, 2},
};
#define N_JPEG_FIXTURES (sizeof jpeg_fixtures / sizeof jpeg_fixtures[0])

static uint8_t fix_jpeg_rgb(uint32_t x, uint32_t y, uint32_t k)
{
	return (uint8_t)(k == 0 ? 20 + 6 * x : k == 1 ? 20 + 8 * y : 200 - 3 * x - 2 * y);
}

static uint8_t fix_jpeg_gray(uint32_t x, uint32_t y)
{
	return (uint8_t)(16 + 5 * x + 3 * y);
}

// ---- Generator ------------------------------------------------------------------------------

static int gen_png(const char *dir, const png_fixture *f)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, f->name);
	FILE *fp = fopen(path, "wb");
	if (!fp)
		return -1;
	png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
	png_infop info = png_create_info_struct(png);
	static uint8_t buf[FIX_IH][FIX_IW * 8];
	static png_bytep rows[FIX_IH];
	if (setjmp(png_jmpbuf(png))) {
		png_destroy_write_struct(&png, &info);
		fclose(fp);
		return -1;
	}
	png_init_io(png, fp);
	png_set_compression_level(png, 9);
	png_set_IHDR(png, info, f->w, f->h, f->depth, f->ctype, f->interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
		     PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
	uint32_t nc = 1;
	if (f->ctype == PNG_COLOR_TYPE_PALETTE) {
		uint32_t n = f->depth == 8 ? PAL8_N : PAL4_N;
		png_color pal[PAL8_N];
		png_byte alpha[PAL8_N];
		for (uint32_t e = 0; e < n; e++) {
			uint8_t rgb[3];
			fix_palette_entry(e, rgb);
			pal[e] = (png_color){rgb[0], rgb[1], rgb[2]};
			alpha[e] = fix_palette_alpha(f, e);
		}
		png_set_PLTE(png, info, pal, (int)n);
		if (f->trns)
			png_set_tRNS(png, info, alpha, f->trns, NULL);
	} else {
		nc = f->ctype == PNG_COLOR_TYPE_GRAY ? 1 : f->ctype == PNG_COLOR_TYPE_GRAY_ALPHA ? 2 : f->ctype == PNG_COLOR_TYPE_RGB ? 3 : 4;
		if (f->trns) {
			png_color_16 key = {.gray = GRAY_TRNS_KEY};
			png_set_tRNS(png, info, NULL, 0, &key);
		}
	}
	memset(buf, 0, sizeof buf);
	for (uint32_t y = 0; y < f->h; y++) {
		rows[y] = buf[y];
		for (uint32_t x = 0; x < f->w; x++)
			for (uint32_t k = 0; k < nc; k++) {
				uint32_t v = f->ctype == PNG_COLOR_TYPE_PALETTE ? fix_index(f, x, y) : fix_sample(f->depth, x, y, k);
				uint32_t s = x * nc + k; // sample number in the row
				if (f->depth == 16) {
					buf[y][2 * s] = (uint8_t)(v >> 8), buf[y][2 * s + 1] = (uint8_t)v;
				} else if (f->depth == 8) {
					buf[y][s] = (uint8_t)v;
				} else { // packed, leftmost sample in the high bits
					uint32_t bit = s * f->depth;
					buf[y][bit / 8] |= (uint8_t)(v << (8 - f->depth - bit % 8));
				}
			}
	}
	png_set_rows(png, info, rows);
	png_write_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
	png_destroy_write_struct(&png, &info);
	return fclose(fp);
}

static int gen_jpeg(const char *dir, const jpeg_fixture *f)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, f->name);
	FILE *fp = fopen(path, "wb");
	if (!fp)
		return -1;
	struct jpeg_compress_struct c;
	struct jpeg_error_mgr err;
	c.err = jpeg_std_error(&err); // a generator may exit on error
	jpeg_create_compress(&c);
	jpeg_stdio_dest(&c, fp);
	c.image_width = JPG_W;
	c.image_height = JPG_H;
	c.input_components = f->gray ? 1 : f->cmyk ? 4 : 3;
	c.in_color_space = f->gray ? JCS_GRAYSCALE : f->cmyk ? JCS_CMYK : JCS_RGB;
	jpeg_set_defaults(&c);
	jpeg_set_quality(&c, 95, TRUE);
	if (f->cmyk)
		jpeg_set_colorspace(&c, f->cmyk == 1 ? JCS_CMYK : JCS_YCCK);
	if (f->progressive)
		jpeg_simple_progression(&c);
	jpeg_start_compress(&c, TRUE);
	uint8_t row[JPG_W * 4];
	while (c.next_scanline < JPG_H) {
		uint32_t y = c.next_scanline;
		for (uint32_t x = 0; x < JPG_W; x++)
			for (uint32_t k = 0; k < (uint32_t)c.input_components; k++)
				row[x * c.input_components + k] = f->gray ? fix_jpeg_gray(x, y) : fix_jpeg_rgb(x, y, k % 3);
		JSAMPROW r = row;
		jpeg_write_scanlines(&c, &r, 1);
	}
	jpeg_finish_compress(&c);
	jpeg_destroy_compress(&c);
	return fclose(fp);
}

// Copies the first half of src to dst: a file cut in the middle of its image data.
static int gen_truncated(const char *dir, const char *src, const char *dst)
{
	char p[512];
	uint8_t buf[1 << 16];
	snprintf(p, sizeof p, "%s/%s", dir, src);
	FILE *f = fopen(p, "rb");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof buf, f);
	fclose(f);
	snprintf(p, sizeof p, "%s/%s", dir, dst);
	f = fopen(p, "wb");
	if (!f)
		return -1;
	fwrite(buf, 1, n / 2, f);
	return fclose(f);
}

static int gen_fixtures(const char *dir)
{
	int rc = 0;
	for (size_t i = 0; i < N_PNG_FIXTURES; i++)
		rc |= gen_png(dir, &png_fixtures[i]);
	for (size_t i = 0; i < N_JPEG_FIXTURES; i++)
		rc |= gen_jpeg(dir, &jpeg_fixtures[i]);
	rc |= gen_truncated(dir, "rgb8.png", "truncated.png");
	rc |= gen_truncated(dir, "rgb.jpg", "truncated.jpg");
	char p[512];
	snprintf(p, sizeof p, "%s/not_image.txt", dir);
	FILE *f = fopen(p, "wb");
	if (!f)
		return -1;
	fputs("This is a caption, not an image.\n", f);
	rc |= fclose(f);
	return rc;
}

#endif
