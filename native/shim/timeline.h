/* The timeline's dump line (timeline.c); apart from hw.h because it needs the writer. */
#ifndef HW_TIMELINE_H
#define HW_TIMELINE_H
#include "writer.h"
/* One {"type":"timeline",...} line; nothing when the state file has no timeline. */
void hw__timeline_write(hw_writer *w);
#endif
