/*
 * The CPython C-API, resolved at run time with dlsym(RTLD_DEFAULT) so that
 * one shim serves every CPython from 3.8 to 3.14 (CPython executables export
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
 * stored at commit 8884630c19fad7f639d797dc704485cfc9026b8c, the 3.14 layout:
 * owners 0-3, FRAME_OWNED_BY_INTERPRETER = 3): f_executable (a _PyStackRef,
 * tagged in its low bit) at 0, previous 8, f_funcobj 16, f_globals 24,
 * f_builtins 32, f_locals 40, frame_obj 48, instr_ptr 56, stackpointer 64,
 * return_offset 72, owner 74, visited 75. PyThreadState.current_frame at 64:
 * 3.13's struct (current_frame at 72) less c_recursion_remaining, which 3.14
 * replaced by C stack limits in _PyThreadStateImpl. No 3.14 interpreter was
 * available to check it against: hw__walk_init verifies every field it uses
 * (current_frame, f_executable, previous, instr_ptr, owner, the line) at
 * start-up and falls back to the profile callback on any mismatch.
 *
 * 3.15 is not enabled: its layout was not final when this was written (main
 * adds FRAME_OWNED_BY_THREAD_STATE = 4, a sentinel base frame whose
 * executable is not a code object, which the walk already skips). Add it here
 * as {..} with the current_frame offset from its pystate.h once it is. */
static const hw_frame_layout hw__layouts[] = {
    /* minor cframe cur  tstate_frame code mask prev instr owner adaptive cstack */
    {11, 56, 8, 0, 32, 0, 48, 56, 69, 184, -1},
    {12, 56, 0, 0, 0, 0, 8, 56, 70, 0, 3},
    {13, 0, 0, 72, 0, 0, 8, 56, 70, 0, 3},
    {14, 0, 0, 64, 0, 7, 8, 56, 74, 0, 3},
};

const hw_frame_layout *hw__frame_layout(void) {
  for (size_t i = 0; i < sizeof hw__layouts / sizeof hw__layouts[0]; i++)
    if (hw__layouts[i].minor == hw__py.minor) return &hw__layouts[i];
  return NULL;
}

/* 3.8 has no PyFrame_GetCode/GetBack; its PyFrameObject starts with
 * PyObject_VAR_HEAD (24 bytes), then f_back, then f_code. */
#define HW_PY38_F_BACK 24
#define HW_PY38_F_CODE 32

#define HW_SYM(field, name) *(void **)&hw__py.field = dlsym(RTLD_DEFAULT, name)

int hw__py_resolve(void) {
  if (hw__py.ready) return 0;
  HW_SYM(Py_IsInitialized, "Py_IsInitialized");
  HW_SYM(PyGILState_Check, "PyGILState_Check");
  HW_SYM(PyEval_SetProfile, "PyEval_SetProfile");
  HW_SYM(PyEval_SetProfileAllThreads, "PyEval_SetProfileAllThreads");
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
      !hw__py.PyEval_GetFrame || !hw__py.PyFrame_GetLineNumber ||
      !hw__py.PyObject_GetAttrString || !hw__py.PyUnicode_AsUTF8AndSize ||
      !hw__py.Py_IncRef || !hw__py.Py_DecRef || !hw__py.PyErr_Fetch ||
      !hw__py.PyErr_Restore || !hw__py.Py_GetVersion)
    return -1;
  const char *v = hw__py.Py_GetVersion();
  size_t i = 0;
  while (v[i] && v[i] != ' ' && i < sizeof hw__py.version - 1) {
    hw__py.version[i] = v[i];
    i++;
  }
  hw__py.version[i] = '\0';
  int major = 0, minor = 0;
  if (sscanf(hw__py.version, "%d.%d", &major, &minor) != 2 || major != 3 || minor < 8)
    return -1;
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
            "charged to the last known line", hw__py.version);
    return -1;
  }
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
