/* Native side of the benchmarks: allocation-heavy C, and a live-allocation
 * holder for measuring the shim's memory per live allocation. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* n rounds of malloc/free with sizes from 16 B to 1 MiB (xorshift mix),
 * keeping a window of 64 blocks live. */
long bench_malloc_free(long n) {
  void *window[64] = {0};
  uint64_t x = 88172645463325252ull;
  long touched = 0;
  for (long i = 0; i < n; i++) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    size_t size = (size_t)16 << (x % 17); /* 16 B .. 1 MiB */
    size += x % 16;
    int slot = (int)(i & 63);
    free(window[slot]);
    char *p = malloc(size);
    if (p) { p[0] = (char)i; touched++; }
    window[slot] = p;
  }
  for (int i = 0; i < 64; i++) free(window[i]);
  return touched;
}

static void **held;
static long held_n;

void bench_hold(long n, long size) {
  held = malloc(sizeof(void *) * (size_t)n);
  held_n = n;
  for (long i = 0; i < n; i++) held[i] = malloc((size_t)size);
}

void bench_release(void) {
  for (long i = 0; i < held_n; i++) free(held[i]);
  free(held);
}
