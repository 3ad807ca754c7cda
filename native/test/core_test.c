/*
 * Unit tests of the shim's core, linked WITHOUT Python and without
 * LD_PRELOAD (every native/shim unit but hooks.c and init.c): the live-block
 * table, the anonymous-mmap ranges, the peak snapshot, the guard budget and
 * floor, the cgroup readings. One case per process (`core_test <case>`), so
 * every case starts from a fresh shim: the readings and the state file are
 * set up once per process in the shim. test/native/core.test.ts runs each,
 * also under ASAN+UBSAN and TSAN (native/Makefile: test-core, test-core-asan,
 * test-core-tsan).
 *
 * A case prints "ok <case>" and exits 0, or prints what differed and exits 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../shim/core.h"
#include "../shim/datastack.h"
#include "../shim/hw.h"

static int failures;
#define CHECK(cond, ...)                                                                           \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "%s:%d: %s: ", __FILE__, __LINE__, #cond);                                   \
      fprintf(stderr, __VA_ARGS__);                                                                \
      fputc('\n', stderr);                                                                         \
      failures++;                                                                                  \
    }                                                                                              \
  } while (0)
#define EQ(a, b)                                                                                   \
  CHECK((long long)(a) == (long long)(b), "%lld != %lld", (long long)(a), (long long)(b))

#define MiB (1ull << 20)
#define GiB (1ull << 30)

/* ---- fixtures ---- */

static char tmp_root[256];

static void write_file(const char *rel, const char *text) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", tmp_root, rel);
  for (char *p = path + strlen(tmp_root) + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    mkdir(path, 0700);
    *p = '/';
  }
  FILE *f = fopen(path, "w");
  if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
    perror(path);
    exit(2);
  }
}

