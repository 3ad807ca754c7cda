#define _GNU_SOURCE
#include "writer.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

void hw__w_flush(hw_writer *w) {
  size_t off = 0;
  while (off < w->pos && !w->error) {
    ssize_t n = hw__own_write(&w->out, w->buf + off, w->pos - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      w->error = errno;
      break;
    }
    off += (size_t)n;
  }
  w->pos = 0;
}

void hw__w_raw(hw_writer *w, const char *s, size_t n) {
  while (n) {
    if (w->pos == sizeof w->buf) hw__w_flush(w);
    size_t room = sizeof w->buf - w->pos;
    size_t k = n < room ? n : room;
    memcpy(w->buf + w->pos, s, k);
    w->pos += k;
    s += k;
    n -= k;
  }
}

void hw__w_str(hw_writer *w, const char *s) { hw__w_raw(w, s, strlen(s)); }

void hw__w_u64(hw_writer *w, uint64_t v) {
  char tmp[24];
  int i = sizeof tmp;
  do {
    tmp[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  hw__w_raw(w, tmp + i, sizeof tmp - (size_t)i);
}

void hw__w_i64(hw_writer *w, int64_t v) {
  if (v < 0) {
    hw__w_raw(w, "-", 1);
    hw__w_u64(w, (uint64_t)(-(v + 1)) + 1);
  } else {
    hw__w_u64(w, (uint64_t)v);
  }
}

/* Length of a valid UTF-8 sequence at s (max n bytes), 0 if invalid. */
static size_t hw__utf8_len(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  size_t len;
  unsigned min;
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) {
    len = 2;
    min = 0x80;
    c &= 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3;
    min = 0x800;
    c &= 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4;
    min = 0x10000;
    c &= 0x07;
  } else return 0;
  if (len > n) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    c = (c << 6) | (s[i] & 0x3F);
  }
  if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
  return len;
}

void hw__w_json(hw_writer *w, const char *str, size_t n) {
  const unsigned char *s = (const unsigned char *)str;
  static const char hex[] = "0123456789abcdef";
  hw__w_raw(w, "\"", 1);
  size_t i = 0;
  while (i < n) {
    unsigned char c = s[i];
    if (c == '"' || c == '\\') {
      char e[2] = {'\\', (char)c};
      hw__w_raw(w, e, 2);
      i++;
    } else if (c < 0x20) {
      char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      hw__w_raw(w, e, 6);
      i++;
    } else if (c < 0x80) {
      hw__w_raw(w, (const char *)s + i, 1);
      i++;
    } else {
      size_t len = hw__utf8_len(s + i, n - i);
      if (len) {
        hw__w_raw(w, (const char *)s + i, len);
        i += len;
      } else {
        hw__w_raw(w, "\xEF\xBF\xBD", 3);
        i++;
      }
    }
  }
  hw__w_raw(w, "\"", 1);
}
