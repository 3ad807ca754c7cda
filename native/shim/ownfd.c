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
