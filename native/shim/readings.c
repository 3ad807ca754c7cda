/*
 * Memory readings of this process's own memory cgroup (v1 or v2) and of the
 * host, read with open/read into buffers of our own pages (this runs inside
 * malloc, on the program's thread stack).
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

/* Test-only: HIGHWATER_TEST_ROOT prefixes every path read here, so the C
 * readers run on the same fixture trees (cgroup v1 and v2) as the TypeScript
 * ones. Copied once by the first reader (claimed 0 -> 1, published 2 with
 * release); a reader that comes before that uses the environment directly.
 * Empty in production. */
static char hw__root[256];
static _Atomic int hw__root_state;

static const char *hw__test_root(void) {
  if (atomic_load_explicit(&hw__root_state, memory_order_acquire) == 2) return hw__root;
  const char *r = getenv("HIGHWATER_TEST_ROOT");
  if (!r || strlen(r) >= sizeof hw__root) r = "";
  int expected = 0;
  if (atomic_compare_exchange_strong_explicit(&hw__root_state, &expected, 1, memory_order_acq_rel,
                                              memory_order_acquire)) {
    strcpy(hw__root, r);
    atomic_store_explicit(&hw__root_state, 2, memory_order_release);
  }
  return r;
}

static const char *hw__path(const char *path, char *buf, size_t cap) {
  const char *root = hw__test_root();
  if (!root[0]) return path;
  snprintf(buf, cap, "%s%s", root, path);
  return buf;
}

/* The limiting cgroup, found once. Discovery fills a private copy; the first
 * finder publishes it (state 0 -> 1 claims, 2 = published, release) and
 * readers use the published copy only after an acquire load sees 2. Until
 * then a reader finds it for itself: the allocating thread and the control
 * thread may both be first, and neither may read a half-filled directory and
 * version (that read the host only, once). No lock: nothing can be left held
 * across a fork. */
typedef struct {
  char dir[512]; /* the limiting cgroup directory, "" = host only */
  char own[512]; /* this process's own cgroup directory (killsnap.c: v1 counts a kill only there) */
  int version;   /* 1 or 2, 0 = none */
} hw_cgroup_t;
static hw_cgroup_t hw__cg;
static _Atomic int hw__cg_state;

/* The big buffers of a reading live in pages of their own, not on the stack:
 * this runs inside malloc, on whatever stack the program's thread has (a 32
 * KiB thread stack is legal, and these were 32 KiB). */
typedef struct {
  char cgroup[8192], mountinfo[16384], file[8192];
  hw_cgroup_paths paths;
  hw_cgroup_mounts mounts;
  char dir[512], best[512];
  hw_cgroup_t mine; /* a reader's own find, before one is published (1 KiB) */
} hw_scratch_t;

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

static void hw__find_cgroup(hw_scratch_t *sc, hw_cgroup_t *found) {
  memset(found, 0, sizeof *found);
  if (hw__read_file("/proc/self/cgroup", sc->cgroup, sizeof sc->cgroup) <= 0) return;
  if (hw__read_file("/proc/self/mountinfo", sc->mountinfo, sizeof sc->mountinfo) <= 0) return;
  hw_cgroup_paths *paths = &sc->paths;
  hw_cgroup_mounts *m = &sc->mounts;
  hw__parse_proc_cgroup(sc->cgroup, paths);
  hw__parse_mountinfo(sc->mountinfo, m);
  char *dir = sc->dir;
  uint64_t dummy;
  if (m->v2_mnt[0] && paths->v2_path[0] &&
      hw__join_cgroup(m->v2_mnt, m->v2_root, paths->v2_path, dir, sizeof sc->dir) == 0 &&
      hw__read_u64_file(dir, "memory.current", &dummy, NULL) == 0) {
    strcpy(found->dir, dir);
    found->version = 2;
  }
  if (!found->version && m->v1_mnt[0] && paths->v1_path[0] &&
      hw__join_cgroup(m->v1_mnt, m->v1_root, paths->v1_path, dir, sizeof sc->dir) == 0 &&
      hw__read_u64_file(dir, "memory.usage_in_bytes", &dummy, NULL) == 0) {
    strcpy(found->dir, dir);
    found->version = 1;
  }
  if (!found->version) return;
  strcpy(found->own, found->dir);
  /* Walk up to the mount point: the ancestor with the smallest limit rules. */
  const char *mnt = found->version == 2 ? m->v2_mnt : m->v1_mnt;
  const char *limit_file = found->version == 2 ? "memory.max" : "memory.limit_in_bytes";
  char *best = sc->best;
  uint64_t best_limit = UINT64_MAX;
  strcpy(best, found->dir);
  strcpy(dir, found->dir);
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
  strcpy(found->dir, best);
}

/* The published cgroup, or `mine` filled by this reader (and published when
 * it is the first). */
static const hw_cgroup_t *hw__cgroup(hw_scratch_t *sc, hw_cgroup_t *mine) {
  if (atomic_load_explicit(&hw__cg_state, memory_order_acquire) == 2) return &hw__cg;
  hw__find_cgroup(sc, mine);
  int expected = 0;
  if (atomic_compare_exchange_strong_explicit(&hw__cg_state, &expected, 1, memory_order_acq_rel,
                                              memory_order_acquire)) {
    hw__cg = *mine;
    atomic_store_explicit(&hw__cg_state, 2, memory_order_release);
  }
  return mine;
}

int hw__memory_cgroup_dirs(const char **own, const char **limiting, int *version) {
  if (atomic_load_explicit(&hw__cg_state, memory_order_acquire) != 2 || !hw__cg.version) return 0;
  *own = hw__cg.own;
  *limiting = hw__cg.dir;
  *version = hw__cg.version;
  return 1;
}

