/*
 * Live allocations and the peak. Heap blocks live in blocks.h's compact
 * table (address -> size, node); anonymous mmaps in a sorted range list so that partial munmaps can
 * be split. Bytes per node are kept in the shared `live` array; the peak snapshot is copied lazily,
 * only when memory first falls after a new peak (Fil's rule), and copied before the fall is applied
 * so the state file is consistent at every moment.
 *
 * Sampling mode (sampling.h): only sampled blocks (and mmaps) are in the table and change `live`,
 * under hw__lock; an unsampled block is counted in the totals by its usable size without the table
 * or the lock (the heap map). The total then moves lock-free (an atomic add) and a new peak is
 * raised with a compare-and-swap; it marks peak_source = 1 ("live is the peak"), and the next
 * change of `live` (under the lock) freezes the snapshot first. Since `live` changes only under the
 * lock, the snapshot is `live` as it was at the peak, to within one sampled block being charged by
 * another thread at that very moment.
 */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "hw.h"
#include "sampling.h"
#include "blocks.h" /* the live-block table, inlined here */

hw_lock_t hw__lock;

/* hw__lock's slow paths (hw.h). Private futexes: the lock is never shared
 * with another process. */
void hw__lock_wait(hw_lock_t *l) {
  uint32_t c = atomic_exchange_explicit(&l->state, 2, memory_order_acquire);
  while (c != 0) {
    syscall(SYS_futex, &l->state, FUTEX_WAIT_PRIVATE, 2, NULL, NULL, 0);
    c = atomic_exchange_explicit(&l->state, 2, memory_order_acquire);
  }
}

