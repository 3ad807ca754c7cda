/*
 * The container file (`hw-container` in the run dir): what every tracked
 * process in the container shares. Each process publishes its tracked bytes
 * to its slot and to the container sum in quanta (1 MiB), so the sum is
 * within N quanta of the truth at every moment and an allocation pays one
 * compare. A new container peak moves an epoch; a process that sees the
 * epoch moved copies its live bytes per node into its own state file's
 * `cpeak` area before it changes them, so every process's stacks at the
 * container peak can be drawn. The OOM flag lets whoever ends the container
 * (CLI, highwater-init, the root process) end it with 53.
 * Layout and rules: docs/protocol.md, "Multiple processes".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "hw.h"

#define HW_CONT_SLOTS 4096u
#define HW_CONT_QUANTUM (1ll << 20)
#define HW_CONT_NAME "hw-container"
#define HW_ANCESTOR_STEPS 32

typedef struct {
  char magic[8];
  uint32_t version, header_size;
  uint64_t slot_capacity, slot_size, off_slots, quantum_bytes;
  uint64_t creator_pid, creator_start_ticks;
  volatile int64_t sum_bytes __attribute__((aligned(64)));  /* 64: its own cache line */
  volatile int64_t peak_bytes __attribute__((aligned(64))); /* 128 */
  volatile uint64_t peak_epoch;
  volatile uint64_t peak_ms;
  uint64_t created_ms;
  volatile uint64_t slots_used;
  volatile uint64_t processes_ever;
  volatile uint64_t oom_pid __attribute__((aligned(64))); /* 192 */
  volatile uint64_t oom_reason, oom_ms;
  volatile int64_t oom_sum_bytes;
  volatile uint64_t oom_start_ticks, oom_dump_done, stopper_pid;
  volatile uint64_t stopper_start_ticks; /* 248: written before stopper_pid */
} hw_cont_header;
_Static_assert(offsetof(hw_cont_header, sum_bytes) == 64, "sumBytes");
_Static_assert(offsetof(hw_cont_header, peak_bytes) == 128, "peakBytes");
_Static_assert(offsetof(hw_cont_header, slots_used) == 160, "slotsUsed");
_Static_assert(offsetof(hw_cont_header, oom_pid) == 192, "oomPid");
_Static_assert(offsetof(hw_cont_header, stopper_pid) == 240, "stopperPid");
_Static_assert(offsetof(hw_cont_header, stopper_start_ticks) == 248, "stopperStartTicks");
_Static_assert(sizeof(hw_cont_header) <= 4096, "header fits");

typedef struct {
  volatile uint64_t pid;
  uint64_t start_ticks;
  volatile int64_t published;
  uint64_t origin, tracked_parent, start_ms, reserved[2];
} hw_cont_slot;
_Static_assert(sizeof(hw_cont_slot) == 64, "slot size");

#define HW_CONT_BYTES (4096 + (size_t)HW_CONT_SLOTS * sizeof(hw_cont_slot))

static hw_cont_header *hw__cont;
static hw_cont_slot *hw__slot;
static volatile uint64_t hw__no_epoch; /* stays 0: no container, no snapshots */
volatile uint64_t *hw__cont_epoch = &hw__no_epoch;
uint64_t hw__cont_seen;
int64_t hw__cont_lo = INT64_MIN, hw__cont_hi = INT64_MAX;

static hw_cont_slot *hw__slots(void) { return (hw_cont_slot *)((char *)hw__cont + 4096); }

/* /proc/<pid>/stat: start time (field 22), parent (4) and state (3); 0 when gone. */
uint64_t hw__proc_start_ticks(int pid, int *ppid, char *state) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  if (hw__read_whole(path, buf, sizeof buf) <= 0) return 0;
  char *p = strrchr(buf, ')'); /* the command name may hold spaces and parens */
  if (!p || p[1] != ' ') return 0;
  p += 2;
  if (state) *state = *p;
  unsigned long long v = 0;
  for (int field = 3; field <= 22; field++) {
    if (field == 4 && ppid) *ppid = (int)strtol(p, NULL, 10);
    if (field == 22) v = strtoull(p, NULL, 10);
    p = strchr(p, ' ');
    if (!p) return field == 22 ? v : 0;
    p++;
  }
  return v;
}