static void make_tmp(void) {
  if (tmp_root[0]) return; /* one directory per case: fixture tree and run dir */
  snprintf(tmp_root, sizeof tmp_root, "%s/hw-core-XXXXXX",
           getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (!mkdtemp(tmp_root)) {
    perror("mkdtemp");
    exit(2);
  }
}

/* A container on a cgroup v2 host: limit `limit`, `current` in use, host
 * memory `host_total` of which `host_avail` available. Read through
 * HIGHWATER_TEST_ROOT (docs/protocol.md). */
static void cgroup_v2_tree(uint64_t limit, uint64_t current, uint64_t host_total,
                           uint64_t host_avail) {
  char text[512];
  make_tmp();
  write_file("proc/self/cgroup", "0::/\n");
  write_file("proc/self/mountinfo",
             "620 610 0:26 / / rw,relatime - overlay overlay rw\n"
             "630 620 0:30 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup rw\n");
  snprintf(text, sizeof text, "MemTotal: %llu kB\nMemFree: %llu kB\nMemAvailable: %llu kB\n",
           (unsigned long long)(host_total >> 10), (unsigned long long)(host_avail >> 10),
           (unsigned long long)(host_avail >> 10));
  write_file("proc/meminfo", text);
  write_file("proc/self/status", "Name:\tpython3\nVmSwap:\t0 kB\n");
  write_file("sys/fs/cgroup/cgroup.controllers", "memory\n");
  snprintf(text, sizeof text, "%llu\n", (unsigned long long)limit);
  write_file("sys/fs/cgroup/memory.max", text);
  snprintf(text, sizeof text, "%llu\n", (unsigned long long)current);
  write_file("sys/fs/cgroup/memory.current", text);
  write_file("sys/fs/cgroup/memory.swap.current", "0\n");
  write_file("sys/fs/cgroup/memory.stat", "anon 1000\ninactive_file 0\nactive_file 0\n");
  setenv("HIGHWATER_TEST_ROOT", tmp_root, 1);
}

/* A state file in a fresh run dir, tracking on, as the constructor and
 * hw_python_start leave it (without Python: every stack is the root's or a
 * node the test names). */
static void core_setup(void) {
  hw__resolve_real(); /* the test's malloc is libc's: the core frees through it */
  hw__config_load();
  make_tmp();
  snprintf(hw__config.run_dir, sizeof hw__config.run_dir, "%s/run", tmp_root);
  mkdir(hw__config.run_dir, 0700);
  if (hw__state_open() != 0) {
    fprintf(stderr, "no state file in %s\n", tmp_root);
    exit(2);
  }
  /* Nodes 1..99 exist: children of the root, so the tests can charge them. */
  for (uint32_t i = 1; i < 100; i++) EQ(hw__intern_node(0, 0, i), i);
  HW_SET_RELAXED(hw__tracking, 1);
}

static int64_t live(uint32_t node) { return hw__state.live[node]; }
static int64_t snap(uint32_t node) { return hw__state.snapshot[node]; }
static int64_t current(void) { return hw__state.hdr->current_bytes; }
static int64_t peak(void) { return hw__state.hdr->peak_bytes; }

/* A node's bytes at the peak, wherever the shim keeps them (docs/protocol.md). */
static int64_t at_peak(uint32_t node) {
  return hw__state.hdr->peak_source == 1 ? live(node) : snap(node);
}

/* ---- the live-block table ---- */

/* Against a plain reference: many blocks of both slot kinds (narrow: 16-byte
 * aligned, < 256 MiB; wide: odd addresses, huge sizes), growth from empty
 * through several resizes, deletes that shift probe chains back, shrink after
 * mass frees, replacement of a block never seen freed. */
static void case_blocks(void) {
  enum { N = 200000 };
  uintptr_t *addr = calloc(N, sizeof *addr);
  uint64_t *size = calloc(N, sizeof *size);
  uint32_t *node = calloc(N, sizeof *node);
  uint8_t *in = calloc(N, 1);
  uint64_t seed = 42;
#define RND() (seed = seed * 6364136223846793005ull + 1442695040888963407ull, seed >> 33)
  for (size_t i = 0; i < N; i++) {
    /* Clustered addresses (as a heap gives them) collide in the hash. */
    addr[i] = 0x7f0000000000ull + i * 16 * (1 + (i % 3));
    if (i % 97 == 0) addr[i] += 8;                                 /* odd alignment: wide */
    size[i] = i % 101 == 0 ? (300 * MiB) + i : 1 + RND() % 100000; /* >= 256 MiB: wide */
    node[i] = (uint32_t)(i % 0xFFFFFF);
  }
  /* Distinct addresses (the mixes above may collide): dedupe by construction. */
  for (size_t i = 0; i < N; i++) addr[i] += (uintptr_t)i << 24;
  size_t count = 0;
  for (int round = 0; round < 3; round++) {
    for (size_t i = 0; i < N; i++) {
      if (in[i]) continue;
      uint64_t os;
      uint32_t on;
      EQ(hw__blocks_put(addr[i], size[i], node[i], &os, &on), 0);
      in[i] = 1;
      count++;
    }
    EQ(hw__blocks_count(), count);
    /* Every block found with its own size and node. */
    for (size_t i = 0; i < N; i += 7) {
      uint64_t s;
      uint32_t n;
      EQ(hw__blocks_take(addr[i], &s, &n), 1);
      EQ(s, size[i]);
      EQ(n, node[i]);
      EQ(hw__blocks_take(addr[i], &s, &n), 0); /* gone */
      in[i] = 0;
      count--;
    }
    /* Mass free: the table shrinks, the rest stays findable. */
    for (size_t i = 0; i < N; i++) {
      if (!in[i] || i % 10 == 0) continue;
      uint64_t s;
      uint32_t n;
      EQ(hw__blocks_take(addr[i], &s, &n), 1);
      EQ(s, size[i]);
      in[i] = 0;
      count--;
    }
    EQ(hw__blocks_count(), count);
    for (size_t i = 0; i < N; i++) {
      if (!in[i]) continue;
      uint64_t s;
      uint32_t n;
      EQ(hw__blocks_take(addr[i], &s, &n), 1);
      EQ(s, size[i]);
      EQ(n, node[i]);
      uint64_t os;
      uint32_t on;
      EQ(hw__blocks_put(addr[i], s, n, &os, &on), 0);
    }
  }
  /* An address recorded twice (its free was never seen) is replaced, also
   * when the new block moves between the narrow and the wide table. */
  uint64_t os = 0;
  uint32_t on = 0;
  uintptr_t a = 0x7e0000000010ull;
  EQ(hw__blocks_put(a, 100, 5, &os, &on), 0);
  EQ(hw__blocks_put(a, 200, 6, &os, &on), 1);
  EQ(os, 100);
  EQ(on, 5);
  EQ(hw__blocks_put(a, 400 * MiB, 7, &os, &on), 1); /* now wide */
  EQ(os, 200);
  EQ(on, 6);
  EQ(hw__blocks_put(a, 300, 8, &os, &on), 1); /* narrow again */
  EQ(os, 400 * MiB);
  EQ(on, 7);
  uint64_t s;
  uint32_t n;
  EQ(hw__blocks_take(a, &s, &n), 1);
  EQ(s, 300);
  EQ(hw__blocks_take(a, &s, &n), 0);
  hw__blocks_reset();
  EQ(hw__blocks_count(), 0);
  EQ(hw__blocks_take(addr[10], &s, &n), 0);
  free(addr);
  free(size);
  free(node);
  free(in);
}

/* ---- the core API: heap blocks, bytes per node, the peak ---- */

static void case_peak(void) {
  core_setup();
  hw_thread_t *t = &hw__thread;
  char *a = malloc(1000), *b = malloc(500), *c = malloc(300);
  hw__track_alloc(a, 1000, 1);
  hw__track_alloc(b, 500, 2);
  EQ(current(), 1500);
  EQ(peak(), 1500);
  EQ(hw__state.hdr->peak_source, 1); /* live is the peak */
  hw__core_free(t, a);               /* memory falls: the peak is frozen first */
  EQ(hw__state.hdr->peak_source, 0);
  EQ(snap(1), 1000);
  EQ(snap(2), 500);
  EQ(live(1), 0);
  EQ(current(), 500);
  EQ(peak(), 1500);
  hw__track_alloc(c, 300, 3); /* below the peak: the snapshot stands */
  EQ(at_peak(3), 0);
  EQ(at_peak(1), 1000);
  char *d = malloc(2000);
  hw__track_alloc(d, 2000, 4); /* a new peak: live is the peak again */
  EQ(peak(), 2800);
  EQ(hw__state.hdr->peak_source, 1);
  EQ(at_peak(1), 0);
  EQ(at_peak(4), 2000);
  hw__core_free(t, d);
  EQ(at_peak(4), 2000);
  EQ(at_peak(2), 500);
  EQ(at_peak(3), 300);
  /* realloc: the old block's bytes go, the new size is charged to the new stack. */
  hw_alloc_op op;
  hw__core_realloc_begin(&op, t, b, 5000);
  op.node = 5;
  char *b2 = realloc(b, 5000);
  hw__core_alloc_end(&op, b2);
  EQ(live(2), 0);
  EQ(live(5), 5000);
  EQ(current(), 5300);
  /* A refused realloc leaves the old block charged as it was. */
  hw__core_realloc_begin(&op, t, b2, 1ull << 50);
  hw__core_alloc_refused(&op);
  EQ(live(5), 5000);
  EQ(hw__failed_last(NULL, NULL), 1);
  EQ(t->guard, 0);
  hw__core_free(t, b2);
  hw__core_free(t, c);
  EQ(current(), 0);
  EQ(hw__tracker_live_allocations(), 0);
  free(a);
  free(b2);
  free(c);
  free(d);
}

/* ---- anonymous mmaps: ranges split by partial munmaps, mremap ---- */

static void case_ranges(void) {
  core_setup();
  hw_thread_t *t = &hw__thread;
  const size_t P = 4096;
  uintptr_t base = 0x600000000000ull;
  hw__track_mmap((void *)base, 10 * P, 1);
  EQ(live(1), 10 * P);
  hw__core_unmap(t, (void *)(base + 3 * P), 2 * P); /* a hole: two ranges */
  EQ(live(1), 8 * P);
  EQ(hw__tracker_live_allocations(), 2);
  hw__core_unmap(t, (void *)(base + 9 * P), 5 * P); /* past the end: only the last page */
  EQ(live(1), 7 * P);
  hw__core_unmap(t, (void *)base, 1); /* one byte: its whole page */
  EQ(live(1), 6 * P);
  /* MAP_FIXED over part of a range: that part changes hands. */
  hw__track_mmap((void *)(base + 5 * P), 2 * P, 2);
  EQ(live(1), 4 * P);
  EQ(live(2), 2 * P);
  /* mremap grows the range at [5P, 7P) to 6 pages at a new address: the old
   * range goes, the new one belongs to the code that resized it. */
  uintptr_t moved = base + 100 * P;
  hw_alloc_op op;
  hw__core_remap_begin(&op, t, 2 * P, 6 * P);
  op.node = 3;
  hw__core_remap_end(&op, (void *)(base + 5 * P), 2 * P, (void *)moved, 6 * P);
  EQ(live(2), 0);
  EQ(live(3), 6 * P);
  /* Shrinking in place. */
  hw__core_remap_begin(&op, t, 6 * P, 2 * P);
  op.node = 3;
  hw__core_remap_end(&op, (void *)moved, 6 * P, (void *)moved, 2 * P);
  EQ(live(3), 2 * P);
  /* A munmap across several ranges and gaps. */
  hw__core_unmap(t, (void *)base, 200 * P);
  EQ(live(1), 0);
  EQ(live(3), 0);
  EQ(current(), 0);
  EQ(hw__tracker_live_allocations(), 0);
  /* An untracked (file-backed) range stays untracked through munmap. */
  hw__core_unmap(t, (void *)(base + 500 * P), P);
  EQ(current(), 0);
}

/* ---- the guard ---- */

/* Two threads pass the budget check together: each may take what the budget
 * holds, never both. Before the fix (load, compare, then fetch_sub) both
 * passed and the budget wrapped to ~2^64: the guard was off until the floor
 * next changed. */
static size_t race_size;
static _Atomic uint64_t race_wrapped;

static void *race_thread(void *arg) {
  (void)arg;
  for (int i = 0; i < 20000000 && !atomic_load(&race_wrapped); i++) {
    hw__guard_check(race_size);
    uint64_t b = hw__guard_budget();
    if (b > 64 * GiB) atomic_store(&race_wrapped, b);
  }
  return NULL;
}

static void case_guard_budget(void) {
  cgroup_v2_tree(4 * GiB, 1 * GiB, 16 * GiB, 8 * GiB);
  core_setup();
  HW_SET_RELAXED(hw__guard_on, 1);
  /* Plenty of room: the refresh sets the budget to 1 % of the headroom. */
  EQ(hw__guard_check(1), 0);
  uint64_t b = hw__guard_budget();
  uint64_t floor = hw__state.hdr->floor_bytes;
  CHECK(b > 256 << 10 && b <= (3 * GiB - floor) / 100, "budget %llu", (unsigned long long)b);
  /* Within the budget: no reading, the budget shrinks by what was taken. */
  EQ(hw__guard_check(1000), 0);
  EQ(hw__guard_budget(), b - 1000);
  /* Two threads take 1/50 of what a refresh grants, over and over: at every
   * fiftieth take both meet at a budget that holds one take and not two. One
   * may pass, the other must refresh; together they must never take it below
   * zero. */
  race_size = b / 20000;
  pthread_t th[2];
  for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, race_thread, NULL);
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
  CHECK(!atomic_load(&race_wrapped), "the budget wrapped to %llu",
        (unsigned long long)atomic_load(&race_wrapped));
}

/* A 4 GiB container with `used` bytes in use, the guard on, its floor a flat
 * 100 MiB (no percentage). */
static void guard_fixture(uint64_t used) {
  cgroup_v2_tree(4 * GiB, used, 16 * GiB, 8 * GiB);
  core_setup();
  HW_SET_RELAXED(hw__guard_on, 1);
  hw__config.min_floor = 100 * MiB;
  hw__config.floor_pct_x100 = 0;
}

/* The guard's verdict against a fixture: a 4 GiB container with 3.95 GiB in
 * use is under its floor (100 MiB); one with 1 GiB in use is not. */
