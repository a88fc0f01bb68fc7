#define _GNU_SOURCE // sync_file_range
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"

// Temp names live in a fixed table so that a signal handler can unlink them without locks.
#define AFILE_SLOTS 64
static char *volatile afile_slots[AFILE_SLOTS];

static int slot_take(char *tmp)
{
	for (int i = 0; i < AFILE_SLOTS; i++)
		if (__sync_bool_compare_and_swap(&afile_slots[i], NULL, tmp))
			return i;
	return -1;
}

static void slot_release(int i)
{
	if (i >= 0)
		afile_slots[i] = NULL;
}

// Sealed files (complete, under their temporary names, waiting for mm_afile_publish) are a list
// that only grows at its head until published or discarded, so a handler can walk it any time.
typedef struct sealed {
	char *tmp, *path;
	struct sealed *next;
} sealed;
static sealed *volatile sealed_head;

void mm_afile_unlink_all(void)
{
	for (int i = 0; i < AFILE_SLOTS; i++) {
		char *p = afile_slots[i];
		if (p)
			unlink(p);
	}
	for (sealed *s = sealed_head; s; s = s->next)
		unlink(s->tmp);
}

int mm_afile_open(mm_afile *a, const char *path)
{
	memset(a, 0, sizeof *a);
	a->slot = -1;
	size_t n = strlen(path);
	a->path = strdup(path);
	a->tmp = malloc(n + 16);
	if (!a->path || !a->tmp) {
		free(a->path);
		free(a->tmp);
		return mm_fail(MM_ENOMEM, "%s: out of memory", path);
	}
	snprintf(a->tmp, n + 16, "%s.tmp.XXXXXX", path);
	int fd = mkstemp(a->tmp);
	if (fd < 0) {
		int e = errno;
		free(a->path);
		free(a->tmp);
		return mm_fail(MM_EIO, "%s: cannot create: %s", path, strerror(e));
	}
	a->slot = slot_take(a->tmp);
	fchmod(fd, 0644 & ~umask(umask(0)));
	a->f = fdopen(fd, "wb");
	if (!a->f) {
		close(fd);
		unlink(a->tmp);
		slot_release(a->slot);
		free(a->path);
		free(a->tmp);
		return mm_fail(MM_ENOMEM, "%s: out of memory", path);
	}
	return 0;
}

// Every AFILE_KICK bytes the written part starts on its way to the disk (Linux), so that the
// fsync of mm_afile_commit waits for the tail only, not for the whole file.
#define AFILE_KICK (1u << 20)

int mm_afile_write(mm_afile *a, const void *data, size_t n)
{
	if (n && fwrite(data, 1, n, a->f) != n)
		return mm_fail(MM_EIO, "%s: write failed: %s", a->path, strerror(errno));
	a->written += n;
#ifdef SYNC_FILE_RANGE_WRITE
	if (a->written - a->queued >= AFILE_KICK) {
		if (fflush(a->f) != 0)
			return mm_fail(MM_EIO, "%s: write failed: %s", a->path, strerror(errno));
		// Only a hint: errors, if any, come back from the fsync that commits.
		(void)sync_file_range(fileno(a->f), (off_t)a->queued, (off_t)(a->written - a->queued),
				      SYNC_FILE_RANGE_WRITE);
		a->queued = a->written;
	}
#endif
	return 0;
}

static void afile_free(mm_afile *a)
{
	slot_release(a->slot);
	free(a->path);
	free(a->tmp);
	memset(a, 0, sizeof *a);
	a->slot = -1;
}

void mm_afile_abort(mm_afile *a)
{
	if (!a->tmp)
		return;
	if (a->f)
		fclose(a->f);
	unlink(a->tmp);
	afile_free(a);
}

// A rename is durable only once its directory is synced.
static void sync_dir_of(const char *path)
{
	char *dir = strdup(path);
	if (dir) {
		int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY);
		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
		free(dir);
	}
}

int mm_afile_commit(mm_afile *a)
{
	int rc = 0;
	if (fflush(a->f) != 0 || fsync(fileno(a->f)) != 0)
		rc = mm_fail(MM_EIO, "%s: write failed: %s", a->path, strerror(errno));
	if (fclose(a->f) != 0 && rc == 0)
		rc = mm_fail(MM_EIO, "%s: write failed: %s", a->path, strerror(errno));
	a->f = NULL;
	if (rc == 0 && rename(a->tmp, a->path) != 0)
		rc = mm_fail(MM_EIO, "%s: cannot rename into place: %s", a->path, strerror(errno));
	if (rc != 0) {
		unlink(a->tmp);
		afile_free(a);
		return rc;
	}
	sync_dir_of(a->path);
	afile_free(a);
	return 0;
}

