/* HIGHWATER_MIN_AVAILABLE values ("104857600", "2%", "1.5%", "104857600,2%"). */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = hw_fuzz_text(data, size > 256 ? 256 : size);
  uint64_t bytes = 1;
  uint32_t pct = 1;
  if (hw__parse_floor(text, &bytes, &pct) == 0) {
    if (pct > 10000) abort(); /* at most 100.00 % */
  } else if (bytes != 1 || pct != 1) {
    abort(); /* a refused value leaves the defaults alone */
  }
  uint64_t u;
  hw__parse_u64(text, &u);
  free(text);
  return 0;
}
