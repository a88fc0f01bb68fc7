// mm-train: trains the model on shards; checkpoints and resumes.
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "dist.h"
#include "mm.h"
#include "opts.h"
#include "train.h"

static struct train_opts o = {
	.dim = 256, .layers = 6, .heads = 4, .mlp = 0, .bottleneck = 0, .qk_norm = 1, .seq_len = 128,
	.image_weight = 5, .steps = 0, .epochs = 0, .batch = 32, .lr = 5e-4, .min_lr = 5e-5,
	.warmup = 100, .weight_decay = 0.1, .beta1 = 0.9, .beta2 = 0.95, .clip = 1.0, .ema = 0,
	.cfg_drop = 0.1, .image_first = 0.2, .seed = 1, .threads = 0, .log_every = 10,
	.eval_every = 500, .eval_batches = 0, .ckpt_every = 1000, .keep = 3, .dist_timeout = 300,
};

#define BIG 1e18
static struct opt table[] = {
	{"Data", OPT_HEADING, 0, 0, 0, 0, 0, 0, 0},
	{"data", OPT_LIST, &o.data, "PATTERN", "training shards: a file, a directory or a quoted glob (repeatable)", 0, 0, 1, 0},
	{"val", OPT_LIST, &o.val, "PATTERN", "validation shards (repeatable)", 0, 0, 1, 0},
	{"tokenizer", OPT_STR, &o.tokenizer, "FILE", "the tokenizer the shards were made with (default: plain bytes)", 0, 0, 1, 0},
	{"config", OPT_STR, &o.config, "FILE", "read 'key = value' settings (flags win)", 0, 0, 0, 0},
	{"Model", OPT_HEADING, 0, 0, 0, 0, 0, 0, 0},
	{"dim", OPT_INT, &o.dim, "N", "model width (256)", 8, 65536, 1, 0},
	{"layers", OPT_INT, &o.layers, "N", "Transformer blocks (6)", 1, 1024, 1, 0},
	{"heads", OPT_INT, &o.heads, "N", "attention heads; must divide --dim into an even head size (4)", 1, 1024, 1, 0},
	{"mlp", OPT_INT, &o.mlp, "N", "SwiGLU hidden width (0: 8/3 dim rounded up to 64)", 0, 1 << 20, 1, 0},
	{"patch-bottleneck", OPT_INT, &o.bottleneck, "K", "low-rank patch embedding width (0: plain linear)", 0, 65536, 1, 0},
	{"qk-norm", OPT_INT, &o.qk_norm, "0|1", "RMSNorm on queries and keys (1)", 0, 1, 1, 0},
	{"seq-len", OPT_INT, &o.seq_len, "T", "positions per row (128)", 8, 1 << 16, 1, 0},
	{"image-weight", OPT_FLOAT, &o.image_weight, "W", "lambda: weight of the image loss (5)", 0, 1e6, 1, 0},
	{"Training", OPT_HEADING, 0, 0, 0, 0, 0, 0, 0},
	{"steps", OPT_INT, &o.steps, "N", "optimizer steps (or --epochs)", 0, BIG, 1, 0},
	{"epochs", OPT_FLOAT, &o.epochs, "E", "passes over the training documents (or --steps)", 0, 1e9, 1, 0},
	{"batch", OPT_INT, &o.batch, "B", "rows per step (32)", 1, 1 << 20, 1, 0},
	{"lr", OPT_FLOAT, &o.lr, "LR", "peak learning rate (5e-4)", 0, 10, 1, 0},
	{"min-lr", OPT_FLOAT, &o.min_lr, "LR", "learning rate at the end of the cosine decay (5e-5)", 0, 10, 1, 0},
	{"warmup", OPT_INT, &o.warmup, "N", "linear warm-up steps (100)", 0, BIG, 1, 0},
	{"weight-decay", OPT_FLOAT, &o.weight_decay, "W", "AdamW decay on matrices (0.1)", 0, 10, 1, 0},
	{"beta1", OPT_FLOAT, &o.beta1, "B", "Adam beta1 (0.9)", 0, 0.999999, 1, 0},
	{"beta2", OPT_FLOAT, &o.beta2, "B", "Adam beta2 (0.95)", 0, 0.999999, 1, 0},
	{"clip", OPT_FLOAT, &o.clip, "C", "clip the gradient's global norm at C (1; 0: off)", 0, 1e9, 1, 0},
	{"ema", OPT_FLOAT, &o.ema, "D", "keep an EMA of the weights with decay D (0: off)", 0, 0.999999999, 1, 0},
	{"cfg-drop", OPT_FLOAT, &o.cfg_drop, "P", "probability of dropping a caption (0.1)", 0, 1, 1, 0},
	{"image-first", OPT_FLOAT, &o.image_first, "P", "probability of image-then-caption order (0.2)", 0, 1, 1, 0},
	{"seed", OPT_INT, &o.seed, "S", "seed of initialisation, shuffling and noise (1)", 0, BIG, 1, 0},
	{"threads", OPT_INT, &o.threads, "N", "OpenMP and OpenBLAS threads (0: all processors)", 0, 4096, 0, 0},
	{"Output", OPT_HEADING, 0, 0, 0, 0, 0, 0, 0},
	{"out", OPT_STR, &o.out, "DIR", "checkpoints and log.jsonl go here", 0, 0, 1, 0},
	{"resume", OPT_STR, &o.resume, "DIR", "continue the run whose checkpoints are in DIR", 0, 0, 0, 0},
	{"ckpt-every", OPT_INT, &o.ckpt_every, "N", "checkpoint every N steps, and at the end (1000)", 1, BIG, 1, 0},
	{"keep", OPT_INT, &o.keep, "K", "keep the last K checkpoints (3)", 1, 1 << 20, 1, 0},
	{"log-every", OPT_INT, &o.log_every, "N", "log every N steps (10)", 1, BIG, 1, 0},
	{"eval-every", OPT_INT, &o.eval_every, "N", "validate every N steps, and at the end (500)", 1, BIG, 1, 0},
	{"eval-batches", OPT_INT, &o.eval_batches, "N", "validation batches per evaluation (0: all)", 0, BIG, 1, 0},
	{"profile", OPT_FLAG, &o.profile, NULL, "print where the time of a step goes, by phase and by kernel", 0, 1, 0, 0},
#ifdef MM_MPI
	{"Data parallel (mpirun -np N mm-train-mpi ...)", OPT_HEADING, 0, 0, 0, 0, 0, 0, 0},
	{"dist-timeout", OPT_FLOAT, &o.dist_timeout, "SEC", "end the job when a rank waits SEC for the others (300; 0: never)", 0, 1e9, 0, 0},
#endif
	{"help", OPT_FLAG, &o.help, NULL, "show this help", 0, 1, 0, 0},
	{NULL, 0, 0, 0, 0, 0, 0, 0, 0},
};