static void case_guard_verdict(void) {
  guard_fixture(4 * GiB - 50 * MiB);
  EQ(hw__guard_check(4096), 1); /* low-available */
  EQ(hw__guard_budget(), 0);    /* judged afresh next time */
  EQ(hw__state.hdr->floor_bytes, 100 * MiB);
  EQ(hw__state.hdr->available_bytes, 50 * MiB);
  EQ(hw__state.hdr->readings_source, 2);
}

/* A guard trip on a granted allocation: the dump is written, the process
 * exits 53 and the state says so (run in a child: it really exits). */
static void case_guard_trip(void) {
  cgroup_v2_tree(4 * GiB, 4 * GiB - 50 * MiB, 16 * GiB, 8 * GiB);
  core_setup();
  HW_SET_RELAXED(hw__guard_on, 1);
  pid_t pid = fork();
  if (pid == 0) {
    hw_alloc_op op;
    hw__core_alloc_begin(&op, &hw__thread, 1 << 20);
    void *p = malloc(1 << 20);
    hw__core_alloc_end(&op, p); /* does not return */
    _exit(0);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 53, "child status %d", st);
  EQ(hw__state.hdr->oom_reason, 1);
  EQ(hw__state.hdr->exit_status, HW_EXIT_OOM_STATUS);
}

/* The floor is a share of the memory that can really be had: the cgroup
 * limit or the host's memory, whichever is less (docs/protocol.md). A
 * 64 GiB limit on a 16 GiB host: 10 % is 1.6 GiB, not 6.4 GiB. */
static void case_floor_limit_above_host(void) {
  cgroup_v2_tree(64 * GiB, 1 * GiB, 16 * GiB, 12 * GiB);
  core_setup();
  HW_SET_RELAXED(hw__guard_on, 1);
  hw__config.min_floor = 1 * MiB;
  hw__config.floor_pct_x100 = 1000; /* 10 % */
  EQ(hw__guard_check(1), 0);
  EQ(hw__state.hdr->floor_bytes, 16 * GiB / 10000 * 1000);
  /* And a limit below the host's memory still rules. */
}

static void case_floor_limit_below_host(void) {
  cgroup_v2_tree(2 * GiB, 1 * GiB, 16 * GiB, 12 * GiB);
  core_setup();
  HW_SET_RELAXED(hw__guard_on, 1);
  hw__config.min_floor = 1 * MiB;
  hw__config.floor_pct_x100 = 1000;
  EQ(hw__guard_check(1), 0);
  EQ(hw__state.hdr->floor_bytes, 2 * GiB / 10000 * 1000);
}

/* ---- readings ---- */

/* Every first reader sees the cgroup: the discovery used to mark the cgroup
 * found before its directory and version were filled in, so a second thread
 * (the control thread, another allocating thread) read the host only. */
static hw_readings_t cg_first, cg_second;
static int cg_watch = -1;

static void *cg_first_reader(void *arg) {
  (void)arg;
  hw__read_memory(&cg_first);
  return NULL;
}

