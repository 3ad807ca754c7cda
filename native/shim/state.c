/*
 * The state file: one MAP_SHARED file-backed mapping in the run dir holding
 * the stack table, live bytes per node and the peak snapshot. Because it is
 * a shared file mapping, what is written is in the page cache the moment it
 * is stored: after a SIGKILL the watcher still reads a consistent peak.
 * Layout: docs/protocol.md. The file is sparse; only touched pages cost.
 *
 * Space: storing into a page of a shared file mapping whose block the
 * filesystem cannot supply (a full disk, a full tmpfs or size-limited
 * emptyDir) raises SIGBUS in the program. So no page is written before its
 * blocks are reserved with fallocate(2) (zeros written through the fd where
 * the filesystem has no fallocate): the header, the timeline and a first slice of each
 * table at creation, then slices as the tables grow, every per-node array in
 * step with `nodes`. The fd is not kept (the program may close it): growth
 * reopens the file by name and uses it only when it is the same inode as
 * the mapping. Slices double (capped), so reopens are few. When a
 * reservation fails the table stops growing (a new frame folds into its
 * caller, a new name is dropped), space_short says which, one log line.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "hw.h"

#define HW_NODE_CAP (4u << 20)
#define HW_FUNC_CAP (512u << 10)
#define HW_STRING_CAP (32u << 20)
/* First slices reserved at creation; later ones double, up to the _MAX. */
#define HW_NODE_SLICE 1024u
#define HW_NODE_SLICE_MAX (64u << 10)
#define HW_FUNC_SLICE 512u
#define HW_FUNC_SLICE_MAX (16u << 10)
#define HW_STRING_SLICE (32u << 10)
#define HW_STRING_SLICE_MAX (1u << 20)

hw_state_t hw__state;

static uint64_t hw__page_up(uint64_t v) { return (v + HW_PAGE - 1) & ~(uint64_t)(HW_PAGE - 1); }

/* A filesystem without fallocate (ramfs, some FUSE and network
 * filesystems): the blocks are claimed by writing zeros through the fd, which
 * fails with ENOSPC instead of raising SIGBUS later. Only whole pages past
 * `off`'s own page are written: that page, when `off` is not page-aligned,
 * belongs to the range reserved before (reservations end on page
 * boundaries) and may already hold data; the pages written here hold
 * nothing yet (nothing is stored before its range is reserved), so zeros
 * change no content. */
static int hw__reserve_by_writing(int fd, uint64_t off, uint64_t end) {
  static const char zeros[64 << 10];
  for (uint64_t at = hw__page_up(off); at < end;) {
    size_t n = end - at < sizeof zeros ? (size_t)(end - at) : sizeof zeros;
    ssize_t w = pwrite(fd, zeros, n, (off_t)at);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      if (w == 0) errno = ENOSPC;
      return -1;
    }
    at += (uint64_t)w;
  }
  return 0;
}

/* fallocate over the whole pages of [off, off + bytes): a store dirties its
 * whole page, and on a filesystem whose blocks are smaller than a page
 * writeback needs every block of it. *end gets the rounded end. */
static int hw__fallocate_pages(int fd, uint64_t off, uint64_t bytes, uint64_t *end) {
  uint64_t start = off & ~(uint64_t)(HW_PAGE - 1);
  *end = hw__page_up(off + bytes);
  int r;
  do r = fallocate(fd, 0, (off_t)start, (off_t)(*end - start));
  while (r != 0 && errno == EINTR);
  return r;
}

static int hw__no_fallocate(void) { return errno == EOPNOTSUPP || errno == ENOSYS; }

int hw__reserve_blocks(int fd, uint64_t off, uint64_t bytes) {
  if (!bytes) return 0;
  uint64_t end;
  int r = hw__fallocate_pages(fd, off, bytes, &end);
  if (r != 0 && hw__no_fallocate()) return hw__reserve_by_writing(fd, off, end);
  return r;
}

int hw__reserve_existing(int fd, uint64_t off, uint64_t bytes) {
  if (!bytes) return 0;
  uint64_t end;
  return hw__fallocate_pages(fd, off, bytes, &end) == 0 || hw__no_fallocate() ? 0 : -1;
}

