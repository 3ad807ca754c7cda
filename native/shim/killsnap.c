/*
 * What this process held when the kernel's OOM killer struck another one
 * (docs/protocol.md "State file", `kill` area; docs/multiprocess.md "The
 * kernel's OOM killer"). A process that outlives the kill and then ends by
 * itself frees its memory first (its own cleanup, the interpreter's
 * teardown), so its `live` area at its end is not what it held when the
 * container ran out; this copy is.
 *
 * The cgroup's `oom_kill` count (v2 memory.events, v1 memory.oom_control) is
 * read on the control thread's tick and once more on the way out (the
 * bootstrap's atexit, before the interpreter's teardown, and os._exit); the
 * first time it is above the value this process first read, `live` is copied
 * into the `kill` area and `killMs` published. v1 counts a kill only in the
 * victim's own cgroup, v2 in every ancestor too: both this process's own
 * cgroup and the limiting one are read (one file when they are the same).
 *
 * Bounded: two small files read through hw__read_whole (no link followed,
 * regular files only, a fixed buffer, no fd kept), one copy of `node_count`
 * bytes counters; the tracker lock is only tried (as hw__container_leave
 * does): without it the copy is still every counter whole. Nothing of the
 * program's memory is allocated.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "hw.h"

/* The process the baseline belongs to: a forked child inherits our statics
 * and takes its own baseline at its first check. */
static _Atomic uint64_t hw__ks_pid;
static _Atomic uint64_t hw__ks_base;
static _Atomic int hw__ks_claimed;

/* The `oom_kill` count in one cgroup directory; 0 when it cannot be read. */
static int hw__ks_read(const char *dir, int version, uint64_t *out) {
  char path[640], buf[512];
  int n = snprintf(path, sizeof path, "%s/%s", dir,
                   version == 2 ? "memory.events" : "memory.oom_control");
  if (n <= 0 || (size_t)n >= sizeof path) return 0;
  if (hw__read_cgroup_file(path, buf, sizeof buf) <= 0) return 0;
  return hw__stat_value(buf, "oom_kill", out) == 0;
}

/* The kills counted in our own and the limiting cgroup (a sum: it only has
 * to move when either does); 0 when neither can be read. */
static int hw__ks_count(uint64_t *out) {
  const char *own, *limiting;
  int version;
  if (!hw__memory_cgroup_dirs(&own, &limiting, &version)) return 0;
  uint64_t a = 0, b = 0;
  int got = hw__ks_read(own, version, &a);
  if (strcmp(own, limiting) != 0) got |= hw__ks_read(limiting, version, &b);
  *out = a + b;
  return got;
}

static void hw__ks_copy(hw_state_header *h) {
  int locked = hw__lock_try_briefly();
  uint64_t nodes = h->node_count;
  if (nodes > h->node_capacity) nodes = h->node_capacity;
  /* Each counter is an aligned 8-byte store: read whole even without the lock.
   * The area is all zeros (a fresh file, copied once): only the counters
   * that hold bytes are written, so the pages of the rest stay holes (a
   * page fault of a new file page costs far more than the copy). */
  for (uint64_t i = 0; i < nodes; i++) {
    int64_t v = __atomic_load_n(&hw__state.live[i], __ATOMIC_RELAXED);
    if (v) hw__state.kill[i] = v;
  }
  h->kill_bytes = h->current_bytes;
  if (locked) hw__lock_give();
  __atomic_store_n(&h->kill_ms, hw__now_ms(), __ATOMIC_RELEASE);
}

void hw__killsnap_check(void) {
  hw_state_header *h = hw__state.hdr;
  if (!h || !hw__state.kill || HW_RELAXED(hw__in_child)) return;
  if (__atomic_load_n(&h->kill_ms, __ATOMIC_ACQUIRE)) return; /* taken: the first kill only */
  uint64_t n;
  if (!hw__ks_count(&n)) return;
  if (atomic_load_explicit(&hw__ks_pid, memory_order_acquire) != h->pid) {
    atomic_store_explicit(&hw__ks_base, n, memory_order_relaxed);
    atomic_store_explicit(&hw__ks_claimed, 0, memory_order_relaxed);
    atomic_store_explicit(&hw__ks_pid, h->pid, memory_order_release);
    return;
  }
  uint64_t base = atomic_load_explicit(&hw__ks_base, memory_order_relaxed);
  if (n < base) { /* moved to another cgroup: its count is the new baseline */
    atomic_store_explicit(&hw__ks_base, n, memory_order_relaxed);
    return;
  }
  if (n == base) return;
  int expected = 0; /* the control thread and an exiting thread may both see it */
  if (!atomic_compare_exchange_strong_explicit(&hw__ks_claimed, &expected, 1, memory_order_acq_rel,
                                               memory_order_relaxed))
    return;
  hw__ks_copy(h);
}