static const char usage[] = "usage: mm-train --data PATTERN --out DIR (--steps N | --epochs E) [options]\n"
			    "       mm-train --resume DIR [--steps N | --epochs E] [options]";

// Settings that describe the run itself may not change on --resume; the others may.
static const char *const resume_may_change[] = {"steps", "epochs", "threads", "ckpt-every", "keep", "log-every",
						"eval-every", "eval-batches", "profile", "resume", "help",
						"dist-timeout", NULL};

static void check_resume_flags(void)
{
	for (struct opt *t = table; t->name; t++) {
		if (!t->set || t->type == OPT_HEADING)
			continue;
		int ok = 0;
		for (int i = 0; resume_may_change[i]; i++)
			ok |= strcmp(t->name, resume_may_change[i]) == 0;
		if (!ok)
			die_usage("--%s cannot be changed when resuming (it is stored in the checkpoint)", t->name);
	}
}

static void parse(int argc, char **argv)
{
	opts_parse(table, argc, argv);
	if (o.help) {
		opts_help(table, usage);
		exit(0);
	}
	if (o.resume) {
		check_resume_flags();
		return;
	}
	if (o.config) {
		uint8_t *text;
		size_t n;
		int rc = mm_read_file(o.config, 1 << 20, &text, &n);
		if (!rc)
			rc = opts_apply_kv(table, (const char *)text, n, o.config, 0);
		if (rc)
			die_mm(rc);
		free(text);
	}
	if (!o.data.n)
		die_usage("--data is required");
	if (!o.out)
		die_usage("--out is required");
	if (!o.steps && !o.epochs)
		die_usage("give --steps or --epochs");
	if (o.steps && o.epochs)
		die_usage("--steps and --epochs exclude each other");
	if (o.dim % o.heads || (o.dim / o.heads) % 2)
		die_usage("--heads %lld must divide --dim %lld into an even head size", o.heads, o.dim);
	if (o.min_lr > o.lr)
		die_usage("--min-lr %g is above --lr %g", o.min_lr, o.lr);
}

static volatile sig_atomic_t stop_signal;
static void on_stop(int sig) { stop_signal = sig; }

int main(int argc, char **argv)
{
	cli_init(argv[0]);
	parse(argc, argv);
	dist_init(&argc, &argv);
	dist_set_timeout(o.dist_timeout);
	train_set_threads(o.threads ? o.threads : dist_default_threads());
	struct trainer tr;
	train_setup(&tr, &o, table);

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_stop;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	int rc = train_run(&tr, table, &stop_signal);
	train_free(&tr);
	dist_finalize();
	return rc;
}
