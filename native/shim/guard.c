/*
 * The synchronous guard. Polling loses the race against a fast fill, so the
 * shim itself keeps a byte budget: allocations may go on without a look at
 * the real readings until they add up to 1 % of what was left above the
 * floor (Fil's rule); then the readings are refreshed. An allocation that
 * would take available memory under the floor is judged here and settled by
 * the hook: it asks the real allocator first. Refused (NULL) means the
 * program would have had its MemoryError anyway: it gets it, and the shim
 * only records the failed allocation. Granted means the memory exists now
 * and would kill the container once used: the dump is written and the
 * process exits 53.
 *
 * A failed allocation is the program's to handle. Only when it ends the
 * program (an unhandled MemoryError, seen by the bootstrap at exit) does
 * hw_oom_unhandled turn it into the OOM dump and exit 53.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "hw.h"

#define HW_MIN_BUDGET (256u << 10)

/* Read by every allocation (relaxed: a flag; the floor and the readings it
 * guards are read under hw__guard_lock). */
_Atomic int hw__guard_on;
static uint64_t hw__floor; /* bytes; 0 = derive from config at next refresh; hw__guard_lock */
static int hw__floor_from_watcher; /* the watcher's floor wins over ours; hw__guard_lock */
/* Bytes that may still be allocated before the readings are looked at again,
 * not yet handed to a thread. Only ever taken with a compare-and-swap that
 * cannot go below zero (a plain check-then-subtract lets two threads both
 * pass and wrap it to ~2^64, which silently disabled the guard). Relaxed: it
 * is a counter, it publishes nothing.
 *
 * A thread does not take from it at every allocation (a locked instruction
 * per malloc, shared by every thread): it takes a chunk into its own
 * hw_thread_t and spends that with plain arithmetic (hw__guard_check). Every
 * byte a thread spends came out of this counter, so what all threads can
 * allocate between two refreshes stays within what the refresh set. A
 * refresh, a new floor or a trip starts a new epoch: chunks taken before it
 * are worth nothing after it (a thread's next allocation sees the epoch
 * moved and takes afresh), so a new floor or a trip judges every thread's
 * next allocation. */
static _Atomic uint64_t hw__budget;
/* Bumped with release after hw__budget is set anew (see hw__budget_reset). */
_Atomic uint32_t hw__budget_epoch;
static pthread_mutex_t hw__guard_lock = PTHREAD_MUTEX_INITIALIZER;
/* The first thread to reach the OOM exit writes the dump; acq_rel so the
 * others see it taken. */
static _Atomic int hw__oom_once;

/* The floor from HIGHWATER_MIN_AVAILABLE: its percent is of the memory the
 * process can really have, the effective limit: the cgroup limit or the
 * host's memory, whichever is smaller (a limit above the host's memory is
 * never reached). The shim owns this number; the watcher reads it from the
 * state header (docs/protocol.md "The floor"). */
static uint64_t hw__config_floor(const hw_readings_t *r) {
  uint64_t total = r->limit && r->host_total ? (r->limit < r->host_total ? r->limit : r->host_total)
                   : r->limit                ? r->limit
                                             : r->host_total;
  uint64_t pct = total / 10000 * hw__config.floor_pct_x100;
  return pct > hw__config.min_floor ? pct : hw__config.min_floor;
}

/* A new budget: the pool first, then the epoch. A thread that read the old
 * epoch and took from the new pool labels its chunk with the old epoch and
 * throws it away at its next check (bytes lost, never bytes gained); one
 * that reads the new epoch takes from the new pool. The other order would
 * let a chunk taken from the old pool pass for the new epoch. */
static void hw__budget_reset(uint64_t bytes) {
  HW_SET_RELAXED(hw__budget, bytes);
  atomic_fetch_add_explicit(&hw__budget_epoch, 1, memory_order_release);
}

void hw__guard_init(void) {
  HW_SET_RELAXED(hw__guard_on, hw__config.oom_detection);
  hw__budget_reset(0); /* first allocation refreshes; a fork child's inherited chunks are void */
}

/* The fork child handler. Any thread of the parent may have held the lock
 * at the fork: a guard reading (hw__guard_refresh reads several files with
 * it held, on whatever thread's allocation ran out of budget) or the
 * control thread's `floor`. The child, the forking thread alone, inherited
 * it held by a thread it does not have, and its first reading (its very
 * first allocation: hw__child_begin voids the budget) waited for ever in
 * pthread_mutex_lock, inside CPython's PyOS_AfterFork_Child
 * (test/multiprocess/fork-locks.test.ts). What the lock guards is a floor
 * (one aligned word) and the budget, which hw__guard_init sets anew. */
