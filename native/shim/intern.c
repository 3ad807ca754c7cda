/*
 * Interning of functions (one per code object) and of call-stack nodes
 * (parent, function, line) into the shared state. Both tables only grow, so
 * a node id stays valid for the life of the process, and a published node
 * (node_count bumped after the record is written) is always complete.
 * Callers hold the GIL; hw__intern_lock still guards the tables in case the
 * interpreter lets two threads in (PyGILState_Check can be disabled).
 */
#define _GNU_SOURCE
#include <string.h>

#include "hw.h"

pthread_mutex_t hw__intern_lock = PTHREAD_MUTEX_INITIALIZER;
/* This thread holds hw__intern_lock: a code object can die inside a locked
 * section (a Py_DecRef while naming through the C-API), and its watcher
 * (codewatch.c) must not take the lock again. */
static HW_TLS int hw__intern_held;
static void hw__intern_acquire(void) {
  pthread_mutex_lock(&hw__intern_lock);
  hw__intern_held = 1;
}
static void hw__intern_release(void) {
  hw__intern_held = 0;
  pthread_mutex_unlock(&hw__intern_lock);
}

typedef struct {
  uintptr_t *keys; /* code object pointers, 0 = empty */
  uint32_t *vals;
  uint64_t *sigs; /* who the code object was (names, first line): an address reused by another code
                     object does not match */
  size_t cap, used;
} hw_code_map;

typedef struct {
  uint32_t *ids; /* node ids, 0 = empty (the root is never looked up) */
  size_t cap, used;
} hw_node_map;

static hw_code_map hw__codes;
static hw_node_map hw__nodes;

/* Per-thread front caches, read and written without the lock: a thread at
 * an allocation asks for the same few (parent, function, line) and code
 * objects again and again (a deep stack's upper levels, a loop), and the
 * lock pair around each lookup cost more than the walk. Ids never change
 * (both tables only grow), so a node entry is never stale. A code entry is
 * keyed by an address, which a dead code object's successor may take: it
 * holds the hw__code_gen it was filled in (codewatch.c) and is not used
 * once any code object died since.
 *
 * Nodes are kept in sets of four, one cache line each: a recursion 400
 * deep keeps ~1 200 (parent, function, line) triples in use, and a
 * direct-mapped table of 4 096 sent a quarter of its lookups to the lock
 * (two keys on one slot evict each other at every pass); in 1 024 sets of
 * four (the same 64 KiB), a key misses only when five of the live ones
 * share its set (~3 % of such a recursion's). A new key goes first and
 * pushes out the set's oldest. (3.11+ ask framewalk.c's per-level memo
 * first.) */
#define HW_FRONT_CODES 512
#define HW_FRONT_NODE_SETS 1024
#define HW_FRONT_WAYS 4
typedef struct {
  uint32_t parent, func, line, id; /* id 0 (the root) = empty */
} hw_front_node;
typedef struct {
  struct {
    hw_front_node way[HW_FRONT_WAYS];
  } __attribute__((aligned(64))) node_sets[HW_FRONT_NODE_SETS];
  struct {
    void *code;
    uint64_t sig;
    uint32_t id, gen;
  } codes[HW_FRONT_CODES];
} hw_front_t;

static hw_front_t *hw__front(void) {
  hw_thread_t *t = &hw__thread;
  if (HW_UNLIKELY(!t->front)) {
    t->front = hw__pages_alloc(sizeof(hw_front_t));
    if (t->front) hw__thread_keep(t);
  }
  return t->front;
}

void hw__front_free(hw_thread_t *t) {
  void *f = t->front;
  t->front = NULL;
  if (f) hw__pages_free(f, sizeof(hw_front_t));
}

static inline size_t hw__front_node_set(uint32_t parent, uint32_t func, uint32_t line) {
  uint32_t h = parent * 0x9E3779B1u ^ func * 0x85EBCA77u ^ line * 0xC2B2AE3Du;
  return (h ^ h >> 15) & (HW_FRONT_NODE_SETS - 1);
}

