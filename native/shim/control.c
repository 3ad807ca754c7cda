/*
 * The control channel: a unix stream socket in the run dir, served by one
 * thread that also turns SIGUSR2 into a dump and refreshes the published
 * readings. Commands are single bounded lines from peers with our own uid
 * (or HIGHWATER_CONTROL_UID), checked with SO_PEERCRED. The thread never
 * touches the interpreter.
 *
 * Nothing here trusts an fd number: the program may close or reuse any of
 * them (ownfd.c). The listening socket and each connection are re-verified
 * before every accept, read, write and close; a lost listening socket, or a
 * socket file removed from the run dir, is replaced by a fresh one at the
 * same path. SIGUSR2 needs no fd at all: the handler counts and wakes this
 * thread with a thread-directed signal that only interrupts its ppoll.
 *
 * Around a Python-level os.fork() the thread is parked (stopped, joined and
 * gone from the kernel's thread count) and started again afterwards: see
 * "Parking" below. Its sockets, connections and pending SIGUSR2 requests stay
 * as they were and are served after the restart.
 *
 * One thread serves many clients: sockets are non-blocking, each connection
 * has a deadline, and at most HW_CONN_MAX (never more than a quarter of the
 * program's fd limit: those fds are the program's budget) wait for their
 * line at once. When all are taken, the oldest is dropped for a newcomer once
 * it has had HW_CONN_GRACE_MS to speak (a burst of real clients all get
 * served); newcomers wait in the backlog meanwhile. Fewer silent clients than
 * that never delay a live one by more than the time it takes to serve it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "datastack.h"
#include "hw.h"

#define HW_STATUS_PERIOD_MS 250
#define HW_CONN_MAX 1024
#define HW_CONN_GRACE_MS 1000    /* a client this new is not dropped for a newcomer */
#define HW_CONN_DEADLINE_MS 2000 /* generous: it holds up no one else */
#define HW_ACCEPT_BATCH 128
#define HW_BACKLOG 4096 /* the kernel clamps it to net.core.somaxconn */
#define HW_REBIND_PERIOD_MS 1000

typedef struct {
  hw_ownfd fd;
  uint64_t deadline;
  size_t got;
  char buf[HW_CMD_LINE_MAX + 1];
} hw_conn;

static hw_ownfd hw__listen = {-1, 0, 0, 0};
static uint64_t hw__sock_file_dev, hw__sock_file_ino; /* the socket's inode in the run dir */
static hw_conn hw__conns[HW_CONN_MAX];
/* Slots [0, hw__conn_used) have been handed out at least once (free ones
 * hold fd -1); the rest are the untouched zero pages of .bss. The array is
 * 300 KiB: setting every slot's fd to -1 up front made each tracked process
 * fault in and zero ~76 pages at start-up that a short one never uses. */
static int hw__conn_used;
static int hw__conn_cap = HW_CONN_MAX;
static char hw__sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
/* Signal handler -> control thread: a count, relaxed on the way in; taken
 * with acq_rel. */
static _Atomic int hw__sig_pending;
/* Read by the signal handler; relaxed (a thread id, nothing behind it). */
static _Atomic pid_t hw__control_tid;
static int hw__sig_installed;

/* Parking (below): the thread ends when hw__ctl_stop is set; the wake pipe
 * (its read end is in the poll set) ends its ppoll at once, whatever the
 * program did with SIGUSR2. */
static _Atomic int hw__ctl_stop;
static hw_ownfd hw__wake_rd = {-1, 0, 0, 0}, hw__wake_wr = {-1, 0, 0, 0};
static pthread_t hw__ctl_thread;
static int hw__ctl_running;              /* a joinable thread exists; under hw__park_lock */
static _Atomic int hw__ctl_parked;       /* under hw__park_lock */
static _Atomic pid_t hw__ctl_kernel_tid; /* the last thread's tid, kept after it ends */
static uint64_t hw__next_status, hw__next_rebind; /* kept across a park */
static pthread_mutex_t hw__park_lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t hw__mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void hw__on_sigusr2(int sig, siginfo_t *info, void *uctx) {
  (void)sig;
  (void)uctx;
  int saved = errno;
  pid_t tid = HW_RELAXED(hw__control_tid);
  pid_t self = (pid_t)syscall(SYS_gettid);
  /* Our own wake-up of the control thread is not a second request. */
  int wakeup = self == tid && info && info->si_code == SI_TKILL && info->si_pid == getpid();
  if (!wakeup && !HW_RELAXED(hw__in_child)) {
    atomic_fetch_add_explicit(&hw__sig_pending, 1, memory_order_relaxed);
    if (tid > 0 && self != tid) syscall(SYS_tgkill, getpid(), tid, SIGUSR2);
  }
  errno = saved;
}

