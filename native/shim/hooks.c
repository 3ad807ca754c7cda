/*
 * The interposed functions. Each one forwards to the real function and, when
 * tracking is on and we are not already inside our own code on this thread,
 * records the result. A free is recorded before the real free (another
 * thread may get the same address back at once); an allocation only after it
 * succeeded. Nothing here may crash, block on Python, or change results: an
 * allocation the real allocator refuses fails exactly as it would have
 * (NULL, MAP_FAILED, ENOMEM), and is only recorded (guard.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "hw.h"
#include "sampling.h"

#define HW_EXPORT __attribute__((visibility("default")))

static inline int hw__should_track(hw_thread_t *t) {
  if (HW_LIKELY(hw__tracking)) return !t->guard;
  /* A forked child's first allocation starts its own tracking (children.c). */
  return HW_UNLIKELY(hw__child_pending) && !t->guard && hw__child_begin();
}

/* Runs before the allocation: the guard's verdict (0, or the rule the
 * allocation would break; every allocation counts, sampled or not) and the
 * stack it is charged to. With sampling on, an unsampled allocation skips the
 * stack walk (sampling.h) and gets HW_NODE_UNSAMPLED. */
static inline int hw__before_alloc(hw_thread_t *t, size_t size, uint32_t *node) {
  int trip = hw__guard_on ? hw__guard_check(size) : 0;
  if (HW_UNLIKELY(hw__sample_rate != 0) && !hw__sample_take(size)) *node = HW_NODE_UNSAMPLED;
  else *node = hw__current_node(t);
  return trip;
}

/* Anonymous mmaps are always recorded exactly: the system call costs more
 * than the stack walk, and a partial munmap needs bytes, not an estimate. */
static inline int hw__before_map(hw_thread_t *t, size_t size, uint32_t *node) {
  int trip = hw__guard_on ? hw__guard_check(size) : 0;
  *node = hw__current_node(t);
  return trip;
}

/* A refused or tripping allocation is reported with its real stack, sampled or not. */
static inline uint32_t hw__named(hw_thread_t *t, uint32_t node) {
  return node == HW_NODE_UNSAMPLED ? hw__current_node(t) : node;
}

/* The guard objected, yet the allocation succeeded: the memory is there now
 * and would kill the container once used. Stop before the program uses it. */
__attribute__((noreturn)) static void hw__tripped(int trip, size_t size, uint32_t node) {
  hw__oom_exit(trip, size, hw__named(&hw__thread, node));
}

HW_EXPORT void *malloc(size_t size) {
  if (HW_UNLIKELY(!hw__real_malloc)) {
    hw__resolve_real();
    if (!hw__real_malloc) return hw__boot_alloc(size);
  }
  hw_thread_t *t = &hw__thread;
  if (!hw__should_track(t)) return hw__real_malloc(size);
  t->guard = 1;
  uint32_t node;
  int trip = hw__before_alloc(t, size, &node);
  void *p = hw__real_malloc(size);
  if (HW_UNLIKELY(!p)) {
    if (size) hw__failed_allocation(size, hw__named(t, node));
  } else if (HW_UNLIKELY(trip)) {
    hw__real_free(p);
    hw__tripped(trip, size, node);
  } else {
    hw__track_alloc(p, size, node);
  }
  t->guard = 0;
  return p;
}

HW_EXPORT void *calloc(size_t n, size_t size) {
  if (HW_UNLIKELY(!hw__real_calloc)) {
    hw__resolve_real(); /* dlsym may call us back: serve it from the pool */
    if (!hw__real_calloc) {
      size_t total;
      if (__builtin_mul_overflow(n, size, &total)) return NULL;
      return hw__boot_alloc(total);
    }
  }
  hw_thread_t *t = &hw__thread;
  if (!hw__should_track(t)) return hw__real_calloc(n, size);
  size_t total;
  if (__builtin_mul_overflow(n, size, &total)) return hw__real_calloc(n, size);
  t->guard = 1;
  uint32_t node;
  int trip = hw__before_alloc(t, total, &node);
  void *p = hw__real_calloc(n, size);
  if (HW_UNLIKELY(!p)) {
    if (total) hw__failed_allocation(total, hw__named(t, node));
  } else if (HW_UNLIKELY(trip)) {
    hw__real_free(p);
    hw__tripped(trip, total, node);
  } else {
    hw__track_alloc(p, total, node);
  }
  t->guard = 0;
  return p;
}

HW_EXPORT void free(void *p) {
  if (!p || HW_UNLIKELY(hw__in_boot_pool(p))) return;
  if (HW_UNLIKELY(!hw__real_free)) hw__resolve_real();
  hw_thread_t *t = &hw__thread;
  if (hw__should_track(t)) {
    t->guard = 1;
    hw__track_free(p);
    t->guard = 0;
  }
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
  if (!hw__should_track(t)) return hw__real_realloc(old, size);
  t->guard = 1;
  uint32_t node;
  int trip = hw__before_alloc(t, size, &node);
  size_t old_size = 0;
  uint32_t old_node = 0;
  int had_old = old && hw__track_take(old, &old_size, &old_node);
  void *p = hw__real_realloc(old, size);
  if (HW_UNLIKELY(!p)) {
    if (size) {
      /* Refused: the old block is still the program's, as it was. */
      if (had_old) hw__track_alloc(old, old_size, old_node);
      hw__failed_allocation(size, hw__named(t, node));
    }
  } else if (HW_UNLIKELY(trip)) {
    hw__tripped(trip, size, node); /* the old block is gone: nothing to undo */
  } else {
    hw__track_alloc(p, size, node);
  }
  t->guard = 0;
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
  if (!hw__should_track(t)) return hw__real_posix_memalign(out, align, size);
  t->guard = 1;
  uint32_t node;
  int trip = hw__before_alloc(t, size, &node);
  int rc = hw__real_posix_memalign(out, align, size);
  if (HW_UNLIKELY(rc != 0)) {
    if (rc == ENOMEM && size) hw__failed_allocation(size, hw__named(t, node));
  } else if (HW_UNLIKELY(trip)) {
    hw__real_free(*out);
    hw__tripped(trip, size, node);
  } else {
    hw__track_alloc(*out, size, node);
  }
  t->guard = 0;
  return rc;
}

