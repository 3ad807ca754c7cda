/* Messages to stderr through a fixed buffer and write(2): no stdio, no malloc. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "hw.h"

int hw__debug_on;

static void hw__vlog(const char *fmt, va_list ap) {
  char buf[512];
  int n = snprintf(buf, sizeof buf, "highwater: ");
  int m = vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
  if (m < 0) return;
  n += m;
  if (n > (int)sizeof buf - 2) n = (int)sizeof buf - 2;
  buf[n++] = '\n';
  ssize_t w = write(2, buf, (size_t)n);
  (void)w;
}

void hw__log(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  hw__vlog(fmt, ap);
  va_end(ap);
}

void hw__debug(const char *fmt, ...) {
  if (!hw__debug_on) return;
  va_list ap;
  va_start(ap, fmt);
  hw__vlog(fmt, ap);
  va_end(ap);
}