void hw__guard_reset_in_child(void) { pthread_mutex_init(&hw__guard_lock, NULL); }

void hw__guard_set_floor(uint64_t floor) {
  pthread_mutex_lock(&hw__guard_lock);
  hw__floor = floor;
  hw__floor_from_watcher = 1;
  HW_SET_RELAXED(hw__guard_on, floor > 0 && hw__config.oom_detection);
  hw__budget_reset(0); /* every thread's next allocation is judged by it */
  if (hw__state.hdr) HW_HDR_PUT(hw__state.hdr->floor_bytes, floor);
  pthread_mutex_unlock(&hw__guard_lock);
}

/* A thread's chunk: an eighth of what the pool holds, at most 64 KiB, and
 * always more than the allocation. Why these: a chunk a thread holds is
 * budget no other thread can spend, so the refresh comes early (never late)
 * by at most the threads' leftovers; 64 KiB is 1/4 of the smallest budget
 * (HW_MIN_BUDGET) and 1/160 of a 10 MiB one (1 GiB of headroom), and one
 * take per 64 KiB is one locked instruction per ~100 small mallocs instead
 * of one per malloc. The eighth keeps the last chunks of a nearly spent
 * pool small, so that a few threads cannot strand all of it: one thread
 * alone spends every byte of every chunk it takes (it refills only when
 * its chunk cannot hold the allocation) and so loses nothing. */
#define HW_CHUNK_MAX (64u << 10)

/* Takes a chunk for `size` from the pool into the thread; 0 when the pool
 * cannot hold the allocation. The epoch is read before the take: a refresh
 * between the two voids the chunk (see hw__budget_reset). */
static int hw__budget_refill(hw_thread_t *t, size_t size) {
  uint32_t epoch = atomic_load_explicit(&hw__budget_epoch, memory_order_acquire);
  uint64_t b = HW_RELAXED(hw__budget);
  while (HW_LIKELY(size < b)) {
    uint64_t chunk = b / 8 < HW_CHUNK_MAX ? b / 8 : HW_CHUNK_MAX;
    if (chunk <= size) chunk = size + 1 < b ? size + 1 : b;
    if (HW_LIKELY(atomic_compare_exchange_weak_explicit(
            &hw__budget, &b, b - chunk, memory_order_relaxed, memory_order_relaxed))) {
      t->budget_left = chunk - size;
      t->budget_epoch = epoch;
      return 1;
    }
  }
  t->budget_left = 0;
  return 0;
}

/* What this thread can still allocate before a reading: the pool and its
 * own chunk while the chunk is of this epoch (native/test/core_test.c). */
uint64_t hw__guard_budget(void) {
  hw_thread_t *t = &hw__thread;
  uint64_t own = t->budget_epoch == HW_RELAXED(hw__budget_epoch) ? t->budget_left : 0;
  return HW_RELAXED(hw__budget) + own;
}

/* Twice the readings hw__guard_check took, odd while one is setting its new
 * budget: a test that sees the same even value before and after an
 * allocation knows which budget that allocation was charged to. */
static _Atomic uint64_t hw__guard_seq_;
uint64_t hw__guard_seq(void) { return atomic_load(&hw__guard_seq_); }

static int hw__guard_refresh(size_t size);

int hw__guard_check(size_t size) {
  hw_thread_t *t = &hw__thread;
  if (HW_LIKELY(hw__guard_spend(t, size))) return 0;
  if (HW_LIKELY(hw__budget_refill(t, size))) return 0;
  return hw__guard_refresh(size);
}

