/* A fixed-buffer writer over write(2): dumps are written without malloc. */
#ifndef HW_WRITER_H
#define HW_WRITER_H
#include <stddef.h>
#include <stdint.h>

#include "hw.h"

typedef struct {
  hw_ownfd out; /* re-verified before every write(2) */
  int error;    /* first errno seen, 0 = fine */
  size_t pos;
  char buf[64 * 1024];
} hw_writer;

void hw__w_flush(hw_writer *w);
void hw__w_raw(hw_writer *w, const char *s, size_t n);
void hw__w_str(hw_writer *w, const char *s);
void hw__w_u64(hw_writer *w, uint64_t v);
void hw__w_i64(hw_writer *w, int64_t v);
/* A JSON string literal; invalid UTF-8 becomes U+FFFD. */
void hw__w_json(hw_writer *w, const char *s, size_t n);
#endif