/* Running (a zombie or a reused pid is not). */
static int hw__proc_alive(uint64_t pid, uint64_t ticks) {
  char st = 0;
  uint64_t t = hw__proc_start_ticks((int)pid, NULL, &st);
  return t != 0 && t == ticks && st != 'Z' && st != 'X' && st != 'x';
}

/*
 * Late starters during an OOM stop (docs/protocol.md "OOM across processes").
 * The stopper kills every process that joins the container after the stop
 * began (a pool replacing the workers it lost), but only those its scans
 * see: a process forked in the last few milliseconds before its final scan
 * joins after it, and one forked after it (the stopper's own Python threads
 * run until its exit_group: a Pool's worker handler thread keeps replacing
 * workers) never joins at all, since the stopper stops tracking first. Such
 * a process outlived the container's exit 53: a fork Pool worker orphaned
 * that way waits forever in sem_wait for the pool's queue lock, which a
 * worker the stop had SIGKILLed held; it kept the program's stdout and
 * stderr open, so whoever waited for them (a CI job, a test) hung
 * (test/multiprocess/fork-during-stop.test.ts). So each such process stops
 * itself, with the SIGKILL the stopper gives a late starter:
 *  - at the fork, when the forking process is the stopper (plain loads, in
 *    the fork child handler: pid and start ticks of the parent as the
 *    child's copy of the shim holds them, so a reused pid never matches);
 *  - when it joins, when the stop is in progress (the stopper still runs) or
 *    when the stopper is the process it was forked from. The stopper
 *    publishes stopperPid before its first scan and a joiner claims its slot
 *    before reading stopperPid, both sequentially consistent (Dekker): either
 *    a scan sees the slot or the joiner sees the stopper.
 */
static void hw__stop_me(void) {
  syscall(SYS_kill, syscall(SYS_getpid), SIGKILL);
  for (;;) pause();
}

/* Fork child handler (async-signal-safe: plain loads, two system calls). */
void hw__container_fork_check(uint64_t parent_pid, uint64_t parent_ticks) {
  hw_cont_header *c = hw__cont;
  if (!c || !parent_pid || !parent_ticks) return;
  if (__atomic_load_n(&c->stopper_pid, __ATOMIC_SEQ_CST) == parent_pid &&
      c->stopper_start_ticks == parent_ticks)
    hw__stop_me();
}

/* The fork parent's identity, for the check at join (children.c sets it). */
uint64_t hw__fork_parent_pid, hw__fork_parent_ticks;

void hw__container_stop_late_joiner(void) {
  hw_cont_header *c = hw__cont;
  __atomic_thread_fence(__ATOMIC_SEQ_CST); /* the slot claim before the read below */
  uint64_t pid = __atomic_load_n(&c->stopper_pid, __ATOMIC_SEQ_CST);
  uint64_t ticks = c->stopper_start_ticks;
  if (!pid || !ticks || pid == (uint64_t)getpid()) return;
  if ((pid == hw__fork_parent_pid && ticks == hw__fork_parent_ticks) ||
      hw__proc_alive(pid, ticks)) {
    hw__debug("joined while pid %llu stops the container for an OOM: stopping too",
              (unsigned long long)pid);
    hw__stop_me();
  }
}

/*
 * 1 when `pid` ignores SIGTERM (SIG_IGN: bit 15 of SigIgn in
 * /proc/<pid>/status), e.g. multiprocessing's resource tracker. The stop's
 * grace period is for SIGTERM handlers; a process that ignores SIGTERM has
 * none to run, so waiting for it only delays the container's exit (by the
 * whole grace, measured: bench/README.md "Stop after an OOM").
 */
static int hw__ignores_sigterm(uint64_t pid) {
  char path[64], buf[2048];
  snprintf(path, sizeof path, "/proc/%llu/status", (unsigned long long)pid);
  hw_ownfd own;
  if (hw__own_open(&own, path, O_RDONLY | O_NONBLOCK, 0) != 0) return 0;
  ssize_t n = hw__own_read(&own, buf, sizeof buf - 1);
  hw__own_close(&own);
  if (n <= 0) return 0;
  buf[n] = '\0';
  const char *p = strstr(buf, "\nSigIgn:\t");
  if (!p) return 0;
  unsigned long long mask = strtoull(p + 9, NULL, 16);
  return (mask >> (SIGTERM - 1)) & 1;
}

static char hw__cont_path[600];

