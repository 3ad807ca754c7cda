/*
 * The CPython C-API, resolved at run time with dlsym(RTLD_DEFAULT) so that
 * one shim serves every CPython from 3.8 to 3.15 (CPython executables export
 * their symbols; a shared libpython is in the global scope), and the
 * per-version layout of the interpreter's frames. Every offset is verified
 * at start-up against the C-API before it is used (framewalk.c, names.c);
 * a mismatch falls back to the profile callback or to C-API names.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "hw.h"

hw_py_t hw__py;
/* Interpreter usable (between the bootstrap and atexit). Relaxed: a flag set
 * by the GIL holder; what it gates (the reading thread's own frames) needs no
 * ordering with it. */
_Atomic int hw__py_alive;

/* _PyInterpreterFrame and the thread state's pointer to the running one.
 *
 * 3.11 - 3.13: from each version's Include/internal/pycore_frame.h and
 * Include/cpython/pystate.h, checked with the debug info of real builds.
 *
 * 3.14: from CPython's Include/internal/pycore_interpframe_structs.h (as
 * stored at commit 8884630c19fad7f639d797dc704485cfc9026b8c, owners 0-3,
 * FRAME_OWNED_BY_INTERPRETER = 3): f_executable (a _PyStackRef, tagged in
 * its low bit) at 0, previous 8, f_funcobj 16, f_globals 24, f_builtins 32,
 * f_locals 40, frame_obj 48, instr_ptr 56, stackpointer 64, return_offset
 * 72, owner 74, visited 75. Whether that commit is on the 3.14 branch could
 * not be told here (no history of it is at hand), but bindgen's rendering
 * of the v3.14.0 and v3.14.5 headers (py-spy, src/python_bindings/
 * v3_14_0.rs, v3_14_5.rs) has the same fields in the same order, so the
 * same offsets.
 *
 * PyThreadState (Include/cpython/pystate.h) on x86-64, 3.14: prev 0, next 8,
 * interp 16, eval_breaker (uintptr_t) 24, _status (a 32-bit bit field) 32,
 * then nine ints: holds_gil 36, _whence 40, state 44, py_recursion_remaining
 * 48, py_recursion_limit 52, recursion_headroom 56, tracing 60, what_event
 * 64, 4 bytes of padding, current_frame 72. 3.14 dropped
 * c_recursion_remaining (C stack limits moved to _PyThreadStateImpl) but
 * also moved holds_gil out of the _status bit field into an int of its own
 * right after it (gh-124878, python/cpython PR #130649, opened 2025-02-27;
 * in the v3.14.0 headers), so current_frame stays at 3.13's 72 (this row
 * said 64 before, which only counted the removal). Read from the copy of
 * CPython's pystate.h the search index holds for python/cpython (the one
 * whose struct ends in remote_debugger_support; the index names no commit
 * for it and has none at v3.14.0 = ebf955df7a89ed0c7968f79faec1de49f61ed7cb
 * or v3.14.5 = 5607950ef232dad16d75c0cf53101d9649d89115), and the same in
 * bindgen's v3.14.0 and v3.14.5 renderings. Since confirmed: offsetof()
 * against Debian's 3.14.10 headers gives the same, and the shim runs the
 * frame walk on that build (docs/stacks.md, "CPython 3.14"). hw__walk_init
 * verifies every field it uses (current_frame, f_executable, previous,
 * instr_ptr, owner, the line) at start-up and falls back to the profile
 * callback on any mismatch.
 *
 * PyThreadState.datastack_chunk (datastack.c): offsetof() compiled against
 * the 3.11.7, 3.12.1 and 3.13.0 headers. 3.13.13+'s chunk cache (gh-142183)
 * appends a field to PyThreadState and leaves this offset as it was; the
 * proof allows for the one chunk it holds (datastack.c, hw__chunks_slack).
 *
 * PyThreadState.datastack_cached_chunk (datastack.c, "The held chunk"),
 * read only where hw__chunks_slack is 1 (3.13.13+, 3.14.4+, 3.15) and only
 * once a walk saw it hold the very chunk the stack had just left: 304 on
 * 3.13.18, 824 on 3.14.10, 280 on 3.15.2, offsetof() against Debian's
 * headers of each, and the machine code of their _PyThreadState_PopFrame.
 *
 * 3.14: 232. Derived by hand from the same field list as
 * current_frame above, it is 232: current_frame 72, c_profilefunc 80,
 * c_tracefunc 88, c_profileobj 96, c_traceobj 104, current_exception 112,
 * exc_info 120, dict 128, gilstate_counter (int) 136 + 4 padding, async_exc
 * 144, thread_id 152, native_thread_id 160, delete_later 168,
 * critical_section 176, coroutine_origin_tracking_depth (int) 184 + 4
 * padding, async_gen_firstiter 192, async_gen_finalizer 200, context 208,
 * context_ver 216, id 224, datastack_chunk 232 (datastack_top 240,
 * datastack_limit 248). From current_frame on the fields are 3.13's, and
 * current_frame is at 72 in both, hence 3.13's 232; 3.14.4's chunk cache
 * appends datastack_cached_chunk at the end (824, after the 516-byte
 * remote_debugger_support at 304) and moves nothing. A throwaway struct
 * with this field list (not kept), compiled here, gives 72 and 232 (and 72,
 * 232 for 3.13's list). From 3.14.4 on the proof allows for the cached
 * chunk (datastack.c, hw__chunks_slack). Debian's 3.14.10 headers: 232,
 * and its cache at 824. hw__chunks_init takes the offset only if the three words there are a
 * chunk, a top inside it and a limit at its end, with the running frame
 * between its data and that top; a wrong offset turns the proof off.
 *
 * 3.15: final. The python/cpython copy the search index holds has
 * Include/patchlevel.h "3.15.0rc1" (PY_RELEASE_LEVEL_GAMMA, serial 1) at
 * 37e98da7c19a9e5892ee756d6dee08225422cd49 and "3.15.0rc2" at
 * 435c9e5a798c99653e3ab64ce29baed0e4f3dfee, Misc/NEWS.d/3.15.0rc3.rst (release
 * date 2026-10-02) and Misc/NEWS.d/3.15.0.rst (release date 2026-10-09, no
 * changes after rc3); the ABI is frozen from rc1. Derived before any 3.15
 * could be run here; Debian's 3.15.2 (its headers' offsetof(), and the
 * test suite) has since confirmed every number below.
 *
 * _PyInterpreterFrame, x86-64, from CPython's
 * Include/internal/pycore_interpframe_structs.h as stored at
 * 111e70cb23643b6b917de4c83e125658a293f3ce (a 3.15 development commit) and at
 * 8884630c19fad7f639d797dc704485cfc9026b8c, and from bindgen's rendering of
 * the v3.15.0 tag (py-spy, src/python_bindings/v3_15_0.rs, index commit
 * e1b56ece862e481111ae9ac601bc3bfca1b98a0d), all three the same fields:
 * f_executable (an 8-byte _PyStackRef) 0, previous 8, f_funcobj 16,
 * f_globals 24, f_builtins 32, f_locals 40, frame_obj 48, instr_ptr 56,
 * stackpointer 64, return_offset (uint16) 72, owner (char) 74, visited 75
 * (tlbc_index only in free-threaded builds), localsplus 80: 3.14's offsets.
 * 3.15's stack references tag the two low bits (Py_TAG_BITS 3, a
 * v3.14.0..v3.15.0rc3 header diff by DataDog's echion authors); the mask 7
 * clears them (objects are at least 8-byte aligned). Owners: thread 0,
 * generator 1, frame object 2, interpreter 3, which marks the C-stack entry
 * frames (cstack 3, as in 3.14). That diff's only owner change is that 3.15
 * drops FRAME_OWNED_BY_CSTACK (4 in 3.14, unused there: 3.14 already marks
 * entry frames 3, GH-128563), so 8884630c's enum of 0 - 3, which the 3.14
 * row above cites, is 3.15's; the 3.14 owner value holds all the same.
 *
 * New in 3.15: every thread state embeds a sentinel base frame
 * (_PyThreadStateImpl.base_frame) at the bottom of the chain, and
 * current_frame points at it, not NULL, while the thread runs no Python
 * code (gh-138122). At 111e70cb, Python/pystate.c's init_threadstate gives
 * it previous NULL, f_executable None and owner FRAME_OWNED_BY_THREAD_STATE
 * (4, an enum value of that commit only); CPython's remote unwinder as the
 * index holds it (Modules/_remote_debugging/frames.c) takes the sentinel for
 * an interpreter-owned (3) frame. Either way its executable is not a code
 * object, so the walk keeps no level for it (framewalk.c, hw__is_code), and
 * a chain that holds only the sentinel gives the thread's inherited node.
 *
 * PyThreadState (Include/cpython/pystate.h as stored at 111e70cb) on x86-64:
 * prev 0, next 8, interp 16, eval_breaker (uintptr_t) 24, _status (a 32-bit
 * bit field) 32, then ten ints: holds_gil 36, gil_requested 40 (new in 3.15,
 * gh-135953), _whence 44, state 48, py_recursion_remaining 52,
 * py_recursion_limit 56, recursion_headroom 60, tracing 64, what_event 68,
 * and current_frame 72 with no padding: gil_requested took the 4 bytes of
 * padding 3.14 had before current_frame, which stays where 3.13 and 3.14 have
 * it. Then base_frame 80. bindgen's v3.15.0 rendering has the same fields to
 * base_frame, then last_profiled_frame 88 and last_profiled_frame_seq 96
 * (added in 3.15.0b4, gh-151613), all after current_frame. A _Py_DebugOffsets
 * table recorded in-process from a 3.15.0rc1 build (a third party's test
 * data, Windows x64, where no field before current_frame differs) gives
 * current_frame 72, base_frame 80, holds_gil 36, gil_requested 40, and the
 * frame, code and str offsets used here.
 *
 * datastack: 256. By the v3.15.0 field list datastack_chunk
 * is at 256 (current_frame 72, base_frame 80, last_profiled_frame 88,
 * last_profiled_frame_seq 96, c_profilefunc 104, c_tracefunc 112,
 * c_profileobj 120, c_traceobj 128, current_exception 136, exc_info 144,
 * dict 152, gilstate_counter 160 + 4 padding, async_exc 168, thread_id 176,
 * native_thread_id 184, delete_later 192, critical_section 200,
 * coroutine_origin_tracking_depth 208 + 4, async_gen_firstiter 216,
 * async_gen_finalizer 224, context 232, context_ver 240, id 248), but 3.15
 * has datastack_cached_chunk (280), gh-142183's one-chunk cache, which the
 * proof allows for (datastack.c, hw__chunks_slack), checked at start-up as
 * 3.14's.
 *
 * Beyond Debian's 3.15.2, on which it was run: hw__walk_init verifies
 * current_frame, f_executable, previous, instr_ptr, owner and the line
 * against the C-API at start-up, and any mismatch falls back to the profile
 * callback, so a wrong offset here costs speed, never a wrong line. */
