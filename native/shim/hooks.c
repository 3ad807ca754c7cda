/*
 * The interposed functions: a thin layer over the core (core.h). Each hook
 * resolves the real function, calls it, and tells the core what happened;
 * the core decides what is tracked, charged, refused or fatal. A free is
 * recorded before the real free (another thread may get the same address
 * back at once); an allocation only after it succeeded. Nothing here may
 * crash, block on Python, or change results: an allocation the real
 * allocator refuses fails exactly as it would have (NULL, MAP_FAILED,
 * ENOMEM), and is only recorded (guard.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core.h"
#include "lean.h"

#define HW_EXPORT __attribute__((visibility("default")))

/* The general paths of malloc and calloc, out of line: the lean path
 * (lean.h) tail-calls them, and so saves only the registers it needs. */
static __attribute__((noinline)) void *hw__malloc_general(size_t size) {
  if (HW_UNLIKELY(!hw__real_malloc)) {
    hw__resolve_real();
    if (!hw__real_malloc) return hw__boot_alloc(size);
  }
  hw_thread_t *t = &hw__thread;
  if (!hw__core_tracked(t)) return hw__real_malloc(size);
  hw_alloc_op op;
  hw__core_alloc_begin(&op, t, size);
  void *p = hw__real_malloc(size);
  if (HW_UNLIKELY(!p)) hw__core_alloc_refused(&op);
  else hw__core_alloc_end(&op, p);
  return p;
}

/* A lean allocation's end: counted, and the total still inside its bands,
 * or the rest out of line (lean.h). */
#define HW_LEAN_END(p, size)                                                                       \
  do {                                                                                             \
    int64_t cur = 0;                                                                               \
    int counted = HW_LIKELY(p != NULL) && hw__lean_count(p, &cur);                                 \
    if (HW_LIKELY(counted) && hw__lean_in_band(cur)) {                                             \
      hw__thread.guard = 0;                                                                        \
      return p;                                                                                    \
    }                                                                                              \
    return hw__lean_alloc_rest(p, size, counted, cur);                                             \
  } while (0)

HW_EXPORT void *malloc(size_t size) {
  if (!hw__lean_alloc_begin(&hw__thread, size)) return hw__malloc_general(size);
  void *p = hw__real_malloc(size);
  HW_LEAN_END(p, size);
}

static __attribute__((noinline)) void *hw__calloc_general(size_t n, size_t size) {
  if (HW_UNLIKELY(!hw__real_calloc)) {
    hw__resolve_real(); /* dlsym may call us back: serve it from the pool */
    if (!hw__real_calloc) {
      size_t total;
      if (__builtin_mul_overflow(n, size, &total)) return NULL;
      return hw__boot_alloc(total);
    }
  }
  hw_thread_t *t = &hw__thread;
  size_t total;
  if (!hw__core_tracked(t) || __builtin_mul_overflow(n, size, &total))
    return hw__real_calloc(n, size);
  hw_alloc_op op;
  hw__core_alloc_begin(&op, t, total);
  void *p = hw__real_calloc(n, size);
  if (HW_UNLIKELY(!p)) hw__core_alloc_refused(&op);
  else hw__core_alloc_end(&op, p);
  return p;
}

HW_EXPORT void *calloc(size_t n, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(n, size, &total) || !hw__lean_alloc_begin(&hw__thread, total))
    return hw__calloc_general(n, size);
  void *p = hw__real_calloc(n, size);
  HW_LEAN_END(p, total);
}

/* The lean path first (lean.h): every other case, NULL and the bootstrap
 * pool's blocks included, has no bit in the heap map and goes on to the
 * general free. Each way ends in a tail call, so the common one saves no
 * register. */
HW_EXPORT void free(void *p) {
  hw_thread_t *t = &hw__thread;
  int64_t cur;
  if (!hw__lean_uncount(t, p, &cur)) return hw__free_general(p);
  if (HW_UNLIKELY(!hw__lean_in_band(cur))) return hw__lean_free_moved(p, cur);
  t->guard = 0;
  hw__real_free(p);
}

