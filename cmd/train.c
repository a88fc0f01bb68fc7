#include "train.h"

#include <cblas.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define STAT_SIZE 64

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void train_set_threads(long long n)
{
	if (n <= 0)
		n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		n = 1;
	omp_set_num_threads((int)n);
	openblas_set_num_threads((int)n);
}

static void load_tokenizer(struct trainer *tr)
{
	int rc = tr->o->tokenizer ? mm_tok_load(&tr->tok, tr->o->tokenizer) : mm_tok_new_bytes(&tr->tok);
	if (rc)
		die_mm(rc);
}

static void open_loaders(struct trainer *tr)
{
	struct train_opts *o = tr->o;
	mm_loader_opts lo;
	mm_loader_opts_init(&lo);
	lo.batch = (int)o->batch;
	lo.seq_len = (int)o->seq_len;
	lo.seed = (uint64_t)o->seed;
	lo.cfg_drop = o->cfg_drop;
	lo.image_first = o->image_first;
	int rc = mm_loader_open(&tr->train, (const char *const *)o->data.v, o->data.n, &lo);
	if (rc)
		die_mm(rc);
	const mm_shard_info *info = mm_loader_info(tr->train);
	if (info->tokenizer_hash != mm_tok_hash(tr->tok) || info->vocab_size != mm_tok_vocab_size(tr->tok))
		die("%s: made with another tokenizer (hash %016llx, vocab %u) than %s (hash %016llx, vocab %u)%s",
		    mm_loader_shard_path(tr->train, 0), (unsigned long long)info->tokenizer_hash, info->vocab_size,
		    o->tokenizer ? o->tokenizer : "the plain byte tokenizer",
		    (unsigned long long)mm_tok_hash(tr->tok), mm_tok_vocab_size(tr->tok),
		    o->tokenizer ? "" : "; pass --tokenizer FILE");
	if ((rc = mm_loader_batch_alloc(tr->train, &tr->batch)))
		die_mm(rc);
	if (o->val.n) {
		lo.validation = 1;
		if ((rc = mm_loader_open(&tr->val, (const char *const *)o->val.v, o->val.n, &lo)))
			die_mm(rc);
		if ((rc = mm_shard_info_compatible(info, mm_loader_shard_path(tr->train, 0), mm_loader_info(tr->val),
						   mm_loader_shard_path(tr->val, 0))))
			die_mm(rc);
		if ((rc = mm_loader_batch_alloc(tr->val, &tr->vbatch)))
			die_mm(rc);
	}
}

static void config_from_opts(struct trainer *tr)
{
	struct train_opts *o = tr->o;
	const mm_shard_info *info = mm_loader_info(tr->train);
	mm_config *c = &tr->cfg;
	memset(c, 0, sizeof *c);
	c->dim = (int)o->dim;
	c->layers = (int)o->layers;
	c->heads = (int)o->heads;
	c->mlp = o->mlp ? (int)o->mlp : (int)((8 * o->dim / 3 + 63) / 64 * 64);
	c->vocab = (int)info->vocab_size;
	c->img_h = (int)info->img_h;
	c->img_w = (int)info->img_w;
	c->img_c = (int)info->img_c;
	c->patch = (int)info->patch;
	c->bottleneck = (int)o->bottleneck;
	c->qk_norm = (int)o->qk_norm;
	c->seq_len = (int)o->seq_len;
	c->image_weight = (float)o->image_weight;
	if (mm_config_check(c))
		die("%s", mm_errmsg());
}

static void build_model(struct trainer *tr)
{
	int rc = mm_model_new(&tr->model, &tr->cfg, (int)tr->o->batch);
	if (rc)
		die_mm(rc);
	if ((rc = mm_optim_new(&tr->opt, mm_model_nparams(tr->model))))
		die_mm(rc);
	if (tr->o->ema > 0) {
		tr->ema = malloc(mm_model_nparams(tr->model) * sizeof(float));
		if (!tr->ema)
			die("out of memory for the EMA weights");
	}
}

