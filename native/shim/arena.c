/*
 * Bookkeeping memory comes straight from the kernel with the mmap syscall, so
 * it never passes through our own hooks and is never counted as the
 * program's memory.
 */
#define _GNU_SOURCE
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "hw.h"

#if defined(__SANITIZE_THREAD__)
/* Only the core's test program is built with TSAN, and it has no hooks: it
 * maps through libc so that TSAN sees pages come and go (a page unmapped by
 * one thread and mapped again by another is not a race). */
void *hw__pages_alloc(size_t bytes) {
  void *p =
      mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

void hw__pages_free(void *p, size_t bytes) {
  if (p) munmap(p, bytes);
}
#else
void *hw__pages_alloc(size_t bytes) {
  long p = syscall(SYS_mmap, (void *)0, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == -1) return NULL;
  return (void *)p;
}

void hw__pages_free(void *p, size_t bytes) {
  if (p) syscall(SYS_munmap, p, bytes);
}
#endif
