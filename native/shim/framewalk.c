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

#include "datastack.h"
#include "hw.h"

#define HW_WALK_MAX 1024

/* One frame of the chain as the last walk saw it, root first: where it was
 * (the instruction pointer lies inside the code object, 3.11+ keep the
 * bytecode there, so it also says which code object ran), the node of the
 * stack up to and including it, and how many kept frames (code objects, not
 * C-stack entry frames) lie at or below it. Entry frames are kept in the
 * chain too, so that each entry's `previous` is the entry before it. */
typedef struct {
  void *iframe, *instr;
  uint32_t node, kept;
} hw_wframe;

/* What hw__relook learnt of a kept frame's code object, beside the chain
 * (the walk's per-level check reads only the chain: it stays 24 bytes a
 * level). */
typedef struct {
  uint64_t lines_id; /* hw__code_lines_id */
  uint32_t func;     /* its id */
} hw_wcode;

/* The last few nodes each level of the chain was interned to, keyed by
 * what a node is a function of: the node below, the code object and the
 * instruction (which gives the line). A level sees the same few again and
 * again (a recursion's level at its allocation, its call and its return
 * lines), and a hit skips the line cache, the type check and the interning
 * (intern.c: a triple's node never changes). The key holds while no code
 * object the shim interned died (`gen`: a dead one's address may hold a new
 * code object, codewatch.c); every code here was interned. These sit beside
 * the chain, read in the walk's order, where the hashed front caches
 * (intern.c) are spread over 64 KiB: a recursion 400 deep missed the cache
 * there at nearly every lookup. Three cache lines a level. */
#define HW_LEVEL_MEMO 4
typedef struct {
  struct {
    void *code, *instr;
    uint64_t lines_id;
    uint32_t parent, func, node, gen; /* node 0 = empty */
  } seen[HW_LEVEL_MEMO];
} __attribute__((aligned(64))) hw_wmemo;

/* A chain deeper than HW_WALK_MAX keeps its outermost HW_WALK_OUTER frames
 * (the program's entry: the call that started a deep recursion) and its
 * innermost ones (the lines that allocate), with one marker level between
 * them: frame NULL in the chain and the cache, the not-recorded function in
 * the node (intern.c). Before, the outermost frames were simply dropped and
 * the report's root was the deepest frame kept, with nothing to say so. The
 * frames between are followed to find the root, at most HW_WALK_FOLLOW of
 * them; past that the marker is the root. Such a walk reads the chain down
 * to there at every allocation, so HW_WALK_FOLLOW bounds what a stack that
 * deep costs: a recursion 100 000 deep that allocates at every level ran in
 * 2.6 s of CPU with 1 024 frames read (0.6 s plain), 46 s with the whole
 * chain read, and 3.9 s with at most 5 120 (3.12.1, a loaded machine). */
#define HW_WALK_OUTER 64
#define HW_WALK_FOLLOW 4096

/* How many frames above the last walk's chain a new top may have pushed, and
 * how far down it may have returned, for the short path (hw__walk_node). */
#define HW_WALK_NEW 8
#define HW_WALK_BACK 16

#define HW_LINE_CACHE 4096

typedef struct {
  hw_wmemo memo[HW_WALK_MAX];   /* beside cache[] */
  hw_wframe cache[HW_WALK_MAX]; /* the last walk's chain, root first */
  hw_wcode codes[HW_WALK_MAX];  /* beside cache[] */
  void *chain[HW_WALK_MAX];     /* scratch: frames, top first */
  int cached;
  int truncated; /* the last chain was cut at HW_WALK_MAX: cache[0] is not the root */
  /* The lowest level the last short walk had to read: the level under it
   * lay in the data stack's proven chunk (0: the walk went to the root).
   * The next walk tries it first (hw__walk_node). */
  int stop_hint;
  /* hw__code_gen when cache[] was filled: a code object died since, so an
   * unchanged (frame, instruction) may be a new code object at the dead
   * one's address (codewatch.c), and the chain is looked up anew. */
  uint32_t gen;
  /* (code, instruction) -> line: computing a line scans the line table.
   * Entries of an older generation are not used, for the same reason. */
  struct {
    void *code, *instr;
    uint64_t lines_id;
    int line;
    uint32_t gen;
  } lines[HW_LINE_CACHE];
  hw_chunks chunks; /* the data stack at the last walk (datastack.c) */
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
  /* Without it every level is read at each walk (datastack.c). */
  hw__chunks_init(hw__L, hw__this_tstate(), top);
  HW_SET_RELAXED(hw__walk_on, 1);
  return 0;
}

