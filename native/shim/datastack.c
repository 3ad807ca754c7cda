/*
 * A proof, without a hook, that the lower part of a thread's frame chain
 * did not run since the last walk, so the walk need not read it (3.11+).
 *
 * A frame of a thread lives in the thread's data stack: chunks of 16 KiB or
 * more, pushed on top of each other as the recursion deepens. CPython frees
 * a chunk the moment the frame at its base is popped
 * (_PyThreadState_PopFrame, 3.11, 3.12, 3.13.0 - 3.13.12, 3.14.0 - 3.14.3:
 * _PyObject_VirtualFree, which is the arena allocator's free: munmap), and
 * the shim sees every munmap. 3.13.13+, 3.14.4+ and 3.15 hold one popped
 * chunk back for the next push (gh-142183): the proof then reaches one
 * chunk less deep (hw__chunks_slack). Frames in
 * the data stack are in chain order: a frame called later lies above, in
 * the same chunk or a later one (a generator's frame lives in its object,
 * not in a chunk; it is simply not in any chunk's range).
 *
 * Let chunks 0..m be the chain's chunks at the last walk and i the lowest of
 * them unmapped since (none: i = m + 1). A frame in chunk x runs only when
 * every frame above it has returned; if x < i - 1, that includes the base
 * frame of chunk x + 1 <= i - 1, whose return would have unmapped that
 * chunk. So no frame of chunks 0..i - 2 ran: each is the same frame at the
 * same instruction with the same caller, and so is every level below the
 * highest of them (a level below can run only after the levels above it
 * returned). The walk stops at the first cached level, from the top, whose
 * frame lies in chunk i - 2 (hw__walk_node), and keeps every level under it.
 * With a one-chunk cache, chunk i - 2 - 1 (hw__chunks_slack).
 *
 * What keeps this sound:
 * - Chunks are read from the thread state (PyThreadState.datastack_chunk,
 *   compat.c), verified at start-up against datastack_top/_limit and the
 *   running frame; each walk checks that the chunks it relies on are still
 *   the chain's, with the same size and `top`.
 * - The arena allocator must be the interpreter's own (its free in the
 *   interpreter's image, checked at start-up), and still the same at each
 *   walk: a program that installs another one, which may not unmap, turns
 *   the proof off.
 * - The munmap is seen in the thread that pops the frame: the chunks of a
 *   thread are its own.
 * - The interpreter frees the chunk at the pop, or holds at most one popped
 *   chunk back (hw__chunks_slack); any other version proves nothing.
 * Anything unknown proves nothing, and the walk reads every level.
 *
 * Stack switching (greenlet, and so gevent and eventlet) swaps the thread
 * state's chunk list for another greenlet's, but not its chunk cache,
 * which the greenlets of a thread then share: a greenlet started, or
 * growing, just after this one popped a chunk takes that chunk, and this
 * one's next pop unmaps nothing. A caller one chunk further down then runs
 * unseen: shown with greenlet on Debian's 3.14.10, sampled, a 4 MiB block
 * charged to the caller's line before (test/fixtures/python/
 * stack_switch.py). Without a cache every pop unmaps, and switching changes
 * nothing for the proof. So on a CPython with a cache the proof stops for
 * good once switching is seen: greenlet's extension loaded (the control
 * thread looks at each tick, hw__chunks_watch_switchers), greenlet
 * imported (an audit hook sees the import before its code runs), or a
 * thread's root chunk replaced under the same thread state (a new
 * greenlet's first frame starts a chain of its own: any other stack
 * switcher, seen at the first walk inside it).
 *
 * The held chunk. Where the interpreter holds a popped chunk back, the
 * proof loses a chunk, but not when the thread state held one at the last
 * walk and nothing was unmapped in the thread since. A pop of a chunk's
 * base frees the chunk held (munmap) before holding the popped one, and
 * only a push empties the hold, by taking the held chunk as the new top. So
 * for the base frame of the record's top chunk m to have popped unseen, the
 * hold must have been empty then: a push took a chunk after the record, and
 * no chunk's base popped in between. But that chunk lay above m, and its
 * base had to pop before m's could: that pop held it, and m's pop then
 * unmapped it. So when the hold was full at the record and no munmap came
 * since, no frame below chunk m ran: slack 0 for this walk. (An empty hold
 * proves nothing: m's base can pop into the hold, its caller run, and the
 * next push take m back, all without an unmap.) The field is read at
 * PyThreadState.datastack_cached_chunk (compat.c) only once a walk saw it
 * hold the very chunk the stack had just left, which a wrong offset does
 * not give; any munmap in the thread, whatever it frees, counts.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datastack.h"

/* _PyStackChunk (Include/cpython/pystate.h of 3.11 - 3.13, offsetof() checked):
 * previous, size, top, then data[]; the same in 3.11 - 3.13, and in 3.14's
 * header (the search index's copy of python/cpython's pystate.h; bindgen's
 * v3.14.0 and v3.14.5 renderings) and 3.15's (bindgen's v3.15.0 rendering).
 * hw__chunks_init checks them on the running thread's top chunk. */
