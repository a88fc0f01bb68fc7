// Fuzz target for the shard reader: the input is a whole shard file. It must never crash,
// and every refusal must name the file. In the libFuzzer build (make fuzz) CRCs are not
// enforced, so that mutations reach the parsers behind them (see CRC_BAD in lib/shard.c and
// lib/layout.c).
#include "fuzz.h"

#include "doc.h"
#include "shard.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *path = fuzz_file(0, data, size);
	mm_shard_reader *r;
	if (mm_shard_open(&r, path) != 0) {
		fuzz_refused(path);
		return 0;
	}
	const mm_shard_info *in = mm_shard_get_info(r);
	if (mm_shard_verify(r) != 0)
		fuzz_refused(path);
	mm_doc d;
	mm_doc_init(&d);
	for (uint64_t k = 0; k < in->n_docs && k < 1000; k++) {
		if (mm_shard_read(r, k, &d) != 0) {
			fuzz_refused(path);
			continue;
		}
		// What the reader returns keeps the header's promises.
		for (uint32_t i = 0; i < d.n_segs; i++) {
			const mm_segment *s = &d.segs[i];
			if (s->type == MM_SEG_TEXT) {
				for (uint32_t j = 0; j < s->n_tokens; j++)
					if (s->tokens[j] >= in->vocab_size)
						abort();
			} else if (s->type != MM_SEG_IMAGE || s->h != in->img_h || s->w != in->img_w ||
				   s->c != in->img_c || s->p != in->patch) {
				abort();
			}
		}
	}
	mm_doc_free(&d);
	mm_shard_close(r);
	return 0;
}
