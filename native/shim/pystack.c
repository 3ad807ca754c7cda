/*
 * Python call stacks before 3.11. A per-thread shadow stack of frame
 * pointers (push on call, pop on return) is fed by a frame-evaluation hook
 * (PEP 523) or, where that cannot be installed (another hook already there,
 * a layout not verified, HIGHWATER_STACKS=profile), by a C profile callback. The
 * line numbers are read only when an allocation happens: the frames below
 * the top are suspended at their call sites, so their node (the interned
 * stack down to them) is computed once and cached until they resume; only
 * the top frame's line is read per allocation. A line is read from memory
 * (compat.c, verified at start-up): no call into the interpreter, GIL or
 * not. Where that reading is not verified, the C-API gives the line: on
 * 3.11+ (the callback where the frame walk's layout was not verified) GIL or
 * not (hw__frame_line), before 3.11 only to a thread holding the GIL; a
 * thread without it is charged its last known node.
 *
 * Why a hook and not the callback: the callback runs on every call and
 * return, of C functions too, and on 3.10 any profile function sends every
 * instruction down the eval loop's tracing dispatch (pystone on 3.10: 1.45x
 * with the callback, 1.01x with the hook; bench/README.md).
 * Every Python frame before 3.11 is evaluated through the interpreter's
 * eval_frame function, so wrapping it costs one indirect call per Python
 * call and nothing per instruction.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "hw.h"
#include "sampling.h"

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
  hw__walk_free(t);
  hw__front_free(t);
}

static void hw__make_key(void) { pthread_key_create(&hw__thread_key, hw__thread_exit); }

/* Neither allocates (a key below PTHREAD_KEY_2NDLEVEL_SIZE lives in the
 * thread's descriptor), so this is sound inside an allocation hook. */
void hw__thread_keep(hw_thread_t *t) {
  pthread_once(&hw__key_once, hw__make_key);
  pthread_setspecific(hw__thread_key, t);
}

static int hw__stack_grow(hw_thread_t *t) {
  /* Frees it at the thread's end (the frame-evaluation hook pushes on
   * threads that never registered). */
  if (!t->frames) hw__thread_keep(t);
  int ncap = t->capacity ? t->capacity * 2 : 256;
  /* A stack past what a dump holds: the marker of the frames it will not
   * (dump.c) must exist before any dump begins. */
  if (ncap > 2048) (void)hw__not_recorded_func();
  hw_sframe *nf = hw__pages_alloc((size_t)ncap * sizeof *nf);
  if (!nf) return -1;
  if (t->frames) memcpy(nf, t->frames, (size_t)t->depth * sizeof *nf);
  hw__pages_free(t->frames, (size_t)t->capacity * sizeof *nf);
  t->frames = nf;
  t->capacity = ncap;
  return 0;
}

static inline int hw__push(hw_thread_t *t, void *frame) {
  if (HW_UNLIKELY(t->depth == t->capacity) && hw__stack_grow(t) != 0) return 0;
  t->frames[t->depth].frame = frame;
  t->frames[t->depth].node = HW_NODE_NONE;
  t->frames[t->depth].hooked = 1;
  t->frames[t->depth].held = 0;
  t->depth++;
  return 1;
}

/* The profile callback's push: the frame object is held while it is on the
 * shadow stack (hw_sframe.held). GIL held. */
