// The optimizer: AdamW with decoupled weight decay on matrices, global-norm gradient clipping,
// the learning-rate schedule (linear warmup, cosine decay) and the EMA of the weights.
#ifndef MM_OPTIM_H
#define MM_OPTIM_H

#include <stddef.h>

#include "model.h"

typedef struct mm_adamw_hp {
	float lr, beta1, beta2, eps, weight_decay;
} mm_adamw_hp;

// AdamW state: both moments in one allocation (m = the first n values, v = the next n), and
// the number of steps taken. Saved and restored verbatim by checkpoints.
typedef struct mm_optim {
	size_t n;
	long step;
	float *m, *v;
} mm_optim;

int mm_optim_new(mm_optim **o, size_t n);
void mm_optim_free(mm_optim *o);

// One AdamW step on the parameters of a tensor table (mm_model_tensors): the gradients are
// multiplied by gscale (the clipping factor, 1 for none); weight decay p -= lr * wd * p only on
// kind 'm' tensors, before the Adam term; bias correction with the step counted from 1.
void mm_optim_step(mm_optim *o, float *params, const float *grads, const mm_tensor *tab, int ntab,
		   const mm_adamw_hp *hp, float gscale);

// Global L2 norm of n gradient values, summed in double in an order that does not depend on
// the thread count.
double mm_optim_grad_norm(const float *g, size_t n);
// The factor that clips a gradient of this norm to at most clip: clip / norm when
// norm > clip > 0, else 1.
float mm_optim_clip_scale(double norm, float clip);

// Learning rate of step (counted from 1): linear warmup to lr over `warmup` steps, then cosine
// decay to min_lr at step `total`, min_lr after.
float mm_optim_lr(long step, long warmup, long total, float lr, float min_lr);

// ema = decay * ema + (1 - decay) * p over n values.
void mm_optim_ema(float *ema, const float *p, size_t n, float decay);

#endif