static void case_cgroup_race(void) {
  /* 200 levels deep: finding the limit reads 200 memory.max files after
   * mountinfo, so the first reader is still at it when the second comes. */
  cgroup_v2_tree(4 * GiB, 1 * GiB, 16 * GiB, 8 * GiB);
  char cg[600] = "0::", dir[600] = "sys/fs/cgroup";
  for (int i = 0; i < 200; i++) {
    strcat(cg, "/a");
    strcat(dir, "/a");
  }
  strcat(cg, "\n");
  write_file("proc/self/cgroup", cg);
  char path[700];
  snprintf(path, sizeof path, "%s/memory.current", dir);
  write_file(path, "1000\n");
  snprintf(path, sizeof path, "%s/memory.max", dir);
  write_file(path, "8589934592\n"); /* 8 GiB: the root's 4 GiB rules */
  snprintf(path, sizeof path, "%s/memory.stat", dir);
  write_file(path, "anon 1000\n");
  /* The second reader starts the moment the first has read mountinfo: in the
   * middle of the discovery (inotify says when). How far the first got by
   * then is up to the scheduler: ten fresh processes each race once. */
  for (int round = 0; round < 10; round++) {
    pid_t pid = fork();
    if (pid == 0) {
      cg_watch = inotify_init1(IN_CLOEXEC);
      snprintf(path, sizeof path, "%s/proc/self/mountinfo", tmp_root);
      CHECK(cg_watch >= 0 && inotify_add_watch(cg_watch, path, IN_CLOSE_NOWRITE) >= 0, "inotify");
      pthread_t th;
      pthread_create(&th, NULL, cg_first_reader, NULL);
      char ev[512];
      CHECK(read(cg_watch, ev, sizeof ev) > 0, "no inotify event");
      hw__read_memory(&cg_second);
      pthread_join(th, NULL);
      const hw_readings_t *seen[2] = {&cg_first, &cg_second};
      for (int i = 0; i < 2; i++) {
        CHECK(seen[i]->source == 2 && seen[i]->limit == 4 * GiB && seen[i]->usage == 1 * GiB,
              "round %d, reader %d: source %d, limit %llu, usage %llu", round, i + 1,
              seen[i]->source, (unsigned long long)seen[i]->limit,
              (unsigned long long)seen[i]->usage);
      }
      _exit(failures ? 1 : 0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "round %d failed", round);
  }
}

/* A reading (what the guard does inside malloc) on a thread with a 32 KiB
 * stack: it used to keep 32 KiB of buffers on the stack, and crashed. */
static void *small_stack_reader(void *arg) {
  hw_readings_t *r = arg;
  hw__read_memory(r);
  EQ(hw__guard_check(1), 0);
  return NULL;
}

static void case_small_stack(void) {
  cgroup_v2_tree(4 * GiB, 1 * GiB, 16 * GiB, 8 * GiB);
  core_setup();
  HW_SET_RELAXED(hw__guard_on, 1);
  pthread_attr_t a;
  pthread_attr_init(&a);
  /* Sanitizers keep their own frames bigger: they get room for those. */
  size_t stack = 32 << 10;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  stack *= 4;
#endif
  EQ(pthread_attr_setstacksize(&a, stack), 0);
  pthread_t th;
  hw_readings_t r;
  EQ(pthread_create(&th, &a, small_stack_reader, &r), 0);
  pthread_join(th, NULL);
  EQ(r.source, 2);
}

/* ---- stacks: no call into the interpreter without the GIL ---- */

/* A fake CPython 3.9: a frame of a code object whose line table says
 * bytes 0-5 are line 11 and 6- line 13, suspended at byte 8. The C-API
 * stubs count their calls; the thread "holds the GIL" only while the shim
 * verifies its layout. Before the fix the shim called PyFrame_GetLineNumber
 * from the allocation hook whether or not the thread held the GIL. */
static _Alignas(16) char fake_frame[256], fake_code[256], fake_lnotab[64], fake_type[64];
static int gil_held, line_api_calls;
static int stub_gil(void) { return gil_held; }
static int stub_line(void *f) {
  line_api_calls++;
  return f == fake_frame ? 13 : -1;
}
static void *stub_get_frame(void) { return fake_frame; }
static void *stub_get_code(void *f) { return f == fake_frame ? fake_code : NULL; }
static void *stub_get_back(void *f) { return NULL; }
static int lnotab_hidden;
static PyObject *stub_getattr(PyObject *o, const char *name) {
  return !lnotab_hidden && (void *)o == fake_code && strcmp(name, "co_lnotab") == 0
             ? (PyObject *)fake_lnotab
             : NULL;
}
static void stub_ref(PyObject *o) {}
static void stub_fetch(PyObject **a, PyObject **b, PyObject **c) { *a = *b = *c = NULL; }
static void stub_restore(PyObject *a, PyObject *b, PyObject *c) {}

static void case_line_without_gil(void) {
  core_setup();
  hw__py.minor = 9;
  hw__py.ready = 1;
  hw__py.PyGILState_Check = stub_gil;
  hw__py.PyFrame_GetLineNumber = stub_line;
  hw__py.PyEval_GetFrame = stub_get_frame;
  hw__py.PyFrame_GetCode = stub_get_code;
  hw__py.PyFrame_GetBack = stub_get_back;
  hw__py.PyObject_GetAttrString = stub_getattr;
  hw__py.Py_IncRef = hw__py.Py_DecRef = stub_ref;
  hw__py.PyErr_Fetch = stub_fetch;
  hw__py.PyErr_Restore = stub_restore;
  hw__py.PyCode_Type = fake_type;
  *(void **)(fake_code + 8) = fake_type; /* ob_type: a code object */
  *(int *)(fake_code + 40) = 10;         /* co_firstlineno */
  *(void **)(fake_code + 120) = fake_lnotab;
  *(int64_t *)(fake_lnotab + 16) = 4; /* ob_size */
  memcpy(fake_lnotab + 32, "\x00\x01\x06\x02", 4);
  *(void **)(fake_frame + 32) = fake_code; /* f_code */
  *(int *)(fake_frame + 104) = 8;          /* f_lasti */
  gil_held = 1;
  EQ(hw__py_check_offsets(), 0);
  EQ(hw__lines_verify(), 0);
  CHECK(line_api_calls > 0, "the layout was checked against the C-API");
  gil_held = 0;
  line_api_calls = 0;
  HW_SET_RELAXED(hw__py_alive, 1);
  hw_thread_t *t = &hw__thread;
  hw_sframe frames[4] = {{.frame = fake_frame, .node = HW_NODE_NONE}};
  t->frames = frames;
  t->capacity = 4;
  t->depth = 1;
  t->registered = 1;
  t->last_node = HW_NODE_NONE;
  uint32_t node = hw__current_node(t);
  EQ(line_api_calls, 0);
  EQ(hw__state.nodes[node].line, 13);
  /* A layout that does not verify (the line table is not where the C-API
   * says): no direct reading; without the GIL, no call: the last node. */
  lnotab_hidden = 1;
  gil_held = 1;
  EQ(hw__lines_verify(), -1);
  gil_held = 0;
  line_api_calls = 0;
  EQ(hw__current_node(t), node);
  EQ(line_api_calls, 0);
  /* With the GIL, the C-API gives the line. */
  gil_held = 1;
  *(int *)(fake_frame + 104) = 2;
  uint32_t n2 = hw__current_node(t);
  EQ(line_api_calls, 1);
  EQ(hw__state.nodes[n2].line, 13); /* what the stub says */
  t->frames = NULL;
  t->depth = t->capacity = 0;
}

/* ---- many threads at once (the TSAN case) ---- */

static void *hammer(void *arg) {
  uint32_t node = (uint32_t)(uintptr_t)arg;
  hw_thread_t *t = &hw__thread;
  t->inherited = node;
  void *held[64] = {0};
  for (int i = 0; i < 20000; i++) {
    int k = i % 64;
    if (held[k]) hw__core_free(t, held[k]);
    free(held[k]);
    size_t sz = 16 + (size_t)(i % 2000);
    hw_alloc_op op;
    hw__core_alloc_begin(&op, t, sz);
    held[k] = malloc(sz);
    hw__core_alloc_end(&op, held[k]);
    if (i % 500 == 0) {
      uintptr_t m = 0x500000000000ull + ((uintptr_t)node << 32) + (uintptr_t)i * 4096;
      hw__core_map_begin(&op, t, 8192);
      hw__core_map_end(&op, (void *)m, 8192, 0);
      hw__core_unmap(t, (void *)m, 8192);
    }
  }
  for (int k = 0; k < 64; k++) {
    hw__core_free(t, held[k]);
    free(held[k]);
  }
  return NULL;
}

static void *status_reader(void *arg) {
  (void)arg;
  for (int i = 0; i < 50; i++) {
    hw_readings_t r;
    hw__read_memory(&r);
    hw__publish_readings(&r);
  }
  return NULL;
}

static void case_threads(void) {
  cgroup_v2_tree(64 * GiB, 1 * GiB, 128 * GiB, 100 * GiB);
  core_setup();
  HW_SET_RELAXED(hw__guard_on, 1);
  enum { T = 4 };
  pthread_t th[T + 1];
  for (int i = 0; i < T; i++) pthread_create(&th[i], NULL, hammer, (void *)(uintptr_t)(10 + i));
  pthread_create(&th[T], NULL, status_reader, NULL);
  for (int i = 0; i <= T; i++) pthread_join(th[i], NULL);
  EQ(current(), 0);
  EQ(hw__tracker_live_allocations(), 0);
  for (int i = 0; i < T; i++) EQ(live(10 + i), 0);
  CHECK(peak() > 0 && peak() <= T * 64 * 2016 + T * 8192, "peak %lld", (long long)peak());
}

/* ---- sampling mode's lock-free path, with threads (the TSAN case too) ---- */

/* Sampling at 4 KiB: most blocks below it are unsampled (the heap map, no
 * lock), some are sampled (the table, under the lock), blocks of 8 KiB and
 * more always are. Threads churn malloc / free / realloc at once; the total
 * must be the usable bytes of exactly what they keep, the sampled blocks'
 * frees matched (every stack back to zero, the table empty), blocks from
 * before tracking ignored at their free. */
static _Atomic int64_t kept_usable;

static void sampled_op(hw_thread_t *t, void **slot, size_t sz, int as_realloc) {
  hw_alloc_op op;
  if (as_realloc && *slot) {
    hw__core_realloc_begin(&op, t, *slot, sz);
    void *p = realloc(*slot, sz);
    if (p) hw__core_alloc_end(&op, p);
    else hw__core_alloc_refused(&op);
    if (p) *slot = p;
    return;
  }
  if (*slot) {
    hw__core_free(t, *slot);
    free(*slot);
  }
  hw__core_alloc_begin(&op, t, sz);
  *slot = malloc(sz);
  hw__core_alloc_end(&op, *slot);
}

static void *sampled_hammer(void *arg) {
  uint32_t node = (uint32_t)(uintptr_t)arg;
  hw_thread_t *t = &hw__thread;
  t->inherited = node;
  void *held[64] = {0};
  for (int i = 0; i < 20000; i++) {
    size_t sz = i % 97 == 0 ? 8192 + (size_t)(i % 5000) : 16 + (size_t)((i * 7919) % 3000);
    sampled_op(t, &held[i % 64], sz, i % 5 == 0);
  }
  int64_t sum = 0;
  for (int k = 0; k < 64; k++) sum += (int64_t)malloc_usable_size(held[k]);
  atomic_fetch_add(&kept_usable, sum);
  /* The main thread frees them: a free on another thread than the allocation. */
  void **out = malloc(sizeof held);
  memcpy(out, held, sizeof held);
  return out;
}

static void case_sampling_threads(void) {
  cgroup_v2_tree(64 * GiB, 1 * GiB, 128 * GiB, 100 * GiB);
  /* Before tracking: their frees must take nothing off. */
  void *before[100];
  for (int i = 0; i < 100; i++) before[i] = malloc(100 + (size_t)i * 10);
  core_setup();
  hw__config.sample_rate = 4096;
  hw__config.sample_seeded = 1;
  hw__config.sample_seed = 7;
  hw__sampling_init();
  CHECK(hw__hm_top != NULL, "no heap map");
  HW_SET_RELAXED(hw__guard_on, 1);
  hw_thread_t *t = &hw__thread;
  for (int i = 0; i < 100; i++) hw__core_free(t, before[i]);
  EQ(current(), 0);
  enum { T = 4 };
  pthread_t th[T + 1];
  for (int i = 0; i < T; i++)
    pthread_create(&th[i], NULL, sampled_hammer, (void *)(uintptr_t)(10 + i));
  pthread_create(&th[T], NULL, status_reader, NULL);
  void **held[T];
  for (int i = 0; i < T; i++) pthread_join(th[i], (void **)&held[i]);
  pthread_join(th[T], NULL);
  EQ(current(), atomic_load(&kept_usable));
  CHECK(peak() >= current() && peak() <= T * 64 * 13200, "peak %lld", (long long)peak());
  CHECK(hw__blocks_count() > 0 && hw__blocks_count() < T * 64, "tabled %zu", hw__blocks_count());
  int64_t stacks = 0;
  for (int i = 0; i < T; i++) stacks += live(10 + i);
  CHECK(stacks > 0, "no sampled bytes on any stack");
  for (int i = 0; i < T; i++) {
    for (int k = 0; k < 64; k++) {
      hw__core_free(t, held[i][k]);
      free(held[i][k]);
    }
    free(held[i]);
  }
  for (int i = 0; i < 100; i++) free(before[i]);
  EQ(current(), 0);
  EQ(hw__blocks_count(), 0);
  for (int i = 0; i < T; i++) EQ(live(10 + i), 0);
}

/* Sampling mode's peak snapshot: unsampled blocks move the total without
 * the lock; the stacks' bytes at the peak must still be those of the moment
 * the total was highest, even when a sampled block comes after the total
 * fell (lock-free) from that peak. */
static void case_sampling_peak(void) {
  core_setup();
  hw__config.sample_rate = 64 * 1024;
  hw__sampling_init();
  hw_state_header *h = hw__state.hdr;
  void *a = malloc(2 * MiB); /* >= the rate: sampled, exact */
  hw__track_alloc(a, 2 * MiB, 1);
  int64_t ua = (int64_t)malloc_usable_size(a);
  EQ(current(), ua);
  EQ(live(1), 2 * MiB);
  void *u[100];
  int64_t uu = 0;
  for (int i = 0; i < 100; i++) {
    u[i] = malloc(1000);
    uu += (int64_t)malloc_usable_size(u[i]);
    hw__track_unsampled(u[i], 1000); /* lock-free: a new peak each time */
  }
  EQ(current(), ua + uu);
  EQ(peak(), ua + uu);
  EQ(h->peak_source, 1);
  for (int i = 0; i < 100; i++) {
    hw__track_free_sampling(u[i]);
    free(u[i]);
  }
  EQ(current(), ua);
  EQ(h->peak_source, 1); /* `live` has not changed since the peak */
  /* A sampled block after the fall, below the peak: not part of it. */
  void *b = malloc(64 * 1024);
  hw__track_alloc(b, 64 * 1024, 2);
  EQ(h->peak_source, 0);
  EQ(peak(), ua + uu);
  EQ(at_peak(1), 2 * MiB);
  EQ(at_peak(2), 0);
  EQ(live(2), 64 * 1024);
  hw__track_free_sampling(b);
  hw__track_free_sampling(a);
  free(b);
  free(a);
  EQ(current(), 0);
  EQ(live(1), 0);
  EQ(at_peak(1), 2 * MiB);
}

/* ---- exact mode under threads: every byte, every stack, the peak ---- */

/* Eight threads at once, exact mode: each allocates (malloc, some realloc,
 * some wide blocks at odd addresses, as an aligned allocator leaves them)
 * and holds them, so the live-block table grows from empty through several
 * resizes while all of them insert; then each frees ANOTHER thread's blocks
 * (a free on a thread that did not allocate), and blocks from before
 * tracking (never seen: they must take nothing). Checked at the moment all
 * hold everything (totals, each stack's live bytes, the table's count), and
 * at the end (all zero; the peak and each stack's bytes at the peak are
 * exactly what was held). */
enum { XT_THREADS = 8, XT_BLOCKS = 25000 };

typedef struct {
  uint32_t node;
  void *blocks[XT_BLOCKS];
  size_t sizes[XT_BLOCKS];
  int wide[XT_BLOCKS]; /* a fake address, recorded through hw__track_alloc only */
  void *unseen[500];   /* allocated before tracking */
  int64_t held;        /* requested bytes held at the barrier */
} xt_part;

static xt_part *xt_parts;
static pthread_barrier_t xt_all_hold, xt_checked;

static void *exact_worker(void *arg) {
  xt_part *me = arg;
  hw_thread_t *t = &hw__thread;
  t->inherited = me->node;
  uint64_t x = 0x9E3779B97F4A7C15ull ^ me->node;
  for (int k = 0; k < XT_BLOCKS; k++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    size_t sz = 1 + (size_t)(x % 200);
    hw_alloc_op op;
    if (k % 50 == 0) {
      /* Odd-aligned: the wide table, under the same lock. */
      me->blocks[k] = (void *)(0x600000000008ull + ((uintptr_t)me->node << 32) + (uintptr_t)k * 32);
      me->wide[k] = 1;
      sz += 300 * MiB * (k % 100 == 0); /* and some of 256 MiB or more */
      hw__track_alloc(me->blocks[k], sz, me->node);
    } else {
      hw__core_alloc_begin(&op, t, sz);
      me->blocks[k] = malloc(sz);
      hw__core_alloc_end(&op, me->blocks[k]);
      if (k % 7 == 0) { /* grown in place or moved: the old block goes, the new one counts */
        sz += 100;
        hw__core_realloc_begin(&op, t, me->blocks[k], sz);
        void *p = realloc(me->blocks[k], sz);
        hw__core_alloc_end(&op, p);
        me->blocks[k] = p;
      }
    }
    me->sizes[k] = sz;
    me->held += (int64_t)sz;
  }
  pthread_barrier_wait(&xt_all_hold);
  pthread_barrier_wait(&xt_checked);
  /* The next thread's blocks, then ours from before tracking. */
  xt_part *other = &xt_parts[(me - xt_parts + 1) % XT_THREADS];
  for (int k = 0; k < XT_BLOCKS; k++) {
    if (other->wide[k]) {
      hw__track_free(other->blocks[k]);
    } else {
      hw__core_free(t, other->blocks[k]);
      free(other->blocks[k]);
    }
  }
  for (int k = 0; k < 500; k++) {
    hw__core_free(t, me->unseen[k]);
    free(me->unseen[k]);
  }
  return NULL;
}

static void case_exact_threads(void) {
  xt_parts = calloc(XT_THREADS, sizeof *xt_parts);
  for (int i = 0; i < XT_THREADS; i++) {
    xt_parts[i].node = 20 + (uint32_t)i;
    for (int k = 0; k < 500; k++) xt_parts[i].unseen[k] = malloc(32 + (size_t)k);
  }
  core_setup();
  EQ(hw__blocks_count(), 0);
  pthread_barrier_init(&xt_all_hold, NULL, XT_THREADS + 1);
  pthread_barrier_init(&xt_checked, NULL, XT_THREADS + 1);
  pthread_t th[XT_THREADS];
  for (int i = 0; i < XT_THREADS; i++) pthread_create(&th[i], NULL, exact_worker, &xt_parts[i]);
  pthread_barrier_wait(&xt_all_hold);
  int64_t total = 0;
  for (int i = 0; i < XT_THREADS; i++) {
    EQ(live(xt_parts[i].node), xt_parts[i].held);
    total += xt_parts[i].held;
  }
  EQ(current(), total);
  EQ(peak(), total);
  EQ(hw__blocks_count(), XT_THREADS * XT_BLOCKS);
  pthread_barrier_wait(&xt_checked);
  for (int i = 0; i < XT_THREADS; i++) pthread_join(th[i], NULL);
  EQ(current(), 0);
  EQ(hw__blocks_count(), 0);
  EQ(peak(), total);
  for (int i = 0; i < XT_THREADS; i++) {
    EQ(live(xt_parts[i].node), 0);
    EQ(at_peak(xt_parts[i].node), xt_parts[i].held);
  }
  pthread_barrier_destroy(&xt_all_hold);
  pthread_barrier_destroy(&xt_checked);
  free(xt_parts);
}

/* ---- the owner thread without locked instructions (owner.c) ---- */

/* The main thread is the owner: it allocates and frees in a loop (its
 * hw__lock elided; in sampling mode its heap-map bits, total and peak
 * plain) while a visitor thread takes hw__lock again and again, checks what
 * a dump would read, and writes the total itself (+1000, then -1000, as a
 * publication under the lock does: a lost update shows at the end), and
 * (`second`) another thread starts allocating at a random moment (sharing
 * becomes permanent). At the end the totals, every stack's bytes and the
 * peak are exactly what the test itself counted. */
enum { OW_OPS = 100000, OW_SLOTS = 256 };
/* Hand-overs per run: fewer under the sanitizers (each round is 5-10x slower there). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define OW_ROUNDS 60
#else
#define OW_ROUNDS 300
#endif
static _Atomic int ow_second_go, ow_done;
static int ow_sampling;
static _Atomic uint64_t ow_visits, ow_violations;

typedef struct {
  uint32_t small_node, big_node;
  uint64_t seed;
  int ops;
  int64_t total;   /* bytes the totals must hold for this thread's blocks */
  int64_t big;     /* bytes its big (always sampled) blocks charge big_node */
  int64_t max_own; /* its own total's highest value */
} ow_part;

