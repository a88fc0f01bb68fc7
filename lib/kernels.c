// The float instantiation of the kernels (see kernels_typed_priv.h), and their threads.
//
// Map: the kernels (lib/kernels_typed_priv.h, over float or double; shapes in lib/kernels.h) are the
// only arithmetic of the model; lib/model_typed_priv.h strings them into the embedding and the one
// block that training and the sampler (lib/sample.c) both run. In kernels_typed_priv.h: the mask rule
// (mm_att_allowed, applied by att_mask_row), matmul through the slab GEMM, rmsnorm (one row
// function, also under the fused residual + rmsnorm), rope, attention over a batch's rows and
// over a KV cache (attention_cached), the masked softmax, SwiGLU on split or fused inputs (one
// silu_mul, whose exp is lib/fastexp.h's), the losses, gathers and scatters.
#include "kernels.h"

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
