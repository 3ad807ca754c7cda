/*
 * Start-up, fork handling and the exported API. The shim is dormant (pure
 * pass-through) unless HIGHWATER_RUN_DIR is set and the process is a CPython
 * interpreter: every other program runs untouched.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datastack.h"
#include "highwater.h"
#include "hw.h"
#include "sampling.h"

#define HW_EXPORT __attribute__((visibility("default")))

static int hw__started;

static void hw__atfork_prepare(void) {
  hw__children_prepare();
  pthread_mutex_lock(&hw__intern_lock);
  hw__lock_take();
}

static void hw__atfork_parent(void) {
  hw__lock_give();
  pthread_mutex_unlock(&hw__intern_lock);
}

static void hw__atfork_child(void) {
  /* The child stops tracking: it must not write the parent's state file,
   * and the control thread did not survive the fork. */
  hw__lock_reset();
  pthread_mutex_init(&hw__intern_lock, NULL);
  /* Taken by other threads without being part of prepare's: re-initialised
   * like control.c's park lock (guard.c, dump.c say why). */
  hw__guard_reset_in_child();
  hw__dump_reset_in_child();
  int was_tracking = HW_RELAXED(hw__tracking);
  HW_SET_RELAXED(hw__in_child, 1);
  HW_SET_RELAXED(hw__tracking, 0);
  HW_SET_RELAXED(hw__guard_on, 0);
  HW_SET_RELAXED(hw__active, 0);
  hw__control_close_in_child();
  /* With children tracked, it starts its own at its first allocation. */
  if (hw__children_fork_child(was_tracking)) return;
  hw__state_close_in_child();
}

/* HIGHWATER_CHILDREN=0: children of the Python process must not inherit the
 * shim: put back the LD_PRELOAD the program had before highwater. */
static void hw__restore_ld_preload(void) {
  const char *orig = getenv("HIGHWATER_ORIG_LD_PRELOAD");
  if (orig && *orig) setenv("LD_PRELOAD", orig, 1);
  else unsetenv("LD_PRELOAD");
}

/* The interpreter options of this process's command line (before the
 * script, -c or -m) that keep the bootstrap from ever loading: -E and -I
 * ignore PYTHONPATH, where highwater puts it; -S skips `site`, which imports
 * it. Said at once, in the program's own stderr: a service started so would
 * otherwise run unprofiled and unguarded without a word until it ended (the
 * watcher says it then too: HW_ERR_NOT_STARTED). */
static void hw__warn_no_bootstrap_flags(void) {
  char buf[8192];
  int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return;
  buf[n] = 0;
  char seen[4] = {0};
  size_t kinds = 0;
  const char *end = buf + n, *arg = buf + strlen(buf) + 1; /* after argv[0] */
  while (arg < end && arg[0] == '-' && arg[1] && strcmp(arg, "--") != 0) {
    const char *next = arg + strlen(arg) + 1;
    if (arg[1] == '-') { /* a long option; the one that takes a value */
      if (strcmp(arg, "--check-hash-based-pycs") == 0 && next < end) next += strlen(next) + 1;
      arg = next;
      continue;
    }
    int stop = 0;
    for (const char *c = arg + 1; *c; c++) {
      if (*c == 'c' || *c == 'm') { /* the rest is the command or module */
        stop = 1;
        break;
      }
      if (*c == 'W' || *c == 'X') { /* takes the rest, or the next argument */
        if (!c[1] && next < end) next += strlen(next) + 1;
        break;
      }
      if ((*c == 'E' || *c == 'I' || *c == 'S') && !memchr(seen, *c, kinds)) seen[kinds++] = *c;
    }
    if (stop) break;
    arg = next;
  }
  if (kinds)
    hw__log("python -%s: %s, so this process is not profiled and its memory is not guarded "
            "(HW_ERR_NOT_STARTED)",
            seen,
            memchr(seen, 'S', kinds) ? "-S skips `site`, which loads highwater's bootstrap"
                                     : "it ignores PYTHONPATH, where highwater's bootstrap is");
}

