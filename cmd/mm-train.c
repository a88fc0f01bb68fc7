// mm-train: trains the model on shards; checkpoints and resumes. The step, the checkpoint format
// and the data loader are the library's (lib/train.h, lib/ckpt.h, lib/loader.h); this is the
// options, the set-up, the training loop, and what it prints and logs.
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "dist.h"
#include "kernels.h"
#include "mm.h"
#include "opts.h"
#include "prof.h"
#include "train.h"

// The trainer's settings (saved in the checkpoint), and the options of this process.
static mm_train_settings o = {
	.dim = 256, .layers = 6, .heads = 4, .mlp = 0, .bottleneck = 0, .qk_norm = 1, .seq_len = 128,
	.image_weight = 5, .steps = 0, .epochs = 0, .batch = 32, .lr = 5e-4, .min_lr = 5e-5,
	.warmup = 100, .weight_decay = 0.1, .beta1 = 0.9, .beta2 = 0.95, .clip = 1.0, .ema = 0,
	.cfg_drop = 0.1, .image_first = 0.2, .image_first_t = MM_T_IMAGE_FIRST, .seed = 1,
};
static struct {
	struct opt_list data, val;
	char *tokenizer, *config, *out, *resume, *show_config;
	long long threads, ckpt_every, keep, log_every, eval_every, eval_batches;
	int profile;
	double dist_timeout; // data parallel: seconds a rank may wait for the others
} c = {.threads = 0, .log_every = 10, .eval_every = 500, .eval_batches = 0, .ckpt_every = 1000, .keep = 3,
       .dist_timeout = 300};

