// The trainer of lib/train.h.
#include "train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "prof.h"

static int many(const mm_trainer *tr) { return tr->dist.world > 1; }

int mm_train_open(mm_trainer *tr, const mm_train_settings *s, const mm_train_dist *d, const char *const *data,
		  int n_data, const char *const *val, int n_val)
{
	memset(tr, 0, sizeof *tr);
	tr->s = *s;
	tr->dist = *d;
	tr->saved_ranks = 1;
	mm_loader_opts lo;
	mm_loader_opts_init(&lo);
	lo.batch = (int)s->batch;
	lo.seq_len = (int)s->seq_len;
	lo.seed = (uint64_t)s->seed;
	lo.cfg_drop = s->cfg_drop;
	lo.image_first = s->image_first;
	lo.first_t = s->image_first_t;
	lo.rank = d->rank; // data parallel: each rank reads its own slice, validation included
	lo.world = d->world;
	int rc = mm_loader_open(&tr->train, data, n_data, &lo);
	if (rc || (rc = mm_loader_batch_alloc(tr->train, &tr->batch)) || !n_val)
		return rc;
	lo.validation = 1;
	if ((rc = mm_loader_open(&tr->val, val, n_val, &lo)))
		return rc;
	if ((rc = mm_shard_info_compatible(mm_loader_info(tr->train), mm_loader_shard_path(tr->train, 0),
					   mm_loader_info(tr->val), mm_loader_shard_path(tr->val, 0))))
		return rc;
	return mm_loader_batch_alloc(tr->val, &tr->vbatch);
}

static int config_from_settings(mm_trainer *tr)
{
	const mm_train_settings *s = &tr->s;
	const mm_shard_info *info = mm_loader_info(tr->train);
	mm_config *c = &tr->cfg;
	memset(c, 0, sizeof *c);
	c->dim = (int)s->dim;
	c->layers = (int)s->layers;
	c->heads = (int)s->heads;
	c->mlp = s->mlp ? (int)s->mlp : (int)((8 * s->dim / 3 + 63) / 64 * 64);
	c->vocab = (int)info->vocab_size;
	c->img_h = (int)info->img_h;
	c->img_w = (int)info->img_w;
	c->img_c = (int)info->img_c;
	c->patch = (int)info->patch;
	c->bottleneck = (int)s->bottleneck;
	c->qk_norm = (int)s->qk_norm;
	c->seq_len = (int)s->seq_len;
	c->image_weight = (float)s->image_weight;
	c->noise_shift = (float)(s->noise_shift > 0 ? s->noise_shift
				  : c->patch ? mm_noise_shift_default(c->img_h, c->img_w, c->img_c) : 1);
	return mm_config_check(c);
}

int mm_train_build(mm_trainer *tr, const mm_config *c)
{
	int rc = 0;
	if (c)
		tr->cfg = *c;
	else if ((rc = config_from_settings(tr)))
		return rc;
	if ((rc = mm_model_new(&tr->model, &tr->cfg, (int)tr->s.batch)))
		return rc;
	// The noise levels follow the model's shift (a resumed run's: its checkpoint's).
	double mu = MM_T_MU - log((double)mm_noise_shift(&tr->cfg));
	mm_loader_set_noise(tr->train, mu, MM_T_SIGMA);
	if (tr->val)
		mm_loader_set_noise(tr->val, mu, MM_T_SIGMA);
	size_t np = mm_model_nparams(tr->model);
	if ((rc = mm_optim_new(&tr->opt, np)))
		return rc;
	if (tr->s.ema > 0 && !(tr->ema = malloc(np * sizeof(float))))
		return mm_fail(MM_ENOMEM, "out of memory for the EMA weights");
	return 0;
}

int mm_train_schedule(mm_trainer *tr, long long steps, double epochs)
{
	if (steps) {
		tr->total_steps = (uint64_t)steps;
	} else {
		mm_loader_state s0, s1;
		mm_loader_get_state(tr->train, &s0);
		int rc = mm_loader_next(tr->train, &tr->batch);
		if (rc < 0)
			return rc;
		mm_loader_get_state(tr->train, &s1);
		mm_loader_set_state(tr->train, &s0);
		uint64_t n = mm_loader_docs_per_epoch(tr->train);
		double per_batch = (double)(s1.cursor - s0.cursor + (s1.epoch - s0.epoch) * n);
		if (per_batch < 1)
			per_batch = 1;
		tr->total_steps = (uint64_t)ceil(epochs * (double)n / per_batch);
	}
	// Rank 0 measured the schedule for epochs on its slice: its figure holds for all.
	if (many(tr))
		tr->dist.bcast(&tr->total_steps, sizeof tr->total_steps);
	return 0;
}

