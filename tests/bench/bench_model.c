// Training-step speed of the C model on the reference configuration of RECIPE.md: forward +
// backward (+ AdamW) per step, in positions per second. Not part of `make test`. Build with
//   make
//   cc -O2 -fopenmp -Ilib $(pkg-config --cflags openblas) -o bench_model
//      tests/bench/bench_model.c lib/libmm.a $(pkg-config --libs openblas) -lm
// run with OMP_NUM_THREADS=2 ./bench_model [steps per round] [qk_norm] [bottleneck]. The machine
// is shared: it runs three rounds and reports the fastest.
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "mm.h"
#include "optim.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

int main(int argc, char **argv)
{
	int steps = argc > 1 ? atoi(argv[1]) : 10;
	mm_config c = {.dim = 384, .layers = 6, .heads = 6, .mlp = 1024, .vocab = 4096, .img_h = 28,
		       .img_w = 28, .img_c = 1, .patch = 4, .bottleneck = argc > 3 ? atoi(argv[3]) : 0,
		       .qk_norm = argc > 2 ? atoi(argv[2]) : 0, .seq_len = 64, .image_weight = 5};
	int B = 32, T = 64, P = 16;
	mm_model *m;
	if (mm_model_new(&m, &c, B)) {
		fprintf(stderr, "%s\n", mm_errmsg());
		return 1;
	}
	mm_model_init(m, 1);
	// rows: BOS, 12 text, BOI, 49 patches, EOI
	size_t N = (size_t)B * T;
	int32_t *ints = malloc(6 * N * sizeof *ints);
	float *fl = malloc(N * (1 + 2 * P) * sizeof *fl);
	mm_batch b = {.B = B, .T = T, .token = ints, .target = ints + N, .doc = ints + 2 * N,
		      .img = ints + 3 * N, .pos = ints + 4 * N, .patch = ints + 5 * N, .t = fl,
		      .z = fl + N, .x = fl + N + N * P};
	mm_rng r;
	mm_rng_seed(&r, 1, 0);
	for (size_t n = 0; n < N; n++) {
		int i = n % T, im = i >= 14 && i < 63;
		b.token[n] = im ? -1 : (int32_t)mm_rng_below(&r, 4096);
		b.doc[n] = 0, b.pos[n] = i;
		b.img[n] = im ? 0 : -1, b.patch[n] = im ? i - 14 : -1;
		b.t[n] = 0.5f;
		for (int p = 0; p < P; p++)
			b.z[n * P + p] = (float)mm_rng_normal(&r), b.x[n * P + p] = 0.1f;
	}
	for (size_t n = 0; n < N; n++)
		b.target[n] = (n % T) < 13 ? b.token[n + 1] : -1; // BOS..text predict up to BOI
	mm_optim *o;
	mm_optim_new(&o, mm_model_nparams(m));
	mm_adamw_hp hp = {1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f};
	float loss = 0;
	double best = 1e30, bf = 0, bb = 0, bo = 0;
	for (int round = 0; round < 3; round++) {
		double tf = 0, tb = 0, to = 0;
		for (int s = round ? 0 : -2; s < steps; s++) { // two warm-up steps
			double t0 = now();
			mm_model_zero_grad(m);
			if (mm_model_forward(m, &b, &loss)) {
				fprintf(stderr, "%s\n", mm_errmsg());
				return 1;
			}
			double t1 = now();
			mm_model_backward(m);
			double t2 = now();
			double norm = mm_optim_grad_norm(mm_model_grads(m), mm_model_nparams(m));
			mm_optim_step(o, mm_model_params(m), mm_model_grads(m), mm_model_tensors(m),
				      mm_model_ntensors(m), &hp, mm_optim_clip_scale(norm, 1));
			double t3 = now();
			if (s >= 0)
				tf += t1 - t0, tb += t2 - t1, to += t3 - t2;
		}
		if (tf + tb + to < best)
			best = tf + tb + to, bf = tf, bb = tb, bo = to;
	}
	printf("params %zu, loss %.4f; best of 3 rounds of %d steps: forward %.1f ms, backward "
	       "%.1f ms, adamw %.1f ms per step; %.0f positions/s (forward+backward alone %.0f)\n",
	       mm_model_nparams(m), loss, steps, 1e3 * bf / steps, 1e3 * bb / steps,
	       1e3 * bo / steps, (double)N * steps / best, (double)N * steps / (bf + bb));
	mm_optim_free(o);
	mm_model_free(m);
	free(ints);
	free(fl);
	return 0;
}