/* What the totals count for a block: its request (exact), its usable size (sampling). */
static int64_t ow_counted(void *p, size_t sz) {
  return ow_sampling ? (int64_t)malloc_usable_size(p) : (int64_t)sz;
}

static void ow_churn(ow_part *me) {
  hw_thread_t *t = &hw__thread;
  void *held[OW_SLOTS] = {0};
  size_t sizes[OW_SLOTS] = {0};
  uint64_t x = me->seed;
  for (int i = 0; i < me->ops; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    int k = (int)(x % OW_SLOTS);
    if (held[k]) {
      int64_t c = ow_counted(held[k], sizes[k]);
      if (sizes[k] >= 8192) me->big -= (int64_t)sizes[k];
      hw__core_free(t, held[k]);
      free(held[k]);
      me->total -= c;
      held[k] = NULL;
      continue;
    }
    /* Mostly small (unsampled at 4 KiB, or exact), one in 64 at 8 KiB or
     * more (always sampled: its stack's bytes are exact). */
    size_t sz =
        (x >> 20) % 64 == 0 ? 8192 + (size_t)((x >> 30) % 4096) : 16 + (size_t)((x >> 40) % 2000);
    t->inherited = sz >= 8192 ? me->big_node : me->small_node;
    hw_alloc_op op;
    hw__core_alloc_begin(&op, t, sz);
    held[k] = malloc(sz);
    hw__core_alloc_end(&op, held[k]);
    sizes[k] = sz;
    me->total += ow_counted(held[k], sz);
    if (sz >= 8192) me->big += (int64_t)sz;
    if (me->total > me->max_own) me->max_own = me->total;
    if (me->small_node == 3 && i == atomic_load(&ow_second_go)) atomic_store(&ow_second_go, -1);
  }
  for (int k = 0; k < OW_SLOTS; k++) {
    if (!held[k]) continue;
    int64_t c = ow_counted(held[k], sizes[k]);
    if (sizes[k] >= 8192) me->big -= (int64_t)sizes[k];
    hw__core_free(t, held[k]);
    free(held[k]);
    me->total -= c;
  }
}

