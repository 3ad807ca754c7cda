/*
 * The shim's API as a Python module, built by the shim itself: the bootstrap
 * reaches hw_python_start & co. without importing ctypes (~2.7 ms and four
 * modules in every tracked process's start-up, bench/README.md "Child
 * start-up").
 *
 * The bootstrap asks the import system for an extension module "_highwater"
 * whose file is the preloaded shim (its path from LD_PRELOAD, opened with
 * RTLD_NOLOAD: the copy already loaded is found, no second copy is ever
 * loaded and no file is opened when the path is the one the loader used).
 * PyInit__highwater hands back a module definition (multi-phase
 * initialisation: the module is not put in sys.modules). No Python headers
 * here: the structures below are the stable ABI's (PEP 384), the same from
 * 3.8 to 3.15 in release builds; the bootstrap uses ctypes instead in debug
 * (Py_TRACE_REFS) and free-threaded builds, whose object header differs.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>
#include <sys/types.h>

#include "highwater.h"

#define HW_EXPORT __attribute__((visibility("default")))

typedef struct hw_pyobj hw_pyobj;
struct hw_pyobj {
  ssize_t ob_refcnt;
  void *ob_type;
};

typedef hw_pyobj *(*hw_pycfunc)(hw_pyobj *self, hw_pyobj *args);

typedef struct {
  const char *ml_name;
  hw_pycfunc ml_meth;
  int ml_flags;
  const char *ml_doc;
} hw_pymethod;

#define HW_METH_VARARGS 0x0001
#define HW_METH_NOARGS 0x0004
#define HW_METH_O 0x0008

typedef struct {
  hw_pyobj ob_base;
  hw_pyobj *(*m_init)(void);
  ssize_t m_index;
  hw_pyobj *m_copy;
} hw_pymoduledef_base;

typedef struct {
  hw_pymoduledef_base m_base;
  const char *m_name;
  const char *m_doc;
  ssize_t m_size;
  hw_pymethod *m_methods;
  void *m_slots;
  void *m_traverse;
  void *m_clear;
  void *m_free;
} hw_pymoduledef;

static struct {
  hw_pyobj *(*PyModuleDef_Init)(hw_pymoduledef *);
  hw_pyobj *(*PyLong_FromLongLong)(long long);
  hw_pyobj *(*PyBytes_FromString)(const char *);
  const char *(*PyUnicode_AsUTF8)(hw_pyobj *);
  int (*PyArg_ParseTuple)(hw_pyobj *, const char *, ...);
} hw__m;

#define HW_NOARGS(name)                                                                            \
  static hw_pyobj *hw__m_##name(hw_pyobj *self, hw_pyobj *unused) {                                \
    (void)self;                                                                                    \
    (void)unused;                                                                                  \
    return hw__m.PyLong_FromLongLong(name());                                                      \
  }
HW_NOARGS(hw_api_version)
HW_NOARGS(hw_is_active)
HW_NOARGS(hw_python_start)
HW_NOARGS(hw_thread_start)
HW_NOARGS(hw_tracking_start)
HW_NOARGS(hw_tracking_stop)
HW_NOARGS(hw_python_stop)
HW_NOARGS(hw_oom_unhandled)
HW_NOARGS(hw_fork_before)
HW_NOARGS(hw_fork_after_parent)

/* stat(name: str) -> int, as hw_stat. */
static hw_pyobj *hw__m_stat(hw_pyobj *self, hw_pyobj *name) {
  (void)self;
  const char *s = hw__m.PyUnicode_AsUTF8(name);
  return s ? hw__m.PyLong_FromLongLong(hw_stat(s)) : NULL;
}

/* dump(path: str | None, trigger: str) -> bytes (the path written), or the
 * negative errno as an int. */
static hw_pyobj *hw__m_dump(hw_pyobj *self, hw_pyobj *args) {
  (void)self;
  const char *path = NULL, *trigger = NULL;
  if (!hw__m.PyArg_ParseTuple(args, "zs:dump", &path, &trigger)) return NULL;
  char out[1024];
  out[0] = '\0';
  int rc = hw_dump(path, trigger, out, sizeof out);
  return rc != 0 ? hw__m.PyLong_FromLongLong(rc) : hw__m.PyBytes_FromString(out);
}

#define HW_M(name)                                                                                 \
  { #name, hw__m_##name, HW_METH_NOARGS, NULL }
static hw_pymethod hw__m_methods[] = {
    HW_M(hw_api_version),
    HW_M(hw_is_active),
    HW_M(hw_python_start),
    HW_M(hw_thread_start),
    HW_M(hw_tracking_start),
    HW_M(hw_tracking_stop),
    HW_M(hw_python_stop),
    HW_M(hw_oom_unhandled),
    HW_M(hw_fork_before),
    HW_M(hw_fork_after_parent),
    {"stat", hw__m_stat, HW_METH_O, NULL},
    {"dump", hw__m_dump, HW_METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static hw_pymoduledef hw__m_def = {
    /* PyModuleDef_HEAD_INIT, with a reference count no stray decref can
     * bring to zero: the definition is static, never to be freed. */
    {{(ssize_t)1 << 30, NULL}, NULL, 0, NULL},
    "_highwater",
    "The preloaded highwater shim's API (highwater._shim).",
    0,
    hw__m_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

/* Called by the import system with the GIL held. NULL without an exception
 * set becomes a SystemError there: the bootstrap then falls back to ctypes. */
HW_EXPORT hw_pyobj *PyInit__highwater(void) {
  *(void **)&hw__m.PyModuleDef_Init = dlsym(RTLD_DEFAULT, "PyModuleDef_Init");
  *(void **)&hw__m.PyLong_FromLongLong = dlsym(RTLD_DEFAULT, "PyLong_FromLongLong");
  *(void **)&hw__m.PyBytes_FromString = dlsym(RTLD_DEFAULT, "PyBytes_FromString");
  *(void **)&hw__m.PyUnicode_AsUTF8 = dlsym(RTLD_DEFAULT, "PyUnicode_AsUTF8");
  *(void **)&hw__m.PyArg_ParseTuple = dlsym(RTLD_DEFAULT, "PyArg_ParseTuple");
  if (!hw__m.PyModuleDef_Init || !hw__m.PyLong_FromLongLong || !hw__m.PyBytes_FromString ||
      !hw__m.PyUnicode_AsUTF8 || !hw__m.PyArg_ParseTuple)
    return NULL;
  return hw__m.PyModuleDef_Init(&hw__m_def);
}
