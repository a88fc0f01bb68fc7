// AdamW against the update written out in double; gradient norm, clipping, schedule, EMA.
#include <math.h>
#include <stdlib.h>

#include "check.h"
#include "mm.h"
#include "optim.h"

static void test_adamw(void)
{
	// two tensors: a matrix (decayed) and a vector (not decayed)
	mm_tensor tab[2] = {{.name = "w", .rows = 2, .cols = 3, .kind = 'm', .offset = 0, .size = 6},
			    {.name = "b", .rows = 4, .cols = 1, .kind = 'v', .offset = 6, .size = 4}};
	enum { N = 10 };
	float p[N], g[N];
	double pd[N], md[N] = {0}, vd[N] = {0};
	mm_rng r;
	mm_rng_seed(&r, 7, 0);
	for (int i = 0; i < N; i++)
		pd[i] = p[i] = (float)mm_rng_normal(&r);
	mm_adamw_hp hp = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};
	mm_optim *o;
	CHECK_OK(mm_optim_new(&o, N));
	double worst = 0;
	for (int step = 1; step <= 5; step++) {
		for (int i = 0; i < N; i++)
			g[i] = (float)mm_rng_normal(&r);
		float scale = step == 3 ? 0.25f : 1.0f;
		mm_optim_step(o, p, g, tab, 2, &hp, scale);
		for (int i = 0; i < N; i++) {
			double gi = (double)g[i] * scale, b1 = hp.beta1, b2 = hp.beta2, lr = hp.lr;
			md[i] = b1 * md[i] + (1 - b1) * gi;
			vd[i] = b2 * vd[i] + (1 - b2) * gi * gi;
			if (i < 6)
				pd[i] -= lr * (double)hp.weight_decay * pd[i];
			double mh = md[i] / (1 - pow(b1, step)), vh = vd[i] / (1 - pow(b2, step));
			pd[i] -= lr * mh / (sqrt(vh) + (double)hp.eps);
			worst = fmax(worst, fabs(p[i] - pd[i]));
		}
	}
	printf("adamw: 5 steps, worst abs difference from double %.1e\n", worst);
	CHECK(worst < 1e-6);
	CHECK_EQ_INT(o->step, 5);
	mm_optim_free(o);
}

static void test_norm_clip(void)
{
	size_t n = 200003;
	float *g = malloc(n * sizeof *g);
	double want = 0;
	for (size_t i = 0; i < n; i++) {
		g[i] = (float)((i % 7) - 3) * 0.5f;
		want += (double)g[i] * g[i];
	}
	CHECK(fabs(mm_optim_grad_norm(g, n) - sqrt(want)) < 1e-9 * sqrt(want));
	CHECK(mm_optim_grad_norm(g, 0) == 0);
	free(g);
	CHECK(mm_optim_clip_scale(4.0, 1.0f) == 0.25f);
	CHECK(mm_optim_clip_scale(0.5, 1.0f) == 1.0f);
	CHECK(mm_optim_clip_scale(4.0, 0.0f) == 1.0f); // clip 0: off
}

static void test_schedule_ema(void)
{
	CHECK(fabsf(mm_optim_lr(1, 10, 100, 1e-3f, 1e-4f) - 1e-4f) < 1e-9f);
	CHECK(fabsf(mm_optim_lr(10, 10, 100, 1e-3f, 1e-4f) - 1e-3f) < 1e-9f);
	CHECK(fabsf(mm_optim_lr(55, 10, 100, 1e-3f, 1e-4f) - 5.5e-4f) < 1e-8f); // half way: the mean
	CHECK(fabsf(mm_optim_lr(100, 10, 100, 1e-3f, 1e-4f) - 1e-4f) < 1e-9f);
	CHECK(fabsf(mm_optim_lr(500, 10, 100, 1e-3f, 1e-4f) - 1e-4f) < 1e-9f);
	CHECK(fabsf(mm_optim_lr(0, 0, 100, 1e-3f, 0) - 1e-3f) < 1e-9f); // no warmup: cosine from step 0
	float ema[3] = {1, 2, 3}, p[3] = {3, 2, 1};
	mm_optim_ema(ema, p, 3, 0.75f);
	CHECK(ema[0] == 1.5f && ema[1] == 2 && ema[2] == 2.5f);
}

int main(void)
{
	test_adamw();
	test_norm_clip();
	test_schedule_ema();
	return check_done();
}