/* Our handler is still the one installed (the program may have replaced it). */
static int hw__sigusr2_is_ours(void) {
  struct sigaction cur;
  return hw__sig_installed && sigaction(SIGUSR2, NULL, &cur) == 0 && (cur.sa_flags & SA_SIGINFO) &&
         cur.sa_sigaction == hw__on_sigusr2;
}

static void hw__conn_drop(hw_conn *c) {
  hw__own_close(&c->fd);
  c->got = 0;
}

void hw__control_close_in_child(void) {
  hw__own_close(&hw__listen);
  for (int i = 0; i < hw__conn_used; i++) hw__conn_drop(&hw__conns[i]);
  HW_SET_RELAXED(hw__control_tid, 0);
  hw__own_close(&hw__wake_rd);
  hw__own_close(&hw__wake_wr);
  /* The thread did not survive the fork; the parent may have held the lock. */
  pthread_mutex_init(&hw__park_lock, NULL);
  hw__ctl_running = 0;
  HW_SET_RELAXED(hw__ctl_parked, 0);
  HW_SET_RELAXED(hw__ctl_stop, 0);
  HW_SET_RELAXED(hw__fork_watch, 0);
  /* A forked child dies of SIGUSR2 as it would have without us. */
  if (hw__sigusr2_is_ours()) signal(SIGUSR2, SIG_DFL);
}

static void hw__reply(hw_ownfd *fd, const char *a, const char *b) {
  char line[800];
  int n = snprintf(line, sizeof line, "%s%s\n", a, b ? b : "");
  if (n > 0 && hw__own_check(fd)) {
    ssize_t w = send(fd->fd, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1,
                     MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)w;
  }
}