int mm_train_init(mm_trainer *tr)
{
	size_t bytes = mm_model_nparams(tr->model) * sizeof(float);
	mm_model_init(tr->model, (uint64_t)tr->s.seed);
	// The same seed gives every rank the same weights; rank 0's are sent all the same, so that
	// no difference of libm between machines can set the ranks apart.
	if (many(tr))
		tr->dist.bcast(mm_model_params(tr->model), bytes);
	if (tr->ema)
		memcpy(tr->ema, mm_model_params(tr->model), bytes);
	return mm_train_schedule(tr, tr->s.steps, tr->s.epochs);
}

// This rank's data position on resume (see mm_train_resume): st is STAT's, rank 0's.
static mm_loader_state resume_position(mm_trainer *tr, const mm_ckpt_train *t)
{
	mm_loader_state st = {t->stat.epoch, t->stat.cursor, t->stat.offset};
	uint64_t w = (uint64_t)tr->dist.world, r = (uint64_t)tr->dist.rank, n = mm_loader_docs_per_epoch(tr->train);
	if (t->ranks == w && t->rank)
		return (mm_loader_state){t->rank[r].epoch, t->rank[r].cursor, t->rank[r].offset};
	if (t->ranks == w)
		return st;
	for (uint32_t i = 1; i < t->ranks; i++) {
		uint64_t e = t->rank[i].epoch, c = t->rank[i].cursor;
		if (e < st.epoch || (e == st.epoch && c < st.cursor))
			st.epoch = e, st.cursor = c;
	}
	// The first position p >= cursor with (epoch n + p) % w == r (loader.h), else the next epoch's.
	uint64_t c = st.cursor < n ? st.cursor : n;
	c += (r + w - (st.epoch % w * (n % w) + c) % w) % w;
	if (c >= n) {
		st.epoch++;
		c = (r + w - st.epoch % w * (n % w) % w) % w;
	}
	return (mm_loader_state){st.epoch, c, 0};
}

int mm_train_resume(mm_trainer *tr, const mm_ckpt *ck)
{
	size_t np = mm_model_nparams(tr->model);
	mm_ckpt_train t;
	int rc = mm_ckpt_get_train(ck, np, tr->ema != NULL, &t);
	if (rc) {
		free(t.rank);
		return rc;
	}
	memcpy(mm_model_params(tr->model), t.params, np * sizeof(float));
	memcpy(tr->opt->m, t.adam, 2 * np * sizeof(float));
	if (tr->ema)
		memcpy(tr->ema, t.ema, np * sizeof(float));
	tr->step = t.stat.step;
	tr->total_steps = t.stat.total_steps;
	tr->elapsed = t.stat.seconds;
	tr->saved_ranks = t.ranks;
	mm_loader_state st = resume_position(tr, &t);
	free(t.rank);
	if ((rc = mm_loader_set_state(tr->train, &st))) {
		mm_errctx("%s", mm_ckpt_path(ck));
		return rc;
	}
	tr->opt->step = (long)t.stat.adam_step;
	return 0;
}

void mm_train_free(mm_trainer *tr)
{
	mm_batch_free(&tr->batch);
	if (tr->val)
		mm_batch_free(&tr->vbatch);
	mm_loader_close(tr->train);
	mm_loader_close(tr->val);
	mm_optim_free(tr->opt);
	mm_model_free(tr->model);
	free(tr->ema);
	memset(tr, 0, sizeof *tr);
}

// Data parallel: what the ranks add up after each forward, so that every rank logs the losses
// of all rows, backpropagates with the counts of all rows, and takes the same decisions.
enum { SUM_TEXT, SUM_IMAGE, SUM_NT, SUM_NI, SUM_PAD, SUM_DONE, SUM_STOP, SUM_N };

static void sum_over_ranks(mm_trainer *tr, const mm_batch *b, mm_train_info *in)
{
	double s[SUM_N] = {0};
	for (int p = 0; p < b->B * b->T; p++) {
		s[SUM_NT] += b->target[p] >= 0;
		s[SUM_NI] += b->patch[p] >= 0;
	}
	s[SUM_TEXT] = (double)in->loss_text * s[SUM_NT];
	s[SUM_IMAGE] = (double)in->loss_image * s[SUM_NI];
	s[SUM_PAD] = (double)in->padded;
	s[SUM_DONE] = in->done;
	s[SUM_STOP] = in->stop;
	tr->dist.sum_doubles(s, SUM_N);
	double t = s[SUM_NT] ? s[SUM_TEXT] / s[SUM_NT] : 0, i = s[SUM_NI] ? s[SUM_IMAGE] / s[SUM_NI] : 0;
	in->loss_text = (float)t;
	in->loss_image = (float)i;
	in->loss = (float)(t + (double)tr->cfg.image_weight * i);
	in->padded = (uint64_t)s[SUM_PAD];
	in->done = s[SUM_DONE] > 0;
	in->stop = s[SUM_STOP] > 0;
	mm_model_set_loss_counts(tr->model, s[SUM_NT], s[SUM_NI]);
}

