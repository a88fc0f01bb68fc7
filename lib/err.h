// Error codes and messages of libmm.
// Library functions return 0 on success or a negative MM_E* code; the failing function also
// leaves a one-line human message (naming the file, offset or line where it knows them) in a
// thread-local buffer that mm_errmsg() returns. The library never prints and never exits.
#ifndef MM_ERR_H
#define MM_ERR_H

#define MM_ERRORS(X)                                                  \
	X(MM_OK, "success")                                           \
	X(MM_ENOMEM, "out of memory")                                 \
	X(MM_EIO, "input/output error")                               \
	X(MM_EFORMAT, "bad file format")                              \
	X(MM_ETRUNC, "truncated file")                                \
	X(MM_ECHECKSUM, "checksum mismatch (corrupt data)")           \
	X(MM_EVERSION, "unsupported format version")                  \
	X(MM_EINVAL, "invalid argument")                              \
	X(MM_ERANGE, "value out of range")                            \
	X(MM_EIMAGE, "cannot decode image")                           \
	X(MM_EMISMATCH, "incompatible inputs")                        \
	X(MM_EUNSUPPORTED, "unsupported feature")                     \
	X(MM_ENUMERIC, "numerical failure (NaN or Inf)")              \
	X(MM_EINTERRUPTED, "interrupted")

#define MM_ERR_ENUM(code, text) code,
enum mm_err { MM_ERRORS(MM_ERR_ENUM) MM_ERR_COUNT };
#undef MM_ERR_ENUM

// Text of an error code (positive or negative); never NULL.
const char *mm_strerror(int code);

// Sets the thread's message from a printf format and returns -code, so that
//   return mm_fail(MM_EFORMAT, "%s: bad magic at offset %llu", path, off);
// reports and propagates in one statement.
int mm_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// The message of the last failure on this thread ("" if none).
const char *mm_errmsg(void);

// Prepends "prefix: " to the current message (adds context on the way up).
void mm_errctx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