#define BIG 1e18
static struct opt table[] = {
	OPT_HEAD("Data"),
	{"data", OPT_LIST, &c.data, "PATTERN", .help = "training shards: a file, a directory or a quoted glob (repeatable)", .saved = 1},
	{"val", OPT_LIST, &c.val, "PATTERN", .help = "validation shards (repeatable)", .saved = 1},
	{"tokenizer", OPT_STR, &c.tokenizer, "FILE", .help = "the tokenizer the shards were made with", .saved = 1, .def = "plain bytes"},
	{"config", OPT_STR, &c.config, "FILE", .help = "read 'key = value' settings (flags win)"},
	OPT_HEAD("Model"),
	{"dim", OPT_INT, &o.dim, "N", .help = "model width", 8, 65536, .saved = 1},
	{"layers", OPT_INT, &o.layers, "N", .help = "Transformer blocks", 1, 1024, .saved = 1},
	{"heads", OPT_INT, &o.heads, "N", .help = "attention heads; must divide --dim into an even head size", 1, 1024, .saved = 1},
	{"mlp", OPT_INT, &o.mlp, "N", .help = "SwiGLU hidden width; 0: 8/3 dim rounded up to 64", 0, 1 << 20, .saved = 1},
	{"patch-bottleneck", OPT_INT, &o.bottleneck, "K", .help = "low-rank patch embedding width; 0: plain linear", 0, 65536, .saved = 1},
	{"qk-norm", OPT_INT, &o.qk_norm, "0|1", .help = "RMSNorm on queries and keys", 0, 1, .saved = 1},
	{"seq-len", OPT_INT, &o.seq_len, "T", .help = "positions per row", 8, 1 << 16, .saved = 1},
	{"image-weight", OPT_FLOAT, &o.image_weight, "W", .help = "lambda: weight of the image loss", 0, 1e6, .saved = 1},
	{"noise-shift", OPT_FLOAT, &o.noise_shift, "S", .help = "shift noise levels toward noise by S (training and sampling);\n0: sqrt(image values / 784), at least 1", 0, 100, .saved = 1},
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
	{"image-first-t", OPT_FLOAT, &o.image_first_t, "T", .help = "an image before its caption has its noise level mapped into [T, 1]", 0, 1, .saved = 1},
	{"seed", OPT_INT, &o.seed, "S", .help = "seed of initialisation, shuffling and noise", 0, BIG, .saved = 1},
	{"threads", OPT_INT, &c.threads, "N", .help = "OpenMP and OpenBLAS threads; 0: all processors", 0, 4096},
	OPT_HEAD("Output"),
	{"out", OPT_STR, &c.out, "DIR", .help = "checkpoints and log.jsonl go here", .saved = 1},
	{"resume", OPT_STR, &c.resume, "DIR", .help = "continue the run whose checkpoints are in DIR"},
	{"ckpt-every", OPT_INT, &c.ckpt_every, "N", .help = "checkpoint every N steps, and at the end", 1, BIG, .saved = 1},
	{"keep", OPT_INT, &c.keep, "K", .help = "keep the last K checkpoints", 1, 1 << 20, .saved = 1},
	{"log-every", OPT_INT, &c.log_every, "N", .help = "log every N steps", 1, BIG, .saved = 1},
	{"eval-every", OPT_INT, &c.eval_every, "N", .help = "validate every N steps, and at the end", 1, BIG, .saved = 1},
	{"eval-batches", OPT_INT, &c.eval_batches, "N", .help = "validation batches per evaluation; 0: all", 0, BIG, .saved = 1},
	{"show-config", OPT_STR, &c.show_config, "CKPT|DIR",
	 .help = "print the settings saved in a checkpoint (of a run directory:\nits latest) as 'key = value' lines, and exit"},
	{"profile", OPT_FLAG, &c.profile, NULL, .help = "print where the time of a step goes, by phase and by kernel"},
#ifdef MM_MPI
	OPT_HEAD("Data parallel (mpirun -np N mm-train-mpi ...)"),
	{"dist-timeout", OPT_FLOAT, &c.dist_timeout, "SEC", .help = "end the job when a rank waits SEC for the others; 0: never", 0, 1e9},
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

// --show-config: the checkpoint's settings through the option table, so that they read as a
// --config file does (and can be one).
static noreturn void show_config(void)
{
	for (struct opt *t = table; t->name; t++)
		if (t->set && t->ptr != &c.show_config && t->type != OPT_HEADING)
			die_usage("--show-config cannot be used with --%s", t->name);
	char *path, *text;
	mm_ckpt *ck;
	int rc = mm_ckpt_resolve(c.show_config, &path);
	if (!rc)
		rc = mm_ckpt_read(&ck, path);
	if (rc)
		die_mm(rc);
	const mm_ckpt_section *s = mm_ckpt_find(ck, MM_SEC_CONF);
	if (!s)
		die("%s: no settings section", path);
	if ((rc = opts_apply_kv(table, s->data, s->size, path, 1)))
		die_mm(rc);
	if (!(text = opts_show(table)))
		die_mm(-MM_ENOMEM);
	printf("# %s\n%s", path, text);
	free(text);
	free(path);
	mm_ckpt_free(ck);
	if (fflush(stdout) || ferror(stdout))
		die("standard output: write error");
	exit(0);
}

static void parse(int argc, char **argv)
{
	opts_parse(table, synopsis, about, argc, argv);
	if (c.show_config)
		show_config();
	if (c.resume) {
		check_resume_flags();
		return;
	}
	if (c.config) {
		uint8_t *text;
		size_t n;
		int rc = mm_read_file(c.config, 1 << 20, &text, &n);
		if (!rc)
			rc = opts_apply_kv(table, (const char *)text, n, c.config, 0);
		if (rc)
			die_mm(rc);
		free(text);
	}
	if (!c.data.n)
		die_usage("--data is required");
	if (!c.out)
		die_usage("--out is required");
	if (strcmp(c.out, "-") == 0)
		die_usage("--out: '-' is not a directory: this output is files, not a stream");
	if (!o.steps && !o.epochs)
		die_usage("give --steps or --epochs");
	if (o.steps && o.epochs)
		die_usage("--steps and --epochs exclude each other");
	if (o.dim % o.heads || (o.dim / o.heads) % 2)
		die_usage("--heads %lld must divide --dim %lld into an even head size", o.heads, o.dim);
	if (o.min_lr > o.lr)
		die_usage("--min-lr %g is above --lr %g", o.min_lr, o.lr);
}

static mm_trainer tr;
static mm_tokenizer *tok;
static char *last_ckpt; // the newest checkpoint written or resumed from
static FILE *logf;      // DIR/log.jsonl (rank 0)
static volatile sig_atomic_t stop_signal;
static void on_stop(int sig) { stop_signal = sig; }

static char *join(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);
	if (!p)
		die("out of memory");
	snprintf(p, n, "%s/%s", dir, name);
	return p;
}

