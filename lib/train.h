// Training: the set-up of a run (fresh, or from a checkpoint), one optimizer step over a batch
// (forward, backward, the sums over data-parallel ranks, gradient norm, clipping, AdamW, EMA),
// and validation losses. The caller loads the batches, logs, checkpoints and decides when to
// stop (cmd/mm-train.c is the loop); nothing here prints, exits or talks to MPI.
#ifndef MM_TRAIN_H
#define MM_TRAIN_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "ckpt.h"
#include "loader.h"
#include "model.h"
#include "optim.h"

// The hyperparameters of a run. Integers are long long and reals double so that an option
// table can point at the fields (mm-train's does, and saves them in a checkpoint's CONF).
typedef struct mm_train_settings {
	long long dim, layers, heads, mlp, bottleneck, qk_norm, seq_len; // mlp 0: 8/3 dim, rounded up to 64
	double image_weight;
	double noise_shift; // 0: mm_noise_shift_default of the shards' image geometry
	long long steps;  // the schedule's length, or 0 and epochs: passes over the training documents
	double epochs;
	long long batch;  // rows per step and rank
	double lr, min_lr;
	long long warmup;
	double weight_decay, beta1, beta2, clip, ema; // clip 0: off; ema 0: no EMA weights
	double cfg_drop, image_first, image_first_t;  // the loader's caption pairs (loader.h: first_t)
	long long seed;
} mm_train_settings;

// Data-parallel training's collectives, given by the caller (cmd/dist.c over MPI): in-place
// sums over the ranks and a copy of rank 0's bytes to all. Called only when world > 1.
typedef struct mm_train_dist {
	int rank, world;
	void (*sum_floats)(float *x, size_t n);
	void (*sum_doubles)(double *x, int n);
	void (*bcast)(void *buf, size_t n);
} mm_train_dist;

typedef struct mm_trainer {
	mm_train_settings s;
	mm_train_dist dist;
	mm_loader *train, *val; // val is NULL without validation shards
	mm_batch batch, vbatch;
	mm_config cfg;
	mm_model *model;
	mm_optim *opt;
	float *ema;             // EMA weights, or NULL
	uint64_t step;          // optimizer steps done
	uint64_t total_steps;   // the schedule's length
	double elapsed;         // seconds of training before this process (resumed runs)
	uint32_t saved_ranks;   // resumed: the ranks that wrote the checkpoint (1 for a fresh run)
	int profile;            // 1: kernel timers on during forward and backward (prof.h)
} mm_trainer;

// Opens the training (and validation) shards for this rank (*tr is zeroed first). The caller
// then checks the shards' tokenizer (mm_loader_info) and calls mm_train_build.
int mm_train_open(mm_trainer *tr, const mm_train_settings *s, const mm_train_dist *d, const char *const *data,
		  int n_data, const char *const *val, int n_val);
// Builds the model, the optimizer and the EMA: of configuration c (a checkpoint's), or with
// c NULL of the settings and the shards' geometry and vocabulary.
int mm_train_build(mm_trainer *tr, const mm_config *c);
// A fresh run: weights from the seed (rank 0's for every rank), EMA = weights, the schedule.
int mm_train_init(mm_trainer *tr);
// A resumed run: weights, moments, EMA, step, schedule and data position from a checkpoint.
// The checkpoint's rank r position goes to rank r when as many ranks wrote it (saved_ranks);
// on another number of ranks every rank starts after the earliest saved position (the
// documents between the saved positions, less than one batch of each rank, are read again).
int mm_train_resume(mm_trainer *tr, const mm_ckpt *ck);
// Sets the schedule's length: steps, or with steps 0 the steps of epochs passes over the
// training documents (the documents of the next batch stand for every batch's). Rank 0's
// figure holds for all ranks.
int mm_train_schedule(mm_trainer *tr, long long steps, double epochs);
void mm_train_free(mm_trainer *tr);

// One step's figures, of all ranks' rows.
typedef struct mm_train_info {
	int stop;          // a stop was asked for (on any rank: data parallel)
	int done;          // out: the epochs of the settings are done (on any rank)
	float loss, loss_text, loss_image, lr;
	double grad_norm;  // before clipping
	uint64_t padded;   // padding positions of the batch
	double sec_forward, sec_backward, sec_sum, sec_optim; // the step's phases, in seconds
} mm_train_info;

// One optimizer step on batch b (mm_loader_next into tr->batch). *stop (a signal handler's flag,
// or NULL) is read after the forward, the last moment at which the ranks can still agree on it
// in this step. On a non-finite loss or gradient returns MM_ENUMERIC ("non-finite loss at step
// N") and leaves the weights as they were.
int mm_train_step(mm_trainer *tr, const mm_batch *b, const volatile sig_atomic_t *stop, mm_train_info *info);

// Validation losses of the current weights over the validation shards (max_batches per rank,
// 0: all): text weighted by targets, image by image positions, all ranks together.
int mm_train_validate(mm_trainer *tr, long long max_batches, double *loss_text, double *loss_image);

// The checkpoint contents of the trainer's state (ckpt.h): MODL, PARM, ADAM, EMA and STAT;
// seconds is added to the training time before this process. The caller sets conf, tok and
// the RANK positions.
void mm_train_contents(const mm_trainer *tr, double seconds, mm_ckpt_train *t);

#endif
