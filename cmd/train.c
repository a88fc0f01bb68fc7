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
#include "dist.h"
#include "prof.h"

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
	openblas_set_num_threads(1); // the kernels spread matmuls over the OpenMP threads (kernels.h)
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
	lo.rank = dist_rank(); // data parallel: each rank reads its own slice, validation included
	lo.world = dist_world();
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

// Data parallel: the RANK section, every rank's data position (rank 0 gathers them).
// Layout: u32 ranks, u32 0, then per rank u64 epoch, u64 cursor, u64 offset. Returns its size;
// 0 when there is one rank (the section is left out, as before data-parallel training).
static size_t rank_section(const struct trainer *tr, uint8_t **out)
{
	int w = dist_world();
	*out = NULL;
	if (w == 1)
		return 0;
	mm_loader_state s;
	mm_loader_get_state(tr->train, &s);
	uint64_t mine[3] = {s.epoch, s.cursor, s.offset};
	uint64_t *all = malloc((size_t)w * sizeof mine);
	uint8_t *b = malloc(8 + (size_t)w * sizeof mine);
	if (!all || !b)
		die("out of memory");
	dist_gather_u64(mine, 3, all);
	mm_put_u32(b, (uint32_t)w);
	mm_put_u32(b + 4, 0);
	for (int i = 0; i < 3 * w; i++)
		mm_put_u64(b + 8 + 8 * (size_t)i, all[i]);
	free(all);
	*out = b;
	return 8 + (size_t)w * sizeof mine;
}

