/* Control lines (docs/protocol.md) as the control thread hands them over:
 * the bytes before the newline, any length, any bytes. */
#include <stdio.h>

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *nl = memchr(data, '\n', size);
  size_t len = nl ? (size_t)(nl - data) : size;
  if (len > HW_CMD_LINE_MAX) len = HW_CMD_LINE_MAX; /* the thread never reads more */
  hw_command c;
  hw__parse_command((const char *)data, len, &c);
  /* Every outcome is a command or a named error, never both. */
  if ((c.cmd == HW_CMD_BAD) != (c.error != NULL)) abort();
  if (c.cmd == HW_CMD_OOM && (c.reason < 1 || c.reason > 3)) abort();
  if (c.cmd == HW_CMD_FLOOR) {
    /* A floor accepted is exactly the digits that were sent (leading zeros
     * allowed): "floor " then only digits, whose value it is. */
    if (len <= 6 || memcmp(data, "floor ", 6) != 0) abort();
    size_t at = 6;
    while (at < len - 1 && data[at] == '0') at++;
    char again[32];
    int n = snprintf(again, sizeof again, "%llu", (unsigned long long)c.floor);
    if ((size_t)n != len - at || memcmp(again, data + at, len - at) != 0) abort();
  }
  return 0;
}
