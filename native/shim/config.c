/*
 * HIGHWATER_* environment, read once into fixed buffers. An invalid value
 * warns once and falls back to the default; the shim never refuses to run.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "hw.h"

hw_config_t hw__config;

/* "262144", "256k", "256KiB", "1.5MiB" (binary units, case-insensitive, as
 * the CLI's sizes): bytes, at most 1 TiB (the table's size field). */
static int hw__parse_size(const char *s, uint64_t *out) {
  static const struct {
    const char *unit;
    int shift;
  } units[] = {
      {"", 0},     {"b", 0},  {"k", 10},   {"kib", 10}, {"m", 20},
      {"mib", 20}, {"g", 30}, {"gib", 30}, {"t", 40},   {"tib", 40},
  };
  uint64_t whole = 0, frac = 0, scale = 1;
  const char *p = s;
  if (*p < '0' || *p > '9') return -1;
  for (; *p >= '0' && *p <= '9'; p++) {
    whole = whole * 10 + (uint64_t)(*p - '0');
    if (whole > (1ull << 40)) return -1;
  }
  if (*p == '.') {
    for (p++; *p >= '0' && *p <= '9'; p++)
      if (scale < 1000000) frac = frac * 10 + (uint64_t)(*p - '0'), scale *= 10;
  }
  char unit[8];
  size_t n = strlen(p);
  if (n >= sizeof unit) return -1;
  for (size_t i = 0; i <= n; i++) unit[i] = (char)(p[i] >= 'A' && p[i] <= 'Z' ? p[i] + 32 : p[i]);
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
    if (strcmp(unit, units[i].unit) != 0) continue;
    uint64_t v = (whole << units[i].shift) + ((frac << units[i].shift) / scale);
    if (v > (1ull << 40)) return -1;
    *out = v;
    return 0;
  }
  return -1;
}

void hw__config_load(void) {
  hw_config_t *c = &hw__config;
  memset(c, 0, sizeof *c);
  c->oom_detection = 1;
  c->min_floor = 100ull << 20;
  c->floor_pct_x100 = 200;
  c->control_uid = -1;
  c->file_mode = 0600;
  c->children = 1;
  c->stop_grace_ms = 3000;

  const char *v = getenv("HIGHWATER_DEBUG");
  hw__debug_on = v && strcmp(v, "1") == 0;

  v = getenv("HIGHWATER_RUN_DIR");
  if (v && *v) {
    if (strlen(v) >= sizeof c->run_dir - 64)
      hw__log("HIGHWATER_RUN_DIR is too long (max %zu bytes); staying dormant",
              sizeof c->run_dir - 64);
    else strcpy(c->run_dir, v);
  }
  v = getenv("HIGHWATER_MODE");
  if (v && *v) {
    if (strcmp(v, "python") == 0) c->mode_python = 1;
    else if (strcmp(v, "run") != 0)
      hw__log("HIGHWATER_MODE=%s is not 'run' or 'python'; using 'run'", v);
  }
  v = getenv("HIGHWATER_OOM_DETECTION");
  if (v && *v) {
    if (strcmp(v, "0") == 0) c->oom_detection = 0;
    else if (strcmp(v, "1") != 0) hw__log("HIGHWATER_OOM_DETECTION=%s is not 0 or 1; using 1", v);
  }
  v = getenv("HIGHWATER_MIN_AVAILABLE");
  if (v && *v) {
    uint64_t b;
    uint32_t p;
    if (hw__parse_floor(v, &b, &p) == 0) {
      c->min_floor = b;
      c->floor_pct_x100 = p;
    } else {
      hw__log("HIGHWATER_MIN_AVAILABLE=%s is not bytes, N%% or both "
              "(e.g. 104857600,2%%); using the default",
              v);
    }
  }
  v = getenv("HIGHWATER_CONTROL_UID");
  if (v && *v) {
    uint64_t u;
    if (hw__parse_u64(v, &u) == 0 && u < 0x7fffffff) c->control_uid = (int)u;
    else hw__log("HIGHWATER_CONTROL_UID=%s is not a uid; ignored", v);
  }
  v = getenv("HIGHWATER_SAMPLE_RATE");
  if (v && *v) {
    uint64_t r;
    if (hw__parse_size(v, &r) == 0) c->sample_rate = r;
    else
      hw__log("HIGHWATER_SAMPLE_RATE=%s is not a size in bytes (e.g. 262144 or 256KiB, "
              "at most 1TiB); recording every allocation exactly",
              v);
  }
  v = getenv("HIGHWATER_SAMPLE_SEED");
  if (v && *v) {
    if (hw__parse_u64(v, &c->sample_seed) == 0) c->sample_seeded = 1;
    else hw__log("HIGHWATER_SAMPLE_SEED=%s is not an unsigned integer; ignored", v);
  }
  v = getenv("HIGHWATER_FILE_MODE");
  if (v && *v) {
    char *end;
    unsigned long m = strtoul(v, &end, 8);
    if (*end == '\0' && m <= 0777) c->file_mode = (unsigned)m;
    else hw__log("HIGHWATER_FILE_MODE=%s is not an octal mode; using 0600", v);
  }
  v = getenv("HIGHWATER_CHILDREN");
  if (v && *v) {
    if (strcmp(v, "0") == 0) c->children = 0;
    else if (strcmp(v, "1") != 0) hw__log("HIGHWATER_CHILDREN=%s is not 0 or 1; using 1", v);
  }
  v = getenv("HIGHWATER_STOP_GRACE_MS");
  if (v && *v) {
    uint64_t ms;
    if (hw__parse_u64(v, &ms) == 0 && ms <= 600000) c->stop_grace_ms = ms;
    else hw__log("HIGHWATER_STOP_GRACE_MS=%s is not 0 - 600000; using 3000", v);
  }
}
