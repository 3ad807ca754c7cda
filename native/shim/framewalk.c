/*
 * Python 3.11+: read the interpreter's own frame chain at allocation time
 * instead of keeping a shadow stack with a profile callback. From 3.11 on,
 * any profile function sends the eval loop down its slow path (a no-op C
 * profile function alone costs 2.2x-3.2x on call-heavy code), so the cheap
 * way is to pay only when memory is allocated.
 *
 * Each thread's current _PyInterpreterFrame is reached from its thread state
 * (PyGILState_GetThisThreadState works without the GIL); the frames of our
 * own thread are suspended while we run inside its malloc, so reading them is
 * a pure read, GIL or not. Field offsets are per minor version (from the
 * CPython headers; compat.c) and verified at start-up against
 * PyEval_GetFrame(); on any mismatch the shim falls back to the profile
 * callback (pystack.c). A per-thread cache keyed by (frame,
 * instruction, code) for each level from the root means only the levels that
 * moved since the last allocation are looked up again.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "hw.h"

#define HW_WALK_MAX 1024

/* A level of the stack: its frame and where it is. The instruction pointer
 * lies inside the code object (3.11+ keep the bytecode in it), so it also
 * says which code object runs there. */
typedef struct {
  void *iframe, *instr;
} hw_wlevel;

typedef struct {
  void *iframe, *instr;
  uint32_t node;
} hw_wframe;

#define HW_LINE_CACHE 4096

typedef struct {
  hw_wframe cache[HW_WALK_MAX]; /* root first */
  hw_wlevel chain[HW_WALK_MAX]; /* scratch: top first */
  int cached;
  /* (code, instruction) -> line: computing a line scans the line table. */
  struct { void *code, *instr; uint64_t lines_id; int line; } lines[HW_LINE_CACHE];
} hw_walk_t;

/* Set once at start-up, GIL held, before tracking starts; relaxed. */
_Atomic int hw__walk_on;
static const hw_frame_layout *hw__L;
static void *(*hw__this_tstate)(void);
static int (*hw__frame_line)(void *);     /* 3.12+: PyUnstable_InterpreterFrame_GetLine */
static int (*hw__addr2line)(void *, int); /* 3.11: PyCode_Addr2Line */
static int (*hw__frame_lasti)(void *);    /* 3.12+: PyUnstable_InterpreterFrame_GetLasti */

static void *hw__top_iframe(void *tstate) {
  if (!tstate) return NULL;
  if (hw__L->current_frame) return HW_AT(tstate, hw__L->current_frame);
  void *cframe = HW_AT(tstate, hw__L->cframe);
  return cframe ? HW_AT(cframe, hw__L->cframe_current) : NULL;
}

static int hw__line(void *iframe, void *code, void *instr) {
  if (hw__frame_line) return hw__frame_line(iframe);
  int addr = (int)((char *)instr - ((char *)code + hw__L->code_adaptive));
  return hw__addr2line(code, addr);
}

/* The first frame below `f` that the walk keeps (a code object, not a C-stack
 * entry frame). */
static void *hw__next_kept(void *f) {
  for (f = HW_AT(f, hw__L->previous); f; f = HW_AT(f, hw__L->previous)) {
    int owner = *((signed char *)f + hw__L->owner);
    if (owner != hw__L->cstack_owner && hw__is_code(hw__iframe_code(hw__L, f))) return f;
  }
  return NULL;
}

/* 3.12+: instr_ptr must sit at the same distance from its code object in
 * every frame (the code units start at co_code_adaptive), lasti bytes in. */
static int hw__instr_ok(void *f, long *adaptive) {
  void *code = hw__iframe_code(hw__L, f);
  long off = (long)((char *)HW_AT(f, hw__L->instr) - (char *)code) - hw__frame_lasti(f);
  if (off < 64 || off > 1024) return 0;
  if (*adaptive && *adaptive != off) return 0;
  *adaptive = off;
  return 1;
}

