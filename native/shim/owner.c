/*
 * The owner thread's bookkeeping without locked instructions (hw.h,
 * "owner"). Most Python programs allocate from one thread. That thread, the
 * owner (the first tracked thread that allocates after tracking starts, and
 * again in a fork child), runs hw__lock's sections and sampling mode's
 * lock-free updates (heap-map bits, current_bytes, the peak) with plain loads
 * and stores while no other thread writes the same state; every other thread
 * that wants to write announces itself first and waits until the owner is out.
 *
 * The asymmetric fence (Dekker's handshake with one side made free):
 *
 *   owner                              any other writer (a "visitor")
 *   busy = 1          (relaxed)        shared += 1           (seq_cst RMW)
 *   compiler barrier                   membarrier(PRIVATE_EXPEDITED)
 *   if (shared == 0)  (acquire)        while (busy) wait     (acquire)
 *     plain section                    real lock / atomics
 *   busy = 0          (release)        ... shared -= 1       (release)
 *
 * Why it is enough. The CPU may let the owner's load of `shared` pass its
 * store of `busy` (the store buffer): that is the reordering Dekker's
 * algorithm cannot survive, and the owner does not pay a fence to stop it.
 * membarrier() instead makes every running thread of the process execute a
 * full memory barrier (an IPI; a thread not running passed one at its
 * context switch) before it returns. Take the point where the owner's
 * barrier falls: if the owner's load of `shared` comes before it in the
 * owner's program order, so does its store `busy = 1`, which the barrier made
 * visible before membarrier() returned: the visitor reads busy == 1 and
 * waits for the release store busy = 0, which publishes every plain store of
 * the section. If the load comes after it, it comes after the visitor's
 * increment (completed before membarrier() was called): the owner reads
 * shared != 0 and takes the real path. Either way the two never write at
 * once. In the other direction (a visitor leaves, the owner goes plain
 * again) the owner's acquire load of shared == 0 reads the visitor's release
 * decrement, made after its last write: ordinary acquire/release.
 *
 * Who pays. Visitors that come and go (the control thread's dump, the
 * container publication, a kill snapshot, fork's prepare handler) add 1 and
 * take it back: one membarrier per visit, rare. A non-owner thread that
 * allocates would pay one per operation, so it makes sharing permanent
 * instead (HW_OWNER_PERM, then HW_OWNER_DONE once the owner was seen out):
 * from then on the owner takes today's atomics and lock, and nobody calls
 * membarrier again. Without membarrier (old kernel, a seccomp profile,
 * registration refused) or with HIGHWATER_OWNER_FAST=0, sharing is
 * permanent from the start: the shim behaves as before this existed.
 *
 * The owner's plain section never blocks and runs with its thread's guard
 * set (a signal handler's malloc on that thread is not tracked), so a
 * visitor's wait always ends: it spins briefly, then yields.
 */
#define _GNU_SOURCE
#include <linux/membarrier.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "hw.h"

/* Shared from the start: nothing goes plain until hw__owner_start says so. */
_Atomic uint32_t hw__owner_shared = HW_OWNER_PERM | HW_OWNER_DONE;
_Atomic uint32_t hw__owner_busy;
HW_TLS int hw__owner_self;
HW_TLS int hw__owner_elided;
HW_TLS int hw__owner_visiting;
static _Atomic int hw__owner_on;    /* membarrier registered and the knob allows it */
static _Atomic int hw__owner_taken; /* a thread claimed ownership */

static int hw__membarrier(int cmd) { return (int)syscall(SYS_membarrier, cmd, 0, 0); }

/* HIGHWATER_OWNER_FAST=0: the kill switch (docs/configuration.md). */
static int hw__owner_allowed(void) {
  const char *v = getenv("HIGHWATER_OWNER_FAST");
  return !(v && strcmp(v, "0") == 0);
}

