/* Pure parsers of the shim's inputs (parse.h); fuzzed by test/fuzz/native. */
#define _GNU_SOURCE
#include "parse.h"

#include <string.h>

int hw__parse_u64(const char *s, uint64_t *out) {
  if (!s || !*s) return -1;
  uint64_t v = 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '9') return -1;
    uint64_t d = (uint64_t)(*s - '0');
    if (v > (UINT64_MAX - d) / 10) return -1;
    v = v * 10 + d;
  }
  *out = v;
  return 0;
}

int hw__parse_value_file(const char *text, uint64_t *out, int *is_max) {
  char buf[32];
  size_t len = strcspn(text, "\n");
  if (is_max) *is_max = len == 3 && strncmp(text, "max", 3) == 0;
  if (is_max && *is_max) {
    *out = 0;
    return 0;
  }
  if (len == 0 || len >= sizeof buf) return -1;
  memcpy(buf, text, len);
  buf[len] = '\0';
  return hw__parse_u64(buf, out);
}

int hw__stat_value(const char *text, const char *key, uint64_t *out) {
  size_t klen = strlen(key);
  for (const char *p = text; p && *p;) {
    if (strncmp(p, key, klen) == 0 && (p[klen] == ' ' || p[klen] == ':')) {
      const char *v = p + klen;
      while (*v == ' ' || *v == ':' || *v == '\t') v++;
      uint64_t x = 0;
      int digits = 0;
      while (*v >= '0' && *v <= '9') {
        uint64_t d = (uint64_t)(*v++ - '0');
        if (x > (UINT64_MAX - d) / 10) return -1; /* a reading that large is a lie */
        x = x * 10 + d;
        digits++;
      }
      if (!digits) return -1;
      *out = x;
      return 0;
    }
    p = strchr(p, '\n');
    if (p) p++;
  }
  return -1;
}

/* Field n (0-based, space separated) of the line [line, end) into out. */
static int hw__field(const char *line, const char *end, int n, char *out, size_t cap) {
  const char *p = line;
  for (int i = 0; i < n; i++) {
    p = memchr(p, ' ', (size_t)(end - p));
    if (!p) return -1;
    p++;
  }
  const char *q = p;
  while (q < end && *q != ' ') q++;
  size_t len = (size_t)(q - p);
  if (len >= cap) return -1;
  memcpy(out, p, len);
  out[len] = '\0';
  return 0;
}

/* "memory" as one of the comma-separated names in [s, end). */
static int hw__has_memory(const char *s, const char *end) {
  for (const char *p = s; p + 6 <= end; p++) {
    if (memcmp(p, "memory", 6) == 0 && (p == s || p[-1] == ',') && (p + 6 == end || p[6] == ','))
      return 1;
  }
  return 0;
}

static void hw__copy(char *out, size_t cap, const char *s, size_t len) {
  if (len >= cap) len = cap - 1; /* truncated paths fail later, when read */
  memcpy(out, s, len);
  out[len] = '\0';
}

void hw__parse_proc_cgroup(const char *text, hw_cgroup_paths *out) {
  out->v1_path[0] = out->v2_path[0] = '\0';
  for (const char *line = text; *line;) {
    const char *end = line + strcspn(line, "\n");
    const char *c1 = memchr(line, ':', (size_t)(end - line));
    const char *c2 = c1 ? memchr(c1 + 1, ':', (size_t)(end - c1 - 1)) : NULL;
    if (c1 && c2) {
      if (c1 - line == 1 && line[0] == '0' && c2 == c1 + 1)
        hw__copy(out->v2_path, sizeof out->v2_path, c2 + 1, (size_t)(end - c2 - 1));
      else if (hw__has_memory(c1 + 1, c2))
        hw__copy(out->v1_path, sizeof out->v1_path, c2 + 1, (size_t)(end - c2 - 1));
    }
    line = *end ? end + 1 : end;
  }
}

