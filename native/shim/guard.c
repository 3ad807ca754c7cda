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

volatile int hw__guard_on;
static uint64_t hw__floor;          /* bytes; 0 = derive from config at next refresh */
static int hw__floor_from_watcher;  /* the watcher's floor wins over ours */
static volatile uint64_t hw__budget;
static pthread_mutex_t hw__guard_lock = PTHREAD_MUTEX_INITIALIZER;
static volatile int hw__oom_once;

static uint64_t hw__config_floor(const hw_readings_t *r) {
  uint64_t total = r->limit ? r->limit : r->host_total;
  uint64_t pct = total / 10000 * hw__config.floor_pct_x100;
  return pct > hw__config.min_floor ? pct : hw__config.min_floor;
}

void hw__guard_init(void) {
  hw__guard_on = hw__config.oom_detection;
  hw__budget = 0; /* first allocation refreshes */
}

void hw__guard_set_floor(uint64_t floor) {
  pthread_mutex_lock(&hw__guard_lock);
  hw__floor = floor;
  hw__floor_from_watcher = 1;
  hw__guard_on = floor > 0 && hw__config.oom_detection;
  hw__budget = 0;
  if (hw__state.hdr) hw__state.hdr->floor_bytes = floor;
  pthread_mutex_unlock(&hw__guard_lock);
}

int hw__guard_check(size_t size) {
  uint64_t b = hw__budget;
  if (HW_LIKELY(size < b)) {
    __atomic_fetch_sub(&hw__budget, size, __ATOMIC_RELAXED);
    return 0;
  }
  int saved_errno = errno; /* reading files must not show through malloc */
  pthread_mutex_lock(&hw__guard_lock);
  hw_readings_t r;
  hw__read_memory(&r);
  hw__publish_readings(&r);
  if (!hw__floor_from_watcher) hw__floor = hw__config_floor(&r);
  if (hw__state.hdr) hw__state.hdr->floor_bytes = hw__floor;
  int reason = 0;
  if (!r.available_known) reason = 0; /* nothing to judge by: never guess an OOM */
  /* Active page cache counts as available here: the kernel reclaims it
   * before an OOM kill (a job streaming files must not be stopped). */
  else if (r.available + r.active_file < hw__floor + size) reason = 1;
  else if (r.swap > 0 && r.swap > r.available) reason = 2;
  if (reason && hw__guard_on) {
    pthread_mutex_unlock(&hw__guard_lock);
    hw__debug("guard: available %llu, floor %llu, allocation %zu",
              (unsigned long long)r.available, (unsigned long long)hw__floor, size);
    hw__budget = 0; /* judge the next allocation afresh */
    errno = saved_errno;
    return reason;
  }
  uint64_t headroom = !r.available_known ? (64ull << 30)
                     : r.available + r.active_file > hw__floor + size
                         ? r.available + r.active_file - hw__floor - size : 0;
  uint64_t nb = headroom / 100;
  hw__budget = nb > HW_MIN_BUDGET ? nb : HW_MIN_BUDGET;
  pthread_mutex_unlock(&hw__guard_lock);
  errno = saved_errno;
  return 0;
}

/* ---- failed allocations: recorded, handed back, reported ---- */

static volatile uint64_t hw__failed_count;
static volatile uint64_t hw__failed_bytes;
static volatile uint32_t hw__failed_node = HW_NODE_NONE;

void hw__failed_allocation(size_t size, uint32_t node) {
  int saved_errno = errno;
  hw__failed_bytes = size;
  hw__failed_node = node;
  uint64_t n = __atomic_add_fetch(&hw__failed_count, 1, __ATOMIC_RELEASE);
  if (hw__state.hdr) {
    hw__state.hdr->failed_allocations = n;
    hw__state.hdr->failed_bytes = size;
  }
  hw__debug("allocation of %zu bytes failed; the program gets NULL (MemoryError)", size);
  errno = saved_errno;
}

uint64_t hw__failed_last(size_t *bytes, uint32_t *node) {
  uint64_t n = __atomic_load_n(&hw__failed_count, __ATOMIC_ACQUIRE);
  if (bytes) *bytes = (size_t)hw__failed_bytes;
  if (node) *node = hw__failed_node;
  return n;
}

void hw__oom_exit(int reason, size_t bytes, uint32_t node) {
  if (__atomic_exchange_n(&hw__oom_once, 1, __ATOMIC_ACQ_REL)) {
    /* Another thread is already writing the OOM dump; it will exit for us. */
    for (;;) pause();
  }
  hw__tracking = 0;
  if (hw__state.hdr) hw__state.hdr->oom_reason = (uint64_t)reason;
  hw__container_oom_claim(reason); /* other processes: container.c */
  char path[640] = "";
  static const char *names[] = {"", "low-available", "swap", "failed-allocation"};
  int rc = hw__dump(NULL, "oom", reason, HW_SNAP_PEAK | HW_SNAP_CURRENT, bytes, node, path,
                    sizeof path);
  if (rc == 0)
    hw__log("out of memory (%s): dump written to %s; exiting with code 53", names[reason], path);
  else
    hw__log("out of memory (%s): could not write the dump in %s (%s); exiting with code 53",
            names[reason], hw__config.run_dir, strerror(-rc));
  hw__termlog_write(names[reason], rc == 0 ? path : NULL);
  hw__container_oom_after_dump(); /* the others are stopped (may not return) */
  if (hw__state.hdr) hw__state.hdr->exit_status = 0x100 | 53;
  hw__container_leave(1, 53);
  _exit(53);
}