/* The test root (HIGHWATER_TEST_ROOT) before `path`, as every read here. */
ssize_t hw__read_cgroup_file(const char *path, char *buf, size_t cap) {
  return hw__read_file(path, buf, cap);
}

/* One scratch kept for the readings, taken by whichever thread reads (the
 * guard's, on an allocating thread, or the control thread's); a thread that
 * finds it taken maps its own. Mapping and unmapping ~36 KiB at every
 * reading cost an allocation-heavy program 3 300 syscalls and 15 000 page
 * faults a second (bench/workloads/malloc_heavy.py). */
static hw_scratch_t *hw__scratch_kept;
static _Atomic int hw__scratch_taken;

static hw_scratch_t *hw__scratch_take(int *kept) {
  *kept = 0;
  if (!atomic_exchange_explicit(&hw__scratch_taken, 1, memory_order_acquire)) {
    if (!hw__scratch_kept) hw__scratch_kept = hw__pages_alloc(sizeof *hw__scratch_kept);
    if (hw__scratch_kept) {
      *kept = 1;
      memset(hw__scratch_kept, 0, sizeof *hw__scratch_kept); /* as fresh pages are */
      return hw__scratch_kept;
    }
    atomic_store_explicit(&hw__scratch_taken, 0, memory_order_release);
  }
  return hw__pages_alloc(sizeof(hw_scratch_t));
}

static void hw__scratch_give(hw_scratch_t *sc, int kept) {
  if (kept) atomic_store_explicit(&hw__scratch_taken, 0, memory_order_release);
  else hw__pages_free(sc, sizeof *sc);
}

int hw__read_memory(hw_readings_t *r) {
  memset(r, 0, sizeof *r);
  int kept;
  hw_scratch_t *sc = hw__scratch_take(&kept);
  if (!sc) return -1; /* nothing known: the guard never guesses an OOM */
  const hw_cgroup_t *cg = hw__cgroup(sc, &sc->mine);
  char *buf = sc->file;
  const size_t bufcap = sizeof sc->file;
  if (hw__read_file("/proc/meminfo", buf, bufcap) > 0) {
    uint64_t kb;
    if (hw__stat_value(buf, "MemAvailable", &kb) == 0) r->host_available = kb * 1024;
    else if (hw__stat_value(buf, "MemFree", &kb) == 0)
      r->host_available = kb * 1024; /* pre-3.14 kernels */
    if (hw__stat_value(buf, "MemTotal", &kb) == 0) r->host_total = kb * 1024;
  }
  r->source = HW_SOURCE_HOST;
  if (cg->version == 2) {
    int is_max = 0;
    if (hw__read_u64_file(cg->dir, "memory.current", &r->usage, NULL) == 0) {
      r->source = HW_SOURCE_CGROUP_V2;
      if (hw__read_u64_file(cg->dir, "memory.max", &r->limit, &is_max) != 0 || is_max) r->limit = 0;
      char path[640];
      snprintf(path, sizeof path, "%s/memory.stat", cg->dir);
      if (hw__read_file(path, buf, bufcap) > 0) {
        hw__stat_value(buf, "inactive_file", &r->inactive_file);
        hw__stat_value(buf, "active_file", &r->active_file);
      }
      hw__read_u64_file(cg->dir, "memory.swap.current", &r->swap, NULL);
    }
  } else if (cg->version == 1) {
    if (hw__read_u64_file(cg->dir, "memory.usage_in_bytes", &r->usage, NULL) == 0) {
      r->source = HW_SOURCE_CGROUP_V1;
      if (hw__read_u64_file(cg->dir, "memory.limit_in_bytes", &r->limit, NULL) != 0 ||
          r->limit >= (1ull << 62))
        r->limit = 0;
      char path[640];
      snprintf(path, sizeof path, "%s/memory.stat", cg->dir);
      if (hw__read_file(path, buf, bufcap) > 0) {
        if (hw__stat_value(buf, "total_inactive_file", &r->inactive_file) != 0)
          hw__stat_value(buf, "inactive_file", &r->inactive_file);
        if (hw__stat_value(buf, "total_active_file", &r->active_file) != 0)
          hw__stat_value(buf, "active_file", &r->active_file);
      }
      uint64_t memsw;
      if (hw__read_u64_file(cg->dir, "memory.memsw.usage_in_bytes", &memsw, NULL) == 0 &&
          memsw > r->usage)
        r->swap = memsw - r->usage;
    }
  }
  if (r->source == HW_SOURCE_HOST) {
    /* No cgroup: the process's own swap. */
    if (hw__read_file("/proc/self/status", buf, bufcap) > 0) {
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
  hw__scratch_give(sc, kept);
  return 0;
}

/* The control thread and an allocating thread's guard may publish at once:
 * each field is stored whole, the last writer wins. */
#define HW_PUT HW_HDR_PUT

void hw__publish_readings(const hw_readings_t *r) {
  hw_state_header *h = hw__state.hdr;
  if (!h) return;
  HW_PUT(h->limit_bytes, r->limit);
  HW_PUT(h->usage_bytes, r->usage);
  HW_PUT(h->inactive_file_bytes, r->inactive_file);
  HW_PUT(h->working_set_bytes, r->working_set);
  HW_PUT(h->host_available_bytes, r->host_available);
  HW_PUT(h->available_bytes, r->available);
  HW_PUT(h->swap_bytes, r->swap);
  HW_PUT(h->active_file_bytes, r->active_file);
  HW_PUT(h->readings_source, (uint64_t)r->source);
  HW_PUT(h->updated_ms, hw__now_ms());
  hw__timeline_sample(0);
}
