/*
 * The shim's public API, called from the Python package through the shim's
 * own module (pymod.c) or, as a fallback, ctypes.PyDLL (which keeps the GIL
 * held during the call). Returns 0 on
 * success, a negative errno-style value otherwise.
 */
#ifndef HIGHWATER_H
#define HIGHWATER_H
#include <stddef.h>

int hw_api_version(void);
/* 1 when the shim is active in this process (Python, run dir set). */
int hw_is_active(void);
/* Bootstrap: resolves the C-API, installs the profile callback on the calling
 * thread, starts the control channel, and starts tracking unless the mode is
 * "python" (API mode). GIL held. */
int hw_python_start(void);
/* Called on each new Python thread (threading.setprofile hook). GIL held. */
int hw_thread_start(void);
/* API mode: start (resetting the peak) or stop tracking. GIL held. */
int hw_tracking_start(void);
int hw_tracking_stop(void);
/* Writes a raw dump; path NULL = in the run dir. The path written goes to
 * out. trigger: exit|api|request|signal. */
int hw_dump(const char *path, const char *trigger, char *out, size_t outlen);
/* atexit, after an unhandled MemoryError: when the shim saw an allocation
 * fail, writes the OOM dump (failed-allocation, at that allocation's line)
 * and exits 53; otherwise returns -ENOENT. GIL held. */
int hw_oom_unhandled(void);
/* atexit: stop consulting the interpreter (it is going away). */
int hw_python_stop(void);
/* os.register_at_fork(before=, after_in_parent=) on CPython 3.12+: no
 * control thread is counted when CPython checks for a multi-threaded fork.
 * GIL held. */
int hw_fork_before(void);
int hw_fork_after_parent(void);
/* Numbers for tests and benchmarks. */
long long hw_stat(const char *name);
#endif
