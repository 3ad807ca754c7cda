/*
 * Names of code objects read straight from memory: the co_filename and
 * co_qualname (co_name before 3.11) pointers at their per-version offsets
 * (compat.c's table, with every other version difference), and
 * the str objects' characters converted to UTF-8 by hand. This runs inside
 * allocation hooks — sometimes inside pymalloc itself — where calling the
 * C-API could allocate and corrupt the allocator, and it works without the
 * GIL. The layout is verified once at start-up against the C-API
 * (hw__names_verify); if it does not match, names go through the C-API at
 * safe points instead (intern.c's pending list).
 */
#define _GNU_SOURCE
#include <string.h>

#include "hw.h"

static int hw__names_ok;
static size_t hw__off_file, hw__off_name, hw__off_firstline, hw__off_linetable;
static size_t hw__ascii_size, hw__compact_size;

/* A compact str object to UTF-8; returns 0 on success. */
static int hw__str_utf8(void *s, char *out, size_t cap, size_t *len) {
  if (!s || cap < 8) return -1;
  int64_t n = *(int64_t *)((char *)s + 16);
  uint32_t state = *(uint32_t *)((char *)s + 32);
  unsigned kind = (state >> 2) & 7, compact = (state >> 5) & 1, ascii = (state >> 6) & 1;
  if (!compact || n < 0) return -1;
  size_t o = 0;
  if (ascii) {
    size_t k = (size_t)n < cap - 1 ? (size_t)n : cap - 1;
    memcpy(out, (char *)s + hw__ascii_size, k);
    *len = k;
    return 0;
  }
  const unsigned char *d = (const unsigned char *)s + hw__compact_size;
  for (int64_t i = 0; i < n; i++) {
    uint32_t c = kind == 1   ? d[i]
                 : kind == 2 ? ((const uint16_t *)d)[i]
                 : kind == 4 ? ((const uint32_t *)d)[i]
                             : 0xFFFD;
    char b[4];
    size_t m;
    if (c < 0x80) {
      b[0] = (char)c;
      m = 1;
    } else if (c < 0x800) {
      b[0] = (char)(0xC0 | c >> 6);
      b[1] = (char)(0x80 | (c & 63));
      m = 2;
    } else if (c < 0x10000) {
      b[0] = (char)(0xE0 | c >> 12);
      b[1] = (char)(0x80 | ((c >> 6) & 63));
      b[2] = (char)(0x80 | (c & 63));
      m = 3;
    } else {
      b[0] = (char)(0xF0 | c >> 18);
      b[1] = (char)(0x80 | ((c >> 12) & 63));
      b[2] = (char)(0x80 | ((c >> 6) & 63));
      b[3] = (char)(0x80 | (c & 63));
      m = 4;
    }
    if (o + m >= cap) break;
    memcpy(out + o, b, m);
    o += m;
  }
  *len = o;
  return 0;
}

uint64_t hw__code_sig(void *code) {
  if (!hw__names_ok) return 0;
  uint64_t a = (uint64_t)(uintptr_t)HW_AT(code, hw__off_file);
  uint64_t b = (uint64_t)(uintptr_t)HW_AT(code, hw__off_name);
  uint32_t line = *(uint32_t *)((char *)code + hw__off_firstline);
  return a * 0x9E3779B97F4A7C15ULL ^ (b + 0x632BE59BD9B4E019ULL) ^ line;
}

/* Who a code object's line numbers are: its line table object (pointer, size
 * and first bytes), 0 when unknown. A cache of (code, instruction) -> line
 * must check it: code objects die and new ones take their address (a line
 * cached for a start-up code object was once served for the program's). */
uint64_t hw__code_lines_id(void *code) {
  if (!hw__names_ok || !hw__off_linetable) return 0;
  void *lt = HW_AT(code, hw__off_linetable);
  if (!lt) return 0;
  int64_t size = *(int64_t *)((char *)lt + 16); /* PyBytesObject.ob_size */
  uint64_t head = 0;
  memcpy(&head, (char *)lt + 32, size < 8 ? (size_t)(size > 0 ? size : 0) : 8); /* ob_sval */
  uint64_t id = ((uint64_t)(uintptr_t)lt * 0x9E3779B97F4A7C15ULL) ^ ((uint64_t)size << 40) ^ head;
  return id ? id : 1;
}

int hw__code_names(void *code, char *file, size_t fcap, size_t *flen, char *name, size_t ncap,
                   size_t *nlen) {
  if (!hw__names_ok || !hw__is_code(code)) return -1;
  if (hw__str_utf8(HW_AT(code, hw__off_file), file, fcap, flen) != 0) return -1;
  if (hw__str_utf8(HW_AT(code, hw__off_name), name, ncap, nlen) != 0) return -1;
  return 0;
}

/* GIL held, outside any hook: compare our reading with the C-API's. */
int hw__names_verify(void) {
  int m = hw__py.minor;
  const hw_code_layout *C = hw__code_layout();
  if (!C) return -1; /* names through the C-API at safe points */
  hw__off_file = C->co_filename;
  hw__off_name = C->co_name;
  hw__off_firstline = C->co_firstlineno;
  hw__ascii_size = C->str_ascii_data;
  hw__compact_size = C->str_compact_data;
  hw__off_linetable = C->co_linetable;
  hw__names_ok = 1;
  void *frame = hw__py.PyEval_GetFrame();
  void *code = frame ? hw__frame_code(frame) : NULL;
  if (!code) return 0; /* nothing to check against; the table stands */
  char f1[1024], n1[512];
  size_t l1 = 0, l2 = 0;
  int ok = hw__code_names(code, f1, sizeof f1, &l1, n1, sizeof n1, &l2) == 0;
  const char *attrs[2] = {"co_filename", m <= 10 ? "co_name" : "co_qualname"};
  const char *mine[2] = {f1, n1};
  size_t mlen[2] = {l1, l2};
  for (int i = 0; ok && i < 2; i++) {
    PyObject *v = hw__py.PyObject_GetAttrString((PyObject *)code, attrs[i]);
    ssize_t len = 0;
    const char *s = v ? hw__py.PyUnicode_AsUTF8AndSize(v, &len) : NULL;
    ok = s && (size_t)len == mlen[i] && memcmp(s, mine[i], mlen[i]) == 0;
    if (v) hw__py.Py_DecRef(v);
  }
  if (ok && hw__off_linetable) {
    PyObject *lt =
        hw__py.PyObject_GetAttrString((PyObject *)code, m <= 9 ? "co_lnotab" : "co_linetable");
    ok = lt && (void *)lt == HW_AT(code, hw__off_linetable);
    if (lt) hw__py.Py_DecRef(lt);
  }
  hw__py.Py_DecRef((PyObject *)code);
  if (!ok) {
    hw__names_ok = 0;
    hw__log("unexpected code object layout in Python %s; function names are resolved later",
            hw__py.version);
    return -1;
  }
  return 0;
}
