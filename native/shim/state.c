/*
 * The state file: one MAP_SHARED file-backed mapping in the run dir holding
 * the stack table, live bytes per node and the peak snapshot. Because it is
 * a shared file mapping, what is written is in the page cache the moment it
 * is stored: after a SIGKILL the watcher still reads a consistent peak.
 * Layout: docs/protocol.md. The file is sparse; only touched pages cost.
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

hw_state_t hw__state;

static uint64_t hw__page_up(uint64_t v) { return (v + HW_PAGE - 1) & ~(uint64_t)(HW_PAGE - 1); }

int hw__state_open(void) {
  char path[600];
  snprintf(path, sizeof path, "%s/hw-%d.state", hw__config.run_dir, (int)getpid());
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

void hw__state_close_in_child(void) {
  /* The child must never write the parent's state: drop the mapping. */
  if (hw__state.hdr) syscall(SYS_munmap, (void *)hw__state.hdr, hw__state.map_bytes);
  memset(&hw__state, 0, sizeof hw__state);
}

uint32_t hw__state_add_string(const char *str, size_t len) {
  hw_state_t *s = &hw__state;
  if (len > HW_STRING_MAX) len = HW_STRING_MAX;
  if (s->string_used + len > s->hdr->string_capacity) return UINT32_MAX;
  uint32_t off = (uint32_t)s->string_used;
  memcpy(s->strings + off, str, len);
  s->string_used += len;
  return off;
}