/* Node ids [from, to) in every per-node array: nodes, live, snapshot, cpeak, kill. */
static int hw__reserve_node_range(int fd, const hw_state_header *h, uint64_t from, uint64_t to) {
  uint64_t n = to - from;
  return hw__reserve_blocks(fd, h->off_nodes + from * sizeof(hw_node_rec),
                            n * sizeof(hw_node_rec)) ||
         hw__reserve_blocks(fd, h->off_live + from * 8, n * 8) ||
         hw__reserve_blocks(fd, h->off_snapshot + from * 8, n * 8) ||
         hw__reserve_blocks(fd, h->off_cpeak + from * 8, n * 8) ||
         hw__reserve_blocks(fd, h->off_kill + from * 8, n * 8);
}

static uint64_t hw__next_slice(uint64_t reserved, uint64_t need, uint64_t first, uint64_t max,
                               uint64_t cap) {
  uint64_t step = reserved < first ? first : reserved > max ? max : reserved;
  uint64_t to = reserved + step;
  if (to < need) to = need;
  return to > cap ? cap : to;
}

int hw__state_open(void) {
  char path[600];
  snprintf(path, sizeof path, "%s/hw-%d.state", hw__config.run_dir, (int)getpid());
  /* A state file under our pid already: most likely the program that exec'd
   * this one in the same process, whose exit dump must keep its name. */
  struct stat st;
  if (lstat(path, &st) == 0) hw__dump_seq_after_taken();
  /* O_NONBLOCK: a FIFO planted under our name must not hang the program. */
  hw_ownfd own;
  if (hw__own_open(&own, path, O_RDWR | O_CREAT | O_TRUNC | O_NONBLOCK, hw__config.file_mode) !=
      0) {
    hw__log("cannot create state file %s: %s; not tracking", path, strerror(errno));
    return -1;
  }
  if (!S_ISREG(own.mode)) {
    hw__log("state file %s is not a regular file; not tracking", path);
    hw__own_close(&own);
    return -1;
  }
  int fd = own.fd;
  uint64_t off = HW_STATE_HEADER_BYTES;
  uint64_t off_funcs = off;
  off += hw__page_up((uint64_t)HW_FUNC_CAP * sizeof(hw_func_rec));
  uint64_t off_nodes = off;
  off += hw__page_up((uint64_t)HW_NODE_CAP * sizeof(hw_node_rec));
  uint64_t off_strings = off;
  off += hw__page_up(HW_STRING_CAP);
  uint64_t off_live = off;
  off += hw__page_up((uint64_t)HW_NODE_CAP * 8);
  uint64_t off_snapshot = off;
  off += hw__page_up((uint64_t)HW_NODE_CAP * 8);
  uint64_t off_timeline = off;
  off += hw__page_up(hw__timeline_bytes());
  uint64_t off_cpeak = off; /* container.c: per node, at the container peak */
  off += hw__page_up((uint64_t)HW_NODE_CAP * 8);
  uint64_t off_kill = off; /* killsnap.c: per node, when the kernel's OOM kill was seen */
  off += hw__page_up((uint64_t)HW_NODE_CAP * 8);

  if (!hw__own_check(&own) || ftruncate(fd, (off_t)off) != 0) {
    hw__log("cannot size state file %s: %s; not tracking", path, strerror(errno));
    hw__own_close(&own);
    return -1;
  }
  /* Every page written from here on is reserved first (see the top). The
   * header's offsets are not stored yet: a stand-in carries them. */
  hw_state_header at = {0};
  at.off_nodes = off_nodes;
  at.off_live = off_live;
  at.off_snapshot = off_snapshot;
  at.off_cpeak = off_cpeak;
  at.off_kill = off_kill;
  if (!hw__own_check(&own) || hw__reserve_blocks(fd, 0, HW_STATE_HEADER_BYTES) != 0 ||
      hw__reserve_blocks(fd, off_timeline, hw__timeline_bytes()) != 0 ||
      hw__reserve_node_range(fd, &at, 0, HW_NODE_SLICE) != 0 ||
      hw__reserve_blocks(fd, off_funcs, (uint64_t)HW_FUNC_SLICE * sizeof(hw_func_rec)) != 0 ||
      hw__reserve_blocks(fd, off_strings, HW_STRING_SLICE) != 0) {
    int e = errno;
    hw__own_close(&own);
    unlink(path); /* ours, empty: nothing for the watcher to misread */
    hw__log("no space for the state file in %s (%s: about %u KiB needed at start); not "
            "tracking, the program runs on: give the run dir more room",
            hw__config.run_dir, strerror(e),
            (unsigned)((HW_STATE_HEADER_BYTES + hw__timeline_bytes() +
                        HW_NODE_SLICE * (sizeof(hw_node_rec) + 4 * 8) +
                        HW_FUNC_SLICE * sizeof(hw_func_rec) + HW_STRING_SLICE) >>
                       10));
    return -1;
  }
  /* The mapping is all we keep: no fd for the program to close under us. */
  long m = hw__own_check(&own) ? syscall(SYS_mmap, (void *)0, (size_t)off, PROT_READ | PROT_WRITE,
                                         MAP_SHARED, fd, 0)
                               : -1;
  hw__own_close(&own);
  if (m == -1) {
    hw__log("cannot map state file %s; not tracking", path);
    return -1;
  }
  char *base = (char *)m;
  /* No read-ahead on faults: the file is sparse, and each first touch of a
   * page otherwise had the kernel read (zero-fill) a whole read-ahead window
   * of holes around it, ~3 ms of a tracked process's start (bench/README.md,
   * "Child start-up"). Only a hint: on failure the mapping works as before. */
  madvise(base, (size_t)off, MADV_RANDOM);
  hw_state_t *s = &hw__state;
  s->map_bytes = (size_t)off;
  s->hdr = (hw_state_header *)base;
  s->funcs = (hw_func_rec *)(base + off_funcs);
  s->nodes = (hw_node_rec *)(base + off_nodes);
  s->strings = base + off_strings;
  s->live = (volatile int64_t *)(base + off_live);
  s->snapshot = (int64_t *)(base + off_snapshot);
  s->cpeak = (int64_t *)(base + off_cpeak);
  s->kill = (int64_t *)(base + off_kill);
  s->string_used = 0;
  s->nodes_reserved = HW_NODE_SLICE;
  s->funcs_reserved = HW_FUNC_SLICE;
  s->strings_reserved = HW_STRING_SLICE;
  s->file_dev = own.dev;
  s->file_ino = own.ino;

  hw_state_header *h = s->hdr;
  h->version = HW_STATE_VERSION;
  h->header_size = HW_STATE_HEADER_BYTES;
  h->pid = (uint64_t)getpid();
  h->node_capacity = HW_NODE_CAP;
  h->func_capacity = HW_FUNC_CAP;
  h->string_capacity = HW_STRING_CAP;
  h->off_funcs = off_funcs;
  h->off_nodes = off_nodes;
  h->off_strings = off_strings;
  h->off_live = off_live;
  h->off_snapshot = off_snapshot;
  h->off_timeline = off_timeline;
  h->off_cpeak = off_cpeak;
  h->off_kill = off_kill;
  h->container_slot = UINT64_MAX;
  h->start_ms = hw__now_ms();
  h->start_ticks = hw__proc_start_ticks(getpid(), NULL, NULL);
  h->parent_pid = (uint64_t)getppid();
  hw__timeline_init();
  h->peak_source = 1;
  /* Node 0: the root, no frame. */
  s->nodes[0].parent = 0;
  s->nodes[0].func = HW_NODE_NONE;
  h->node_count = 1;
  hw__read_whole("/proc/self/cmdline", h->argv, sizeof h->argv);
  if (!getcwd(h->cwd, sizeof h->cwd)) h->cwd[0] = '\0';
  h->updated_ms = hw__now_ms();
  /* The magic goes last, stored with release: a reader never sees a
   * half-initialised header. */
  uint64_t magic;
  memcpy(&magic, "HWSTATE1", 8);
  __atomic_store_n((uint64_t *)(void *)h->magic, magic, __ATOMIC_RELEASE);
  return 0;
}