void hw__free_general(void *p) {
  if (!p || HW_UNLIKELY(hw__in_boot_pool(p))) return;
  if (HW_UNLIKELY(!hw__real_free)) hw__resolve_real();
  hw__core_free(&hw__thread, p);
  hw__real_free(p);
}

void hw__lean_free_moved(void *p, int64_t cur) {
  hw__lean_moved(cur);
  hw__thread.guard = 0;
  hw__real_free(p);
}

HW_EXPORT void *realloc(void *old, size_t size) {
  if (HW_UNLIKELY(!hw__real_realloc)) hw__resolve_real();
  if (HW_UNLIKELY(old && hw__in_boot_pool(old))) {
    /* Moving a bootstrap block to the real heap; its size is unknown, but
     * the pool is tiny, so copy what is left of it at most. */
    void *p = malloc(size);
    if (p) {
      size_t room = (size_t)((const char *)hw__boot_alloc(0) - (const char *)old);
      __builtin_memcpy(p, old, size < room ? size : room);
    }
    return p;
  }
  hw_thread_t *t = &hw__thread;
  if (!hw__core_tracked(t)) return hw__real_realloc(old, size);
  hw_alloc_op op;
  hw__core_realloc_begin(&op, t, old, size);
  void *p = hw__real_realloc(old, size);
  if (HW_UNLIKELY(!p))
    hw__core_alloc_refused(&op); /* realloc(p, 0) too: p is freed, nothing refused */
  else hw__core_alloc_end(&op, p);
  return p;
}

HW_EXPORT void *reallocarray(void *old, size_t n, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  return realloc(old, total);
}

HW_EXPORT int posix_memalign(void **out, size_t align, size_t size) {
  if (HW_UNLIKELY(!hw__real_posix_memalign)) hw__resolve_real();
  hw_thread_t *t = &hw__thread;
  if (!hw__core_tracked(t)) return hw__real_posix_memalign(out, align, size);
  hw_alloc_op op;
  hw__core_alloc_begin(&op, t, size);
  int rc = hw__real_posix_memalign(out, align, size);
  if (HW_UNLIKELY(rc != 0)) {
    if (rc == ENOMEM) hw__core_alloc_refused(&op);
    else hw__core_op_done(&op); /* EINVAL: a bad alignment, not memory */
  } else {
    hw__core_alloc_end(&op, *out);
  }
  return rc;
}

#define HW_ALIGNED_HOOK(name, params, args, size_expr)                                             \
  HW_EXPORT void *name params {                                                                    \
    if (HW_UNLIKELY(!hw__real_##name)) hw__resolve_real();                                         \
    hw_thread_t *t = &hw__thread;                                                                  \
    if (!hw__core_tracked(t)) return hw__real_##name args;                                         \
    hw_alloc_op op;                                                                                \
    hw__core_alloc_begin(&op, t, (size_expr));                                                     \
    void *p = hw__real_##name args;                                                                \
    if (HW_LIKELY(p)) hw__core_alloc_end(&op, p);                                                  \
    else if (errno == ENOMEM) hw__core_alloc_refused(&op);                                         \
    else hw__core_op_done(&op);                                                                    \
    return p;                                                                                      \
  }

HW_ALIGNED_HOOK(aligned_alloc, (size_t align, size_t size), (align, size), size)
HW_ALIGNED_HOOK(memalign, (size_t align, size_t size), (align, size), size)
HW_ALIGNED_HOOK(valloc, (size_t size), (size), size)
HW_ALIGNED_HOOK(pvalloc, (size_t size), (size), (size + HW_PAGE - 1) & ~(size_t)(HW_PAGE - 1))

static void *hw__raw_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
  long r = syscall(SYS_mmap, addr, len, prot, flags, fd, off);
  return (void *)r;
}

static void *hw__mmap_common(void *(*real)(void *, size_t, int, int, int, off_t), void *addr,
                             size_t len, int prot, int flags, int fd, off_t off) {
  if (HW_UNLIKELY(!real)) return hw__raw_mmap(addr, len, prot, flags, fd, off);
  hw_thread_t *t = &hw__thread;
  if (!hw__core_tracked(t) || !(flags & MAP_ANONYMOUS))
    return real(addr, len, prot, flags, fd, off);
  hw_alloc_op op;
  hw__core_map_begin(&op, t, len);
  void *p = real(addr, len, prot, flags, fd, off);
  if (HW_LIKELY(p != MAP_FAILED)) hw__core_map_end(&op, p, len, flags & MAP_FIXED);
  else if (errno == ENOMEM) hw__core_alloc_refused(&op);
  else hw__core_op_done(&op);
  return p;
}

HW_EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
  if (HW_UNLIKELY(!hw__real_mmap)) hw__resolve_real();
  return hw__mmap_common(hw__real_mmap, addr, len, prot, flags, fd, off);
}

