/*
 * HIGHWATER_* environment, read once into fixed buffers. An invalid value
 * warns once and falls back to the default; the shim never refuses to run.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "hw.h"

hw_config_t hw__config;

void hw__config_load(void) {
  hw_config_t *c = &hw__config;
  memset(c, 0, sizeof *c);
  c->oom_detection = 1;
  c->min_floor = 100ull << 20;
  c->floor_pct_x100 = 200;
  c->control_uid = -1;
  c->file_mode = 0600;

  const char *v = getenv("HIGHWATER_DEBUG");
  hw__debug_on = v && strcmp(v, "1") == 0;

  v = getenv("HIGHWATER_RUN_DIR");
  if (v && *v) {
    if (strlen(v) >= sizeof c->run_dir - 64)
      hw__log("HIGHWATER_RUN_DIR is too long (max %zu bytes); staying dormant",
              sizeof c->run_dir - 64);
    else
      strcpy(c->run_dir, v);
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
    else if (strcmp(v, "1") != 0)
      hw__log("HIGHWATER_OOM_DETECTION=%s is not 0 or 1; using 1", v);
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
              "(e.g. 104857600,2%%); using the default", v);
    }
  }
  v = getenv("HIGHWATER_CONTROL_UID");
  if (v && *v) {
    uint64_t u;
    if (hw__parse_u64(v, &u) == 0 && u < 0x7fffffff) c->control_uid = (int)u;
    else hw__log("HIGHWATER_CONTROL_UID=%s is not a uid; ignored", v);
  }
  v = getenv("HIGHWATER_FILE_MODE");
  if (v && *v) {
    char *end;
    unsigned long m = strtoul(v, &end, 8);
    if (*end == '\0' && m <= 0777) c->file_mode = (unsigned)m;
    else hw__log("HIGHWATER_FILE_MODE=%s is not an octal mode; using 0600", v);
  }
}