#define HW_CHUNK_PREVIOUS 0
#define HW_CHUNK_SIZE 8
#define HW_CHUNK_TOP 16
#define HW_CHUNK_DATA 24

typedef struct {
  void *ctx;
  void *(*alloc)(void *, size_t);
  void (*free)(void *, void *, size_t);
} hw_arena_t;

static size_t hw__ds_at;             /* PyThreadState.datastack_chunk; 0 = off. Set at start-up. */
static _Atomic int hw__ds_switching; /* greenlet loaded (hw__chunks_watch_switchers) */
static int hw__ds_slack;             /* hw__chunks_slack of this CPython. Set at start-up. */
static int hw__ds_any_arena;         /* test only (HIGHWATER_TEST_CHUNK_CACHE). Set at start-up. */
/* PyThreadState.datastack_cached_chunk; 0 = not read. Set at start-up. */
static size_t hw__ds_held_at;
/* A walk saw it hold the chunk the stack had just left: the offset is right. */
static _Atomic int hw__ds_held_seen;
static hw_arena_t hw__arena0;
/* How the arena allocator is read at a walk: 3.11's getter copies it (no
 * lock); 3.12+ take the allocators' lock there, so the struct is read where
 * it lies in _PyRuntime (found at start-up). */
static void (*hw__arena_get)(hw_arena_t *);
static void *const volatile *hw__arena_at;

static int hw__arena_same(void) {
  if (hw__ds_any_arena) return 1;
  if (hw__arena_get) {
    hw_arena_t a;
    hw__arena_get(&a);
    return a.ctx == hw__arena0.ctx && a.alloc == hw__arena0.alloc && a.free == hw__arena0.free;
  }
  return hw__arena_at && hw__arena_at[0] == hw__arena0.ctx &&
         hw__arena_at[1] == (void *)hw__arena0.alloc && hw__arena_at[2] == (void *)hw__arena0.free;
}

/* 3.12+: where _PyRuntime holds the arena allocator: the one place in it
 * with these three words, or NULL. The scan assumes no offset, so it needs
 * nothing per version; 3.14 and 3.15 keep the public
 * PyObject_GetArenaAllocator and the {ctx, alloc, free} struct (bindgen's
 * v3.14.0 and v3.15.0 renderings; found once on Debian's 3.14.10 and
 * 3.15.2): where the three words are not found once, the proof is off. */
static void *const volatile *hw__arena_in_runtime(void) {
  void *rt = dlsym(RTLD_DEFAULT, "_PyRuntime");
  Dl_info info;
  const ElfW(Sym) *sym = NULL;
  if (!rt || !dladdr1(rt, &info, (void **)&sym, RTLD_DL_SYMENT) || !sym || sym->st_size < 24)
    return NULL;
  void *const *w = rt;
  size_t n = sym->st_size / sizeof(void *);
  void *const *found = NULL;
  for (size_t i = 0; i + 3 <= n; i++)
    if (w[i + 1] == (void *)hw__arena0.alloc && w[i + 2] == (void *)hw__arena0.free &&
        w[i] == hw__arena0.ctx) {
      if (found) return NULL;
      found = &w[i];
    }
  return (void *const volatile *)found;
}

/* How many popped chunks this CPython may hold back without unmapping them
 * (-1: unknown, the proof is off). 3.11, 3.12 and 3.13.0 - 3.13.12 free a
 * chunk the moment its base frame pops: 0. CPython 3.13.13 and 3.14.4
 * (gh-142183, "Avoid a pathological case where repeated calls at a specific
 * stack depth could be significantly slower", in their Misc/NEWS.d/3.13.13.rst
 * and 3.14.4.rst; python/cpython PR #145789, "Cache one datachunk per
 * tstate") keep one popped chunk in the thread state
 * (datastack_cached_chunk) and hand it to the next push, at the same
 * address, without an munmap: 1. 3.15's thread state keeps that cache
 * (compat.c): 1. A version string that does not parse proves nothing.
 *
 * Why one held chunk costs one chunk of the proof, whatever the cache does
 * with a second (frees the one it held or the one popped): a frame in chunk
 * x runs only once the base frames of every chunk above it popped. With at
 * most one of those chunks held back, two pops in a row unmap at least one
 * recorded chunk, at or above x + 1. So with chunks from i up unmapped since
 * the last walk (or none: i = m + 1), no frame of chunks 0..i - 3 ran, one
 * chunk lower than without a cache (hw__chunks_unchanged). Under a
 * one-chunk cache of that shape (test/fixtures/native/cache1_arena.c) on
 * 3.11.7, 3.12.1 and 3.13.0, the walk without this slack put stacks on
 * wrong lines (test/profiling/chunk-drops.test.ts, "one cached chunk"). */
