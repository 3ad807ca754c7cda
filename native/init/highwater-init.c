/*
 * highwater-init: PID 1 of a container running a Python workload under highwater.
 *
 *   highwater-init [--] cmd [args...]
 *
 * Sets the environment the preload shim and the Python bootstrap need
 * (LD_PRELOAD, PYTHONPATH, HIGHWATER_RUN_DIR), starts the
 * command, forwards signals to it, reaps every zombie, and exits with the
 * command's status (128 + N when signal N killed it). With HIGHWATER_WATCH=1
 * and a full bundle it also runs `highwater watch` beside the command
 * (single-container mode). See docs/docker.md.
 *
 * highwater-init --exec-from-fd IN [--status-fd OUT] is another job: exec a
 * command whose argv and environment arrive as bytes on fd IN (how
 * `highwater run` passes arguments that are not UTF-8 through unchanged).
 *
 * The bundle is the directory above the one holding this binary
 * (/opt/highwater/bin/highwater-init -> /opt/highwater), or $HIGHWATER_HOME.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define HW_INIT_VERSION "0.1.0"
#define HW__DEFAULT_RUN_DIR "/tmp/highwater-run"
#define HW__DEFAULT_OUTPUT "/reports"
#define HW__DEFAULT_WATCH_GRACE 10
/* The watcher is not stopped before it has run this long: Node needs a moment
 * (about 0.2 s in a container, more under load) before it can catch SIGTERM,
 * and a job can end sooner than that. */
#define HW__WATCH_MIN_AGE 1.5

/* Signals passed on to the command. */
#define HW__FORWARDED(X) X(SIGTERM) X(SIGINT) X(SIGHUP) X(SIGUSR1) X(SIGUSR2) X(SIGQUIT) X(SIGWINCH)

/* Thread-pool defaults lowered to 1 (unless the user set them) only with
 * HIGHWATER_LIMIT_THREADS=1: in a container highwater must not change the
 * job's parallelism. Defaults only, never caps (no NUMEXPR_MAX_THREADS): the
 * program can still ask for more threads later. */
static const char *const hw__thread_vars[] = {
    "OMP_NUM_THREADS",     "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS", "BLOSC_NTHREADS",       NULL,
};

static void hw__log(const char *fmt, ...) {
  char buf[1024];
  int n = snprintf(buf, sizeof buf, "highwater-init: ");
  va_list ap;
  va_start(ap, fmt);
  n += vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
  va_end(ap);
  if (n > (int)sizeof buf - 2) n = (int)sizeof buf - 2;
  buf[n++] = '\n';
  ssize_t w = write(STDERR_FILENO, buf, (size_t)n);
  (void)w;
}

static int hw__is_file(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int hw__env_true(const char *name) {
  const char *v = getenv(name);
  return v && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0 || strcmp(v, "yes") == 0);
}

/* Bundle directory: $HIGHWATER_HOME, else dirname(dirname(/proc/self/exe)). */
static int hw__bundle_dir(char *out, size_t size) {
  const char *home = getenv("HIGHWATER_HOME");
  if (home && *home) {
    if (strlen(home) >= size) return -1;
    strcpy(out, home);
  } else {
    ssize_t n = readlink("/proc/self/exe", out, size - 1);
    if (n <= 0) return -1;
    out[n] = '\0';
    for (int i = 0; i < 2; i++) {
      char *slash = strrchr(out, '/');
      if (!slash) return -1;
      if (slash == out) slash[1] = '\0';
      else *slash = '\0';
    }
  }
  size_t len = strlen(out);
  while (len > 1 && out[len - 1] == '/') out[--len] = '\0';
  return 0;
}

/* mkdir -p with mode 0700 for the directories it creates. */
static int hw__mkdirs(const char *path) {
  char buf[PATH_MAX];
  if (strlen(path) >= sizeof buf) {
    errno = ENAMETOOLONG;
    return -1;
  }
  strcpy(buf, path);
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(buf, 0700) != 0 && errno != EEXIST) return -1;
    *p = '/';
  }
  if (mkdir(buf, 0700) != 0 && errno != EEXIST) return -1;
  struct stat st;
  if (stat(buf, &st) != 0) return -1;
  if (!S_ISDIR(st.st_mode)) {
    errno = ENOTDIR;
    return -1;
  }
  return 0;
}

