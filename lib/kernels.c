// The float instantiation of the kernels (see kernels_impl.h).
#include "kernels.h"
#include "prof.h"

#define REAL float
#define KFN(name) mm_##name
#define MM_GEMM cblas_sgemm
#define MM_KPROF(name) MM_PROF_SCOPE(name)
#include "kernels_impl.h"
