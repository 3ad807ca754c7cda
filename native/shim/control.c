/*
 * The control channel: a unix stream socket in the run dir, served by one
 * thread that also turns SIGUSR2 into a dump and refreshes the published
 * readings. Commands are single bounded lines from peers with our own uid
 * (or HIGHWATER_CONTROL_UID), checked with SO_PEERCRED. The thread never
 * touches the interpreter.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "hw.h"

#define HW_STATUS_PERIOD_MS 250

static int hw__listen_fd = -1;
static int hw__sig_pipe[2] = {-1, -1};
static char hw__sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];

static void hw__on_sigusr2(int sig) {
  (void)sig;
  int saved = errno;
  if (hw__sig_pipe[1] >= 0) {
    ssize_t n = write(hw__sig_pipe[1], "u", 1);
    (void)n;
  }
  errno = saved;
}

void hw__control_close_in_child(void) {
  if (hw__listen_fd >= 0) close(hw__listen_fd);
  if (hw__sig_pipe[0] >= 0) close(hw__sig_pipe[0]);
  if (hw__sig_pipe[1] >= 0) close(hw__sig_pipe[1]);
  hw__listen_fd = hw__sig_pipe[0] = hw__sig_pipe[1] = -1;
}

static void hw__reply(int fd, const char *a, const char *b) {
  char line[800];
  int n = snprintf(line, sizeof line, "%s%s\n", a, b ? b : "");
  if (n > 0) {
    ssize_t w = send(fd, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1, MSG_NOSIGNAL);
    (void)w;
  }
}

static int hw__read_line(int fd, char *buf, size_t cap) {
  size_t got = 0;
  uint64_t deadline = hw__now_ms() + 1000;
  while (got < cap - 1) {
    uint64_t now = hw__now_ms();
    if (now >= deadline) return -1;
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, (int)(deadline - now)) <= 0) return -1;
    ssize_t n = recv(fd, buf + got, cap - 1 - got, 0);
    if (n <= 0) return -1;
    got += (size_t)n;
    buf[got] = '\0';
    char *nl = memchr(buf, '\n', got);
    if (nl) {
      *nl = '\0';
      return 0;
    }
  }
  return -1; /* longer than the protocol allows */
}

static int hw__peer_allowed(int fd) {
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return 0;
  if (cred.uid == geteuid()) return 1;
  return hw__config.control_uid >= 0 && cred.uid == (uid_t)hw__config.control_uid;
}

static int hw__reason_code(const char *s) {
  if (strcmp(s, "low-available") == 0) return 1;
  if (strcmp(s, "swap") == 0) return 2;
  if (strcmp(s, "failed-allocation") == 0) return 3;
  return 0;
}

static void hw__serve(int fd) {
  char line[257];
  if (!hw__peer_allowed(fd)) {
    hw__reply(fd, "error forbidden", NULL);
    return;
  }
  if (hw__read_line(fd, line, sizeof line) != 0) {
    hw__reply(fd, "error bad-line", NULL);
    return;
  }
  char path[700];
  if (strcmp(line, "ping") == 0) {
    char pid[32];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    hw__reply(fd, "ok highwater 1 ", pid);
  } else if (strcmp(line, "dump") == 0) {
    int rc = hw__dump(NULL, "request", 0, HW_SNAP_PEAK | HW_SNAP_CURRENT, 0, HW_NODE_NONE, path,
                      sizeof path);
    if (rc == 0) hw__reply(fd, "ok ", path);
    else hw__reply(fd, "error dump-failed ", strerror(-rc));
  } else if (strncmp(line, "floor ", 6) == 0) {
    uint64_t v;
    if (hw__parse_u64(line + 6, &v) != 0) {
      hw__reply(fd, "error bad-argument", NULL);
      return;
    }
    hw__guard_set_floor(v);
    hw__reply(fd, "ok", NULL);
  } else if (strncmp(line, "oom ", 4) == 0) {
    int reason = hw__reason_code(line + 4);
    if (!reason) {
      hw__reply(fd, "error bad-argument", NULL);
      return;
    }
    hw__reply(fd, "ok ", "exiting");
    close(fd);
    hw__oom_exit(reason, 0, HW_NODE_NONE);
  } else {
    hw__reply(fd, "error unknown-command", NULL);
  }
}

static void *hw__control_main(void *arg) {
  (void)arg;
  hw__thread.guard = 1; /* nothing this thread allocates is the program's */
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);
  uint64_t next_status = 0;
  for (;;) {
    struct pollfd p[2] = {{hw__listen_fd, POLLIN, 0}, {hw__sig_pipe[0], POLLIN, 0}};
    int n = poll(p, 2, HW_STATUS_PERIOD_MS);
    if (hw__in_child) return NULL;
    uint64_t now = hw__now_ms();
    if (now >= next_status) {
      hw_readings_t r;
      hw__read_memory(&r);
      hw__publish_readings(&r);
      next_status = now + HW_STATUS_PERIOD_MS;
    }
    if (n <= 0) continue;
    if (p[1].revents & POLLIN) {
      char drain[16];
      ssize_t k = read(hw__sig_pipe[0], drain, sizeof drain);
      (void)k;
      char path[700];
      int rc = hw__dump(NULL, "signal", 0, HW_SNAP_PEAK, 0, HW_NODE_NONE, path, sizeof path);
      if (rc == 0) hw__log("SIGUSR2: peak so far written to %s", path);
      else hw__log("SIGUSR2: could not write a dump in %s: %s", hw__config.run_dir, strerror(-rc));
    }
    if (p[0].revents & POLLIN) {
      int fd = accept4(hw__listen_fd, NULL, NULL, SOCK_CLOEXEC);
      if (fd >= 0) {
        hw__serve(fd);
        close(fd);
      }
    }
  }
  return NULL;
}

int hw__control_start(void) {
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  int n = snprintf(addr.sun_path, sizeof addr.sun_path, "%s/hw-%d.sock", hw__config.run_dir,
                   (int)getpid());
  if (n <= 0 || (size_t)n >= sizeof addr.sun_path) {
    hw__log("run dir path too long for a control socket; control channel off");
    return -1;
  }
  strcpy(hw__sock_path, addr.sun_path);
  unlink(hw__sock_path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  mode_t old = umask(0177);
  int rc = bind(fd, (struct sockaddr *)&addr, sizeof addr);
  umask(old);
  if (rc != 0 || listen(fd, 8) != 0) {
    hw__log("cannot listen on %s: %s; control channel off", hw__sock_path, strerror(errno));
    close(fd);
    return -1;
  }
  if (hw__config.control_uid >= 0) chmod(hw__sock_path, 0666); /* peer uid still checked */
  if (pipe2(hw__sig_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
    close(fd);
    return -1;
  }
  hw__listen_fd = fd;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = hw__on_sigusr2;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  struct sigaction prev;
  if (sigaction(SIGUSR2, NULL, &prev) == 0 && prev.sa_handler == SIG_DFL)
    sigaction(SIGUSR2, &sa, NULL);
  pthread_t th;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  rc = hw__real_pthread_create(&th, &attr, hw__control_main, NULL);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    hw__log("cannot start the control thread; control channel off");
    return -1;
  }
  return 0;
}