int hw__walk_init(void) {
  const char *force = getenv("HIGHWATER_STACKS");
  if (force && strcmp(force, "profile") == 0) return -1;
  hw__L = hw__frame_layout();
  if (!hw__L) return -1;
  *(void **)&hw__this_tstate = dlsym(RTLD_DEFAULT, "PyGILState_GetThisThreadState");
  *(void **)&hw__frame_line = dlsym(RTLD_DEFAULT, "PyUnstable_InterpreterFrame_GetLine");
  *(void **)&hw__frame_lasti = dlsym(RTLD_DEFAULT, "PyUnstable_InterpreterFrame_GetLasti");
  *(void **)&hw__addr2line = dlsym(RTLD_DEFAULT, "PyCode_Addr2Line");
  if (!hw__this_tstate || !hw__py.PyCode_Type) return -1;
  if (hw__py.minor == 11 ? !hw__addr2line : !hw__frame_line || !hw__frame_lasti) return -1;
  /* Verify: the frame object of the running frame must wrap the interpreter
   * frame we find from the thread state, with the same code and line; its
   * caller must be the first kept frame below it; instr_ptr must be where
   * the interpreter says the frame is. */
  void *fobj = hw__py.PyEval_GetFrame();
  if (!fobj) return -1;
  void *iframe = HW_AT(fobj, HW_PYFRAME_F_FRAME);
  void *top = hw__top_iframe(hw__this_tstate());
  if (!top || top != iframe) return -1;
  if (*((signed char *)top + hw__L->owner) != 0) return -1; /* FRAME_OWNED_BY_THREAD */
  void *code = hw__py.PyFrame_GetCode(fobj);
  int same = code == hw__iframe_code(hw__L, top);
  if (code) hw__py.Py_DecRef((PyObject *)code);
  if (!same) return -1;
  if (hw__line(top, hw__iframe_code(hw__L, top), HW_AT(top, hw__L->instr)) !=
      hw__py.PyFrame_GetLineNumber(fobj))
    return -1;
  void *back = hw__py.PyFrame_GetBack(fobj);
  void *back_iframe = back ? HW_AT(back, HW_PYFRAME_F_FRAME) : NULL;
  if (back) hw__py.Py_DecRef((PyObject *)back);
  if (hw__next_kept(top) != back_iframe) return -1;
  if (hw__py.minor >= 12) {
    long adaptive = 0;
    if (!hw__instr_ok(top, &adaptive)) return -1;
    if (back_iframe && !hw__instr_ok(back_iframe, &adaptive)) return -1;
  }
  HW_SET_RELAXED(hw__walk_on, 1);
  return 0;
}

static hw_walk_t *hw__walk_state(hw_thread_t *t) {
  if (!t->walk) t->walk = hw__pages_alloc(sizeof(hw_walk_t));
  return t->walk;
}

uint32_t hw__walk_node(hw_thread_t *t) {
  void *f = hw__top_iframe(hw__this_tstate());
  if (!f) return t->inherited; /* a C thread, or no Python code running yet */
  hw_walk_t *w = hw__walk_state(t);
  if (!w) return t->inherited;
  const hw_frame_layout *L = hw__L;
  /* The walk reads every frame at each allocation, so it is kept tight: two
   * fields per kept frame, and the type check is skipped for the code object
   * the previous frame already proved (recursion, loops over one function). */
  void *known_code = NULL;
  int n = 0;
  while (f && n < HW_WALK_MAX) {
    void *code = hw__iframe_code(L, f);
    int owner = *((signed char *)f + L->owner);
    if (owner != L->cstack_owner && (code == known_code || hw__is_code(code))) {
      known_code = code;
      w->chain[n].iframe = f;
      w->chain[n].instr = HW_AT(f, L->instr);
      n++;
    }
    f = HW_AT(f, L->previous);
  }
  if (n == 0) return t->inherited;
  /* Levels from the root that have not moved keep their node. */
  int i = 0;
  int same = n < w->cached ? n : w->cached;
  while (i < same) {
    const hw_wframe *a = &w->cache[i];
    const hw_wlevel *b = &w->chain[n - 1 - i];
    if (a->iframe != b->iframe || a->instr != b->instr) break;
    i++;
  }
  uint32_t node = i ? w->cache[i - 1].node : 0;
  for (int k = i; k < n; k++) {
    hw_wlevel e = w->chain[n - 1 - k];
    void *code = hw__iframe_code(L, e.iframe);
    uint32_t func = hw__intern_code(code);
    size_t slot = (((uintptr_t)code >> 4) ^ ((uintptr_t)e.instr >> 1) * 0x9E3779B1u) & (HW_LINE_CACHE - 1);
    uint64_t lines_id = hw__code_lines_id(code);
    int line;
    if (lines_id && w->lines[slot].code == code && w->lines[slot].instr == e.instr &&
        w->lines[slot].lines_id == lines_id) {
      line = w->lines[slot].line;
    } else {
      line = hw__line(e.iframe, code, e.instr);
      w->lines[slot].code = code;
      w->lines[slot].instr = e.instr;
      w->lines[slot].lines_id = lines_id;
      w->lines[slot].line = line;
    }
    node = hw__intern_node(node, func, line < 0 ? 0 : (uint32_t)line);
    w->cache[k].iframe = e.iframe;
    w->cache[k].instr = e.instr;
    w->cache[k].node = node;
  }
  w->cached = n;
  return node;
}