int hw__chunks_slack(const char *version) {
  int major, minor, micro;
  if (!version || sscanf(version, "%d.%d.%d", &major, &minor, &micro) != 3 || major != 3) return -1;
  if (minor == 11 || minor == 12) return 0;
  if (minor == 13) return micro < 13 ? 0 : 1;
  if (minor == 14) return micro < 4 ? 0 : 1;
  if (minor == 15) return 1;
  return -1;
}

static void hw__watch_imports(void);

int hw__chunks_init(const hw_frame_layout *L, void *tstate, void *top) {
  if (!L->datastack_chunk || !tstate || !top) return -1;
  int slack = hw__chunks_slack(hw__py.version);
  /* Test only: the arena allocator the program installs stands in for the
   * interpreter's chunk cache (test/fixtures/native/cache1_arena.c), which
   * can then be tried on CPythons that have none: it is trusted as the
   * interpreter's own, with this slack. */
  const char *test = getenv("HIGHWATER_TEST_CHUNK_CACHE");
  if (test && (test[0] == '0' || test[0] == '1') && !test[1]) {
    slack = test[0] - '0';
    hw__ds_any_arena = 1;
  }
  if (slack < 0) {
    hw__debug("data-stack proof off: Python %s, chunk handling unknown", hw__py.version);
    return -1;
  }
  char *chunk = HW_AT(tstate, L->datastack_chunk);
  char *dtop = HW_AT(tstate, L->datastack_chunk + 8);
  char *limit = HW_AT(tstate, L->datastack_chunk + 16);
  if (!chunk || limit != chunk + *(size_t *)(chunk + HW_CHUNK_SIZE)) return -1;
  if (dtop < chunk + HW_CHUNK_DATA || dtop > limit) return -1;
  if ((char *)top < chunk + HW_CHUNK_DATA || (char *)top >= dtop) return -1;
  void (*get)(hw_arena_t *);
  *(void **)&get = dlsym(RTLD_DEFAULT, "PyObject_GetArenaAllocator");
  if (!get) return -1;
  get(&hw__arena0);
  Dl_info ours, theirs;
  if (!hw__arena0.free || !dladdr((void *)hw__arena0.free, &theirs) ||
      !dladdr((void *)get, &ours) || ours.dli_fbase != theirs.dli_fbase)
    return -1;
  if (hw__py.minor == 11) hw__arena_get = get;
  else if (!(hw__arena_at = hw__arena_in_runtime())) return -1;
  hw__ds_slack = slack;
  /* Not for a cache played by an arena allocator (test only): there is no
   * field to read. */
  if (slack == 1 && !hw__ds_any_arena) hw__ds_held_at = L->datastack_held;
  hw__ds_at = L->datastack_chunk;
  /* A cache that greenlets could share: watch for greenlet's import from
   * the first one on, not only from the control thread's next tick. */
  if (slack) hw__watch_imports();
  hw__chunks_watch_switchers();
  return 0;
}

int hw__chunks_slack_in_use(void) {
  return hw__ds_at && !(hw__ds_slack && HW_RELAXED(hw__ds_switching)) ? hw__ds_slack : -1;
}

int hw__chunks_switching(void) { return HW_RELAXED(hw__ds_switching); }

int hw__chunks_held_confirmed(void) { return HW_RELAXED(hw__ds_held_seen); }

/* The slack of this walk: none when the hold was full at the record and
 * nothing was unmapped since ("The held chunk", above). */
static inline int hw__walk_slack(const hw_chunks *c) {
  return c->held && !c->unmapped && HW_RELAXED(hw__ds_held_seen) ? 0 : hw__ds_slack;
}

/* An audit hook (PEP 578; GIL held, in the importing thread): an import of
 * greenlet, or of a module in it, marks stack switching before its code
 * runs. Never raises, and reads only what the event hands it; a module name
 * that is not a str (never, in CPython) is let pass. */
