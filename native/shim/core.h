/*
 * The core API under the interposer. hooks.c only calls the real function
 * and forwards what happened here; every decision (is this thread tracked,
 * which stack, does the guard object, what is charged, the OOM exit) is
 * made in the core (core.c and the units it calls), which native/test/
 * core_test.c links without Python and without LD_PRELOAD.
 *
 * An allocation is a begin / end pair around the real call:
 *
 *   hw_alloc_op op;
 *   if (!hw__core_tracked(t)) return real(...);
 *   hw__core_alloc_begin(&op, t, size);   // guard verdict, stack
 *   p = real(...);
 *   if (!p) hw__core_alloc_refused(&op);  // only when refused for lack of memory
 *   else hw__core_alloc_end(&op, p);      // charged; or, if the guard objected, exit 53
 *
 * begin sets the thread's re-entrancy guard; refused/end clear it. A
 * refused call that is not for lack of memory ends with hw__core_op_done.
 */
#ifndef HW_CORE_H
#define HW_CORE_H

#include "hw.h"
#include "sampling.h"

#pragma GCC visibility push(hidden) /* why: hw.h */

typedef struct {
  hw_thread_t *t;
  size_t size;    /* bytes the guard judged and a refusal reports */
  uint32_t node;  /* the stack charged (HW_NODE_UNSAMPLED: not sampled) */
  int trip;       /* the guard's objection: 0, or the OOM rule */
  int is_realloc; /* a trip leaves the block to the program: the old one is gone */
  int had_old;    /* realloc: the old block was tracked (its size and node below);
                     2: counted by sampling mode's heap map (usable size below) */
  size_t old_size;
  uint32_t old_node;
  void *old;
} hw_alloc_op;

/* Tracking is on and this thread is not inside our own code. */
static inline int hw__core_tracked(hw_thread_t *t) {
  if (HW_LIKELY(HW_RELAXED(hw__tracking))) return !t->guard;
  /* A forked child's first allocation starts its own tracking (children.c). */
  return HW_UNLIKELY(hw__child_pending) && !t->guard && hw__child_begin();
}

/* The guard's verdict: every allocation counts, sampled or not. */
static inline int hw__core_verdict(size_t size) {
  if (!HW_RELAXED(hw__guard_on) || HW_LIKELY(hw__guard_spend(&hw__thread, size))) return 0;
  return hw__guard_check(size);
}

/* The guard objected, yet the allocation succeeded: the memory is there now
 * and would kill the container once used. Stop before the program uses it. */
__attribute__((noreturn)) void hw__core_tripped(hw_alloc_op *op);

/* With sampling on, an unsampled allocation skips the stack walk
 * (sampling.h) and gets HW_NODE_UNSAMPLED. */
static inline __attribute__((always_inline)) void
hw__core_alloc_begin(hw_alloc_op *op, hw_thread_t *t, size_t size) {
  t->guard = 1;
  op->t = t;
  op->size = size;
  op->is_realloc = 0;
  op->had_old = 0;
  op->trip = hw__core_verdict(size);
  if (HW_UNLIKELY(hw__sample_rate != 0) && !hw__sample_take(size)) op->node = HW_NODE_UNSAMPLED;
  else op->node = hw__current_node(t);
}

/* realloc: also takes the old block off the books (put back if refused). */
void hw__core_realloc_begin(hw_alloc_op *op, hw_thread_t *t, void *old, size_t size);

static inline __attribute__((always_inline)) void hw__core_alloc_end(hw_alloc_op *op, void *p) {
  if (HW_UNLIKELY(op->trip)) {
    /* realloc's old block is gone already: nothing to undo. */
    if (!op->is_realloc) hw__real_free(p);
    hw__core_tripped(op);
  }
  /* Sampling mode's unsampled block: counted lock-free (sampling.h; the
   * owner's common case never gets here: lean.h). */
  if (op->node == HW_NODE_UNSAMPLED) {
    hw__track_unsampled(p, op->size);
  } else {
    hw__track_alloc(p, op->size, op->node);
  }
  op->t->guard = 0;
}

void hw__core_alloc_refused(hw_alloc_op *op);
static inline void hw__core_op_done(hw_alloc_op *op) { op->t->guard = 0; }

/* Anonymous mmaps: the range always recorded exactly; under sampling its
 * stack is sampled like a heap block's (core.c). */
void hw__core_map_begin(hw_alloc_op *op, hw_thread_t *t, size_t len);
/* fixed: MAP_FIXED (a trip must not unmap what it replaced). */
void hw__core_map_end(hw_alloc_op *op, void *p, size_t len, int fixed);
/* mremap: the guard judges the growth; the old range goes, the new one is
 * charged to the stack that resized it. */
void hw__core_remap_begin(hw_alloc_op *op, hw_thread_t *t, size_t old_len, size_t new_len);
void hw__core_remap_end(hw_alloc_op *op, void *old, size_t old_len, void *p, size_t new_len);

/* Before the real free / munmap (another thread may get the address back at once). */
static inline __attribute__((always_inline)) void hw__core_free(hw_thread_t *t, void *p) {
  if (!hw__core_tracked(t)) return;
  t->guard = 1;
  if (HW_UNLIKELY(hw__sample_rate != 0)) {
    hw__track_free_sampling(p);
  } else {
    hw__track_free(p);
  }
  t->guard = 0;
}
void hw__core_unmap(hw_thread_t *t, void *p, size_t len);

/* The stack a new thread started here is charged to, when it has no Python
 * frame of its own; 0 when not tracking. */
uint32_t hw__core_spawn_node(hw_thread_t *t);

#pragma GCC visibility pop

#endif
