/*
 * Sampling mode's lean hooks. With sampling on, nearly every heap block is
 * unsampled: it is charged to no stack, only counted, in the totals and by
 * its bit in the heap map (sampling.h). For the owner thread (owner.c) and a
 * block that the heap map and glibc's chunk header can hold, that is two
 * countdowns, a bit and two words of the state header, and these functions
 * do that and nothing else. In every other case they say so before changing
 * anything, and the hook takes the general path (core.h), which handles
 * them all; both paths count a block the same way.
 *
 * Why a second path: the general one carries an operation record, the
 * guard's verdict, the stack walk's branch and the re-entrancy guard
 * through every call, and saves registers for them. On a program that does
 * little but allocate, that generality was half of sampling mode's cost
 * (bench/README.md "The lean path"). The lean path makes no call but the
 * real allocator's and, rarely, one out of line when the total leaves the
 * timeline's or the container's band.
 */
#ifndef HW_LEAN_H
#define HW_LEAN_H

#include "core.h"

#pragma GCC visibility push(hidden) /* why: hw.h */

/* The heap map's top level when the lean path may run (sampling mode, block
 * sizes from glibc's chunk headers), else NULL. Set once before tracking
 * starts (hw__sampling_init). */
extern _Atomic(hw_hm_word *) *hw__lean_top;

/* Tracking, the lean path possible, this thread the owner and not inside our
 * own code. */
static inline __attribute__((always_inline)) int hw__lean_thread(hw_thread_t *t) {
  return HW_LIKELY(HW_RELAXED(hw__tracking)) && HW_LIKELY(hw__lean_top != NULL) && !t->guard &&
         HW_LIKELY(hw__owner_self == 1);
}

/* May an allocation of `size` take the lean path: not sampled (under the
 * rate and short of the sampler's next sample) and within the guard's
 * budget? If so its bytes are spent from both, as the general path would
 * (hw__core_alloc_begin), and the thread is marked inside the hook for the
 * real call (an arena the allocator maps for it is the allocator's, not the
 * program's). If not, nothing changed. */
static inline __attribute__((always_inline)) int hw__lean_alloc_begin(hw_thread_t *t, size_t size) {
  if (!hw__lean_thread(t)) return 0;
  /* Marked before the countdowns move: an allocation by a signal handler
   * that interrupts us is then the allocator's alone, never a lost update. */
  t->guard = 1;
  hw_sampler_t *s = &hw__sampler;
  if (HW_UNLIKELY(size >= hw__sample_rate) || HW_UNLIKELY((int64_t)size >= s->left) ||
      (HW_RELAXED(hw__guard_on) && HW_UNLIKELY(!hw__guard_spend(t, size)))) {
    t->guard = 0;
    return 0;
  }
  s->left -= (int64_t)size;
  return 1;
}

/* The heap map's word and bit for the block at `a`, or NULL when the map
 * cannot hold it (not 16-byte aligned, above 2^48, no leaf yet). */
static inline __attribute__((always_inline)) hw_hm_word *hw__lean_word(uintptr_t a, uint64_t *bit) {
  if (HW_UNLIKELY(((a & 15) | (a >> HW_HM_ADDR_BITS)) != 0)) return NULL;
  hw_hm_word *leaf =
      atomic_load_explicit(&hw__lean_top[a >> HW_HM_LEAF_SHIFT], memory_order_acquire);
  if (HW_UNLIKELY(!leaf)) return NULL;
  size_t g = (a >> 4) & (HW_HM_LEAF_WORDS * 64 - 1);
  *bit = 1ull << (g & 63);
  return &leaf[g >> 6];
}

/* The total is still inside the timeline's and the container's bands
 * (both at once, hw__bands_sync): nothing to publish. */
static inline __attribute__((always_inline)) int hw__lean_in_band(int64_t cur) {
  return HW_LIKELY(cur >= HW_RELAXED(hw__band_lo) && cur <= HW_RELAXED(hw__band_hi));
}

/* The new block `p` (the real allocator's answer, not NULL) is counted: its
 * bit set, its size added to the total and the peak. 0: the general path
 * must count it (the map cannot hold it, or another thread is in). The
 * thread is still marked inside the hook; the caller follows the band. */
static inline __attribute__((always_inline)) int hw__lean_count(void *p, int64_t *cur) {
  uint64_t bit;
  hw_state_header *h = hw__state.hdr;
  hw_hm_word *w = hw__lean_word((uintptr_t)p, &bit);
  if (HW_UNLIKELY(!w) || HW_UNLIKELY(!h) || HW_UNLIKELY(!hw__owner_enter())) return 0;
  hw__hm_update(w, bit, ~0ull, 1);
  *cur = hw__total_plain(h, (int64_t)hw__glibc_usable(p));
  hw__owner_leave();
  return 1;
}

/* A block goes, before the real free: if the map counted it, uncounted (its
 * bit cleared, its size taken off the total), and 1, the thread marked
 * inside the hook. 0, with nothing
 * changed: the general path must look (NULL, a sampled block, one the map
 * cannot hold, one from before tracking or from the bootstrap pool, none of
 * which has a bit; or another thread is in). */
static inline __attribute__((always_inline)) int hw__lean_uncount(hw_thread_t *t, void *p,
                                                                  int64_t *cur) {
  if (!hw__lean_thread(t)) return 0;
  t->guard = 1; /* as in hw__lean_alloc_begin; the caller clears it */
  uint64_t bit;
  hw_state_header *h = hw__state.hdr;
  hw_hm_word *w = hw__lean_word((uintptr_t)p, &bit);
  /* Its bit is read before the section: only this block's own allocation
   * and free write it (sampling.h, "Memory ordering"). */
  if (HW_UNLIKELY(!w) || !(atomic_load_explicit(w, memory_order_relaxed) & bit) ||
      HW_UNLIKELY(!h) || HW_UNLIKELY(!hw__owner_enter())) {
    t->guard = 0;
    return 0;
  }
  hw__hm_update(w, 0, ~bit, 1);
  *cur = hw__total_plain(h, -(int64_t)hw__glibc_usable(p));
  hw__owner_leave();
  return 1;
}

/* Out of line, for the rare cases (core.c). After a lean allocation: the
 * real allocator refused it (p NULL), or the general path must count it
 * (counted 0), or it was counted and the total left a band (counted 1:
 * hw__lean_moved). Clears the thread's mark, as hw__core_alloc_end does;
 * returns p. */
void *hw__lean_alloc_rest(void *p, size_t size, int counted, int64_t cur);
/* The total left the combined band: the timeline and the container sum
 * follow (each checks its own band), and the combined band is read anew,
 * in case it was narrower than both (a sync under way). The thread is
 * marked inside the hook. */
void hw__lean_moved(int64_t cur);
/* After a lean free's counting, when the total left the band: follows it,
 * clears the mark, then the real free. */
void hw__lean_free_moved(void *p, int64_t cur);
/* The general free (core.h), then the real one. */
void hw__free_general(void *p);

#pragma GCC visibility pop

#endif