static inline uint64_t hw__mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

static inline uint64_t hw__node_hash(uint32_t parent, uint32_t func, uint32_t line) {
  return hw__mix(((uint64_t)parent << 32 | func) ^ ((uint64_t)line * 0x9E3779B97F4A7C15ULL));
}

static int hw__node_map_grow(void) {
  size_t ncap = hw__nodes.cap ? hw__nodes.cap * 2 : 4096;
  uint32_t *ids = hw__pages_alloc(ncap * sizeof *ids);
  if (!ids) return -1;
  hw_node_rec *recs = hw__state.nodes;
  for (size_t i = 0; i < hw__nodes.cap; i++) {
    uint32_t id = hw__nodes.ids[i];
    if (!id) continue;
    size_t j = hw__node_hash(recs[id].parent, recs[id].func, recs[id].line) & (ncap - 1);
    while (ids[j]) j = (j + 1) & (ncap - 1);
    ids[j] = id;
  }
  hw__pages_free(hw__nodes.ids, hw__nodes.cap * sizeof *ids);
  hw__nodes.ids = ids;
  hw__nodes.cap = ncap;
  return 0;
}

/* Returns the node, or `parent` when the table is full (the frame is then
 * folded into its caller rather than lost). */
static uint32_t hw__intern_node_locked(uint32_t parent, uint32_t func, uint32_t line);

uint32_t hw__intern_node(uint32_t parent, uint32_t func, uint32_t line) {
  if (!hw__state.hdr || func == HW_NODE_NONE) return parent;
  hw_front_t *fr = hw__front();
  if (HW_UNLIKELY(!fr)) return hw__intern_node_locked(parent, func, line);
  hw_front_node *set = fr->node_sets[hw__front_node_set(parent, func, line)].way;
  for (int i = 0; i < HW_FRONT_WAYS; i++)
    if (set[i].parent == parent && set[i].func == func && set[i].line == line && set[i].id)
      return set[i].id;
  uint32_t id = hw__intern_node_locked(parent, func, line);
  if (id != parent) { /* not the table-full fold */
    memmove(&set[1], &set[0], (HW_FRONT_WAYS - 1) * sizeof set[0]);
    set[0] = (hw_front_node){parent, func, line, id};
  }
  return id;
}

static uint32_t hw__intern_node_locked(uint32_t parent, uint32_t func, uint32_t line) {
  hw_state_header *h = hw__state.hdr;
  hw__intern_acquire();
  if ((hw__nodes.used + 1) * 4 > hw__nodes.cap * 3 && hw__node_map_grow() != 0) {
    hw__intern_release();
    return parent;
  }
  hw_node_rec *recs = hw__state.nodes;
  size_t mask = hw__nodes.cap - 1;
  size_t j = hw__node_hash(parent, func, line) & mask;
  for (;;) {
    uint32_t id = hw__nodes.ids[j];
    if (!id) break;
    if (recs[id].parent == parent && recs[id].func == func && recs[id].line == line) {
      hw__intern_release();
      return id;
    }
    j = (j + 1) & mask;
  }
  uint64_t n = h->node_count;
  if (n >= h->node_capacity || hw__state_reserve_nodes(n + 1) != 0) { /* full, or no space */
    hw__intern_release();
    return parent;
  }
  uint32_t id = (uint32_t)n;
  recs[id].parent = parent;
  recs[id].func = func;
  recs[id].line = line;
  hw__nodes.ids[j] = id;
  hw__nodes.used++;
  __atomic_store_n(&h->node_count, n + 1, __ATOMIC_RELEASE);
  hw__intern_release();
  return id;
}