static hw_walk_t *hw__walk_state(hw_thread_t *t) {
  if (!t->walk) {
    t->walk = hw__pages_alloc(sizeof(hw_walk_t));
    if (t->walk) hw__thread_keep(t);
  }
  return t->walk;
}

void hw__walk_free(hw_thread_t *t) {
  void *w = t->walk;
  t->walk = NULL;
  if (w) hw__pages_free(w, sizeof(hw_walk_t));
}

static int hw__cached_line(hw_walk_t *w, void *iframe, void *code, void *instr, uint64_t lines_id) {
  size_t slot =
      (((uintptr_t)code >> 4) ^ ((uintptr_t)instr >> 1) * 0x9E3779B1u) & (HW_LINE_CACHE - 1);
  if (lines_id && w->lines[slot].code == code && w->lines[slot].instr == instr &&
      w->lines[slot].lines_id == lines_id && w->lines[slot].gen == w->gen)
    return w->lines[slot].line;
  int line = hw__line(iframe, code, instr);
  w->lines[slot].code = code;
  w->lines[slot].instr = instr;
  w->lines[slot].lines_id = lines_id;
  w->lines[slot].line = line;
  w->lines[slot].gen = w->gen;
  return line;
}

/* Level k's memo entry for this (parent, code, instruction), or -1. */
static inline __attribute__((always_inline)) int
hw__memo_find(const hw_walk_t *w, int k, uint32_t parent, void *code, void *instr) {
  const hw_wmemo *m = &w->memo[k];
  for (int i = 0; i < HW_LEVEL_MEMO; i++)
    if (m->seen[i].instr == instr && m->seen[i].code == code && m->seen[i].parent == parent &&
        m->seen[i].gen == w->gen && m->seen[i].node)
      return i;
  return -1;
}

static void hw__memo_keep(hw_walk_t *w, int k, uint32_t parent, void *code, void *instr,
                          uint64_t lines_id, uint32_t func, uint32_t node) {
  if (node == parent) return; /* a fold into the caller (no function, or the table full) */
  hw_wmemo *m = &w->memo[k];
  memmove(&m->seen[1], &m->seen[0], (HW_LEVEL_MEMO - 1) * sizeof m->seen[0]);
  m->seen[0].code = code;
  m->seen[0].instr = instr;
  m->seen[0].lines_id = lines_id;
  m->seen[0].parent = parent;
  m->seen[0].func = func;
  m->seen[0].node = node;
  m->seen[0].gen = w->gen;
}

/* Fills cache[k] for the frame `f` on top of cache[k - 1] (looked up anew);
 * f NULL is the marker of frames not recorded (HW_WALK_OUTER). */
static void hw__relook(hw_walk_t *w, const hw_frame_layout *L, int k, void *f) {
  uint32_t node = k ? w->cache[k - 1].node : 0;
  uint32_t kept = k ? w->cache[k - 1].kept : 0;
  uint32_t func = HW_NODE_NONE;
  uint64_t lines_id = 0;
  if (!f) {
    func = hw__not_recorded_func();
    if (func != HW_NODE_NONE) node = hw__intern_node(node, func, 0);
    w->cache[k].iframe = NULL;
    w->cache[k].instr = NULL;
    w->cache[k].node = node;
    w->cache[k].kept = kept; /* not a code object: `known` above it stays false */
    w->codes[k].func = func;
    w->codes[k].lines_id = 0;
    return;
  }
  void *instr = HW_AT(f, L->instr);
  void *code = hw__iframe_code(L, f);
  int owner = *((signed char *)f + L->owner);
  int seen = owner != L->cstack_owner ? hw__memo_find(w, k, node, code, instr) : -1;
  if (seen >= 0) {
    lines_id = w->memo[k].seen[seen].lines_id;
    func = w->memo[k].seen[seen].func;
    node = w->memo[k].seen[seen].node;
    kept++;
  } else if (owner != L->cstack_owner) {
    /* The code object the kept frame below already proved (recursion,
     * loops over one function) is not type-checked, interned or identified
     * again: the frame below is alive and holds it, so it is the same
     * object, the same function and the same line table (a code object's
     * never changes). */
    int known = k && kept && w->cache[k - 1].kept != (k > 1 ? w->cache[k - 2].kept : 0) &&
                hw__iframe_code(L, w->cache[k - 1].iframe) == code;
    if (known || hw__is_code(code)) {
      uint32_t parent = node;
      lines_id = known ? w->codes[k - 1].lines_id : hw__code_lines_id(code);
      int line = hw__cached_line(w, f, code, instr, lines_id);
      func = known ? w->codes[k - 1].func : hw__intern_code(code);
      node = hw__intern_node(parent, func, line < 0 ? 0 : (uint32_t)line);
      hw__memo_keep(w, k, parent, code, instr, lines_id, func, node);
      kept++;
    }
  }
  w->cache[k].iframe = f;
  w->cache[k].instr = instr;
  w->cache[k].node = node;
  w->cache[k].kept = kept;
  w->codes[k].func = func;
  w->codes[k].lines_id = lines_id;
}

