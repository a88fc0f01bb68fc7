#include "optim.h"

#include <math.h>
#include <stdlib.h>

#include "err.h"

int mm_optim_new(mm_optim **op, size_t n)
{
	*op = NULL;
	mm_optim *o = calloc(1, sizeof *o);
	float *mv = n <= SIZE_MAX / 2 / sizeof(float) ? calloc(2 * n + 1, sizeof(float)) : NULL;
	if (!o || !mv) {
		free(o);
		free(mv);
		return mm_fail(MM_ENOMEM, "optimizer: cannot allocate the moments of %zu values", n);
	}
	o->n = n;
	o->m = mv;
	o->v = mv + n;
	*op = o;
	return 0;
}

void mm_optim_free(mm_optim *o)
{
	if (!o)
		return;
	free(o->m);
	free(o);
}

static void adamw_range(float *p, const float *g, float *m, float *v, size_t n, float lr,
			float decay, const mm_adamw_hp *hp, float gscale, float c1, float c2)
{
	float b1 = hp->beta1, b2 = hp->beta2, eps = hp->eps;
	// Vectorises (the Makefile's -fno-math-errno lets sqrtf be the instruction).
#pragma omp parallel for simd schedule(static) if (n > 65536)
	for (size_t i = 0; i < n; i++) {
		float gi = g[i] * gscale;
		m[i] = b1 * m[i] + (1 - b1) * gi;
		v[i] = b2 * v[i] + (1 - b2) * gi * gi;
		p[i] -= lr * decay * p[i];
		p[i] -= lr * ((m[i] / c1) / (sqrtf(v[i] / c2) + eps));
	}
}

void mm_optim_step(mm_optim *o, float *params, const float *grads, const mm_tensor *tab, int ntab,
		   const mm_adamw_hp *hp, float gscale)
{
	o->step++;
	float c1 = (float)(1 - pow(hp->beta1, (double)o->step));
	float c2 = (float)(1 - pow(hp->beta2, (double)o->step));
	for (int i = 0; i < ntab; i++) {
		size_t off = tab[i].offset;
		if (off > o->n || tab[i].size > o->n - off)
			continue; // a table that does not belong to these moments: nothing safe to do
		float decay = tab[i].kind == 'm' ? hp->weight_decay : 0;
		adamw_range(params + off, grads + off, o->m + off, o->v + off, tab[i].size, hp->lr,
			    decay, hp, gscale, c1, c2);
	}
}

double mm_optim_grad_norm(const float *g, size_t n)
{
	enum { PARTS = 64 }; // fixed split: the same sum whatever the thread count
	double part[PARTS];
	size_t chunk = (n + PARTS - 1) / PARTS;
#pragma omp parallel for schedule(static) if (n > 65536)
	for (int k = 0; k < PARTS; k++) {
		size_t lo = (size_t)k * chunk, hi = lo + chunk < n ? lo + chunk : n, i = lo;
		// Eight running sums in a fixed order: a loop the compiler vectorises, the same
		// result on every run.
		double a[8] = {0}, s = 0;
		for (; i + 8 <= hi; i += 8)
			for (int j = 0; j < 8; j++)
				a[j] += (double)g[i + j] * g[i + j];
		for (; i < hi; i++)
			s += (double)g[i] * g[i];
		for (int j = 0; j < 8; j++)
			s += a[j];
		part[k] = s;
	}
	double s = 0;
	for (int k = 0; k < PARTS; k++)
		s += part[k];
	return sqrt(s);
}

float mm_optim_clip_scale(double norm, float clip)
{
	return clip > 0 && norm > clip ? (float)(clip / norm) : 1.0f;
}

float mm_optim_lr(long step, long warmup, long total, float lr, float min_lr)
{
	if (step <= warmup && warmup > 0)
		return lr * (float)step / (float)warmup;
	if (step >= total)
		return min_lr;
	double progress = (double)(step - warmup) / (double)(total - warmup);
	return (float)(min_lr + 0.5 * (lr - min_lr) * (1 + cos(M_PI * progress)));
}

void mm_optim_ema(float *ema, const float *p, size_t n, float decay)
{
#pragma omp parallel for simd schedule(static) if (n > 65536)
	for (size_t i = 0; i < n; i++)
		ema[i] = decay * ema[i] + (1 - decay) * p[i];
}