// Reads the checkpoint of --resume DIR (rank 0 reads the file and sends it to the others) and
// applies its settings under the flags given on the command line.
static mm_ckpt *read_resume(void)
{
	char *path = NULL;
	int rc = dist_rank() == 0 ? mm_ckpt_resolve(c.resume, &path) : 0;
	if (rc)
		die("--resume %s: no checkpoint to resume from (%s)", c.resume, mm_errmsg());
	mm_ckpt *ck;
	if ((rc = dist_ckpt_read(&ck, &path)))
		die_mm(rc);
	const mm_ckpt_section *s = mm_ckpt_find(ck, MM_SEC_CONF);
	if (!s)
		die("%s: no settings section", path);
	if ((rc = opts_apply_kv(table, s->data, s->size, path, 1)) || (rc = mm_ckpt_tokenizer(ck, &tok)))
		die_mm(rc);
	free(c.out);
	c.out = strdup(c.resume);
	last_ckpt = path;
	return ck;
}

static void check_tokenizer(void)
{
	const mm_shard_info *info = mm_loader_info(tr.train);
	if (info->tokenizer_hash != mm_tok_hash(tok) || info->vocab_size != mm_tok_vocab_size(tok))
		die("%s: made with another tokenizer (hash %016llx, vocab %u) than %s (hash %016llx, vocab %u)%s",
		    mm_loader_shard_path(tr.train, 0), (unsigned long long)info->tokenizer_hash, info->vocab_size,
		    c.tokenizer ? c.tokenizer : "the plain byte tokenizer", (unsigned long long)mm_tok_hash(tok),
		    mm_tok_vocab_size(tok), c.tokenizer ? "" : "; pass --tokenizer FILE");
}

// A line of log.jsonl goes to the disk now; a full or failing disk ends the run (the
// checkpoints on it stay as they are) rather than leaving a log with lines missing.
static void log_flush(void)
{
	if (fflush(logf) != 0 || ferror(logf))
		die("%s/log.jsonl: write failed: %s", c.out, strerror(errno));
}

// Keeps the log lines of steps up to the resumed one: the steps after it will be logged again.
static void open_log(void)
{
	if (dist_rank() != 0) // data parallel: rank 0 logs
		return;
	char *path = join(c.out, "log.jsonl");
	uint8_t *text;
	size_t n;
	if (c.resume && mm_read_file(path, (size_t)1 << 30, &text, &n) == 0) {
		mm_afile a;
		int rc = mm_afile_open(&a, path);
		char *line = (char *)text;
		while (!rc && line < (char *)text + n) {
			char *eol = strchr(line, '\n');
			size_t len = eol ? (size_t)(eol - line) + 1 : strlen(line);
			unsigned long long s;
			if (sscanf(line, "{\"step\":%llu", &s) == 1 && s <= tr.step)
				rc = mm_afile_write(&a, line, len);
			line += len;
		}
		if (rc || (rc = mm_afile_commit(&a)))
			die_mm(rc);
		free(text);
	}
	if (!(logf = fopen(path, "a")))
		die("%s: cannot open: %s", path, strerror(errno));
	free(path);
}

