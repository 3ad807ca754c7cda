/*
 * Included by tracker.c only, and nowhere else (it defines the table): a
 * header so that the insert and the take inline into the malloc and free
 * paths (callgrind: ~50 instructions per malloc/free pair less than a call
 * into another unit). Not compiled on its own.
 *
 * The live heap blocks: address -> (size, node), under hw__lock. Two
 * open-addressing tables with linear probing and backward-shift deletion:
 *
 * - narrow, 12-byte slots: the address shifted right by 4 (44 bits: malloc
 *   returns 16-byte aligned addresses below 2^48 on x86-64 and arm64), the
 *   node (24 bits) and the size (28 bits, < 256 MiB). Nearly every block.
 * - wide, 24-byte slots for whatever does not fit (an odd alignment, a high
 *   address, 256 MiB or more): rare, so its memory does not matter.
 *
 * The narrow table grows by 1.3x at 75 % load, so it is between 58 % and
 * 75 % full while blocks are being added: 16 - 21 bytes per live block (the
 * old 16-byte slots doubling at 80 % cost 20 - 40). When frees leave it below
 * 37.5 % it shrinks back to 60 % (at most 32 B per live block in between).
 * Capacities are not powers of two; a slot is picked by multiply-shift.
 */
#ifndef HW_BLOCKS_H
#define HW_BLOCKS_H
#include <string.h>

#include "hw.h"

#define HW_KEY_BITS 44
#define HW_KEY_MASK ((1ull << HW_KEY_BITS) - 1)
#define HW_NARROW_SIZE_MAX ((1u << 28) - 1)
#define HW_NARROW_FIRST 4096

typedef struct __attribute__((packed)) {
  uint64_t lo; /* key | low 20 bits of node << 44; 0 = empty (a key is never 0) */
  uint32_t hi; /* high 4 bits of node | size << 4 */
} hw_narrow;

typedef struct {
  uintptr_t addr; /* 0 = empty */
  uint64_t size;
  uint32_t node;
} hw_wide;

static hw_narrow *hw__narrow;
static size_t hw__narrow_cap, hw__narrow_used;
/* Precomputed from the capacity, so the hot path compares instead of
 * multiplying: grow when `used` would pass grow_at (75 %), shrink when it
 * falls below shrink_at (37.5 %; 0 at the first capacity: never). */
static size_t hw__narrow_grow_at, hw__narrow_shrink_at;
static hw_wide *hw__wide;
static size_t hw__wide_cap, hw__wide_used;

static inline uint64_t hw__hash(uint64_t key) {
  key *= 0x9E3779B97F4A7C15ULL;
  return key ^ (key >> 29);
}

/* A slot in [0, cap) from the hash: multiply-shift works for any capacity. */
static inline size_t hw__home(uint64_t key, size_t cap) {
  return (size_t)(((unsigned __int128)hw__hash(key) * cap) >> 64);
}

static inline size_t hw__next(size_t i, size_t cap) { return i + 1 == cap ? 0 : i + 1; }

/* Is `home` in the cyclic interval (i, j]? Then the entry at j cannot move to i. */
static inline int hw__home_between(size_t home, size_t i, size_t j) {
  return i <= j ? (home > i && home <= j) : (home > i || home <= j);
}

/* A key fits 44 bits and the address is 16-byte aligned: one mask test. */
#define HW_NARROW_ADDR_BAD (~(HW_KEY_MASK << 4))
static inline int hw__addr_narrow(uintptr_t a) { return (a & HW_NARROW_ADDR_BAD) == 0; }

static inline int hw__fits_narrow(uintptr_t a, uint64_t size) {
  return hw__addr_narrow(a) && size <= HW_NARROW_SIZE_MAX;
}

/* ---- narrow ---- */

static inline uint64_t hw__narrow_key(const hw_narrow *s) { return s->lo & HW_KEY_MASK; }

static inline void hw__narrow_set(hw_narrow *s, uint64_t key, uint64_t size, uint32_t node) {
  s->lo = key | ((uint64_t)(node & 0xFFFFF) << HW_KEY_BITS);
  s->hi = (node >> 20 & 0xF) | (uint32_t)size << 4;
}

