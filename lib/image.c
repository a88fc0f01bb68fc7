#include "image.h"

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
// After jpeglib.h, whose jconfig.h decides which message codes exist.
#include <jerror.h>
#include <png.h>

#include "err.h"
#include "fileio.h"

void mm_image_free(mm_image *img)
{
	free(img->px);
	memset(img, 0, sizeof *img);
}

static int image_bytes(uint32_t w, uint32_t h, uint32_t c, size_t *n)
{
	size_t wh;
	if (__builtin_mul_overflow((size_t)w, (size_t)h, &wh) || __builtin_mul_overflow(wh, (size_t)c, n))
		return -1;
	return 0;
}

int mm_image_alloc(mm_image *img, uint32_t w, uint32_t h, uint32_t c)
{
	memset(img, 0, sizeof *img);
	size_t n;
	if (w == 0 || h == 0 || c < 1 || c > 4)
		return mm_fail(MM_EINVAL, "image of %ux%u pixels and %u channels", w, h, c);
	if (image_bytes(w, h, c, &n) < 0)
		return mm_fail(MM_ERANGE, "image of %ux%ux%u is too large", w, h, c);
	img->px = calloc(n, 1);
	if (!img->px)
		return mm_fail(MM_ENOMEM, "out of memory for a %ux%ux%u image", w, h, c);
	img->w = w;
	img->h = h;
	img->c = c;
	return 0;
}

// ---- The one longjmp trampoline -------------------------------------------------------------
// libpng and libjpeg report errors by callbacks that must not return. Theirs (and our own checks
// inside decoding) store a message and jump back to guarded(), the only setjmp here. Everything
// that needs freeing lives in the caller's context struct, never in locals of the body.

typedef struct guard {
	jmp_buf jb;
	int code; // positive MM_E* of the failure
	char msg[JMSG_LENGTH_MAX + 120];
} guard;