static void *ow_second(void *arg) {
  ow_part *me = arg;
  while (atomic_load(&ow_second_go) != -1) sched_yield();
  ow_churn(me);
  return NULL;
}

/* A dump-like visitor: under hw__lock, `live` must not move (it changes only
 * under the lock) and, in exact mode, the total is the sum of `live`. Then
 * it writes the total itself and takes it back, under the lock. */
static void *ow_visitor(void *arg) {
  (void)arg;
  hw_state_header *h = hw__state.hdr;
  while (!atomic_load(&ow_done)) {
    hw__lock_take();
    int64_t before = live(3) + live(1), sum = 0;
    for (uint32_t n = 0; n < 100; n++) sum += live(n);
    if (!ow_sampling && sum != (int64_t)h->current_bytes) atomic_fetch_add(&ow_violations, 1);
    __atomic_add_fetch(&h->current_bytes, 1000, __ATOMIC_RELAXED);
    for (volatile int spin = 0; spin < 3000; spin++) {}
    __atomic_sub_fetch(&h->current_bytes, 1000, __ATOMIC_RELAXED);
    if (live(3) + live(1) != before) atomic_fetch_add(&ow_violations, 1);
    hw__lock_give();
    atomic_fetch_add(&ow_visits, 1);
    /* Out for a while: the owner goes plain again (shared == 0) meanwhile. */
    for (volatile int spin = 0; spin < 3000; spin++) {}
  }
  return NULL;
}

static void owner_case(int sampling, int second) {
  cgroup_v2_tree(64 * GiB, 1 * GiB, 128 * GiB, 100 * GiB);
  core_setup();
  ow_sampling = sampling;
  if (sampling) {
    hw__config.sample_rate = 4096;
    hw__config.sample_seeded = 1;
    hw__config.sample_seed = 11;
    hw__sampling_init();
    CHECK(hw__hm_top != NULL, "no heap map");
  }
  hw__owner_start();
  CHECK(hw__owner_fast(), "membarrier unavailable here: the owner's plain path was not tested");
  hw_state_header *h = hw__state.hdr;
  /* The owner alone first: its peak, plain, exactly. */
  ow_part own = {.small_node = 3, .big_node = 1, .seed = 0x9E3779B97F4A7C15ull, .ops = 20000};
  ow_churn(&own);
  EQ(current(), 0);
  EQ(peak(), own.max_own);
  EQ(hw__owner_self, 1);
  int64_t first_peak = own.max_own;
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  uint64_t r = (uint64_t)now.tv_nsec | 1;
  ow_part other = {.small_node = 4, .big_node = 2, .seed = 0xD1B54A32D192ED03ull ^ r};
  own.max_own = 0;
  own.seed ^= r;
  if (second) {
    /* A second thread starts writing at a random moment of the owner's
     * churn: many times over (the hand-over happens once per process; each
     * round starts over with an owner and nobody else, as a fork child does). */
    for (int round = 0; round < OW_ROUNDS; round++) {
      if (round) {
        hw__owner_reset_in_child();
        hw__owner_start();
        CHECK(hw__owner_fast(), "round %d: not fast again", round);
      }
      r ^= r << 13, r ^= r >> 7, r ^= r << 17;
      atomic_store(&ow_second_go, (int)(r % 3000));
      own.ops = 4000;
      other.ops = 3000;
      other.seed ^= r;
      pthread_t sec;
      pthread_create(&sec, NULL, ow_second, &other);
      ow_churn(&own);
      if (atomic_load(&ow_second_go) != -1) atomic_store(&ow_second_go, -1);
      pthread_join(sec, NULL);
      EQ(hw__owner_fast(), 0); /* a second writer: shared for good */
      EQ(hw__owner_self, 1);
      EQ(current(), 0);
    }
  } else {
    /* A visitor comes and goes while the owner churns: the owner stays fast. */
    own.ops = OW_OPS;
    pthread_t vis;
    pthread_create(&vis, NULL, ow_visitor, NULL);
    /* Until the visitor came often enough (2 cores shared: it may wait for one). */
    for (int round = 0; round < 200 && (round == 0 || atomic_load(&ow_visits) < 10000); round++) {
      own.seed ^= own.seed << 7;
      ow_churn(&own);
    }
    atomic_store(&ow_done, 1);
    pthread_join(vis, NULL);
    CHECK(atomic_load(&ow_visits) >= 10000, "only %llu visits", (unsigned long long)ow_visits);
    EQ(atomic_load(&ow_violations), 0);
    EQ(hw__owner_fast(), 1); /* a visitor leaves */
  }
  /* Everything was freed: every byte and every stack back to zero. */
  EQ(own.total, 0);
  EQ(other.total, 0);
  EQ(current(), 0);
  for (uint32_t n = 1; n <= 4; n++) EQ(live(n), 0);
  EQ(hw__blocks_count(), 0);
  /* A new peak above everything before, held by the owner: exact, and its
   * stacks' bytes at the peak too. */
  int64_t hold = first_peak + 2 * own.max_own + 2 * other.max_own + 10 * MiB;
  void *big = malloc((size_t)hold);
  hw_thread_t *t = &hw__thread;
  t->inherited = 5;
  hw_alloc_op op;
  hw__core_alloc_begin(&op, t, (size_t)hold);
  hw__core_alloc_end(&op, big);
  int64_t counted = ow_counted(big, (size_t)hold);
  EQ(current(), counted);
  EQ(peak(), counted);
  EQ(live(5), hold);
  EQ(at_peak(5), hold);
  EQ(at_peak(1), 0);
  hw__core_free(t, big);
  free(big);
  EQ(current(), 0);
  EQ(h->peak_source, 0);
}