static uint32_t hw__add_func(const char *file, size_t flen, const char *name, size_t nlen) {
  hw_state_header *h = hw__state.hdr;
  uint64_t n = h->func_count;
  if (n >= h->func_capacity || hw__state_reserve_funcs(n + 1) != 0) return HW_NODE_NONE;
  uint32_t fo = hw__state_add_string(file, flen);
  uint32_t no = hw__state_add_string(name, nlen);
  if (fo == UINT32_MAX || no == UINT32_MAX) return HW_NODE_NONE;
  hw_func_rec *r = &hw__state.funcs[n];
  r->file_off = fo;
  r->file_len = (uint32_t)(flen > HW_STRING_MAX ? HW_STRING_MAX : flen);
  r->name_off = no;
  r->name_len = (uint32_t)(nlen > HW_STRING_MAX ? HW_STRING_MAX : nlen);
  __atomic_store_n(&h->func_count, n + 1, __ATOMIC_RELEASE);
  return (uint32_t)n;
}

static int hw__code_map_grow(void) {
  size_t ncap = hw__codes.cap ? hw__codes.cap * 2 : 1024;
  uintptr_t *keys = hw__pages_alloc(ncap * sizeof *keys);
  uint32_t *vals = hw__pages_alloc(ncap * sizeof *vals);
  uint64_t *sigs = hw__pages_alloc(ncap * sizeof *sigs);
  if (!keys || !vals || !sigs) {
    hw__pages_free(keys, ncap * sizeof *keys);
    hw__pages_free(vals, ncap * sizeof *vals);
    hw__pages_free(sigs, ncap * sizeof *sigs);
    return -1;
  }
  for (size_t i = 0; i < hw__codes.cap; i++) {
    uintptr_t k = hw__codes.keys[i];
    if (!k) continue;
    size_t j = hw__mix(k) & (ncap - 1);
    while (keys[j]) j = (j + 1) & (ncap - 1);
    keys[j] = k;
    vals[j] = hw__codes.vals[i];
    sigs[j] = hw__codes.sigs[i];
  }
  hw__pages_free(hw__codes.keys, hw__codes.cap * sizeof *keys);
  hw__pages_free(hw__codes.vals, hw__codes.cap * sizeof *vals);
  hw__pages_free(hw__codes.sigs, hw__codes.cap * sizeof *sigs);
  hw__codes.keys = keys;
  hw__codes.vals = vals;
  hw__codes.sigs = sigs;
  hw__codes.cap = ncap;
  return 0;
}

/* Reads a str attribute of a code object; returns a borrowed UTF-8 pointer
 * valid while *holder is alive (caller drops it). */
static const char *hw__code_str(void *code, const char *attr, PyObject **holder, ssize_t *len) {
  *holder = hw__py.PyObject_GetAttrString((PyObject *)code, attr);
  if (!*holder) return NULL;
  const char *s = hw__py.PyUnicode_AsUTF8AndSize(*holder, len);
  if (!s) {
    hw__py.Py_DecRef(*holder);
    *holder = NULL;
  }
  return s;
}

static void hw__drop_error(void) {
  PyObject *a, *b, *c;
  hw__py.PyErr_Fetch(&a, &b, &c);
  if (a) hw__py.Py_DecRef(a);
  if (b) hw__py.Py_DecRef(b);
  if (c) hw__py.Py_DecRef(c);
}

/* Copies the names of a code object into func record `id` (GIL held, intern
 * lock held). A pending exception survives untouched. */
/* The fallback when the code object layout could not be verified: names
 * through the C-API, only at safe points (GIL held, no allocator running). */