/* Does the colon/space separated list contain item? */
static int hw__list_has(const char *list, const char *item) {
  size_t il = strlen(item);
  for (const char *p = list; *p;) {
    size_t n = strcspn(p, ": ");
    if (n == il && strncmp(p, item, n) == 0) return 1;
    p += n;
    if (*p) p++;
  }
  return 0;
}

static void hw__setenv_joined(const char *name, const char *a, const char *b, const char *old) {
  size_t len = strlen(a) + (b ? strlen(b) + 1 : 0) + (old && *old ? strlen(old) + 1 : 0) + 1;
  char *v = malloc(len);
  if (!v) return;
  strcpy(v, a);
  if (b) {
    strcat(v, ":");
    strcat(v, b);
  }
  if (old && *old) {
    strcat(v, ":");
    strcat(v, old);
  }
  setenv(name, v, 1);
  free(v);
}

/* The environment of the command (the watcher gets the original one). */
static void hw__inject_env(const char *bundle) {
  char shim[PATH_MAX], boot[PATH_MAX], pylib[PATH_MAX];
  snprintf(shim, sizeof shim, "%s/lib/libhighwater.so", bundle);
  snprintf(boot, sizeof boot, "%s/python/bootstrap", bundle);
  snprintf(pylib, sizeof pylib, "%s/python", bundle);

  const char *old = getenv("LD_PRELOAD");
  if (!hw__is_file(shim)) {
    hw__log("%s not found; running without the shim", shim);
  } else if (!old || !hw__list_has(old, shim)) {
    setenv("HIGHWATER_ORIG_LD_PRELOAD", old ? old : "", 1);
    hw__setenv_joined("LD_PRELOAD", shim, NULL, old);
  }

  const char *oldpp = getenv("PYTHONPATH");
  if (!oldpp || !hw__list_has(oldpp, boot)) hw__setenv_joined("PYTHONPATH", boot, pylib, oldpp);

  if (hw__env_true("HIGHWATER_LIMIT_THREADS"))
    for (const char *const *v = hw__thread_vars; *v; v++) setenv(*v, "1", 0);
}

/*
 * A libc the shim cannot serve. The shim is built against glibc; preloaded
 * into a musl program (Alpine) the musl loader refuses it and every process
 * dies at start. So before touching LD_PRELOAD: the program interpreter of
 * the command (PT_INTERP of its ELF file, found on PATH) decides; for a
 * script or a static binary, the system's loaders do (a musl loader and no
 * glibc one). HIGHWATER_LIBC_ROOT (tests only) points the check at a
 * fixture tree instead of /. Returns 1 and says why in `why` for musl.
 */
static int hw__elf_interp(const char *path, char *out, size_t size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return -1;
  unsigned char eh[64];
  int rc = -1;
  if (read(fd, eh, sizeof eh) == (ssize_t)sizeof eh && memcmp(eh, "\177ELF", 4) == 0 &&
      eh[4] == 2 /* 64-bit */) {
    uint64_t phoff;
    uint16_t phentsize, phnum;
    memcpy(&phoff, eh + 32, 8);
    memcpy(&phentsize, eh + 54, 2);
    memcpy(&phnum, eh + 56, 2);
    rc = 0; /* ELF without an interpreter: static */
    for (uint16_t i = 0; i < phnum && i < 256 && phentsize >= 56; i++) {
      unsigned char ph[56];
      if (pread(fd, ph, sizeof ph, (off_t)(phoff + (uint64_t)i * phentsize)) != (ssize_t)sizeof ph)
        break;
      uint32_t type;
      uint64_t off, filesz;
      memcpy(&type, ph, 4);
      memcpy(&off, ph + 8, 8);
      memcpy(&filesz, ph + 32, 8);
      if (type != 3 /* PT_INTERP */) continue;
      size_t n = filesz < size ? (size_t)filesz : size - 1;
      ssize_t got = pread(fd, out, n, (off_t)off);
      if (got <= 0) break;
      out[got < (ssize_t)size ? got : (ssize_t)size - 1] = '\0';
      rc = 1;
      break;
    }
  }
  close(fd);
  return rc;
}

static int hw__find_on_path(const char *root, const char *cmd, char *out, size_t size) {
  if (strchr(cmd, '/')) {
    snprintf(out, size, "%s%s", root, cmd);
    return hw__is_file(out) ? 0 : -1;
  }
  const char *path = getenv("PATH");
  if (!path || !*path) path = "/usr/local/bin:/usr/bin:/bin";
  while (*path) {
    const char *end = strchr(path, ':');
    size_t len = end ? (size_t)(end - path) : strlen(path);
    snprintf(out, size, "%s%.*s/%s", root, (int)len, path, cmd);
    if (len && hw__is_file(out) && access(out, X_OK) == 0) return 0;
    path += len + (end ? 1 : 0);
  }
  return -1;
}

