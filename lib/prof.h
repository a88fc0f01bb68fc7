// Time spent per kernel, for mm-train --profile: each kernel of lib/kernels.h (the float ones)
// adds its wall time and a call to its entry while profiling is on. A kernel called from
// inside another is counted in the outer one only. Off, a kernel pays one branch.
// Not thread-safe: kernels are entered from one thread (they spread their work themselves).
#ifndef MM_PROF_H
#define MM_PROF_H

#include <stdint.h>

#define MM_PROF_KERNELS(X)                                                                   \
	X(matmul_forward) X(matmul_backward) X(attention_forward) X(attention_backward)       \
	X(rmsnorm_forward) X(rmsnorm_backward) X(rope_table) X(rope_forward) X(rope_backward) \
	X(swiglu_forward) X(swiglu_backward) X(crossentropy_forward) X(crossentropy_backward) \
	X(vmse_forward) X(vmse_backward) X(embedding_forward) X(embedding_backward)           \
	X(timestep_forward) X(residual_forward) X(residual_backward) X(residual_rmsnorm_forward) \
	X(attention_cached)

enum {
#define MM_X(name) MM_PROF_##name,
	MM_PROF_KERNELS(MM_X)
#undef MM_X
	MM_PROF_N
};

typedef struct mm_prof {
	int on, depth;
	double sec[MM_PROF_N];
	uint64_t calls[MM_PROF_N];
} mm_prof;
extern mm_prof mm_prof_state;

const char *mm_prof_name(int k);
// Seconds on the monotonic clock: every timing of mm (these timers, progress lines, rates).
double mm_now(void);

typedef struct mm_prof_scope {
	int id;
	double t0;
} mm_prof_scope;

static inline mm_prof_scope mm_prof_enter(int id)
{
	mm_prof_scope s = {-1, 0};
	if (mm_prof_state.on && mm_prof_state.depth++ == 0)
		s.id = id, s.t0 = mm_now();
	else if (mm_prof_state.on)
		s.id = -2; // nested: only the depth to undo
	return s;
}

static inline void mm_prof_leave(mm_prof_scope *s)
{
	if (s->id == -1)
		return;
	mm_prof_state.depth--;
	if (s->id >= 0) {
		mm_prof_state.sec[s->id] += mm_now() - s->t0;
		mm_prof_state.calls[s->id]++;
	}
}

// At the top of a kernel's body: times the rest of the scope. MM_PROF_SCOPE_ID takes the id
// itself, for callers whose kernel names are macros (lib/typed_names_priv.h).
#define MM_PROF_SCOPE(name) MM_PROF_SCOPE_ID(MM_PROF_##name)
#define MM_PROF_SCOPE_ID(id) \
	mm_prof_scope mm_prof_scope_ __attribute__((cleanup(mm_prof_leave))) = mm_prof_enter(id)

#endif