static void case_owner_exact_visitor(void) { owner_case(0, 0); }
static void case_owner_exact_second(void) { owner_case(0, 1); }
static void case_owner_sampling_visitor(void) { owner_case(1, 0); }
static void case_owner_sampling_second(void) { owner_case(1, 1); }

/* ---- the guard's per-thread chunks ---- */

/* Eight threads allocate against a small budget (1 % of 100 MiB of headroom:
 * ~1 MiB), each spending chunks of the pool without atomics. Every
 * allocation a thread sees pass with no reading started or ended meanwhile
 * (hw__guard_seq the same even value before and after) is charged to the
 * period of that reading: no period may pass more than
 * its budget plus one allocation per thread (the ones already past their
 * check when the period began). And the chunks a thread holds at a refresh
 * may make refreshes come earlier, never later: counted and bounded. */
#define GT_THREADS 8
#define GT_TAKES 20000
#define GT_SIZE 600
#define GT_PERIODS 4096
static _Atomic uint64_t gt_spent[GT_PERIODS];
static _Atomic uint64_t gt_objections, gt_unattributed;

static void *gt_worker(void *arg) {
  (void)arg;
  for (int i = 0; i < GT_TAKES; i++) {
    uint64_t s0 = hw__guard_seq();
    int v = hw__guard_check(GT_SIZE);
    uint64_t s1 = hw__guard_seq();
    if (v) atomic_fetch_add(&gt_objections, 1);
    else if (s0 == s1 && !(s0 & 1) && s0 / 2 < GT_PERIODS)
      atomic_fetch_add(&gt_spent[s0 / 2], GT_SIZE);
    else atomic_fetch_add(&gt_unattributed, GT_SIZE);
  }
  return NULL;
}

/* Allocates until the guard takes a reading. */
static void *gt_drain(void *arg) {
  uint64_t before = *(uint64_t *)arg;
  while (hw__guard_seq() == before) EQ(hw__guard_check(GT_SIZE), 0);
  return NULL;
}

static void case_guard_thread_chunks(void) {
  guard_fixture(4 * GiB - 200 * MiB);
  EQ(hw__guard_check(GT_SIZE), 0); /* the first reading: period 1 */
  uint64_t budget = hw__guard_budget();
  CHECK(budget > 900 << 10 && budget <= (100 * MiB) / 100, "budget %llu",
        (unsigned long long)budget);
  /* First, one by one: this thread holds a chunk when another thread's
   * allocations bring the next reading. What this thread then passes before
   * the reading after is the new budget (and the allocation that brings the
   * reading), never the new budget plus its old chunk. */
  EQ(hw__guard_check(GT_SIZE), 0);
  CHECK(hw__guard_budget() > GT_SIZE, "no chunk");
  pthread_t drainer;
  uint64_t before = hw__guard_seq();
  pthread_create(&drainer, NULL, gt_drain, &before);
  pthread_join(drainer, NULL);
  uint64_t passed = 0, period = hw__guard_seq();
  CHECK(period == before + 2, "the drainer made %llu readings",
        (unsigned long long)(period - before) / 2);
  while (hw__guard_seq() == period && passed < 4 * budget) {
    EQ(hw__guard_check(GT_SIZE), 0);
    passed += GT_SIZE;
  }
  CHECK(passed <= budget + GT_SIZE, "one thread passed %llu bytes in a period of %llu",
        (unsigned long long)passed, (unsigned long long)budget);
  /* Then all at once. */
  pthread_t th[GT_THREADS];
  for (int i = 0; i < GT_THREADS; i++) pthread_create(&th[i], NULL, gt_worker, NULL);
  for (int i = 0; i < GT_THREADS; i++) pthread_join(th[i], NULL);
  EQ(atomic_load(&gt_objections), 0);
  uint64_t periods = hw__guard_seq() / 2;
  uint64_t total = (uint64_t)GT_THREADS * GT_TAKES * GT_SIZE, worst = 0;
  for (uint64_t r = 1; r < periods && r < GT_PERIODS; r++) {
    uint64_t s = atomic_load(&gt_spent[r]);
    if (s > worst) worst = s;
    CHECK(s <= budget + GT_THREADS * GT_SIZE, "period %llu passed %llu bytes, budget %llu",
          (unsigned long long)r, (unsigned long long)s, (unsigned long long)budget);
  }
  /* Early, not too early: a refresh strands at most one chunk per thread
   * (64 KiB or an eighth of the pool), so each period passes at least the
   * budget less those. */
  uint64_t stranded = GT_THREADS * (budget / 8 < (64 << 10) ? budget / 8 : (64 << 10));
  uint64_t most = total / (budget - stranded - GT_SIZE) + 2;
  CHECK(periods <= most, "%llu readings for %llu bytes (at most %llu expected)",
        (unsigned long long)periods, (unsigned long long)total, (unsigned long long)most);
  printf("guard_thread_chunks: budget %llu, %llu bytes in %llu readings (the pool alone: %llu); "
         "most in one period %llu (%.3f of the budget); %llu bytes passed across a reading\n",
         (unsigned long long)budget, (unsigned long long)total, (unsigned long long)periods,
         (unsigned long long)(total / budget), (unsigned long long)worst,
         (double)worst / (double)budget, (unsigned long long)atomic_load(&gt_unattributed));
}

/* A new floor set by another thread (the control thread, for the watcher)
 * judges the next allocation of every thread, even one holding a chunk of
 * the old budget. */
static pthread_barrier_t gf_hold, gf_floor_set;
static _Atomic int gf_verdicts[GT_THREADS];

static void *gf_worker(void *arg) {
  int i = (int)(intptr_t)arg;
  EQ(hw__guard_check(GT_SIZE), 0); /* takes a chunk (or refreshes) */
  EQ(hw__guard_check(GT_SIZE), 0); /* spends it */
  CHECK(hw__guard_budget() > GT_SIZE, "thread %d holds no budget", i);
  pthread_barrier_wait(&gf_hold);
  pthread_barrier_wait(&gf_floor_set);
  atomic_store(&gf_verdicts[i], hw__guard_check(GT_SIZE));
  return NULL;
}

static void case_guard_floor_threads(void) {
  cgroup_v2_tree(4 * GiB, 1 * GiB, 16 * GiB, 8 * GiB);
  core_setup();
  HW_SET_RELAXED(hw__guard_on, 1);
  pthread_barrier_init(&gf_hold, NULL, GT_THREADS + 1);
  pthread_barrier_init(&gf_floor_set, NULL, GT_THREADS + 1);
  pthread_t th[GT_THREADS];
  for (int i = 0; i < GT_THREADS; i++) pthread_create(&th[i], NULL, gf_worker, (void *)(intptr_t)i);
  pthread_barrier_wait(&gf_hold);
  hw__guard_set_floor(3 * GiB + 512 * MiB); /* above the 3 GiB available */
  pthread_barrier_wait(&gf_floor_set);
  for (int i = 0; i < GT_THREADS; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < GT_THREADS; i++)
    CHECK(atomic_load(&gf_verdicts[i]) == HW_OOM_LOW_AVAILABLE, "thread %d: verdict %d", i,
          atomic_load(&gf_verdicts[i]));
  pthread_barrier_destroy(&gf_hold);
  pthread_barrier_destroy(&gf_floor_set);
}

/* ---- interning: the per-thread front caches ---- */

/* A recursion's (parent, function, line) triples, 3 a level, 400 levels
 * (what bench/workloads/deep_stack.py keeps in use), interned over and over
 * by two threads: every triple gets one id, the same every time and from
 * either thread, and no two triples share one. The front caches answer most
 * lookups without the shared table: a wrong hit (a key compared in part, a
 * set mixed up) shows as a wrong id. */
#define IF_LEVELS 400
static uint32_t if_ids[IF_LEVELS][3];
static _Atomic int if_wrong;

