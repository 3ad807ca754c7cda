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
/* Bytes that may still be allocated before the readings are looked at again.
 * Only ever taken with a compare-and-swap that cannot go below zero (a plain
 * check-then-subtract lets two threads both pass and wrap it to ~2^64, which
 * silently disabled the guard). Relaxed: it is a counter, it publishes nothing. */
static _Atomic uint64_t hw__budget;
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

void hw__guard_init(void) {
  HW_SET_RELAXED(hw__guard_on, hw__config.oom_detection);
  HW_SET_RELAXED(hw__budget, 0); /* first allocation refreshes */
}

void hw__guard_set_floor(uint64_t floor) {
  pthread_mutex_lock(&hw__guard_lock);
  hw__floor = floor;
  hw__floor_from_watcher = 1;
  HW_SET_RELAXED(hw__guard_on, floor > 0 && hw__config.oom_detection);
  HW_SET_RELAXED(hw__budget, 0);
  if (hw__state.hdr) HW_HDR_PUT(hw__state.hdr->floor_bytes, floor);
  pthread_mutex_unlock(&hw__guard_lock);
}

/* Takes `size` from the budget if it holds more; 0 when it does not. */
static inline int hw__budget_take(size_t size) {
  uint64_t b = HW_RELAXED(hw__budget);
  while (HW_LIKELY(size < b)) {
    if (HW_LIKELY(atomic_compare_exchange_weak_explicit(
            &hw__budget, &b, b - size, memory_order_relaxed, memory_order_relaxed)))
      return 1;
  }
  return 0;
}

uint64_t hw__guard_budget(void) { return HW_RELAXED(hw__budget); }

int hw__guard_check(size_t size) {
  if (HW_LIKELY(hw__budget_take(size))) return 0;
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
    HW_SET_RELAXED(hw__budget, 0); /* judge the next allocation afresh */
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
  HW_SET_RELAXED(hw__budget, nb > HW_MIN_BUDGET ? nb : HW_MIN_BUDGET);
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
