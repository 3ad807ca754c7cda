/*
 * Shared by the native fuzz targets: the input as a NUL-terminated string
 * (the shim's readers always NUL-terminate what they read), and a check
 * that an output string is terminated inside its buffer.
 */
#ifndef HW_FUZZ_H
#define HW_FUZZ_H
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"

/* The largest buffer any reader in the shim fills (mountinfo, 16 KiB). */
#define HW_FUZZ_MAX_INPUT (16 * 1024)

static inline char *hw_fuzz_text(const uint8_t *data, size_t size) {
  if (size > HW_FUZZ_MAX_INPUT - 1) size = HW_FUZZ_MAX_INPUT - 1;
  char *s = malloc(size + 1);
  if (!s) abort();
  memcpy(s, data, size);
  s[size] = '\0';
  return s;
}

#define HW_FUZZ_TERMINATED(buf) \
  do { \
    if (!memchr((buf), '\0', sizeof(buf))) abort(); \
  } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
#endif
