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
 * CPython headers, checked with the debug info of real builds) and verified
 * at start-up against PyEval_GetFrame(); on any mismatch the shim falls back
 * to the profile callback (pystack.c). A per-thread cache keyed by (frame,
 * instruction, code) for each level from the root means only the levels that
 * moved since the last allocation are looked up again.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "hw.h"

typedef struct {
  size_t cframe;         /* PyThreadState.cframe (3.11, 3.12), 0 = none */
  size_t cframe_current; /* _PyCFrame.current_frame */
  size_t current_frame;  /* PyThreadState.current_frame (3.13), 0 = none */
  size_t code, previous, instr, owner;
  size_t code_adaptive;  /* 3.11: PyCodeObject.co_code_adaptive */
  int cstack_owner;      /* owner value of C-stack entry frames, -1 = none */
} hw_layout;

static const hw_layout hw__l311 = {56, 8, 0, 32, 48, 56, 69, 184, -1};
static const hw_layout hw__l312 = {56, 0, 0, 0, 8, 56, 70, 0, 3};
static const hw_layout hw__l313 = {0, 0, 72, 0, 8, 56, 70, 0, 3};

#define HW_WALK_MAX 1024

typedef struct {
  void *iframe, *instr, *code;
  uint32_t node;
} hw_wframe;

#define HW_LINE_CACHE 4096

typedef struct {
  hw_wframe cache[HW_WALK_MAX]; /* root first */
  hw_wframe chain[HW_WALK_MAX]; /* scratch: top first */
  int cached;
  /* (code, instruction) -> line: computing a line scans the line table. */
  struct { void *code, *instr; uint64_t lines_id; int line; } lines[HW_LINE_CACHE];
} hw_walk_t;

volatile int hw__walk_on;
static const hw_layout *hw__L;
static void *(*hw__this_tstate)(void);
static int (*hw__frame_line)(void *);     /* 3.12+: PyUnstable_InterpreterFrame_GetLine */
static int (*hw__addr2line)(void *, int); /* 3.11: PyCode_Addr2Line */

#define HW_AT(p, off) (*(void **)((char *)(p) + (off)))

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

int hw__walk_init(void) {
  if (hw__py.minor < 11 || hw__py.minor > 13) return -1;
  const char *force = getenv("HIGHWATER_STACKS");
  if (force && strcmp(force, "profile") == 0) return -1;
  hw__L = hw__py.minor == 11 ? &hw__l311 : hw__py.minor == 12 ? &hw__l312 : &hw__l313;
  *(void **)&hw__this_tstate = dlsym(RTLD_DEFAULT, "PyGILState_GetThisThreadState");
  *(void **)&hw__frame_line = dlsym(RTLD_DEFAULT, "PyUnstable_InterpreterFrame_GetLine");
  *(void **)&hw__addr2line = dlsym(RTLD_DEFAULT, "PyCode_Addr2Line");
  if (!hw__this_tstate || !hw__py.PyCode_Type) return -1;
  if (hw__py.minor == 11 ? !hw__addr2line : !hw__frame_line) return -1;
  /* Verify: the frame object of the running frame must wrap the interpreter
   * frame we find from the thread state, with the same code and line. */
  void *fobj = hw__py.PyEval_GetFrame();
  if (!fobj) return -1;
  void *iframe = HW_AT(fobj, 24); /* PyFrameObject.f_frame, 3.11 - 3.13 */
  void *top = hw__top_iframe(hw__this_tstate());
  if (!top || top != iframe) return -1;
  void *code = hw__py.PyFrame_GetCode(fobj);
  int same = code == HW_AT(top, hw__L->code);
  if (code) hw__py.Py_DecRef((PyObject *)code);
  if (!same) return -1;
  if (hw__line(top, HW_AT(top, hw__L->code), HW_AT(top, hw__L->instr)) !=
      hw__py.PyFrame_GetLineNumber(fobj))
    return -1;
  hw__walk_on = 1;
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
  const hw_layout *L = hw__L;
  int n = 0;
  while (f && n < HW_WALK_MAX) {
    void *code = HW_AT(f, L->code);
    int owner = *((signed char *)f + L->owner);
    if (owner != L->cstack_owner && hw__is_code(code)) {
      w->chain[n].iframe = f;
      w->chain[n].instr = HW_AT(f, L->instr);
      w->chain[n].code = code;
      n++;
    }
    f = HW_AT(f, L->previous);
  }
  if (n == 0) return t->inherited;
  /* Levels from the root that have not moved keep their node. */
  int i = 0;
  while (i < n && i < w->cached) {
    const hw_wframe *a = &w->cache[i], *b = &w->chain[n - 1 - i];
    if (a->iframe != b->iframe || a->instr != b->instr || a->code != b->code) break;
    i++;
  }
  uint32_t node = i ? w->cache[i - 1].node : 0;
  for (int k = i; k < n; k++) {
    hw_wframe e = w->chain[n - 1 - k];
    uint32_t func = hw__intern_code(e.code);
    size_t slot = (((uintptr_t)e.code >> 4) ^ ((uintptr_t)e.instr >> 1) * 0x9E3779B1u) & (HW_LINE_CACHE - 1);
    uint64_t lines_id = hw__code_lines_id(e.code);
    int line;
    if (lines_id && w->lines[slot].code == e.code && w->lines[slot].instr == e.instr &&
        w->lines[slot].lines_id == lines_id) {
      line = w->lines[slot].line;
    } else {
      line = hw__line(e.iframe, e.code, e.instr);
      w->lines[slot].code = e.code;
      w->lines[slot].instr = e.instr;
      w->lines[slot].lines_id = lines_id;
      w->lines[slot].line = line;
    }
    node = hw__intern_node(node, func, line < 0 ? 0 : (uint32_t)line);
    e.node = node;
    w->cache[k] = e;
  }
  w->cached = n;
  return node;
}
