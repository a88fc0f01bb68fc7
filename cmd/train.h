// The training run behind mm-train: set-up (fresh or resumed), the loop, evaluation, logs and
// checkpoints. Split from mm-train.c so that its main stays an option table and three calls.
#ifndef MM_TRAIN_H
#define MM_TRAIN_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#include "mm.h"
#include "loader.h"
#include "optim.h"
#include "opts.h"

struct train_opts {
	struct opt_list data, val;
	char *tokenizer, *config, *out, *resume;
	long long dim, layers, heads, mlp, bottleneck, qk_norm, seq_len;
	double image_weight;
	long long steps;
	double epochs;
	long long batch;
	double lr, min_lr;
	long long warmup;
	double weight_decay, beta1, beta2, clip, ema, cfg_drop, image_first;
	long long seed, threads, ckpt_every, keep, log_every, eval_every, eval_batches;
	int profile, help;
	double dist_timeout; // data parallel: seconds a rank may wait for the others
};

struct trainer {
	struct train_opts *o;
	mm_config cfg;
	mm_tokenizer *tok;
	mm_loader *train, *val;
	mm_batch batch, vbatch;
	mm_model *model;
	mm_optim *opt;
	float *ema;             // EMA weights, or NULL
	uint64_t step;          // optimizer steps done
	uint64_t total_steps;   // the schedule's length
	double elapsed;         // seconds of training before this process (resumed runs)
	char *last_ckpt;        // path of the newest checkpoint written or resumed from
	FILE *log;              // DIR/log.jsonl
};

// Prepares a run. For --resume, the checkpoint's saved settings are applied to the option table
// under the flags given on the command line. Dies on failure.
void train_setup(struct trainer *tr, struct train_opts *o, struct opt *table);
void train_set_threads(long long n);
// Runs to the end or until *stop is set by a signal (then checkpoints). Returns the exit status.
int train_run(struct trainer *tr, struct opt *table, volatile sig_atomic_t *stop);
void train_free(struct trainer *tr);

#endif