void hw__state_discard(void) {
  hw_state_t *s = &hw__state;
  if (!s->hdr) return;
  char path[600];
  snprintf(path, sizeof path, "%s/hw-%d.state", hw__config.run_dir, (int)s->hdr->pid);
  struct stat st; /* our file still, not one planted under its name since */
  if (lstat(path, &st) == 0 && (uint64_t)st.st_dev == s->file_dev &&
      (uint64_t)st.st_ino == s->file_ino)
    unlink(path);
  syscall(SYS_munmap, (void *)s->hdr, s->map_bytes);
  memset(s, 0, sizeof *s);
}

void hw__state_close_in_child(void) {
  /* The child must never write the parent's state: drop the mapping. */
  if (hw__state.hdr) syscall(SYS_munmap, (void *)hw__state.hdr, hw__state.map_bytes);
  memset(&hw__state, 0, sizeof hw__state);
}

/* Out of space once: the table keeps what it has, for the rest of the run. */
static void hw__space_short(unsigned bit, const char *what, int err) {
  hw_state_header *h = hw__state.hdr;
  uint64_t was = __atomic_fetch_or(&h->space_short, (uint64_t)bit, __ATOMIC_RELAXED);
  if (was & bit) return;
  hw__log("no space in %s to grow the %s table (%s): stacks seen from now on may be folded "
          "into their callers; the program runs on. Give the run dir more room",
          hw__config.run_dir, what, strerror(err));
}

