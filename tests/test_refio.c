// The reference fixtures tests/ref/tiny_{a,b}.bin and their reader tests/refio.h: both files
// load, hold every tensor the C model test will ask for with the shapes the configuration
// gives (parameter names taken from MM_PARAMS itself), nothing else, valid batches and finite
// values; and the reader fails cleanly on damaged copies.
#include <string.h>

#include "check.h"
#include "mm.h"
#include "refio.h"

static char path_buf[4096];

static const char *fixture(const char *name)
{
	const char *t = getenv("T");
	snprintf(path_buf, sizeof path_buf, "%s/ref/%s", t ? t : "tests", name);
	return path_buf;
}

static int all_finite(const float *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isfinite(p[i]))
			return 0;
	return 1;
}

// Checks one parameter (and its grad. and adam.final. twins): present with its MM_PARAMS shape,
// or absent when that shape is empty. Returns how many tensors it accounted for.
static int check_param(const ref_file *f, const char *name, int rows, int cols, int per_layer, int layers)
{
	int found = 0;
	for (int l = 0; l < (per_layer ? layers : 1); l++) {
		static const char *prefix[] = {"", "grad.", "adam.final."};
		for (int p = 0; p < 3; p++) {
			char full[300];
			if (per_layer)
				snprintf(full, sizeof full, "%slayers.%d.%s", prefix[p], l, name);
			else
				snprintf(full, sizeof full, "%s%s", prefix[p], name);
			if (rows == 0 || cols == 0) {
				CHECK_MSG(ref_find(f, full) == NULL, "%s should be absent", full);
				continue;
			}
			const float *v = cols == 1 ? ref_f32(f, full, 1, rows) : ref_f32(f, full, 2, rows, cols);
			CHECK_MSG(v != NULL, "%s", mm_errmsg());
			if (v)
				CHECK_MSG(all_finite(v, (size_t)rows * cols), "%s not finite", full);
			found += v != NULL;
		}
	}
	return found;
}

static void check_batch(const mm_config *c, const mm_batch *b)
{
	int V = c->vocab, NP = MM_NPATCH(c), P = MM_PDIM(c), bad = 0, targets = 0, images = 0, pads = 0;
	for (int r = 0; r < b->B; r++) {
		for (int i = 0; i < b->T; i++) {
			int k = r * b->T + i;
			int is_img = b->img[k] >= 0;
			images += is_img;
			pads += b->doc[k] < 0;
			targets += b->target[k] >= 0;
			bad += b->target[k] < -1 || b->target[k] >= V;
			bad += b->doc[k] < -1 || b->pos[k] < 0 || b->pos[k] >= b->T;
			if (is_img) {
				bad += b->token[k] != -1 || b->doc[k] < 0 || b->patch[k] < 0 || b->patch[k] >= NP;
				bad += !(b->t[k] >= 0 && b->t[k] <= 1) || b->target[k] != -1;
				bad += !all_finite(b->z + (size_t)k * P, P) || !all_finite(b->x + (size_t)k * P, P);
			} else {
				bad += b->token[k] < 0 || b->token[k] >= V || b->patch[k] != -1;
			}
			// The target rule: the next position is a text token of the same document.
			int want = -1;
			if (!is_img && b->doc[k] >= 0 && i + 1 < b->T && b->doc[k + 1] == b->doc[k] && b->img[k + 1] < 0)
				want = b->token[k + 1];
			bad += b->target[k] != want;
		}
	}
	CHECK_EQ_INT(bad, 0);
	CHECK(targets > 0);
	CHECK(images > 0);
	CHECK(pads > 0);
}