static inline void hw__narrow_get(const hw_narrow *s, uint64_t *size, uint32_t *node) {
  *node = (uint32_t)(s->lo >> HW_KEY_BITS) | (s->hi & 0xF) << 20;
  *size = s->hi >> 4;
}

static int hw__narrow_resize(size_t ncap) {
  hw_narrow *ns = hw__pages_alloc(ncap * sizeof *ns);
  if (!ns) return -1;
  for (size_t i = 0; i < hw__narrow_cap; i++) {
    if (!hw__narrow[i].lo) continue;
    size_t j = hw__home(hw__narrow_key(&hw__narrow[i]), ncap);
    while (ns[j].lo) j = hw__next(j, ncap);
    ns[j] = hw__narrow[i];
  }
  hw__pages_free(hw__narrow, hw__narrow_cap * sizeof *ns);
  hw__narrow = ns;
  hw__narrow_cap = ncap;
  hw__narrow_grow_at = ncap * 3 / 4;
  hw__narrow_shrink_at = ncap > HW_NARROW_FIRST ? (ncap * 3 + 7) / 8 : 0;
  return 0;
}

static int hw__narrow_grow(void) {
  return hw__narrow_resize(hw__narrow_cap ? hw__narrow_cap + hw__narrow_cap * 3 / 10
                                          : HW_NARROW_FIRST);
}

static void hw__narrow_delete(size_t i) {
  size_t cap = hw__narrow_cap, j = i;
  for (;;) {
    j = hw__next(j, cap);
    if (!hw__narrow[j].lo) break;
    if (!hw__home_between(hw__home(hw__narrow_key(&hw__narrow[j]), cap), i, j)) {
      hw__narrow[i] = hw__narrow[j];
      i = j;
    }
  }
  hw__narrow[i].lo = 0;
  hw__narrow[i].hi = 0;
  hw__narrow_used--;
}

/* Below 37.5 % full after many frees: shrink back to 60 % (a failed
 * shrink just keeps the bigger table). */
static __attribute__((noinline)) void hw__narrow_shrink(void) {
  size_t ncap = hw__narrow_used * 5 / 3 + 1;
  hw__narrow_resize(ncap < HW_NARROW_FIRST ? HW_NARROW_FIRST : ncap);
}

static inline __attribute__((always_inline)) int hw__narrow_take(uint64_t key, uint64_t *size,
                                                                 uint32_t *node) {
  if (!hw__narrow_used) return 0;
  size_t cap = hw__narrow_cap;
  for (size_t i = hw__home(key, cap); hw__narrow[i].lo; i = hw__next(i, cap)) {
    if (hw__narrow_key(&hw__narrow[i]) == key) {
      hw__narrow_get(&hw__narrow[i], size, node);
      hw__narrow_delete(i);
      if (HW_UNLIKELY(hw__narrow_used < hw__narrow_shrink_at)) hw__narrow_shrink();
      return 1;
    }
  }
  return 0;
}

/* ---- wide ---- */

static int hw__wide_grow(void) {
  size_t ncap = hw__wide_cap ? hw__wide_cap * 2 : 256;
  hw_wide *ns = hw__pages_alloc(ncap * sizeof *ns);
  if (!ns) return -1;
  for (size_t i = 0; i < hw__wide_cap; i++) {
    if (!hw__wide[i].addr) continue;
    size_t j = hw__home(hw__wide[i].addr, ncap);
    while (ns[j].addr) j = hw__next(j, ncap);
    ns[j] = hw__wide[i];
  }
  hw__pages_free(hw__wide, hw__wide_cap * sizeof *ns);
  hw__wide = ns;
  hw__wide_cap = ncap;
  return 0;
}