int mm_train_step(mm_trainer *tr, const mm_batch *b, const volatile sig_atomic_t *stop, mm_train_info *in)
{
	const mm_train_settings *s = &tr->s;
	size_t np = mm_model_nparams(tr->model);
	float *params = mm_model_params(tr->model), *grads = mm_model_grads(tr->model);
	double t0 = mm_now();
	mm_model_zero_grad(tr->model);
	// Kernel timers on for the forward and the backward (nothing between them calls one).
	mm_prof_state.on = tr->profile;
	int rc = mm_model_forward(tr->model, b, &in->loss);
	if (rc) {
		mm_prof_state.on = 0;
		return rc;
	}
	mm_model_losses(tr->model, &in->loss_text, &in->loss_image);
	in->padded = 0;
	for (int p = 0; p < b->B * b->T; p++)
		in->padded += b->doc[p] < 0;
	in->done = s->epochs && mm_loader_epochs_done(tr->train) >= s->epochs;
	in->stop = stop && *stop != 0;
	if (many(tr))
		sum_over_ranks(tr, b, in);
	double t1 = mm_now();
	rc = mm_model_backward(tr->model);
	mm_prof_state.on = 0;
	if (rc)
		return rc;
	double t2 = mm_now();
	// Data parallel: the sum of the ranks' gradients is the gradient of all their rows, the
	// backward having divided by the counts of all rows.
	if (many(tr))
		tr->dist.sum_floats(grads, np);
	double t3 = mm_now();
	in->grad_norm = mm_optim_grad_norm(grads, np);
	if (!isfinite(in->loss) || !isfinite(in->grad_norm))
		return mm_fail(MM_ENUMERIC, "non-finite %s at step %llu", isfinite(in->loss) ? "gradient" : "loss",
			       (unsigned long long)tr->step + 1);
	in->lr = mm_optim_lr((long)tr->step + 1, (long)s->warmup, (long)tr->total_steps, (float)s->lr,
			     (float)s->min_lr);
	mm_adamw_hp hp = {in->lr, (float)s->beta1, (float)s->beta2, 1e-8f, (float)s->weight_decay};
	mm_optim_step(tr->opt, params, grads, mm_model_tensors(tr->model), mm_model_ntensors(tr->model), &hp,
		      mm_optim_clip_scale(in->grad_norm, (float)s->clip));
	if (tr->ema)
		mm_optim_ema(tr->ema, params, np, (float)s->ema);
	tr->step++;
	double t4 = mm_now();
	in->sec_forward = t1 - t0, in->sec_backward = t2 - t1, in->sec_sum = t3 - t2, in->sec_optim = t4 - t3;
	return 0;
}

int mm_train_validate(mm_trainer *tr, long long max_batches, double *vt, double *vi)
{
	double sum[4] = {0}; // text loss sum, image loss sum, their counts
	mm_loader_rewind(tr->val);
	for (long long k = 0; !max_batches || k < max_batches; k++) {
		int rows = mm_loader_next(tr->val, &tr->vbatch);
		if (rows < 0)
			return rows;
		if (rows == 0)
			break;
		float loss, lt, li;
		int rc = mm_model_forward(tr->model, &tr->vbatch, &loss);
		if (rc)
			return rc;
		mm_model_losses(tr->model, &lt, &li);
		int n_t = 0, n_i = 0;
		for (int p = 0; p < tr->vbatch.B * tr->vbatch.T; p++) {
			n_t += tr->vbatch.target[p] >= 0;
			n_i += tr->vbatch.patch[p] >= 0;
		}
		sum[0] += (double)lt * n_t, sum[2] += n_t;
		sum[1] += (double)li * n_i, sum[3] += n_i;
	}
	if (many(tr)) // data parallel: each rank validated its slice
		tr->dist.sum_doubles(sum, 4);
	*vt = sum[2] ? sum[0] / sum[2] : 0;
	*vi = sum[3] ? sum[1] / sum[3] : 0;
	return 0;
}

void mm_train_contents(const mm_trainer *tr, double seconds, mm_ckpt_train *t)
{
	memset(t, 0, sizeof *t);
	mm_loader_state s;
	mm_loader_get_state(tr->train, &s);
	t->cfg = &tr->cfg;
	t->nparams = mm_model_nparams(tr->model);
	t->params = mm_model_params(tr->model);
	t->adam = tr->opt->m;
	t->ema = tr->ema;
	t->stat = (mm_ckpt_stat){.step = tr->step, .total_steps = tr->total_steps, .seconds = tr->elapsed + seconds,
				 .epoch = s.epoch, .cursor = s.cursor, .offset = s.offset,
				 .adam_step = (uint64_t)tr->opt->step};
	t->ranks = 1;
}