static void *hw__tuple_type, *hw__str_type;
static void (*hw__err_clear)(void);
static ssize_t (*hw__tuple_size)(void *);
static void *(*hw__tuple_item)(void *, ssize_t);
static int hw__audit(const char *event, void *args, void *data) {
  (void)data;
  if (event[0] != 'i' || strcmp(event, "import") != 0 || !args) return 0;
  /* ob_type is at 8 in every object header; the items through the C-API
   * (3.14 put a hash cache in front of them). Neither call can fail on a
   * tuple with an item 0. */
  if (*(void **)((char *)args + 8) != hw__tuple_type || hw__tuple_size(args) < 1) return 0;
  void *name = hw__tuple_item(args, 0);
  if (!name || *(void **)((char *)name + 8) != hw__str_type) return 0;
  /* A name that cannot be encoded (lone surrogates) sets an exception:
   * taken back, and whatever was pending before put back as it was. */
  PyObject *type, *value, *trace;
  hw__py.PyErr_Fetch(&type, &value, &trace);
  ssize_t n = 0;
  const char *s = hw__py.PyUnicode_AsUTF8AndSize(name, &n);
  if (!s) hw__err_clear();
  hw__py.PyErr_Restore(type, value, trace);
  if (s && n >= 8 && memcmp(s, "greenlet", 8) == 0 && (n == 8 || s[8] == '.') &&
      !HW_RELAXED(hw__ds_switching)) {
    HW_SET_RELAXED(hw__ds_switching, 1);
    hw__debug("greenlet is imported: stacks may be switched; the data-stack proof stops (a "
              "chunk cache they share)");
  }
  return 0;
}

/* GIL held, at start-up. Without the hook (none in this CPython, or another
 * hook refused it), the control thread's tick still finds greenlet. */
static void hw__watch_imports(void) {
  int (*add)(int (*)(const char *, void *, void *), void *);
  *(void **)&add = dlsym(RTLD_DEFAULT, "PySys_AddAuditHook");
  *(void **)&hw__err_clear = dlsym(RTLD_DEFAULT, "PyErr_Clear");
  hw__tuple_type = dlsym(RTLD_DEFAULT, "PyTuple_Type");
  hw__str_type = dlsym(RTLD_DEFAULT, "PyUnicode_Type");
  *(void **)&hw__tuple_size = dlsym(RTLD_DEFAULT, "PyTuple_Size");
  *(void **)&hw__tuple_item = dlsym(RTLD_DEFAULT, "PyTuple_GetItem");
  if (!add || !hw__err_clear || !hw__tuple_type || !hw__str_type || !hw__tuple_size ||
      !hw__tuple_item || !hw__py.PyUnicode_AsUTF8AndSize || !hw__py.PyErr_Fetch ||
      !hw__py.PyErr_Restore)
    return;
  if (add(hw__audit, NULL) != 0) {
    hw__err_clear();
    hw__debug("no audit hook (refused): greenlet is looked for at each tick only");
  }
}

/* dl_iterate_phdr's callback: greenlet's extension, as greenlet 1.0+ names
 * it (greenlet/_greenlet.cpython-*.so) and as 0.4 did (greenlet.cpython-*.so). */
static int hw__is_greenlet(struct dl_phdr_info *info, size_t size, void *found) {
  (void)size;
  const char *name = info->dlpi_name, *base = name ? strrchr(name, '/') : NULL;
  base = base ? base + 1 : name;
  if (base && (strncmp(base, "_greenlet.", 10) == 0 || strncmp(base, "greenlet.", 9) == 0) &&
      strstr(base, ".so")) {
    *(int *)found = 1;
    return 1;
  }
  return 0;
}

void hw__chunks_watch_switchers(void) {
  if (!hw__ds_at || HW_RELAXED(hw__ds_switching)) return;
  int found = 0;
  dl_iterate_phdr(hw__is_greenlet, &found);
  if (found) {
    HW_SET_RELAXED(hw__ds_switching, 1);
    hw__debug("greenlet is loaded: stacks may be switched%s",
              hw__ds_slack ? "; the data-stack proof stops (a chunk cache they share)" : "");
  }
}

