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

/* The node of a block that was not sampled: kept in the live-block table so
 * that its free is matched and the totals stay exact, charged to no stack.
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

#endif