/* One version a row. */
/* clang-format off */
static const hw_frame_layout hw__layouts[] = {
    /* minor cframe cur  tstate_frame code mask prev instr owner adaptive cstack datastack held */
    {11, 56, 8, 0, 32, 0, 48, 56, 69, 184, -1, 296, 0},
    {12, 56, 0, 0, 0, 0, 8, 56, 70, 0, 3, 232, 0},
    {13, 0, 0, 72, 0, 0, 8, 56, 70, 0, 3, 232, 304},
    {14, 0, 0, 72, 0, 7, 8, 56, 74, 0, 3, 232, 824},
    {15, 0, 0, 72, 0, 7, 8, 56, 74, 0, 3, 256, 280},
};
/* clang-format on */

const hw_frame_layout *hw__frame_layout(void) {
  for (size_t i = 0; i < sizeof hw__layouts / sizeof hw__layouts[0]; i++)
    if (hw__layouts[i].minor == hw__py.minor) return &hw__layouts[i];
  return NULL;
}

/* PyCodeObject (Include/code.h, Include/cpython/code.h; the line table is
 * co_lnotab up to 3.9, co_linetable from 3.10) and the compact str
 * objects (Include/cpython/unicodeobject.h: PyASCIIObject, then
 * PyCompactUnicodeObject; 3.12 dropped wstr) of each version.
 *
 * 3.15, x86-64, from bindgen's rendering of the v3.15.0 tag (py-spy,
 * src/python_bindings/v3_15_0.rs; no CPython code.h of a 3.15 commit could be
 * read here), the same fields as its v3.14.0 rendering: PyObject_VAR_HEAD 24,
 * co_consts 24, co_names 32, co_exceptiontable 40, then twelve 4-byte fields
 * from co_flags 48 (co_argcount 52, co_posonlyargcount 56, co_kwonlyargcount
 * 60, co_stacksize 64, co_firstlineno 68, co_nlocalsplus 72, co_framesize 76,
 * co_nlocals 80, co_ncellvars 84, co_nfreevars 88, co_version 92),
 * co_localsplusnames 96, co_localspluskinds 104, co_filename 112, co_name
 * 120, co_qualname 128, co_linetable 136 (co_code_adaptive 208). str:
 * PyObject_HEAD 16, length 16, hash 24, state 32 (a 32-bit bit field:
 * interned 2 bits, kind 3, compact 1, ascii 1, statically_allocated 1, the
 * bits names.c reads), 40 with padding; PyCompactUnicodeObject adds
 * utf8_length 40 and utf8 48: 56. The 3.15.0rc1 debug-offsets table (see
 * hw__layouts) agrees. co_linetable is never decoded from 3.11 on (3.12+
 * lines come from PyUnstable_InterpreterFrame_GetLine): it only identifies
 * a code object's lines (names.c, hw__code_lines_id: the PyBytesObject's
 * address, ob_size at 16 and first bytes at 32, both unchanged in 3.15), so
 * a change of the location-table format cannot give a wrong line.
 * hw__names_verify checks the file, name and line-table offsets against the
 * C-API at start-up; co_firstlineno only goes into a cache key beside the
 * code object's address (names.c, hw__code_sig). */
