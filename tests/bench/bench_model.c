// Training-step speed of the C model on the reference configuration of mm-model(7) (dim 384, 6
// layers, 6 heads, SwiGLU 1024, vocab 4096, 28x28x1 in 4x4 patches, rows of 64 = BOS, 12 text,
// BOI, 49 patches, EOI, 32 rows): forward + backward + clipping + AdamW per step, on the same
// kind of random rows as tests/ref/bench_train.py. Part of make bench (tests/bench/run.sh), not
// of make test.
//   bench_model THREADS [STEPS_PER_ROUND [ROUNDS [TEXT B [text | SxSxC/P]]]]
// TEXT and B: rows of BOS, TEXT text tokens, BOI, 49 patches, EOI (TEXT + 52 positions), B rows
// (tests/ref/bench_train.py --text TEXT --batch B: the same shapes); the cost of long documents.
// With "text": rows of TEXT + 52 text positions (BOS, then tokens), no image: the work per
// position is then the same at every length but attention's. With SxSxC/P (64x64x3/8): images
// of S x S pixels, C channels, in P x P patches instead of 28x28x1 in 4x4 (bench_train.py --img
// S --channels C --patch P).
// Prints per round its positions/s, then one line of key=value figures: positions/s (median,
// min, max over rounds), model FLOP per position and GFLOP/s, the parameters and activations
// the step keeps, the analytic memory they add up to and the process's peak RSS.
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "bench.h"
#include "mm.h"
#include "model_state_priv.h"
#include "optim.h"