void hw__parse_mountinfo(const char *text, hw_cgroup_mounts *out) {
  memset(out, 0, sizeof *out);
  for (const char *line = text; *line;) {
    const char *end = line + strcspn(line, "\n");
    const char *sep = memmem(line, (size_t)(end - line), " - ", 3);
    if (sep) {
      char fstype[32], super[256], root[256], mnt[256];
      if (hw__field(sep + 3, end, 0, fstype, sizeof fstype) == 0 &&
          hw__field(line, sep, 3, root, sizeof root) == 0 &&
          hw__field(line, sep, 4, mnt, sizeof mnt) == 0) {
        if (strcmp(fstype, "cgroup2") == 0 && !out->v2_mnt[0]) {
          strcpy(out->v2_mnt, mnt);
          strcpy(out->v2_root, root);
        } else if (strcmp(fstype, "cgroup") == 0 &&
                   hw__field(sep + 3, end, 2, super, sizeof super) == 0 &&
                   hw__has_memory(super, super + strlen(super))) {
          strcpy(out->v1_mnt, mnt);
          strcpy(out->v1_root, root);
        }
      }
    }
    line = *end ? end + 1 : end;
  }
}

int hw__join_cgroup(const char *mnt, const char *root, const char *cg, char *out, size_t cap) {
  const char *rel = cg;
  size_t rlen = strlen(root);
  if (strcmp(root, "/") != 0 && strncmp(cg, root, rlen) == 0) rel = cg + rlen;
  else if (strcmp(root, "/") != 0) rel = ""; /* namespaced: we are the mount's root */
  if (strcmp(rel, "/") == 0) rel = "";
  size_t mlen = strlen(mnt), glen = strlen(rel);
  if (mlen + glen + 1 > cap) return -1;
  memcpy(out, mnt, mlen);
  memcpy(out + mlen, rel, glen + 1);
  return 0;
}

void hw__parse_command(const char *line, size_t len, hw_command *out) {
  memset(out, 0, sizeof *out);
  out->error = "unknown-command";
  if (memchr(line, '\0', len)) return; /* a NUL inside a line is not a command */
  char buf[257];
  if (len >= sizeof buf) return;
  memcpy(buf, line, len);
  buf[len] = '\0';
  if (strcmp(buf, "ping") == 0) {
    out->cmd = HW_CMD_PING;
  } else if (strcmp(buf, "dump") == 0) {
    out->cmd = HW_CMD_DUMP;
  } else if (strncmp(buf, "floor ", 6) == 0) {
    if (hw__parse_u64(buf + 6, &out->floor) == 0) out->cmd = HW_CMD_FLOOR;
    else out->error = "bad-argument";
  } else if (strncmp(buf, "oom ", 4) == 0) {
    const char *r = buf + 4;
    out->reason = strcmp(r, "low-available") == 0       ? 1
                  : strcmp(r, "swap") == 0              ? 2
                  : strcmp(r, "failed-allocation") == 0 ? 3
                                                        : 0;
    if (out->reason) out->cmd = HW_CMD_OOM;
    else out->error = "bad-argument";
  } else if (strncmp(buf, "container-oom ", 14) == 0) {
    if (hw__parse_u64(buf + 14, &out->pid) == 0 && out->pid > 0) out->cmd = HW_CMD_CONTAINER_OOM;
    else out->error = "bad-argument";
  }
  if (out->cmd) out->error = NULL;
}

int hw__parse_floor(const char *s, uint64_t *bytes, uint32_t *pct_x100) {
  char buf[128];
  size_t n = strlen(s);
  if (n == 0 || n >= sizeof buf) return -1;
  memcpy(buf, s, n + 1);
  uint64_t b = 0;
  uint32_t p = 0;
  for (char *part = buf, *next; part; part = next) {
    next = strchr(part, ',');
    if (next) *next++ = '\0';
    size_t len = strlen(part);
    if (len && part[len - 1] == '%') {
      part[len - 1] = '\0';
      char *dot = strchr(part, '.');
      uint64_t whole = 0, frac = 0;
      if (dot) {
        *dot = '\0';
        const char *f = dot + 1;
        if (strlen(f) > 2 || hw__parse_u64(f, &frac) != 0) return -1;
        if (strlen(f) == 1) frac *= 10;
      }
      if (hw__parse_u64(part, &whole) != 0 || whole > 100) return -1;
      p = (uint32_t)(whole * 100 + frac);
      if (p > 10000) return -1;
    } else if (hw__parse_u64(part, &b) != 0) {
      return -1;
    }
  }
  *bytes = b;
  *pct_x100 = p;
  return 0;
}
