// File helpers: atomic writes (temp file, fsync, rename) and checked whole-file reads.
#ifndef MM_FILEIO_H
#define MM_FILEIO_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

// A file being written under a temporary name beside its final path. Nothing appears under the
// final name until mm_afile_commit succeeds; mm_afile_abort (or a signal handler calling
// mm_afile_unlink_all) removes the temporary file.
typedef struct mm_afile {
	FILE *f;
	char *path; // final name
	char *tmp;  // temporary name, in the same directory
	int slot;   // registry slot for signal-time clean-up, or -1
	uint64_t written, queued; // bytes written; bytes handed to the kernel's writeback so far
} mm_afile;

int mm_afile_open(mm_afile *a, const char *path);
// Writes n bytes; reports a write error naming the file.
int mm_afile_write(mm_afile *a, const void *data, size_t n);
// Flushes, fsyncs, closes, renames over path, fsyncs the directory.
int mm_afile_commit(mm_afile *a);
void mm_afile_abort(mm_afile *a);

// Sets of files that appear together (the shards of one mm-tokenize run): each file is sealed
// (flushed, fsynced, closed, still under its temporary name and still removed by
// mm_afile_unlink_all), and once all are sealed mm_afile_publish renames every one into place,
// then calls after(ctx) (NULL: none) to remove what the new set replaces; SIGINT, SIGTERM and
// SIGHUP are held meanwhile, so an interruption leaves the old set or the new one. On a failure
// of the seal a is freed and its temporary file removed; mm_afile_discard_sealed removes them all.
int mm_afile_seal(mm_afile *a);
int mm_afile_publish(int (*after)(void *ctx), void *ctx);
void mm_afile_discard_sealed(void);
// Async-signal-safe: unlinks every temporary file still open. For SIGINT/SIGTERM handlers.
void mm_afile_unlink_all(void);

// Reads a whole file of at most max_bytes into a malloc'd buffer (NUL-terminated for
// convenience; *len excludes the NUL).
int mm_read_file(const char *path, size_t max_bytes, uint8_t **out, size_t *len);
// The same for the file name under the open directory dirfd (or AT_FDCWD); path names the
// file in messages.
int mm_read_file_at(int dirfd, const char *name, const char *path, size_t max_bytes, uint8_t **out, size_t *len);

// Reads exactly n bytes at offset off; a short read is MM_ETRUNC naming path and offset.
int mm_pread_all(int fd, void *buf, size_t n, uint64_t off, const char *path);

#endif
