// An LD_PRELOAD shim for tests/cli/faults.sh: fails the Nth write, fsync or rename of a
// process, as a full or failing disk would.
//   MM_FAULT=OP:N[:ERR]  OP: write (fwrite, fflush, write, pwrite to a regular file), fsync
//                        (fsync, fdatasync) or rename (rename, renameat); N counts from 1;
//                        ERR: ENOSPC (default) or EIO.
//   MM_FAULT_LOG=FILE    appended "OP N" when the fault is injected, so a test knows whether
//                        the run got that far.
// Writes to anything but a regular file (the terminal, pipes), and to standard output and
// error whatever they are, are never counted or failed.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { OP_NONE, OP_WRITE, OP_FSYNC, OP_RENAME };
static int fault_op = -1, fault_err;
static long fault_at, fault_count;

static void fault_init(void)
{
	if (fault_op >= 0)
		return;
	fault_op = OP_NONE;
	const char *s = getenv("MM_FAULT");
	if (!s)
		return;
	char op[16] = "", err[16] = "";
	long n = 0;
	if (sscanf(s, "%15[a-z]:%ld:%15[A-Z]", op, &n, err) < 2 || n < 1)
		return;
	fault_at = n;
	fault_err = strcmp(err, "EIO") == 0 ? EIO : ENOSPC;
	fault_op = !strcmp(op, "write") ? OP_WRITE : !strcmp(op, "fsync") ? OP_FSYNC : !strcmp(op, "rename") ? OP_RENAME : OP_NONE;
}

static int regular(int fd)
{
	struct stat st;
	return fd > 2 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
}

// 1 when this call of op is the one to fail (errno is then set).
static int fault_now(int op, int fd)
{
	fault_init();
	if (op != fault_op || (fd != -2 && !regular(fd)))
		return 0;
	if (__atomic_add_fetch(&fault_count, 1, __ATOMIC_SEQ_CST) != fault_at)
		return 0;
	const char *log = getenv("MM_FAULT_LOG");
	if (log) {
		int lf = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (lf >= 0) {
			char line[64];
			int k = snprintf(line, sizeof line, "%s %ld\n", getenv("MM_FAULT"), fault_at);
			ssize_t w = ((__typeof__(&write))dlsym(RTLD_NEXT, "write"))(lf, line, (size_t)k);
			(void)w;
			close(lf);
		}
	}
	errno = fault_err;
	return 1;
}

#define REAL(name)                                     \
	static __typeof__(&name) real_##name;          \
	if (!real_##name)                              \
	real_##name = (__typeof__(&name))dlsym(RTLD_NEXT, #name)

size_t fwrite(const void *p, size_t size, size_t n, FILE *f)
{
	REAL(fwrite);
	if (size && n && fault_now(OP_WRITE, fileno(f)))
		return 0;
	return real_fwrite(p, size, n, f);
}

int fflush(FILE *f)
{
	REAL(fflush);
	if (f && fault_now(OP_WRITE, fileno(f)))
		return EOF;
	return real_fflush(f);
}

ssize_t write(int fd, const void *p, size_t n)
{
	REAL(write);
	if (n && fault_now(OP_WRITE, fd))
		return -1;
	return real_write(fd, p, n);
}

ssize_t pwrite(int fd, const void *p, size_t n, off_t off)
{
	REAL(pwrite);
	if (n && fault_now(OP_WRITE, fd))
		return -1;
	return real_pwrite(fd, p, n, off);
}

int fsync(int fd)
{
	REAL(fsync);
	if (fault_now(OP_FSYNC, fd))
		return -1;
	return real_fsync(fd);
}

int fdatasync(int fd)
{
	REAL(fdatasync);
	if (fault_now(OP_FSYNC, fd))
		return -1;
	return real_fdatasync(fd);
}

int rename(const char *a, const char *b)
{
	REAL(rename);
	if (fault_now(OP_RENAME, -2))
		return -1;
	return real_rename(a, b);
}

int renameat(int da, const char *a, int db, const char *b)
{
	REAL(renameat);
	if (fault_now(OP_RENAME, -2))
		return -1;
	return real_renameat(da, a, db, b);
}