HW_EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
  if (HW_UNLIKELY(!hw__real_mmap64)) hw__resolve_real();
  return hw__mmap_common(hw__real_mmap64, addr, len, prot, flags, fd, off);
}

HW_EXPORT int munmap(void *addr, size_t len) {
  if (HW_UNLIKELY(!hw__real_munmap)) hw__resolve_real();
  /* First: the frame walk's proof rests on seeing every data-stack chunk go. */
  hw__walk_unmapped(&hw__thread, addr, len);
  hw__core_unmap(&hw__thread, addr, len);
  if (HW_UNLIKELY(!hw__real_munmap)) return (int)syscall(SYS_munmap, addr, len);
  return hw__real_munmap(addr, len);
}

HW_EXPORT void *mremap(void *old, size_t old_len, size_t new_len, int flags, ...) {
  if (HW_UNLIKELY(!hw__real_mremap)) hw__resolve_real();
  void *new_addr = NULL;
  if (flags & MREMAP_FIXED) {
    va_list ap;
    va_start(ap, flags);
    new_addr = va_arg(ap, void *);
    va_end(ap);
  }
  hw_thread_t *t = &hw__thread;
  if (!hw__core_tracked(t)) return hw__real_mremap(old, old_len, new_len, flags, new_addr);
  hw_alloc_op op;
  hw__core_remap_begin(&op, t, old_len, new_len);
  void *p = hw__real_mremap(old, old_len, new_len, flags, new_addr);
  if (HW_LIKELY(p != MAP_FAILED)) hw__core_remap_end(&op, old, old_len, p, new_len);
  else if (errno == ENOMEM) hw__core_alloc_refused(&op);
  else hw__core_op_done(&op);
  return p;
}

/* ---- threads: a C thread is charged to the Python stack that started it ---- */

typedef struct {
  void *(*fn)(void *);
  void *arg;
  uint32_t node;
} hw_start_t;

static void *hw__thread_start(void *raw) {
  hw_start_t s = *(hw_start_t *)raw;
  hw__pages_free(raw, HW_PAGE);
  hw__thread.inherited = s.node;
  hw__thread.last_node = HW_NODE_NONE;
  return s.fn(s.arg);
}

HW_EXPORT int pthread_create(pthread_t *th, const pthread_attr_t *attr, void *(*fn)(void *),
                             void *arg) {
  if (HW_UNLIKELY(!hw__real_pthread_create)) hw__resolve_real();
  hw_thread_t *t = &hw__thread;
  if (!HW_RELAXED(hw__active) || HW_RELAXED(hw__in_child) || t->guard)
    return hw__real_pthread_create(th, attr, fn, arg);
  t->guard = 1;
  uint32_t node = hw__core_spawn_node(t);
  hw_start_t *s = hw__pages_alloc(HW_PAGE);
  t->guard = 0;
  if (!s) return hw__real_pthread_create(th, attr, fn, arg);
  s->fn = fn;
  s->arg = arg;
  s->node = node;
  int rc = hw__real_pthread_create(th, attr, hw__thread_start, s);
  if (rc != 0) hw__pages_free(s, HW_PAGE);
  return rc;
}