static void *if_worker(void *arg) {
  (void)arg;
  for (int pass = 0; pass < 50; pass++) {
    uint32_t parent = 0;
    for (int d = 0; d < IF_LEVELS; d++) {
      for (int l = 0; l < 3; l++)
        if (hw__intern_node(parent, 7, 10 + l) != if_ids[d][l]) atomic_fetch_add(&if_wrong, 1);
      parent = if_ids[d][0];
    }
  }
  return NULL;
}

static void case_intern_front(void) {
  core_setup();
  uint32_t parent = 0;
  for (int d = 0; d < IF_LEVELS; d++) {
    for (int l = 0; l < 3; l++) if_ids[d][l] = hw__intern_node(parent, 7, 10 + l);
    parent = if_ids[d][0];
  }
  /* One id per triple, each a record of that triple. */
  for (int d = 0; d < IF_LEVELS; d++)
    for (int l = 0; l < 3; l++) {
      hw_node_rec *r = &hw__state.nodes[if_ids[d][l]];
      CHECK(r->parent == (d ? if_ids[d - 1][0] : 0) && r->func == 7 && r->line == 10u + l,
            "level %d line %d: node %u is (%u, %u, %u)", d, l, if_ids[d][l], r->parent, r->func,
            r->line);
    }
  EQ(hw__state.hdr->node_count, 100 + IF_LEVELS * 3);
  pthread_t th[2];
  for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, if_worker, NULL);
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
  if_worker(NULL);
  EQ(atomic_load(&if_wrong), 0);
  EQ(hw__state.hdr->node_count, 100 + IF_LEVELS * 3);
}

/* ---- code objects that die (codewatch.c, intern.c) ---- */

/* Stand-ins for code objects: only their addresses are used (no names can
 * be read, so each is interned under "?" and kept to be named later). */
#define CF_CODES 3000
static _Alignas(16) char cf_codes[CF_CODES][16];

/* Deleting from the open-addressed code map must leave every other key
 * findable (the backward shift), and a per-thread front entry filled before
 * a death must not answer after it. */
static void case_code_forget(void) {
  core_setup();
  for (int i = 0; i < CF_CODES; i++)
    CHECK(hw__intern_code(cf_codes[i]) != HW_NODE_NONE, "code %d", i);
  for (int i = 0; i < CF_CODES; i += 3) EQ(hw__intern_forget_code(cf_codes[i]), 1);
  for (int i = 0; i < CF_CODES; i++)
    CHECK(hw__intern_forget_code(cf_codes[i]) == (i % 3 != 0), "code %d after the deletions", i);
  /* Every key is gone now. A code interned, then dead, then interned again:
   * the second lookup must reach the map again, not the front cache. */
  void *code = cf_codes[7];
  CHECK(hw__intern_code(code) != HW_NODE_NONE, "interned");
  EQ(hw__intern_forget_code(code), 1);
  atomic_fetch_add(&hw__code_gen, 1); /* what codewatch.c does on a death */
  CHECK(hw__intern_code(code) != HW_NODE_NONE, "interned again");
  EQ(hw__intern_forget_code(code), 1); /* it is in the map again */
}

/* ---- block sizes from glibc's chunk headers (real.c) ---- */

/* Sampling mode counts an unsampled block by its usable size, read from the
 * chunk's size word when the allocator is glibc's own: it must agree with
 * malloc_usable_size on every kind of block, and be in use here (glibc on
 * x86-64), except under a sanitizer, whose allocator has no such word. */
static void case_usable_chunks(void) {
  hw__resolve_real();
  hw__usable_init();
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  EQ(hw__glibc_chunks, 0);
#elif defined(__GLIBC__) && defined(__x86_64__)
  EQ(hw__glibc_chunks, 1);
  /* The probe left glibc as it was: freeing an mmapped chunk of up to 32
   * MiB would have raised the mmap threshold (128 KiB at start), and a
   * 200 KiB block would then come from the heap instead of its own map. */
  size_t *big = hw__real_malloc(200 << 10);
  CHECK(big && (big[-1] & 2), "a 200 KiB block is mmapped after the probe (size word %#zx)",
        big ? big[-1] : 0);
  hw__real_free(big);
#endif
  static const size_t sizes[] = {1, 17, 600, 5000, 130000, 1 << 20, 40 << 20};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    char *p = hw__real_malloc(sizes[i]);
    CHECK(p != NULL, "malloc %zu", sizes[i]);
    p[0] = 1;
    size_t want = hw__real_malloc_usable_size(p);
    CHECK(hw__usable_size(p) == want, "%zu B: %zu, malloc_usable_size %zu", sizes[i],
          hw__usable_size(p), want);
    CHECK(want >= sizes[i], "%zu B: usable %zu", sizes[i], want);
    hw__real_free(p);
  }
}

/* ---- how many popped data-stack chunks a CPython may hold back ---- */

/* The walk's data-stack proof (datastack.c) needs each popped chunk freed,
 * or at most one held back: 3.11, 3.12, 3.13 up to 3.13.12 and 3.14 up to
 * 3.14.3 free it (0); 3.13.13+, 3.14.4+ and 3.15 keep one for the next push
 * (gh-142183: 1). Anything else, or a string that does not parse, proves
 * nothing (-1). */
static void case_chunks_slack(void) {
  static const struct {
    const char *version;
    int slack;
  } v[] = {
      {"3.11.7", 0},    {"3.11.15", 0}, {"3.12.1", 0},   {"3.12.13", 0},  {"3.13.0", 0},
      {"3.13.0rc1", 0}, {"3.13.12", 0}, {"3.13.13", 1},  {"3.13.13+", 1}, {"3.13.14", 1},
      {"3.14.0", 0},    {"3.14.3", 0},  {"3.14.4", 1},   {"3.14.5", 1},   {"3.15.0", 1},
      {"3.15.0rc1", 1}, {"3.16.0", -1}, {"3.10.13", -1}, {"2.7.18", -1},  {"3.13", -1},
      {"", -1},         {NULL, -1},
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
    CHECK(hw__chunks_slack(v[i].version) == v[i].slack, "%s: %d",
          v[i].version ? v[i].version : "NULL", hw__chunks_slack(v[i].version));
}

static const struct {
  const char *name;
  void (*fn)(void);
} cases[] = {
    {"blocks", case_blocks},
    {"peak", case_peak},
    {"ranges", case_ranges},
    {"guard_budget", case_guard_budget},
    {"guard_verdict", case_guard_verdict},
    {"guard_trip", case_guard_trip},
    {"floor_limit_above_host", case_floor_limit_above_host},
    {"floor_limit_below_host", case_floor_limit_below_host},
    {"cgroup_race", case_cgroup_race},
    {"small_stack", case_small_stack},
    {"line_without_gil", case_line_without_gil},
    {"threads", case_threads},
    {"sampling_threads", case_sampling_threads},
    {"sampling_peak", case_sampling_peak},
    {"exact_threads", case_exact_threads},
    {"owner_exact_visitor", case_owner_exact_visitor},
    {"owner_exact_second", case_owner_exact_second},
    {"owner_sampling_visitor", case_owner_sampling_visitor},
    {"owner_sampling_second", case_owner_sampling_second},
    {"guard_thread_chunks", case_guard_thread_chunks},
    {"guard_floor_threads", case_guard_floor_threads},
    {"intern_front", case_intern_front},
    {"code_forget", case_code_forget},
    {"usable_chunks", case_usable_chunks},
    {"chunks_slack", case_chunks_slack},
};

int main(int argc, char **argv) {
  if (argc != 2) {
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) printf("%s\n", cases[i].name);
    return argc == 1 ? 0 : 2;
  }
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    if (strcmp(argv[1], cases[i].name) != 0) continue;
    cases[i].fn();
    if (tmp_root[0]) {
      char cmd[400];
      snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_root);
      if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp_root);
    }
    if (failures) {
      printf("FAIL %s (%d checks)\n", argv[1], failures);
      return 1;
    }
    printf("ok %s\n", argv[1]);
    return 0;
  }
  fprintf(stderr, "no case %s\n", argv[1]);
  return 2;
}