static _Noreturn void guard_raise(guard *g, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static _Noreturn void guard_raise(guard *g, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(g->msg, sizeof g->msg, fmt, ap);
	va_end(ap);
	g->code = code;
	longjmp(g->jb, 1);
}

// Runs body(arg); returns 0, or -code after a guard_raise from anywhere below it.
static int guarded(guard *g, void (*body)(void *), void *arg)
{
	g->code = 0;
	g->msg[0] = 0;
	if (setjmp(g->jb))
		return -g->code;
	body(arg);
	return 0;
}

static void png_on_error(png_structp png, png_const_charp msg)
{
	guard_raise(png_get_error_ptr(png), MM_EIMAGE, "corrupt PNG: %s", msg);
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
	(void)png, (void)msg; // the library never prints; a warning is not a failure
}

static void jpeg_on_error(j_common_ptr cinfo)
{
	char buf[JMSG_LENGTH_MAX];
	cinfo->err->format_message(cinfo, buf);
	guard_raise(cinfo->client_data, MM_EIMAGE, "corrupt JPEG: %s", buf);
}

// Warnings are silent, except those that mean the pixels would be made up: libjpeg pads a
// truncated file with gray and skips undecodable data, and we would rather refuse the image.
static void jpeg_on_message(j_common_ptr cinfo, int level)
{
	if (level >= 0)
		return;
	int code = cinfo->err->msg_code;
	if (code == JWRN_JPEG_EOF || code == JWRN_HIT_MARKER || code == JWRN_HUFF_BAD_CODE ||
	    code == JWRN_ARITH_BAD_CODE || code == JWRN_MUST_RESYNC) {
		char buf[JMSG_LENGTH_MAX];
		cinfo->err->format_message(cinfo, buf);
		guard_raise(cinfo->client_data, MM_EIMAGE, "truncated or corrupt JPEG: %s", buf);
	}
}

static void jpeg_no_output(j_common_ptr cinfo)
{
	(void)cinfo;
}

// A progressive JPEG can hold thousands of tiny scans, each a full pass over the coefficients.
#define JPEG_MAX_SCANS 1000

static void jpeg_on_progress(j_common_ptr cinfo)
{
	j_decompress_ptr d = (j_decompress_ptr)cinfo;
	if (d->input_scan_number > JPEG_MAX_SCANS)
		guard_raise(cinfo->client_data, MM_EIMAGE, "JPEG has more than %d scans", JPEG_MAX_SCANS);
}

// ---- Decoding ---------------------------------------------------------------------------------

typedef struct decode_ctx {
	guard g; // first: the libjpeg callbacks find it through client_data
	const uint8_t *data;
	size_t n, pos;
	uint64_t max_pixels;
	mm_image img;
	// PNG
	png_structp png;
	png_infop info;
	png_bytep *rows;
	uint8_t *buf; // decoded rows before 16->8 narrowing
	// JPEG
	struct jpeg_decompress_struct jd;
	struct jpeg_error_mgr jerr;
	struct jpeg_progress_mgr jprog;
} decode_ctx;

static void check_pixels(decode_ctx *d, uint64_t w, uint64_t h)
{
	if (w == 0 || h == 0)
		guard_raise(&d->g, MM_EIMAGE, "image has no pixels (%llux%llu)", (unsigned long long)w,
			    (unsigned long long)h);
	if (d->max_pixels && w * h > d->max_pixels) // w, h < 2^32: no overflow
		guard_raise(&d->g, MM_ERANGE, "%llux%llu image exceeds the limit of %llu pixels",
			    (unsigned long long)w, (unsigned long long)h, (unsigned long long)d->max_pixels);
}

static void *guard_alloc(decode_ctx *d, size_t a, size_t b)
{
	size_t n;
	if (__builtin_mul_overflow(a, b, &n))
		guard_raise(&d->g, MM_ERANGE, "image too large (%zu x %zu bytes)", a, b);
	void *p = malloc(n ? n : 1);
	if (!p)
		guard_raise(&d->g, MM_ENOMEM, "out of memory for %zu bytes of pixels", n);
	return p;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void png_mem_read(png_structp png, png_bytep out, size_t n)
{
	decode_ctx *d = png_get_io_ptr(png);
	if (n > d->n - d->pos)
		guard_raise(&d->g, MM_EIMAGE, "truncated PNG: %zu bytes needed at offset %zu, the file has %zu", n,
			    d->pos, d->n);
	memcpy(out, d->data + d->pos, n);
	d->pos += n;
}

static void png_decode(void *arg)
{
	decode_ctx *d = arg;
	// IHDR must come first: check its size before libpng reads on (ancillary chunks can be large).
	if (d->n >= 24 && memcmp(d->data + 12, "IHDR", 4) == 0)
		check_pixels(d, be32(d->data + 16), be32(d->data + 20));
	d->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &d->g, png_on_error, png_on_warning);
	if (!d->png)
		guard_raise(&d->g, MM_ENOMEM, "out of memory (libpng)");
	d->info = png_create_info_struct(d->png);
	if (!d->info)
		guard_raise(&d->g, MM_ENOMEM, "out of memory (libpng)");
	png_set_read_fn(d->png, d, png_mem_read);
	// Our max_pixels rule replaces libpng's default cap of a million pixels per side.
	png_set_user_limits(d->png, 0x7fffffff, 0x7fffffff);
	png_read_info(d->png, d->info);

	png_uint_32 w, h;
	int depth, ctype, interlace;
	png_get_IHDR(d->png, d->info, &w, &h, &depth, &ctype, &interlace, NULL, NULL);
	check_pixels(d, w, h);

	if (ctype == PNG_COLOR_TYPE_PALETTE)
		png_set_palette_to_rgb(d->png);
	if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8)
		png_set_expand_gray_1_2_4_to_8(d->png);
	if (png_get_valid(d->png, d->info, PNG_INFO_tRNS))
		png_set_tRNS_to_alpha(d->png);
	// 16-bit samples stay 16-bit here; we narrow them below with exact rounding.
	png_set_interlace_handling(d->png);
	png_read_update_info(d->png, d->info);

	uint32_t c = png_get_channels(d->png, d->info);
	int out_depth = png_get_bit_depth(d->png, d->info);
	size_t rowbytes = png_get_rowbytes(d->png, d->info);
	if (c < 1 || c > 4 || (out_depth != 8 && out_depth != 16) || rowbytes != (size_t)w * c * (out_depth / 8))
		guard_raise(&d->g, MM_EIMAGE, "unexpected PNG layout (%u channels, %d bits)", c, out_depth);

	d->buf = guard_alloc(d, h, rowbytes);
	d->rows = guard_alloc(d, h, sizeof *d->rows);
	for (uint32_t y = 0; y < h; y++)
		d->rows[y] = d->buf + (size_t)y * rowbytes;
	png_read_image(d->png, d->rows);
	png_read_end(d->png, NULL); // reaches IEND: a cut after the last IDAT is still an error

	if (out_depth == 16) { // in place: sample k moves from bytes 2k, 2k+1 down to byte k
		size_t n = (size_t)w * h * c;
		for (size_t k = 0; k < n; k++) {
			uint32_t v = (uint32_t)d->buf[2 * k] << 8 | d->buf[2 * k + 1];
			d->buf[k] = (uint8_t)((v * 255 + 32767) / 65535);
		}
		uint8_t *p = realloc(d->buf, n);
		if (p)
			d->buf = p;
	}
	d->img = (mm_image){.w = w, .h = h, .c = c, .px = d->buf};
	d->buf = NULL;
}

