/*
 * Leaf helpers every unit may use: the process's lifecycle flags and the
 * clock. Kept out of init.c (the exported API) so that the core links
 * without it (native/test/core_test.c) and no unit depends on init.c.
 */
#define _GNU_SOURCE
#include <time.h>

#include "hw.h"

/* Set once at start-up (before any other thread of ours exists) and cleared
 * in a fork child: relaxed loads suffice, they publish no data of their own. */
_Atomic int hw__active;
_Atomic int hw__in_child;

uint64_t hw__now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}
