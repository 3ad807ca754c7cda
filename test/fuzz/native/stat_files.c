/* Stat-style files (/proc/meminfo, memory.stat, /proc/self/status) and
 * one-value cgroup files (memory.max, memory.current, limit_in_bytes). */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = hw_fuzz_text(data, size);
  static const char *keys[] = {"MemAvailable", "MemFree", "MemTotal", "inactive_file",
                               "active_file", "total_inactive_file", "total_active_file",
                               "VmSwap"};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    uint64_t v = 12345;
    if (hw__stat_value(text, keys[i], &v) != 0 && v != 12345) abort(); /* untouched on failure */
  }
  uint64_t v = 777;
  int is_max = -1;
  int rc = hw__parse_value_file(text, &v, &is_max);
  if (is_max != 0 && is_max != 1) abort();
  if (is_max && (rc != 0 || v != 0)) abort();
  if (rc != 0 && v != 777) abort();
  v = 777;
  if (hw__parse_value_file(text, &v, NULL) != 0 && v != 777) abort();
  free(text);
  return 0;
}
