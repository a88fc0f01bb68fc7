#define _GNU_SOURCE // CPU_COUNT
#include "dist.h"

#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "fileio.h"

#ifndef MM_MPI

void dist_init(int *argc, char ***argv) { (void)argc, (void)argv; }
void dist_finalize(void) {}
int dist_rank(void) { return 0; }
int dist_world(void) { return 1; }
int dist_default_threads(void) { return 0; }
void dist_set_timeout(double seconds) { (void)seconds; }
void dist_sum_floats(float *x, size_t n) { (void)x, (void)n; }
void dist_sum_doubles(double *x, int n) { (void)x, (void)n; }
void dist_bcast(void *buf, size_t n) { (void)buf, (void)n; }

void dist_gather_u64(const uint64_t *mine, int n, uint64_t *all)
{
	memcpy(all, mine, (size_t)n * sizeof *mine);
}

void dist_check_same(uint64_t v, const char *what) { (void)v, (void)what; }
int dist_ckpt_read(mm_ckpt **ck, char **path) { return mm_ckpt_read(ck, *path); }

#else

#include <mpi.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static int rank, world = 1, local_world = 1, active;
static _Atomic int64_t wait_since; // CLOCK_MONOTONIC ns when this rank entered a collective; 0: none
static const char *_Atomic wait_what;
static _Atomic int64_t timeout_ns = (int64_t)300 * 1000000000;

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

// The watchdog: wakes four times a second and ends the job when this rank has been inside one
// collective for longer than the timeout. The other ranks are then stopped, hung, or gone:
// waiting on would hang the job forever.
static void *watchdog(void *arg)
{
	(void)arg;
	for (;;) {
		struct timespec q = {0, 250000000};
		nanosleep(&q, NULL);
		int64_t t0 = atomic_load(&wait_since), lim = atomic_load(&timeout_ns);
		if (!t0 || lim <= 0 || now_ns() - t0 <= lim)
			continue;
		char host[256] = "?";
		gethostname(host, sizeof host - 1);
		fprintf(stderr,
			"%s: rank %d of %d (%s, pid %d) waited %.0f s in %s for the other ranks: one of them has "
			"stopped, hung or lost its connection (--dist-timeout %.0f); ending the whole job\n",
			cli_prog, rank, world, host, (int)getpid(), (double)(now_ns() - t0) / 1e9,
			atomic_load(&wait_what), (double)lim / 1e9);
		fflush(stderr);
		MPI_Abort(MPI_COMM_WORLD, 1);
		_exit(1);
	}
	return NULL;
}

static void enter(const char *what)
{
	atomic_store(&wait_what, what);
	atomic_store(&wait_since, now_ns());
}

static void leave(void) { atomic_store(&wait_since, 0); }

// A rank leaving without dist_finalize (die(), exit(2) on a usage error) takes the job with it:
// otherwise its peers would wait for it in their next collective.
static void on_exit_abort(int status, void *arg)
{
	(void)arg;
	int fin = 0;
	MPI_Finalized(&fin);
	if (!active || fin)
		return;
	if (status == 0) { // every rank exits 0 together (--help): a normal end
		MPI_Finalize();
		return;
	}
	fflush(stderr);
	MPI_Abort(MPI_COMM_WORLD, status);
}

void dist_init(int *argc, char ***argv)
{
	int provided;
	// The watchdog thread calls MPI_Abort while the main thread may be inside a collective.
	if (MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided) != MPI_SUCCESS)
		die("MPI_Init_thread failed");
	active = 1;
	on_exit(on_exit_abort, NULL);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &world);
	MPI_Comm local;
	MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &local);
	MPI_Comm_size(local, &local_world);
	MPI_Comm_free(&local);
	if (world > 1) {
		// Messages of rank r > 0 carry it: "mm-train-mpi[3]: ...".
		static char name[96];
		snprintf(name, sizeof name, "%s[%d]", cli_prog, rank);
		if (rank)
			cli_prog = name;
		pthread_t t;
		pthread_attr_t at;
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&t, &at, watchdog, NULL))
			die("cannot start the watchdog thread");
		pthread_attr_destroy(&at);
	}
}

