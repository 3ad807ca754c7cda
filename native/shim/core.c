/*
 * The policy behind every hook (core.h): the guard's verdict before an
 * allocation, the stack it is charged to, what is recorded after, and the
 * OOM exit when the guard objected to an allocation that was granted. The
 * malloc/free fast path is inline in core.h (one call less per allocation
 * than out of line: measured); the rest is here.
 */
#define _GNU_SOURCE
#include <sys/syscall.h>
#include <unistd.h>

#include "core.h"
#include "lean.h"

/* A refused or tripping allocation is reported with its real stack, sampled or not. */
static inline uint32_t hw__named(hw_thread_t *t, uint32_t node) {
  return node == HW_NODE_UNSAMPLED ? hw__current_node(t) : node;
}

/* The guard objected, yet the allocation succeeded: the memory is there now
 * and would kill the container once used. Stop before the program uses it. */
__attribute__((noreturn)) void hw__core_tripped(hw_alloc_op *op) {
  hw__oom_exit(op->trip, op->size, hw__named(op->t, op->node));
}

void hw__core_realloc_begin(hw_alloc_op *op, hw_thread_t *t, void *old, size_t size) {
  hw__core_alloc_begin(op, t, size);
  op->is_realloc = 1;
  op->old = old;
  if (!old) op->had_old = 0;
  else if (HW_UNLIKELY(hw__sample_rate != 0))
    op->had_old = hw__track_take_sampling(old, &op->old_size, &op->old_node);
  else op->had_old = hw__track_take(old, &op->old_size, &op->old_node);
}

void hw__lean_moved(int64_t cur) {
  hw__total_moved(hw__state.hdr, cur);
  hw__bands_sync();
}

void *hw__lean_alloc_rest(void *p, size_t size, int counted, int64_t cur) {
  hw_thread_t *t = &hw__thread;
  if (counted) {
    hw__lean_moved(cur);
    t->guard = 0;
    return p;
  }
  hw_alloc_op op = {.t = t, .size = size, .node = HW_NODE_UNSAMPLED};
  if (!p) hw__core_alloc_refused(&op);
  else hw__core_alloc_end(&op, p); /* no trip: the guard's budget held it */
  return p;
}

void hw__core_alloc_refused(hw_alloc_op *op) {
  /* Nothing asked, nothing refused (realloc(p, 0) freed p and said NULL). */
  if (op->size) {
    /* Refused: a realloc's old block is still the program's, as it was. */
    if (op->had_old == 2) hw__track_unsampled(op->old, op->old_size);
    else if (op->had_old) hw__track_alloc(op->old, op->old_size, op->old_node);
    hw__failed_allocation(op->size, hw__named(op->t, op->node));
  }
  op->t->guard = 0;
}

/* Anonymous mmaps: every range is recorded with its exact length (the
 * totals, the guard, partial munmaps); under sampling only the stack walk is
 * sampled, as for a heap block of that many bytes (its page-rounded length):
 * CPython 3.11+ maps a data-stack chunk at every deep descent, and walking
 * each one's full stack was the largest cost at depth. */
static void hw__map_begin_sized(hw_alloc_op *op, hw_thread_t *t, size_t judged, size_t mapped) {
  t->guard = 1;
  op->t = t;
  op->size = judged;
  op->is_realloc = op->had_old = 0;
  op->old = NULL;
  op->trip = hw__core_verdict(judged);
  size_t pages = (mapped + HW_PAGE - 1) & ~(size_t)(HW_PAGE - 1);
  if (HW_UNLIKELY(hw__sample_rate != 0) && !hw__sample_take(pages)) op->node = HW_NODE_UNSAMPLED;
  else op->node = hw__current_node(t);
}

void hw__core_map_begin(hw_alloc_op *op, hw_thread_t *t, size_t len) {
  hw__map_begin_sized(op, t, len, len);
}

void hw__core_map_end(hw_alloc_op *op, void *p, size_t len, int fixed) {
  if (HW_UNLIKELY(op->trip)) {
    if (!fixed) syscall(SYS_munmap, p, len); /* a fixed map replaced one: leave it */
    hw__core_tripped(op);
  }
  hw__track_mmap(p, len, op->node);
  op->t->guard = 0;
}

void hw__core_remap_begin(hw_alloc_op *op, hw_thread_t *t, size_t old_len, size_t new_len) {
  /* The guard judges the growth; the new range is sampled by its length. */
  hw__map_begin_sized(op, t, new_len > old_len ? new_len - old_len : 0, new_len);
}

void hw__core_remap_end(hw_alloc_op *op, void *old, size_t old_len, void *p, size_t new_len) {
  if (HW_UNLIKELY(op->trip)) hw__core_tripped(op);
  /* Charged like realloc: the old range goes, the new one belongs to the
   * code that resized it. Untracked (file-backed) ranges stay untracked. */
  hw__track_munmap(old, old_len);
  hw__track_mmap(p, new_len, op->node);
  op->t->guard = 0;
}

void hw__core_unmap(hw_thread_t *t, void *p, size_t len) {
  if (!hw__core_tracked(t)) return;
  t->guard = 1;
  hw__track_munmap(p, len);
  t->guard = 0;
}

uint32_t hw__core_spawn_node(hw_thread_t *t) {
  return HW_RELAXED(hw__tracking) ? hw__current_node(t) : 0;
}