static int hw__has_entry(const char *dir, const char *prefix) {
  DIR *d = opendir(dir);
  if (!d) return 0;
  struct dirent *e;
  int found = 0;
  while (!found && (e = readdir(d)) != NULL)
    found = strncmp(e->d_name, prefix, strlen(prefix)) == 0;
  closedir(d);
  return found;
}

static int hw__libc_unsupported(const char *cmd, char *why, size_t size) {
  const char *root = getenv("HIGHWATER_LIBC_ROOT");
  if (!root) root = "";
  char path[PATH_MAX], interp[256];
  if (hw__find_on_path(root, cmd, path, sizeof path) == 0 &&
      hw__elf_interp(path, interp, sizeof interp) == 1) {
    if (strstr(interp, "ld-musl")) {
      snprintf(why, size, "%s is a musl program (interpreter %s)", cmd, interp);
      return 1;
    }
    return 0; /* glibc's ld-linux, or another loader we leave alone */
  }
  char lib[PATH_MAX], lib64[PATH_MAX];
  snprintf(lib, sizeof lib, "%s/lib", root);
  snprintf(lib64, sizeof lib64, "%s/lib64", root);
  if (hw__has_entry(lib, "ld-musl-") && !hw__has_entry(lib, "ld-linux") &&
      !hw__has_entry(lib64, "ld-linux")) {
    snprintf(why, size, "this image's C library is musl (%s/ld-musl-*, no glibc loader)", lib);
    return 1;
  }
  return 0;
}

/*
 * A command killed by SIGKILL is, in a container with a memory limit, most
 * likely the kernel's OOM killer having been faster than the shim's guard
 * (which would have exited 53 and written the termination message itself).
 * Say so in the Kubernetes termination message, only when the file exists,
 * is a regular file (no symlink followed, never created) and is still
 * empty: the shim's own message is never replaced.
 */
static void hw__termlog_killed(int status, const char *run_dir) {
  if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) return;
  const char *path = getenv("HIGHWATER_TERMINATION_LOG");
  if (!path || !*path) path = "/dev/termination-log";
  struct stat st;
  if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size != 0) return;
  int fd = open(path, O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) return;
  struct stat fst;
  if (fstat(fd, &fst) == 0 && S_ISREG(fst.st_mode) && fst.st_ino == st.st_ino && fst.st_size == 0) {
    char buf[1024];
    int n = snprintf(buf, sizeof buf,
                     "highwater: the command was killed by SIGKILL (exit 137), most likely by the "
                     "kernel's OOM killer "
                     "before highwater's guard could act\n"
                     "report: highwater watch renders a post-mortem from the state file in %s\n",
                     run_dir);
    if (n > 0) {
      ssize_t w = write(fd, buf, (size_t)(n < (int)sizeof buf ? n : (int)sizeof buf - 1));
      (void)w;
    }
  }
  close(fd);
}

/*
 * The container file (docs/protocol.md, "Multiple processes"): when any
 * tracked process tripped the OOM guard, the container ends with 53 whatever
 * the command's own status (a pool's parent exits 1 on BrokenProcessPool, or
 * 143 from the stop's SIGTERM). A previous run's file is removed at start so
 * its flag never leaks into this run.
 */
#define HW__CONTAINER_FILE "hw-container"
#define HW__CONTAINER_OOM_PID 192

static int hw__container_path(const char *run_dir, char *out, size_t cap) {
  int n = snprintf(out, cap, "%s/" HW__CONTAINER_FILE, run_dir);
  return n > 0 && (size_t)n < cap ? 0 : -1;
}

static void hw__container_remove_stale(const char *run_dir) {
  char path[PATH_MAX];
  if (hw__container_path(run_dir, path, sizeof path) == 0 && unlink(path) != 0 && errno != ENOENT)
    hw__log("cannot remove %s: %s", path, strerror(errno));
}