// A fresh run, or a resumed one (the checkpoint's settings, model, optimizer, EMA, position).
static void setup(void)
{
	int rc, world = dist_world();
	mm_ckpt *ck = NULL;
	if (c.resume) {
		ck = read_resume();
	} else {
		char *latest = join(c.out, "latest");
		if (access(latest, F_OK) == 0)
			die("%s already holds a run; use --resume %s, or another --out", c.out, c.out);
		free(latest);
		if ((rc = c.tokenizer ? mm_tok_load(&tok, c.tokenizer) : mm_tok_new_bytes(&tok)))
			die_mm(rc);
	}
	mm_train_dist d = dist_train();
	if ((rc = mm_train_open(&tr, &o, &d, (const char *const *)c.data.v, c.data.n, (const char *const *)c.val.v,
				c.val.n)))
		die_mm(rc);
	check_tokenizer();
	if (ck) {
		mm_config cfg;
		if ((rc = mm_ckpt_config(ck, &cfg)) || (rc = mm_train_build(&tr, &cfg)) || (rc = mm_train_resume(&tr, ck)))
			die_mm(rc);
		if (tr.saved_ranks != (uint32_t)world && dist_rank() == 0)
			warnx("%s was written by %llu ranks and resumes on %llu: the data position is the earliest of "
			      "the saved ones, and the global batch is now %llu rows",
			      mm_ckpt_path(ck), (unsigned long long)tr.saved_ranks, (unsigned long long)world,
			      (unsigned long long)(world * o.batch));
		mm_ckpt_free(ck);
		// --steps/--epochs given now extend (or shorten) the run; the schedule follows them.
		if (opts_find(table, "steps")->set)
			rc = mm_train_schedule(&tr, o.steps, 0);
		else if (opts_find(table, "epochs")->set)
			rc = mm_train_schedule(&tr, 0, o.epochs);
	} else {
		if ((rc = mm_train_build(&tr, NULL)))
			die_mm(rc);
		// Only now that the run can start: a refused run leaves no directory behind.
		if (dist_rank() == 0)
			cli_output_dir("--out", c.out);
		rc = mm_train_init(&tr);
	}
	if (rc)
		die_mm(rc);
	if (world > 1) {
		dist_check_same(mm_model_nparams(tr.model), "the number of parameters");
		dist_check_same(mm_loader_docs_per_epoch(tr.train), "the number of training documents");
		if (dist_rank() == 0)
			fprintf(stderr, "%s: %d ranks x %lld rows = %lld rows per step\n", cli_prog, world, o.batch,
				o.batch * world);
	}
	tr.profile = c.profile;
	open_log();
}

// Writes DIR/ckpt-<step>.mmc and DIR/latest, keeps the last --keep. Data parallel: a
// collective; rank 0 writes, with every rank's data position.
static void save(double run_seconds)
{
	int world = dist_world();
	size_t np = mm_model_nparams(tr.model);
	// The ranks apply the same sums to the same weights, so they cannot drift apart; this
	// check costs one pass over the weights and would catch a bug that lets them.
	if (world > 1)
		dist_check_same(mm_crc32c(0, mm_model_params(tr.model), np * sizeof(float)), "the weights");
	mm_ckpt_train t;
	mm_train_contents(&tr, run_seconds, &t);
	uint64_t *all = NULL;
	if (world > 1) {
		uint64_t mine[3] = {t.stat.epoch, t.stat.cursor, t.stat.offset};
		all = malloc((size_t)world * sizeof mine);
		t.rank = malloc((size_t)world * sizeof *t.rank);
		if (!all || !t.rank)
			die("out of memory");
		dist_gather_u64(mine, 3, all);
		t.ranks = (uint32_t)world;
		for (int r = 0; r < world; r++)
			t.rank[r] = (mm_ckpt_rank){all[3 * r], all[3 * r + 1], all[3 * r + 2]};
	}
	char *path = NULL;
	int rc = 0;
	if (dist_rank() != 0) {
		path = mm_ckpt_train_path(c.out, tr.step);
	} else {
		t.conf = opts_dump(table);
		t.tok = tok;
		rc = t.conf ? mm_ckpt_save_train(c.out, &t, c.keep, &path) : mm_fail(MM_ENOMEM, "out of memory");
		free((char *)t.conf);
	}
	free(all);
	free(t.rank);
	if (rc)
		die_mm(rc);
	if (!path)
		die("out of memory");
	free(last_ckpt);
	last_ckpt = path;
}