void hw__owner_start(void) {
  if (HW_RELAXED(hw__owner_on) || !hw__owner_allowed()) return;
  int cmds = hw__membarrier(MEMBARRIER_CMD_QUERY);
  if (cmds < 0 || !(cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) ||
      hw__membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) != 0) {
    hw__debug("membarrier unavailable: every thread takes the lock and the atomics");
    return;
  }
  /* Under the real lock (DONE is set: no membarrier for it): a visitor that
   * saw DONE before this and takes the lock after it re-reads `shared` with
   * the lock held and announces itself then (hw__lock_take). */
  hw__lock_take();
  HW_SET_RELAXED(hw__owner_on, 1);
  atomic_fetch_and_explicit(&hw__owner_shared, ~(HW_OWNER_PERM | HW_OWNER_DONE),
                            memory_order_seq_cst);
  hw__lock_give();
}

static inline void hw__cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ volatile("yield");
#endif
}

/* The owner was seen outside its section, after `shared` was raised. */
static void hw__owner_fence_and_wait(void) {
  static _Atomic int warned;
  if (hw__membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0 &&
      !atomic_exchange_explicit(&warned, 1, memory_order_relaxed))
    hw__log("membarrier failed after registration; the owner's path may race");
  for (unsigned i = 0; atomic_load_explicit(&hw__owner_busy, memory_order_acquire); i++) {
    if (i < 64) hw__cpu_relax();
    else if (i < 1000) sched_yield();
    else nanosleep(&(struct timespec){0, 50000}, NULL);
  }
}

/* A non-owner thread writes: shared for good (the owner's section ends and never comes back). */
static void hw__owner_share_for_good(void) {
  uint32_t old = atomic_fetch_or_explicit(&hw__owner_shared, HW_OWNER_PERM, memory_order_seq_cst);
  if (old & HW_OWNER_DONE) return;
  hw__owner_fence_and_wait();
  atomic_fetch_or_explicit(&hw__owner_shared, HW_OWNER_DONE, memory_order_release);
}

void hw__owner_claim(void) {
  if (!HW_RELAXED(hw__owner_on)) {
    hw__owner_self = -1;
    return;
  }
  int none = 0;
  if (atomic_compare_exchange_strong_explicit(&hw__owner_taken, &none, 1, memory_order_relaxed,
                                              memory_order_relaxed)) {
    hw__owner_self = 1;
    return;
  }
  hw__owner_self = -1;
  hw__owner_share_for_good();
}

void hw__owner_visit(void) {
  uint32_t old = atomic_fetch_add_explicit(&hw__owner_shared, 1, memory_order_seq_cst);
  hw__owner_visiting = 1;
  if (!(old & HW_OWNER_DONE)) hw__owner_fence_and_wait();
}

int hw__owner_visit_try(void) {
  uint32_t old = atomic_fetch_add_explicit(&hw__owner_shared, 1, memory_order_seq_cst);
  if (!(old & HW_OWNER_DONE)) {
    hw__membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED);
    if (atomic_load_explicit(&hw__owner_busy, memory_order_acquire)) {
      atomic_fetch_sub_explicit(&hw__owner_shared, 1, memory_order_release);
      return 0;
    }
  }
  hw__owner_visiting = 1;
  return 1;
}

void hw__owner_unvisit(void) {
  hw__owner_visiting = 0;
  atomic_fetch_sub_explicit(&hw__owner_shared, 1, memory_order_release);
}

/* Fork child handler (plain stores; the only thread left): no owner yet,
 * shared until hw__owner_start registers the child (membarrier's
 * registration belongs to the address space, and this is a new one). */
void hw__owner_reset_in_child(void) {
  HW_SET_RELAXED(hw__owner_on, 0);
  HW_SET_RELAXED(hw__owner_taken, 0);
  HW_SET_RELAXED(hw__owner_busy, 0);
  HW_SET_RELAXED(hw__owner_shared, HW_OWNER_PERM | HW_OWNER_DONE);
  hw__owner_self = 0;
  hw__owner_elided = 0;
  hw__owner_visiting = 0;
}

int hw__owner_fast(void) {
  return HW_RELAXED(hw__owner_on) && !(HW_RELAXED(hw__owner_shared) & HW_OWNER_PERM);
}