// The schedule's length for --epochs: the documents one batch consumes, measured on the first
// batch, stand for every batch. Stored in the checkpoint, so a resumed run keeps it.
static uint64_t steps_for_epochs(struct trainer *tr)
{
	mm_loader_state s0, s1;
	mm_loader_get_state(tr->train, &s0);
	int rc = mm_loader_next(tr->train, &tr->batch);
	if (rc < 0)
		die_mm(rc);
	mm_loader_get_state(tr->train, &s1);
	mm_loader_set_state(tr->train, &s0);
	double per_batch = (double)(s1.cursor - s0.cursor + (s1.epoch - s0.epoch) * mm_loader_docs_per_epoch(tr->train));
	if (per_batch < 1)
		per_batch = 1;
	return (uint64_t)ceil(tr->o->epochs * (double)mm_loader_docs_per_epoch(tr->train) / per_batch);
}

static char *join(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);
	if (!p)
		die("out of memory");
	snprintf(p, n, "%s/%s", dir, name);
	return p;
}

static void write_stat(const struct trainer *tr, uint8_t *b)
{
	memset(b, 0, STAT_SIZE);
	mm_loader_state s;
	mm_loader_get_state(tr->train, &s);
	mm_put_u64(b, tr->step);
	mm_put_u64(b + 8, tr->total_steps);
	double el = tr->elapsed;
	memcpy(b + 16, &el, 8);
	mm_put_u64(b + 24, s.epoch);
	mm_put_u64(b + 32, s.cursor);
	mm_put_u64(b + 40, s.offset);
	mm_put_u64(b + 48, (uint64_t)tr->opt->step);
}

// Writes DIR/ckpt-<step>.mmc, points DIR/latest at it, removes all but the newest keep.
static void save_checkpoint(struct trainer *tr, struct opt *table, double run_seconds)
{
	size_t np = mm_model_nparams(tr->model);
	char *conf = opts_dump(table);
	char modl[1024];
	uint8_t *tokb;
	size_t tokn;
	uint8_t stat[STAT_SIZE];
	if (!conf || mm_config_format(&tr->cfg, modl, sizeof modl) || mm_tok_serialize(tr->tok, &tokb, &tokn))
		die("cannot serialise the checkpoint: %s", mm_errmsg());
	double el = tr->elapsed;
	tr->elapsed += run_seconds;
	write_stat(tr, stat);
	tr->elapsed = el;
	mm_ckpt_section secs[7] = {
		{MM_SEC_CONF, strlen(conf), conf},
		{MM_SEC_MODL, strlen(modl), modl},
		{MM_SEC_TOKN, tokn, tokb},
		{MM_SEC_PARM, np * sizeof(float), mm_model_params(tr->model)},
		{MM_SEC_ADAM, 2 * np * sizeof(float), tr->opt->m},
		{MM_SEC_STAT, STAT_SIZE, stat},
		{MM_SEC_EMA, np * sizeof(float), tr->ema},
	};
	char name[64];
	snprintf(name, sizeof name, "ckpt-%llu.mmc", (unsigned long long)tr->step);
	char *path = join(tr->o->out, name);
	int rc = mm_ckpt_write(path, secs, tr->ema ? 7 : 6);
	free(conf);
	free(tokb);
	if (rc)
		die_mm(rc);
	char *latest = join(tr->o->out, "latest");
	mm_afile a;
	char line[80];
	int k = snprintf(line, sizeof line, "%s\n", name);
	if ((rc = mm_afile_open(&a, latest)) || (rc = mm_afile_write(&a, line, (size_t)k)) || (rc = mm_afile_commit(&a)))
		die_mm(rc);
	free(latest);
	free(tr->last_ckpt);
	tr->last_ckpt = path;
	// Remove the oldest checkpoints beyond --keep.
	DIR *d = opendir(tr->o->out);
	if (!d)
		return;
	unsigned long long steps[4096];
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) && n < 4096) {
		unsigned long long s;
		char tail[8];
		if (sscanf(e->d_name, "ckpt-%llu.mm%2s", &s, tail) == 2 && strcmp(tail, "c") == 0)
			steps[n++] = s;
	}
	closedir(d);
	for (int i = 0; i < n; i++) {
		int newer = 0;
		for (int j = 0; j < n; j++)
			newer += steps[j] > steps[i];
		if (newer >= tr->o->keep) {
			snprintf(name, sizeof name, "ckpt-%llu.mmc", steps[i]);
			char *old = join(tr->o->out, name);
			unlink(old);
			free(old);
		}
	}
}