static void jpeg_decode(void *arg)
{
	decode_ctx *d = arg;
	struct jpeg_decompress_struct *j = &d->jd;
	j->err = jpeg_std_error(&d->jerr);
	d->jerr.error_exit = jpeg_on_error;
	d->jerr.emit_message = jpeg_on_message;
	d->jerr.output_message = jpeg_no_output;
	j->client_data = &d->g;
	jpeg_create_decompress(j);
	d->jprog.progress_monitor = jpeg_on_progress;
	j->progress = &d->jprog;
	jpeg_mem_src(j, d->data, d->n);
	jpeg_read_header(j, TRUE);

	if (j->jpeg_color_space == JCS_CMYK || j->jpeg_color_space == JCS_YCCK)
		guard_raise(&d->g, MM_EUNSUPPORTED, "CMYK JPEG is not supported (convert it to RGB first)");
	if (j->jpeg_color_space == JCS_GRAYSCALE && j->num_components == 1)
		j->out_color_space = JCS_GRAYSCALE;
	else if ((j->jpeg_color_space == JCS_YCbCr || j->jpeg_color_space == JCS_RGB) && j->num_components == 3)
		j->out_color_space = JCS_RGB;
	else
		guard_raise(&d->g, MM_EUNSUPPORTED, "JPEG colour space %d with %d components is not supported",
			    (int)j->jpeg_color_space, j->num_components);
	check_pixels(d, j->image_width, j->image_height);

	jpeg_start_decompress(j);
	uint32_t w = j->output_width, h = j->output_height, c = j->output_components;
	if (w != j->image_width || h != j->image_height || (c != 1 && c != 3))
		guard_raise(&d->g, MM_EIMAGE, "unexpected JPEG output layout");
	size_t n;
	if (image_bytes(w, h, c, &n) < 0)
		guard_raise(&d->g, MM_ERANGE, "image too large");
	d->buf = guard_alloc(d, n, 1);
	while (j->output_scanline < h) {
		JSAMPROW rows[16];
		uint32_t k = 0;
		for (; k < 16 && j->output_scanline + k < h; k++)
			rows[k] = d->buf + (size_t)(j->output_scanline + k) * w * c;
		if (jpeg_read_scanlines(j, rows, k) == 0)
			guard_raise(&d->g, MM_EIMAGE, "JPEG decoder made no progress");
	}
	jpeg_finish_decompress(j);
	d->img = (mm_image){.w = w, .h = h, .c = c, .px = d->buf};
	d->buf = NULL;
}

static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

