/*
 * Byte sampling of stack attribution (HIGHWATER_SAMPLE_RATE, docs/
 * configuration.md "Sampling"). The decision is made before the stack walk,
 * so an allocation that is not sampled never pays for one. Poisson sampling
 * by bytes, as tcmalloc and Go's runtime do it: every thread counts down an
 * exponentially distributed number of bytes (mean = the rate); the allocation
 * that crosses zero is sampled. By memorylessness an allocation of `size`
 * bytes is sampled with probability p = 1 - exp(-size/rate), and a sampled
 * one stands for size / p bytes, so the bytes per stack are unbiased.
 * Allocations of `rate` bytes or more are always sampled and stand for
 * themselves (exact).
 */
#ifndef HW_SAMPLING_H
#define HW_SAMPLING_H

#include "hw.h"

#pragma GCC visibility push(hidden) /* why: hw.h */

/* The node of a block that was not sampled: charged to no stack. Such a
 * block is normally not in the live-block table at all (the heap map below);
 * only one the map cannot hold (an address not 16-byte aligned or above
 * 2^48, or no memory for the map) is kept in the table under this node.
 * The largest value the table's 24-bit node field holds. */
#define HW_NODE_UNSAMPLED 0xFFFFFFu

extern uint64_t hw__sample_rate; /* bytes; 0 = exact (every allocation sampled) */

typedef struct {
  int64_t left; /* bytes until the next sample */
  uint64_t rng; /* splitmix64 state */
  int seeded;
} hw_sampler_t;
extern HW_TLS hw_sampler_t hw__sampler;

void hw__sampling_init(void); /* from hw__config; call before tracking starts */
int hw__sample_slow(size_t size);

/* Is this allocation sampled? Only called when hw__sample_rate != 0. */
static inline int hw__sample_take(size_t size) {
  hw_sampler_t *s = &hw__sampler;
  if (HW_LIKELY(size < hw__sample_rate && (int64_t)size < s->left)) {
    s->left -= (int64_t)size;
    return 0;
  }
  return hw__sample_slow(size);
}

/* Bytes a live block of `size` charges to its stack: 0 when it was not
 * sampled, `size` in exact mode or when size >= rate, else size / p.
 * Deterministic, so the free takes off exactly what the allocation added. */
int64_t hw__sample_node_bytes(uint32_t node, uint64_t size);

/* ---- sampling mode: unsampled heap blocks without the table and its lock ----
 *
 * The totals count every heap block by the allocator's own size
 * (malloc_usable_size: the chunk does not change between malloc and free, so
 * the free takes off exactly what the allocation added). Whether a freed
 * block was counted is one bit per 16-byte granule of address space, set at
 * its allocation and cleared at its free: the heap map (heapmap.c), two
 * levels, a leaf of 8 MiB of bits (mapped on first use, touched pages only)
 * per GiB of addresses, so its memory is at most 1/128 of the heap's span.
 * A block allocated before tracking started (or inherited by a fork child,
 * or from before the API's reset) has no bit: its free is ignored, as in
 * exact mode, and the total never goes below what was counted.
 *
 * Memory ordering. A block's bit is written only by its own allocation and
 * its own free. The program cannot free a block before it has the pointer,
 * and it gets the pointer only after our hook returned from the allocation
 * (same thread) or through its own hand-off, which orders everything before
 * it (a lock, a queue, the GIL): so the free's relaxed load happens after the
 * fetch_or and sees the bit. The next allocation at the same address comes
 * after the real free, ordered by the allocator itself. Other bits of the
 * same word change concurrently, hence the atomic read-modify-writes; they
 * never change ours. Relaxed is enough: no other data hangs on a bit.
 * The owner thread, while it is the only writer (owner.c), updates its
 * words with a plain load and store instead. */
#define HW_HM_ADDR_BITS 48  /* user addresses on x86-64 and arm64 */
#define HW_HM_LEAF_SHIFT 30 /* a leaf per GiB of addresses */
#define HW_HM_TOP (1ul << (HW_HM_ADDR_BITS - HW_HM_LEAF_SHIFT))
#define HW_HM_LEAF_WORDS ((1ul << (HW_HM_LEAF_SHIFT - 4)) / 64)
typedef _Atomic uint64_t hw_hm_word;
extern _Atomic(hw_hm_word *) *hw__hm_top; /* NULL: no map (exact mode, or no memory) */
hw_hm_word *hw__hm_leaf(uintptr_t a);     /* maps the leaf of `a`; NULL on failure */
void hw__hm_reset(void);                  /* every bit cleared (hw__lock held) */

/* A word's bit set or cleared: an atomic read-modify-write, or (`plain`:
 * the owner thread's plain section, owner.c, where no other thread writes
 * any bit) a relaxed load and store, no locked instruction. */
