/*
 * Byte sampling: the per-thread countdown and PRNG, and the weight of a
 * sampled block (see sampling.h). exp/log run only when a sample is taken,
 * about once per `rate` bytes, never on the fast path.
 */
#define _GNU_SOURCE
#include <math.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "lean.h"

uint64_t hw__sample_rate;
_Atomic(hw_hm_word *) *hw__lean_top;
HW_TLS hw_sampler_t hw__sampler;
static uint64_t hw__seed_base;
static int hw__seed_fixed;
static volatile uint64_t hw__thread_ordinal;

static inline uint64_t hw__splitmix(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

/* Exponentially distributed bytes with mean `rate`, at least 1. */
static int64_t hw__draw_left(hw_sampler_t *s) {
  /* u uniform in (0, 1]: never log(0). */
  double u = (double)((hw__splitmix(&s->rng) >> 11) + 1) * 0x1.0p-53;
  double left = -log(u) * (double)hw__sample_rate;
  if (left < 1.0) return 1;
  if (left > 0x1.0p62) return INT64_MAX / 2;
  return (int64_t)left;
}

static void hw__seed_thread(hw_sampler_t *s) {
  /* With HIGHWATER_SAMPLE_SEED the main thread always gets the same stream,
   * whatever native threads (a BLAS pool) allocate first; other threads get
   * theirs in the order they first allocate. */
  uint64_t ordinal = syscall(SYS_gettid) == getpid()
                         ? 0
                         : 1 + __atomic_fetch_add(&hw__thread_ordinal, 1, __ATOMIC_RELAXED);
  uint64_t seed = hw__seed_base + ordinal * 0xD1B54A32D192ED03ULL;
  if (!hw__seed_fixed) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    seed ^= (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ULL ^ (uint64_t)(uintptr_t)s ^
            ((uint64_t)getpid() << 32);
  }
  s->rng = seed;
  s->seeded = 1;
  s->left = hw__draw_left(s);
}

void hw__sampling_init(void) {
  hw__sample_rate = hw__config.sample_rate;
  hw__seed_fixed = hw__config.sample_seeded;
  hw__seed_base = hw__config.sample_seed;
  if (hw__state.hdr) hw__state.hdr->sample_rate_bytes = hw__sample_rate;
  /* The heap map (sampling.h). Without it, or without the allocator's
   * malloc_usable_size, unsampled blocks go to the table as before. */
  if (hw__sample_rate) {
    hw__resolve_real();
    hw__usable_init();
    hw__debug("block sizes from %s",
              hw__glibc_chunks ? "glibc's chunk headers" : "malloc_usable_size");
  }
  if (hw__sample_rate && !hw__hm_top && hw__real_malloc_usable_size)
    hw__hm_top = hw__pages_alloc(HW_HM_TOP * sizeof *hw__hm_top);
  hw__lean_top = hw__sample_rate && hw__glibc_chunks ? hw__hm_top : NULL;
}

int hw__sample_slow(size_t size) {
  if (size >= hw__sample_rate) return 1; /* large: always, exact */
  hw_sampler_t *s = &hw__sampler;
  if (HW_UNLIKELY(!s->seeded)) {
    hw__seed_thread(s);
    if ((int64_t)size < s->left) {
      s->left -= (int64_t)size;
      return 0;
    }
  }
  s->left = hw__draw_left(s);
  return 1;
}

int64_t hw__sample_node_bytes(uint32_t node, uint64_t size) {
  if (node == HW_NODE_UNSAMPLED) return 0;
  uint64_t rate = hw__sample_rate;
  if (rate == 0 || size >= rate) return (int64_t)size;
  /* size / p with p = 1 - exp(-size/rate); expm1 keeps small sizes exact. */
  double p = -expm1(-(double)size / (double)rate);
  return (int64_t)((double)size / p + 0.5);
}