static int hw__peer_allowed(hw_ownfd *fd) {
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (!hw__own_check(fd) || getsockopt(fd->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return 0;
  if (cred.uid == geteuid()) return 1;
  return hw__config.control_uid >= 0 && cred.uid == (uid_t)hw__config.control_uid;
}

/* Answers one complete line and closes the connection. */
static void hw__serve_line(hw_conn *c, const char *line, size_t len) {
  hw_command cmd;
  hw__parse_command(line, len, &cmd);
  char path[700];
  switch (cmd.cmd) {
  case HW_CMD_PING: {
    char pid[32];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    hw__reply(&c->fd, "ok highwater 1 ", pid);
    break;
  }
  case HW_CMD_DUMP: {
    int rc = hw__dump(NULL, "request", 0, HW_SNAP_PEAK | HW_SNAP_CURRENT, 0, HW_NODE_NONE, path,
                      sizeof path);
    if (rc == 0) hw__reply(&c->fd, "ok ", path);
    else hw__reply(&c->fd, "error dump-failed ", strerror(-rc));
    break;
  }
  case HW_CMD_FLOOR:
    hw__guard_set_floor(cmd.floor);
    hw__reply(&c->fd, "ok", NULL);
    break;
  case HW_CMD_OOM:
    hw__reply(&c->fd, "ok ", "exiting");
    hw__conn_drop(c);
    hw__oom_exit(cmd.reason, 0, HW_NODE_NONE);
  case HW_CMD_CONTAINER_OOM: /* another process tripped: stop the container (container.c) */
    if (!hw__container_oom_set()) {
      hw__reply(&c->fd, "error ", "no-oom");
      break;
    }
    hw__reply(&c->fd, "ok ", "stopping");
    hw__conn_drop(c);
    hw__container_stop_all();
  default: hw__reply(&c->fd, "error ", cmd.error); break;
  }
  hw__conn_drop(c);
}

/* Reads what the client sent so far; serves the line once it is whole. */
static void hw__conn_read(hw_conn *c) {
  for (;;) {
    if (!hw__own_check(&c->fd)) {
      c->got = 0; /* the program closed it: not ours to answer or close */
      return;
    }
    ssize_t n = recv(c->fd.fd, c->buf + c->got, HW_CMD_LINE_MAX - c->got, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return; /* wait for more */
    if (n <= 0) {
      hw__conn_drop(c); /* closed before a whole line */
      return;
    }
    char *nl = memchr(c->buf + c->got, '\n', (size_t)n);
    c->got += (size_t)n;
    if (nl) {
      hw__serve_line(c, c->buf, (size_t)(nl - c->buf));
      return;
    }
    if (c->got >= HW_CMD_LINE_MAX) { /* longer than the protocol allows */
      hw__reply(&c->fd, "error bad-line", NULL);
      hw__conn_drop(c);
      return;
    }
  }
}

/* A free slot, or the oldest one if it had its grace; NULL: all too new. */
static hw_conn *hw__conn_slot(uint64_t now) {
  hw_conn *oldest = NULL;
  for (int i = 0; i < hw__conn_used && i < hw__conn_cap; i++) {
    hw_conn *c = &hw__conns[i];
    if (c->fd.fd < 0) return c; /* no fstat here: each use re-verifies */
    if (!oldest || c->deadline < oldest->deadline) oldest = c;
  }
  if (hw__conn_used < hw__conn_cap) { /* a slot never used before */
    hw_conn *c = &hw__conns[hw__conn_used++];
    c->fd = (hw_ownfd){-1, 0, 0, 0};
    c->got = 0;
    return c;
  }
  if (oldest->deadline + HW_CONN_GRACE_MS > now + HW_CONN_DEADLINE_MS) return NULL;
  /* Full of clients that said nothing in time: the oldest makes room. */
  hw__reply(&oldest->fd, "error busy", NULL);
  hw__conn_drop(oldest);
  return oldest;
}

static int hw__accept_blocked; /* slots all too new: the backlog waits a grace period */
/* The program is out of fds (EMFILE): the backlog waits, no busy poll. */
static uint64_t hw__accept_pause_until;
#define HW_ACCEPT_PAUSE_MS 100

static void hw__accept_some(uint64_t now) {
  hw__accept_blocked = 0;
  for (int i = 0; i < HW_ACCEPT_BATCH; i++) {
    if (!hw__own_check(&hw__listen)) return;
    hw_conn *c = hw__conn_slot(now);
    if (!c) {
      hw__accept_blocked = 1;
      return;
    }
    int fd = accept4(hw__listen.fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
        hw__accept_pause_until = now + HW_ACCEPT_PAUSE_MS; /* the rest wait in the backlog */
      return;
    }
    hw_ownfd own;
    if (hw__own_adopt(&own, fd) != 0) continue;
    if (!hw__peer_allowed(&own)) {
      hw__reply(&own, "error forbidden", NULL);
      hw__own_close(&own);
      continue;
    }
    c->fd = own;
    c->got = 0;
    c->deadline = now + HW_CONN_DEADLINE_MS;
    hw__conn_read(c); /* most clients sent their line with the connect */
  }
}

/* A fresh listening socket at hw__sock_path; replaces (and closes, when still
 * ours) the previous one only once the new one listens. */
static int hw__listen_open(void) {
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  memcpy(addr.sun_path, hw__sock_path, sizeof addr.sun_path);
  unlink(hw__sock_path); /* our name in our run dir: a stale file, ours or planted */
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  hw_ownfd own;
  if (fd < 0 || hw__own_adopt(&own, fd) != 0) return -1;
  hw__own_move_high(&own);
  fd = own.fd;
  /* The socket file takes the socket inode's mode (less the umask) at bind:
   * set it on the fd, never through umask(), which is process-wide and would
   * change the mode of files the program's threads create meanwhile. */
  fchmod(fd, 0600);
  int rc = bind(fd, (struct sockaddr *)&addr, sizeof addr);
  struct stat st;
  if (rc != 0 || listen(fd, HW_BACKLOG) != 0 || lstat(hw__sock_path, &st) != 0) {
    int e = errno;
    hw__own_close(&own);
    errno = e;
    return -1;
  }
  if (hw__config.control_uid >= 0) chmod(hw__sock_path, 0666); /* peer uid still checked */
  hw__own_close(&hw__listen);
  hw__listen = own;
  hw__sock_file_dev = (uint64_t)st.st_dev;
  hw__sock_file_ino = (uint64_t)st.st_ino;
  return 0;
}

/* The socket is still reachable: our fd, and our inode at the path. */
static int hw__listen_intact(void) {
  struct stat st;
  return hw__own_check(&hw__listen) && lstat(hw__sock_path, &st) == 0 &&
         (uint64_t)st.st_dev == hw__sock_file_dev && (uint64_t)st.st_ino == hw__sock_file_ino;
}

static void hw__signal_dump(void) {
  char path[700];
  int rc = hw__dump(NULL, "signal", 0, HW_SNAP_PEAK, 0, HW_NODE_NONE, path, sizeof path);
  if (rc == 0) hw__log("SIGUSR2: peak so far written to %s", path);
  else hw__log("SIGUSR2: could not write a dump in %s: %s", hw__config.run_dir, strerror(-rc));
}

static void hw__wake_drain(void) {
  char buf[64];
  while (hw__own_check(&hw__wake_rd) && read(hw__wake_rd.fd, buf, sizeof buf) > 0) {}
}

static void *hw__control_main(void *arg) {
  (void)arg;
  hw__thread.guard = 1; /* nothing this thread allocates is the program's */
  sigset_t all, wait_mask;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);
  sigfillset(&wait_mask);
  sigdelset(&wait_mask, SIGUSR2);
  HW_SET_RELAXED(hw__control_tid, (pid_t)syscall(SYS_gettid));
  HW_SET_RELAXED(hw__ctl_kernel_tid, HW_RELAXED(hw__control_tid));
  struct pollfd p[2 + HW_CONN_MAX];
  int slot_of[2 + HW_CONN_MAX];
  for (;;) {
    if (HW_RELAXED(hw__in_child)) return NULL;
    if (atomic_load_explicit(&hw__ctl_stop, memory_order_acquire)) break; /* parked */
    uint64_t now = hw__mono_ms();
    if (now >= hw__next_status) {
      hw_readings_t r;
      hw__read_memory(&r);
      hw__killsnap_check(); /* what we hold when the kernel's OOM killer strikes */
      hw__publish_readings(&r);
      hw__next_status = now + HW_STATUS_PERIOD_MS;
      hw__container_tick();         /* slots of processes that died without leaving */
      hw__chunks_watch_switchers(); /* greenlet: the walk's proof stops (datastack.c) */
      if (!hw__listen_intact() && now >= hw__next_rebind) {
        if (hw__listen_open() != 0)
          hw__debug("control socket %s lost; cannot re-create it: %s", hw__sock_path,
                    strerror(errno));
        hw__next_rebind = now + HW_REBIND_PERIOD_MS;
      }
    }
    if (atomic_exchange_explicit(&hw__sig_pending, 0, memory_order_acq_rel)) hw__signal_dump();

    int n = 0;
    uint64_t wake = hw__next_status;
    if (hw__wake_rd.fd >= 0) { /* a park request ends the wait at once */
      p[n] = (struct pollfd){hw__wake_rd.fd, POLLIN, 0};
      slot_of[n++] = -2;
    }
    if (hw__accept_blocked) hw__accept_some(now);
    if (hw__accept_blocked && now + HW_CONN_GRACE_MS < wake) wake = now + HW_CONN_GRACE_MS;
    /* poll itself has no effect on an fd; each use below re-verifies it, so a
     * number the program took over leaves the set at its first event. */
    int paused = now < hw__accept_pause_until;
    if (paused && hw__accept_pause_until < wake) wake = hw__accept_pause_until;
    if (hw__listen.fd >= 0 && !hw__accept_blocked && !paused) {
      p[n] = (struct pollfd){hw__listen.fd, POLLIN, 0};
      slot_of[n++] = -1;
    }
    for (int i = 0; i < hw__conn_used; i++) {
      hw_conn *c = &hw__conns[i];
      if (c->fd.fd < 0) continue;
      if (now >= c->deadline) {
        hw__reply(&c->fd, "error bad-line", NULL); /* no whole line in time */
        hw__conn_drop(c);
        continue;
      }
      if (c->deadline < wake) wake = c->deadline;
      p[n] = (struct pollfd){c->fd.fd, POLLIN, 0};
      slot_of[n++] = i;
    }
    uint64_t ms = wake > now ? wake - now : 0;
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    /* SIGUSR2 interrupts the wait, but only while the handler is ours: a
     * program that took SIGUSR2 over never has it delivered here. */
    int got = ppoll(p, (nfds_t)n, &ts, hw__sigusr2_is_ours() ? &wait_mask : &all);
    if (got <= 0) continue;
    now = hw__mono_ms();
    for (int k = 0; k < n; k++) {
      if (!p[k].revents) continue;
      if (slot_of[k] == -2) hw__wake_drain();
      else if (slot_of[k] < 0) hw__accept_some(now);
      else if (hw__conns[slot_of[k]].fd.fd == p[k].fd) hw__conn_read(&hw__conns[slot_of[k]]);
    }
  }
  /* No SIGUSR2 is forwarded to a tid that is going away; one that comes
   * meanwhile is counted and served after the restart. */
  HW_SET_RELAXED(hw__control_tid, 0);
  return NULL;
}

static int hw__control_spawn(void);

int hw__control_start(void) {
  hw__conn_used = 0; /* none open: first start, or a forked child after close_in_child */
  hw__next_status = hw__next_rebind = 0; /* a forked child's first readings come at once */
  struct rlimit nofile;
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY &&
      nofile.rlim_cur / 4 < HW_CONN_MAX)
    hw__conn_cap = nofile.rlim_cur / 4 > 8 ? (int)(nofile.rlim_cur / 4) : 8;
  int n = snprintf(hw__sock_path, sizeof hw__sock_path, "%s/hw-%d.sock", hw__config.run_dir,
                   (int)getpid());
  if (n <= 0 || (size_t)n >= sizeof hw__sock_path) {
    hw__log("run dir path too long for a control socket; control channel off");
    return -1;
  }
  if (hw__listen_open() != 0) {
    hw__log("cannot listen on %s: %s; control channel off", hw__sock_path, strerror(errno));
    return -1;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = hw__on_sigusr2;
  sa.sa_flags = SA_RESTART | SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  struct sigaction prev;
  /* Only the root takes SIGUSR2: a tracked child (a pool worker) dies of it
   * as it would without highwater; its dumps go through the socket. */
  int child = hw__state.hdr && hw__state.hdr->origin > HW_ORIGIN_ROOT;
  if (!child && sigaction(SIGUSR2, NULL, &prev) == 0 && !(prev.sa_flags & SA_SIGINFO) &&
      prev.sa_handler == SIG_DFL && sigaction(SIGUSR2, &sa, NULL) == 0)
    hw__sig_installed = 1;
  pthread_mutex_lock(&hw__park_lock);
  int rc = hw__control_spawn();
  pthread_mutex_unlock(&hw__park_lock);
  if (rc != 0) {
    hw__log("cannot start the control thread; control channel off");
    return -1;
  }
  return 0;
}

/*
 * Parking, around a Python-level os.fork() (CPython 3.12+ warns about a
 * "multi-threaded" fork when /proc/self/stat counts more than one thread in
 * the parent right after fork() returns; our thread must not be counted).
 * The bootstrap's os.register_at_fork(before=...) parks the thread; it is
 * started again once CPython has counted: at the fclose() of the
 * /proc/self/stat it read (or the failed fopen(): then it counted Python
 * threads only), whichever of that and the after_in_parent hook comes last
 * (3.12 counts before that hook, 3.13 after it). init.c interposes fopen and
 * fclose for this, and does nothing more to them.
 *
 * The joining side never holds a lock the thread could wait for (it may be
 * inside a dump holding hw__lock: the join waits for the dump). pthread_join
 * returns when the thread's tid futex is cleared, which the kernel does
 * before it stops counting the thread (release_task): we wait, bounded, for
 * the tid itself to be gone.
 */
_Atomic int hw__fork_watch; /* parked: init.c watches /proc/self/stat */
static _Atomic int hw__fork_counted, hw__fork_after_parent;

/* The wake pipe, made again when the program closed or took over an end. */
static void hw__wake_open(void) {
  if (hw__own_check(&hw__wake_rd) && hw__own_check(&hw__wake_wr)) return;
  hw__own_close(&hw__wake_rd);
  hw__own_close(&hw__wake_wr);
  int wake[2];
  if (pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0) return; /* parks then wait for a tick */
  if (hw__own_adopt(&hw__wake_rd, wake[0]) != 0) close(wake[0]);
  if (hw__own_adopt(&hw__wake_wr, wake[1]) != 0) close(wake[1]);
  hw__own_move_high(&hw__wake_rd);
  hw__own_move_high(&hw__wake_wr);
}

/* hw__park_lock held. */
static int hw__control_spawn(void) {
  hw__wake_open();
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  atomic_store_explicit(&hw__ctl_stop, 0, memory_order_release);
  /* The thread starts with every signal blocked: none of the program's
   * signals may run its handler on our thread before it blocks them. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int rc = hw__real_pthread_create(&hw__ctl_thread, &attr, hw__control_main, NULL);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&attr);
  hw__ctl_running = rc == 0;
  return rc;
}

#define HW_GONE_WAIT_NS (50 * 1000000L) /* a thread that exited is gone in µs */

/* Waits until the kernel no longer has `tid` in our thread group. */
static void hw__wait_thread_gone(pid_t tid) {
  struct timespec start, now, nap = {0, 20000};
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (int spin = 0; tid > 0; spin++) {
    if (syscall(SYS_tgkill, getpid(), tid, 0) != 0 && errno == ESRCH) return;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if ((now.tv_sec - start.tv_sec) * 1000000000L + (now.tv_nsec - start.tv_nsec) > HW_GONE_WAIT_NS)
      return;
    if (spin < 64) sched_yield();
    else nanosleep(&nap, NULL);
  }
}

void hw__control_park(void) {
  if (HW_RELAXED(hw__in_child)) return;
  pthread_mutex_lock(&hw__park_lock);
  if (hw__ctl_running) {
    atomic_store_explicit(&hw__ctl_stop, 1, memory_order_release);
    if (hw__own_check(&hw__wake_wr)) {
      char b = 1;
      ssize_t w = write(hw__wake_wr.fd, &b, 1); /* full pipe: a wake-up is pending anyway */
      (void)w;
    }
    /* Without the pipe (the program closed it) the thread sees the stop at
     * its next tick, at most HW_STATUS_PERIOD_MS later. */
    pthread_join(hw__ctl_thread, NULL);
    hw__ctl_running = 0;
    hw__wait_thread_gone(HW_RELAXED(hw__ctl_kernel_tid));
    HW_SET_RELAXED(hw__ctl_parked, 1);
    HW_SET_RELAXED(hw__fork_counted, 0);
    HW_SET_RELAXED(hw__fork_after_parent, 0);
    HW_SET_RELAXED(hw__fork_watch, 1);
  }
  pthread_mutex_unlock(&hw__park_lock);
}

static void hw__control_resume(void) {
  pthread_mutex_lock(&hw__park_lock);
  if (HW_RELAXED(hw__ctl_parked) && !HW_RELAXED(hw__in_child)) {
    HW_SET_RELAXED(hw__fork_watch, 0);
    HW_SET_RELAXED(hw__ctl_parked, 0);
    if (hw__control_spawn() != 0)
      hw__log("cannot restart the control thread after a fork; control channel off");
  }
  pthread_mutex_unlock(&hw__park_lock);
}

/* CPython has read the thread count (or could not: it then counts Python
 * threads only, never ours). */
void hw__control_fork_counted(void) {
  HW_SET_RELAXED(hw__fork_counted, 1);
  if (HW_RELAXED(hw__fork_after_parent)) hw__control_resume();
}

/* The after_in_parent hook: also after a failed fork(). */
void hw__control_fork_parent(void) {
  HW_SET_RELAXED(hw__fork_after_parent, 1);
  if (HW_RELAXED(hw__fork_counted)) hw__control_resume();
}