/* The thread's chunks, root first, into now[]; 0 when unknown or too many. */
static int hw__chunks_read(void *tstate, hw_chunk *now) {
  if (!hw__ds_at) return 0;
  int n = 0;
  for (char *c = HW_AT(tstate, hw__ds_at); c; c = HW_AT(c, HW_CHUNK_PREVIOUS)) {
    if (n == HW_CHUNKS_MAX) return 0;
    now[n].base = c;
    now[n].size = *(size_t *)(c + HW_CHUNK_SIZE);
    now[n].top = *(size_t *)(c + HW_CHUNK_TOP);
    n++;
  }
  for (int i = 0, j = n - 1; i < j; i++, j--) {
    hw_chunk x = now[i];
    now[i] = now[j];
    now[j] = x;
  }
  return n;
}

/* A thread's chunks read anew, into now[]; its root chunk watched: the
 * same thread state with another root means its stack was switched. */
static void hw__chunks_read_watched(hw_chunks *c, void *tstate) {
  c->nnow = hw__chunks_read(tstate, c->now);
  void *root = c->nnow ? c->now[0].base : NULL;
  if (c->tstate != tstate || !c->root) {
    c->tstate = tstate;
    c->root = root;
  } else if (root && root != c->root && !HW_RELAXED(hw__ds_switching)) {
    HW_SET_RELAXED(hw__ds_switching, 1);
    hw__debug("a thread's stack was switched under its thread state%s",
              hw__ds_slack ? ": the data-stack proof stops" : "");
  }
}

void hw__chunks_unchanged(hw_chunks *c, void *tstate, uintptr_t *lo, uintptr_t *span) {
  *span = 0;
  c->same = 0;
  if (!hw__ds_at) return;
  if (hw__ds_slack && HW_RELAXED(hw__ds_switching)) return;
  /* u: the chunk the stack may have come down into; those below it did not
   * run. A chunk cache lets it come down one chunk further unseen. */
  int u, slack = hw__walk_slack(c);
  char *top = HW_AT(tstate, hw__ds_at);
  if (c->n && c->freed_low == HW_CHUNKS_MAX && top == c->rec[c->n - 1].base) {
    /* The usual case: nothing recorded went, the top chunk is the same, so
     * the chunks under it are too. Their links down are checked all the same. */
    c->same = 1;
    u = c->n - 1 - slack;
    if (u < 1) return;
    for (int i = c->n - 1; i >= u; i--)
      if (HW_AT(c->rec[i].base, HW_CHUNK_PREVIOUS) != c->rec[i - 1].base) return;
  } else {
    hw__chunks_read_watched(c, tstate);
    u = (c->freed_low < c->n ? c->freed_low : c->n) - 1 - slack;
    if (u < 1 || u >= c->nnow) return;
    for (int i = 0; i <= u; i++)
      if (c->now[i].base != c->rec[i].base || c->now[i].size != c->rec[i].size ||
          (i < u && c->now[i].top != c->rec[i].top))
        return;
  }
  if (!hw__arena_same()) return;
  if (slack < hw__ds_slack) c->held_walks++; /* only walks the held chunk did shorten */
  *lo = (uintptr_t)c->rec[u - 1].base + HW_CHUNK_DATA;
  *span = c->rec[u - 1].size - HW_CHUNK_DATA;
}

/* Whether the hold now has the chunk the stack left since the record (the
 * stack came down and did not go back up): the field is the cache. */
static void hw__held_confirm(hw_chunks *c, void *held) {
  if (!held || c->nnow < 1 || c->nnow >= c->n || held != c->rec[c->nnow].base) return;
  for (int i = 0; i < c->nnow; i++)
    if (c->now[i].base != c->rec[i].base) return;
  HW_SET_RELAXED(hw__ds_held_seen, 1);
  hw__debug("the thread state holds the chunk a walk saw the stack leave: the held-chunk proof "
            "is in use");
}

void hw__chunks_record(hw_chunks *c, void *tstate, int read) {
  c->freed_low = HW_CHUNKS_MAX;
  c->unmapped = 0;
  void *held = hw__ds_held_at ? HW_AT(tstate, hw__ds_held_at) : NULL;
  c->held = held;
  if (read && c->same) return;
  if (!read || !c->nnow) hw__chunks_read_watched(c, tstate);
  if (HW_UNLIKELY(held && !HW_RELAXED(hw__ds_held_seen))) hw__held_confirm(c, held);
  memcpy(c->rec, c->now, (size_t)c->nnow * sizeof c->now[0]);
  c->n = c->nnow;
}

void hw__chunks_unmapped(hw_chunks *c, void *addr, size_t len) {
  c->unmapped = 1;
  for (int i = 0; i < c->n && i < c->freed_low; i++) {
    char *b = c->rec[i].base;
    if (b < (char *)addr + len && (char *)addr < b + c->rec[i].size) {
      c->freed_low = i;
      return;
    }
  }
}