static const hw_code_layout hw__code_layouts[] = {
    /* minor file name firstline linetable ascii compact */
    {8, 104, 112, 40, 120, 48, 72},  {9, 104, 112, 40, 120, 48, 72},
    {10, 104, 112, 40, 120, 48, 72}, {11, 112, 128, 72, 136, 48, 72},
    {12, 112, 128, 68, 136, 40, 56}, {13, 112, 128, 68, 136, 40, 56},
    {14, 112, 128, 68, 136, 40, 56}, {15, 112, 128, 68, 136, 40, 56},
};

const hw_code_layout *hw__code_layout(void) {
  for (size_t i = 0; i < sizeof hw__code_layouts / sizeof hw__code_layouts[0]; i++)
    if (hw__code_layouts[i].minor == hw__py.minor) return &hw__code_layouts[i];
  return NULL;
}

/* 3.8 - 3.10: where a PyFrameObject keeps its line (Include/frameobject.h,
 * Include/cpython/frameobject.h of each version) and where its code object
 * keeps the line table (co_lnotab, 3.10's co_linetable, Include/code.h /
 * Include/cpython/code.h). PyBytesObject: ob_size at 16, ob_sval at 32.
 * The thread state's running frame (PyThreadState.frame, after prev, next
 * and interp in Include/cpython/pystate.h) is at 24 in all three. 3.8's
 * PyInterpreterState.eval_frame (Include/internal/pycore_pystate.h, after
 * the embedded PyConfig) is at 568 in pyenv's 3.8.18 build; pystack.c uses
 * it only when it holds _PyEval_EvalFrameDefault at start-up. */