__attribute__((constructor)) static void hw__init(void) {
  hw__thread.guard = 1;
  hw__resolve_real();
  hw__config_load();
  if (!hw__config.run_dir[0]) goto out;
  /* A CPython interpreter exports these; anything else is not ours. */
  if (!dlsym(RTLD_DEFAULT, "Py_IsInitialized") || !dlsym(RTLD_DEFAULT, "PyEval_SetProfile")) {
    hw__debug("not a Python process; dormant");
    goto out;
  }
  if (!hw__config.children) hw__restore_ld_preload();
  mkdir(hw__config.run_dir, 0700);
  if (hw__state_open() != 0) goto out;
  hw__container_join(0, 0); /* root or exec'd child: container.c finds out */
  hw__sampling_init();
  pthread_atfork(hw__atfork_prepare, hw__atfork_parent, hw__atfork_child);
  HW_SET_RELAXED(hw__active, 1);
  hw__warn_no_bootstrap_flags();
out:
  hw__thread.inherited = 0;
  hw__thread.last_node = HW_NODE_NONE;
  hw__thread.guard = 0;
}

HW_EXPORT int hw_api_version(void) { return 1; }

HW_EXPORT int hw_is_active(void) { return HW_RELAXED(hw__active) && !HW_RELAXED(hw__in_child); }

/* Is the calling thread in the main interpreter? A subinterpreter runs
 * `site`, so the bootstrap, too (mod_wsgi's application groups, 3.14's
 * concurrent.interpreters). Its atexit runs when it is closed, while the
 * program goes on: had it been let in, the exit dump would have come early
 * and every stack after it would have lost its Python frames. 1 when it
 * cannot tell (no such functions: not a CPython the shim runs on). */
static int hw__in_main_interpreter(void) {
  void *(*main_interp)(void), *(*unchecked)(void), *(*interp_of)(void *), *(*current)(void);
  *(void **)&main_interp = dlsym(RTLD_DEFAULT, "PyInterpreterState_Main");
  /* The thread state without the checks that end the process when there is
   * none (PyInterpreterState_Get's, 3.12+): the callers hold the GIL, but a
   * fatal error is never the shim's to raise. */
  *(void **)&unchecked = dlsym(RTLD_DEFAULT, "PyThreadState_GetUnchecked"); /* 3.13+ */
  if (!unchecked) *(void **)&unchecked = dlsym(RTLD_DEFAULT, "_PyThreadState_UncheckedGet");
  *(void **)&interp_of = dlsym(RTLD_DEFAULT, "PyThreadState_GetInterpreter"); /* 3.9+ */
  *(void **)&current = dlsym(RTLD_DEFAULT, "_PyInterpreterState_Get");        /* 3.8 */
  if (!main_interp || !unchecked || (!interp_of && !current)) return 1;
  void *ts = unchecked();
  if (!ts) return 1;
  return main_interp() == (interp_of ? interp_of(ts) : current());
}

HW_EXPORT int hw_python_start(void) {
  if (!hw_is_active()) return -ENODEV;
  hw_thread_t *t = &hw__thread;
  int g = t->guard;
  t->guard = 1; /* dlsym may allocate: the shim's, not the program's */
  int in_main = hw__in_main_interpreter();
  t->guard = g;
  /* A subinterpreter's bootstrap: not started there, so it registers no
   * atexit, excepthook or fork hook; its stacks are read as any other's. */
  if (!in_main) return -EXDEV;
  if (hw__started) return 0;
  t->guard = 1;
  if (hw__py_resolve() != 0) {
    t->guard = 0;
    hw__log("this Python (%s) is not supported (3.8 - 3.15); not tracking",
            hw__py.version[0] ? hw__py.version : "unknown");
    return -ENOTSUP;
  }
  memcpy(hw__state.hdr->python, hw__py.version, sizeof hw__state.hdr->python - 1);
  if (hw__code_watch_init() != 0) {
    t->guard = 0;
    hw__log("cannot watch code objects of this Python (%s) die, so a new one at a dead one's "
            "address could be charged the dead one's lines; not tracking",
            hw__py.version);
    return -ENOTSUP;
  }
  hw__py_check_offsets();
  hw__names_verify();
  hw__lines_verify();
  if (hw__walk_init() != 0 && hw__py.minor >= 11)
    hw__debug("frame layout not verified for Python %s: using the profile callback",
              hw__py.version);
  if (hw__py.minor <= 10 && hw__eval_init() != 0)
    hw__debug("frame-evaluation hook not installed in Python %s: using the profile callback",
              hw__py.version);
  HW_SET_RELAXED(hw__py_alive, 1);
  hw__guard_init();
  /* Before any thread tracks (the owner's plain path, owner.c), and before
   * the control thread exists: with one thread in the process the kernel
   * registers membarrier at once, with two it waits out an RCU grace
   * period (15 ms measured) in every tracked process's start. */
  hw__owner_start();
  hw__control_start();
  hw__started = 1;
  int rc = 0;
  if (!hw__config.mode_python) {
    rc = hw__py_register_thread(1, 0);
    hw__state.hdr->tracking = 1;
    HW_SET_RELAXED(hw__tracking, 1);
  }
  t->guard = 0;
  return rc;
}

