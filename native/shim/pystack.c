/*
 * Python call stacks. A C profile callback keeps a per-thread shadow stack of
 * frame pointers (push on call, pop on return) — cheap, no line events. The
 * line numbers are read only when an allocation happens: the frames below the
 * top are suspended at their call sites, so their node (the interned stack
 * down to them) is computed once and cached until they resume; only the top
 * frame's line is read per allocation. A line is read from memory (compat.c,
 * 3.8 - 3.10, verified at start-up): no call into the interpreter, GIL or
 * not. Where that reading is not verified, the C-API gives the line, and only
 * to a thread holding the GIL; a thread without it (numpy, ctypes) is charged
 * its last known node.
 */
#define _GNU_SOURCE
#include <string.h>

#include "hw.h"

#define PyTrace_CALL 0
#define PyTrace_RETURN 3

HW_TLS hw_thread_t hw__thread;

static pthread_key_t hw__thread_key;
static pthread_once_t hw__key_once = PTHREAD_ONCE_INIT;

static void hw__thread_exit(void *arg) {
  (void)arg;
  hw_thread_t *t = &hw__thread;
  /* Destructors run after us may still allocate: leave a usable state. */
  hw_sframe *f = t->frames;
  size_t bytes = (size_t)t->capacity * sizeof *f;
  t->frames = NULL;
  t->depth = t->capacity = 0;
  hw__pages_free(f, bytes);
}

static void hw__make_key(void) { pthread_key_create(&hw__thread_key, hw__thread_exit); }

static int hw__stack_grow(hw_thread_t *t) {
  int ncap = t->capacity ? t->capacity * 2 : 256;
  hw_sframe *nf = hw__pages_alloc((size_t)ncap * sizeof *nf);
  if (!nf) return -1;
  if (t->frames) memcpy(nf, t->frames, (size_t)t->depth * sizeof *nf);
  hw__pages_free(t->frames, (size_t)t->capacity * sizeof *nf);
  t->frames = nf;
  t->capacity = ncap;
  return 0;
}

static inline void hw__push(hw_thread_t *t, void *frame) {
  if (HW_UNLIKELY(t->depth == t->capacity) && hw__stack_grow(t) != 0) return;
  t->frames[t->depth].frame = frame;
  t->frames[t->depth].node = HW_NODE_NONE;
  t->depth++;
}

static inline void hw__pop(hw_thread_t *t, void *frame) {
  int d = t->depth;
  if (HW_LIKELY(d > 0 && t->frames[d - 1].frame == frame)) {
    d--;
  } else {
    /* Out of step (a frame we never saw start): unwind to it if we have it. */
    int i = d - 1;
    while (i >= 0 && t->frames[i].frame != frame) i--;
    if (i < 0) return;
    d = i;
  }
  t->depth = d;
  if (d > 0) t->frames[d - 1].node = HW_NODE_NONE; /* the caller resumes */
}

static int hw__profile(PyObject *obj, void *frame, int what, PyObject *arg) {
  (void)obj;
  (void)arg;
  hw_thread_t *t = &hw__thread;
  if (HW_UNLIKELY(HW_RELAXED(hw__in_child))) return 0;
  if (HW_UNLIKELY(HW_RELAXED(hw__pending_count)) && !t->guard) {
    t->guard = 1;
    hw__resolve_pending();
    t->guard = 0;
  }
  if (what == PyTrace_CALL) hw__push(t, frame);
  else if (what == PyTrace_RETURN) hw__pop(t, frame);
  return 0;
}

/* A frame's line: from memory, or from the C-API with the GIL held; -2
 * when neither can be had. */
static int hw__frame_line(void *frame) {
  int line = hw__frame_line_direct(frame);
  if (HW_LIKELY(line != -2)) return line;
  return hw__py.PyGILState_Check() ? hw__py.PyFrame_GetLineNumber(frame) : -2;
}

#define HW_NODE_UNKNOWN (HW_NODE_NONE - 1)

