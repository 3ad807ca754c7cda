/*
 * Code objects die, and new ones take their addresses: `exec(compile(...))`
 * in a loop, Jupyter cells, marshal.loads, the code that namedtuple and
 * dataclasses generate. The allocator hands the dead code object's slot, and
 * those of its file name and name strings, to the next ones of their sizes,
 * so a new code object can sit where a dead one sat, with its names at the
 * dead one's addresses too. Every cache keyed by a code object's address
 * (the walk's chain and line cache, the code -> function map and its
 * per-thread front, the 3.8 - 3.10 f_back walk) would then serve the dead
 * code's function and lines for the new one: seen as every `exec` of five
 * generated files charged to the first file.
 *
 * So the shim watches code objects die, through a wrapper around
 * PyCode_Type's tp_dealloc: the interpreter calls it through the type on
 * every code object's last reference; the wrapper only looks, then calls the
 * original. One way on every version, and every interpreter of the process
 * (3.12's PyCode_AddWatcher would miss subinterpreters). Each death takes
 * the code out of the map (intern.c) and, if it was there, moves
 * hw__code_gen, which every other cache compares with the generation it was
 * filled in. Deaths come with the GIL held, as does every walk that could
 * see the new code, so the GIL orders the two.
 * Without a watch the shim does not track: a wrong line is worse than none.
 */
#define _GNU_SOURCE
#include <string.h>

#include "hw.h"

_Atomic uint32_t hw__code_gen = 1;

/* Only a code object that was interned can be in a cache (every walk
 * interns each level it looks up), so only its death moves the generation:
 * `eval` in a loop of code that never allocates costs the walks nothing. */
static void hw__code_died(void *code) {
  if (hw__intern_forget_code(code))
    atomic_fetch_add_explicit(&hw__code_gen, 1, memory_order_relaxed);
}

/* PyTypeObject's tp_dealloc sits after ob_refcnt, ob_type,
 * ob_size, tp_name, tp_basicsize and tp_itemsize (a non-debug build; the
 * name check below rejects any other). */
#define HW_TP_NAME_AT 24
#define HW_TP_DEALLOC_AT 48
static void (*hw__code_dealloc_orig)(void *);

static void hw__code_dealloc(void *code) {
  hw__code_died(code);
  hw__code_dealloc_orig(code);
}

int hw__code_watch_init(void) {
  static int done;
  if (done) return 0;
  char *type = hw__py.PyCode_Type;
  if (!type) return -1;
  const char *name = *(const char **)(type + HW_TP_NAME_AT);
  void (**slot)(void *) = (void (**)(void *))(type + HW_TP_DEALLOC_AT);
  if (!name || strcmp(name, "code") != 0 || !*slot) return -1;
  hw__code_dealloc_orig = *slot;
  *slot = hw__code_dealloc;
  done = 1;
  return 0;
}
