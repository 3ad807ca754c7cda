/*
 * 3.11+: which levels of a thread's frame chain cannot have run since the
 * last walk, read from the interpreter's data stack (datastack.c).
 */
#ifndef HW_DATASTACK_H
#define HW_DATASTACK_H

#include "hw.h"

#define HW_CHUNKS_MAX 32

/* A _PyStackChunk as the walk saw it: where, how big, and its `top` (where
 * the stack stood in it when the chunk above was pushed). */
typedef struct {
  void *base;
  size_t size, top;
} hw_chunk;

/* One thread's chunks at its last walk, root first, and what has been
 * unmapped of them since. Written only by that thread (its walk, its munmap). */
typedef struct {
  hw_chunk rec[HW_CHUNKS_MAX];
  int n;                       /* 0: none recorded, nothing is proven */
  int freed_low;               /* the lowest recorded chunk unmapped since; HW_CHUNKS_MAX: none */
  hw_chunk now[HW_CHUNKS_MAX]; /* scratch: the chunks of this walk */
  int nnow;
  int same; /* this walk's chunks are the record's (now[] not read) */
  /* The held chunk (datastack.c): the one the thread state held back at the
   * record (NULL: none, or not read), and whether anything was unmapped in
   * this thread since. */
  void *held;
  int unmapped;
  unsigned long held_walks; /* walks the held chunk let stop a chunk higher */
  /* Stack switching (datastack.c): the thread state the chunks were last
   * read from, and its root chunk then. */
  void *tstate, *root;
} hw_chunks;

/* 1 when the CPython of this version string ("3.13.12") frees a chunk the
 * moment its base frame pops; 0 for 3.13.13+, 3.14.4+ (their chunk cache),
 * unknown versions and strings that do not parse. */
int hw__chunks_slack(const char *version);

/* The slack the proof runs with (hw__chunks_init), or -1 when it is off. */
int hw__chunks_slack_in_use(void);

/* GIL held, at start-up, on the frame that runs now: the version, the
 * offsets and the arena allocator are what the proof needs. 0 when it can
 * be used. */
int hw__chunks_init(const hw_frame_layout *L, void *tstate, void *top);

/* Reads this walk's chunks into c->now and returns the address range of the
 * highest chunk none of whose frames can have run since the record (*span 0:
 * none is proven). */
void hw__chunks_unchanged(hw_chunks *c, void *tstate, uintptr_t *lo, uintptr_t *span);

/* This walk's chunks become the record (hw__chunks_unchanged read them;
 * a walk that did not, reads them here). */
void hw__chunks_record(hw_chunks *c, void *tstate, int read);

/* munmap(addr, len) in the chunks' thread. */
void hw__chunks_unmapped(hw_chunks *c, void *addr, size_t len);

/* The control thread, at each tick: whether greenlet is loaded (the proof
 * then stops on a CPython with a chunk cache, datastack.c "Stack
 * switching"). Takes the loader's lock: never from a hook. */
void hw__chunks_watch_switchers(void);

/* 1 once a walk saw PyThreadState.datastack_cached_chunk hold the chunk
 * the stack had just left: the held-chunk proof is in use (datastack.c). */
int hw__chunks_held_confirmed(void);

/* 1 once stack switching was seen in this process (datastack.c). */
int hw__chunks_switching(void);

#endif
