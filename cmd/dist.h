// Data-parallel training over MPI: the few collective operations mm-train needs, over
// MPI_COMM_WORLD. `make MPI=1` compiles this file with -DMM_MPI into cmd/mm-train-mpi; without
// MM_MPI every function is the one-rank case (rank 0 of 1; sums, broadcasts and gathers leave
// the data as it is), so the plain build holds no MPI code and behaves as before.
//
// A failure ends the whole job, never one rank alone: a rank that exits before dist_finalize
// (die(), a usage error) calls MPI_Abort on its way out, and a watchdog thread aborts the job,
// saying why on stderr, when this rank has waited in one collective longer than the timeout
// (a peer stopped, hung, or lost its network). A rank that crashes is reported by mpirun,
// which then ends the others.
#ifndef MM_DIST_H
#define MM_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "ckpt.h"
#include "train.h"

// Gradients are summed in buckets of this many bytes: MPI's scratch memory stays bounded
// whatever the model's size.
#define DIST_BUCKET_BYTES ((size_t)4 << 20)

// Starts MPI (nothing without MM_MPI). Call once, before any other function here.
void dist_init(int *argc, char ***argv);
// Leaves MPI; every rank must get here for the job to end normally.
void dist_finalize(void);
int dist_rank(void);
int dist_world(void);
// Threads for --threads 0: 0 (every processor) for a single rank; with several ranks, this
// machine's processors shared among its ranks, and no more than the processors this rank is
// bound to (mpirun binds each rank to one core by default when it starts two).
int dist_default_threads(void);
// Seconds a rank may wait in one collective before the job is aborted (0: no limit).
void dist_set_timeout(double seconds);

// Sums n floats over the ranks, in place, bucket by bucket.
void dist_sum_floats(float *x, size_t n);
// Sums n doubles over the ranks, in place (counters and loss sums).
void dist_sum_doubles(double *x, int n);
// Copies n bytes of rank 0's buf into every other rank's.
void dist_bcast(void *buf, size_t n);
// Rank 0 receives every rank's n values, rank r's at all + r n (all is unused elsewhere).
void dist_gather_u64(const uint64_t *mine, int n, uint64_t *all);
// Dies on every rank unless all ranks hold the same v; what names it in the message.
void dist_check_same(uint64_t v, const char *what);
// Rank 0 reads the checkpoint file *path and sends its bytes and its path to the other ranks
// (whose *path may be NULL; it is malloc'd there); every rank verifies them. So the run
// directory need only be readable by rank 0.
int dist_ckpt_read(mm_ckpt **ck, char **path);
// The trainer's collectives (lib/train.h): these sums and this broadcast.
mm_train_dist dist_train(void);

#endif
