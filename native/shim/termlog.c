/*
 * The Kubernetes termination message, written from the OOM exit path inside
 * the application container (the sidecar cannot reach that container's
 * /dev/termination-log): reason, peak, limit, the top line of the largest
 * stack at the peak (its innermost frame outside installed packages and the
 * standard library, as the report's summary picks it) and where the report
 * comes from (the dump in the run dir; the watcher renders it).
 *
 * Path: HIGHWATER_TERMINATION_LOG, else /dev/termination-log. The file is
 * never created, never followed through a symlink, must be a regular file,
 * and opening never blocks (O_NONBLOCK: a FIFO without reader fails at once).
 * At most 4096 bytes (the kubelet's limit per container). No malloc, no stdio
 * streams: a fixed buffer and write(2), like log.c.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hw.h"

#define HW_TERMLOG_MAX 4096

/* `350.0 MiB`, in integers: no floating-point printf on the way out. */
static void hw__human(char *out, size_t cap, uint64_t bytes) {
  static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  uint64_t div = 1;
  while (bytes / div >= 1024 && u < 4) div *= 1024, u++;
  if (u == 0) {
    snprintf(out, cap, "%llu B", (unsigned long long)bytes);
    return;
  }
  uint64_t tenths = (bytes * 10 + div / 2) / div; /* bytes < 2^63: no overflow below 1 EiB */
  snprintf(out, cap, "%llu.%llu %s", (unsigned long long)(tenths / 10),
           (unsigned long long)(tenths % 10), units[u]);
}

/* Installed packages, the standard library, frozen modules: not the program's own line. */
static int hw__library_file(const char *f, size_t n) {
  char buf[512];
  if (n >= sizeof buf) n = sizeof buf - 1;
  memcpy(buf, f, n);
  buf[n] = '\0';
  if (strstr(buf, "site-packages/") || strstr(buf, "dist-packages/")) return 1;
  if (strncmp(buf, "<frozen ", 8) == 0) return 1;
  const char *p = strstr(buf, "/lib/python");
  if (p) {
    p += 11;
    while ((*p >= '0' && *p <= '9') || *p == '.') p++;
    if (*p == '/') return 1;
  }
  return 0;
}

/* `file:line in function` of the largest stack at the peak; "" when unknown. */
static void hw__top_line(char *out, size_t cap) {
  out[0] = '\0';
  hw_state_header *h = hw__state.hdr;
  if (!h || !hw__state.nodes || !hw__state.funcs || !hw__state.strings) return;
  uint64_t count = __atomic_load_n(&h->node_count, __ATOMIC_ACQUIRE);
  const int64_t *bytes = h->peak_source == 1 ? (const int64_t *)hw__state.live : hw__state.snapshot;
  if (!bytes) return;
  uint64_t best = 0;
  int64_t most = 0;
  for (uint64_t n = 1; n < count; n++)
    if (bytes[n] > most) most = bytes[n], best = n;
  if (!best) return;
  /* Innermost own-code frame; the innermost frame when all are library frames. */
  uint32_t pick = HW_NODE_NONE, n = (uint32_t)best;
  for (int depth = 0; n != 0 && n < count && depth < 4096; depth++) {
    const hw_node_rec *r = &hw__state.nodes[n];
    if (r->func < h->func_count) {
      const hw_func_rec *f = &hw__state.funcs[r->func];
      if (pick == HW_NODE_NONE) pick = n;
      if (!hw__library_file(hw__state.strings + f->file_off, f->file_len)) {
        pick = n;
        break;
      }
    }
    n = r->parent;
  }
  if (pick == HW_NODE_NONE) return;
  const hw_node_rec *r = &hw__state.nodes[pick];
  const hw_func_rec *f = &hw__state.funcs[r->func];
  const char *file = hw__state.strings + f->file_off;
  size_t flen = f->file_len;
  for (size_t i = flen; i > 0; i--) /* basename, as the report's summary */
    if (file[i - 1] == '/') {
      file += i;
      flen -= i;
      break;
    }
  snprintf(out, cap, "%.*s:%u in %.*s", (int)(flen > 400 ? 400 : flen), file, r->line,
           (int)(f->name_len > 200 ? 200 : f->name_len), hw__state.strings + f->name_off);
}

void hw__termlog_write(const char *reason, const char *dump_path) {
  const char *path = getenv("HIGHWATER_TERMINATION_LOG");
  if (!path || !*path) path = "/dev/termination-log";
  struct stat st;
  if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode))
    return; /* absent, a symlink, a device, a FIFO */
  int fd = open(path, O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) return;
  struct stat fst;
  if (fstat(fd, &fst) != 0 || !S_ISREG(fst.st_mode) || fst.st_ino != st.st_ino ||
      fst.st_dev != st.st_dev) {
    close(fd);
    return;
  }
  char peak[32] = "?", limit[48] = "", line[640];
  hw_state_header *h = hw__state.hdr;
  if (h) hw__human(peak, sizeof peak, (uint64_t)(h->peak_bytes > 0 ? h->peak_bytes : 0));
  if (h && h->limit_bytes) {
    char l[32];
    hw__human(l, sizeof l, h->limit_bytes);
    snprintf(limit, sizeof limit, " of limit %s", l);
  }
  hw__top_line(line, sizeof line);
  char buf[HW_TERMLOG_MAX];
  int n = snprintf(buf, sizeof buf,
                   "highwater: out of memory (%s): peak %s%s at %s\n"
                   "report: highwater renders it from %s%s\n"
                   "exit code 53: stopped by highwater before the kernel's OOM killer\n",
                   reason, peak, limit, line[0] ? line : "(no Python frame)",
                   dump_path && *dump_path ? dump_path : "the state file in ",
                   dump_path && *dump_path ? "" : hw__config.run_dir);
  if (n < 0) n = 0;
  if (n >= (int)sizeof buf) n = (int)sizeof buf - 1; /* snprintf counts what did not fit */
  if (ftruncate(fd, 0) == 0) {
    ssize_t w = write(fd, buf, (size_t)n);
    (void)w;
  }
  close(fd);
}
