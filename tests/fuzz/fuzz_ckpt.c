// Fuzz target for checkpoints: the input is a whole .mmc file, read as a container, loaded as a
// model for inference (config, tokenizer, weights), then read as a training state to resume. The CRC-32C of the header and of every
// section are recomputed first, as far as the layout can be followed, so that mutations reach
// the parsers behind them.
#include "fuzz.h"

#include "bytes.h"
#include "checksum.h"
#include "ckpt.h"
#include "model.h"
#include "tokenizer.h"

static void ckpt_fuzz_fix_crcs(uint8_t *b, size_t n)
{
	if (n < 32)
		return;
	mm_put_u32(b + 28, mm_crc32c(0, b, 28));
	uint32_t secs = mm_get_u32(b + 12);
	size_t off = 32;
	for (uint32_t i = 0; i < secs && n - off >= 24; i++) {
		uint8_t *sh = b + off;
		uint64_t size = mm_get_u64(sh + 8);
		if (size <= n - off - 24)
			mm_put_u32(sh + 16, mm_crc32c(0, sh + 24, size));
		mm_put_u32(sh + 20, mm_crc32c(0, sh, 20));
		uint64_t step = 24 + ((size + 7) & ~(uint64_t)7);
		if (size > n || step > n - off)
			break;
		off += step;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *b = fuzz_copy(data, size);
	ckpt_fuzz_fix_crcs(b, size);
	const char *path = fuzz_file(0, b, size);
	free(b);
	mm_ckpt *ck;
	if (mm_ckpt_read(&ck, path) != 0) {
		fuzz_refused(path);
		return 0;
	}
	const void *p;
	const mm_ckpt_section *s = mm_ckpt_find(ck, MM_SEC_STAT);
	if (s && mm_ckpt_need(ck, MM_SEC_STAT, s->size, &p) != 0)
		abort();
	mm_model *m;
	mm_tokenizer *t;
	int has_ema;
	if (mm_ckpt_load_model(path, size & 1, 1, &m, &t, &has_ema) != 0) {
		fuzz_refused(path);
		mm_ckpt_free(ck);
		return 0;
	}
	// What only a resumed training reads: PARM, ADAM, EMA, STAT and RANK, each against the
	// model's size; the rank positions are checked again when the loader takes them.
	mm_ckpt_train tr;
	if (mm_ckpt_get_train(ck, mm_model_nparams(m), has_ema && (size & 2), &tr) != 0)
		fuzz_refused(path);
	else if (tr.ranks > 1 && !tr.rank)
		abort();
	free(tr.rank);
	mm_ckpt_free(ck);
	mm_model_free(m);
	mm_tok_free(t);
	return 0;
}
