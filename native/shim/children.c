/*
 * Forked children start their own tracking, and every process leaves the
 * container sum when it ends (docs/protocol.md, "Multiple processes").
 *
 * The fork child handler runs where only async-signal-safe work is sound
 * (another thread of the parent may have held any lock): it only notes the
 * fork with plain stores. The real start happens at the child's first
 * allocation through the shim (hw__child_begin): a new state file holding a
 * copy of the parent's stack, function and string tables as they were at
 * the fork (so the intern caches the child inherited stay valid), empty
 * live bytes, its own slot in the container file, a new control thread. A
 * child that only execs never allocates through us and creates no file.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "hw.h"

#define HW_EXPORT __attribute__((visibility("default")))

volatile int hw__child_pending;

static uint64_t hw__forks;                /* forks of this process since its tracking began */
static volatile uint64_t hw__fork_parent; /* pid of the forking process (set in prepare) */

/* The parent's state mapping, as the child found it at the fork. */
static struct {
  char *base;
  size_t bytes;
  uint64_t nodes, funcs, strings;
  int64_t current;
  uint64_t seq;
} hw__from;

void hw__children_prepare(void) {
  hw__fork_parent = (uint64_t)getpid();
  hw__forks++;
}

int hw__children_fork_child(int was_tracking) {
  if (!hw__config.children || !hw__state.hdr) return 0;
  /* Forked by a process that is stopping the container for an OOM: gone
   * here, before anything else runs (container.c, "Late starters"). */
  hw__fork_parent_pid = hw__state.hdr->pid;
  hw__fork_parent_ticks = hw__state.hdr->start_ticks;
  hw__container_fork_check(hw__fork_parent_pid, hw__fork_parent_ticks);
  hw__container_forget_in_child();
  hw__from.base = (char *)hw__state.hdr;
  hw__from.bytes = hw__state.map_bytes;
  hw__from.nodes = hw__state.hdr->node_count;
  hw__from.funcs = hw__state.hdr->func_count;
  hw__from.strings = hw__state.string_used;
  hw__from.current = hw__state.hdr->current_bytes;
  hw__from.seq = hw__forks;
  /* Nothing may write the parent's file from here on. */
  memset(&hw__state, 0, sizeof hw__state);
  hw__forks = 0;
  if (was_tracking) hw__child_pending = 1;
  return 1;
}

/* Copies the parent's tables into our fresh state file, then lets the parent's go.
 * -1 when they could not be copied: the inherited stack ids (intern.c's maps,
 * the threads' front caches) then name nodes our file does not have. */
static int hw__adopt_tables(void) {
  hw_state_t *s = &hw__state;
  hw_state_header *old = (hw_state_header *)hw__from.base;
  int adopted = 0;
  if (old->node_capacity == s->hdr->node_capacity && old->func_capacity == s->hdr->func_capacity &&
      old->string_capacity == s->hdr->string_capacity && hw__from.nodes <= old->node_capacity &&
      hw__from.funcs <= old->func_capacity && hw__from.strings <= old->string_capacity &&
      /* room in our file first (state.c): no page written without its block */
      hw__state_reserve_nodes(hw__from.nodes) == 0 &&
      hw__state_reserve_funcs(hw__from.funcs) == 0 &&
      hw__state_reserve_strings(hw__from.strings) == 0) {
    memcpy(s->strings, hw__from.base + old->off_strings, hw__from.strings);
    s->string_used = hw__from.strings;
    memcpy(s->funcs, hw__from.base + old->off_funcs, hw__from.funcs * sizeof(hw_func_rec));
    memcpy(s->nodes, hw__from.base + old->off_nodes, hw__from.nodes * sizeof(hw_node_rec));
    __atomic_thread_fence(__ATOMIC_RELEASE);
    s->hdr->func_count = hw__from.funcs;
    s->hdr->node_count = hw__from.nodes;
    adopted = 1;
  }
  syscall(SYS_munmap, (void *)hw__from.base, hw__from.bytes);
  hw__from.base = NULL;
  return adopted ? 0 : -1;
}

int hw__child_begin(void) {
  if (!__atomic_exchange_n(&hw__child_pending, 0, __ATOMIC_ACQ_REL)) return 0;
  hw_thread_t *t = &hw__thread;
  int g = t->guard;
  t->guard = 1;
  int ok = hw__state_open() == 0;
  if (ok && hw__adopt_tables() != 0) {
    hw__log("no room for the parent's stacks in %s; this fork child is not tracked",
            hw__config.run_dir);
    hw__state_discard();
    ok = 0;
  }
  if (ok) {
    hw__tracker_forget_in_child();
    hw_state_header *h = hw__state.hdr;
    memcpy(h->python, hw__py.version, sizeof h->python - 1);
    h->inherited_bytes = hw__from.current > 0 ? (uint64_t)hw__from.current : 0;
    h->fork_seq = hw__from.seq;
    hw__container_join(HW_ORIGIN_FORK, hw__fork_parent);
    hw__in_child = 0;
    hw__active = 1;
    hw__guard_init();
    /* This address space registers its own membarrier, while this thread is
     * its only one (quick: see hw_python_start). */
    hw__owner_start();
    hw__control_start();
    h->tracking = 1;
    hw__tracking = 1;
  } else if (hw__from.base) {
    syscall(SYS_munmap, (void *)hw__from.base, hw__from.bytes);
    hw__from.base = NULL;
  }
  t->guard = g;
  return ok && !g;
}