static hw_cont_header *hw__cont_map(int fd) {
  long m = syscall(SYS_mmap, (void *)0, HW_CONT_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  return m == -1 ? NULL : (hw_cont_header *)m;
}

/* Every block of the file, before any page of it is mapped: a store into a
 * hole of a full filesystem is SIGBUS in the program (state.c). Also when
 * joining: a no-op on a file its creator reserved, and an older shim's
 * sparse file gets its blocks or is not used. A file others already use
 * (`existing`) is never written to reserve it: where the filesystem has no
 * fallocate, its creator reserved it by writing zeros (hw__reserve_blocks),
 * which must not happen twice over live data. */
static int hw__cont_reserve(int fd, int existing) {
  if ((existing ? hw__reserve_existing : hw__reserve_blocks)(fd, 0, HW_CONT_BYTES) == 0) return 0;
  static _Atomic int logged;
  if (!atomic_exchange(&logged, 1))
    hw__log("no space for the container file in %s (%s); this process is tracked alone",
            hw__config.run_dir, strerror(errno));
  return -1;
}

/* An existing container file we may join: regular, ours, exact size, our layout. */
static hw_cont_header *hw__cont_open_existing(void) {
  hw_ownfd own;
  if (hw__own_open(&own, hw__cont_path, O_RDWR | O_NONBLOCK, 0) != 0) return NULL;
  struct stat st;
  hw_cont_header *c = NULL;
  if (hw__own_check(&own) && fstat(own.fd, &st) == 0 && S_ISREG(st.st_mode) &&
      st.st_uid == geteuid() && (size_t)st.st_size == HW_CONT_BYTES &&
      hw__cont_reserve(own.fd, 1) == 0)
    c = hw__cont_map(own.fd);
  hw__own_close(&own);
  if (c && (memcmp(c->magic, "HWCONT01", 8) != 0 || c->version != 1 ||
            c->slot_capacity != HW_CONT_SLOTS || c->slot_size != sizeof(hw_cont_slot))) {
    syscall(SYS_munmap, (void *)c, HW_CONT_BYTES);
    hw__debug("%s is not a container file we can use; this process is tracked alone",
              hw__cont_path);
    return NULL;
  }
  return c;
}

/* A fresh file under a private name, published by link() (replace: rename()). */
static hw_cont_header *hw__cont_create(int replace) {
  char tmp[640];
  snprintf(tmp, sizeof tmp, "%s.%d.tmp", hw__cont_path, (int)getpid());
  unlink(tmp);
  hw_ownfd own;
  if (hw__own_open(&own, tmp, O_RDWR | O_CREAT | O_EXCL | O_NONBLOCK, hw__config.file_mode) != 0)
    return NULL;
  hw_cont_header *c = NULL;
  if (hw__own_check(&own) && ftruncate(own.fd, (off_t)HW_CONT_BYTES) == 0 &&
      hw__cont_reserve(own.fd, 0) == 0)
    c = hw__cont_map(own.fd);
  hw__own_close(&own);
  if (!c) {
    unlink(tmp);
    return NULL;
  }
  c->version = 1;
  c->header_size = 4096;
  c->slot_capacity = HW_CONT_SLOTS;
  c->slot_size = sizeof(hw_cont_slot);
  c->off_slots = 4096;
  c->quantum_bytes = HW_CONT_QUANTUM;
  c->creator_pid = (uint64_t)getpid();
  c->creator_start_ticks = hw__proc_start_ticks(getpid(), NULL, NULL);
  c->peak_epoch = 1;
  c->created_ms = hw__now_ms();
  __atomic_thread_fence(__ATOMIC_RELEASE);
  memcpy(c->magic, "HWCONT01", 8);
  int rc = replace ? rename(tmp, hw__cont_path) : link(tmp, hw__cont_path);
  int e = errno;
  if (!replace) unlink(tmp);
  if (rc != 0) {
    syscall(SYS_munmap, (void *)c, HW_CONT_BYTES);
    errno = e;
    return NULL;
  }
  return c;
}

/* The nearest ancestor holding a live slot (an exec'd child's tracked parent). */
static uint64_t hw__tracked_ancestor(hw_cont_header *c) {
  int pid = (int)getppid();
  hw_cont_slot *s = (hw_cont_slot *)((char *)c + 4096);
  for (int step = 0; step < HW_ANCESTOR_STEPS && pid > 1; step++) {
    int ppid = 0;
    uint64_t ticks = hw__proc_start_ticks(pid, &ppid, NULL);
    if (!ticks) return 0;
    uint64_t used = c->slots_used < HW_CONT_SLOTS ? c->slots_used : HW_CONT_SLOTS;
    for (uint64_t i = 0; i < used; i++)
      if (s[i].pid == (uint64_t)pid && s[i].start_ticks == ticks) return (uint64_t)pid;
    pid = ppid;
  }
  return 0;
}

static int hw__claim_slot(hw_cont_header *c, int origin, uint64_t tracked_parent) {
  hw_cont_slot *s = (hw_cont_slot *)((char *)c + 4096);
  uint64_t me = (uint64_t)getpid();
  for (uint64_t i = 0; i < HW_CONT_SLOTS; i++) {
    uint64_t zero = 0;
    if (s[i].pid != 0 ||
        !__atomic_compare_exchange_n(&s[i].pid, &zero, me, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
      continue;
    s[i].start_ticks = hw__state.hdr->start_ticks;
    s[i].published = 0;
    s[i].origin = (uint64_t)origin;
    s[i].tracked_parent = tracked_parent;
    s[i].start_ms = hw__state.hdr->start_ms;
    uint64_t used = c->slots_used;
    while (used < i + 1 && !__atomic_compare_exchange_n(&c->slots_used, &used, i + 1, 0,
                                                        __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {}
    __atomic_add_fetch(&c->processes_ever, 1, __ATOMIC_RELAXED);
    return (int)i;
  }
  return -1;
}

void hw__container_join(int origin, uint64_t tracked_parent) {
  hw_state_header *h = hw__state.hdr;
  if (!h || !hw__config.children) return;
  snprintf(hw__cont_path, sizeof hw__cont_path, "%s/" HW_CONT_NAME, hw__config.run_dir);
  hw_cont_header *c = hw__cont; /* a forked child keeps its parent's mapping */
  for (int attempt = 0; !c && attempt < 3; attempt++) {
    c = hw__cont_open_existing();
    if (c && origin != HW_ORIGIN_FORK && !tracked_parent) tracked_parent = hw__tracked_ancestor(c);
    if (c && !tracked_parent && !hw__proc_alive(c->creator_pid, c->creator_start_ticks) &&
        (!c->oom_pid || getpid() == 1)) {
      /* A root that finds a previous run's file: start afresh. Not when that
       * run is being stopped for an OOM (we are a straggler it started, now
       * orphaned: the flag must survive for whoever reports the exit), unless
       * we are PID 1, the first process of a new container. */
      syscall(SYS_munmap, (void *)c, HW_CONT_BYTES);
      c = hw__cont_create(1);
    } else if (!c && errno == ENOENT) {
      c = hw__cont_create(0); /* EEXIST: another process won the race; join it */
    } else if (!c) {
      break;
    }
  }
  if (!c) {
    hw__debug("no container file in %s; this process is tracked alone", hw__config.run_dir);
    return;
  }
  hw__cont = c;
  if (!origin) origin = tracked_parent ? HW_ORIGIN_EXEC : HW_ORIGIN_ROOT;
  h->origin = (uint64_t)origin;
  h->tracked_parent_pid = tracked_parent;
  int i = hw__claim_slot(c, origin, tracked_parent);
  if (i < 0) {
    hw__log("the container file has no free slot (%u processes); this one is tracked alone",
            HW_CONT_SLOTS);
    return;
  }
  hw__slot = &hw__slots()[i];
  h->container_slot = (uint64_t)i;
  hw__container_stop_late_joiner();
  uint64_t e = __atomic_load_n(&c->peak_epoch, __ATOMIC_ACQUIRE);
  h->container_start_epoch = e;
  h->cpeak_epoch = e; /* nothing live yet: the zero area is this epoch's part */
  hw__cont_seen = e;
  __atomic_store_n(&hw__cont_lo, -HW_CONT_QUANTUM + 1, __ATOMIC_RELAXED);
  __atomic_store_n(&hw__cont_hi, HW_CONT_QUANTUM - 1, __ATOMIC_RELAXED);
  hw__bands_sync();
  __atomic_store_n(&hw__cont_epoch, &c->peak_epoch, __ATOMIC_RELEASE);
  /* Bytes tracked before the slot existed (the root's start-up) go in now. */
  hw__lock_take();
  hw__container_publish(h->current_bytes);
  hw__lock_give();
}

void hw__container_forget_in_child(void) {
  /* Plain stores only (fork child handler). The mapping is shared and stays. */
  hw__slot = NULL;
  hw__cont_epoch = &hw__no_epoch;
  hw__cont_seen = 0;
  __atomic_store_n(&hw__cont_lo, INT64_MIN, __ATOMIC_RELAXED);
  __atomic_store_n(&hw__cont_hi, INT64_MAX, __ATOMIC_RELAXED);
  hw__bands_sync();
}

void hw__container_snapshot(void) {
  hw_state_header *h = hw__state.hdr;
  uint64_t e = __atomic_load_n(hw__cont_epoch, __ATOMIC_ACQUIRE);
  if (!h || !hw__state.cpeak || !hw__slot) {
    hw__cont_seen = e;
    return;
  }
  memcpy(hw__state.cpeak, (const void *)hw__state.live, h->node_count * 8);
  h->cpeak_bytes = h->current_bytes;
  __atomic_store_n(&h->cpeak_epoch, e, __ATOMIC_RELEASE);
  hw__cont_seen = e;
}

void hw__container_publish(int64_t cur) {
  hw_cont_slot *s = hw__slot;
  if (!s) {
    __atomic_store_n(&hw__cont_lo, INT64_MIN, __ATOMIC_RELAXED);
    __atomic_store_n(&hw__cont_hi, INT64_MAX, __ATOMIC_RELAXED);
    hw__bands_sync();
    return;
  }
  hw_cont_header *c = hw__cont;
  int64_t delta = cur - s->published;
  s->published = cur;
  __atomic_store_n(&hw__cont_lo, cur - HW_CONT_QUANTUM + 1, __ATOMIC_RELAXED);
  __atomic_store_n(&hw__cont_hi, cur + HW_CONT_QUANTUM - 1, __ATOMIC_RELAXED);
  hw__bands_sync();
  int64_t sum = __atomic_add_fetch(&c->sum_bytes, delta, __ATOMIC_ACQ_REL);
  if (delta <= 0) return;
  int64_t peak = __atomic_load_n(&c->peak_bytes, __ATOMIC_ACQUIRE);
  while (sum > peak) {
    if (__atomic_compare_exchange_n(&c->peak_bytes, &peak, sum, 0, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE)) {
      c->peak_ms = hw__now_ms();
      __atomic_add_fetch(&c->peak_epoch, 1, __ATOMIC_ACQ_REL);
      break;
    }
  }
}

/* The bytes of the process in slot `s` leave the sum (it ended). */
static void hw__slot_release(hw_cont_slot *s, uint64_t pid) {
  int64_t pub = __atomic_exchange_n(&s->published, 0, __ATOMIC_ACQ_REL);
  if (pub) __atomic_sub_fetch(&hw__cont->sum_bytes, pub, __ATOMIC_ACQ_REL);
  uint64_t expect = pid;
  __atomic_compare_exchange_n(&s->pid, &expect, 0, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

void hw__container_leave(int have_code, int code) {
  hw_state_header *h = hw__state.hdr;
  hw_cont_slot *s = hw__slot;
  if (!h || hw__in_child || (uint64_t)syscall(SYS_getpid) != h->pid) return;
  if (have_code && !h->exit_code) h->exit_code = 0x100 | (unsigned)(code & 0xff);
  if (!s) return;
  /* A root reaps once more: a pool's parent has just joined the workers it
   * terminated (SIGTERM: they could not leave by themselves). */
  hw__container_tick();
  /* Another thread may hold the tracker lock forever (we are exiting): wait
   * a little, never block; without it the part at the peak is `live`. */
  int locked = hw__lock_try_briefly();
  if (locked) hw__container_check();
  hw__slot = NULL;
  hw__cont_epoch = &hw__no_epoch;
  __atomic_store_n(&hw__cont_lo, INT64_MIN, __ATOMIC_RELAXED);
  __atomic_store_n(&hw__cont_hi, INT64_MAX, __ATOMIC_RELAXED);
  hw__bands_sync();
  if (locked) hw__lock_give();
  hw__slot_release(s, (uint64_t)getpid());
  h->container_end_epoch = __atomic_load_n(&hw__cont->peak_epoch, __ATOMIC_ACQUIRE);
  h->end_ms = hw__now_ms();
  __atomic_store_n(&h->container_ended, 1, __ATOMIC_RELEASE);
}

/* Marks a dead process's state file as ended, when the file is still its own. */
static void hw__mark_dead_state(uint64_t pid, uint64_t ticks, uint64_t epoch) {
  char path[640];
  snprintf(path, sizeof path, "%s/hw-%llu.state", hw__config.run_dir, (unsigned long long)pid);
  hw_ownfd own;
  if (hw__own_open(&own, path, O_RDWR | O_NONBLOCK, 0) != 0) return;
  struct stat st;
  uint64_t got_pid = 0, got_ticks = 0, ended = 0;
  if (hw__own_check(&own) && fstat(own.fd, &st) == 0 && S_ISREG(st.st_mode) &&
      st.st_uid == geteuid() && st.st_size >= 4096 && pread(own.fd, &got_pid, 8, 16) == 8 &&
      pread(own.fd, &got_ticks, 8, 2384) == 8 && pread(own.fd, &ended, 8, 2424) == 8 &&
      got_pid == pid && got_ticks == ticks && !ended) {
    uint64_t now = hw__now_ms(), one = 1;
    if (pwrite(own.fd, &epoch, 8, 2432) == 8 && pwrite(own.fd, &now, 8, 2464) == 8) {
      ssize_t w = pwrite(own.fd, &one, 8, 2424);
      (void)w;
    }
  }
  hw__own_close(&own);
}

void hw__container_tick(void) {
  hw_cont_header *c = hw__cont;
  /* Roots only: every process scanning every slot would cost N^2 reads. */
  if (!c || !hw__slot || !hw__state.hdr || hw__state.hdr->origin != HW_ORIGIN_ROOT) return;
  hw_cont_slot *s = hw__slots();
  uint64_t used = c->slots_used < HW_CONT_SLOTS ? c->slots_used : HW_CONT_SLOTS;
  uint64_t me = (uint64_t)getpid();
  for (uint64_t i = 0; i < used; i++) {
    uint64_t pid = s[i].pid, ticks = s[i].start_ticks;
    if (!pid || pid == me || !ticks || hw__proc_alive(pid, ticks)) continue;
    if (s[i].pid != pid) continue;
    uint64_t epoch = __atomic_load_n(&c->peak_epoch, __ATOMIC_ACQUIRE);
    hw__slot_release(&s[i], pid);
    hw__mark_dead_state(pid, ticks, epoch);
    hw__debug("reaped the container slot of pid %llu (it ended without leaving)",
              (unsigned long long)pid);
  }
}

/* ---- OOM across processes ---- */

static int hw__oom_claimed; /* this process owns the container OOM */

int hw__container_oom_set(void) { return hw__cont && hw__cont->oom_pid != 0; }

void hw__container_oom_claim(int reason) {
  hw_cont_header *c = hw__cont;
  if (!c || !hw__slot) return;
  uint64_t zero = 0, me = (uint64_t)getpid();
  if (!__atomic_compare_exchange_n(&c->oom_pid, &zero, me, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
    return;
  c->oom_reason = (uint64_t)reason;
  c->oom_ms = hw__now_ms();
  c->oom_sum_bytes = c->sum_bytes;
  c->oom_start_ticks = hw__state.hdr ? hw__state.hdr->start_ticks : 0;
  hw__oom_claimed = 1;
}

/* Asks `pid`'s shim to stop the container; 1 when it answered `ok stopping`. */
static int hw__ask_stop(uint64_t pid) {
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  int n = snprintf(addr.sun_path, sizeof addr.sun_path, "%s/hw-%llu.sock", hw__config.run_dir,
                   (unsigned long long)pid);
  if (n <= 0 || (size_t)n >= sizeof addr.sun_path) return 0;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  hw_ownfd own;
  if (hw__own_adopt(&own, fd) != 0) return 0;
  int ok = 0;
  char line[64];
  int len = snprintf(line, sizeof line, "container-oom %d\n", (int)getpid());
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0 &&
      hw__own_write(&own, line, (size_t)len) == len) {
    struct pollfd p = {fd, POLLIN, 0};
    char reply[64] = "";
    if (poll(&p, 1, 1000) == 1 && hw__own_check(&own)) {
      ssize_t r = recv(fd, reply, sizeof reply - 1, MSG_DONTWAIT);
      if (r > 0) reply[r] = '\0';
    }
    ok = strncmp(reply, "ok stopping", 11) == 0;
  }
  hw__own_close(&own);
  return ok;
}

void hw__container_oom_after_dump(void) {
  hw_cont_header *c = hw__cont;
  if (!c || !hw__slot) return;
  if (!hw__oom_claimed) return; /* another process tripped first: it has the stop in hand */
  __atomic_store_n(&c->oom_dump_done, 1, __ATOMIC_RELEASE);
  if (hw__state.hdr && hw__state.hdr->origin == HW_ORIGIN_ROOT) hw__container_stop_all();
  /* The oldest live root stops the others and exits 53 (the exit status the
   * container is judged by); we just exit 53 and free our memory. */
  hw_cont_slot *s = hw__slots();
  uint64_t used = c->slots_used < HW_CONT_SLOTS ? c->slots_used : HW_CONT_SLOTS;
  uint64_t me = (uint64_t)getpid(), root = 0, root_ticks = 0;
  for (uint64_t i = 0; i < used; i++) {
    uint64_t pid = s[i].pid;
    if (!pid || pid == me || s[i].origin != HW_ORIGIN_ROOT) continue;
    if (!hw__proc_alive(pid, s[i].start_ticks)) continue;
    if (!root || s[i].start_ticks < root_ticks) {
      root = pid;
      root_ticks = s[i].start_ticks;
    }
  }
  if (root && hw__ask_stop(root)) return;
  hw__container_stop_all();
}

void hw__container_stop_all(void) {
  hw_cont_header *c = hw__cont;
  uint64_t me = (uint64_t)getpid();
  if (c) {
    /* Before the first scan (late starters, above): ticks first, then the pid. */
    c->stopper_start_ticks = hw__state.hdr ? hw__state.hdr->start_ticks : 0;
    __atomic_store_n(&c->stopper_pid, me, __ATOMIC_SEQ_CST);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    hw_cont_slot *s = hw__slots();
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    /* Signalled processes, by slot: (pid, ticks) so a reused slot is a new one. */
    static uint64_t sent_pid[HW_CONT_SLOTS], sent_ticks[HW_CONT_SLOTS];
    uint64_t stop_ms = hw__now_ms();
    for (;;) {
      struct timespec now;
      clock_gettime(CLOCK_MONOTONIC, &now);
      uint64_t ms = (uint64_t)(now.tv_sec - start.tv_sec) * 1000 +
                    (uint64_t)(now.tv_nsec / 1000000) - (uint64_t)(start.tv_nsec / 1000000);
      int kill_now = ms >= hw__config.stop_grace_ms;
      int running = 0;
      uint64_t used = c->slots_used < HW_CONT_SLOTS ? c->slots_used : HW_CONT_SLOTS;
      for (uint64_t i = 0; i < used; i++) {
        uint64_t pid = s[i].pid, ticks = s[i].start_ticks;
        if (!pid || pid == me || !hw__proc_alive(pid, ticks)) continue;
        if (s[i].start_ms >= stop_ms) {
          /* Started during the stop (a pool replacing the workers it lost):
           * it has nothing to finish. It does not hold the stop up. */
          kill((pid_t)pid, SIGKILL);
          continue;
        }
        running++;
        if (pid == c->oom_pid && !kill_now) continue; /* it is exiting 53 by itself */
        if (kill_now) {
          kill((pid_t)pid, SIGKILL);
        } else if (sent_pid[i] == pid && sent_ticks[i] == ticks && s[i].origin != HW_ORIGIN_ROOT &&
                   hw__ignores_sigterm(pid)) {
          kill((pid_t)pid, SIGKILL); /* SIGTERM was sent and can do nothing: no grace to wait for */
        } else if (sent_pid[i] != pid || sent_ticks[i] != ticks) {
          sent_pid[i] = pid;
          sent_ticks[i] = ticks;
          if (s[i].origin != HW_ORIGIN_ROOT || !hw__ask_stop(pid)) kill((pid_t)pid, SIGTERM);
        }
      }
      if (!running || kill_now) break;
      struct timespec tick = {0, 50 * 1000000L};
      nanosleep(&tick, NULL);
    }
  }
  hw__tracking = 0;
  if (hw__state.hdr) hw__state.hdr->exit_status = 0x100 | 53;
  hw__container_leave(1, 53);
  syscall(SYS_exit_group, 53);
  for (;;) pause();
}
