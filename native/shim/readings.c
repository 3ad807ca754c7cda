/*
 * Memory readings of this process's own memory cgroup (v1 or v2) and of the
 * host, read with open/read into stack buffers (this runs inside malloc).
 * The cgroup is found once from /proc/self/cgroup and /proc/self/mountinfo;
 * the ancestor with the smallest limit is the one that will OOM us.
 * Working set = usage - inactive_file (kubelet, cAdvisor).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hw.h"

static char hw__cg_dir[512]; /* the limiting cgroup directory, "" = host only */
/* Test-only: HIGHWATER_TEST_ROOT prefixes every path read here, so the C
 * readers run on the same fixture trees (cgroup v1 and v2) as the TypeScript
 * ones. Read once; empty in production. */
static char hw__root[256];
static int hw__root_read;

static const char *hw__path(const char *path, char *buf, size_t cap) {
  if (!hw__root_read) {
    const char *r = getenv("HIGHWATER_TEST_ROOT");
    if (r && strlen(r) < sizeof hw__root) strcpy(hw__root, r);
    hw__root_read = 1;
  }
  if (!hw__root[0]) return path;
  snprintf(buf, cap, "%s%s", hw__root, path);
  return buf;
}
static int hw__cg_version;   /* 1 or 2, 0 = none */
static int hw__cg_found;

/* Open-read-close, never keeping an fd (the program may close any number). */
static ssize_t hw__read_file(const char *path, char *buf, size_t cap) {
  char rooted[700];
  return hw__read_whole(hw__path(path, rooted, sizeof rooted), buf, cap);
}

static int hw__read_u64_file(const char *dir, const char *name, uint64_t *out, int *is_max) {
  char path[640], buf[64];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  if (hw__read_file(path, buf, sizeof buf) <= 0) return -1;
  return hw__parse_value_file(buf, out, is_max);
}

static void hw__find_cgroup(void) {
  hw__cg_found = 1;
  char cg[8192], mi[16384];
  if (hw__read_file("/proc/self/cgroup", cg, sizeof cg) <= 0) return;
  if (hw__read_file("/proc/self/mountinfo", mi, sizeof mi) <= 0) return;
  hw_cgroup_paths paths;
  hw_cgroup_mounts m;
  hw__parse_proc_cgroup(cg, &paths);
  hw__parse_mountinfo(mi, &m);
  char dir[512];
  uint64_t dummy;
  if (m.v2_mnt[0] && paths.v2_path[0] &&
      hw__join_cgroup(m.v2_mnt, m.v2_root, paths.v2_path, dir, sizeof dir) == 0 &&
      hw__read_u64_file(dir, "memory.current", &dummy, NULL) == 0) {
    strcpy(hw__cg_dir, dir);
    hw__cg_version = 2;
  }
  if (!hw__cg_version && m.v1_mnt[0] && paths.v1_path[0] &&
      hw__join_cgroup(m.v1_mnt, m.v1_root, paths.v1_path, dir, sizeof dir) == 0 &&
      hw__read_u64_file(dir, "memory.usage_in_bytes", &dummy, NULL) == 0) {
    strcpy(hw__cg_dir, dir);
    hw__cg_version = 1;
  }
  if (!hw__cg_version) return;
  /* Walk up to the mount point: the ancestor with the smallest limit rules. */
  const char *mnt = hw__cg_version == 2 ? m.v2_mnt : m.v1_mnt;
  const char *limit_file = hw__cg_version == 2 ? "memory.max" : "memory.limit_in_bytes";
  char best[512];
  uint64_t best_limit = UINT64_MAX;
  strcpy(best, hw__cg_dir);
  strcpy(dir, hw__cg_dir);
  size_t mlen = strlen(mnt);
  for (;;) {
    uint64_t lim;
    int is_max = 0;
    if (hw__read_u64_file(dir, limit_file, &lim, &is_max) == 0 && !is_max && lim > 0 &&
        lim < (1ull << 62) && lim < best_limit) {
      best_limit = lim;
      strcpy(best, dir);
    }
    if (strlen(dir) <= mlen) break;
    char *slash = strrchr(dir, '/');
    if (!slash || (size_t)(slash - dir) < mlen) break;
    *slash = '\0';
  }
  strcpy(hw__cg_dir, best);
}