int mm_image_load_mem(const uint8_t *data, size_t n, const char *name, uint64_t max_pixels, mm_image *out)
{
	memset(out, 0, sizeof *out);
	bool is_png = n >= 8 && memcmp(data, png_magic, 8) == 0;
	bool is_jpeg = n >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF;
	if (!is_png && !is_jpeg) {
		if (n > 0 && n < 8 && memcmp(data, png_magic, n) == 0)
			return mm_fail(MM_EIMAGE, "%s: truncated PNG (%zu bytes)", name, n);
		return mm_fail(MM_EIMAGE, "%s: not a PNG or JPEG", name);
	}
	decode_ctx *d = calloc(1, sizeof *d);
	if (!d)
		return mm_fail(MM_ENOMEM, "%s: out of memory", name);
	d->data = data;
	d->n = n;
	d->max_pixels = max_pixels;
	int rc = guarded(&d->g, is_png ? png_decode : jpeg_decode, d);
	if (is_png) {
		if (d->png)
			png_destroy_read_struct(&d->png, d->info ? &d->info : NULL, NULL);
	} else {
		jpeg_destroy_decompress(&d->jd); // safe on a zeroed or half-made struct
	}
	free(d->rows);
	free(d->buf);
	if (rc < 0) {
		free(d->img.px);
		rc = mm_fail(rc, "%s: %s", name, d->g.msg);
	} else {
		*out = d->img;
	}
	free(d);
	return rc;
}

int mm_image_load_at(int dirfd, const char *name, const char *path, uint64_t max_pixels, mm_image *out,
		     uint64_t *bytes_read)
{
	memset(out, 0, sizeof *out);
	// Room for 16 bytes per allowed pixel (16-bit RGBA stored uncompressed, with chunk and zlib
	// framing) plus 64 MiB of metadata: no honest file is larger.
	size_t max_bytes = SIZE_MAX / 2;
	if (max_pixels && max_pixels < (SIZE_MAX / 2 - (64u << 20)) / 16)
		max_bytes = (size_t)max_pixels * 16 + (64u << 20);
	uint8_t *data;
	size_t n;
	int rc = mm_read_file_at(dirfd, name, path, max_bytes, &data, &n);
	if (rc < 0)
		return rc;
	if (bytes_read)
		*bytes_read += n;
	rc = mm_image_load_mem(data, n, path, max_pixels, out);
	free(data);
	return rc;
}

int mm_image_load(const char *path, uint64_t max_pixels, mm_image *out)
{
	return mm_image_load_at(AT_FDCWD, path, path, max_pixels, out, NULL);
}

// ---- Channels ---------------------------------------------------------------------------------

// Rec. 601 luma weights in thousandths; a gray result is rounded once, from the exact sum.
enum { LUMA_R = 299, LUMA_G = 587, LUMA_B = 114 };

static uint32_t luma1000(uint32_t r, uint32_t g, uint32_t b)
{
	return LUMA_R * r + LUMA_G * g + LUMA_B * b;
}

static const uint8_t white[3] = {255, 255, 255};

int mm_image_to_channels(const mm_image *in, uint32_t channels, const uint8_t background[3], mm_image *out)
{
	memset(out, 0, sizeof *out);
	if (channels != 1 && channels != 3)
		return mm_fail(MM_EINVAL, "cannot convert to %u channels (1 or 3)", channels);
	if (in->c < 1 || in->c > 4)
		return mm_fail(MM_EINVAL, "image with %u channels", in->c);
	const uint8_t *bg = background ? background : white;
	int rc = mm_image_alloc(out, in->w, in->h, channels);
	if (rc < 0)
		return rc;
	size_t n = (size_t)in->w * in->h;
	const uint8_t *s = in->px;
	uint8_t *o = out->px;
	uint32_t bgl = luma1000(bg[0], bg[1], bg[2]);
	for (size_t i = 0; i < n; i++, s += in->c, o += channels) {
		uint32_t r, g, b, a = 255;
		if (in->c <= 2) {
			r = g = b = s[0];
			if (in->c == 2)
				a = s[1];
		} else {
			r = s[0], g = s[1], b = s[2];
			if (in->c == 4)
				a = s[3];
		}
		if (channels == 1) {
			// (luma(rgb) * a + luma(bg) * (255 - a)) / (1000 * 255), rounded half up.
			if (in->c <= 2)
				o[0] = (uint8_t)((1000 * r * a + bgl * (255 - a) + 127500) / 255000);
			else
				o[0] = (uint8_t)((luma1000(r, g, b) * a + bgl * (255 - a) + 127500) / 255000);
		} else {
			o[0] = (uint8_t)((r * a + bg[0] * (255 - a) + 127) / 255);
			o[1] = (uint8_t)((g * a + bg[1] * (255 - a) + 127) / 255);
			o[2] = (uint8_t)((b * a + bg[2] * (255 - a) + 127) / 255);
		}
	}
	return 0;
}

