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
	OPT_HEAD("Data"),
	{"data", OPT_LIST, &o.data, "PATTERN", .help = "training shards: a file, a directory or a quoted glob (repeatable)", .saved = 1},
	{"val", OPT_LIST, &o.val, "PATTERN", .help = "validation shards (repeatable)", .saved = 1},
	{"tokenizer", OPT_STR, &o.tokenizer, "FILE", .help = "the tokenizer the shards were made with", .saved = 1, .def = "plain bytes"},
	{"config", OPT_STR, &o.config, "FILE", .help = "read 'key = value' settings (flags win)"},
	OPT_HEAD("Model"),
	{"dim", OPT_INT, &o.dim, "N", .help = "model width", 8, 65536, .saved = 1},
	{"layers", OPT_INT, &o.layers, "N", .help = "Transformer blocks", 1, 1024, .saved = 1},
	{"heads", OPT_INT, &o.heads, "N", .help = "attention heads; must divide --dim into an even head size", 1, 1024, .saved = 1},
	{"mlp", OPT_INT, &o.mlp, "N", .help = "SwiGLU hidden width; 0: 8/3 dim rounded up to 64", 0, 1 << 20, .saved = 1},
	{"patch-bottleneck", OPT_INT, &o.bottleneck, "K", .help = "low-rank patch embedding width; 0: plain linear", 0, 65536, .saved = 1},
	{"qk-norm", OPT_INT, &o.qk_norm, "0|1", .help = "RMSNorm on queries and keys", 0, 1, .saved = 1},
	{"seq-len", OPT_INT, &o.seq_len, "T", .help = "positions per row", 8, 1 << 16, .saved = 1},
	{"image-weight", OPT_FLOAT, &o.image_weight, "W", .help = "lambda: weight of the image loss", 0, 1e6, .saved = 1},
	OPT_HEAD("Training"),
	{"steps", OPT_INT, &o.steps, "N", .help = "optimizer steps (or --epochs)", 0, BIG, .saved = 1, .def = ""},
	{"epochs", OPT_FLOAT, &o.epochs, "E", .help = "passes over the training documents (or --steps)", 0, 1e9, .saved = 1, .def = ""},
	{"batch", OPT_INT, &o.batch, "B", .help = "rows per step", 1, 1 << 20, .saved = 1},
	{"lr", OPT_FLOAT, &o.lr, "LR", .help = "peak learning rate", 0, 10, .saved = 1},
	{"min-lr", OPT_FLOAT, &o.min_lr, "LR", .help = "learning rate at the end of the cosine decay", 0, 10, .saved = 1},
	{"warmup", OPT_INT, &o.warmup, "N", .help = "linear warm-up steps", 0, BIG, .saved = 1},
	{"weight-decay", OPT_FLOAT, &o.weight_decay, "W", .help = "AdamW decay on matrices", 0, 10, .saved = 1},
	{"beta1", OPT_FLOAT, &o.beta1, "B", .help = "Adam beta1", 0, 0.999999, .saved = 1},
	{"beta2", OPT_FLOAT, &o.beta2, "B", .help = "Adam beta2", 0, 0.999999, .saved = 1},
	{"clip", OPT_FLOAT, &o.clip, "C", .help = "clip the gradient's global norm at C; 0: off", 0, 1e9, .saved = 1},
	{"ema", OPT_FLOAT, &o.ema, "D", .help = "keep an EMA of the weights with decay D; 0: off", 0, 0.999999999, .saved = 1},
	{"cfg-drop", OPT_FLOAT, &o.cfg_drop, "P", .help = "probability of dropping a caption", 0, 1, .saved = 1},
	{"image-first", OPT_FLOAT, &o.image_first, "P", .help = "probability of image-then-caption order", 0, 1, .saved = 1},
	{"seed", OPT_INT, &o.seed, "S", .help = "seed of initialisation, shuffling and noise", 0, BIG, .saved = 1},
	{"threads", OPT_INT, &o.threads, "N", .help = "OpenMP and OpenBLAS threads; 0: all processors", 0, 4096},
	OPT_HEAD("Output"),
	{"out", OPT_STR, &o.out, "DIR", .help = "checkpoints and log.jsonl go here", .saved = 1},
	{"resume", OPT_STR, &o.resume, "DIR", .help = "continue the run whose checkpoints are in DIR"},
	{"ckpt-every", OPT_INT, &o.ckpt_every, "N", .help = "checkpoint every N steps, and at the end", 1, BIG, .saved = 1},
	{"keep", OPT_INT, &o.keep, "K", .help = "keep the last K checkpoints", 1, 1 << 20, .saved = 1},
	{"log-every", OPT_INT, &o.log_every, "N", .help = "log every N steps", 1, BIG, .saved = 1},
	{"eval-every", OPT_INT, &o.eval_every, "N", .help = "validate every N steps, and at the end", 1, BIG, .saved = 1},
	{"eval-batches", OPT_INT, &o.eval_batches, "N", .help = "validation batches per evaluation; 0: all", 0, BIG, .saved = 1},
	{"profile", OPT_FLAG, &o.profile, NULL, .help = "print where the time of a step goes, by phase and by kernel"},
#ifdef MM_MPI
	OPT_HEAD("Data parallel (mpirun -np N mm-train-mpi ...)"),
	{"dist-timeout", OPT_FLOAT, &o.dist_timeout, "SEC", .help = "end the job when a rank waits SEC for the others; 0: never", 0, 1e9},
#endif
	OPT_HEAD("Information"),
	OPT_STD_END,
};

static const char synopsis[] = "--data PATTERN --out DIR (--steps N | --epochs E) [options]\n"
			       "--resume DIR [--steps N | --epochs E] [options]";
static const char about[] = "Train one Transformer on text and image shards; checkpoint and resume.";

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
	opts_parse(table, synopsis, about, argc, argv);
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