int hw__read_memory(hw_readings_t *r) {
  memset(r, 0, sizeof *r);
  if (!hw__cg_found) hw__find_cgroup();
  char buf[8192];
  if (hw__read_file("/proc/meminfo", buf, sizeof buf) > 0) {
    uint64_t kb;
    if (hw__stat_value(buf, "MemAvailable", &kb) == 0) r->host_available = kb * 1024;
    else if (hw__stat_value(buf, "MemFree", &kb) == 0) r->host_available = kb * 1024; /* pre-3.14 kernels */
    if (hw__stat_value(buf, "MemTotal", &kb) == 0) r->host_total = kb * 1024;
  }
  r->source = 3;
  if (hw__cg_version == 2) {
    int is_max = 0;
    if (hw__read_u64_file(hw__cg_dir, "memory.current", &r->usage, NULL) == 0) {
      r->source = 2;
      if (hw__read_u64_file(hw__cg_dir, "memory.max", &r->limit, &is_max) != 0 || is_max)
        r->limit = 0;
      char path[640];
      snprintf(path, sizeof path, "%s/memory.stat", hw__cg_dir);
      if (hw__read_file(path, buf, sizeof buf) > 0) {
        hw__stat_value(buf, "inactive_file", &r->inactive_file);
        hw__stat_value(buf, "active_file", &r->active_file);
      }
      hw__read_u64_file(hw__cg_dir, "memory.swap.current", &r->swap, NULL);
    }
  } else if (hw__cg_version == 1) {
    if (hw__read_u64_file(hw__cg_dir, "memory.usage_in_bytes", &r->usage, NULL) == 0) {
      r->source = 1;
      if (hw__read_u64_file(hw__cg_dir, "memory.limit_in_bytes", &r->limit, NULL) != 0 ||
          r->limit >= (1ull << 62))
        r->limit = 0;
      char path[640];
      snprintf(path, sizeof path, "%s/memory.stat", hw__cg_dir);
      if (hw__read_file(path, buf, sizeof buf) > 0) {
        if (hw__stat_value(buf, "total_inactive_file", &r->inactive_file) != 0)
          hw__stat_value(buf, "inactive_file", &r->inactive_file);
        if (hw__stat_value(buf, "total_active_file", &r->active_file) != 0)
          hw__stat_value(buf, "active_file", &r->active_file);
      }
      uint64_t memsw;
      if (hw__read_u64_file(hw__cg_dir, "memory.memsw.usage_in_bytes", &memsw, NULL) == 0 &&
          memsw > r->usage)
        r->swap = memsw - r->usage;
    }
  }
  if (r->source == 3) {
    /* No cgroup: the process's own swap. */
    if (hw__read_file("/proc/self/status", buf, sizeof buf) > 0) {
      uint64_t kb;
      if (hw__stat_value(buf, "VmSwap", &kb) == 0) r->swap = kb * 1024;
    }
  }
  r->working_set = r->usage > r->inactive_file ? r->usage - r->inactive_file : 0;
  r->available = r->host_available;
  r->available_known = r->host_available > 0 || r->limit > 0;
  if (r->limit) {
    uint64_t left = r->limit > r->working_set ? r->limit - r->working_set : 0;
    if (!r->host_available || left < r->available) r->available = left;
  }
  return 0;
}

void hw__publish_readings(const hw_readings_t *r) {
  hw_state_header *h = hw__state.hdr;
  if (!h) return;
  h->limit_bytes = r->limit;
  h->usage_bytes = r->usage;
  h->inactive_file_bytes = r->inactive_file;
  h->working_set_bytes = r->working_set;
  h->host_available_bytes = r->host_available;
  h->available_bytes = r->available;
  h->swap_bytes = r->swap;
  h->active_file_bytes = r->active_file;
  h->readings_source = (uint64_t)r->source;
  h->updated_ms = hw__now_ms();
  hw__timeline_sample(0);
}
