#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "kv.h"
#include "model.h"

// The fields of mm_config as "key = value" text: X(key, field).
#define CONFIG_FIELDS(X) \
	X(dim, dim) X(layers, layers) X(heads, heads) X(mlp, mlp) X(vocab, vocab) X(img-h, img_h) \
	X(img-w, img_w) X(img-c, img_c) X(patch, patch) X(bottleneck, bottleneck) X(qk-norm, qk_norm) \
	X(seq-len, seq_len)

int mm_config_format(const mm_config *c, char *buf, size_t n)
{
	size_t k = 0;
#define FMT(k_, f_) k += (size_t)snprintf(buf + (k < n ? k : n), k < n ? n - k : 0, #k_ " = %d\n", c->f_);
	CONFIG_FIELDS(FMT)
#undef FMT
	k += (size_t)snprintf(buf + (k < n ? k : n), k < n ? n - k : 0, "image-weight = %.9g\n", c->image_weight);
	k += (size_t)snprintf(buf + (k < n ? k : n), k < n ? n - k : 0, "noise-shift = %.9g\n",
			      (double)mm_noise_shift(c));
	return k < n ? 0 : mm_fail(MM_ERANGE, "config text longer than %zu bytes", n);
}

int mm_config_parse(const char *text, size_t n, const char *name, mm_config *c)
{
	mm_kv *kv;
	int count;
	int rc = mm_kv_parse(text, n, name, &kv, &count);
	if (rc)
		return rc;
	memset(c, 0, sizeof *c);
	for (int i = 0; i < count && !rc; i++) {
		char *end;
		float *real = strcmp(kv[i].key, "image-weight") == 0 ? &c->image_weight
			      : strcmp(kv[i].key, "noise-shift") == 0 ? &c->noise_shift : NULL;
		if (real) { // a checkpoint without noise-shift (before format 2.1) was trained with 1
			*real = strtof(kv[i].value, &end);
			if (end == kv[i].value || *end)
				rc = mm_fail(MM_EFORMAT, "%s:%d: bad number", name, kv[i].line);
			continue;
		}
		long v = strtol(kv[i].value, &end, 10);
		if (end == kv[i].value || *end || v < 0 || v > (1 << 30)) {
			rc = mm_fail(MM_EFORMAT, "%s:%d: bad value '%s'", name, kv[i].line, kv[i].value);
			break;
		}
		int known = 0;
#define SET(k_, f_)                              \
	if (strcmp(kv[i].key, #k_) == 0)            \
		c->f_ = (int)v, known = 1;
		CONFIG_FIELDS(SET)
#undef SET
		if (!known)
			rc = mm_fail(MM_EFORMAT, "%s:%d: unknown key '%s'", name, kv[i].line, kv[i].key);
	}
	mm_kv_free(kv, count);
	if (!rc && (rc = mm_config_check(c)))
		mm_errctx("%s", name);
	return rc;
}
