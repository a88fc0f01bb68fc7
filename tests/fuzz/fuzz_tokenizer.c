// Fuzz target for the tokenizer file reader: the input is a whole tokenizer file. The trailing
// CRC-32C is recomputed first, so that mutations reach the merge checks behind it. A file that
// loads must encode and decode any text back to itself, and survive a save and reload.
#include "fuzz.h"

#include "bytes.h"
#include "checksum.h"
#include "tokenizer.h"

static void tok_fuzz_check(const mm_tokenizer *t, const uint8_t *text, size_t n)
{
	uint32_t *ids = NULL;
	uint8_t *back = NULL;
	size_t cap = 0, bcap = 0, n_ids, n_back;
	if (mm_tok_encode(t, text, n, &ids, &cap, &n_ids) != 0 ||
	    mm_tok_decode(t, ids, n_ids, &back, &bcap, &n_back) != 0 || n_back != n ||
	    (n && memcmp(back, text, n) != 0))
		abort();
	free(ids);
	free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *b = fuzz_copy(data, size);
	if (size >= 4)
		mm_put_u32(b + size - 4, mm_crc32c(0, b, size - 4));
	const char *path = fuzz_file(0, b, size);
	mm_tokenizer *t;
	if (mm_tok_load(&t, path) != 0) {
		fuzz_refused(path);
		free(b);
		return 0;
	}
	static const char text[] = "the quick brown fox, 1234 jumps\n\tover  the lazy dog \xc3\xa9\xff";
	tok_fuzz_check(t, (const uint8_t *)text, sizeof text - 1);
	tok_fuzz_check(t, data, size);
	uint32_t v = mm_tok_vocab_size(t);
	for (uint32_t id = 0; id < v; id++) {
		size_t len;
		mm_tok_piece(t, id, &len);
	}
	// The file it writes is the file it read.
	uint8_t *out;
	size_t n_out;
	if (mm_tok_serialize(t, &out, &n_out) != 0 || n_out != size || memcmp(out, b, size) != 0)
		abort();
	free(out);
	mm_tok_free(t);
	free(b);
	return 0;
}