/* Reopens our own state file, verified to be the mapped one; -1 if not. */
static int hw__state_reopen(hw_ownfd *own) {
  char path[600];
  snprintf(path, sizeof path, "%s/hw-%d.state", hw__config.run_dir, (int)hw__state.hdr->pid);
  if (hw__own_open(own, path, O_RDWR | O_NONBLOCK, 0) != 0) return -1;
  if (!S_ISREG(own->mode) || own->dev != hw__state.file_dev || own->ino != hw__state.file_ino) {
    hw__own_close(own);
    errno = ESTALE; /* replaced or removed under us: not ours to extend */
    return -1;
  }
  return 0;
}

/* Grows one reservation to cover `need`; `*reserved` only moves on success.
 * A table that ran short stays short (space_short): no reopen per new stack. */
static int hw__state_grow(uint64_t *reserved, uint64_t need, uint64_t first, uint64_t max,
                          uint64_t cap, unsigned bit, const char *what) {
  hw_state_header *h = hw__state.hdr;
  if (need <= *reserved) return 0;
  if (need > cap || (__atomic_load_n(&h->space_short, __ATOMIC_RELAXED) & bit)) return -1;
  uint64_t to = hw__next_slice(*reserved, need, first, max, cap);
  hw_ownfd own;
  int r = hw__state_reopen(&own);
  if (r == 0 && hw__own_check(&own)) {
    if (bit == HW_SPACE_NODES) r = hw__reserve_node_range(own.fd, h, *reserved, to);
    else if (bit == HW_SPACE_FUNCS)
      r = hw__reserve_blocks(own.fd, h->off_funcs + *reserved * sizeof(hw_func_rec),
                             (to - *reserved) * sizeof(hw_func_rec));
    else r = hw__reserve_blocks(own.fd, h->off_strings + *reserved, to - *reserved);
  } else if (r == 0) {
    r = -1;
    errno = EBADF;
  }
  int e = errno;
  hw__own_close(&own);
  if (r != 0) {
    hw__space_short(bit, what, e);
    return -1;
  }
  *reserved = to;
  return 0;
}

int hw__state_reserve_nodes(uint64_t count) {
  return hw__state_grow(&hw__state.nodes_reserved, count, HW_NODE_SLICE, HW_NODE_SLICE_MAX,
                        hw__state.hdr->node_capacity, HW_SPACE_NODES, "stack");
}

int hw__state_reserve_funcs(uint64_t count) {
  return hw__state_grow(&hw__state.funcs_reserved, count, HW_FUNC_SLICE, HW_FUNC_SLICE_MAX,
                        hw__state.hdr->func_capacity, HW_SPACE_FUNCS, "function");
}

int hw__state_reserve_strings(uint64_t bytes) {
  return hw__state_grow(&hw__state.strings_reserved, bytes, HW_STRING_SLICE, HW_STRING_SLICE_MAX,
                        hw__state.hdr->string_capacity, HW_SPACE_STRINGS, "name");
}

uint32_t hw__state_add_string(const char *str, size_t len) {
  hw_state_t *s = &hw__state;
  if (len > HW_STRING_MAX) len = HW_STRING_MAX;
  if (s->string_used + len > s->hdr->string_capacity) return UINT32_MAX;
  if (hw__state_reserve_strings(s->string_used + len) != 0) return UINT32_MAX;
  uint32_t off = (uint32_t)s->string_used;
  memcpy(s->strings + off, str, len);
  s->string_used += len;
  return off;
}