/* 1 when the container file says a tracked process ran out of memory. */
static int hw__container_oom(const char *run_dir) {
  char path[PATH_MAX];
  if (hw__container_path(run_dir, path, sizeof path) != 0) return 0;
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return 0;
  struct stat st;
  unsigned char buf[HW__CONTAINER_OOM_PID + 8];
  int oom = 0;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
      pread(fd, buf, sizeof buf, 0) == (ssize_t)sizeof buf && memcmp(buf, "HWCONT01", 8) == 0) {
    uint64_t pid = 0;
    for (int i = 7; i >= 0; i--)
      pid = pid << 8 | buf[HW__CONTAINER_OOM_PID + i]; /* little-endian */
    oom = pid != 0;
  }
  close(fd);
  return oom;
}

/*
 * A file of our own memory cgroup (the container's): v1 `v1file` or v2
 * `v2file`, at the standard mount point plus the path in /proc/self/cgroup,
 * or at the mount point itself when that does not exist (a container sees
 * its own cgroup mounted there). Returns the cgroup version (1 or 2) with
 * the path in `out`, or 0 when there is no memory cgroup to read.
 */
static int hw__memcg_file(const char *v1file, const char *v2file, char *out, size_t size) {
  FILE *f = fopen("/proc/self/cgroup", "re");
  if (!f) return 0;
  char line[PATH_MAX + 64], v1[PATH_MAX] = "", v2[PATH_MAX] = "";
  int have_v1 = 0, have_v2 = 0;
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = '\0';
    char *c1 = strchr(line, ':');
    char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c2) continue;
    *c2 = '\0';
    const char *ctrls = c1 + 1, *path = c2 + 1;
    if (strcmp(line, "0") == 0 && *ctrls == '\0' && strlen(path) < sizeof v2) {
      strcpy(v2, path);
      have_v2 = 1;
    }
    for (const char *t = ctrls; *t;) { /* "memory" among comma-separated controllers */
      size_t n = strcspn(t, ",");
      if (n == 6 && strncmp(t, "memory", 6) == 0 && strlen(path) < sizeof v1) {
        strcpy(v1, path);
        have_v1 = 1;
      }
      t += n + (t[n] == ',');
    }
  }
  fclose(f);
  if (!have_v1 && !have_v2) return 0;
  const char *mount = have_v1 ? "/sys/fs/cgroup/memory" : "/sys/fs/cgroup";
  const char *file = have_v1 ? v1file : v2file;
  const char *rel = have_v1 ? v1 : v2;
  struct stat st;
  snprintf(out, size, "%s%s/%s", mount, strcmp(rel, "/") == 0 ? "" : rel, file);
  if (stat(out, &st) != 0) snprintf(out, size, "%s/%s", mount, file);
  return have_v1 ? 1 : 2;
}

/* Reads a small regular file of the memory cgroup into buf (NUL-terminated); -1 on failure. */
static ssize_t hw__read_small(const char *path, char *buf, size_t size) {
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return -1;
  struct stat st;
  ssize_t n = (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) ? read(fd, buf, size - 1) : -1;
  close(fd);
  if (n < 0) return -1;
  buf[n] = '\0';
  return n;
}

/* The value of the line "<key> N" in a flat-keyed file's text; -1 when absent. */
static long long hw__keyed(const char *text, const char *key) {
  size_t kl = strlen(key);
  for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
    if (strncmp(l, key, kl) == 0 && l[kl] == ' ') return strtoll(l + kl + 1, NULL, 10);
  return -1;
}

/*
 * The kernel's OOM-kill count of our own memory cgroup: v2 memory.events or
 * v1 memory.oom_control, line "oom_kill N"; -1 when unknown. When it moved
 * while the command ran, the kernel's OOM killer ended a process of the
 * container (a pool worker, whose parent then exits 1 from
 * BrokenProcessPool): the container ends with 137, as `highwater run` does
 * (docs/multiprocess.md).
 */
static long long hw__oom_kill_count(void) {
  char path[2 * PATH_MAX], buf[4096];
  if (!hw__memcg_file("memory.oom_control", "memory.events", path, sizeof path)) return -1;
  if (hw__read_small(path, buf, sizeof buf) <= 0) return -1;
  return hw__keyed(buf, "oom_kill");
}

/*
 * The memory limit of our own cgroup in bytes, 0 when there is none (or it
 * is not below the machine's memory, so that it never decides an OOM kill).
 * v1: memory.stat's hierarchical_memory_limit (the smallest limit of the
 * cgroup and its ancestors), else memory.limit_in_bytes; v2: memory.max.
 */