HW_EXPORT int hw_thread_start(void) {
  if (!hw_is_active() || !hw__started) return -ENODEV;
  hw_thread_t *t = &hw__thread;
  int g = t->guard;
  t->guard = 1;
  /* Called from the Python-level thread hook, whose own frame ends without
   * a profile event: leave it out. */
  int rc = hw__py_register_thread(1, 1);
  t->guard = g;
  return rc;
}

HW_EXPORT int hw_tracking_start(void) {
  if (!hw_is_active() || !hw__started) return -ENODEV;
  hw_thread_t *t = &hw__thread;
  t->guard = 1;
  hw__tracker_reset();
  int rc = hw__py_register_thread(1, 0);
  hw__guard_init();
  hw__state.hdr->tracking = 1;
  HW_SET_RELAXED(hw__tracking, 1);
  t->guard = 0;
  return rc;
}

HW_EXPORT int hw_tracking_stop(void) {
  if (!hw_is_active() || !hw__started) return -ENODEV;
  hw_thread_t *t = &hw__thread;
  t->guard = 1;
  hw__resolve_pending();
  HW_SET_RELAXED(hw__tracking, 0);
  HW_SET_RELAXED(hw__guard_on, 0);
  hw__state.hdr->tracking = 0;
  hw__py_unregister_thread();
  t->guard = 0;
  return 0;
}

HW_EXPORT int hw_dump(const char *path, const char *trigger, char *out, size_t outlen) {
  if (!hw_is_active()) return -ENODEV;
  hw_thread_t *t = &hw__thread;
  int g = t->guard;
  t->guard = 1;
  const char *trig = trigger && *trigger ? trigger : "request";
  if (HW_RELAXED(hw__py_alive) && hw__py.PyGILState_Check()) hw__resolve_pending();
  int rc = hw__dump(path, trig, 0, HW_SNAP_PEAK, 0, HW_NODE_NONE, out, outlen);
  t->guard = g;
  return rc;
}

HW_EXPORT int hw_oom_unhandled(void) {
  if (!hw_is_active()) return -ENODEV;
  size_t bytes;
  uint32_t node;
  if (!hw__failed_last(&bytes, &node)) return -ENOENT; /* not ours: a MemoryError we never saw */
  hw_thread_t *t = &hw__thread;
  t->guard = 1;
  if (HW_RELAXED(hw__py_alive) && hw__py.PyGILState_Check()) hw__resolve_pending();
  hw__oom_exit(HW_OOM_FAILED_ALLOCATION, bytes, node);
}

HW_EXPORT int hw_python_stop(void) {
  /* The main interpreter's alone (hw_python_start): a subinterpreter that
   * ends leaves the program running. */
  hw_thread_t *t = &hw__thread;
  int g = t->guard;
  t->guard = 1;
  int in_main = hw__in_main_interpreter();
  t->guard = g;
  if (!in_main) return -EXDEV;
  /* The bootstrap's atexit, before the interpreter's teardown frees the
   * program's data: a kill within the last tick is still caught holding it. */
  hw__killsnap_check();
  HW_SET_RELAXED(hw__py_alive, 0);
  return 0;
}