// Reads DIR/latest's checkpoint: settings, model, optimizer, EMA and position.
static void resume(struct trainer *tr, struct opt *table)
{
	struct train_opts *o = tr->o;
	char *path;
	int rc = mm_ckpt_resolve(o->resume, &path);
	if (rc)
		die("--resume %s: no checkpoint to resume from (%s)", o->resume, mm_errmsg());
	mm_ckpt *ck;
	if ((rc = mm_ckpt_read(&ck, path)))
		die_mm(rc);
	const mm_ckpt_section *s = mm_ckpt_find(ck, MM_SEC_CONF);
	if (!s)
		die("%s: no settings section", path);
	if ((rc = opts_apply_kv(table, s->data, s->size, path, 1)))
		die_mm(rc);
	free(o->out);
	o->out = strdup(o->resume);
	const mm_ckpt_section *ts = mm_ckpt_find(ck, MM_SEC_TOKN);
	if (!ts || (rc = mm_tok_load_mem(&tr->tok, ts->data, ts->size, path)))
		die("%s: %s", path, ts ? mm_errmsg() : "no tokenizer section");
	open_loaders(tr);
	const mm_ckpt_section *ms = mm_ckpt_find(ck, MM_SEC_MODL);
	if (!ms || (rc = mm_config_parse(ms->data, ms->size, path, &tr->cfg)))
		die("%s", ms ? mm_errmsg() : "no model section");
	build_model(tr);
	size_t np = mm_model_nparams(tr->model);
	const void *p;
	if ((rc = mm_ckpt_need(ck, MM_SEC_PARM, np * sizeof(float), &p)))
		die_mm(rc);
	memcpy(mm_model_params(tr->model), p, np * sizeof(float));
	if ((rc = mm_ckpt_need(ck, MM_SEC_ADAM, 2 * np * sizeof(float), &p)))
		die_mm(rc);
	memcpy(tr->opt->m, p, 2 * np * sizeof(float));
	if (tr->ema) {
		if ((rc = mm_ckpt_need(ck, MM_SEC_EMA, np * sizeof(float), &p)))
			die_mm(rc);
		memcpy(tr->ema, p, np * sizeof(float));
	}
	if ((rc = mm_ckpt_need(ck, MM_SEC_STAT, STAT_SIZE, &p)))
		die_mm(rc);
	const uint8_t *b = p;
	tr->step = mm_get_u64(b);
	tr->total_steps = mm_get_u64(b + 8);
	memcpy(&tr->elapsed, b + 16, 8);
	mm_loader_state st = {mm_get_u64(b + 24), mm_get_u64(b + 32), mm_get_u64(b + 40)};
	if ((rc = mm_loader_set_state(tr->train, &st)))
		die("%s: %s", path, mm_errmsg());
	tr->opt->step = (long)mm_get_u64(b + 48);
	// --steps/--epochs given now extend (or shorten) the run; the schedule follows them.
	if (opts_find(table, "steps")->set)
		tr->total_steps = (uint64_t)o->steps;
	else if (opts_find(table, "epochs")->set)
		tr->total_steps = steps_for_epochs(tr);
	tr->last_ckpt = path;
	mm_ckpt_free(ck);
}

// Keeps the log lines of steps up to the resumed one: the steps after it will be logged again.
static void open_log(struct trainer *tr)
{
	char *path = join(tr->o->out, "log.jsonl");
	if (tr->o->resume) {
		uint8_t *text;
		size_t n;
		if (mm_read_file(path, (size_t)1 << 30, &text, &n) == 0) {
			mm_afile a;
			int rc = mm_afile_open(&a, path);
			char *line = (char *)text;
			while (!rc && line < (char *)text + n) {
				char *eol = strchr(line, '\n');
				size_t len = eol ? (size_t)(eol - line) + 1 : strlen(line);
				unsigned long long s;
				if (sscanf(line, "{\"step\":%llu", &s) == 1 && s <= tr->step)
					rc = mm_afile_write(&a, line, len);
				line += len;
			}
			if (rc || (rc = mm_afile_commit(&a)))
				die_mm(rc);
			free(text);
		}
	}
	tr->log = fopen(path, "a");
	if (!tr->log)
		die("%s: cannot open: %s", path, strerror(errno));
	free(path);
}

