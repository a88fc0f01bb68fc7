// Fuzz target for "key = value" text (mm-train --config files, the settings in checkpoints):
// the input is the whole file, parsed as key-value pairs and as a model configuration. What
// the parser returns keeps the promises of lib/kv.h.
#include "fuzz.h"

#include "kv.h"
#include "model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char name[] = "fuzz.conf";
	mm_kv *kv;
	int n;
	if (mm_kv_parse((const char *)data, size, name, &kv, &n) != 0) {
		fuzz_refused(name);
	} else {
		for (int i = 0; i < n; i++) {
			const char *k = kv[i].key, *v = kv[i].value;
			size_t lv = strlen(v);
			if (!*k || kv[i].line < 1 || (i && kv[i].line <= kv[i - 1].line))
				abort();
			for (; *k; k++)
				if (!((*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') || (*k >= '0' && *k <= '9') ||
				      *k == '-'))
					abort();
			if (lv && (v[0] == ' ' || v[0] == '\t' || v[lv - 1] == ' ' || v[lv - 1] == '\t'))
				abort();
		}
		mm_kv_free(kv, n);
	}
	mm_config c;
	if (mm_config_parse((const char *)data, size, name, &c) != 0)
		fuzz_refused(name);
	return 0;
}