void dist_finalize(void)
{
	if (active)
		MPI_Finalize();
	active = 0;
}

int dist_rank(void) { return rank; }
int dist_world(void) { return world; }
int dist_default_threads(void)
{
	if (world == 1)
		return 0;
	long n = sysconf(_SC_NPROCESSORS_ONLN) / local_world;
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) < n)
		n = CPU_COUNT(&set);
	return n < 1 ? 1 : (int)n;
}
void dist_set_timeout(double seconds) { atomic_store(&timeout_ns, (int64_t)(seconds * 1e9)); }

void dist_sum_floats(float *x, size_t n)
{
	if (world == 1)
		return;
	enter("the sum of the gradients");
	size_t step = DIST_BUCKET_BYTES / sizeof *x;
	for (size_t i = 0; i < n; i += step) {
		size_t k = n - i < step ? n - i : step;
		MPI_Allreduce(MPI_IN_PLACE, x + i, (int)k, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
	}
	leave();
}

void dist_sum_doubles(double *x, int n)
{
	if (world == 1)
		return;
	enter("a sum of counters");
	MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
	leave();
}

void dist_bcast(void *buf, size_t n)
{
	if (world == 1)
		return;
	enter("a broadcast from rank 0");
	const size_t chunk = (size_t)1 << 30; // MPI counts are ints
	for (size_t i = 0; i < n; i += chunk)
		MPI_Bcast((char *)buf + i, (int)(n - i < chunk ? n - i : chunk), MPI_BYTE, 0, MPI_COMM_WORLD);
	leave();
}

void dist_gather_u64(const uint64_t *mine, int n, uint64_t *all)
{
	if (world == 1) {
		memcpy(all, mine, (size_t)n * sizeof *mine);
		return;
	}
	enter("a gather to rank 0");
	MPI_Gather(mine, n, MPI_UINT64_T, all, n, MPI_UINT64_T, 0, MPI_COMM_WORLD);
	leave();
}

void dist_check_same(uint64_t v, const char *what)
{
	if (world == 1)
		return;
	uint64_t lo, hi;
	enter("a consistency check");
	MPI_Allreduce(&v, &lo, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD);
	MPI_Allreduce(&v, &hi, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
	leave();
	if (lo != hi)
		die("the ranks disagree on %s (this rank: %llu, others: %llu): every rank must run the same "
		    "mm-train with the same options on the same shards",
		    what, (unsigned long long)v, (unsigned long long)(v == lo ? hi : lo));
}

int dist_ckpt_read(mm_ckpt **ck, char **path)
{
	if (world == 1)
		return mm_ckpt_read(ck, *path);
	uint8_t *bytes = NULL;
	size_t n = 0;
	uint64_t len[2] = {0, 0}; // file size, path length
	if (rank == 0) {
		int rc = mm_read_file(*path, (size_t)1 << 40, &bytes, &n);
		if (rc)
			return rc; // rank 0 dies, and its exit ends the job
		len[0] = n, len[1] = strlen(*path);
	}
	dist_bcast(len, sizeof len);
	if (rank) {
		*path = malloc(len[1] + 1);
		bytes = malloc(len[0] ? len[0] : 1);
		if (!*path || !bytes)
			die("out of memory for a checkpoint of %llu bytes", (unsigned long long)len[0]);
	}
	dist_bcast(*path, len[1] + 1);
	dist_bcast(bytes, len[0]);
	return mm_ckpt_read_mem(ck, bytes, len[0], *path);
}

#endif

mm_train_dist dist_train(void)
{
	return (mm_train_dist){dist_rank(), dist_world(), dist_sum_floats, dist_sum_doubles, dist_bcast};
}