static __attribute__((noinline)) int hw__wide_take_some(uintptr_t a, uint64_t *size,
                                                        uint32_t *node) {
  size_t cap = hw__wide_cap;
  for (size_t i = hw__home(a, cap); hw__wide[i].addr; i = hw__next(i, cap)) {
    if (hw__wide[i].addr != a) continue;
    *size = hw__wide[i].size;
    *node = hw__wide[i].node;
    size_t j = i;
    for (;;) {
      j = hw__next(j, cap);
      if (!hw__wide[j].addr) break;
      if (!hw__home_between(hw__home(hw__wide[j].addr, cap), i, j)) {
        hw__wide[i] = hw__wide[j];
        i = j;
      }
    }
    memset(&hw__wide[i], 0, sizeof hw__wide[i]);
    hw__wide_used--;
    return 1;
  }
  return 0;
}

/* Rare: the wide table is nearly always empty, so this is one compare. */
static inline int hw__wide_take(uintptr_t a, uint64_t *size, uint32_t *node) {
  return HW_UNLIKELY(hw__wide_used != 0) && hw__wide_take_some(a, size, node);
}

/* ---- the interface (hw__lock held) ---- */

__attribute__((always_inline)) inline int hw__blocks_take(uintptr_t a, uint64_t *size,
                                                          uint32_t *node) {
  if (HW_LIKELY(hw__addr_narrow(a)) && hw__narrow_take(a >> 4, size, node)) return 1;
  return hw__wide_take(a, size, node);
}

__attribute__((always_inline)) inline int hw__blocks_put(uintptr_t a, uint64_t size, uint32_t node,
                                                         uint64_t *old_size, uint32_t *old_node) {
  /* A block we never saw freed (freed inside a guarded region) may still be
   * recorded at this address: it is replaced. An address is in at most one
   * table; the probe that finds the free slot also finds a stale entry in
   * this one, the other is looked at only when it holds anything. */
  int replaced = 0;
  if (hw__fits_narrow(a, size)) {
    if (HW_UNLIKELY(hw__narrow_used + 1 > hw__narrow_grow_at) && hw__narrow_grow() != 0) return -1;
    uint64_t key = a >> 4;
    size_t cap = hw__narrow_cap, i = hw__home(key, cap);
    while (hw__narrow[i].lo && hw__narrow_key(&hw__narrow[i]) != key) i = hw__next(i, cap);
    if (hw__narrow[i].lo) {
      hw__narrow_get(&hw__narrow[i], old_size, old_node);
      replaced = 1;
    } else {
      hw__narrow_used++;
      replaced = hw__wide_take(a, old_size, old_node);
    }
    hw__narrow_set(&hw__narrow[i], key, size, node);
    return replaced;
  }
  if ((hw__wide_used + 1) * 2 > hw__wide_cap && hw__wide_grow() != 0) return -1;
  if (hw__addr_narrow(a)) replaced = hw__narrow_take(a >> 4, old_size, old_node);
  size_t cap = hw__wide_cap, i = hw__home(a, cap);
  while (hw__wide[i].addr && hw__wide[i].addr != a) i = hw__next(i, cap);
  if (hw__wide[i].addr) {
    *old_size = hw__wide[i].size;
    *old_node = hw__wide[i].node;
    replaced = 1;
  } else {
    hw__wide_used++;
  }
  hw__wide[i].addr = a;
  hw__wide[i].size = size;
  hw__wide[i].node = node;
  return replaced;
}

void hw__blocks_reset(void) {
  if (hw__narrow) memset(hw__narrow, 0, hw__narrow_cap * sizeof *hw__narrow);
  if (hw__wide) memset(hw__wide, 0, hw__wide_cap * sizeof *hw__wide);
  hw__narrow_used = hw__wide_used = 0;
}

void hw__blocks_forget(void) {
  hw__pages_free(hw__narrow, hw__narrow_cap * sizeof *hw__narrow);
  hw__pages_free(hw__wide, hw__wide_cap * sizeof *hw__wide);
  hw__narrow = NULL;
  hw__wide = NULL;
  hw__narrow_cap = hw__wide_cap = hw__narrow_used = hw__wide_used = 0;
  hw__narrow_grow_at = hw__narrow_shrink_at = 0;
}

size_t hw__blocks_count(void) { return hw__narrow_used + hw__wide_used; }

size_t hw__blocks_overhead(void) {
  return hw__narrow_cap * sizeof(hw_narrow) + hw__wide_cap * sizeof(hw_wide);
}

#endif