/* os._exit() (a multiprocessing fork worker ends this way, skipping atexit
 * and destructors) and every other direct _exit: leave the container sum
 * first. The exit itself is the system call glibc's _exit makes. */
HW_EXPORT void _exit(int status) {
  /* A vfork child (subprocess whose exec failed) shares our memory and our
   * thread's TLS: it must touch nothing, so the pid is checked first. */
  if (hw__active && !hw__in_child && hw__state.hdr &&
      (uint64_t)syscall(SYS_getpid) == hw__state.hdr->pid) {
    hw__thread.guard = 1;
    hw__killsnap_check(); /* a kill within the last tick: what we hold before we go */
    hw__container_leave(1, status);
  }
  syscall(SYS_exit_group, status);
  for (;;) pause();
}

/*
 * exec in the same process (os.execv of python again, a program re-executing
 * itself): a new Python image starts a new state file under the same name,
 * so the old one's peak would be lost, and its slot, still ours by pid and
 * start time, would keep its bytes in the container sum while the new image
 * runs. So the program about to be replaced ends here as it would at its
 * exit: its exit dump (the report of its peak, as the bootstrap's atexit
 * writes it; not under `highwater python`, whose dumps the API asks for),
 * then it leaves the sum. Only an exec that fails returns: the process goes
 * on, as if nothing had happened: the dump is removed again and the process
 * joins the sum anew. errno is the exec's.
 */
typedef struct {
  int guard; /* the thread's guard before; -1: not a tracked process, nothing done */
  char dump[700];
} hw_exec_t;

static void hw__exec_leave(hw_exec_t *x) {
  x->guard = -1;
  /* A vfork child (subprocess) shares our memory: the pid first, as _exit. */
  if (!hw__active || hw__in_child || !hw__state.hdr ||
      (uint64_t)syscall(SYS_getpid) != hw__state.hdr->pid)
    return;
  x->guard = hw__thread.guard;
  x->dump[0] = '\0';
  hw__thread.guard = 1;
  hw__killsnap_check();
  if (!hw__config.mode_python && HW_RELAXED(hw__tracking)) {
    /* As hw_dump: names still pending are resolved while we hold the GIL. */
    if (HW_RELAXED(hw__py_alive) && hw__py.PyGILState_Check()) hw__resolve_pending();
    if (hw__dump(NULL, "exit", 0, HW_SNAP_PEAK, 0, HW_NODE_NONE, x->dump, sizeof x->dump) != 0)
      x->dump[0] = '\0';
  }
  hw__container_leave(0, 0);
}

static void hw__exec_failed(hw_exec_t *x) {
  if (x->guard < 0) return;
  int e = errno;
  if (x->dump[0]) unlink(x->dump);
  hw_state_header *h = hw__state.hdr;
  if (h->container_ended) {
    h->container_ended = 0;
    h->end_ms = 0;
    hw__container_join((int)h->origin, h->tracked_parent_pid);
  }
  hw__thread.guard = x->guard;
  errno = e;
}

HW_EXPORT int execve(const char *path, char *const argv[], char *const envp[]) {
  hw_exec_t x;
  hw__exec_leave(&x);
  int rc = hw__real_execve ? hw__real_execve(path, argv, envp)
                           : (int)syscall(SYS_execve, path, argv, envp);
  hw__exec_failed(&x);
  return rc;
}

#define HW_EXEC_HOOK(name, params, args)                                                           \
  HW_EXPORT int name params {                                                                      \
    if (!hw__real_##name) hw__resolve_real();                                                      \
    if (!hw__real_##name) {                                                                        \
      errno = ENOSYS;                                                                              \
      return -1;                                                                                   \
    }                                                                                              \
    hw_exec_t x;                                                                                   \
    hw__exec_leave(&x);                                                                            \
    int rc = hw__real_##name args;                                                                 \
    hw__exec_failed(&x);                                                                           \
    return rc;                                                                                     \
  }
HW_EXEC_HOOK(execv, (const char *path, char *const argv[]), (path, argv))
HW_EXEC_HOOK(execvp, (const char *file, char *const argv[]), (file, argv))
HW_EXEC_HOOK(execvpe, (const char *file, char *const argv[], char *const envp[]),
             (file, argv, envp))
HW_EXEC_HOOK(fexecve, (int fd, char *const argv[], char *const envp[]), (fd, argv, envp))
#undef HW_EXEC_HOOK

/* exit(): after the program's atexit handlers (and the bootstrap's exit dump). */
__attribute__((destructor)) static void hw__children_at_exit(void) {
  if (hw__active && !hw__in_child && hw__state.hdr &&
      (uint64_t)syscall(SYS_getpid) == hw__state.hdr->pid) {
    hw__thread.guard = 1;
    hw__container_leave(0, 0);
  }
}