#define HW_ALIGNED_HOOK(name, params, args, size_expr)                 \
  HW_EXPORT void *name params {                                       \
    if (HW_UNLIKELY(!hw__real_##name)) hw__resolve_real();            \
    hw_thread_t *t = &hw__thread;                                     \
    if (!hw__should_track(t)) return hw__real_##name args;            \
    size_t sz = (size_expr);                                          \
    t->guard = 1;                                                     \
    uint32_t node;                                                    \
    int trip = hw__before_alloc(t, sz, &node);                        \
    void *p = hw__real_##name args;                                   \
    if (HW_UNLIKELY(!p)) {                                            \
      if (sz && errno == ENOMEM) hw__failed_allocation(sz, hw__named(t, node));     \
    } else if (HW_UNLIKELY(trip)) {                                   \
      hw__real_free(p);                                               \
      hw__tripped(trip, sz, node);                                    \
    } else {                                                          \
      hw__track_alloc(p, sz, node);                                   \
    }                                                                 \
    t->guard = 0;                                                     \
    return p;                                                         \
  }

HW_ALIGNED_HOOK(aligned_alloc, (size_t align, size_t size), (align, size), size)
HW_ALIGNED_HOOK(memalign, (size_t align, size_t size), (align, size), size)
HW_ALIGNED_HOOK(valloc, (size_t size), (size), size)
HW_ALIGNED_HOOK(pvalloc, (size_t size), (size), (size + 4095) & ~(size_t)4095)

static void *hw__raw_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
  long r = syscall(SYS_mmap, addr, len, prot, flags, fd, off);
  return (void *)r;
}

static void *hw__mmap_common(void *(*real)(void *, size_t, int, int, int, off_t), void *addr,
                             size_t len, int prot, int flags, int fd, off_t off) {
  if (HW_UNLIKELY(!real)) return hw__raw_mmap(addr, len, prot, flags, fd, off);
  hw_thread_t *t = &hw__thread;
  if (!hw__should_track(t) || !(flags & MAP_ANONYMOUS)) return real(addr, len, prot, flags, fd, off);
  t->guard = 1;
  uint32_t node;
  int trip = hw__before_map(t, len, &node);
  void *p = real(addr, len, prot, flags, fd, off);
  if (HW_UNLIKELY(p == MAP_FAILED)) {
    if (errno == ENOMEM) hw__failed_allocation(len, hw__named(t, node));
  } else if (HW_UNLIKELY(trip)) {
    if (!(flags & MAP_FIXED)) syscall(SYS_munmap, p, len); /* a fixed map replaced one */
    hw__tripped(trip, len, node);
  } else {
    hw__track_mmap(p, len, node);
  }
  t->guard = 0;
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
  hw_thread_t *t = &hw__thread;
  if (hw__should_track(t)) {
    t->guard = 1;
    hw__track_munmap(addr, len);
    t->guard = 0;
  }
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
  if (!hw__should_track(t)) return hw__real_mremap(old, old_len, new_len, flags, new_addr);
  t->guard = 1;
  uint32_t node;
  size_t grow = new_len > old_len ? new_len - old_len : 0;
  int trip = hw__before_map(t, grow, &node);
  void *p = hw__real_mremap(old, old_len, new_len, flags, new_addr);
  if (HW_UNLIKELY(p == MAP_FAILED)) {
    if (errno == ENOMEM && grow) hw__failed_allocation(grow, hw__named(t, node));
  } else if (HW_UNLIKELY(trip)) {
    hw__tripped(trip, grow, node);
  } else {
    /* Charged like realloc: the old range goes, the new one belongs to the
     * code that resized it. Untracked (file-backed) ranges stay untracked. */
    hw__track_munmap(old, old_len);
    hw__track_mmap(p, new_len, node);
  }
  t->guard = 0;
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
  hw__pages_free(raw, 4096);
  hw__thread.inherited = s.node;
  hw__thread.last_node = HW_NODE_NONE;
  return s.fn(s.arg);
}

HW_EXPORT int pthread_create(pthread_t *th, const pthread_attr_t *attr, void *(*fn)(void *),
                             void *arg) {
  if (HW_UNLIKELY(!hw__real_pthread_create)) hw__resolve_real();
  hw_thread_t *t = &hw__thread;
  if (!hw__active || hw__in_child || t->guard) return hw__real_pthread_create(th, attr, fn, arg);
  t->guard = 1;
  uint32_t node = hw__tracking ? hw__current_node(t) : 0;
  hw_start_t *s = hw__pages_alloc(4096);
  t->guard = 0;
  if (!s) return hw__real_pthread_create(th, attr, fn, arg);
  s->fn = fn;
  s->arg = arg;
  s->node = node;
  int rc = hw__real_pthread_create(th, attr, hw__thread_start, s);
  if (rc != 0) hw__pages_free(s, 4096);
  return rc;
}
