// The float instantiation of the kernels (see kernels_typed_priv.h), and their threads.
//
// Map: the kernels (lib/kernels_typed_priv.h, over float or double; shapes in lib/kernels.h) are the
// only arithmetic of the model; lib/model_typed_priv.h strings them into the embedding and the one
// block that training and the sampler (lib/sample.c) both run. In kernels_typed_priv.h: the mask rule
// (mm_att_allowed, applied by att_mask_row), matmul through the slab GEMM, rmsnorm (one row
// function, also under the fused residual + rmsnorm), rope, attention over a batch's rows and
// over a KV cache (attention_cached), the masked exponentials of their softmax, SwiGLU on split or fused inputs (one
// silu_mul, whose exp is lib/fastexp.h's), the losses, gathers and scatters.
#include "kernels.h"

#include <string.h>
#include <unistd.h>

#include "prof.h"

#define REAL float
#define KFN(name) mm_##name
#define MM_GEMM cblas_sgemm
#define MM_KPROF(name) MM_PROF_SCOPE_ID(MM_PROF_##name) // name unexpanded: it is a macro too
#include "kernels_typed_priv.h"

void mm_threads_set(long long n)
{
	if (n <= 0)
		n = sysconf(_SC_NPROCESSORS_ONLN);
	omp_set_num_threads(n < 1 ? 1 : (int)n);
	openblas_set_num_threads(1);
}

// How the threads wait at the end of a parallel loop, chosen before OpenMP starts. libgomp, left
// to itself, spins about 300,000 times at each barrier before it sleeps: beside another run on
// the same cores, a thread that waits for a preempted partner burns the core that partner needs,
// at every barrier of every step, and two runs of mm-train --threads 2 on 2 cores together did
// 0.39 of one run's work. Sleeping at once (OMP_WAIT_POLICY=passive) made sampling alone 19%
// slower; a short spin (MM_SPINCOUNT, kernels.h) keeps both. libgomp reads its environment once,
// in a constructor that runs before main, and the C library's own constructor, which runs after
// .preinit_array, puts back the environment the program was started with; so a program started
// without OMP_WAIT_POLICY or GOMP_SPINCOUNT starts itself again, at once, with GOMP_SPINCOUNT
// (and OPENBLAS_NUM_THREADS=1, unless set) added: same process, same arguments. A user's own
// OMP_WAIT_POLICY or GOMP_SPINCOUNT is left as it is; without /proc the exec fails and the
// program runs on with libgomp's default.
static void wait_policy(int argc, char **argv, char **envp)
{
	(void)argc;
	size_t n = 0;
	int blas = 0;
	for (; envp[n]; n++) {
		if (!strncmp(envp[n], "OMP_WAIT_POLICY=", 16) || !strncmp(envp[n], "GOMP_SPINCOUNT=", 15))
			return;
		blas |= !strncmp(envp[n], "OPENBLAS_NUM_THREADS=", 21);
	}
	char *env[n + 3];
	memcpy(env, envp, n * sizeof *env);
	env[n++] = "GOMP_SPINCOUNT=" MM_SPINCOUNT;
	if (!blas) // mm_threads_set keeps OpenBLAS on one thread; so it starts no idle workers either
		env[n++] = "OPENBLAS_NUM_THREADS=1";
	env[n] = NULL;
	execve("/proc/self/exe", argv, env);
}
__attribute__((section(".preinit_array"), used)) static void (*const wait_policy_at_start)(int, char **,
                                                                                          char **) = wait_policy;