int mm_afile_seal(mm_afile *a)
{
	int rc = 0;
	sealed *s = malloc(sizeof *s);
	if (!s)
		rc = mm_fail(MM_ENOMEM, "%s: out of memory", a->path);
	if (fflush(a->f) != 0 || fsync(fileno(a->f)) != 0)
		rc = rc ? rc : mm_fail(MM_EIO, "%s: write failed: %s", a->path, strerror(errno));
	if (fclose(a->f) != 0 && rc == 0)
		rc = mm_fail(MM_EIO, "%s: write failed: %s", a->path, strerror(errno));
	a->f = NULL;
	if (rc != 0) {
		free(s);
		unlink(a->tmp);
		afile_free(a);
		return rc;
	}
	// Listed before the slot is released: a signal in between finds the file in one or both.
	*s = (sealed){a->tmp, a->path, sealed_head};
	__atomic_store_n(&sealed_head, s, __ATOMIC_SEQ_CST);
	a->tmp = a->path = NULL;
	afile_free(a);
	return 0;
}

static sealed *sealed_take(void)
{
	return __atomic_exchange_n(&sealed_head, NULL, __ATOMIC_SEQ_CST);
}

static void sealed_free(sealed *s)
{
	while (s) {
		sealed *next = s->next;
		free(s->tmp), free(s->path), free(s);
		s = next;
	}
}

// SIGINT, SIGTERM and SIGHUP held off the calling thread while a set changes on disk (the
// callers' other threads, if any, have ended by then).
static void signals_hold(sigset_t *old)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT), sigaddset(&set, SIGTERM), sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, old);
}

int mm_afile_publish(int (*after)(void *ctx), void *ctx)
{
	sigset_t old;
	signals_hold(&old);
	sealed *list = sealed_take();
	int rc = 0;
	for (sealed *s = list; s; s = s->next) {
		if (!rc && rename(s->tmp, s->path) != 0)
			rc = mm_fail(MM_EIO, "%s: cannot rename into place: %s", s->path, strerror(errno));
		if (rc)
			unlink(s->tmp);
	}
	if (list && !rc)
		sync_dir_of(list->path);
	if (!rc && after)
		rc = after(ctx);
	sealed_free(list);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

void mm_afile_discard_sealed(void)
{
	sigset_t old;
	signals_hold(&old);
	sealed *list = sealed_take();
	for (sealed *s = list; s; s = s->next)
		unlink(s->tmp);
	sealed_free(list);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

// Plain system calls rather than stdio: no FILE or stdio buffer to allocate per file, and the
// size from fstat sizes the buffer (a file that grows meanwhile is still read to its end).
int mm_read_file_at(int dirfd, const char *name, const char *path, size_t max_bytes, uint8_t **out, size_t *len)
{
	*out = NULL;
	*len = 0;
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return mm_fail(MM_EIO, "%s: cannot open: %s", path, strerror(errno));
	// Up to max_bytes + 1 bytes are read: one more than allowed says the file is too large.
	size_t lim = max_bytes < SIZE_MAX - 1 ? max_bytes + 1 : SIZE_MAX - 1, cap = 1 << 16, n = 0;
	struct stat st;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= 0 && (uint64_t)st.st_size < lim)
		cap = (size_t)st.st_size + 1; // + 1: the read that sees the end needs room
	cap = cap < lim ? cap : lim;
	uint8_t *buf = malloc(cap + 1);
	int rc = buf ? 0 : mm_fail(MM_ENOMEM, "%s: out of memory", path);
	while (!rc) {
		if (n == cap) {
			if (cap == lim)
				break;
			cap = cap > lim / 2 ? lim : cap * 2;
			uint8_t *nb = realloc(buf, cap + 1);
			if (!nb) {
				rc = mm_fail(MM_ENOMEM, "%s: out of memory", path);
				break;
			}
			buf = nb;
		}
		ssize_t got = read(fd, buf + n, cap - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			rc = mm_fail(MM_EIO, "%s: read error: %s", path, strerror(errno));
		else if (got == 0)
			break;
		else
			n += (size_t)got;
	}
	close(fd);
	if (!rc && n > max_bytes)
		rc = mm_fail(MM_ERANGE, "%s: larger than %zu bytes", path, max_bytes);
	if (rc) {
		free(buf);
		return rc;
	}
	buf[n] = 0;
	*out = buf;
	*len = n;
	return 0;
}

int mm_read_file(const char *path, size_t max_bytes, uint8_t **out, size_t *len)
{
	return mm_read_file_at(AT_FDCWD, path, path, max_bytes, out, len);
}

int mm_pread_all(int fd, void *buf, size_t n, uint64_t off, const char *path)
{
	uint8_t *p = buf;
	size_t done = 0;
	while (done < n) {
		ssize_t got = pread(fd, p + done, n - done, (off_t)(off + done));
		if (got < 0) {
			if (errno == EINTR)
				continue;
			return mm_fail(MM_EIO, "%s: read error at offset %llu: %s", path,
				       (unsigned long long)(off + done), strerror(errno));
		}
		if (got == 0)
			return mm_fail(MM_ETRUNC, "%s: truncated: expected %zu bytes at offset %llu, file ends at %llu",
				       path, n, (unsigned long long)off, (unsigned long long)(off + done));
		done += (size_t)got;
	}
	return 0;
}