static void check_fixture(const char *name, int want_dim, int want_B)
{
	ref_file f;
	int rc = ref_load(&f, fixture(name));
	CHECK_MSG(rc == 0, "%s", mm_errmsg());
	if (rc)
		return;
	mm_config c;
	int B = 0;
	rc = ref_config(&f, &c, &B);
	CHECK_MSG(rc == 0, "%s", mm_errmsg());
	if (rc) {
		ref_free(&f);
		return;
	}
	CHECK_EQ_INT(c.dim, want_dim);
	CHECK_EQ_INT(B, want_B);
	int T = c.seq_len, V = c.vocab, P = MM_PDIM(&c);
	CHECK(P > 0);

	mm_batch b;
	CHECK_OK(ref_batch(&f, &c, B, &b));
	if (b.token)
		check_batch(&c, &b);

	int params = 0;
#define X(name, rows, cols, per_layer, kind) params += check_param(&f, #name, rows, cols, per_layer, c.layers);
	MM_PARAMS(X, &c)
#undef X

	const float *lg = ref_f32(&f, "out.logits", 3, B, T, V);
	const float *xp = ref_f32(&f, "out.x_pred", 3, B, T, P);
	const float *lt = ref_f32(&f, "out.loss_text", 1, 1);
	const float *li = ref_f32(&f, "out.loss_image", 1, 1);
	const float *l = ref_f32(&f, "out.loss", 1, 1);
	const float *hp = ref_f32(&f, "adam.hparams", 1, 6);
	const float *al = ref_f32(&f, "adam.loss", 1, 10);
	const float *gn = ref_f32(&f, "adam.grad_norm", 1, 10);
	CHECK_MSG(lg && xp && lt && li && l && hp && al && gn, "%s", mm_errmsg());
	if (lg && xp && lt && li && l && hp && al && gn) {
		CHECK(all_finite(lg, (size_t)B * T * V) && all_finite(xp, (size_t)B * T * P));
		CHECK(isfinite(*lt) && *lt > 0 && isfinite(*li) && *li > 0);
		CHECK_MSG(fabsf(*l - (*lt + c.image_weight * *li)) <= 1e-5f * *l, "%g != %g + %g * %g", *l, *lt,
			  c.image_weight, *li);
		CHECK(hp[0] == 1e-3f && hp[1] == 0.9f && hp[2] == 0.95f && hp[3] == 1e-8f && hp[4] == 0.1f && hp[5] == 1);
		CHECK(al[0] == *l);             // step 1 starts from the same parameters
		CHECK(al[9] < al[0]);           // ten steps on one batch make progress
		CHECK(all_finite(al, 10) && all_finite(gn, 10) && gn[0] > 0);
	}
	// Header tensors + 9 batch arrays + 5 outputs + 3 adam + 3 x each parameter: nothing else.
	CHECK_EQ_INT(f.count, 3 + 9 + 5 + 3 + params);
	ref_free(&f);
}

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	if (!fp)
		return NULL;
	fseek(fp, 0, SEEK_END);
	long n = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	uint8_t *buf = n > 0 ? malloc((size_t)n) : NULL;
	if (buf && fread(buf, 1, (size_t)n, fp) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(fp);
	*len = buf ? (size_t)n : 0;
	return buf;
}

// A small valid file: magic, then the given entries (already encoded).
static size_t build(uint8_t *out, uint32_t count, const uint8_t *entries, size_t n)
{
	memcpy(out, REF_MAGIC, 8);
	mm_put_u32(out + 8, count);
	memcpy(out + 12, entries, n);
	return 12 + n;
}

static size_t entry(uint8_t *p, const char *name, uint32_t dtype, uint32_t ndim, const uint32_t *dims, size_t nvals)
{
	size_t o = 0, nl = strlen(name);
	mm_put_u32(p, (uint32_t)nl);
	memcpy(p + 4, name, nl);
	o = 4 + nl;
	mm_put_u32(p + o, dtype);
	mm_put_u32(p + o + 4, ndim);
	o += 8;
	for (uint32_t i = 0; i < ndim; i++, o += 4)
		mm_put_u32(p + o, dims[i]);
	memset(p + o, 0, 4 * nvals);
	return o + 4 * nvals;
}

