// "key = value" text: the format of mm-train's --config files and of the settings stored in a
// checkpoint. One setting a line; '#' starts a comment; blank lines are ignored; keys are
// letters, digits, '-' and '_' (a '-' and a '_' are the same: "image-weight" == "image_weight").
#ifndef MM_KV_H
#define MM_KV_H

#include <stddef.h>

typedef struct mm_kv {
	char *key;   // normalised: '_' turned into '-'
	char *value; // trimmed
	int line;
} mm_kv;

// Parses text (n bytes, need not be NUL-terminated); name is used in messages ("file:line").
int mm_kv_parse(const char *text, size_t n, const char *name, mm_kv **out, int *count);
void mm_kv_free(mm_kv *kv, int count);

#endif
