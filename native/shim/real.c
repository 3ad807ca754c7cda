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

static _Alignas(16) char hw__pool[64 * 1024];
static size_t hw__pool_used;
/* One resolver at a time (acq_rel); dlsym's own calls back into us see it. */
static _Atomic int hw__resolving;

int hw__in_boot_pool(const void *p) {
  return (const char *)p >= hw__pool && (const char *)p < hw__pool + sizeof hw__pool;
}

void *hw__boot_alloc(size_t size) {
  size_t need = (size + 15) & ~(size_t)15;
  size_t at = __atomic_fetch_add(&hw__pool_used, need, __ATOMIC_RELAXED);
  if (at + need > sizeof hw__pool) return NULL;
  return hw__pool + at; /* static storage: already zero */
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