// Writes DIR/ckpt-<step>.mmc, points DIR/latest at it, removes all but the newest keep.
// Data parallel: a collective; rank 0 writes.
static void save_checkpoint(struct trainer *tr, struct opt *table, double run_seconds)
{
	size_t np = mm_model_nparams(tr->model);
	// The ranks apply the same sums to the same weights, so they cannot drift apart; this
	// check costs one pass over the weights and would catch a bug that lets them.
	if (dist_world() > 1)
		dist_check_same(mm_crc32c(0, mm_model_params(tr->model), np * sizeof(float)), "the weights");
	uint8_t *ranks;
	size_t ranks_size = rank_section(tr, &ranks);
	char name[64];
	snprintf(name, sizeof name, "ckpt-%llu.mmc", (unsigned long long)tr->step);
	if (dist_rank() != 0) {
		free(ranks);
		free(tr->last_ckpt);
		tr->last_ckpt = join(tr->o->out, name);
		return;
	}
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
	mm_ckpt_section secs[8] = {
		{MM_SEC_CONF, strlen(conf), conf},
		{MM_SEC_MODL, strlen(modl), modl},
		{MM_SEC_TOKN, tokn, tokb},
		{MM_SEC_PARM, np * sizeof(float), mm_model_params(tr->model)},
		{MM_SEC_ADAM, 2 * np * sizeof(float), tr->opt->m},
		{MM_SEC_STAT, STAT_SIZE, stat},
	};
	int nsec = 6;
	if (tr->ema)
		secs[nsec++] = (mm_ckpt_section){MM_SEC_EMA, np * sizeof(float), tr->ema};
	if (ranks_size)
		secs[nsec++] = (mm_ckpt_section){MM_SEC_RANK, ranks_size, ranks};
	char *path = join(tr->o->out, name);
	int rc = mm_ckpt_write(path, secs, nsec);
	free(conf);
	free(tokb);
	free(ranks);
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

// This rank's data position from a checkpoint: STAT holds rank 0's; a data-parallel run also
// saved every rank's (RANK). Resumed on as many ranks, each rank continues exactly where it
// was. On another number of ranks, every rank starts at its first document after the earliest
// saved position: the documents between the ranks' saved positions (less than one batch of
// each) are read a second time.
static mm_loader_state resume_position(struct trainer *tr, const mm_ckpt *ck, mm_loader_state st)
{
	const char *path = mm_ckpt_path(ck);
	const mm_ckpt_section *s = mm_ckpt_find(ck, MM_SEC_RANK);
	uint64_t saved = 1;
	if (s) {
		const uint8_t *b = s->data;
		if (s->size < 8 || (saved = mm_get_u32(b)) < 1 || saved > (1u << 24) || s->size != 8 + 24 * saved)
			die("%s: section RANK of %llu bytes does not hold whole data positions", path,
			    (unsigned long long)s->size);
		uint64_t r = (uint64_t)dist_rank();
		if (saved == (uint64_t)dist_world())
			return (mm_loader_state){mm_get_u64(b + 8 + 24 * r), mm_get_u64(b + 16 + 24 * r),
						 mm_get_u64(b + 24 + 24 * r)};
		for (uint64_t i = 1; i < saved; i++) {
			uint64_t e = mm_get_u64(b + 8 + 24 * i), c = mm_get_u64(b + 16 + 24 * i);
			if (e < st.epoch || (e == st.epoch && c < st.cursor))
				st.epoch = e, st.cursor = c;
		}
	}
	if (saved == (uint64_t)dist_world())
		return st;
	uint64_t w = (uint64_t)dist_world(), r = (uint64_t)dist_rank(), n = mm_loader_docs_per_epoch(tr->train);
	if (dist_rank() == 0)
		warnx("%s was written by %llu ranks and resumes on %llu: the data position is the earliest of "
		      "the saved ones, and the global batch is now %llu rows",
		      path, (unsigned long long)saved, (unsigned long long)w, (unsigned long long)(w * tr->o->batch));
	// The first position p >= cursor with (epoch n + p) % w == r (loader.h), else the next epoch's.
	uint64_t c = st.cursor < n ? st.cursor : n;
	c += (r + w - (st.epoch % w * (n % w) + c) % w) % w;
	if (c >= n) {
		st.epoch++;
		c = (r + w - st.epoch % w * (n % w) % w) % w;
	}
	return (mm_loader_state){st.epoch, c, 0};
}

// Reads DIR/latest's checkpoint: settings, model, optimizer, EMA and position.
// Data parallel: rank 0 reads the file and sends it to the others.
static void resume(struct trainer *tr, struct opt *table)
{
	struct train_opts *o = tr->o;
	char *path = NULL;
	int rc = dist_rank() == 0 ? mm_ckpt_resolve(o->resume, &path) : 0;
	if (rc)
		die("--resume %s: no checkpoint to resume from (%s)", o->resume, mm_errmsg());
	mm_ckpt *ck;
	if ((rc = dist_ckpt_read(&ck, &path)))
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
	st = resume_position(tr, ck, st);
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

// A line of log.jsonl goes to the disk now; a full or failing disk ends the run (the
// checkpoints on it stay as they are) rather than leaving a log with lines missing.
static void log_flush(struct trainer *tr)
{
	if (fflush(tr->log) != 0 || ferror(tr->log))
		die("%s/log.jsonl: write failed: %s", tr->o->out, strerror(errno));
}

// Keeps the log lines of steps up to the resumed one: the steps after it will be logged again.
static void open_log(struct trainer *tr)
{
	if (dist_rank() != 0) // data parallel: rank 0 logs
		return;
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
		if (dist_rank() == 0 && mkdir(o->out, 0777) != 0 && errno != EEXIST)
			die("%s: cannot create: %s", o->out, strerror(errno));
		mm_model_init(tr->model, (uint64_t)o->seed);
		// The same seed gives every rank the same weights; rank 0's are sent all the same, so
		// that no difference of libm between machines can set the ranks apart.
		dist_bcast(mm_model_params(tr->model), mm_model_nparams(tr->model) * sizeof(float));
		if (tr->ema)
			memcpy(tr->ema, mm_model_params(tr->model), mm_model_nparams(tr->model) * sizeof(float));
		tr->total_steps = o->steps ? (uint64_t)o->steps : steps_for_epochs(tr);
	}
	if (dist_world() > 1) {
		// Rank 0 measured the schedule for --epochs on its slice: its figure holds for all.
		dist_bcast(&tr->total_steps, sizeof tr->total_steps);
		dist_check_same(mm_model_nparams(tr->model), "the number of parameters");
		dist_check_same(mm_loader_docs_per_epoch(tr->train), "the number of training documents");
		if (dist_rank() == 0)
			fprintf(stderr, "%s: %d ranks x %lld rows = %lld rows per step\n", cli_prog, dist_world(),
				o->batch, o->batch * dist_world());
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
	double sum[4] = {st, si, nt, ni}; // data parallel: each rank validated its slice
	dist_sum_doubles(sum, 4);
	st = sum[0], si = sum[1], nt = sum[2], ni = sum[3];
	*vt = nt ? st / nt : 0;
	*vi = ni ? si / ni : 0;
}

// The progress line goes to stderr unless quiet: once a stop signal has come, mpirun may have
// stopped reading the ranks' output, and a write to its full pipe would block rank 0 until
// mpirun kills it, before the checkpoint is written.
static void log_step(struct trainer *tr, float loss, float lt, float li, double lr, double gnorm, double pps,
		     double eta, double padding, int quiet)
{
	fprintf(tr->log,
		"{\"step\":%llu,\"loss\":%.9g,\"loss_text\":%.9g,\"loss_image\":%.9g,\"lr\":%.9g,\"grad_norm\":%.9g,"
		"\"positions_per_s\":%.1f,\"epoch\":%.4f,\"padding\":%.4f}\n",
		(unsigned long long)tr->step, loss, lt, li, lr, gnorm, pps, mm_loader_epochs_done(tr->train), padding);
	log_flush(tr);
	if (quiet)
		return;
	int tty = isatty(2);
	fprintf(stderr, "%sstep %llu/%llu  loss %.4f  text %.4f  image %.4f  lr %.2e  gnorm %.3f  %.0f pos/s  eta %dm%02ds%s",
		tty ? "\r\033[K" : "", (unsigned long long)tr->step, (unsigned long long)tr->total_steps, loss, lt, li,
		lr, gnorm, pps, (int)(eta / 60), (int)eta % 60, tty ? "" : "\n");
}

// Data parallel: what the ranks add up after each forward, so that every rank logs the losses
// of all rows, backpropagates with the counts of all rows, and takes the same decisions.
enum { SUM_TEXT, SUM_IMAGE, SUM_NT, SUM_NI, SUM_PAD, SUM_DONE, SUM_STOP, SUM_N };

static void sum_over_ranks(struct trainer *tr, float *loss, float *lt, float *li, uint64_t *pad, int *done,
			   int *stop)
{
	const mm_batch *b = &tr->batch;
	double s[SUM_N] = {0};
	for (int p = 0; p < b->B * b->T; p++) {
		s[SUM_NT] += b->target[p] >= 0;
		s[SUM_NI] += b->patch[p] >= 0;
	}
	s[SUM_TEXT] = (double)*lt * s[SUM_NT];
	s[SUM_IMAGE] = (double)*li * s[SUM_NI];
	s[SUM_PAD] = (double)*pad;
	s[SUM_DONE] = *done;
	s[SUM_STOP] = *stop;
	dist_sum_doubles(s, SUM_N);
	double t = s[SUM_NT] ? s[SUM_TEXT] / s[SUM_NT] : 0, i = s[SUM_NI] ? s[SUM_IMAGE] / s[SUM_NI] : 0;
	*lt = (float)t;
	*li = (float)i;
	*loss = (float)(t + (double)tr->cfg.image_weight * i);
	*pad = (uint64_t)s[SUM_PAD];
	*done = s[SUM_DONE] > 0;
	*stop = s[SUM_STOP] > 0;
	mm_model_set_loss_counts(tr->model, s[SUM_NT], s[SUM_NI]);
}

// Validation losses of the current weights, logged (rank 0).
static void validate(struct trainer *tr, int log0)
{
	double vt, vi;
	evaluate(tr, &vt, &vi);
	if (!log0)
		return;
	fprintf(tr->log, "{\"step\":%llu,\"val_loss_text\":%.9g,\"val_loss_image\":%.9g}\n",
		(unsigned long long)tr->step, vt, vi);
	log_flush(tr);
	fprintf(stderr, "%sstep %llu  val text %.4f  val image %.4f\n", isatty(2) ? "\r\033[K" : "",
		(unsigned long long)tr->step, vt, vi);
}

// The kernels of the forward and backward (lib/prof.h), slowest first; what they leave of the
// two phases is the model's own code between kernels (gathers, zeroing, index lists).
static void print_kernels(double fb, double tot, uint64_t n)
{
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
	double other = fb - in > 0 ? fb - in : 0;
	fprintf(stderr, "  %-22s %9.2f  %5.1f%%\n", "(between kernels)", 1e3 * other / (double)n,
		tot > 0 ? 100 * other / tot : 0);
}

int train_run(struct trainer *tr, struct opt *table, volatile sig_atomic_t *stop)
{
	struct train_opts *o = tr->o;
	size_t np = mm_model_nparams(tr->model);
	float *params = mm_model_params(tr->model), *grads = mm_model_grads(tr->model);
	int world = dist_world(), log0 = dist_rank() == 0;
	double t0 = now(), tlog = t0, prof[5] = {0};
	uint64_t step0 = tr->step, pos_since = 0, pad_since = 0;
	double done0 = o->epochs && mm_loader_epochs_done(tr->train) >= o->epochs;
	dist_sum_doubles(&done0, 1);
	int done = done0 > 0;
	// A fresh run's validation figure before any step: the baseline of the curve.
	if (tr->val && tr->step == 0)
		validate(tr, log0);
	while (tr->step < tr->total_steps && !done) {
		double ta = now();
		int rc = mm_loader_next(tr->train, &tr->batch);
		if (rc < 0)
			die_mm(rc);
		double tb = now();
		float loss, lt, li;
		mm_model_zero_grad(tr->model);
		// Kernel timers on for the forward and the backward (nothing between them calls one).
		mm_prof_state.on = o->profile;
		if ((rc = mm_model_forward(tr->model, &tr->batch, &loss)))
			die_mm(rc);
		mm_model_losses(tr->model, &lt, &li);
		uint64_t pad = 0;
		for (int p = 0; p < tr->batch.B * tr->batch.T; p++)
			pad += tr->batch.doc[p] < 0;
		done = o->epochs && mm_loader_epochs_done(tr->train) >= o->epochs;
		int stopping = *stop != 0;
		if (world > 1)
			sum_over_ranks(tr, &loss, &lt, &li, &pad, &done, &stopping);
		double tc = now();
		if ((rc = mm_model_backward(tr->model)))
			die_mm(rc);
		mm_prof_state.on = 0;
		double td = now();
		// Data parallel: the sum of the ranks' gradients is the gradient of all their rows,
		// the backward having divided by the counts of all rows.
		dist_sum_floats(grads, np);
		double td2 = now();
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
		prof[0] += tb - ta, prof[1] += tc - tb, prof[2] += td - tc, prof[3] += te - td2, prof[4] += td2 - td;
		pos_since += (uint64_t)tr->batch.B * (uint64_t)tr->batch.T * (uint64_t)world;
		pad_since += pad;
		if (tr->step % (uint64_t)o->log_every == 0 || tr->step == tr->total_steps) {
			double t = now();
			double pps = (double)pos_since / (t - tlog);
			double eta = (t - t0) / (double)(tr->step - step0) * (double)(tr->total_steps - tr->step);
			if (log0)
				log_step(tr, loss, lt, li, lr, gnorm, pps, eta, (double)pad_since / (double)pos_since,
					 stopping || *stop);
			tlog = t;
			pos_since = pad_since = 0;
		}
		int last = tr->step == tr->total_steps || done;
		if (tr->val && !stopping && !*stop && (tr->step % (uint64_t)o->eval_every == 0 || last)) {
			validate(tr, log0);
			tlog = now(); // evaluation time is not training time
		}
		// One rank alone acts on its own signal; data-parallel ranks act together on any rank's.
		if (world == 1)
			stopping = *stop != 0;
		if (tr->step % (uint64_t)o->ckpt_every == 0 || last || stopping) {
			save_checkpoint(tr, table, now() - t0);
			if (stopping) {
				int sig = *stop ? (int)*stop : SIGTERM;
				if (log0)
					fprintf(stderr, "%s%s: signal %d: saved %s\n", isatty(2) ? "\r\033[K" : "", cli_prog,
						sig, tr->last_ckpt);
				return 128 + sig;
			}
		}
	}
	if (!log0)
		return 0;
	if (isatty(2))
		fputc('\n', stderr);
	if (o->profile) {
		double tot = prof[0] + prof[1] + prof[2] + prof[3] + prof[4];
		const char *names[5] = {"data", "forward", "backward", "optimizer", "allreduce"};
		uint64_t n = tr->step - step0 ? tr->step - step0 : 1;
		fprintf(stderr, "profile over %llu steps (ms per step):\n", (unsigned long long)n);
		for (int i = 0; i < (world > 1 ? 5 : 4); i++)
			fprintf(stderr, "  %-10s %9.2f  %5.1f%%\n", names[i], 1e3 * prof[i] / (double)n,
				tot > 0 ? 100 * prof[i] / tot : 0);
		print_kernels(prof[1] + prof[2], tot, n);
	}
	fprintf(stderr, "%s: %llu steps, checkpoint %s\n", cli_prog, (unsigned long long)tr->step,
		tr->last_ckpt ? tr->last_ckpt : "(none)");
	return 0;
}

void train_free(struct trainer *tr)
{
	if (tr->log)
		fclose(tr->log);
	mm_batch_free(&tr->batch);
	if (tr->val)
		mm_batch_free(&tr->vbatch);
	mm_loader_close(tr->train);
	mm_loader_close(tr->val);
	mm_optim_free(tr->opt);
	mm_model_free(tr->model);
	mm_tok_free(tr->tok);
	free(tr->ema);
	free(tr->last_ckpt);
}