// The progress line goes to stderr unless quiet: once a stop signal has come, mpirun may have
// stopped reading the ranks' output, and a write to its full pipe would block rank 0 until
// mpirun kills it, before the checkpoint is written.
static void log_step(const mm_train_info *s, double pps, double eta, double padding, int quiet)
{
	char a[32], b[32], d[32], e[32], g[32];
	fprintf(logf,
		"{\"step\":%llu,\"loss\":%s,\"loss_text\":%s,\"loss_image\":%s,\"lr\":%s,\"grad_norm\":%s,"
		"\"positions_per_s\":%.1f,\"epoch\":%.4f,\"padding\":%.4f}\n",
		(unsigned long long)tr.step, cli_shortest_float(s->loss, a), cli_shortest_float(s->loss_text, b),
		cli_shortest_float(s->loss_image, d), cli_shortest_float(s->lr, e), cli_shortest(s->grad_norm, g),
		pps, mm_loader_epochs_done(tr.train), padding);
	log_flush();
	if (quiet)
		return;
	int tty = isatty(2);
	fprintf(stderr, "%sstep %llu/%llu  loss %.4f  text %.4f  image %.4f  lr %.2e  gnorm %.3f  %.0f pos/s  eta %dm%02ds%s",
		tty ? "\r\033[K" : "", (unsigned long long)tr.step, (unsigned long long)tr.total_steps, s->loss,
		s->loss_text, s->loss_image, s->lr, s->grad_norm, pps, (int)(eta / 60), (int)eta % 60, tty ? "" : "\n");
}

// Validation losses of the current weights, logged (rank 0).
static void validate(int log0)
{
	double vt, vi;
	int rc = mm_train_validate(&tr, c.eval_batches, &vt, &vi);
	if (rc)
		die_mm(rc);
	if (!log0)
		return;
	char a[32], b[32];
	fprintf(logf, "{\"step\":%llu,\"val_loss_text\":%s,\"val_loss_image\":%s}\n", (unsigned long long)tr.step,
		cli_shortest_float((float)vt, a), cli_shortest_float((float)vi, b));
	log_flush();
	fprintf(stderr, "%sstep %llu  val text %.4f  val image %.4f\n", isatty(2) ? "\r\033[K" : "",
		(unsigned long long)tr.step, vt, vi);
}

// --profile: the phases of a step, then the kernels of the forward and backward (lib/prof.h),
// slowest first; what the kernels leave of those two phases is the model's own code between
// kernels (gathers, zeroing, index lists).
static void print_profile(const double prof[5], uint64_t n, int world)
{
	double tot = prof[0] + prof[1] + prof[2] + prof[3] + prof[4];
	const char *names[5] = {"data", "forward", "backward", "optimizer", "allreduce"};
	fprintf(stderr, "profile over %llu steps (ms per step):\n", (unsigned long long)n);
	for (int i = 0; i < (world > 1 ? 5 : 4); i++)
		fprintf(stderr, "  %-10s %9.2f  %5.1f%%\n", names[i], 1e3 * prof[i] / (double)n,
			tot > 0 ? 100 * prof[i] / tot : 0);
	int order[MM_PROF_N];
	double in = 0;
	for (int k = 0; k < MM_PROF_N; k++) {
		order[k] = k;
		in += mm_prof_state.sec[k];
	}
	for (int i = 1; i < MM_PROF_N; i++) // insertion sort by time, slowest first
		for (int j = i; j > 0 && mm_prof_state.sec[order[j]] > mm_prof_state.sec[order[j - 1]]; j--) {
			int t = order[j];
			order[j] = order[j - 1], order[j - 1] = t;
		}
	fprintf(stderr, "forward and backward by kernel (ms per step, share of the step, calls per step):\n");
	for (int i = 0; i < MM_PROF_N; i++) {
		int k = order[i];
		if (!mm_prof_state.calls[k])
			continue;
		fprintf(stderr, "  %-22s %9.2f  %5.1f%%  %6.1f\n", mm_prof_name(k), 1e3 * mm_prof_state.sec[k] / (double)n,
			tot > 0 ? 100 * mm_prof_state.sec[k] / tot : 0, (double)mm_prof_state.calls[k] / (double)n);
	}
	double other = prof[1] + prof[2] - in > 0 ? prof[1] + prof[2] - in : 0;
	fprintf(stderr, "  %-22s %9.2f  %5.1f%%\n", "(between kernels)", 1e3 * other / (double)n,
		tot > 0 ? 100 * other / tot : 0);
}