static uint32_t hw__walk_result(hw_thread_t *t, hw_walk_t *w) {
  if (w->cached == 0 || w->cache[w->cached - 1].kept == 0) return t->inherited;
  return w->cache[w->cached - 1].node;
}

/* chain[] holds the innermost HW_WALK_MAX frames, top first, and `f` is the
 * frame under them: follows the chain on to the root and rewrites chain[]
 * as its innermost frames, the marker (NULL), and its outermost
 * HW_WALK_OUTER frames (none when the root was not reached). Returns how
 * many entries chain[] holds. */
static int hw__fold_deep(hw_walk_t *w, const hw_frame_layout *L, void *f) {
  void *outer[HW_WALK_OUTER];
  long seen = 0;
  while (f && seen < HW_WALK_FOLLOW) {
    outer[seen % HW_WALK_OUTER] = f;
    seen++;
    f = HW_AT(f, L->previous);
  }
  int o = f ? 0 : (int)(seen < HW_WALK_OUTER ? seen : HW_WALK_OUTER);
  int inner = HW_WALK_MAX - 1 - o;
  w->chain[inner] = NULL;
  for (int q = 0; q < o; q++) w->chain[inner + 1 + q] = outer[(seen - o + q) % HW_WALK_OUTER];
  return HW_WALK_MAX;
}

/* The whole chain from the top: frames that did not move since the last walk
 * (same frame, same instruction, counted from the root) keep their node. */
static uint32_t hw__walk_full(hw_thread_t *t, hw_walk_t *w, void *tstate, void *top) {
  const hw_frame_layout *L = hw__L;
  int n = 0;
  void *f = top;
  while (f && n < HW_WALK_MAX) {
    w->chain[n++] = f;
    f = HW_AT(f, L->previous);
  }
  int truncated = f != NULL;
  if (truncated) n = hw__fold_deep(w, L, f);
  int i = 0;
  if (truncated == w->truncated) {
    int same = n < w->cached ? n : w->cached;
    while (i < same && w->cache[i].iframe == w->chain[n - 1 - i] &&
           (!w->chain[n - 1 - i] || w->cache[i].instr == HW_AT(w->chain[n - 1 - i], L->instr)))
      i++;
  }
  for (int k = i; k < n; k++) hw__relook(w, L, k, w->chain[n - 1 - k]);
  w->cached = n;
  w->truncated = truncated;
  hw__chunks_record(&w->chunks, tstate, 0);
  return hw__walk_result(t, w);
}

/*
 * The walk cannot stop at the first frame that did not move (a caller that
 * moved from `a = f()` to `b = f()` leaves f's frame at the same address,
 * code and instruction); it stops only where the data stack proves that no
 * level below ran (datastack.c). What it can also avoid is
 * following the chain pointer by pointer: the new top is found within a few
 * frames of the last walk's top, and from there every frame's address is
 * already known (the cache), so each level is checked with two independent
 * reads (its `previous` is the cached frame below, its instruction the cached
 * one). A frame is read only once the frame above it proved it is on the
 * stack now. Anything unexpected takes the full walk.
 */
