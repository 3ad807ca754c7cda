/*
 * File descriptors the shim owns, and proof that they still are its own.
 * The program may close, dup2 over or reuse any fd number at any moment
 * (daemons run closerange(3, ...)); a number alone proves nothing. Every fd
 * the shim opens is remembered with the dev/inode it had, and fstat'ed again
 * right before each read, write, accept or close: when it no longer matches,
 * the fd is the program's now and the shim forgets it without touching it.
 * The window between that fstat and the use is a few instructions; nothing
 * here keeps an fd longer than it must.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hw.h"

int hw__own_adopt(hw_ownfd *o, int fd) {
  struct stat st;
  o->fd = -1;
  if (fd < 0 || fstat(fd, &st) != 0) return -1;
  o->fd = fd;
  o->dev = (uint64_t)st.st_dev;
  o->ino = (uint64_t)st.st_ino;
  o->mode = (uint32_t)st.st_mode;
  return 0;
}

int hw__own_open(hw_ownfd *o, const char *path, int flags, unsigned mode) {
  int fd = open(path, flags | O_CLOEXEC | O_NOFOLLOW, (mode_t)mode);
  if (fd < 0) {
    o->fd = -1;
    return -1;
  }
  if (hw__own_adopt(o, fd) != 0) {
    int e = errno;
    close(fd); /* just opened and not yet visible to anything we call */
    errno = e;
    return -1;
  }
  return 0;
}

/* A long-lived fd (the control socket, the wake pipe) is moved up to a
 * number the program is unlikely to reach, so that the numbers the program
 * gets from open, pipe or socket are the ones it gets without the shim (the
 * kernel hands out the lowest free number: with the shim's fds at 3, 4 and
 * 5 the program's first open returned 6, not 3). A quarter below the soft fd
 * limit, capped at 1024 (a higher number grows the kernel's fd table for
 * nothing, and select() cannot take an fd past 1023): 768 under the usual
 * limits. If it cannot move (a tiny limit, every number up there taken), the
 * fd stays where it is, still ours and working. */
#define HW_FD_HIGH_CAP 1024

void hw__own_move_high(hw_ownfd *o) {
  struct rlimit rl;
  if (!hw__own_check(o) || getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  rlim_t cap = rl.rlim_cur < HW_FD_HIGH_CAP ? rl.rlim_cur : HW_FD_HIGH_CAP;
  if (cap < 16) return;
  int base = (int)(cap - cap / 4);
  if (o->fd >= base) return;
  int high = fcntl(o->fd, F_DUPFD_CLOEXEC, base);
  if (high < 0) return;
  close(o->fd); /* checked above, a few instructions ago: docs/protocol.md */
  o->fd = high; /* the same open file: dev and inode unchanged */
}

int hw__own_check(hw_ownfd *o) {
  if (o->fd < 0) return 0;
  struct stat st;
  if (fstat(o->fd, &st) == 0 && (uint64_t)st.st_dev == o->dev && (uint64_t)st.st_ino == o->ino)
    return 1;
  o->fd = -1; /* not ours any more: forget the number, never close it */
  return 0;
}

void hw__own_close(hw_ownfd *o) {
  if (hw__own_check(o)) close(o->fd);
  o->fd = -1;
}

ssize_t hw__own_read(hw_ownfd *o, void *buf, size_t n) {
  if (!hw__own_check(o)) {
    errno = EBADF;
    return -1;
  }
  ssize_t r;
  do r = read(o->fd, buf, n);
  while (r < 0 && errno == EINTR);
  return r;
}

ssize_t hw__own_write(hw_ownfd *o, const void *buf, size_t n) {
  if (!hw__own_check(o)) {
    errno = EBADF;
    return -1;
  }
  return write(o->fd, buf, n);
}

ssize_t hw__read_whole(const char *path, char *buf, size_t cap) {
  hw_ownfd o;
  if (cap == 0 || hw__own_open(&o, path, O_RDONLY | O_NONBLOCK, 0) != 0) return -1;
  if (!S_ISREG(o.mode)) { /* a FIFO or a device is nobody's memory reading */
    hw__own_close(&o);
    return -1;
  }
  size_t got = 0;
  while (got < cap - 1) {
    ssize_t n = hw__own_read(&o, buf + got, cap - 1 - got);
    if (n <= 0) break;
    got += (size_t)n;
  }
  hw__own_close(&o);
  buf[got] = '\0';
  return (ssize_t)got;
}
