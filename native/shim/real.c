/*
 * The real allocator and friends, found with dlsym(RTLD_NEXT). dlsym itself
 * may call calloc before we know the real one; those early requests are
 * served from a small static pool and never freed (heaptrack, Fil).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <string.h>

#include "hw.h"

#define HW_DEFINE_REAL(name, ret, args) ret(*hw__real_##name) args;
HW_HOOKED_FUNCTIONS(HW_DEFINE_REAL)
#undef HW_DEFINE_REAL
/* Not hooked: asked for a block's size in sampling mode (sampling.h), from
 * the same allocator as the real malloc. */
size_t (*hw__real_malloc_usable_size)(void *);

_Alignas(16) char hw__boot_pool[64 * 1024];
static size_t hw__pool_used;
/* One resolver at a time (acq_rel); dlsym's own calls back into us see it. */
static _Atomic int hw__resolving;

void *hw__boot_alloc(size_t size) {
  size_t need = (size + 15) & ~(size_t)15;
  size_t at = __atomic_fetch_add(&hw__pool_used, need, __ATOMIC_RELAXED);
  if (at + need > sizeof hw__boot_pool) return NULL;
  return hw__boot_pool + at; /* static storage: already zero */
}

void hw__resolve_real(void) {
  if (hw__real_free) return;
  if (atomic_exchange_explicit(&hw__resolving, 1, memory_order_acq_rel)) return;
#define HW_RESOLVE(name, ret, args)                                                                \
  if (!hw__real_##name) *(void **)&hw__real_##name = dlsym(RTLD_NEXT, #name);
  HW_HOOKED_FUNCTIONS(HW_RESOLVE)
  HW_RESOLVE(malloc_usable_size, size_t, (void *))
#undef HW_RESOLVE
  atomic_store_explicit(&hw__resolving, 0, memory_order_release);
}

/* ---- the chunk's size word (hw.h, hw__usable_size) ---- */

int hw__glibc_chunks;
size_t hw__mmapped_extra = 8;

/* Every allocating function we pass blocks on to must be glibc's own: a
 * second allocator preloaded after us (jemalloc, tcmalloc, glibc's
 * libc_malloc_debug) keeps no such word in front of its blocks. */
static int hw__all_from_libc(void) {
  Dl_info libc, at;
  void *anchor = dlsym(RTLD_DEFAULT, "gnu_get_libc_version");
  if (!anchor || !dladdr(anchor, &libc) || !libc.dli_fbase) return 0;
  void *fns[] = {(void *)hw__real_malloc,         (void *)hw__real_calloc,
                 (void *)hw__real_realloc,        (void *)hw__real_free,
                 (void *)hw__real_posix_memalign, (void *)hw__real_aligned_alloc,
                 (void *)hw__real_memalign,       (void *)hw__real_valloc,
                 (void *)hw__real_pvalloc,        (void *)hw__real_malloc_usable_size};
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++)
    if (!fns[i] || !dladdr(fns[i], &at) || at.dli_fbase != libc.dli_fbase) return 0;
  return 1;
}

/* The word must say what malloc_usable_size says for blocks of every kind
 * the hooks see: small and large, from the heap and mmapped, zeroed,
 * aligned, grown. One disagreement and the call is kept. The probe must not
 * change how glibc serves the program afterwards: freeing an mmapped chunk
 * of up to 32 MiB raises glibc's mmap threshold to its size, so heap blocks
 * stay well under the default threshold (128 KiB) and the mmapped one is
 * above 32 MiB (address space only: nothing but its header is touched). */
static int hw__probe_agrees(void *p) {
  return p && hw__glibc_usable(p) == hw__real_malloc_usable_size(p);
}

void hw__usable_init(void) {
  hw__glibc_chunks = 0;
#if defined(__GLIBC__) && defined(__x86_64__)
  if (!hw__all_from_libc()) return;
  /* How an mmapped chunk's size word relates to its usable size: 16 bytes
   * of header in glibc 2.36, 8 in 2.43 (the probe below checks every kind
   * of block with the answer). Above 32 MiB, as in the loop. */
  void *big = hw__real_malloc(40u << 20);
  size_t word = big ? ((const size_t *)big)[-1] : 0;
  size_t extra =
      (word & ~(size_t)7) - sizeof(size_t) - (big ? hw__real_malloc_usable_size(big) : 0);
  if (big) hw__real_free(big);
  if (!(word & 2) || (extra != 0 && extra != 8)) return;
  hw__mmapped_extra = extra;
  static const size_t sizes[] = {0, 1, 8, 24, 25, 100, 600, 1000, 4000, 20000, 40u << 20};
  int ok = 1;
  for (size_t i = 0; ok && i < sizeof sizes / sizeof sizes[0]; i++) {
    void *p = hw__real_malloc(sizes[i]);
    ok = hw__probe_agrees(p);
    void *q = ok ? hw__real_realloc(p, sizes[i] * 2 + 40) : NULL;
    if (q) p = q;
    ok = ok && hw__probe_agrees(q);
    if (p) hw__real_free(p);
  }
  void *c = ok ? hw__real_calloc(7, 93) : NULL;
  ok = ok && hw__probe_agrees(c);
  if (c) hw__real_free(c);
  void *a = NULL;
  if (ok && hw__real_posix_memalign(&a, 256, 1000) != 0) a = NULL;
  ok = ok && hw__probe_agrees(a);
  if (a) hw__real_free(a);
  void *m = ok ? hw__real_memalign(4096, 5000) : NULL;
  ok = ok && hw__probe_agrees(m);
  if (m) hw__real_free(m);
  hw__glibc_chunks = ok;
#endif
}