// ---- Resizing -----------------------------------------------------------------------------------
// One axis at a time. Source pixel j spans [j*U, (j+1)*U) in integer units, output pixel i spans
// [off + i*step, off + (i+1)*step); with scale s = num/den (output pixels per input pixel),
// U = 2*num, step = 2*den and off = S*num - D*den centre the scaled image on the output (the
// factors 2 keep half-pixel offsets integral). Each output pixel gets integer weights on a few
// source pixels summing to `inside`; the rest of its total (T - inside) is background, which is
// nonzero only where pad leaves part of the output uncovered. The 2-D weight of a source pixel is
// the product of its two axis weights, so the result is exact up to one final rounding.

typedef struct axis {
	uint64_t total;	  // T: the same for every output pixel
	uint32_t *start;  // D+1 offsets into src/wt
	uint32_t *src;	  // source index of each tap
	uint64_t *wt;	  // weight of each tap
	uint64_t *inside; // per output pixel: the sum of its weights
} axis;

static void axis_free(axis *ax)
{
	free(ax->start);
	free(ax->src);
	free(ax->wt);
	free(ax->inside);
}

static int64_t floor_div(int64_t a, int64_t b) // b > 0
{
	int64_t q = a / b;
	return (a % b < 0) ? q - 1 : q;
}

static int64_t max64(int64_t a, int64_t b)
{
	return a > b ? a : b;
}

static int64_t min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

// Shrinking (s <= 1): area filter, each tap weighted by how much of the output pixel it covers.
// Enlarging: bilinear between the two source pixels whose centres surround the output pixel's
// centre (edges replicated), scaled by the output pixel's coverage of the image.
static int axis_build(axis *ax, uint32_t S, uint32_t D, uint64_t num, uint64_t den)
{
	memset(ax, 0, sizeof *ax);
	const int64_t U = 2 * (int64_t)num, step = 2 * (int64_t)den;
	const int64_t off = (int64_t)S * (int64_t)num - (int64_t)D * (int64_t)den, end = (int64_t)S * U;
	const bool box = den >= num;
	// Two partitions of a line overlap in fewer than S + D pairs; bilinear has 2 taps at most.
	size_t cap = box ? (size_t)S + D : 2 * (size_t)D;
	ax->total = box ? (uint64_t)step : (uint64_t)step * (uint64_t)U;
	ax->start = malloc(((size_t)D + 1) * sizeof *ax->start);
	ax->src = malloc(cap * sizeof *ax->src);
	ax->wt = malloc(cap * sizeof *ax->wt);
	ax->inside = malloc((size_t)D * sizeof *ax->inside);
	if (!ax->start || !ax->src || !ax->wt || !ax->inside) {
		axis_free(ax);
		return mm_fail(MM_ENOMEM, "out of memory for resize weights");
	}
	size_t k = 0;
	for (uint32_t i = 0; i < D; i++) {
		ax->start[i] = (uint32_t)k;
		int64_t a = off + (int64_t)i * step, b = a + step;
		int64_t lo = max64(a, 0), hi = min64(b, end);
		ax->inside[i] = 0;
		if (lo >= hi)
			continue;
		if (box) {
			for (int64_t j = lo / U; j * U < hi; j++) {
				int64_t w = min64(hi, (j + 1) * U) - max64(lo, j * U);
				if (k == cap)
					goto overflow;
				ax->src[k] = (uint32_t)j;
				ax->wt[k++] = (uint64_t)w;
			}
			ax->inside[i] = (uint64_t)(hi - lo);
		} else {
			int64_t cov = hi - lo, p = a + (int64_t)den - (int64_t)num;
			int64_t j0 = floor_div(p, U), frac = p - j0 * U;
			int64_t j1 = min64(j0 + 1, S - 1);
			j0 = max64(j0, 0);
			if (k + 2 > cap)
				goto overflow;
			if (j0 == j1) {
				ax->src[k] = (uint32_t)j0;
				ax->wt[k++] = (uint64_t)(U * cov);
			} else {
				ax->src[k] = (uint32_t)j0;
				ax->wt[k++] = (uint64_t)((U - frac) * cov);
				ax->src[k] = (uint32_t)j1;
				ax->wt[k++] = (uint64_t)(frac * cov);
			}
			ax->inside[i] = (uint64_t)(U * cov);
		}
	}
	ax->start[D] = (uint32_t)k;
	return 0;
overflow:
	axis_free(ax);
	return mm_fail(MM_ERANGE, "resize weights overflow (%u -> %u)", S, D);
}

