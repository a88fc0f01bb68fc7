// The float instantiation of the kernels (see kernels_impl.h).
#include "kernels.h"

#define REAL float
#define KFN(name) mm_##name
#define MM_GEMM cblas_sgemm
#include "kernels_impl.h"