// The training loop: load a batch, step, log, validate, checkpoint; a stop signal finishes the
// step and checkpoints it. Returns the exit status.
static int train(void)
{
	int world = dist_world(), log0 = dist_rank() == 0;
	double t0 = mm_now(), tlog = t0, prof[5] = {0}; // data, forward, backward, optimizer, allreduce
	uint64_t step0 = tr.step, pos_since = 0, pad_since = 0;
	double done0 = o.epochs && mm_loader_epochs_done(tr.train) >= o.epochs;
	dist_sum_doubles(&done0, 1);
	int done = done0 > 0;
	// A fresh run's validation figure before any step: the baseline of the curve.
	if (tr.val && tr.step == 0)
		validate(log0);
	while (tr.step < tr.total_steps && !done) {
		double ta = mm_now();
		int rc = mm_loader_next(tr.train, &tr.batch);
		if (rc < 0)
			die_mm(rc);
		prof[0] += mm_now() - ta;
		mm_train_info s;
		if ((rc = mm_train_step(&tr, &tr.batch, &stop_signal, &s)) == -MM_ENUMERIC)
			die("%s; the last good checkpoint is %s", mm_errmsg(), last_ckpt ? last_ckpt : "(none yet)");
		if (rc)
			die_mm(rc);
		done = s.done;
		prof[1] += s.sec_forward, prof[2] += s.sec_backward, prof[3] += s.sec_optim, prof[4] += s.sec_sum;
		pos_since += (uint64_t)tr.batch.B * (uint64_t)tr.batch.T * (uint64_t)world;
		pad_since += s.padded;
		if (tr.step % (uint64_t)c.log_every == 0 || tr.step == tr.total_steps) {
			double t = mm_now();
			double pps = (double)pos_since / (t - tlog);
			double eta = (t - t0) / (double)(tr.step - step0) * (double)(tr.total_steps - tr.step);
			if (log0)
				log_step(&s, pps, eta, (double)pad_since / (double)pos_since, s.stop || stop_signal);
			tlog = t;
			pos_since = pad_since = 0;
		}
		int last = tr.step == tr.total_steps || done;
		if (tr.val && !s.stop && !stop_signal && (tr.step % (uint64_t)c.eval_every == 0 || last)) {
			validate(log0);
			tlog = mm_now(); // evaluation time is not training time
		}
		// One rank alone acts on its own signal; data-parallel ranks act together on any rank's.
		int stopping = world == 1 ? stop_signal != 0 : s.stop;
		if (tr.step % (uint64_t)c.ckpt_every == 0 || last || stopping) {
			save(mm_now() - t0);
			if (stopping) {
				int sig = stop_signal ? (int)stop_signal : SIGTERM;
				if (log0)
					fprintf(stderr, "%s%s: signal %d: saved %s\n", isatty(2) ? "\r\033[K" : "", cli_prog,
						sig, last_ckpt);
				return 128 + sig;
			}
		}
	}
	if (!log0)
		return 0;
	if (isatty(2))
		fputc('\n', stderr);
	if (c.profile)
		print_profile(prof, tr.step - step0 ? tr.step - step0 : 1, world);
	fprintf(stderr, "%s: %llu steps, checkpoint %s\n", cli_prog, (unsigned long long)tr.step,
		last_ckpt ? last_ckpt : "(none)");
	return 0;
}

int main(int argc, char **argv)
{
	cli_init(argv[0]);
	parse(argc, argv);
	dist_init(&argc, &argv);
	dist_set_timeout(c.dist_timeout);
	mm_threads_set(c.threads ? c.threads : dist_default_threads());
	setup();

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_stop;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	int rc = train();
	if (logf)
		fclose(logf);
	mm_train_free(&tr);
	mm_tok_free(tok);
	free(last_ckpt);
	dist_finalize();
	return rc;
}