static int hw__name_func_api(void *code, uint32_t id) {
  PyObject *et, *ev, *tb;
  hw__py.PyErr_Fetch(&et, &ev, &tb);
  PyObject *fh = NULL, *nh = NULL;
  ssize_t flen = 0, nlen = 0;
  const char *file = hw__code_str(code, "co_filename", &fh, &flen);
  const char *name = NULL;
  if (hw__py.minor >= 11) name = hw__code_str(code, "co_qualname", &nh, &nlen);
  if (!name) {
    hw__drop_error();
    name = hw__code_str(code, "co_name", &nh, &nlen);
  }
  int ok = 0;
  if (!file) {
    file = "?";
    flen = 1;
  }
  if (!name) {
    name = "?";
    nlen = 1;
  }
  uint32_t fo = hw__state_add_string(file, (size_t)flen);
  uint32_t no = hw__state_add_string(name, (size_t)nlen);
  if (fo != UINT32_MAX && no != UINT32_MAX) {
    hw_func_rec *r = &hw__state.funcs[id];
    r->file_off = fo;
    r->file_len = (uint32_t)(flen > HW_STRING_MAX ? HW_STRING_MAX : flen);
    r->name_off = no;
    r->name_len = (uint32_t)(nlen > HW_STRING_MAX ? HW_STRING_MAX : nlen);
    ok = 1;
  }
  if (fh) hw__py.Py_DecRef(fh);
  if (nh) hw__py.Py_DecRef(nh);
  hw__drop_error();
  hw__py.PyErr_Restore(et, ev, tb);
  return ok;
}

/* Code objects whose names could not be read directly (layout not verified):
 * named at the next safe point (the profile callback, a dump from Python). */
#define HW_PENDING_MAX 4096
static struct {
  void *code;
  uint32_t id;
} hw__pending[HW_PENDING_MAX];
/* Written under hw__intern_lock; read without it as a hint by the profile
 * callback (relaxed: a stale 0 only delays naming to the next safe point;
 * the entries themselves are read under the lock). */
_Atomic int hw__pending_count;

static uint32_t hw__intern_code_locked(void *code, uint64_t sig);

uint32_t hw__intern_code(void *code) {
  if (!hw__state.hdr || !code) return HW_NODE_NONE;
  uint64_t sig = hw__code_sig(code);
  hw_front_t *fr = hw__front();
  if (HW_UNLIKELY(!fr)) return hw__intern_code_locked(code, sig);
  size_t slot = ((uintptr_t)code >> 4) * 0x9E3779B1u >> 7 & (HW_FRONT_CODES - 1);
  /* Read before the map: a death after this read leaves the entry stale. */
  uint32_t gen = atomic_load_explicit(&hw__code_gen, memory_order_acquire);
  if (fr->codes[slot].code == code && fr->codes[slot].sig == sig && fr->codes[slot].gen == gen)
    return fr->codes[slot].id;
  uint32_t id = hw__intern_code_locked(code, sig);
  if (id != HW_NODE_NONE) {
    fr->codes[slot].code = code;
    fr->codes[slot].sig = sig;
    fr->codes[slot].id = id;
    fr->codes[slot].gen = gen;
  }
  return id;
}

static uint32_t hw__intern_code_locked(void *code, uint64_t sig) {
  hw__intern_acquire();
  if ((hw__codes.used + 1) * 2 > hw__codes.cap && hw__code_map_grow() != 0) {
    hw__intern_release();
    return HW_NODE_NONE;
  }
  size_t mask = hw__codes.cap - 1;
  size_t j = hw__mix((uintptr_t)code) & mask;
  int reused = 0;
  while (hw__codes.keys[j]) {
    if (hw__codes.keys[j] == (uintptr_t)code) {
      if (hw__codes.sigs[j] == sig) {
        uint32_t v = hw__codes.vals[j];
        hw__intern_release();
        return v;
      }
      reused = 1; /* a new code object at an old address: a new function */
      break;
    }
    j = (j + 1) & mask;
  }
  char file[1024], name[512];
  size_t flen = 0, nlen = 0;
  int direct = hw__code_names(code, file, sizeof file, &flen, name, sizeof name, &nlen) == 0;
  int pending = HW_RELAXED(hw__pending_count);
  if (!direct && pending >= HW_PENDING_MAX) {
    hw__intern_release();
    return HW_NODE_NONE;
  }
  uint32_t id = direct ? hw__add_func(file, flen, name, nlen) : hw__add_func("?", 1, "?", 1);
  if (id != HW_NODE_NONE) {
    if (!direct) {
      hw__pending[pending].code = code;
      hw__pending[pending].id = id;
      HW_SET_RELAXED(hw__pending_count, pending + 1);
    }
    hw__codes.keys[j] = (uintptr_t)code;
    hw__codes.vals[j] = id;
    hw__codes.sigs[j] = sig;
    if (!reused) hw__codes.used++;
  }
  hw__intern_release();
  return id;
}