static const hw_line_layout hw__line_layouts[] = {
    {8, 80, 104, 108, 120, 24, 568},
    {9, 80, 104, 108, 120, 24, 0},
    {10, 72, 96, 100, 120, 24, 0},
};
#define HW_BYTES_SIZE 16
#define HW_BYTES_DATA 32
static const hw_line_layout *hw__LL; /* set once verified (hw__lines_verify) */

const hw_line_layout *hw__line_layout(void) { return hw__LL; }
static size_t hw__LL_firstlineno;

#define HW_SYM(field, name) *(void **)&hw__py.field = dlsym(RTLD_DEFAULT, name)

int hw__py_resolve(void) {
  if (hw__py.ready) return 0;
  HW_SYM(Py_IsInitialized, "Py_IsInitialized");
  HW_SYM(PyGILState_Check, "PyGILState_Check");
  HW_SYM(PyEval_SetProfile, "PyEval_SetProfile");
  HW_SYM(PyEval_GetFrame, "PyEval_GetFrame");
  HW_SYM(PyFrame_GetLineNumber, "PyFrame_GetLineNumber");
  HW_SYM(PyFrame_GetCode, "PyFrame_GetCode");
  HW_SYM(PyFrame_GetBack, "PyFrame_GetBack");
  HW_SYM(PyObject_GetAttrString, "PyObject_GetAttrString");
  HW_SYM(PyUnicode_AsUTF8AndSize, "PyUnicode_AsUTF8AndSize");
  HW_SYM(Py_IncRef, "Py_IncRef");
  HW_SYM(Py_DecRef, "Py_DecRef");
  HW_SYM(PyErr_Fetch, "PyErr_Fetch");
  HW_SYM(PyErr_Restore, "PyErr_Restore");
  HW_SYM(Py_GetVersion, "Py_GetVersion");
  hw__py.PyCode_Type = dlsym(RTLD_DEFAULT, "PyCode_Type");
  if (!hw__py.Py_IsInitialized || !hw__py.PyGILState_Check || !hw__py.PyEval_SetProfile ||
      !hw__py.PyEval_GetFrame || !hw__py.PyFrame_GetLineNumber || !hw__py.PyObject_GetAttrString ||
      !hw__py.PyUnicode_AsUTF8AndSize || !hw__py.Py_IncRef || !hw__py.Py_DecRef ||
      !hw__py.PyErr_Fetch || !hw__py.PyErr_Restore || !hw__py.Py_GetVersion)
    return -1;
  const char *v = hw__py.Py_GetVersion();
  size_t i = 0;
  while (v[i] && v[i] != ' ' && i < sizeof hw__py.version - 1) {
    hw__py.version[i] = v[i];
    i++;
  }
  hw__py.version[i] = '\0';
  int major = 0, minor = 0;
  if (sscanf(hw__py.version, "%d.%d", &major, &minor) != 2 || major != 3 || minor < 8) return -1;
  hw__py.minor = minor;
  /* Before 3.9 these do not exist; after, they are the only safe way in. */
  if (minor >= 9 && (!hw__py.PyFrame_GetCode || !hw__py.PyFrame_GetBack)) return -1;
  hw__py.ready = 1;
  return 0;
}