int main(int argc, char **argv)
{
	int threads = argc > 1 ? atoi(argv[1]) : 2;
	int steps = argc > 2 ? atoi(argv[2]) : 4, rounds = argc > 3 ? atoi(argv[3]) : 5;
	int TEXT = argc > 5 ? atoi(argv[4]) : 12, B = argc > 5 ? atoi(argv[5]) : 32;
	int S = 28, C = 1, PS = 4, text = argc > 6 && !strcmp(argv[6], "text");
	if (argc > 6 && !text && (sscanf(argv[6], "%dx%*dx%d/%d", &S, &C, &PS) != 3 || PS < 1 || S % PS ||
				  S > 1024 || (C != 1 && C != 3)))
		S = 0;
	if (threads < 1 || steps < 1 || rounds < 1 || rounds > 100 || TEXT < 1 || TEXT > 16000 || B < 1 ||
	    B > 4096 || !S) {
		fprintf(stderr, "usage: bench_model THREADS [STEPS_PER_ROUND [ROUNDS [TEXT B [text | SxSxC/P]]]]\n");
		return 2;
	}
	int P = PS * PS * C, NP = (S / PS) * (S / PS), T = TEXT + 3 + NP;
	if (text)
		TEXT = T - 1, NP = 0;
	omp_set_num_threads(threads);
	mm_config c = {.dim = 384, .layers = 6, .heads = 6, .mlp = 1024, .vocab = 4096, .img_h = S,
		       .img_w = S, .img_c = C, .patch = PS, .seq_len = T, .image_weight = 5};
	mm_model *m;
	if (mm_model_new(&m, &c, B)) {
		fprintf(stderr, "%s\n", mm_errmsg());
		return 1;
	}
	mm_model_init(m, 1);
	size_t N = (size_t)B * T;
	mm_batch b;
	if (mm_batch_alloc(&b, B, T, P))
		return 1;
	mm_rng r;
	mm_rng_seed(&r, 1, 0);
	for (size_t n = 0; n < N && text; n++) { // BOS, then tokens
		int i = (int)(n % T);
		b.token[n] = i == 0 ? MM_TOK_BOS : (int32_t)(8 + mm_rng_below(&r, 4088));
		b.doc[n] = 0, b.pos[n] = i, b.img[n] = -1, b.patch[n] = -1, b.t[n] = 0;
	}
	for (size_t n = 0; n < N && !text; n++) {
		int i = (int)(n % T), im = i >= TEXT + 2 && i < TEXT + 2 + NP;
		b.token[n] = im ? -1 : i == 0 ? MM_TOK_BOS : i == TEXT + 1 ? MM_TOK_BOI : i == T - 1 ? MM_TOK_EOI
											 : (int32_t)(8 + mm_rng_below(&r, 4088));
		b.doc[n] = 0, b.pos[n] = i;
		b.img[n] = im ? 0 : -1, b.patch[n] = im ? i - TEXT - 2 : -1;
		b.t[n] = im ? (float)mm_rng_uniform(&r) : 0;
		for (int p = 0; p < P; p++)
			b.z[n * P + p] = (float)mm_rng_normal(&r), b.x[n * P + p] = (float)mm_rng_uniform(&r) * 2 - 1;
	}
	for (size_t n = 0; n < N; n++) // BOS and the text predict the next token, up to BOI
		b.target[n] = (int)(n % T) <= TEXT && (int)(n % T) + 1 < T ? b.token[n + 1] : -1;
	mm_optim *o;
	if (mm_optim_new(&o, mm_model_nparams(m)))
		return 1;
	mm_adamw_hp hp = {1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f};
	float loss = 0;
	double *pps = malloc(rounds * sizeof *pps), tf = 0, tb = 0, to = 0;
	for (int round = -1; round < rounds; round++) { // round -1: two warm-up steps
		int n = round < 0 ? 2 : steps;
		double t_round = mm_now();
		for (int s = 0; s < n; s++) {
			double t0 = mm_now();
			mm_model_zero_grad(m);
			if (mm_model_forward(m, &b, &loss)) {
				fprintf(stderr, "%s\n", mm_errmsg());
				return 1;
			}
			double t1 = mm_now();
			mm_model_backward(m);
			double t2 = mm_now();
			double norm = mm_optim_grad_norm(mm_model_grads(m), mm_model_nparams(m));
			mm_optim_step(o, mm_model_params(m), mm_model_grads(m), mm_model_tensors(m),
				      mm_model_ntensors(m), &hp, mm_optim_clip_scale(norm, 1));
			double t3 = mm_now();
			if (round >= 0)
				tf += t1 - t0, tb += t2 - t1, to += t3 - t2;
		}
		if (round >= 0) {
			pps[round] = (double)N * n / (mm_now() - t_round);
			printf("round %d: %.1f positions/s\n", round, pps[round]);
		}
	}
	double ns = (double)steps * rounds;
	qsort(pps, rounds, sizeof *pps, bench_cmp);
	// FLOP per position: 6 x the parameters of the matmuls each position goes through (forward
	// 2, backward 4): every position the layers, the 13 text positions of a row with a target
	// also the output head, the NP patches the patch and time embeddings and the patch head;
	// plus attention, QK^T and AV over all T keys of the row (2 T D each forward, the backward
	// twice that), whatever the mask leaves out.
	double D = c.dim, F = c.mlp, L = c.layers, nt = TEXT + 1, ni = NP;
	double flop_row = 6 * (T * L * (4 * D * D + 3 * D * F) + nt * D * c.vocab + ni * (2.0 * P * D + 64 * D)) +
			  3 * L * T * 4.0 * T * D;
	double flop_pos = flop_row / T;
	double gflops = flop_pos * pps[rounds / 2] / 1e9;
	// Memory a step needs, in floats: parameters, gradients, two Adam moments, the activations
	// the backward reads (lib/model_state_priv.h MM_ACTS at this batch), and the batch itself.
	size_t np = mm_model_nparams(m);
	double mib = ((4.0 * np + m->nacts) * 4 + 6.0 * N * 4 + N * (1 + 2 * P) * 4) / (1 << 20);
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("loss %.4f; per step: forward %.1f ms, backward %.1f ms, clip+adamw %.1f ms\n", loss,
	       1e3 * tf / ns, 1e3 * tb / ns, 1e3 * to / ns);
	printf("positions_per_s=%.1f min=%.1f max=%.1f flop_per_position=%.0f gflops=%.1f params=%zu "
	       "activations=%zu analytic_mib=%.1f peak_rss_mib=%.1f\n",
	       pps[rounds / 2], pps[0], pps[rounds - 1], flop_pos, gflops, np, m->nacts, mib,
	       ru.ru_maxrss / 1024.0);
	mm_optim_free(o);
	mm_model_free(m);
	mm_batch_free(&b);
	free(pps);
	return 0;
}