void train_setup(struct trainer *tr, struct train_opts *o, struct opt *table)
{
	memset(tr, 0, sizeof *tr);
	tr->o = o;
	if (o->resume) {
		resume(tr, table);
	} else {
		char *latest = join(o->out, "latest");
		if (access(latest, F_OK) == 0)
			die("%s already holds a run; use --resume %s, or another --out", o->out, o->out);
		free(latest);
		load_tokenizer(tr);
		open_loaders(tr);
		config_from_opts(tr);
		build_model(tr);
		// Only now that the run can start: a refused run leaves no directory behind.
		if (mkdir(o->out, 0777) != 0 && errno != EEXIST)
			die("%s: cannot create: %s", o->out, strerror(errno));
		mm_model_init(tr->model, (uint64_t)o->seed);
		if (tr->ema)
			memcpy(tr->ema, mm_model_params(tr->model), mm_model_nparams(tr->model) * sizeof(float));
		tr->total_steps = o->steps ? (uint64_t)o->steps : steps_for_epochs(tr);
	}
	open_log(tr);
}

// Validation losses: text weighted by targets, image by image positions, over the val shards.
static void evaluate(struct trainer *tr, double *vt, double *vi)
{
	double st = 0, si = 0, nt = 0, ni = 0;
	mm_loader_rewind(tr->val);
	for (long long k = 0; !tr->o->eval_batches || k < tr->o->eval_batches; k++) {
		int rows = mm_loader_next(tr->val, &tr->vbatch);
		if (rows < 0)
			die_mm(rows);
		if (rows == 0)
			break;
		float loss, lt, li;
		int rc = mm_model_forward(tr->model, &tr->vbatch, &loss);
		if (rc)
			die_mm(rc);
		mm_model_losses(tr->model, &lt, &li);
		int n_t = 0, n_i = 0;
		for (int p = 0; p < tr->vbatch.B * tr->vbatch.T; p++) {
			n_t += tr->vbatch.target[p] >= 0;
			n_i += tr->vbatch.patch[p] >= 0;
		}
		st += (double)lt * n_t, nt += n_t;
		si += (double)li * n_i, ni += n_i;
	}
	*vt = nt ? st / nt : 0;
	*vi = ni ? si / ni : 0;
}

static void log_step(struct trainer *tr, float loss, float lt, float li, double lr, double gnorm, double pps,
		     double eta, double padding)
{
	fprintf(tr->log,
		"{\"step\":%llu,\"loss\":%.9g,\"loss_text\":%.9g,\"loss_image\":%.9g,\"lr\":%.9g,\"grad_norm\":%.9g,"
		"\"positions_per_s\":%.1f,\"epoch\":%.4f,\"padding\":%.4f}\n",
		(unsigned long long)tr->step, loss, lt, li, lr, gnorm, pps, mm_loader_epochs_done(tr->train), padding);
	fflush(tr->log);
	int tty = isatty(2);
	fprintf(stderr, "%sstep %llu/%llu  loss %.4f  text %.4f  image %.4f  lr %.2e  gnorm %.3f  %.0f pos/s  eta %dm%02ds%s",
		tty ? "\r\033[K" : "", (unsigned long long)tr->step, (unsigned long long)tr->total_steps, loss, lt, li,
		lr, gnorm, pps, (int)(eta / 60), (int)eta % 60, tty ? "" : "\n");
}

