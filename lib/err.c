#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define MM_ERR_TEXT(code, text) text,
static const char *const err_text[] = {MM_ERRORS(MM_ERR_TEXT)};
#undef MM_ERR_TEXT

static _Thread_local char errmsg[1024];

const char *mm_strerror(int code)
{
	if (code < 0)
		code = -code;
	if (code >= MM_ERR_COUNT)
		return "unknown error";
	return err_text[code];
}

int mm_fail(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(errmsg, sizeof errmsg, fmt, ap);
	va_end(ap);
	return code > 0 ? -code : code;
}

const char *mm_errmsg(void)
{
	return errmsg;
}

void mm_errctx(const char *fmt, ...)
{
	char prefix[512], old[sizeof errmsg];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof prefix, fmt, ap);
	va_end(ap);
	memcpy(old, errmsg, sizeof old);
	size_t k = strlen(prefix);
	if (k > sizeof errmsg - 3)
		k = sizeof errmsg - 3;
	memcpy(errmsg, prefix, k);
	memcpy(errmsg + k, ": ", 2);
	size_t room = sizeof errmsg - k - 3, n = strlen(old);
	if (n > room)
		n = room;
	memcpy(errmsg + k + 2, old, n);
	errmsg[k + 2 + n] = 0;
}