static void hw__push_held(hw_thread_t *t, void *frame) {
  if (!hw__push(t, frame)) return;
  hw__py.Py_IncRef((PyObject *)frame);
  t->frames[t->depth - 1].held = 1;
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

/* Drops the references the entries at `from` and above hold, then sets the
 * depth to `from`. The frame objects are taken off first and released after:
 * releasing a frame that already ended (its end unseen) frees it, and that
 * may run Python code whose calls push onto the same slots. More than fit
 * here are left held: a leak, and only after events were lost. GIL held. */
static void hw__release_above(hw_thread_t *t, int from) {
  void *drop[64];
  int n = 0;
  for (int k = t->depth - 1; k >= from; k--) {
    if (t->frames[k].held && n < (int)(sizeof drop / sizeof drop[0]))
      drop[n++] = t->frames[k].frame;
    t->frames[k].held = 0;
  }
  if (t->depth > from) t->depth = from;
  for (int i = 0; i < n; i++) hw__py.Py_DecRef((PyObject *)drop[i]);
}

/* The profile callback's pop: `frame` and whatever lies above it (frames
 * whose end was not seen) go, and their references with them. */
static void hw__pop_held(hw_thread_t *t, void *frame) {
  int d = t->depth, i = d - 1;
  while (i >= 0 && t->frames[i].frame != frame) i--;
  if (i < 0) return; /* a frame we never saw start */
  hw__release_above(t, i);
  if (i > 0) t->frames[i - 1].node = HW_NODE_NONE; /* the caller resumes */
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
  if (what == PyTrace_CALL) hw__push_held(t, frame);
  else if (what == PyTrace_RETURN) hw__pop_held(t, frame);
  return 0;
}

/* PyThreadState.c_profilefunc, found by looking for hw__profile in the
 * thread state right after installing it (one word, and only one, holds
 * it); 0 when not found. Set once at the first registration, GIL held. */
static _Atomic size_t hw__profilefunc_at;
static void *(*hw__gil_tstate)(void); /* PyGILState_GetThisThreadState */

static void hw__find_profilefunc(void) {
  if (HW_RELAXED(hw__profilefunc_at)) return;
  if (!hw__gil_tstate)
    *(void **)&hw__gil_tstate = dlsym(RTLD_DEFAULT, "PyGILState_GetThisThreadState");
  void **ts = hw__gil_tstate ? hw__gil_tstate() : NULL;
  if (!ts) return;
  size_t found = 0;
  for (size_t i = 1; i < 64; i++) {
    if (ts[i] != (void *)hw__profile) continue;
    if (found) return; /* two: not a field we can name */
    found = i * sizeof(void *);
  }
  HW_SET_RELAXED(hw__profilefunc_at, found);
}

/* Whether the profile function this thread runs is still ours. A program
 * that sets its own (sys.setprofile: cProfile, pyinstrument) stops our
 * events: from then on the shadow stack is whatever ran at that moment, and
 * a line read from it would be a line the program has left. 1 when not
 * known (the field was not found). */
static int hw__profile_ours(void) {
  size_t at = HW_RELAXED(hw__profilefunc_at);
  if (!at) return 1;
  void *ts = hw__gil_tstate();
  return !ts || HW_AT(ts, at) == (void *)hw__profile;
}

/* ---- 3.8 - 3.10: the frame-evaluation hook ---- */
typedef PyObject *(*hw_eval_fn)(void *tstate, void *frame, int throwflag);
static hw_eval_fn hw__eval_default; /* _PyEval_EvalFrameDefault */
static hw_eval_fn (*hw__get_eval)(void *interp);
static void (*hw__set_eval)(void *interp, hw_eval_fn eval);
static void *(*hw__interp)(void); /* PyInterpreterState_Get (3.8: _PyInterpreterState_Get) */
/* 3.8: no tstate argument, and no setter: PyInterpreterState.eval_frame is
 * read and written at its offset (compat.c), as PEP 523 hooks did then. */
typedef PyObject *(*hw_eval38_fn)(void *frame, int throwflag);
static hw_eval38_fn hw__eval38_default; /* the same function, 3.8's type */
static size_t hw__interp_eval_at;
static hw_eval_fn hw__eval38_get(void *interp) {
  return (hw_eval_fn)HW_AT(interp, hw__interp_eval_at);
}
static void hw__eval38_set(void *interp, hw_eval_fn eval) {
  HW_AT(interp, hw__interp_eval_at) = (void *)eval;
}
static void *(*hw__this_tstate)(void); /* PyGILState_GetThisThreadState */
static const hw_line_layout *hw__EL;   /* verified frame offsets (compat.c) */
/* Set once at start-up (GIL held) before tracking starts; relaxed. */
_Atomic int hw__eval_on;
/* Sampling mode, 3.8 - 3.10: no hook; the f_back chain is read at a sampled
 * allocation only (hw__fwalk_node). Set like hw__eval_on. */
_Atomic int hw__fwalk_on;

/* The shadow stack from the running frame's f_back chain (every frame on it
 * is alive: each holds a reference to the one below); not hooked. */
static int hw__rebuild(hw_thread_t *t, void *top) {
  int n = 0;
  for (void *f = top; f; f = HW_AT(f, HW_PY38_F_BACK)) n++;
  while (t->capacity < n)
    if (hw__stack_grow(t) != 0) return -1;
  int k = n;
  for (void *f = top; f; f = HW_AT(f, HW_PY38_F_BACK)) {
    k--;
    t->frames[k].frame = f;
    t->frames[k].node = HW_NODE_NONE;
    t->frames[k].hooked = 0;
    t->frames[k].held = 0;
  }
  t->depth = n;
  return 0;
}

/*
 * Makes the shadow stack end with `running`, the frame that runs now (or
 * empty when it is NULL), and be the interpreter's chain below it. Usually
 * its top is that frame and hooked: nothing to do (a hooked frame was pushed
 * on top of the true chain and is popped when it ends, so the chain below
 * it stands while it is there). Otherwise the shadow stack is out of step:
 * frames read from the chain (hw__rebuild) ended without a pop, or frames
 * ran without the hook (started before it was installed, or under another
 * PEP 523 hook). Entries that are not hooked are checked against the chain
 * read from memory, down to a hooked one; any mismatch rebuilds the stack.
 * The frame it ends with resumed since its node was cached: forgotten.
 */
static int hw__resync(hw_thread_t *t, void *running) {
  int d = t->depth;
  if (HW_LIKELY(d && t->frames[d - 1].frame == running && t->frames[d - 1].hooked)) return 0;
  if (!running) {
    t->depth = 0;
    return 0;
  }
  int i = d - 1;
  while (i >= 0 && t->frames[i].frame != running) i--;
  if (i < 0) return hw__rebuild(t, running);
  t->frames[i].node = HW_NODE_NONE;
  t->depth = i + 1;
  void *real = running; /* on the chain now, so alive */
  for (int k = i; k >= 0 && !t->frames[k].hooked; k--) {
    real = HW_AT(real, HW_PY38_F_BACK);
    if (real != (k ? t->frames[k - 1].frame : NULL)) return hw__rebuild(t, running);
  }
  return 0;
}

/* Before a frame is evaluated: 0 when it is pushed (pop it after). */
static inline int hw__eval_enter(hw_thread_t *t, void *frame) {
  if (HW_UNLIKELY(HW_RELAXED(hw__in_child))) return -1;
  if (HW_UNLIKELY(HW_RELAXED(hw__pending_count)) && !t->guard) {
    t->guard = 1;
    hw__resolve_pending();
    t->guard = 0;
  }
  /* Its f_back is the frame that runs now, its caller (a generator's is set
   * before it resumes). */
  hw__resync(t, HW_AT(frame, HW_PY38_F_BACK));
  hw__push(t, frame);
  return 0;
}

static PyObject *hw__eval(void *tstate, void *frame, int throwflag) {
  hw_thread_t *t = &hw__thread;
  int pushed = hw__eval_enter(t, frame) == 0;
  PyObject *r = hw__eval_default(tstate, frame, throwflag);
  if (HW_LIKELY(pushed)) hw__pop(t, frame);
  return r;
}

static PyObject *hw__eval38(void *frame, int throwflag) {
  hw_thread_t *t = &hw__thread;
  int pushed = hw__eval_enter(t, frame) == 0;
  PyObject *r = hw__eval38_default(frame, throwflag);
  if (HW_LIKELY(pushed)) hw__pop(t, frame);
  return r;
}

/* GIL held, at start-up: the thread state's running frame must be where
 * compat.c says (PyThreadState.frame), the interpreter must still evaluate
 * frames with its default function (a debugger's or a JIT's PEP 523 hook is
 * left alone: the profile callback is used then), and lines must be read
 * from memory (verified by hw__lines_verify). */
int hw__eval_init(void) {
  const char *force = getenv("HIGHWATER_STACKS");
  if (force && strcmp(force, "profile") == 0) return -1;
  if (hw__py.minor > 10) return -1;
  const hw_line_layout *L = hw__line_layout();
  if (!L) return -1;
  *(void **)&hw__eval_default = dlsym(RTLD_DEFAULT, "_PyEval_EvalFrameDefault");
  *(void **)&hw__eval38_default = dlsym(RTLD_DEFAULT, "_PyEval_EvalFrameDefault");
  *(void **)&hw__this_tstate = dlsym(RTLD_DEFAULT, "PyGILState_GetThisThreadState");
  if (hw__py.minor == 8) {
    hw__interp_eval_at = L->interp_eval_frame;
    hw__get_eval = hw__eval38_get;
    hw__set_eval = hw__eval38_set;
    *(void **)&hw__interp = dlsym(RTLD_DEFAULT, "_PyInterpreterState_Get");
    if (!hw__interp_eval_at) return -1;
  } else {
    *(void **)&hw__get_eval = dlsym(RTLD_DEFAULT, "_PyInterpreterState_GetEvalFrameFunc");
    *(void **)&hw__set_eval = dlsym(RTLD_DEFAULT, "_PyInterpreterState_SetEvalFrameFunc");
    *(void **)&hw__interp = dlsym(RTLD_DEFAULT, "PyInterpreterState_Get");
  }
  if (!hw__eval_default || !hw__get_eval || !hw__set_eval || !hw__interp || !hw__this_tstate || !L)
    return -1;
  void *interp = hw__interp();
  void *fobj = hw__py.PyEval_GetFrame();
  void *ts = hw__this_tstate();
  if (!interp || !fobj || !ts || HW_AT(ts, L->tstate_frame) != fobj) return -1;
  void *back = hw__frame_back(fobj);
  int back_ok = HW_AT(fobj, HW_PY38_F_BACK) == back;
  if (back) hw__py.Py_DecRef((PyObject *)back);
  if (!back_ok) return -1;
  hw__EL = L;
  if (hw__sample_rate != 0) {
    /* Sampling mode: about one allocation in rate/size needs a stack, so a
     * hook on every call costs more than reading the whole chain at the few
     * that do (deep-stack sampled on 3.8: 1.78x with the hook). Whatever
     * evaluates frames (even another PEP 523 hook) leaves the chain. */
    HW_SET_RELAXED(hw__fwalk_on, 1);
    return 0;
  }
  if (hw__get_eval(interp) != hw__eval_default) return -1;
  HW_SET_RELAXED(hw__eval_on, 1);
  return 0;
}

static void hw__eval_install(int on) {
  void *interp = hw__interp();
  hw_eval_fn now = hw__get_eval(interp);
  hw_eval_fn ours = hw__eval;
  if (hw__py.minor == 8) *(void **)&ours = (void *)hw__eval38; /* stored as 3.8 calls it */
  if (on && now == hw__eval_default) hw__set_eval(interp, ours);
  if (!on && now == ours) hw__set_eval(interp, hw__eval_default);
}

/* A frame's line: from memory (3.8 - 3.10, verified), or from the C-API.
 * 3.11+ (the profile callback, where the frame layout was not verified) ask
 * the C-API with or without the GIL: PyFrame_GetLineNumber reads the frame
 * object's f_lineno or its code object's line table at the frame's last
 * instruction, and nothing else (no allocation, no reference count), and
 * every frame here is this thread's own, suspended while it allocates, as
 * the frame walk reads its frames' lines without the GIL
 * (PyCode_Addr2Line, PyUnstable_InterpreterFrame_GetLine). Before, a thread
 * without the GIL (ctypes, numpy) got the last line it had, so every
 * allocation inside a C call was charged to whatever line last allocated
 * with the GIL: 69 MiB from three functions all at one module line. -2: no
 * line (3.8 - 3.10 without a verified layout and without the GIL). */
static int hw__frame_line(void *frame) {
  int line = hw__frame_line_direct(frame);
  if (HW_LIKELY(line != -2)) return line;
  return hw__py.minor >= 11 || hw__py.PyGILState_Check() ? hw__py.PyFrame_GetLineNumber(frame) : -2;
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

/* hw__frame_node for the frame at shadow level `e`, through the level's memo.
 * A node is a function of the node below, the function and the line
 * (intern.c: a triple's node never changes), and the line of a frame that is
 * not traced a function of its code object and instruction; so (parent,
 * code, lasti) names the node while no code object died (hw__code_gen: a
 * dead one's address may hold a new code object). A level sees the same few
 * again and again (a recursion's level at its allocation, its call and its
 * return lines), each of which otherwise costs a line-table scan and two
 * hashed lookups. */
static uint32_t hw__shadow_level_node(hw_sframe *e, uint32_t parent, void *frame) {
  void *code;
  int lasti;
  /* hw__EL: the verified layout, set with the hook or the f_back walk; the
   * profile callback's path goes without the memo. */
  if (!hw__frame_line_key(hw__EL, frame, &code, &lasti)) return hw__frame_node(parent, frame);
  uint32_t gen = atomic_load_explicit(&hw__code_gen, memory_order_acquire);
  for (int i = 0; i < HW_SLEVEL_MEMO; i++)
    if (e->memo[i].lasti == lasti && e->memo[i].code == code && e->memo[i].parent == parent &&
        e->memo[i].gen == gen && e->memo[i].node)
      return e->memo[i].node;
  uint32_t node = hw__frame_node(parent, frame);
  /* Not kept: a fold into the caller (no function, the table full) or no line. */
  if (node == parent || node == HW_NODE_UNKNOWN || node == HW_NODE_NONE) return node;
  memmove(&e->memo[1], &e->memo[0], (HW_SLEVEL_MEMO - 1) * sizeof e->memo[0]);
  e->memo[0].code = code;
  e->memo[0].lasti = lasti;
  e->memo[0].parent = parent;
  e->memo[0].node = node;
  e->memo[0].gen = gen;
  return node;
}

/* Sampling mode, 3.8 - 3.10: the node of the running frame's whole f_back
 * chain, read from memory (offsets and lines verified at start-up, as for
 * the hook) into the shadow stack's storage, root first. A level keeps the
 * node the last walk computed for it while it and every level below are
 * the same frame, code object and instruction (the node depends on nothing
 * else); from the lowest level that moved up, lines are read and interned
 * again. Every level is read: nothing tells us a caller resumed. */
static uint32_t hw__fwalk_node(hw_thread_t *t) {
  if (!HW_RELAXED(hw__py_alive)) return t->last_node != HW_NODE_NONE ? t->last_node : t->inherited;
  void *ts = hw__this_tstate();
  void *top = ts ? HW_AT(ts, hw__EL->tstate_frame) : NULL;
  if (!top) return t->inherited; /* a C thread, or no Python code running */
  int n = 0;
  for (void *f = top; f; f = HW_AT(f, HW_PY38_F_BACK)) n++;
  while (t->capacity < n)
    if (hw__stack_grow(t) != 0) return t->inherited;
  const size_t lasti_at = hw__EL->f_lasti;
  int moved = n, k = n;
  /* A code object died since: a level's code pointer may be a new code
   * object at the dead one's address (codewatch.c). Look every level up. */
  uint32_t gen = atomic_load_explicit(&hw__code_gen, memory_order_acquire);
  if (HW_UNLIKELY(gen != t->fwalk_gen)) {
    t->fwalk_gen = gen;
    t->depth = 0;
  }
  for (void *f = top; f; f = HW_AT(f, HW_PY38_F_BACK)) {
    hw_sframe *e = &t->frames[--k];
    void *code = HW_AT(f, HW_PY38_F_CODE);
    int lasti = *(int *)((char *)f + lasti_at);
    if (k >= t->depth || e->frame != f || e->code != code || e->lasti != lasti ||
        e->node == HW_NODE_NONE)
      moved = k;
    e->frame = f;
    e->code = code;
    e->lasti = lasti;
    e->hooked = 0;
    e->held = 0;
  }
  t->depth = n;
  uint32_t node = moved > 0 ? t->frames[moved - 1].node : 0;
  for (k = moved; k < n; k++) {
    node = hw__shadow_level_node(&t->frames[k], node, t->frames[k].frame);
    if (HW_UNLIKELY(node == HW_NODE_UNKNOWN)) { /* no line without the GIL */
      for (; k < n; k++) t->frames[k].node = HW_NODE_NONE;
      return t->last_node != HW_NODE_NONE ? t->last_node : t->inherited;
    }
    t->frames[k].node = node;
  }
  if (n == 0) return t->inherited;
  t->last_node = node;
  return node;
}

/* The node of the thread's current stack. Every frame on the shadow stack
 * belongs to this thread and is suspended (at a call, or in the C code that
 * is allocating), so reading its code pointer and line from memory is safe
 * even when this thread released the GIL (numpy, ctypes): no other thread
 * writes them. Names of new code objects are read from memory too
 * (names.c). */
uint32_t hw__current_node(hw_thread_t *t) {
  if (HW_RELAXED(hw__walk_on)) return HW_RELAXED(hw__py_alive) ? hw__walk_node(t) : t->inherited;
  if (HW_RELAXED(hw__fwalk_on)) return hw__fwalk_node(t);
  if (HW_RELAXED(hw__eval_on)) {
    /* The hook runs on every thread, and the shadow stack may be out of
     * step (see hw__push_checked): its top must be the running frame. */
    if (!HW_RELAXED(hw__py_alive))
      return t->last_node != HW_NODE_NONE ? t->last_node : t->inherited;
    void *ts = hw__this_tstate();
    void *top = ts ? HW_AT(ts, hw__EL->tstate_frame) : NULL;
    if (!top) return t->inherited; /* a C thread, or no Python code running */
    if (hw__resync(t, top) != 0) return t->inherited;
  }
  int d = t->depth;
  if (d == 0 || !(t->registered || HW_RELAXED(hw__eval_on))) return t->inherited;
  /* The profile callback's stack, no longer fed: no line rather than a
   * stale one (the thread's start: "[no Python frame]" in the report). */
  if (!HW_RELAXED(hw__eval_on) && HW_UNLIKELY(!hw__profile_ours())) return t->inherited;
  if (!HW_RELAXED(hw__py_alive)) return t->last_node != HW_NODE_NONE ? t->last_node : t->inherited;
  hw_sframe *f = t->frames;
  int i = d - 2;
  while (i >= 0 && f[i].node == HW_NODE_NONE) i--;
  uint32_t node = i >= 0 ? f[i].node : 0;
  for (int k = i + 1; k <= d - 2; k++) {
    node = hw__shadow_level_node(&f[k], node, f[k].frame);
    if (HW_UNLIKELY(node == HW_NODE_UNKNOWN)) goto unknown;
    /* Kept while the frame above it is there, if that one's end is seen
     * (the pop forgets it); below a frame that may end unseen, this one may
     * resume unseen. */
    if (f[k + 1].hooked) f[k].node = node;
  }
  node = hw__shadow_level_node(&f[d - 1], node, f[d - 1].frame);
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
  if (HW_RELAXED(hw__walk_on) || HW_RELAXED(hw__fwalk_on) || HW_RELAXED(hw__eval_on)) {
    /* Called from the Python-level thread hook (threading.setprofile, which
     * highwater.api sets for the threads its call starts): that hook is
     * this thread's profile function and would stay, running Python code on
     * every call and return (6 - 8x on a call-heavy thread). Nothing needs
     * a profile function here. */
    if (skip > 0) hw__py.PyEval_SetProfile(NULL, NULL);
    /* The interpreter's own frames are read instead. */
    if (HW_RELAXED(hw__walk_on) || HW_RELAXED(hw__fwalk_on)) return 0;
    /* One hook for every thread; the running frames are read at the first
     * allocation (hw__rebuild). */
    hw__thread_keep(t);
    hw__eval_install(1);
    t->registered = 1;
    return 0;
  }
  hw__thread_keep(t);
  hw__release_above(t, 0);
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
    /* Each reference is the shadow stack's now (hw_sframe.held), dropped at
     * the frame's return event. */
    for (int i = n - 1; i >= 0; i--) {
      if (hw__push(t, chain[i])) t->frames[t->depth - 1].held = 1;
      else hw__py.Py_DecRef((PyObject *)chain[i]);
    }
  }
  hw__py.PyEval_SetProfile(hw__profile, NULL);
  hw__find_profilefunc();
  t->registered = 1;
  return 0;
}

void hw__py_unregister_thread(void) {
  hw_thread_t *t = &hw__thread;
  if (!hw__py.ready || HW_RELAXED(hw__walk_on) || HW_RELAXED(hw__fwalk_on)) return;
  if (HW_RELAXED(hw__eval_on)) {
    hw__eval_install(0);
    t->registered = 0;
    return;
  }
  hw__py.PyEval_SetProfile(NULL, NULL);
  t->registered = 0;
  hw__release_above(t, 0);
}