// Largest side we resize from or to: keeps every axis weight below 2^50 and the 2-D sums below
// 2^128 (255 * T_x * T_y), so integer arithmetic is exact.
#define RESIZE_MAX_SIDE (1u << 24)

// One source row (W, c) filtered horizontally into row (w, c).
static inline __attribute__((always_inline)) void resize_row(const uint8_t *src, const axis *ax, uint32_t w,
							     uint32_t c, uint64_t *row)
{
	for (uint32_t ox = 0; ox < w; ox++) {
		uint64_t s[4] = {0, 0, 0, 0};
		for (uint32_t tx = ax->start[ox]; tx < ax->start[ox + 1]; tx++) {
			const uint8_t *p = src + (size_t)ax->src[tx] * c;
			for (uint32_t ch = 0; ch < c; ch++)
				s[ch] += ax->wt[tx] * p[ch];
		}
		for (uint32_t ch = 0; ch < c; ch++)
			row[ox * c + ch] = s[ch];
	}
}

// in is (H, W, c) row-major; out is (h, w, c).
static void resize_apply(const mm_image *in, const axis *ax, const axis *ay, const uint8_t bg[4], mm_image *out,
			 unsigned __int128 *acc, uint64_t *row)
{
	const uint32_t c = in->c, w = out->w;
	const size_t in_stride = (size_t)in->w * c;
	const unsigned __int128 T = (unsigned __int128)ax->total * ay->total;
	const bool small = T < ((unsigned __int128)1 << 55);
	for (uint32_t oy = 0; oy < out->h; oy++) {
		memset(acc, 0, (size_t)w * c * sizeof *acc);
		for (uint32_t ty = ay->start[oy]; ty < ay->start[oy + 1]; ty++) {
			const uint8_t *src = in->px + ay->src[ty] * in_stride;
			switch (c) { // a constant c lets the compiler unroll the channel loop
			case 1: resize_row(src, ax, w, 1, row); break;
			case 2: resize_row(src, ax, w, 2, row); break;
			case 3: resize_row(src, ax, w, 3, row); break;
			default: resize_row(src, ax, w, 4, row); break;
			}
			const uint64_t wy = ay->wt[ty];
			for (size_t k = 0; k < (size_t)w * c; k++)
				acc[k] += (unsigned __int128)wy * row[k];
		}
		uint8_t *o = out->px + (size_t)oy * w * c;
		for (uint32_t ox = 0; ox < w; ox++) {
			unsigned __int128 bgw = T - (unsigned __int128)ay->inside[oy] * ax->inside[ox];
			for (uint32_t ch = 0; ch < c; ch++) {
				unsigned __int128 v = acc[ox * c + ch] + bgw * bg[ch] + T / 2;
				// v <= 256 T: a 64-bit division (much faster) is exact whenever T is small.
				o[ox * c + ch] = (uint8_t)(small ? (uint64_t)v / (uint64_t)T : v / T);
			}
		}
	}
}

