/*
 * Pure parsers of what the shim reads: /proc and cgroup files, control
 * lines, HIGHWATER_* values. They take a buffer and touch nothing else (no
 * globals, no I/O, no heap), so the fuzz targets in test/fuzz/native link
 * this file alone. Inputs are NUL-terminated and may be anything.
 */
#ifndef HW_PARSE_H
#define HW_PARSE_H
#include <stddef.h>
#include <stdint.h>

/* Decimal digits only, no sign, no overflow; 0 or -1. */
int hw__parse_u64(const char *s, uint64_t *out);
/* A one-value cgroup file ("123\n" or "max\n"); *is_max set when given. */
int hw__parse_value_file(const char *text, uint64_t *out, int *is_max);
/* "key value" / "Key:   value kB" line of a stat-style file; 0 when found. */
int hw__stat_value(const char *text, const char *key, uint64_t *out);

/* /proc/self/cgroup: the v1 memory controller's path and the v2 path. */
typedef struct {
  char v1_path[512], v2_path[512];
} hw_cgroup_paths;
void hw__parse_proc_cgroup(const char *text, hw_cgroup_paths *out);

/* /proc/self/mountinfo: where the v1 memory hierarchy and cgroup2 are mounted. */
typedef struct {
  char v1_mnt[256], v1_root[256], v2_mnt[256], v2_root[256];
} hw_cgroup_mounts;
void hw__parse_mountinfo(const char *text, hw_cgroup_mounts *out);

/* The directory of cgroup `cg` under a mount of `root` at `mnt`; 0 or -1. */
int hw__join_cgroup(const char *mnt, const char *root, const char *cg, char *out, size_t cap);

/* A control line (docs/protocol.md), without its newline. */
#define HW_CMD_LINE_MAX 256
enum { HW_CMD_BAD = 0, HW_CMD_PING, HW_CMD_DUMP, HW_CMD_FLOOR, HW_CMD_OOM, HW_CMD_CONTAINER_OOM };
typedef struct {
  int cmd;
  const char *error; /* for HW_CMD_BAD: "unknown-command" or "bad-argument" */
  uint64_t floor;    /* HW_CMD_FLOOR */
  int reason;        /* HW_CMD_OOM: 1 low-available, 2 swap, 3 failed-allocation */
  uint64_t pid;      /* HW_CMD_CONTAINER_OOM: the process that tripped */
} hw_command;
void hw__parse_command(const char *line, size_t len, hw_command *out);

/* HIGHWATER_MIN_AVAILABLE: "104857600", "2%", "1.5%" or "104857600,2%". */
int hw__parse_floor(const char *s, uint64_t *bytes, uint32_t *pct_x100);
#endif