uint32_t hw__walk_node(hw_thread_t *t) {
  void *tstate = hw__this_tstate();
  void *top = hw__top_iframe(tstate);
  if (!top) return t->inherited; /* a C thread, or no Python code running yet */
  hw_walk_t *w = hw__walk_state(t);
  if (!w) return t->inherited;
  const hw_frame_layout *L = hw__L;
  uint32_t gen = atomic_load_explicit(&hw__code_gen, memory_order_acquire);
  if (HW_UNLIKELY(gen != w->gen)) {
    w->gen = gen;
    w->cached = 0;
  }
  int c = w->cached;
  if (c == 0 || w->truncated) return hw__walk_full(t, w, tstate, top);
  /* Up to HW_WALK_NEW new frames above a frame of the cached chain's top
   * HW_WALK_BACK levels. */
  int nnew = 0, j = -1;
  void *f = top;
  int lo = c > HW_WALK_BACK ? c - HW_WALK_BACK : 0;
  /* One call deeper than the last walk, the commonest move after the same
   * top: the new top sits on the cached top (what lies below is checked
   * next, as for any j). */
  if (top != w->cache[c - 1].iframe && HW_AT(top, L->previous) == w->cache[c - 1].iframe) {
    w->chain[0] = top;
    nnew = 1;
    j = c - 1;
    f = NULL;
  }
  for (; f && nnew <= HW_WALK_NEW; nnew++) {
    for (int k = c - 1; k >= lo; k--)
      if (w->cache[k].iframe == f) {
        j = k;
        break;
      }
    if (j >= 0) break;
    w->chain[nnew] = f;
    f = HW_AT(f, L->previous);
  }
  if (j < 0 || j + 1 + nnew > HW_WALK_MAX) return hw__walk_full(t, w, tstate, top);
  /* cache[j] is on the stack, and never proven: it ran (it is the top, or
   * called the new frames). It and each level below it are read, their
   * `previous` must be the cached frame below and their instruction is
   * compared, down to a level s whose cached frame below lies in a chunk
   * of the data stack that did not run since the last walk (datastack.c):
   * cache[s - 1] and every level under it are as cached (s 0: down to the
   * root, whose caller must be none). The lowest level whose instruction
   * moved is where the lookups start again. */
  uintptr_t still_lo = 0, still_span;
  hw__chunks_unchanged(&w->chunks, tstate, &still_lo, &still_span);
  const size_t instr_at = L->instr, previous_at = L->previous;
  const hw_wframe *const root = w->cache;
  const hw_wframe *e = &w->cache[j], *moved = e + 1;
  /* s: the last walk's, while the frame below it is still in the proven
   * range (the same chunks proven); else the highest level whose frame
   * below is, found in the cache alone (the loop then proves the chain down
   * to it). Stopping lower than that is sound, only slower. */
#define HW_PROVEN(k) ((uintptr_t)w->cache[(k)-1].iframe - still_lo < still_span)
  int s = 0;
  if (still_span) {
    s = w->stop_hint < j ? w->stop_hint : j;
    if (s == 0 || !HW_PROVEN(s))
      for (s = j; s > 0 && !HW_PROVEN(s);) s--;
  }
#undef HW_PROVEN
  /* Every address from the cache, not from the `previous` just read: no
   * read waits on another. Kept to one pass with nothing spilled: this loop
   * is most of a deep walk. */
  const hw_wframe *const last = s ? &w->cache[s - 1] : root;
  void *fr = e->iframe;
  while (e != last) {
    if (HW_AT(fr, instr_at) != e->instr) moved = e;
    void *below = HW_AT(fr, previous_at);
    e--;
    fr = e->iframe;
    if (below != fr) return hw__walk_full(t, w, tstate, top);
  }
  if (s == 0) {
    if (HW_AT(fr, instr_at) != e->instr) moved = e;
    if (HW_AT(fr, previous_at) != NULL) return hw__walk_full(t, w, tstate, top);
  }
  w->stop_hint = s;
  int from = (int)(moved - root);
  for (int k = from; k <= j; k++) hw__relook(w, L, k, w->cache[k].iframe);
  for (int k = 0; k < nnew; k++) hw__relook(w, L, j + 1 + k, w->chain[nnew - 1 - k]);
  w->cached = j + 1 + nnew;
  hw__chunks_record(&w->chunks, tstate, 1);
  return hw__walk_result(t, w);
}

void hw__walk_unmapped(hw_thread_t *t, void *addr, size_t len) {
  hw_walk_t *w = t->walk;
  if (w && w->chunks.n) hw__chunks_unmapped(&w->chunks, addr, len);
}

unsigned long hw__walk_held_walks(hw_thread_t *t) {
  hw_walk_t *w = t->walk;
  return w ? w->chunks.held_walks : 0;
}