static unsigned long long hw__memcg_limit(void) {
  char path[2 * PATH_MAX], buf[8192];
  long long limit = -1;
  int v = hw__memcg_file("memory.stat", "memory.max", path, sizeof path);
  if (v == 1 && hw__read_small(path, buf, sizeof buf) > 0)
    limit = hw__keyed(buf, "hierarchical_memory_limit");
  if (v == 1 && limit <= 0 && hw__memcg_file("memory.limit_in_bytes", "", path, sizeof path) &&
      hw__read_small(path, buf, sizeof buf) > 0)
    limit = strtoll(buf, NULL, 10);
  if (v == 2 && hw__read_small(path, buf, sizeof buf) > 0 && buf[0] >= '0' && buf[0] <= '9')
    limit = strtoll(buf, NULL, 10);
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  unsigned long long ram =
      pages > 0 && page > 0 ? (unsigned long long)pages * (unsigned long long)page : 0;
  if (limit <= 0 || (ram && (unsigned long long)limit >= ram)) return 0;
  return (unsigned long long)limit;
}

/*
 * Single-container mode and `highwater run` (whose CLI is the watcher): the
 * kernel's OOM killer must take the watcher last. In a memory cgroup OOM it kills the task with the
 * highest rss + swap + page tables (pages) + oom_score_adj * (totalpages / 1000) where totalpages
 * is the cgroup's limit (mm/oom_kill.c oom_badness). The watcher (Node, about 80 MB) is often
 * bigger than each of many small workers, or than a worker whose memory the kernel has not freed
 * yet after a first kill. Lowering the watcher's oom_score_adj below its starting value needs
 * CAP_SYS_RESOURCE (fs/proc/base.c __set_oom_adj), which a container does not have; raising is
 * always allowed and is inherited across fork and exec. So the command's is raised by delta, enough
 * for HW__WATCHER_BOUND bytes at this cgroup's limit: every workload process gets the same delta
 * (their order among themselves is unchanged) and outranks a watcher of up to that size.
 * HIGHWATER_OOM_SCORE_ADJ: auto (default), 0 (leave it alone), or the delta itself (1-1000).
 */
#define HW__WATCHER_BOUND (128ull << 20)

static int hw__oom_delta(void) {
  const char *v = getenv("HIGHWATER_OOM_SCORE_ADJ");
  if (v && *v && strcmp(v, "auto") != 0) {
    char *end;
    long n = strtol(v, &end, 10);
    if (!*end && n >= 0 && n <= 1000) return (int)n;
    hw__log("invalid HIGHWATER_OOM_SCORE_ADJ=%s (auto, or 0 to 1000), using auto", v);
  }
  unsigned long long limit = hw__memcg_limit();
  long page = sysconf(_SC_PAGESIZE);
  if (!limit || page <= 0) return 0;
  unsigned long long unit =
      limit / (unsigned long long)page / 1000; /* the kernel's totalpages / 1000 */
  unsigned long long bound = HW__WATCHER_BOUND / (unsigned long long)page;
  if (unit == 0) return 1000;
  unsigned long long delta = (bound + unit - 1) / unit;
  return delta > 1000 ? 1000 : (int)delta;
}

/* In the command's child before exec: raise our oom_score_adj by delta (at most to 1000). */
static void hw__raise_oom_score_adj(int delta) {
  if (delta <= 0) return;
  const char *path = "/proc/self/oom_score_adj";
  char buf[32];
  ssize_t n = hw__read_small(path, buf, sizeof buf);
  long adj = n > 0 ? strtol(buf, NULL, 10) + delta : 0;
  if (adj > 1000) adj = 1000;
  int fd = n > 0 ? open(path, O_WRONLY | O_CLOEXEC) : -1;
  int len = snprintf(buf, sizeof buf, "%ld", adj);
  if (fd < 0 || write(fd, buf, (size_t)len) != len)
    hw__log("cannot raise the command's oom_score_adj: %s", strerror(errno));
  if (fd >= 0) close(fd);
}

static int hw__exec_status(int err) { return err == ENOENT ? 127 : 126; }

static _Noreturn void hw__exec(char **argv) {
  execvp(argv[0], argv);
  int err = errno;
  hw__log("cannot run %s: %s", argv[0], strerror(err));
  _exit(hw__exec_status(err));
}

/*
 * --exec-from-fd IN [--status-fd OUT]: exec a command whose argv and
 * environment are read, as bytes, from fd IN (used by `highwater run`, whose
 * Node runtime cannot pass bytes that are not UTF-8 through unchanged). The
 * block is "<argc>\0" then argc NUL-terminated strings, then "<envc>\0" and
 * envc strings. Nothing is added or re-encoded. If the exec fails, its errno
 * (a native int) is written to OUT, which is close-on-exec: a successful exec
 * closes it with nothing written.
 */