static uint32_t hw__frame_node(uint32_t parent, void *frame) {
  void *code = hw__frame_code_borrowed(frame);
  if (!code) return parent;
  int line = hw__frame_line(frame);
  if (HW_UNLIKELY(line == -2)) return HW_NODE_UNKNOWN;
  uint32_t func = hw__intern_code(code);
  return hw__intern_node(parent, func, line < 0 ? 0 : (uint32_t)line);
}

/* The node of the thread's current stack. Every frame on the shadow stack
 * belongs to this thread and is suspended (at a call, or in the C code that
 * is allocating), so reading its code pointer and line from memory is safe
 * even when this thread released the GIL (numpy, ctypes): no other thread
 * writes them. Names of new code objects are read from memory too
 * (names.c). */
uint32_t hw__current_node(hw_thread_t *t) {
  if (HW_RELAXED(hw__walk_on)) return HW_RELAXED(hw__py_alive) ? hw__walk_node(t) : t->inherited;
  int d = t->depth;
  if (d == 0 || !t->registered) return t->inherited;
  if (!HW_RELAXED(hw__py_alive)) return t->last_node != HW_NODE_NONE ? t->last_node : t->inherited;
  hw_sframe *f = t->frames;
  int i = d - 2;
  while (i >= 0 && f[i].node == HW_NODE_NONE) i--;
  uint32_t node = i >= 0 ? f[i].node : 0;
  for (int k = i + 1; k <= d - 2; k++) {
    node = hw__frame_node(node, f[k].frame);
    if (HW_UNLIKELY(node == HW_NODE_UNKNOWN)) goto unknown;
    f[k].node = node;
  }
  node = hw__frame_node(node, f[d - 1].frame);
  if (HW_UNLIKELY(node == HW_NODE_UNKNOWN)) goto unknown;
  t->last_node = node;
  return node;
unknown: /* no line without the GIL: the last one this thread had */
  return t->last_node != HW_NODE_NONE ? t->last_node : t->inherited;
}

/* Installs the profile callback on the calling thread (GIL held) and, when
 * asked, seeds the shadow stack with the frames already running, less the
 * `skip` innermost ones. */
int hw__py_register_thread(int seed, int skip) {
  hw_thread_t *t = &hw__thread;
  if (!hw__py.ready) return -1;
  if (HW_RELAXED(hw__walk_on)) return 0; /* the interpreter's own frames are read instead */
  pthread_once(&hw__key_once, hw__make_key);
  pthread_setspecific(hw__thread_key, t);
  t->depth = 0;
  t->last_node = HW_NODE_NONE;
  if (seed) {
    void *chain[1024];
    int n = 0;
    void *f = hw__py.PyEval_GetFrame();
    if (f) hw__py.Py_IncRef((PyObject *)f);
    while (f && n < (int)(sizeof chain / sizeof chain[0])) {
      if (skip > 0) {
        /* A frame that will end without a return event (the Python-level
         * thread hook runs with events off): never keep a pointer to it. */
        skip--;
        void *back = hw__frame_back(f);
        hw__py.Py_DecRef((PyObject *)f);
        f = back;
        continue;
      }
      chain[n++] = f;
      void *back = hw__frame_back(f);
      f = back;
    }
    if (f) hw__py.Py_DecRef((PyObject *)f);
    /* Frames on the running stack stay alive; drop our references. */
    for (int i = n - 1; i >= 0; i--) {
      hw__push(t, chain[i]);
      hw__py.Py_DecRef((PyObject *)chain[i]);
    }
  }
  hw__py.PyEval_SetProfile(hw__profile, NULL);
  t->registered = 1;
  return 0;
}

void hw__py_unregister_thread(void) {
  hw_thread_t *t = &hw__thread;
  if (!hw__py.ready || HW_RELAXED(hw__walk_on)) return;
  hw__py.PyEval_SetProfile(NULL, NULL);
  t->registered = 0;
  t->depth = 0;
}