/* Out of line: the common case above then needs no stack frame. */
__attribute__((noinline)) static int hw__guard_refresh(size_t size) {
  int saved_errno = errno; /* reading files must not show through malloc */
  pthread_mutex_lock(&hw__guard_lock);
  hw_readings_t r;
  hw__read_memory(&r);
  hw__publish_readings(&r);
  if (!hw__floor_from_watcher) hw__floor = hw__config_floor(&r);
  if (hw__state.hdr) HW_HDR_PUT(hw__state.hdr->floor_bytes, hw__floor);
  int reason = 0;
  if (!r.available_known) reason = 0; /* nothing to judge by: never guess an OOM */
  /* Active page cache counts as available here: the kernel reclaims it
   * before an OOM kill (a job streaming files must not be stopped). */
  else if (r.available + r.active_file < hw__floor + size) reason = HW_OOM_LOW_AVAILABLE;
  else if (r.swap > 0 && r.swap > r.available) reason = HW_OOM_SWAP;
  if (reason && HW_RELAXED(hw__guard_on)) {
    uint64_t floor = hw__floor;
    atomic_fetch_add(&hw__guard_seq_, 1);
    hw__budget_reset(0); /* judge every thread's next allocation afresh */
    atomic_fetch_add(&hw__guard_seq_, 1);
    pthread_mutex_unlock(&hw__guard_lock);
    hw__debug("guard: available %llu, floor %llu, allocation %zu", (unsigned long long)r.available,
              (unsigned long long)floor, size);
    errno = saved_errno;
    return reason;
  }
  uint64_t headroom = !r.available_known ? (64ull << 30)
                      : r.available + r.active_file > hw__floor + size
                          ? r.available + r.active_file - hw__floor - size
                          : 0;
  uint64_t nb = headroom / 100;
  atomic_fetch_add(&hw__guard_seq_, 1);
  hw__budget_reset(nb > HW_MIN_BUDGET ? nb : HW_MIN_BUDGET);
  atomic_fetch_add(&hw__guard_seq_, 1);
  pthread_mutex_unlock(&hw__guard_lock);
  errno = saved_errno;
  return 0;
}

/* ---- failed allocations: recorded, handed back, reported ---- */

/* The count is bumped with release after the last one's size and node are
 * stored, and read with acquire before them: a reader that sees the count
 * sees that failure (or a later one), never an unset node. */
static _Atomic uint64_t hw__failed_count;
static _Atomic uint64_t hw__failed_bytes;
static _Atomic uint32_t hw__failed_node = HW_NODE_NONE;

void hw__failed_allocation(size_t size, uint32_t node) {
  int saved_errno = errno;
  HW_SET_RELAXED(hw__failed_bytes, size);
  HW_SET_RELAXED(hw__failed_node, node);
  uint64_t n = atomic_fetch_add_explicit(&hw__failed_count, 1, memory_order_release) + 1;
  if (hw__state.hdr) {
    HW_HDR_PUT(hw__state.hdr->failed_allocations, n);
    HW_HDR_PUT(hw__state.hdr->failed_bytes, (uint64_t)size);
  }
  hw__debug("allocation of %zu bytes failed; the program gets NULL (MemoryError)", size);
  errno = saved_errno;
}

uint64_t hw__failed_last(size_t *bytes, uint32_t *node) {
  uint64_t n = atomic_load_explicit(&hw__failed_count, memory_order_acquire);
  if (bytes) *bytes = (size_t)HW_RELAXED(hw__failed_bytes);
  if (node) *node = HW_RELAXED(hw__failed_node);
  return n;
}

void hw__oom_exit(int reason, size_t bytes, uint32_t node) {
  if (atomic_exchange_explicit(&hw__oom_once, 1, memory_order_acq_rel)) {
    /* Another thread is already writing the OOM dump; it will exit for us. */
    for (;;) pause();
  }
  HW_SET_RELAXED(hw__tracking, 0);
  if (hw__state.hdr) hw__state.hdr->oom_reason = (uint64_t)reason;
  hw__container_oom_claim(reason); /* other processes: container.c */
  char path[640] = "";
  static const char *names[] = {
      [HW_OOM_NONE] = "",
      [HW_OOM_LOW_AVAILABLE] = "low-available",
      [HW_OOM_SWAP] = "swap",
      [HW_OOM_FAILED_ALLOCATION] = "failed-allocation",
  };
  int rc =
      hw__dump(NULL, "oom", reason, HW_SNAP_PEAK | HW_SNAP_CURRENT, bytes, node, path, sizeof path);
  if (rc == 0)
    hw__log("out of memory (%s): dump written to %s; exiting with code 53", names[reason], path);
  else
    hw__log("out of memory (%s): could not write the dump in %s (%s); exiting with code 53",
            names[reason], hw__config.run_dir, strerror(-rc));
  hw__termlog_write(names[reason], rc == 0 ? path : NULL);
  hw__container_oom_after_dump(); /* the others are stopped (may not return) */
  if (hw__state.hdr) hw__state.hdr->exit_status = HW_EXIT_OOM_STATUS;
  hw__container_leave(1, HW_EXIT_OOM);
  _exit(HW_EXIT_OOM);
}