int mm_image_resize(const mm_image *in, uint32_t w, uint32_t h, enum mm_fit fit, const uint8_t background[3],
		    mm_image *out)
{
	memset(out, 0, sizeof *out);
	const uint32_t W = in->w, H = in->h, c = in->c;
	if (c < 1 || c > 4 || W == 0 || H == 0 || !in->px)
		return mm_fail(MM_EINVAL, "resize: bad input image (%ux%u, %u channels)", W, H, c);
	if (w == 0 || h == 0 || w > RESIZE_MAX_SIDE || h > RESIZE_MAX_SIDE || W > RESIZE_MAX_SIDE || H > RESIZE_MAX_SIDE)
		return mm_fail(MM_ERANGE, "resize from %ux%u to %ux%u: sides must be 1..%u", W, H, w, h, RESIZE_MAX_SIDE);
	if (fit != MM_FIT_STRETCH && fit != MM_FIT_CROP && fit != MM_FIT_PAD)
		return mm_fail(MM_EINVAL, "resize: unknown fit %d", (int)fit);
	int rc = mm_image_alloc(out, w, h, c);
	if (rc < 0)
		return rc;
	if (w == W && h == H) { // every fit is the identity at scale 1
		memcpy(out->px, in->px, (size_t)W * H * c);
		return 0;
	}
	const uint8_t *b = background ? background : white;
	uint8_t bg[4] = {b[0], b[1], b[2], 255};
	if (c <= 2)
		bg[0] = (uint8_t)((luma1000(b[0], b[1], b[2]) + 500) / 1000), bg[1] = 255;

	// Scale per axis as num/den: stretch scales each axis to fit; crop takes the larger of the two
	// scales (the image covers the output), pad the smaller (the image fits inside).
	uint64_t xn = w, xd = W, yn = h, yd = H;
	if (fit != MM_FIT_STRETCH) {
		bool width_rules = (uint64_t)w * H >= (uint64_t)h * W; // w/W >= h/H
		if (width_rules == (fit == MM_FIT_CROP))
			yn = w, yd = W;
		else
			xn = h, xd = H;
	}
	axis ax, ay;
	if ((rc = axis_build(&ax, W, w, xn, xd)) < 0) {
		mm_image_free(out);
		return rc;
	}
	if ((rc = axis_build(&ay, H, h, yn, yd)) < 0) {
		axis_free(&ax);
		mm_image_free(out);
		return rc;
	}
	unsigned __int128 *acc = malloc((size_t)w * c * sizeof *acc);
	uint64_t *row = malloc((size_t)w * c * sizeof *row);
	if (!acc || !row)
		rc = mm_fail(MM_ENOMEM, "out of memory for resize to %ux%u", w, h);
	else
		resize_apply(in, &ax, &ay, bg, out, acc, row);
	free(acc);
	free(row);
	axis_free(&ax);
	axis_free(&ay);
	if (rc < 0)
		mm_image_free(out);
	return rc;
}

// ---- Patch order ------------------------------------------------------------------------------

// Moves each p-pixel run of a patch row between raster and patch order. to_patches = 1: px is
// (h, w, c) and pt is (h/p * w/p, p, p, c); 0: the reverse.
// One patch row is p * c bytes, often 4 to 48: a memcpy of a constant size compiles to a few
// moves where a call to memcpy would cost more than the copy (profiled: 3% of mm-tokenize), and
// a constant p unrolls the rows of a patch (patch_copy passes both for the common shapes).
static inline void patch_rows(uint8_t *px, uint8_t *pt, uint32_t h, size_t run, size_t stride,
			      uint32_t p, int to_patches)
{
	for (uint32_t py = 0; py < h; py += p) {
		uint8_t *band = px + py * stride;
		for (size_t x = 0; x < stride; x += run, pt += p * run) {
			uint8_t *r = band + x;
			if (to_patches) {
#pragma GCC unroll 16
				for (uint32_t y = 0; y < p; y++)
					memcpy(pt + y * run, r + y * stride, run);
			} else {
#pragma GCC unroll 16
				for (uint32_t y = 0; y < p; y++)
					memcpy(r + y * stride, pt + y * run, run);
			}
		}
	}
}