/* Where the code object of a frame lives, per version; read without a call
 * and without touching reference counts, so that it is safe without the GIL
 * on a frame of our own suspended thread. Checked against PyFrame_GetCode at
 * start-up (hw__py_check_offsets). */
static int hw__direct_ok;

void *hw__frame_code_borrowed(void *frame) {
  if (!frame) return NULL;
  if (!hw__direct_ok) return NULL;
  if (hw__py.minor <= 10) return *(void **)((char *)frame + HW_PY38_F_CODE);
  const hw_frame_layout *L = hw__frame_layout();
  void *iframe = *(void **)((char *)frame + HW_PYFRAME_F_FRAME);
  if (!L || !iframe) return NULL;
  return hw__iframe_code(L, iframe);
}

int hw__py_check_offsets(void) {
  hw__direct_ok = 1;
  void *frame = hw__py.PyEval_GetFrame();
  if (!frame) return 0; /* nothing to check against: trust the table */
  if (hw__py.minor < 9) return 0;
  void *code = hw__py.PyFrame_GetCode(frame);
  void *direct = hw__frame_code_borrowed(frame);
  if (code) hw__py.Py_DecRef((PyObject *)code);
  if (code != direct) {
    hw__direct_ok = 0;
    hw__log("unexpected frame layout in Python %s; native code without the GIL is "
            "charged to the last known line",
            hw__py.version);
    return -1;
  }
  return 0;
}

/* 3.8, 3.9: PyCode_Addr2Line over co_lnotab, (address delta, line delta) byte pairs. */
static int hw__lnotab_line(const unsigned char *p, int64_t size, int line, int lasti) {
  int addr = 0;
  for (int64_t i = 0; i + 1 < size; i += 2) {
    addr += p[i];
    if (addr > lasti) break;
    line += (signed char)p[i + 1];
  }
  return line;
}

/* 3.10: PyCode_Addr2Line over co_linetable, (length, line delta) byte pairs
 * of address ranges; a delta of -128 is a range without a line (-1). */
static int hw__linetable_line(const unsigned char *p, int64_t size, int line, int addr) {
  int start = -1, end = 0, range_line = -1;
  int64_t i = 0;
  while (end <= addr) {
    if (i + 1 >= size) return -1;
    do { /* empty ranges are stepped over, their line deltas kept */
      start = end;
      end += p[i];
      signed char d = (signed char)p[i + 1];
      i += 2;
      if (d == -128) range_line = -1;
      else range_line = line += d;
    } while (start == end && i + 1 < size);
  }
  return range_line;
}