int train_run(struct trainer *tr, struct opt *table, volatile sig_atomic_t *stop)
{
	struct train_opts *o = tr->o;
	size_t np = mm_model_nparams(tr->model);
	float *params = mm_model_params(tr->model), *grads = mm_model_grads(tr->model);
	double t0 = now(), tlog = t0, prof[4] = {0};
	uint64_t step0 = tr->step, pos_since = 0, pad_since = 0;
	while (tr->step < tr->total_steps) {
		if (o->epochs && mm_loader_epochs_done(tr->train) >= o->epochs)
			break;
		double ta = now();
		int rc = mm_loader_next(tr->train, &tr->batch);
		if (rc < 0)
			die_mm(rc);
		double tb = now();
		float loss, lt, li;
		mm_model_zero_grad(tr->model);
		if ((rc = mm_model_forward(tr->model, &tr->batch, &loss)))
			die_mm(rc);
		double tc = now();
		if ((rc = mm_model_backward(tr->model)))
			die_mm(rc);
		double td = now();
		mm_model_losses(tr->model, &lt, &li);
		// Data-parallel training averages the gradients across ranks here, before the norm.
		double gnorm = mm_optim_grad_norm(grads, np);
		if (!isfinite(loss) || !isfinite(gnorm))
			die("non-finite %s at step %llu; the last good checkpoint is %s", isfinite(loss) ? "gradient" : "loss",
			    (unsigned long long)tr->step + 1, tr->last_ckpt ? tr->last_ckpt : "(none yet)");
		float lr = mm_optim_lr((long)tr->step + 1, (long)o->warmup, (long)tr->total_steps, (float)o->lr,
				       (float)o->min_lr);
		mm_adamw_hp hp = {lr, (float)o->beta1, (float)o->beta2, 1e-8f, (float)o->weight_decay};
		mm_optim_step(tr->opt, params, grads, mm_model_tensors(tr->model), mm_model_ntensors(tr->model), &hp,
			      mm_optim_clip_scale(gnorm, (float)o->clip));
		if (tr->ema)
			mm_optim_ema(tr->ema, params, np, (float)o->ema);
		tr->step++;
		double te = now();
		prof[0] += tb - ta, prof[1] += tc - tb, prof[2] += td - tc, prof[3] += te - td;
		pos_since += (uint64_t)tr->batch.B * (uint64_t)tr->batch.T;
		for (int p = 0; p < tr->batch.B * tr->batch.T; p++)
			pad_since += tr->batch.doc[p] < 0;
		if (tr->step % (uint64_t)o->log_every == 0 || tr->step == tr->total_steps) {
			double t = now();
			double pps = (double)pos_since / (t - tlog);
			double eta = (t - t0) / (double)(tr->step - step0) * (double)(tr->total_steps - tr->step);
			log_step(tr, loss, lt, li, lr, gnorm, pps, eta, (double)pad_since / (double)pos_since);
			tlog = t;
			pos_since = pad_since = 0;
		}
		int last = tr->step == tr->total_steps || (o->epochs && mm_loader_epochs_done(tr->train) >= o->epochs);
		if (tr->val && (tr->step % (uint64_t)o->eval_every == 0 || last)) {
			double vt, vi;
			evaluate(tr, &vt, &vi);
			fprintf(tr->log, "{\"step\":%llu,\"val_loss_text\":%.9g,\"val_loss_image\":%.9g}\n",
				(unsigned long long)tr->step, vt, vi);
			fflush(tr->log);
			fprintf(stderr, "%sstep %llu  val text %.4f  val image %.4f\n", isatty(2) ? "\r\033[K" : "",
				(unsigned long long)tr->step, vt, vi);
			tlog = now(); // evaluation time is not training time
		}
		if (tr->step % (uint64_t)o->ckpt_every == 0 || last || *stop) {
			save_checkpoint(tr, table, now() - t0);
			if (*stop) {
				fprintf(stderr, "%s%s: signal %d: saved %s\n", isatty(2) ? "\r\033[K" : "", cli_prog, (int)*stop,
					tr->last_ckpt);
				return 128 + (int)*stop;
			}
		}
	}
	if (isatty(2))
		fputc('\n', stderr);
	if (o->profile) {
		double tot = prof[0] + prof[1] + prof[2] + prof[3];
		const char *names[4] = {"data", "forward", "backward", "optimizer"};
		uint64_t n = tr->step - step0 ? tr->step - step0 : 1;
		fprintf(stderr, "profile over %llu steps (ms per step):\n", (unsigned long long)n);
		for (int i = 0; i < 4; i++)
			fprintf(stderr, "  %-10s %9.2f  %5.1f%%\n", names[i], 1e3 * prof[i] / (double)n,
				tot > 0 ? 100 * prof[i] / tot : 0);
	}
	fprintf(stderr, "%s: %llu steps, checkpoint %s\n", cli_prog, (unsigned long long)tr->step,
		tr->last_ckpt ? tr->last_ckpt : "(none)");
	return 0;
}

void train_free(struct trainer *tr)
{
	if (tr->log)
		fclose(tr->log);
	mm_loader_batch_free(&tr->batch);
	if (tr->val)
		mm_loader_batch_free(&tr->vbatch);
	mm_loader_close(tr->train);
	mm_loader_close(tr->val);
	mm_optim_free(tr->opt);
	mm_model_free(tr->model);
	mm_tok_free(tr->tok);
	free(tr->ema);
	free(tr->last_ckpt);
}