/* The function that stands for frames a stack is too deep to record
 * (framewalk.c, dump.c): no file, so the report counts it as nobody's own
 * code. Made once, at the first stack that needs it; until then
 * HW_NODE_NONE (hw__not_recorded_func_id says whether it exists, without
 * making it: the dump writer must not grow the tables). */
static _Atomic uint32_t hw__not_recorded = HW_NODE_NONE;
#define HW_NOT_RECORDED_NAME "[frames not recorded]"

uint32_t hw__not_recorded_func(void) {
  uint32_t id = atomic_load_explicit(&hw__not_recorded, memory_order_acquire);
  if (id != HW_NODE_NONE || !hw__state.hdr) return id;
  hw__intern_acquire();
  id = atomic_load_explicit(&hw__not_recorded, memory_order_relaxed);
  if (id == HW_NODE_NONE) {
    id = hw__add_func("", 0, HW_NOT_RECORDED_NAME, sizeof HW_NOT_RECORDED_NAME - 1);
    atomic_store_explicit(&hw__not_recorded, id, memory_order_release);
  }
  hw__intern_release();
  return id;
}

uint32_t hw__not_recorded_func_id(void) {
  return atomic_load_explicit(&hw__not_recorded, memory_order_acquire);
}

/* A code object died (codewatch.c): its address no longer names it. Takes
 * it out of the map (backward-shift deletion keeps every other key's probe
 * run unbroken) and out of the names still to be read. 1: it was there (a
 * cache may hold it); 0: it never was (no walk interned it). */
int hw__intern_forget_code(void *code) {
  int held = hw__intern_held;
  if (!held) hw__intern_acquire();
  uintptr_t key = (uintptr_t)code;
  size_t cap = hw__codes.cap, mask = cap - 1;
  size_t i = cap ? hw__mix(key) & mask : 0;
  while (cap && hw__codes.keys[i] && hw__codes.keys[i] != key) i = (i + 1) & mask;
  int found = cap && hw__codes.keys[i] == key;
  if (found) {
    hw__codes.used--;
    for (;;) {
      hw__codes.keys[i] = 0;
      size_t k = i;
      for (;;) {
        k = (k + 1) & mask;
        if (!hw__codes.keys[k]) goto removed;
        size_t home = hw__mix(hw__codes.keys[k]) & mask;
        /* The key at k may fill the hole at i unless its home lies in (i, k]. */
        int between = i <= k ? (home > i && home <= k) : (home > i || home <= k);
        if (!between) break;
      }
      hw__codes.keys[i] = hw__codes.keys[k];
      hw__codes.vals[i] = hw__codes.vals[k];
      hw__codes.sigs[i] = hw__codes.sigs[k];
      i = k;
    }
  }
removed:;
  int n = HW_RELAXED(hw__pending_count);
  for (int j = 0; j < n; j++)
    if (hw__pending[j].code == code) hw__pending[j].code = NULL; /* stays "?" */
  if (!held) hw__intern_release();
  return found;
}

void hw__resolve_pending(void) {
  if (!HW_RELAXED(hw__pending_count)) return;
  hw__intern_acquire();
  int n = HW_RELAXED(hw__pending_count);
  for (int i = 0; i < n; i++)
    if (hw__pending[i].code && hw__is_code(hw__pending[i].code))
      hw__name_func_api(hw__pending[i].code, hw__pending[i].id);
  HW_SET_RELAXED(hw__pending_count, 0);
  hw__intern_release();
}
