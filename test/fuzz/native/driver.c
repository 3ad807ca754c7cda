/*
 * A plain mutation loop for hosts without libFuzzer: runs every seed, then
 * mutated seeds (bit flips, byte changes, inserts, deletes, splices) until
 * the time is up. Built with ASan+UBSan; a finding aborts the process.
 * Usage: driver SECONDS SEED_DIR
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fuzz.h"

#define MAX_SEEDS 256

static uint8_t *seeds[MAX_SEEDS];
static size_t seed_len[MAX_SEEDS];
static int nseeds;

static void load(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d)) && nseeds < MAX_SEEDS) {
    if (e->d_name[0] == '.') continue;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    FILE *f = fopen(path, "rb");
    if (!f) continue;
    uint8_t *buf = malloc(HW_FUZZ_MAX_INPUT);
    size_t n = fread(buf, 1, HW_FUZZ_MAX_INPUT, f);
    fclose(f);
    seeds[nseeds] = buf;
    seed_len[nseeds++] = n;
  }
  closedir(d);
}

static const char *tokens[] = {"\n", " ", ":", ",", "%", ".", "/", " - ", "max", "memory",
                               "cgroup", "cgroup2", "0::", "floor ", "oom ", "18446744073709551616"};

static size_t mutate(uint8_t *buf, size_t len, size_t cap) {
  int rounds = 1 + rand() % 8;
  for (int r = 0; r < rounds; r++) {
    switch (rand() % 6) {
    case 0: if (len) buf[rand() % len] ^= (uint8_t)(1u << (rand() % 8)); break;
    case 1: if (len) buf[rand() % len] = (uint8_t)rand(); break;
    case 2: if (len < cap) { size_t at = len ? (size_t)rand() % len : 0; memmove(buf + at + 1, buf + at, len - at); buf[at] = (uint8_t)rand(); len++; } break;
    case 3: if (len) { size_t at = (size_t)rand() % len; memmove(buf + at, buf + at + 1, len - at - 1); len--; } break;
    case 4: { const char *t = tokens[rand() % (sizeof tokens / sizeof tokens[0])]; size_t tl = strlen(t);
              if (len + tl <= cap) { size_t at = len ? (size_t)rand() % len : 0; memmove(buf + at + tl, buf + at, len - at); memcpy(buf + at, t, tl); len += tl; } } break;
    case 5: if (nseeds) { int s = rand() % nseeds; size_t from = seed_len[s] ? (size_t)rand() % seed_len[s] : 0;
              size_t n = seed_len[s] - from; if (len + n > cap) n = cap - len; memcpy(buf + len, seeds[s] + from, n); len += n; } break;
    }
  }
  return len;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s SECONDS SEED_DIR\n", argv[0]);
    return 2;
  }
  double seconds = atof(argv[1]);
  load(argv[2]);
  srand((unsigned)time(NULL));
  for (int i = 0; i < nseeds; i++) LLVMFuzzerTestOneInput(seeds[i], seed_len[i]);
  uint8_t *buf = malloc(HW_FUZZ_MAX_INPUT);
  unsigned long runs = 0;
  time_t end = time(NULL) + (time_t)seconds;
  while (time(NULL) < end) {
    for (int k = 0; k < 1000; k++, runs++) {
      size_t len = 0;
      if (nseeds) {
        int s = rand() % nseeds;
        memcpy(buf, seeds[s], seed_len[s]);
        len = seed_len[s];
      }
      len = mutate(buf, len, HW_FUZZ_MAX_INPUT);
      LLVMFuzzerTestOneInput(buf, len);
    }
  }
  free(buf);
  for (int i = 0; i < nseeds; i++) free(seeds[i]);
  printf("Done %lu runs (mutation loop, %d seeds)\n", runs, nseeds);
  return 0;
}