static inline __attribute__((always_inline)) void hw__hm_update(hw_hm_word *w, uint64_t set,
                                                                uint64_t keep, int plain) {
  if (plain) {
    uint64_t v = (atomic_load_explicit(w, memory_order_relaxed) | set) & keep;
    HW_RACE_WINDOW();
    atomic_store_explicit(w, v, memory_order_relaxed);
  } else if (set) atomic_fetch_or_explicit(w, set, memory_order_relaxed);
  else atomic_fetch_and_explicit(w, keep, memory_order_relaxed);
}

/* Counts a block at `a`: 0 when the map cannot hold it (caller uses the table). */
static inline __attribute__((always_inline)) int hw__hm_mark_as(uintptr_t a, int plain) {
  if (HW_UNLIKELY(((a & 15) | (a >> HW_HM_ADDR_BITS)) != 0 || !hw__hm_top)) return 0;
  hw_hm_word *leaf = atomic_load_explicit(&hw__hm_top[a >> HW_HM_LEAF_SHIFT], memory_order_acquire);
  if (HW_UNLIKELY(!leaf) && !(leaf = hw__hm_leaf(a))) return 0;
  size_t g = (a >> 4) & (HW_HM_LEAF_WORDS * 64 - 1);
  hw__hm_update(&leaf[g >> 6], 1ull << (g & 63), ~0ull, plain);
  return 1;
}

/* Uncounts the block at `a`: 1 when it was counted (its bit was set). */
static inline __attribute__((always_inline)) int hw__hm_clear_as(uintptr_t a, int plain) {
  if (HW_UNLIKELY(((a & 15) | (a >> HW_HM_ADDR_BITS)) != 0 || !hw__hm_top)) return 0;
  hw_hm_word *leaf = atomic_load_explicit(&hw__hm_top[a >> HW_HM_LEAF_SHIFT], memory_order_acquire);
  if (!leaf) return 0;
  size_t g = (a >> 4) & (HW_HM_LEAF_WORDS * 64 - 1);
  uint64_t bit = 1ull << (g & 63);
  if (!(atomic_load_explicit(&leaf[g >> 6], memory_order_relaxed) & bit)) return 0;
  hw__hm_update(&leaf[g >> 6], 0, ~bit, plain);
  return 1;
}
static inline int hw__hm_mark(uintptr_t a) { return hw__hm_mark_as(a, 0); }
static inline int hw__hm_clear(uintptr_t a) { return hw__hm_clear_as(a, 0); }

/* Blocks in the live-block table (sampled ones, and the rare unsampled one
 * the map cannot hold), counted per bucket of addresses. Written under
 * hw__lock when the table gains or loses a block; read without it by a free
 * whose block has no bit: zero means "not in the table" and saves the lock.
 * The same argument as above: the put happened before the program had the
 * pointer, so a free of a tabled block never reads a zero. A non-zero read
 * for another block of the bucket only costs a look under the lock. */
/* tracker.c, sampling mode: an unsampled block comes (`size` asked); a block
 * goes (2: it was counted by the map, its usable size in *size; 1: it was in
 * the table, its size and node; 0: not tracked). */
void hw__track_unsampled(void *p, size_t size);
int hw__track_take_sampling(void *p, size_t *size, uint32_t *node);
void hw__track_free_sampling(void *p);

/* The total moved to `cur`: the timeline and the container sum follow, only
 * when it left their band (outside any plain section: the publication
 * takes hw__lock). */
static inline void hw__total_moved(hw_state_header *h, int64_t cur) {
  hw__timeline_moved(cur); /* its own try-lock */
  if (HW_UNLIKELY(hw__container_out_of_band(cur))) {
    hw__lock_take();
    hw__container_publish(HW_HDR_GET(h->current_bytes));
    hw__lock_give();
  }
}

/* The total moves by `delta` in the owner's plain section (owner.c: no
 * other thread writes the total or the peak now): a load and a store of
 * whole 8-byte values, so a reader (the watcher, the timeline, the control
 * thread) never sees a torn one. Returns the new total for hw__total_moved,
 * after the section. */
static inline int64_t hw__total_plain(hw_state_header *h, int64_t delta) {
  int64_t cur = HW_HDR_GET(h->current_bytes) + delta;
  HW_RACE_WINDOW();
  HW_HDR_PUT(h->current_bytes, cur);
  if (delta > 0 && HW_UNLIKELY(cur > HW_HDR_GET(h->peak_bytes))) {
    HW_HDR_PUT(h->peak_bytes, cur);
    if (HW_HDR_GET(h->peak_source) != 1) __atomic_store_n(&h->peak_source, 1, __ATOMIC_RELEASE);
  }
  return cur;
}

/* The owner's common case of hw__track_unsampled and hw__track_free_sampling
 * is inlined into the hooks: lean.h. */

#define HW_TABLED_BUCKETS 4096u
extern _Atomic uint32_t hw__tabled[HW_TABLED_BUCKETS];
static inline _Atomic uint32_t *hw__tabled_bucket(uintptr_t a) {
  return &hw__tabled[((a >> 4) * 0x9E3779B97F4A7C15ull) >> 52];
}

#pragma GCC visibility pop

#endif