#define HW__EXEC_BLOCK_MAX (64u << 20)

static char *hw__read_all(int fd, size_t *len) {
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  if (!buf) return NULL;
  for (;;) {
    if (n == cap) {
      char *bigger = cap < HW__EXEC_BLOCK_MAX ? realloc(buf, cap * 2) : NULL;
      if (!bigger) {
        free(buf);
        errno = E2BIG;
        return NULL;
      }
      buf = bigger;
      cap *= 2;
    }
    ssize_t r = read(fd, buf + n, cap - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      free(buf);
      return NULL;
    }
    if (r == 0) break;
    n += (size_t)r;
  }
  *len = n;
  return buf;
}

/* A count, then that many NUL-terminated strings (pointing into the block). */
static char **hw__take_list(char **p, char *end) {
  char *nul = memchr(*p, '\0', (size_t)(end - *p));
  if (!nul) return NULL;
  char *after;
  errno = 0;
  unsigned long count = strtoul(*p, &after, 10);
  if (errno || after != nul || count > HW__EXEC_BLOCK_MAX / 2) return NULL;
  *p = nul + 1;
  char **list = calloc(count + 1, sizeof *list);
  if (!list) return NULL;
  for (unsigned long i = 0; i < count; i++) {
    nul = memchr(*p, '\0', (size_t)(end - *p));
    if (!nul) {
      free(list);
      return NULL;
    }
    list[i] = *p;
    *p = nul + 1;
  }
  return list;
}

extern char **environ;

static _Noreturn void hw__exec_from_fd(int in_fd, int status_fd) {
  if (status_fd >= 0) fcntl(status_fd, F_SETFD, FD_CLOEXEC);
  size_t len = 0;
  char *block = hw__read_all(in_fd, &len);
  close(in_fd); /* never leaks into the program */
  char **args = NULL, **env = NULL;
  if (block) {
    char *p = block, *end = block + len;
    args = hw__take_list(&p, end);
    env = args ? hw__take_list(&p, end) : NULL;
  }
  if (!args || !args[0] || !env) {
    hw__log("--exec-from-fd: cannot read a valid argument block from fd %d", in_fd);
    _exit(126);
  }
  environ = env; /* execvp searches the PATH of the program's environment */
  /* The `highwater run` CLI that started us is the watcher, in the program's
   * memory cgroup: the program and what it starts go before it, as in
   * single-container mode (HIGHWATER_OOM_SCORE_ADJ from the program's
   * environment). */
  hw__raise_oom_score_adj(hw__oom_delta());
  execvp(args[0], args);
  int err = errno;
  if (status_fd >= 0 && write(status_fd, &err, sizeof err) == (ssize_t)sizeof err)
    _exit(hw__exec_status(err));
  hw__log("cannot run %s: %s", args[0], strerror(err));
  _exit(hw__exec_status(err));
}

static int hw__fd_arg(const char *text) {
  char *end;
  errno = 0;
  long v = strtol(text, &end, 10);
  return errno || *end || v < 0 || v > INT_MAX ? -1 : (int)v;
}

static sigset_t hw__parent_mask; /* the mask before we blocked our signals */

/* In a forked child: own process group (foreground on a terminal), default signals, exec. */
static _Noreturn void hw__child_exec(char **argv, int foreground) {
  setpgid(0, 0);
  if (foreground && isatty(STDIN_FILENO)) {
    signal(SIGTTOU, SIG_IGN);
    if (tcsetpgrp(STDIN_FILENO, getpgrp()) != 0 && errno != ENOTTY && errno != ENXIO) {
      /* Not our controlling terminal: nothing to hand over. */
    }
    signal(SIGTTOU, SIG_DFL);
  }
  sigprocmask(SIG_SETMASK, &hw__parent_mask, NULL);
  hw__exec(argv);
}

static void hw__noop(int sig) { (void)sig; }

static int hw__status_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

static double hw__now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int hw__watch_grace(void) {
  const char *v = getenv("HIGHWATER_WATCH_GRACE");
  if (!v || !*v) return HW__DEFAULT_WATCH_GRACE;
  char *end;
  long n = strtol(v, &end, 10);
  if (*end || n < 0 || n > 3600) {
    hw__log("invalid HIGHWATER_WATCH_GRACE=%s, using %d", v, HW__DEFAULT_WATCH_GRACE);
    return HW__DEFAULT_WATCH_GRACE;
  }
  return (int)n;
}

