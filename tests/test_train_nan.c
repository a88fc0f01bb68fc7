// mm-train stops on a NaN loss with a clear message and leaves the last good checkpoint intact.
// The NaN comes from a checkpoint whose weights were poisoned (CRCs recomputed), resumed.
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "mm.h"

static int run(const char *cmd)
{
	int st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int main(void)
{
	const char *mm = getenv("MM");
	if (!mm)
		mm = "../../cmd";
	// A small text-only shard made with the byte tokenizer.
	mm_tokenizer *tok;
	CHECK_OK(mm_tok_new_bytes(&tok));
	mm_shard_info info = {.tokenizer_hash = mm_tok_hash(tok), .vocab_size = mm_tok_vocab_size(tok)};
	mm_shard_writer *w;
	CHECK_OK(mm_shard_writer_open(&w, "t.mms", &info, 3));
	mm_doc d;
	mm_doc_init(&d);
	for (int i = 0; i < 50; i++) {
		uint32_t ids[12];
		for (int k = 0; k < 12; k++)
			ids[k] = (uint32_t)('a' + (i * 7 + k) % 26);
		mm_doc_clear(&d);
		CHECK_OK(mm_doc_add_text(&d, ids, 12));
		CHECK_OK(mm_shard_writer_add(w, &d));
	}
	mm_doc_free(&d);
	CHECK_OK(mm_shard_writer_close(w));
	mm_tok_free(tok);

	char cmd[1024];
	snprintf(cmd, sizeof cmd,
		 "%s/mm-train --data t.mms --out run --steps 2 --dim 16 --layers 1 --heads 2 --seq-len 16 --batch 2 "
		 "--threads 1 2>/dev/null",
		 mm);
	CHECK_EQ_INT(run(cmd), 0);

	mm_ckpt *ck;
	CHECK_OK(mm_ckpt_read(&ck, "run/ckpt-2.mmc"));
	if (check_failures)
		return check_done();
	// Rewrite the checkpoint with its weights set to NaN.
	const uint32_t tags[] = {MM_SEC_CONF, MM_SEC_MODL, MM_SEC_TOKN, MM_SEC_PARM, MM_SEC_ADAM, MM_SEC_STAT};
	mm_ckpt_section secs[6];
	float *params = NULL;
	for (int i = 0; i < 6; i++) {
		const mm_ckpt_section *s = mm_ckpt_find(ck, tags[i]);
		CHECK(s != NULL);
		if (!s)
			return check_done();
		secs[i] = *s;
		if (tags[i] == MM_SEC_PARM) {
			params = malloc(s->size);
			memcpy(params, s->data, s->size);
			for (size_t k = 0; k < s->size / sizeof(float); k++)
				params[k] = NAN;
			secs[i].data = params;
		}
	}
	CHECK_OK(mm_ckpt_write("run/ckpt-2.mmc", secs, 6));
	free(params);
	mm_ckpt_free(ck);
	uint8_t *before, *after;
	size_t nb, na;
	CHECK_OK(mm_read_file("run/ckpt-2.mmc", 1 << 26, &before, &nb));

	snprintf(cmd, sizeof cmd, "%s/mm-train --resume run --steps 4 2>err.txt", mm);
	CHECK_EQ_INT(run(cmd), 1);
	uint8_t *err;
	size_t ne;
	CHECK_OK(mm_read_file("err.txt", 1 << 20, &err, &ne));
	CHECK_MSG(strstr((char *)err, "mm-train: non-finite loss at step 3; the last good checkpoint is run/ckpt-2.mmc"),
		  "stderr: %s", err);
	CHECK_OK(mm_read_file("run/ckpt-2.mmc", 1 << 26, &after, &na));
	CHECK(na == nb && memcmp(before, after, nb) == 0);
	CHECK(access("run/ckpt-3.mmc", F_OK) != 0 && access("run/ckpt-4.mmc", F_OK) != 0);
	free(err);
	free(before);
	free(after);
	return check_done();
}