static void patch_copy(uint8_t *px, uint8_t *pt, uint32_t h, uint32_t w, uint32_t c, uint32_t p, int to_patches)
{
	if (p == 0 || h % p || w % p)
		return;
	const size_t run = (size_t)p * c, stride = (size_t)w * c;
	switch (c < 16 && p < 256 ? p << 4 | c : 0) {
#define RUN(P, C)                                                                                  \
	case P << 4 | C:                                                                           \
		patch_rows(px, pt, h, P * C, stride, P, to_patches);                              \
		break;
		RUN(2, 1) RUN(4, 1) RUN(8, 1) RUN(16, 1) RUN(2, 3) RUN(4, 3) RUN(8, 3) RUN(16, 3)
#undef RUN
	default:
		patch_rows(px, pt, h, run, stride, p, to_patches);
	}
}

void mm_image_to_patches(const uint8_t *px, uint32_t h, uint32_t w, uint32_t c, uint32_t p, uint8_t *out)
{
	patch_copy((uint8_t *)px, out, h, w, c, p, 1); // px is only read in this direction
}

void mm_image_from_patches(const uint8_t *patches, uint32_t h, uint32_t w, uint32_t c, uint32_t p, uint8_t *out)
{
	patch_copy(out, (uint8_t *)patches, h, w, c, p, 0); // patches is only read in this direction
}

// ---- PNG encoding -----------------------------------------------------------------------------

typedef struct encode_ctx {
	guard g;
	const mm_image *img;
	mm_afile af;
	bool io_failed; // g.msg is mm_afile's message, which already names the file
	png_structp png;
	png_infop info;
} encode_ctx;

static void png_afile_write(png_structp png, png_bytep data, size_t n)
{
	encode_ctx *e = png_get_io_ptr(png);
	if (mm_afile_write(&e->af, data, n) < 0) {
		e->io_failed = true;
		guard_raise(&e->g, MM_EIO, "%s", mm_errmsg());
	}
}

static void png_afile_flush(png_structp png)
{
	(void)png; // mm_afile_commit flushes and syncs
}

static void png_encode(void *arg)
{
	static const int ctypes[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
				      PNG_COLOR_TYPE_RGB_ALPHA};
	encode_ctx *e = arg;
	const mm_image *img = e->img;
	e->png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &e->g, png_on_error, png_on_warning);
	if (!e->png)
		guard_raise(&e->g, MM_ENOMEM, "out of memory (libpng)");
	e->info = png_create_info_struct(e->png);
	if (!e->info)
		guard_raise(&e->g, MM_ENOMEM, "out of memory (libpng)");
	png_set_write_fn(e->png, e, png_afile_write, png_afile_flush);
	png_set_IHDR(e->png, e->info, img->w, img->h, 8, ctypes[img->c], PNG_INTERLACE_NONE,
		     PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
	png_write_info(e->png, e->info);
	for (uint32_t y = 0; y < img->h; y++)
		png_write_row(e->png, img->px + (size_t)y * img->w * img->c);
	png_write_end(e->png, NULL);
}

int mm_image_save_png(const char *path, const mm_image *img)
{
	if (img->c < 1 || img->c > 4 || img->w == 0 || img->h == 0 || img->w > 0x7fffffff || img->h > 0x7fffffff)
		return mm_fail(MM_EINVAL, "%s: cannot write a %ux%u image with %u channels as PNG", path, img->w, img->h,
			       img->c);
	encode_ctx *e = calloc(1, sizeof *e);
	if (!e)
		return mm_fail(MM_ENOMEM, "%s: out of memory", path);
	e->img = img;
	int rc = mm_afile_open(&e->af, path);
	if (rc == 0) {
		rc = guarded(&e->g, png_encode, e);
		if (e->png)
			png_destroy_write_struct(&e->png, e->info ? &e->info : NULL);
		if (rc < 0) {
			mm_afile_abort(&e->af);
			rc = e->io_failed ? mm_fail(rc, "%s", e->g.msg) : mm_fail(rc, "%s: %s", path, e->g.msg);
		} else {
			rc = mm_afile_commit(&e->af);
		}
	}
	free(e);
	return rc;
}