static void test_bad_files(void)
{
	size_t len;
	uint8_t *good = slurp(fixture("tiny_b.bin"), &len);
	CHECK(good != NULL);
	if (!good)
		return;
	ref_file f;
	// Every truncation fails cleanly: all short lengths, then a stride through the file.
	int fails = 0, tries = 0;
	for (size_t n = 0; n < len; n += n < 2048 ? 1 : 89) {
		tries++;
		int rc = ref_parse(&f, good, n, "cut");
		fails += rc == -MM_ETRUNC || rc == -MM_EFORMAT;
		CHECK(f.count == 0 && f.t == NULL);
	}
	CHECK_EQ_INT(fails, tries);
	CHECK_OK(ref_parse(&f, good, len, "whole"));
	ref_free(&f);

	// Damaged bytes in the headers: any outcome but a crash; a success must still be sane.
	uint8_t *bad = malloc(len + 1);
	for (size_t i = 0; bad && i < 4096 && i < len; i++) {
		memcpy(bad, good, len);
		bad[i] ^= (uint8_t)(0x5a + i);
		if (ref_parse(&f, bad, len, "flip") == 0) {
			size_t total = 0;
			for (int k = 0; k < f.count; k++)
				total += f.t[k].n;
			CHECK(total * 4 < len);
			ref_free(&f);
		}
	}
	if (bad) { // one stray byte at the end
		memcpy(bad, good, len);
		bad[len] = 0;
		CHECK_EQ_INT(ref_parse(&f, bad, len + 1, "stray"), -MM_EFORMAT);
	}
	free(bad);
	free(good);

	uint8_t buf[512], ent[400];
	uint32_t d2[2] = {3, 4}, huge[9] = {0xffffffffu, 0xffffffffu, 0xffffffffu, 1, 1, 1, 1, 1, 1};
	size_t n;
	n = entry(ent, "w", 0, 2, d2, 12);
	CHECK_OK(ref_parse(&f, buf, build(buf, 1, ent, n), "ok"));
	CHECK(ref_f32(&f, "w", 2, 3, 4) != NULL);
	CHECK(ref_f32(&f, "w", 2, 4, 3) == NULL);  // wrong shape
	CHECK(ref_i32(&f, "w", 2, 3, 4) == NULL);  // wrong dtype
	CHECK(ref_f32(&f, "v", 1, 12) == NULL);     // missing
	ref_free(&f);
	size_t m = entry(ent + n, "w", 0, 2, d2, 12); // the same name twice
	CHECK_EQ_INT(ref_parse(&f, buf, build(buf, 2, ent, n + m), "dup"), -MM_EFORMAT);
	CHECK_EQ_INT(ref_parse(&f, buf, build(buf, 0xffffffffu, ent, n), "count"), -MM_EFORMAT);
	n = entry(ent, "w", 7, 2, d2, 12);
	CHECK_EQ_INT(ref_parse(&f, buf, build(buf, 1, ent, n), "dtype"), -MM_EFORMAT);
	n = entry(ent, "w", 0, 9, huge, 0);
	CHECK_EQ_INT(ref_parse(&f, buf, build(buf, 1, ent, n), "ndim"), -MM_EFORMAT);
	n = entry(ent, "w", 0, 3, huge, 4); // 2^96 values: overflow caught, not allocated
	CHECK_EQ_INT(ref_parse(&f, buf, build(buf, 1, ent, n), "dims"), -MM_ETRUNC);
	n = entry(ent, "w", 0, 2, d2, 12);
	mm_put_u32(ent, 0xfffffff0u); // name length past the end
	CHECK_EQ_INT(ref_parse(&f, buf, build(buf, 1, ent, n), "name"), -MM_EFORMAT);
	memcpy(buf, "MMREF\0\0\2", 8);
	CHECK_EQ_INT(ref_parse(&f, buf, 12, "magic"), -MM_EFORMAT);
	CHECK(ref_load(&f, "no/such/file.bin") == -MM_EIO);
}

int main(void)
{
	check_fixture("tiny_a.bin", 32, 2);
	check_fixture("tiny_b.bin", 24, 3);
	test_bad_files();
	return check_done();
}