/* The line a 3.8 - 3.10 frame is at, as PyFrame_GetLineNumber computes it,
 * by reading memory only: no call into the interpreter, no reference count
 * touched, so it is safe in a hook without the GIL (the frame is this
 * thread's own and suspended; code objects are immutable). -2: unknown. */
int hw__frame_line_direct(void *frame) {
  const hw_line_layout *L = hw__LL;
  if (!L || !frame) return -2;
  int lasti = *(int *)((char *)frame + L->f_lasti);
  void *code = HW_AT(frame, HW_PY38_F_CODE);
  if (!code) return -2;
  int first = *(int *)((char *)code + hw__LL_firstlineno);
  if (L->minor <= 9) {
    if (HW_AT(frame, L->f_trace)) return *(int *)((char *)frame + L->f_lineno);
  } else {
    int lineno = *(int *)((char *)frame + L->f_lineno);
    if (lineno != 0) return lineno;
    if (lasti < 0) return first;
  }
  void *lines = HW_AT(code, L->co_lines);
  if (!lines) return -2;
  int64_t size = *(int64_t *)((char *)lines + HW_BYTES_SIZE);
  const unsigned char *p = (const unsigned char *)lines + HW_BYTES_DATA;
  return L->minor <= 9 ? hw__lnotab_line(p, size, first, lasti)
                       : hw__linetable_line(p, size, first, lasti * 2);
}

/* GIL held, at start-up: the direct reading must give PyFrame_GetLineNumber's
 * line on every frame of the running stack, and the line table must be the
 * object the C-API names. Else lines go through the C-API, GIL held only. */
int hw__lines_verify(void) {
  hw__LL = NULL;
  const hw_line_layout *L = NULL;
  for (size_t i = 0; i < sizeof hw__line_layouts / sizeof hw__line_layouts[0]; i++)
    if (hw__line_layouts[i].minor == hw__py.minor) L = &hw__line_layouts[i];
  const hw_code_layout *C = hw__code_layout();
  if (!L || !C || !hw__direct_ok) return -1;
  hw__LL_firstlineno = C->co_firstlineno;
  void *frame = hw__py.PyEval_GetFrame();
  if (!frame) return -1;
  void *code = hw__frame_code(frame);
  int ok = code != NULL;
  if (ok) {
    PyObject *lt = hw__py.PyObject_GetAttrString((PyObject *)code,
                                                 L->minor <= 9 ? "co_lnotab" : "co_linetable");
    ok = lt && (void *)lt == HW_AT(code, L->co_lines);
    if (lt) hw__py.Py_DecRef(lt);
    hw__py.Py_DecRef((PyObject *)code);
  }
  PyObject *et, *ev, *tb; /* the program's pending exception, if any, stays */
  hw__py.PyErr_Fetch(&et, &ev, &tb);
  hw__py.Py_IncRef((PyObject *)frame);
  int checked = 0;
  while (frame) {
    hw__LL = L;
    if (ok && hw__frame_line_direct(frame) != hw__py.PyFrame_GetLineNumber(frame)) ok = 0;
    hw__LL = NULL;
    checked++;
    void *back = hw__frame_back(frame);
    hw__py.Py_DecRef((PyObject *)frame);
    frame = back;
  }
  hw__py.PyErr_Restore(et, ev, tb);
  if (!ok || !checked) {
    hw__debug("line layout not verified for Python %s: lines without the GIL are the last known",
              hw__py.version);
    return -1;
  }
  hw__LL = L;
  return 0;
}

int hw__is_code(void *obj) {
  return obj && hw__py.PyCode_Type && *(void **)((char *)obj + 8) == hw__py.PyCode_Type;
}

void *hw__frame_code(void *frame) {
  if (hw__py.PyFrame_GetCode) return hw__py.PyFrame_GetCode(frame);
  void *code = *(void **)((char *)frame + HW_PY38_F_CODE);
  if (code) hw__py.Py_IncRef((PyObject *)code);
  return code;
}

void *hw__frame_back(void *frame) {
  if (hw__py.PyFrame_GetBack) return hw__py.PyFrame_GetBack(frame);
  void *back = *(void **)((char *)frame + HW_PY38_F_BACK);
  if (back) hw__py.Py_IncRef((PyObject *)back);
  return back;
}
