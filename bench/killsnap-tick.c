/*
 * What the kill snapshot adds to the shim's control tick (bench/README.md
 * "Kill snapshot"): hw__killsnap_check when the count has not moved (every
 * tick: one or two small cgroup files read), next to the tick's existing
 * hw__read_memory. Links the shim's core units directly (no Python):
 *
 *   cd native && gcc -std=gnu11 -O2 -Ishim -o /tmp/killsnap-tick ../bench/killsnap-tick.c \
 *     $(find shim -name '*.c' ! -name hooks.c ! -name init.c) -ldl -lpthread -lm
 *   # run it inside the memory cgroup to measure (v1: memory.oom_control, v2: memory.events)
 *   /tmp/killsnap-tick 20000
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "hw.h"

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

int main(int argc, char **argv) {
  int iters = argc > 1 ? atoi(argv[1]) : 20000;
  hw__resolve_real();
  hw__config_load();
  char dir[] = "/tmp/hw-killsnap-tick-XXXXXX";
  if (!mkdtemp(dir)) return 2;
  snprintf(hw__config.run_dir, sizeof hw__config.run_dir, "%s", dir);
  if (hw__state_open() != 0) return 2;
  hw_readings_t r;
  hw__read_memory(&r); /* finds the cgroup, as the tick's reading does first */
  const char *own, *lim;
  int v;
  if (!hw__memory_cgroup_dirs(&own, &lim, &v)) { fprintf(stderr, "no cgroup\n"); return 2; }
  printf("cgroup v%d own=%s limiting=%s\n", v, own, lim);
  hw__killsnap_check(); /* baseline */
  double t0 = now_us();
  for (int i = 0; i < iters; i++) hw__killsnap_check();
  double t1 = now_us();
  printf("check (no kill): %.2f us per tick over %d\n", (t1 - t0) / iters, iters);
  double r0 = now_us();
  for (int i = 0; i < iters / 10; i++) hw__read_memory(&r);
  double r1 = now_us();
  printf("the tick's existing hw__read_memory: %.2f us\n", (r1 - r0) / (iters / 10));
  /* The copy itself, once per process at a kill: the same loop as
   * killsnap.c's, over `live` areas whose every 8th node holds bytes (a
   * program's leaves; the pages of `live` are resident, as in a program). */
  uint64_t from = 0;
  for (uint64_t nodes = 10000; nodes <= 1000000; nodes *= 10) {
    for (uint64_t i = from; i < from + nodes; i += 8) hw__state.live[i] = 4096;
    double c0 = now_us();
    for (uint64_t i = from; i < from + nodes; i++) {
      int64_t v = __atomic_load_n(&hw__state.live[i], __ATOMIC_RELAXED);
      if (v) hw__state.kill[i] = v;
    }
    double c1 = now_us();
    printf("copy of %llu nodes: %.0f us\n", (unsigned long long)nodes, c1 - c0);
    from += nodes;
  }
  char path[600];
  snprintf(path, sizeof path, "%s/hw-%d.state", dir, (int)getpid());
  unlink(path);
  rmdir(dir);
  return 0;
}