void hw__lock_wake(hw_lock_t *l) {
  syscall(SYS_futex, &l->state, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

int hw__lock_try_briefly(void) {
  for (int i = 0; i < 100; i++) {
    if (hw__lock_try()) return 1;
    struct timespec ts = {0, 100000};
    nanosleep(&ts, NULL);
  }
  return 0;
}
/* Read by every hook (relaxed: a switch; the tables it gates are under
 * hw__lock). Turned on only after the state file is mapped, by the thread
 * that mapped it. */
_Atomic int hw__tracking;

#define HW_NODE_BITS 24
#define HW_NODE_MASK ((1u << HW_NODE_BITS) - 1)
#define HW_SIZE_MAX ((1ull << 40) - 1)

/* `charged`: the bytes the range charges to its node's stack. Its length in
 * exact mode or when its map was sampled at a size >= the rate; len / p when
 * sampled below the rate; 0 when not sampled (node HW_NODE_UNSAMPLED). The
 * totals always move by the exact length. A cut takes its share of `charged`
 * and the pieces keep the rest, so the stack gets back to 0 exactly. */
typedef struct {
  uintptr_t start;
  uint64_t len;
  uint32_t node;
  int64_t charged;
} hw_range;

/* Nodes whose live bytes changed since the last peak snapshot: copying only
 * those keeps a new peak cheap when there are many stacks (the snapshot equals
 * `live` everywhere else). Private memory, sized for the node capacity. */
static uint8_t *hw__dirty_mark;
static uint32_t *hw__dirty_list;
static size_t hw__dirty_count;
static int hw__dirty_ready = -1; /* -1 unknown, 0 unavailable (copy everything), 1 ready */

static int hw__dirty_init(void) {
  if (hw__dirty_ready >= 0) return hw__dirty_ready;
  size_t cap = hw__state.hdr->node_capacity;
  hw__dirty_mark = hw__pages_alloc(cap);
  hw__dirty_list = hw__pages_alloc(cap * sizeof *hw__dirty_list);
  hw__dirty_ready = hw__dirty_mark && hw__dirty_list;
  return hw__dirty_ready;
}

static hw_range *hw__ranges;
static size_t hw__range_cap, hw__range_used;

/* ---- bytes per node and the peak (hw__lock held) ---- */

static void hw__freeze_peak(hw_state_header *h) {
  if (hw__dirty_init() == 1) {
    for (size_t i = 0; i < hw__dirty_count; i++) {
      uint32_t n = hw__dirty_list[i];
      hw__state.snapshot[n] = hw__state.live[n];
      hw__dirty_mark[n] = 0;
    }
    hw__dirty_count = 0;
  } else {
    memcpy(hw__state.snapshot, (const void *)hw__state.live, h->node_count * 8);
  }
}

/* A new peak in sampling mode, where the total also moves without the lock. */
static void hw__raise_peak(hw_state_header *h, int64_t cur) {
  int64_t pk = HW_HDR_GET(h->peak_bytes);
  while (cur > pk) {
    if (__atomic_compare_exchange_n(&h->peak_bytes, &pk, cur, 1, __ATOMIC_RELAXED,
                                    __ATOMIC_RELAXED)) {
      if (HW_HDR_GET(h->peak_source) != 1) __atomic_store_n(&h->peak_source, 1, __ATOMIC_RELEASE);
      return;
    }
  }
}

/* Marks a node whose live bytes change (for the next freeze). */
static inline void hw__dirty(uint32_t node) {
  if (HW_LIKELY(hw__dirty_ready == 1) && !hw__dirty_mark[node]) {
    hw__dirty_mark[node] = 1;
    hw__dirty_list[hw__dirty_count++] = node;
  } else if (HW_UNLIKELY(hw__dirty_ready < 0) && hw__dirty_init() == 1) {
    hw__dirty_mark[node] = 1;
    hw__dirty_list[hw__dirty_count++] = node;
  }
}

/* Sampling mode's hw__add_split: the total also moves without the lock, so
 * it is added atomically, and any change of `live` after a new peak (not
 * only a fall: the total may have fallen already, lock-free) freezes the
 * snapshot first. */
static __attribute__((noinline)) void hw__add_split_sampling(uint32_t node, int64_t node_delta,
                                                             int64_t delta) {
  hw_state_header *h = hw__state.hdr;
  hw__container_check();
  if (node_delta != 0) {
    if (HW_HDR_GET(h->peak_source) == 1) {
      hw__freeze_peak(h);
      __atomic_store_n(&h->peak_source, 0, __ATOMIC_RELEASE);
    }
    hw__dirty(node);
    hw__state.live[node] += node_delta;
  }
  int64_t cur = __atomic_add_fetch(&h->current_bytes, delta, __ATOMIC_RELAXED);
  if (delta > 0) hw__raise_peak(h, cur);
  hw__timeline_moved(cur);
  hw__container_moved(cur);
}

/* Memory is about to fall from a new peak: freeze the peak first, while
 * `live` still is the peak (a reader after SIGKILL sees source 1 until the
 * snapshot is whole). Once per fall from a peak: out of the hot path. */
static __attribute__((noinline, cold)) void hw__peak_falls(hw_state_header *h) {
  hw__freeze_peak(h);
  __atomic_store_n(&h->peak_source, 0, __ATOMIC_RELEASE);
}

/* `delta` bytes to the totals, `node_delta` to the node's stack: they differ
 * only for heap blocks under sampling (hw__add_tabled). Inlined into every
 * caller: in exact mode each malloc and each free passes here once. */
static inline __attribute__((always_inline)) void hw__add_split(uint32_t node, int64_t node_delta,
                                                                int64_t delta) {
  if (HW_UNLIKELY(hw__sample_rate != 0)) {
    hw__add_split_sampling(node, node_delta, delta);
    return;
  }
  hw_state_header *h = hw__state.hdr;
  hw__container_check(); /* the container peak moved: keep this process's part first */
  if (delta < 0 && HW_UNLIKELY(h->peak_source == 1)) hw__peak_falls(h);
  if (node_delta != 0) {
    hw__dirty(node);
    hw__state.live[node] += node_delta;
  }
  int64_t cur = h->current_bytes + delta;
  HW_RACE_WINDOW(); /* core test only: the owner's elided lock made visible when broken */
  HW_HDR_PUT(h->current_bytes, cur);
  if (cur > h->peak_bytes) {
    HW_HDR_PUT(h->peak_bytes, cur);
    if (h->peak_source != 1) __atomic_store_n(&h->peak_source, 1, __ATOMIC_RELEASE);
  }
  hw__timeline_moved(cur);
  hw__container_moved(cur);
}

static inline void hw__add_bytes(uint32_t node, int64_t delta) {
  hw__add_split(node, delta, delta);
}

/* ---- heap blocks ---- */

/* Exact mode: a heap block of `size` bytes comes (sign 1) or goes (-1). */
static inline __attribute__((always_inline)) void hw__add_block(uint32_t node, uint64_t size,
                                                                int sign) {
  hw__add_split(node, sign * (int64_t)size, sign * (int64_t)size);
}

/* The bytes a heap block counts in the totals under sampling: the
 * allocator's size of the chunk, the same at its allocation and its free. */
static inline uint64_t hw__usable(void *p, uint64_t size) {
  return hw__real_malloc_usable_size ? (uint64_t)hw__usable_size(p) : size;
}

/* Sampling mode: a tabled block of `size` requested bytes (its stack's
 * charge) and `usable` bytes (the totals'). */
static inline void hw__add_tabled(uint32_t node, uint64_t size, uint64_t usable, int sign) {
  hw__add_split(node, sign * hw__sample_node_bytes(node, size), sign * (int64_t)usable);
}

static inline void hw__tabled_count(uintptr_t a, int d) {
  _Atomic uint32_t *b = hw__tabled_bucket(a);
  atomic_store_explicit(b, atomic_load_explicit(b, memory_order_relaxed) + d, memory_order_relaxed);
}

void hw__track_alloc(void *p, size_t size, uint32_t node) {
  if (!p || !hw__state.hdr) return;
  hw__owner_note();
  if (node > HW_NODE_MASK) node = 0;
  if (size > HW_SIZE_MAX) size = HW_SIZE_MAX;
  uint64_t old_size;
  uint32_t old_node;
  if (HW_UNLIKELY(hw__sample_rate != 0)) {
    /* A counted block freed where we could not see it (inside our own code)
     * leaves its bit: drop it, or this block's free would be taken for that
     * one's and never reach the table. */
    uint64_t usable = hw__usable(p, size);
    hw__lock_take();
    hw__hm_clear_as((uintptr_t)p, hw__owner_elided); /* plain when the lock is elided */
    int r = hw__blocks_put((uintptr_t)p, size, node, &old_size, &old_node);
    /* A block we never saw freed: its chunk is gone, its usable size with it;
     * what it was asked for is the nearest we know. */
    if (r == 1) hw__add_tabled(old_node, old_size, old_size, -1);
    if (r == 0) hw__tabled_count((uintptr_t)p, 1);
    if (r >= 0) hw__add_tabled(node, size, usable, 1);
    hw__lock_give();
    return;
  }
  hw__lock_take();
  int r = hw__blocks_put((uintptr_t)p, size, node, &old_size, &old_node);
  if (r == 1) hw__add_block(old_node, old_size, -1); /* a block we never saw freed: replaced */
  if (r >= 0) hw__add_block(node, size, 1);
  hw__lock_give();
}

/* Sampling mode, a tabled block leaves (hw__lock held). */
static int hw__take_tabled(void *p, uint64_t *size, uint32_t *node) {
  if (!hw__blocks_take((uintptr_t)p, size, node)) return 0;
  hw__tabled_count((uintptr_t)p, -1);
  hw__add_tabled(*node, *size, hw__usable(p, *size), -1);
  return 1;
}

int hw__track_take(void *p, size_t *size, uint32_t *node) {
  if (!p || !hw__state.hdr) return 0;
  hw__owner_note();
  uint64_t sz;
  uint32_t nd;
  hw__lock_take();
  int found;
  if (HW_UNLIKELY(hw__sample_rate != 0)) {
    found = hw__take_tabled(p, &sz, &nd);
  } else {
    found = hw__blocks_take((uintptr_t)p, &sz, &nd);
    if (found) hw__add_block(nd, sz, -1);
  }
  hw__lock_give();
  if (found) {
    *size = (size_t)sz;
    *node = nd;
  }
  return found;
}

void hw__track_free(void *p) {
  if (!p || !hw__state.hdr) return;
  hw__owner_note();
  uint64_t size;
  uint32_t node;
  hw__lock_take();
  if (HW_UNLIKELY(hw__sample_rate != 0)) hw__take_tabled(p, &size, &node);
  else if (hw__blocks_take((uintptr_t)p, &size, &node)) hw__add_block(node, size, -1);
  hw__lock_give();
}

/* ---- sampling mode: unsampled heap blocks, lock-free (sampling.h) ---- */

/* The total moved by `delta` without the lock: the peak follows. */
static inline void hw__total_unlocked(hw_state_header *h, int64_t delta) {
  int64_t cur = __atomic_add_fetch(&h->current_bytes, delta, __ATOMIC_RELAXED);
  if (delta > 0 && HW_UNLIKELY(cur > HW_HDR_GET(h->peak_bytes))) hw__raise_peak(h, cur);
  hw__total_moved(h, cur);
}

void hw__track_unsampled(void *p, size_t size) {
  hw_state_header *h = hw__state.hdr;
  if (!p || !h) return;
  int64_t usable = (int64_t)hw__usable_size(p);
  if (hw__owner_plain()) {
    if (HW_LIKELY(hw__hm_mark_as((uintptr_t)p, 1))) {
      int64_t cur = hw__total_plain(h, usable);
      hw__owner_leave();
      hw__total_moved(h, cur);
      return;
    }
    hw__owner_leave();
  } else if (HW_LIKELY(hw__hm_mark((uintptr_t)p))) {
    hw__total_unlocked(h, usable);
    return;
  }
  hw__track_alloc(p, size, HW_NODE_UNSAMPLED); /* the map cannot hold it: the table */
}

int hw__track_take_sampling(void *p, size_t *size, uint32_t *node) {
  hw_state_header *h = hw__state.hdr;
  if (!p || !h) return 0;
  if (hw__owner_plain()) {
    if (hw__hm_clear_as((uintptr_t)p, 1)) {
      *size = hw__usable_size(p);
      *node = HW_NODE_UNSAMPLED;
      int64_t cur = hw__total_plain(h, -(int64_t)*size);
      hw__owner_leave();
      hw__total_moved(h, cur);
      return 2;
    }
    hw__owner_leave();
  } else if (hw__hm_clear((uintptr_t)p)) {
    *size = hw__usable_size(p);
    *node = HW_NODE_UNSAMPLED;
    hw__total_unlocked(h, -(int64_t)*size);
    return 2;
  }
  if (atomic_load_explicit(hw__tabled_bucket((uintptr_t)p), memory_order_relaxed) == 0) return 0;
  return hw__track_take(p, size, node);
}

void hw__track_free_sampling(void *p) {
  size_t size;
  uint32_t node;
  hw__track_take_sampling(p, &size, &node);
}

/* ---- anonymous mmaps: sorted, non-overlapping ranges ---- */

static size_t hw__range_lower_bound(uintptr_t a) {
  size_t lo = 0, hi = hw__range_used;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (hw__ranges[mid].start < a) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

static int hw__range_insert_at(size_t at, uintptr_t start, uint64_t len, uint32_t node,
                               int64_t charged) {
  if (hw__range_used == hw__range_cap) {
    size_t ncap = hw__range_cap ? hw__range_cap * 2 : 1024;
    hw_range *nr = hw__pages_alloc(ncap * sizeof *nr);
    if (!nr) return -1;
    if (hw__ranges) memcpy(nr, hw__ranges, hw__range_used * sizeof *nr);
    hw__pages_free(hw__ranges, hw__range_cap * sizeof *nr);
    hw__ranges = nr;
    hw__range_cap = ncap;
  }
  memmove(&hw__ranges[at + 1], &hw__ranges[at], (hw__range_used - at) * sizeof *hw__ranges);
  hw__ranges[at].start = start;
  hw__ranges[at].len = len;
  hw__ranges[at].node = node;
  hw__ranges[at].charged = charged;
  hw__range_used++;
  return 0;
}

/* A range's share of its charge for `part` of its `len` bytes. */
static inline int64_t hw__range_share(const hw_range *r, uint64_t part) {
  if (part >= r->len) return r->charged;
  return (int64_t)((__int128)r->charged * (__int128)part / (__int128)r->len);
}

/* Drops [a, a+len) from every range it overlaps, splitting as needed. */
static void hw__unmap_locked(uintptr_t a, uint64_t len) {
  uintptr_t end = a + len;
  size_t i = hw__range_lower_bound(a);
  if (i > 0 && hw__ranges[i - 1].start + hw__ranges[i - 1].len > a) i--;
  while (i < hw__range_used && hw__ranges[i].start < end) {
    hw_range r = hw__ranges[i];
    uintptr_t rend = r.start + r.len;
    if (rend <= a) {
      i++;
      continue;
    }
    uintptr_t cut_lo = r.start > a ? r.start : a;
    uintptr_t cut_hi = rend < end ? rend : end;
    int64_t cut_charge = hw__range_share(&r, cut_hi - cut_lo);
    hw__add_split(r.node, -cut_charge, -(int64_t)(cut_hi - cut_lo));
    int64_t rest = r.charged - cut_charge;
    if (r.start < cut_lo && rend > cut_hi) {
      /* A hole in the middle: keep the left part here, insert the right. */
      int64_t left = hw__range_share(&r, cut_lo - r.start);
      hw__ranges[i].len = cut_lo - r.start;
      hw__ranges[i].charged = left;
      if (hw__range_insert_at(i + 1, cut_hi, rend - cut_hi, r.node, rest - left) != 0)
        hw__add_split(r.node, -(rest - left), -(int64_t)(rend - cut_hi));
      i += 2;
    } else if (r.start < cut_lo) {
      hw__ranges[i].len = cut_lo - r.start;
      hw__ranges[i].charged = rest;
      i++;
    } else if (rend > cut_hi) {
      hw__ranges[i].start = cut_hi;
      hw__ranges[i].len = rend - cut_hi;
      hw__ranges[i].charged = rest;
      i++;
    } else {
      memmove(&hw__ranges[i], &hw__ranges[i + 1], (hw__range_used - i - 1) * sizeof *hw__ranges);
      hw__range_used--;
    }
  }
}

static inline uint64_t hw__page_round(uint64_t len) {
  return (len + HW_PAGE - 1) & ~(uint64_t)(HW_PAGE - 1);
}

void hw__track_mmap(void *p, size_t len, uint32_t node) {
  if (!p || !hw__state.hdr || len == 0) return;
  hw__owner_note();
  if (node > HW_NODE_MASK) node = 0;
  uint64_t l = hw__page_round(len);
  hw__lock_take();
  /* MAP_FIXED over an old mapping replaces it. */
  hw__unmap_locked((uintptr_t)p, l);
  size_t at = hw__range_lower_bound((uintptr_t)p);
  /* Sampling mode: an unsampled map counts in the totals only; a sampled
   * one below the rate stands for l / p (sampling.h). */
  int64_t charged = hw__sample_node_bytes(node, l);
  if (hw__range_insert_at(at, (uintptr_t)p, l, node, charged) == 0)
    hw__add_split(node, charged, (int64_t)l);
  hw__lock_give();
}

void hw__track_munmap(void *p, size_t len) {
  if (!p || !hw__state.hdr || len == 0) return;
  hw__owner_note();
  hw__lock_take();
  if (hw__range_used) hw__unmap_locked((uintptr_t)p, hw__page_round(len));
  hw__lock_give();
}

void hw__tracker_reset(void) {
  hw_state_header *h = hw__state.hdr;
  if (!h) return;
  hw__lock_take();
  hw__blocks_reset();
  hw__hm_reset();
  hw__range_used = 0;
  memset((void *)hw__state.live, 0, h->node_count * 8);
  memset(hw__state.snapshot, 0, h->node_count * 8);
  if (hw__dirty_ready == 1) {
    for (size_t i = 0; i < hw__dirty_count; i++) hw__dirty_mark[hw__dirty_list[i]] = 0;
    hw__dirty_count = 0;
  }
  HW_HDR_PUT(h->current_bytes, 0);
  HW_HDR_PUT(h->peak_bytes, 0);
  h->peak_source = 1;
  hw__container_publish(0); /* the container sum forgets them too */
  hw__lock_give();
}

size_t hw__tracker_live_allocations(void) { return hw__blocks_count() + hw__range_used; }

size_t hw__tracker_overhead_bytes(void) {
  return hw__blocks_overhead() + hw__range_cap * sizeof(hw_range);
}

/* A forked child: the parent's blocks and maps are the parent's (not charged
 * here, their frees ignored: docs/protocol.md). Drop the tables instead of
 * clearing them, so the child never copies the parent's pages. */
void hw__tracker_forget_in_child(void) {
  hw__blocks_forget();
  hw__hm_reset(); /* inherited blocks were not counted here: their frees are ignored */
  hw__pages_free(hw__ranges, hw__range_cap * sizeof *hw__ranges);
  hw__ranges = NULL;
  hw__range_cap = hw__range_used = 0;
  if (hw__dirty_ready == 1) {
    for (size_t i = 0; i < hw__dirty_count; i++) hw__dirty_mark[hw__dirty_list[i]] = 0;
    hw__dirty_count = 0;
  }
}