HW_EXPORT long long hw_stat(const char *name) {
  if (!name || !hw__state.hdr) return -1;
  if (strcmp(name, "current") == 0) return hw__state.hdr->current_bytes;
  if (strcmp(name, "peak") == 0) return hw__state.hdr->peak_bytes;
  if (strcmp(name, "nodes") == 0) return (long long)hw__state.hdr->node_count;
  if (strcmp(name, "funcs") == 0) return (long long)hw__state.hdr->func_count;
  if (strcmp(name, "live_allocations") == 0) return (long long)hw__tracker_live_allocations();
  if (strcmp(name, "overhead_bytes") == 0) return (long long)hw__tracker_overhead_bytes();
  if (strcmp(name, "failed_allocations") == 0) return (long long)hw__failed_last(NULL, NULL);
  /* 1: the owner thread's plain path is still possible (owner.c); 0: shared. */
  if (strcmp(name, "owner_fast") == 0) return hw__owner_fast();
  if (strcmp(name, "stack_mode") == 0)
    /* 1: frame walk, 2: frame-evaluation hook, 3: frame-object walk
     * (sampling, 3.8 - 3.10), 0: profile callback */
    return HW_RELAXED(hw__walk_on)    ? 1
           : HW_RELAXED(hw__eval_on)  ? 2
           : HW_RELAXED(hw__fwalk_on) ? 3
                                      : 0;
  /* The data-stack proof (datastack.c): how many popped chunks it allows
   * the interpreter to hold back, or -1 when it is off. */
  if (strcmp(name, "datastack_slack") == 0) return hw__chunks_slack_in_use();
  /* 1 once the thread state's held chunk is read (datastack.c, "The held
   * chunk"); and how many of the calling thread's walks it shortened. */
  if (strcmp(name, "datastack_held") == 0) return hw__chunks_held_confirmed();
  if (strcmp(name, "datastack_held_walks") == 0) return (long long)hw__walk_held_walks(&hw__thread);
  /* 1 once greenlet was seen loaded (datastack.c, "Stack switching"). */
  if (strcmp(name, "stack_switching") == 0) return hw__chunks_switching();
  return -1;
}

/* os.register_at_fork(before=...), registered by the bootstrap on CPython
 * 3.12+: parks the control thread (control.c, "Parking"). GIL held. */
HW_EXPORT int hw_fork_before(void) {
  hw_thread_t *t = &hw__thread;
  int g = t->guard;
  t->guard = 1;
  hw__control_park();
  t->guard = g;
  return 0;
}

/* os.register_at_fork(after_in_parent=...): the thread comes back now, or at
 * CPython's thread count if that is still to come. GIL held. */
HW_EXPORT int hw_fork_after_parent(void) {
  hw_thread_t *t = &hw__thread;
  int g = t->guard;
  t->guard = 1;
  hw__control_fork_parent();
  t->guard = g;
  return 0;
}

/*
 * fopen/fclose pass straight through. Only while the control thread is
 * parked for a fork do they look at the path: CPython reads the thread count
 * from /proc/self/stat with fopen, fread, fclose right after fork() returns,
 * and the thread may come back once that file is closed (or failed to open).
 */
static FILE *(*hw__real_fopen)(const char *, const char *);
static FILE *(*hw__real_fopen64)(const char *, const char *);
static int (*hw__real_fclose)(FILE *);
static FILE *_Atomic hw__count_file; /* CPython's /proc/self/stat, while parked */

static void *hw__next(const char *name) {
  int g = hw__thread.guard;
  hw__thread.guard = 1; /* dlsym may allocate */
  void *fn = dlsym(RTLD_NEXT, name);
  hw__thread.guard = g;
  return fn;
}

static FILE *hw__fopen_seen(FILE *f, const char *path) {
  if (HW_UNLIKELY(HW_RELAXED(hw__fork_watch)) && path && strcmp(path, "/proc/self/stat") == 0) {
    int g = hw__thread.guard;
    hw__thread.guard = 1;
    if (f) atomic_store_explicit(&hw__count_file, f, memory_order_relaxed);
    else hw__control_fork_counted();
    hw__thread.guard = g;
  }
  return f;
}

HW_EXPORT FILE *fopen(const char *path, const char *mode) {
  if (!hw__real_fopen) *(void **)&hw__real_fopen = hw__next("fopen");
  return hw__fopen_seen(hw__real_fopen(path, mode), path);
}

HW_EXPORT FILE *fopen64(const char *path, const char *mode) {
  if (!hw__real_fopen64) *(void **)&hw__real_fopen64 = hw__next("fopen64");
  return hw__fopen_seen(hw__real_fopen64(path, mode), path);
}

HW_EXPORT int fclose(FILE *f) {
  if (!hw__real_fclose) *(void **)&hw__real_fclose = hw__next("fclose");
  int rc = hw__real_fclose(f);
  /* Forgotten also when it comes too late to matter: no stale pointer stays. */
  if (HW_UNLIKELY(f && atomic_load_explicit(&hw__count_file, memory_order_relaxed) == f) &&
      atomic_compare_exchange_strong(&hw__count_file, &(FILE *){f}, NULL) &&
      HW_RELAXED(hw__fork_watch)) {
    int g = hw__thread.guard;
    hw__thread.guard = 1;
    hw__control_fork_counted();
    hw__thread.guard = g;
  }
  return rc;
}
