/*
 * A proof, without a hook, that the lower part of a thread's frame chain
 * did not run since the last walk, so the walk need not read it (3.11+).
 *
 * A frame of a thread lives in the thread's data stack: chunks of 16 KiB or
 * more, pushed on top of each other as the recursion deepens. CPython frees
 * a chunk the moment the frame at its base is popped
 * (_PyThreadState_PopFrame, 3.11, 3.12, 3.13.0 - 3.13.12:
 * _PyObject_VirtualFree, which is the arena allocator's free: munmap), and
 * the shim sees every munmap. 3.13.13 and 3.14.4 no longer do (gh-142183,
 * hw__chunks_freed_on_pop): there the proof is off. Frames in
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
 * - The interpreter frees the chunk at the pop at all: only versions before
 *   gh-142183's chunk cache (hw__chunks_freed_on_pop).
 * Anything unknown proves nothing, and the walk reads every level.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <string.h>

#include "datastack.h"

/* _PyStackChunk (Include/cpython/pystate.h of 3.11 - 3.13, offsetof() checked):
 * previous, size, top, then data[]; the same in 3.11 - 3.13, and in 3.14's
 * header (the search index's copy of python/cpython's pystate.h; bindgen's
 * v3.14.0 and v3.14.5 renderings), where the proof is off all the same
 * (compat.c). */
#define HW_CHUNK_PREVIOUS 0
#define HW_CHUNK_SIZE 8
#define HW_CHUNK_TOP 16
#define HW_CHUNK_DATA 24

typedef struct {
  void *ctx;
  void *(*alloc)(void *, size_t);
  void (*free)(void *, void *, size_t);
} hw_arena_t;

static size_t hw__ds_at; /* PyThreadState.datastack_chunk; 0 = off. Set at start-up. */
static hw_arena_t hw__arena0;
/* How the arena allocator is read at a walk: 3.11's getter copies it (no
 * lock); 3.12+ take the allocators' lock there, so the struct is read where
 * it lies in _PyRuntime (found at start-up). */
static void (*hw__arena_get)(hw_arena_t *);
static void *const volatile *hw__arena_at;

static int hw__arena_same(void) {
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
 * nothing per version; 3.14 keeps the public PyObject_GetArenaAllocator and
 * the {ctx, alloc, free} struct (bindgen's v3.14.0 rendering), but this was
 * not run there: with 3.14's offset at 0, hw__chunks_init returns first. */
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

/* Whether this CPython frees a data-stack chunk the moment its base frame
 * pops, which the proof rests on. CPython 3.13.13 and 3.14.4 (gh-142183,
 * "Avoid a pathological case where repeated calls at a specific stack depth
 * could be significantly slower", in their Misc/NEWS.d/3.13.13.rst and
 * 3.14.4.rst) keep the popped chunk in the thread state
 * (datastack_cached_chunk, appended to PyThreadState) and hand it to the
 * next push, at the same address, without an munmap: a caller in the chunk
 * below can then run, and the stack grow back into the same chunk, with no
 * unmap to tell the walk. A one-chunk cache of that shape under 3.11.7,
 * 3.12.1 and 3.13.0 (an arena allocator keeping one freed chunk, with
 * hw__arena_same forced true) put 263 - 268 of chunk-drops' 676 stacks on
 * wrong lines. 3.11 and 3.12 take security fixes only. 3.14 has no
 * datastack offset in compat.c (0: the proof is off before this is asked),
 * nor has 3.15, whose thread state keeps the cache (datastack_cached_chunk);
 * a version string that does not parse proves nothing. */
int hw__chunks_freed_on_pop(const char *version) {
  int major, minor, micro;
  if (!version || sscanf(version, "%d.%d.%d", &major, &minor, &micro) != 3 || major != 3) return 0;
  if (minor == 11 || minor == 12) return 1;
  if (minor == 13) return micro < 13;
  if (minor == 14) return micro < 4;
  return 0;
}

int hw__chunks_init(const hw_frame_layout *L, void *tstate, void *top) {
  if (!L->datastack_chunk || !tstate || !top) return -1;
  if (!hw__chunks_freed_on_pop(hw__py.version)) {
    hw__debug("data-stack proof off: Python %s keeps popped chunks (gh-142183)", hw__py.version);
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
  hw__ds_at = L->datastack_chunk;
  return 0;
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

void hw__chunks_unchanged(hw_chunks *c, void *tstate, uintptr_t *lo, uintptr_t *span) {
  *span = 0;
  c->same = 0;
  if (!hw__ds_at) return;
  /* u: the chunk the stack may have come down into; those below it did not run. */
  int u;
  char *top = HW_AT(tstate, hw__ds_at);
  if (c->n && c->freed_low == HW_CHUNKS_MAX && top == c->rec[c->n - 1].base) {
    /* The usual case: nothing recorded went, the top chunk is the same, so
     * the chunks under it are too. Its link down is checked all the same. */
    c->same = 1;
    u = c->n - 1;
    if (u < 1 || HW_AT(top, HW_CHUNK_PREVIOUS) != c->rec[u - 1].base) return;
  } else {
    c->nnow = hw__chunks_read(tstate, c->now);
    u = (c->freed_low < c->n ? c->freed_low : c->n) - 1;
    if (u < 1 || u >= c->nnow) return;
    for (int i = 0; i <= u; i++)
      if (c->now[i].base != c->rec[i].base || c->now[i].size != c->rec[i].size ||
          (i < u && c->now[i].top != c->rec[i].top))
        return;
  }
  if (!hw__arena_same()) return;
  *lo = (uintptr_t)c->rec[u - 1].base + HW_CHUNK_DATA;
  *span = c->rec[u - 1].size - HW_CHUNK_DATA;
}

void hw__chunks_record(hw_chunks *c, void *tstate, int read) {
  c->freed_low = HW_CHUNKS_MAX;
  if (read && c->same) return;
  if (!read || !c->nnow) c->nnow = hw__chunks_read(tstate, c->now);
  memcpy(c->rec, c->now, (size_t)c->nnow * sizeof c->now[0]);
  c->n = c->nnow;
}

void hw__chunks_unmapped(hw_chunks *c, void *addr, size_t len) {
  for (int i = 0; i < c->n && i < c->freed_low; i++) {
    char *b = c->rec[i].base;
    if (b < (char *)addr + len && (char *)addr < b + c->rec[i].size) {
      c->freed_low = i;
      return;
    }
  }
}