/* Start `highwater watch` when asked for and the bundle has node + the CLI. */
static pid_t hw__start_watcher(const char *bundle, const char *run_dir, long long oom_kills) {
  if (!hw__env_true("HIGHWATER_WATCH")) return -1;
  char node[PATH_MAX], main_js[PATH_MAX];
  snprintf(node, sizeof node, "%s/node/bin/node", bundle);
  snprintf(main_js, sizeof main_js, "%s/dist/cli/main.js", bundle);
  if (access(node, X_OK) != 0 || !hw__is_file(main_js)) {
    hw__log("HIGHWATER_WATCH=1 but %s has no watcher (node/bin/node, dist/cli/main.js): "
            "use the bundle-full image; running without it",
            bundle);
    return -1;
  }
  const char *output = getenv("HIGHWATER_OUTPUT");
  if (!output || !*output) output = getenv("HIGHWATER_OUTPUT_DIR");
  if (!output || !*output) output = HW__DEFAULT_OUTPUT;
  char *argv[] = {node,       main_js,        "watch", "--run-dir", (char *)run_dir,
                  "--output", (char *)output, NULL};
  pid_t pid = fork();
  if (pid < 0) {
    hw__log("cannot start the watcher: %s", strerror(errno));
    return -1;
  }
  if (pid == 0) {
    setpgid(0, 0); /* a terminal's ^C goes to the command, not to the watcher */
    int fd = open("/dev/null", O_RDONLY);
    if (fd >= 0) {
      dup2(fd, STDIN_FILENO);
      if (fd > 2) close(fd);
    }
    sigprocmask(SIG_SETMASK, &hw__parent_mask, NULL);
    /* The container's OOM-kill count before anything ran: the watcher's
     * baseline, so that a kill before it first sees a process (while Node
     * starts) still makes the post-mortem `killed`. Its environment only. */
    if (oom_kills >= 0) {
      char n[32];
      snprintf(n, sizeof n, "%lld", oom_kills);
      setenv("HIGHWATER_OOM_KILLS_BEFORE", n, 1);
    }
    execv(node, argv);
    hw__log("cannot run the watcher %s: %s", node, strerror(errno));
    _exit(127);
  }
  return pid;
}

static void hw__usage(FILE *f) {
  fprintf(f, "usage: highwater-init [--] command [args...]\n"
             "Runs command as a child with highwater's environment, forwards signals,\n"
             "reaps zombies and exits with the command's status. See docs/docker.md.\n");
}

int main(int argc, char **argv) {
  int first = 1;
  if (argc >= 3 && strcmp(argv[1], "--exec-from-fd") == 0) {
    int in_fd = hw__fd_arg(argv[2]);
    int status_fd = argc >= 5 && strcmp(argv[3], "--status-fd") == 0 ? hw__fd_arg(argv[4]) : -1;
    if (in_fd < 0) {
      hw__log("--exec-from-fd: not a file descriptor: %s", argv[2]);
      return 2;
    }
    hw__exec_from_fd(in_fd, status_fd);
  }
  if (first < argc && strcmp(argv[first], "--") == 0) {
    first++;
  } else if (first < argc && argv[first][0] == '-') {
    if (strcmp(argv[first], "-h") == 0 || strcmp(argv[first], "--help") == 0) {
      hw__usage(stdout);
      return 0;
    }
    if (strcmp(argv[first], "--version") == 0) {
      printf("highwater-init %s\n", HW_INIT_VERSION);
      return 0;
    }
    hw__log("unknown option %s", argv[first]);
    hw__usage(stderr);
    return 2;
  }
  if (first >= argc) {
    hw__usage(stderr);
    return 2;
  }
  char **cmd = argv + first;

  if (hw__env_true("HIGHWATER_DISABLE")) hw__exec(cmd);
  char why[PATH_MAX + 128];
  if (hw__libc_unsupported(cmd[0], why, sizeof why)) {
    hw__log("%s; the shim needs glibc: running the command without highwater", why);
    hw__exec(cmd);
  }

  char bundle[PATH_MAX];
  if (hw__bundle_dir(bundle, sizeof bundle) != 0) {
    hw__log("cannot find the bundle directory; set HIGHWATER_HOME");
    bundle[0] = '\0';
  }

  const char *run_dir = getenv("HIGHWATER_RUN_DIR");
  if (!run_dir || !*run_dir) {
    setenv("HIGHWATER_RUN_DIR", HW__DEFAULT_RUN_DIR, 1);
    run_dir = getenv("HIGHWATER_RUN_DIR");
  }
  if (hw__mkdirs(run_dir) != 0) hw__log("cannot create run dir %s: %s", run_dir, strerror(errno));
  hw__container_remove_stale(run_dir);

  if (getpid() != 1 && prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0)
    hw__log("cannot become a subreaper: %s", strerror(errno));

  /* Block what we handle before forking, so nothing is lost in between.
     A no-op handler (not SIG_DFL) so the kernel queues them for PID 1 too;
     exec resets handled signals to the default in the children. */
  sigset_t handled;
  sigemptyset(&handled);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = hw__noop;
#define HW__ADD(s)                                                                                 \
  sigaddset(&handled, s);                                                                          \
  sigaction(s, &sa, NULL);
  HW__FORWARDED(HW__ADD)
  HW__ADD(SIGCHLD)
#undef HW__ADD
  sigprocmask(SIG_BLOCK, &handled, &hw__parent_mask);

  long long oom_kills_before = hw__oom_kill_count();
  pid_t watcher = bundle[0] ? hw__start_watcher(bundle, run_dir, oom_kills_before) : -1;
  double watcher_started = hw__now();
  int oom_delta = watcher > 0 ? hw__oom_delta() : 0;
  int hurry = 0; /* asked again to stop: no more waiting for the watcher */

  if (bundle[0]) hw__inject_env(bundle);
  pid_t child = fork();
  if (child < 0) {
    hw__log("cannot fork: %s", strerror(errno));
    return 126;
  }
  if (child == 0) {
    hw__raise_oom_score_adj(oom_delta); /* the watcher is the OOM killer's last choice */
    hw__child_exec(cmd, 1);
  }
  /* Also from the parent: no race with the first signal we forward to the group. */
  setpgid(child, child);

  int exit_code = -1;
  double deadline = 0; /* for the watcher, once the command has ended */
  int grace = hw__watch_grace();
  for (;;) {
    /* Reap everything that has ended: the command, the watcher, orphans. */
    for (;;) {
      int status;
      pid_t pid = waitpid(-1, &status, WNOHANG);
      if (pid <= 0) break;
      if (pid == child) {
        exit_code = hw__status_code(status);
        if (exit_code != 53 && hw__container_oom(run_dir)) {
          hw__log(
              "a tracked process ran out of memory (the command's status was %d): exiting with 53",
              exit_code);
          exit_code = 53;
        }
        long long oom_kills = oom_kills_before < 0 ? -1 : hw__oom_kill_count();
        if (exit_code != 53 && exit_code != 137 && oom_kills > oom_kills_before) {
          hw__log("the kernel's OOM killer ended a process of the container (the command's status "
                  "was %d): exiting with 137",
                  exit_code);
          exit_code = 137;
        }
        if (exit_code != 53) hw__termlog_killed(status, run_dir);
      } else if (pid == watcher) {
        if (exit_code < 0 || (WIFEXITED(status) ? WEXITSTATUS(status) : 1) != 0)
          hw__log("watcher ended (status %d)", hw__status_code(status));
        watcher = -1;
      }
    }
    if (exit_code >= 0) {
      if (watcher <= 0) break;
      if (deadline == 0) {
        if (!hurry && hw__now() - watcher_started < HW__WATCH_MIN_AGE) goto wait;
        deadline = hw__now() + grace;
        kill(watcher, SIGTERM);
      } else if (hw__now() >= deadline) {
        hw__log("watcher still running %d s after the command ended; killing it", grace);
        kill(watcher, SIGKILL);
        waitpid(watcher, NULL, 0);
        watcher = -1;
        break;
      }
    }
  wait:;
    struct timespec tick = {0, (exit_code >= 0 ? 50 : 200) * 1000 * 1000};
    int sig = sigtimedwait(&handled, NULL, &tick);
    if (sig <= 0 || sig == SIGCHLD) continue;
    if (exit_code < 0) {
      kill(child, sig);
    } else if (watcher > 0 && (sig == SIGTERM || sig == SIGINT)) {
      /* Asked again to stop while the watcher finishes: stop waiting. */
      if (deadline == 0) hurry = 1;
      else deadline = hw__now();
    }
  }
  return exit_code;
}
