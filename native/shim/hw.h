/*
 * Internal interface of the highwater preload shim. Everything here is
 * `hw__`-prefixed and hidden (-fvisibility=hidden); only the hooks and the
 * `hw_` API in highwater.h are exported (see version.map).
 */
#ifndef HW_INTERNAL_H
#define HW_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "parse.h"

/* Every name declared below lives in the shim itself: hidden, so that a
 * read of a global is one instruction, not a load of its address from the
 * GOT and then the read (the allocation hooks read a dozen). */
#pragma GCC visibility push(hidden)

#define HW_LIKELY(x) __builtin_expect(!!(x), 1)
#define HW_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define HW_NODE_NONE UINT32_MAX
/* The pointer at byte offset `off` of an interpreter structure (compat.c's
 * per-version tables say which offsets). */
#define HW_AT(p, off) (*(void **)((char *)(p) + (off)))
/* The page size the shim assumes for its own bookkeeping and for charging
 * anonymous maps (x86-64 and arm64 Linux with 4 KiB pages). */
#define HW_PAGE 4096u
/* The exit code of an OOM stop (docs/errors.md), and how the state header's
 * exit_status records it: 0x100 (exited) | code. */
#define HW_EXIT_OOM 53
#define HW_EXIT_OOM_STATUS (0x100 | HW_EXIT_OOM)
#define HW_TLS __attribute__((tls_model("initial-exec"))) __thread

/* The shim's flags are C11 atomics, read with the weakest order that is
 * right for each (said where each is defined). A relaxed load compiles to a
 * plain load on x86-64 and arm64: the hot path pays nothing for it. */
#define HW_RELAXED(x) atomic_load_explicit(&(x), memory_order_relaxed)
#define HW_SET_RELAXED(x, v) atomic_store_explicit(&(x), (v), memory_order_relaxed)

/* ---- real.c: the functions we interpose, resolved with dlsym(RTLD_NEXT) ---- */
#define HW_HOOKED_FUNCTIONS(X)                                                                     \
  X(malloc, void *, (size_t))                                                                      \
  X(calloc, void *, (size_t, size_t))                                                              \
  X(realloc, void *, (void *, size_t))                                                             \
  X(free, void, (void *))                                                                          \
  X(posix_memalign, int, (void **, size_t, size_t))                                                \
  X(aligned_alloc, void *, (size_t, size_t))                                                       \
  X(memalign, void *, (size_t, size_t))                                                            \
  X(valloc, void *, (size_t))                                                                      \
  X(pvalloc, void *, (size_t))                                                                     \
  X(reallocarray, void *, (void *, size_t, size_t))                                                \
  X(mmap, void *, (void *, size_t, int, int, int, off_t))                                          \
  X(mmap64, void *, (void *, size_t, int, int, int, off_t))                                        \
  X(munmap, int, (void *, size_t))                                                                 \
  X(mremap, void *, (void *, size_t, size_t, int, ...))                                            \
  X(pthread_create, int, (pthread_t *, const pthread_attr_t *, void *(*)(void *), void *))         \
  X(execve, int, (const char *, char *const[], char *const[]))                                     \
  X(execv, int, (const char *, char *const[]))                                                     \
  X(execvp, int, (const char *, char *const[]))                                                    \
  X(execvpe, int, (const char *, char *const[], char *const[]))                                    \
  X(fexecve, int, (int, char *const[], char *const[]))

#define HW_DECLARE_REAL(name, ret, args) extern ret(*hw__real_##name) args;
HW_HOOKED_FUNCTIONS(HW_DECLARE_REAL)
#undef HW_DECLARE_REAL
extern size_t (*hw__real_malloc_usable_size)(void *); /* resolved, not hooked */

void hw__resolve_real(void);
/* dlsym's early requests are served from this static pool (real.c). */
extern char hw__boot_pool[64 * 1024];
static inline int hw__in_boot_pool(const void *p) {
  return (const char *)p >= hw__boot_pool && (const char *)p < hw__boot_pool + sizeof hw__boot_pool;
}
void *hw__boot_alloc(size_t size);

/* A live heap block's size as the allocator sees it (malloc_usable_size):
 * sampling mode counts unsampled blocks by it, the same at the allocation
 * and the free. When the real allocator is glibc's and a probe of blocks of
 * every kind agrees (hw__usable_init), it is read from the chunk's size
 * word in front of the block, one load instead of a call: that word is the
 * allocator's own bookkeeping, and glibc keeps the size of a live block
 * there on every release (its layout: "malloc_chunk" in malloc.c). */
extern int hw__glibc_chunks;
/* 8 where an mmapped chunk's size counts a second word of header (glibc
 * 2.36), 0 where it does not (glibc 2.43: Debian sid's); the probe tells
 * (hw__usable_init). */
extern size_t hw__mmapped_extra;
void hw__usable_init(void); /* after hw__resolve_real; before tracking starts */
static inline size_t hw__glibc_usable(const void *p) {
  size_t word = ((const size_t *)p)[-1];
  /* The low three bits are flags; a heap chunk lends its successor's first
   * word; an mmapped chunk (bit 1) may have a second word of header. Written
   * without a branch: (word & 2) << 2 is 8 for an mmapped chunk, masked by
   * what the probe found. */
  _Static_assert(sizeof(size_t) == 8, "the shift below is for 8-byte words");
  return (word & ~(size_t)7) - sizeof(size_t) - (((word & 2) << 2) & hw__mmapped_extra);
}
static inline size_t hw__usable_size(void *p) {
  if (HW_LIKELY(hw__glibc_chunks)) return hw__glibc_usable(p);
  return hw__real_malloc_usable_size(p);
}

/* ---- arena.c: bookkeeping memory that never goes through our hooks ---- */
void *hw__pages_alloc(size_t bytes); /* zeroed, page-granular, NULL on failure */
void hw__pages_free(void *p, size_t bytes);

/* ---- ownfd.c: fds the shim owns, re-verified (fstat dev/inode) before each use ---- */
typedef struct {
  int fd; /* -1: none, or lost to the program */
  uint32_t mode;
  uint64_t dev, ino;
} hw_ownfd;
int hw__own_open(hw_ownfd *o, const char *path, int flags,
                 unsigned mode);        /* adds CLOEXEC|NOFOLLOW */
int hw__own_adopt(hw_ownfd *o, int fd); /* an fd just made (socket, accept) */
int hw__own_check(hw_ownfd *o);         /* 1: still ours; 0: forgotten */
void hw__own_move_high(hw_ownfd *o);    /* a long-lived fd: out of the program's numbers */
void hw__own_close(hw_ownfd *o);        /* closes only when still ours */
ssize_t hw__own_read(hw_ownfd *o, void *buf, size_t n);
ssize_t hw__own_write(hw_ownfd *o, const void *buf, size_t n);
/* Open-read-close of a small regular file into buf (NUL-terminated); -1 on failure. */
ssize_t hw__read_whole(const char *path, char *buf, size_t cap);

/* ---- termlog.c: the Kubernetes termination message on an OOM exit ---- */
void hw__termlog_write(const char *reason, const char *dump_path);

/* ---- log.c ---- */
void hw__log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void hw__debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern int hw__debug_on;

/* ---- config.c ---- */
typedef struct {
  char run_dir[512];
  int mode_python;         /* HIGHWATER_MODE=python: tracking off until the API asks */
  int oom_detection;       /* low-available and swap rules */
  uint64_t min_floor;      /* absolute part of the floor, bytes */
  uint32_t floor_pct_x100; /* percent part of the floor, in 1/100 % */
  int control_uid;         /* extra uid allowed on the control socket, -1 none */
  unsigned file_mode;
  uint64_t sample_rate; /* HIGHWATER_SAMPLE_RATE, bytes; 0 = exact (sampling.h) */
  uint64_t sample_seed; /* HIGHWATER_SAMPLE_SEED, when sample_seeded */
  int sample_seeded;
  int children;           /* HIGHWATER_CHILDREN: track Python children (default 1) */
  uint64_t stop_grace_ms; /* HIGHWATER_STOP_GRACE_MS */
} hw_config_t;
extern hw_config_t hw__config;
void hw__config_load(void);

/* ---- state.c: the shared, file-backed state (docs/protocol.md) ---- */
typedef struct {
  uint32_t file_off, file_len, name_off, name_len;
} hw_func_rec;
typedef struct {
  uint32_t parent, func, line, reserved;
} hw_node_rec;

/* The header lives in a file another process reads (and, for
 * floor_bytes, may be published by more than one of our threads): a field
 * another thread reads is stored and loaded whole, with relaxed atomics
 * (plain moves on x86-64 and arm64), HW_HDR_PUT / HW_HDR_GET. */
#define HW_HDR_PUT(field, v) __atomic_store_n(&(field), (v), __ATOMIC_RELAXED)
#define HW_HDR_GET(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)

typedef struct {
  char magic[8];
  uint32_t version, header_size;
  uint64_t pid;
  volatile uint64_t node_count;
  volatile uint64_t func_count;
  volatile int64_t current_bytes;
  volatile int64_t peak_bytes;
  volatile uint64_t peak_source; /* 1: live is the peak; 0: snapshot is */
  uint64_t node_capacity, func_capacity, string_capacity;
  uint64_t off_funcs, off_nodes, off_strings, off_live, off_snapshot;
  volatile uint64_t updated_ms;
  volatile uint64_t tracking;
  volatile uint64_t floor_bytes;
  volatile uint64_t limit_bytes, usage_bytes, inactive_file_bytes, working_set_bytes,
      host_available_bytes, available_bytes, swap_bytes;
  volatile uint64_t readings_source;
  volatile uint64_t oom_reason;
  volatile uint64_t exit_status;
  volatile uint64_t active_file_bytes;
  volatile uint64_t failed_allocations; /* allocations the real allocator refused */
  volatile uint64_t failed_bytes;       /* size of the last one */
  char python[32];
  char argv[1024];
  char cwd[1024];
  uint64_t sample_rate_bytes; /* 2336: sampling.c; 0 = exact */
  uint64_t off_timeline;      /* 2344: timeline.c's ring; 0: none (older shims) */
  /* 2352..2479: several processes (children.c, container.c; docs/protocol.md) */
  uint64_t origin; /* HW_ORIGIN_* */
  uint64_t parent_pid;
  uint64_t tracked_parent_pid;
  uint64_t start_ms;
  uint64_t start_ticks;
  uint64_t inherited_bytes;
  uint64_t fork_seq;
  uint64_t container_slot;
  uint64_t container_start_epoch;
  volatile uint64_t container_ended;
  volatile uint64_t container_end_epoch;
  volatile uint64_t cpeak_epoch;
  volatile int64_t cpeak_bytes;
  uint64_t off_cpeak;
  volatile uint64_t end_ms;
  volatile uint64_t exit_code;
  /* 2480..2503: the kernel's OOM kill as this process saw it (killsnap.c) */
  volatile uint64_t kill_ms; /* published last (release): 0 = no kill seen (yet) */
  volatile int64_t kill_bytes;
  uint64_t off_kill; /* `kill` area: live bytes per node when the kill was seen */
  /* 2504: HW_SPACE_* bits, the tables the run dir had no room to grow (state.c) */
  volatile uint64_t space_short;
} hw_state_header;
/* Every offset and record size docs/protocol.md documents (and
 * sidecar/src/report/state.ts reads): the build fails before they can drift
 * apart. The timeline region's are in timeline.c. */
_Static_assert(offsetof(hw_state_header, magic) == 0, "magic");
_Static_assert(offsetof(hw_state_header, version) == 8, "version");
_Static_assert(offsetof(hw_state_header, header_size) == 12, "header size");
_Static_assert(offsetof(hw_state_header, pid) == 16, "pid");
_Static_assert(offsetof(hw_state_header, node_count) == 24, "nodeCount");
_Static_assert(offsetof(hw_state_header, func_count) == 32, "funcCount");
_Static_assert(offsetof(hw_state_header, current_bytes) == 40, "currentBytes");
_Static_assert(offsetof(hw_state_header, peak_bytes) == 48, "peakBytes");
_Static_assert(offsetof(hw_state_header, peak_source) == 56, "peakSource");
_Static_assert(offsetof(hw_state_header, node_capacity) == 64, "nodeCapacity");
_Static_assert(offsetof(hw_state_header, func_capacity) == 72, "funcCapacity");
_Static_assert(offsetof(hw_state_header, string_capacity) == 80, "stringCapacity");
_Static_assert(offsetof(hw_state_header, off_funcs) == 88, "offset of funcs");
_Static_assert(offsetof(hw_state_header, off_nodes) == 96, "offset of nodes");
_Static_assert(offsetof(hw_state_header, off_strings) == 104, "offset of strings");
_Static_assert(offsetof(hw_state_header, off_live) == 112, "offset of live");
_Static_assert(offsetof(hw_state_header, off_snapshot) == 120, "offset of snapshot");
_Static_assert(offsetof(hw_state_header, updated_ms) == 128, "updatedMs");
_Static_assert(offsetof(hw_state_header, tracking) == 136, "tracking");
_Static_assert(offsetof(hw_state_header, floor_bytes) == 144, "floorBytes");
_Static_assert(offsetof(hw_state_header, limit_bytes) == 152, "limitBytes");
_Static_assert(offsetof(hw_state_header, usage_bytes) == 160, "usageBytes");
_Static_assert(offsetof(hw_state_header, inactive_file_bytes) == 168, "inactiveFileBytes");
_Static_assert(offsetof(hw_state_header, working_set_bytes) == 176, "workingSetBytes");
_Static_assert(offsetof(hw_state_header, host_available_bytes) == 184, "hostAvailableBytes");
_Static_assert(offsetof(hw_state_header, available_bytes) == 192, "availableBytes");
_Static_assert(offsetof(hw_state_header, swap_bytes) == 200, "swapBytes");
_Static_assert(offsetof(hw_state_header, readings_source) == 208, "readingsSource");
_Static_assert(offsetof(hw_state_header, oom_reason) == 216, "oomReason");
_Static_assert(offsetof(hw_state_header, exit_status) == 224, "exitStatus");
_Static_assert(offsetof(hw_state_header, active_file_bytes) == 232, "activeFileBytes");
_Static_assert(offsetof(hw_state_header, failed_allocations) == 240, "failedAllocations");
_Static_assert(offsetof(hw_state_header, failed_bytes) == 248, "failedBytes");
_Static_assert(offsetof(hw_state_header, python) == 256, "python");
_Static_assert(offsetof(hw_state_header, argv) == 288, "argv");
_Static_assert(offsetof(hw_state_header, cwd) == 1312, "cwd");
_Static_assert(offsetof(hw_state_header, sample_rate_bytes) == 2336, "sampleRateBytes");
_Static_assert(offsetof(hw_state_header, off_timeline) == 2344, "timeline offset");
_Static_assert(offsetof(hw_state_header, origin) == 2352, "origin");
_Static_assert(offsetof(hw_state_header, start_ticks) == 2384, "startTicks");
_Static_assert(offsetof(hw_state_header, container_ended) == 2424, "containerEnded");
_Static_assert(offsetof(hw_state_header, off_cpeak) == 2456, "cpeak offset");
_Static_assert(offsetof(hw_state_header, exit_code) == 2472, "exitCode");
_Static_assert(offsetof(hw_state_header, kill_ms) == 2480, "killMs");
_Static_assert(offsetof(hw_state_header, kill_bytes) == 2488, "killBytes");
_Static_assert(offsetof(hw_state_header, off_kill) == 2496, "kill offset");
_Static_assert(offsetof(hw_state_header, space_short) == 2504, "spaceShort");
_Static_assert(sizeof(hw_state_header) <= 4096, "the header fits its 4096 bytes");
_Static_assert(sizeof(hw_func_rec) == 16 && offsetof(hw_func_rec, name_len) == 12, "funcs record");
_Static_assert(sizeof(hw_node_rec) == 16 && offsetof(hw_node_rec, line) == 8, "nodes record");
#define HW_STATE_HEADER_BYTES 4096u
#define HW_STATE_VERSION 1u
/* oomReason (docs/protocol.md); also the rule the guard returns. */
enum { HW_OOM_NONE = 0, HW_OOM_LOW_AVAILABLE = 1, HW_OOM_SWAP = 2, HW_OOM_FAILED_ALLOCATION = 3 };
/* readingsSource. */
enum { HW_SOURCE_NONE = 0, HW_SOURCE_CGROUP_V1 = 1, HW_SOURCE_CGROUP_V2 = 2, HW_SOURCE_HOST = 3 };

typedef struct {
  hw_state_header *hdr;
  hw_func_rec *funcs;
  hw_node_rec *nodes;
  char *strings;
  volatile int64_t *live;
  int64_t *snapshot;
  int64_t *cpeak; /* container.c: live bytes at the container peak */
  int64_t *kill;  /* killsnap.c: live bytes when the cgroup's oom_kill count moved */
  uint64_t string_used;
  size_t map_bytes;
  /* How far the file's blocks are reserved (fallocate): a page of the shared
   * mapping is written only below these, never a hole a full disk turns into
   * SIGBUS. Grown under hw__intern_lock; see hw__state_reserve_*. */
  uint64_t nodes_reserved, funcs_reserved, strings_reserved;
  uint64_t file_dev, file_ino; /* the file as created: a reopen must find the same */
} hw_state_t;
/* space_short bits: which table stopped growing for want of space. */
enum { HW_SPACE_NODES = 1, HW_SPACE_FUNCS = 2, HW_SPACE_STRINGS = 4 };
extern hw_state_t hw__state;
int hw__state_open(void);
void hw__state_close_in_child(void);
void hw__state_discard(void); /* unmap and remove our own file: not tracking after all */
/* A file or function name is cut at this many bytes in the string area. */
#define HW_STRING_MAX 4096u
/* Append a string to the string area; returns offset or UINT32_MAX when full. */
uint32_t hw__state_add_string(const char *s, size_t len);
/* Make room (reserved file blocks) for `count` nodes / funcs; 0 when there
 * is, -1 when the run dir is out of space (the table then stays as it is:
 * logged once, space_short set). Callers hold hw__intern_lock. */
int hw__state_reserve_nodes(uint64_t count);
int hw__state_reserve_funcs(uint64_t count);
int hw__state_reserve_strings(uint64_t bytes);
/* Reserves `bytes` of a file (fd) from `off`, whole pages; 0 or -1 (errno).
 * Only for ranges nothing was stored in yet: where the filesystem has no
 * fallocate the pages are claimed by writing zeros. */
int hw__reserve_blocks(int fd, uint64_t off, uint64_t bytes);
/* The same for a range others may already use: fallocate only, never a
 * write; where the filesystem has no fallocate its creator wrote the zeros
 * (hw__reserve_blocks), so that counts as reserved. */
int hw__reserve_existing(int fd, uint64_t off, uint64_t bytes);

/* ---- intern.c: functions (code objects) and call-stack nodes ---- */
uint32_t hw__intern_node(uint32_t parent, uint32_t func, uint32_t line);
/* Returns func id, or HW_NODE_NONE; code is a PyCodeObject*. Names are read
 * from memory (names.c); when that layout is unverified, a new code object
 * gets a placeholder, named later by hw__resolve_pending at a safe point. */
uint32_t hw__intern_code(void *code);
/* The function of the marker frame for frames not recorded (a stack deeper
 * than the walk or a dump keeps): made at the first call; the _id form only
 * reads it (HW_NODE_NONE until made). */
uint32_t hw__not_recorded_func(void);
uint32_t hw__not_recorded_func_id(void);
void hw__resolve_pending(void); /* GIL held */
extern _Atomic int hw__pending_count;
extern pthread_mutex_t hw__intern_lock;

/* ---- blocks.h (in tracker.c): the live heap blocks, address -> (size, node); hw__lock held ----
 */
/* Records a block; returns 1 when it replaced one at the same address (its
 * size and node in old_*), 0 when new, -1 when out of bookkeeping memory. */
int hw__blocks_put(uintptr_t a, uint64_t size, uint32_t node, uint64_t *old_size,
                   uint32_t *old_node);
/* Removes a block; returns 1 with its size and node, 0 when unknown. */
int hw__blocks_take(uintptr_t a, uint64_t *size, uint32_t *node);
void hw__blocks_reset(void);
void hw__blocks_forget(void); /* a fork child: drop the parent's table */
size_t hw__blocks_count(void);
size_t hw__blocks_overhead(void);

/* ---- tracker.c: live allocations, bytes per node, peak ---- */
/* hw__lock guards the live-block table, the mmap ranges, `live` and the
 * peak. Every tracked malloc and free takes it, so it is a bare futex mutex
 * (Drepper's "mutex 3": 0 free, 1 held, 2 held and maybe waited for): one
 * compare-and-swap to take, one exchange to give, inline; glibc's
 * pthread_mutex_lock/unlock pair cost ~57 instructions more per call
 * (callgrind, bench/README.md). Not a pthread_mutex_t: the Makefile makes
 * passing it to pthread_mutex_* a compile error. */
typedef struct {
  _Atomic uint32_t state;
} hw_lock_t;
extern hw_lock_t hw__lock;
void hw__lock_wait(hw_lock_t *l); /* contended: sleeps until it is ours */
void hw__lock_wake(hw_lock_t *l); /* someone may sleep on it: wake one */
/* Never blocks: tries for at most ~10 ms (100 x 0.1 ms), for paths where
 * another thread may hold the lock forever (exit, a kill snapshot). 1: ours. */
int hw__lock_try_briefly(void);
/* ---- owner.c: the owner thread runs without locked instructions ----
 * The first tracked thread that allocates (hw__owner_claim) owns the
 * bookkeeping while no other thread writes it: its hw__lock is elided and
 * sampling mode's heap map and totals move with plain stores inside a
 * "plain section" (busy = 1 ... busy = 0). Everyone else announces itself in
 * hw__owner_shared and waits for busy == 0 behind a membarrier (owner.c has
 * the protocol and its proof). */
#define HW_OWNER_PERM 0x80000000u         /* a second thread writes: shared for good */
#define HW_OWNER_DONE 0x40000000u         /* ... and the owner was seen out since */
extern _Atomic uint32_t hw__owner_shared; /* visitors inside | PERM | DONE */
extern _Atomic uint32_t hw__owner_busy;   /* the owner is in a plain section */
extern HW_TLS int hw__owner_self;         /* 1: this thread owns; -1: it does not; 0: unknown yet */
extern HW_TLS int hw__owner_elided;       /* the owner holds hw__lock without taking it */
extern HW_TLS int hw__owner_visiting;     /* this thread counts in hw__owner_shared */
void hw__owner_start(void); /* before tracking starts: membarrier, HIGHWATER_OWNER_FAST */
void hw__owner_claim(void);
void hw__owner_visit(void);    /* announce, then wait until the owner is out */
int hw__owner_visit_try(void); /* the same, never waiting: 0 when the owner is in */
void hw__owner_unvisit(void);
void hw__owner_reset_in_child(void);
int hw__owner_fast(void); /* the owner's plain path is still possible (tests) */

/* The core test's build (native/Makefile) widens the owner's plain
 * read-modify-writes so that a broken handshake loses an update often
 * enough to be seen; nothing in the shim's own build. */
#ifdef HW_TEST_RACE_WINDOW
#define HW_RACE_WINDOW()                                                                           \
  do {                                                                                             \
    for (volatile int hw_w_ = 0; hw_w_ < HW_TEST_RACE_WINDOW; hw_w_++) {}                          \
  } while (0)
#else
#define HW_RACE_WINDOW() ((void)0)
#endif

/* Enters a plain section: 1 when nobody else writes (leave with
 * hw__owner_leave), 0 when the caller must take the real path. Owner only. */
static inline int hw__owner_enter(void) {
  atomic_store_explicit(&hw__owner_busy, 1, memory_order_relaxed);
  /* The compiler keeps the store before the load; the CPU may not, and
   * the visitor's membarrier covers that (owner.c). */
  atomic_signal_fence(memory_order_seq_cst);
  if (HW_LIKELY(atomic_load_explicit(&hw__owner_shared, memory_order_acquire) == 0)) return 1;
  atomic_store_explicit(&hw__owner_busy, 0, memory_order_release);
  return 0;
}
static inline void hw__owner_leave(void) {
  atomic_store_explicit(&hw__owner_busy, 0, memory_order_release);
}
/* A tracked allocation path: learn once whether this thread owns. */
static inline void hw__owner_note(void) {
  if (HW_UNLIKELY(hw__owner_self == 0)) hw__owner_claim();
}
/* The allocation paths' plain section (sampling mode's lock-free updates). */
static inline int hw__owner_plain(void) {
  hw__owner_note();
  return hw__owner_self == 1 && hw__owner_enter();
}

static inline void hw__lock_take_real(void) {
  uint32_t free_ = 0;
  if (HW_UNLIKELY(!atomic_compare_exchange_strong_explicit(
          &hw__lock.state, &free_, 1, memory_order_acquire, memory_order_relaxed)))
    hw__lock_wait(&hw__lock);
}
/* Not yet shared for good: another thread than the owner announces itself.
 * Read again with the lock held (hw__owner_start clears DONE under it). */
static inline int hw__owner_must_visit(void) {
  return hw__owner_self != 1 && !hw__owner_visiting &&
         !(HW_RELAXED(hw__owner_shared) & HW_OWNER_DONE);
}
static inline void hw__lock_take(void) {
  if (HW_LIKELY(hw__owner_self == 1) && HW_LIKELY(hw__owner_enter())) {
    hw__owner_elided = 1;
    return;
  }
  if (HW_UNLIKELY(hw__owner_must_visit())) hw__owner_visit();
  hw__lock_take_real();
  if (HW_UNLIKELY(hw__owner_must_visit())) hw__owner_visit();
}
static inline void hw__lock_give(void) {
  if (HW_LIKELY(hw__owner_elided)) {
    hw__owner_elided = 0;
    hw__owner_leave();
    return;
  }
  if (HW_UNLIKELY(atomic_exchange_explicit(&hw__lock.state, 0, memory_order_release) == 2))
    hw__lock_wake(&hw__lock);
  if (HW_UNLIKELY(hw__owner_visiting)) hw__owner_unvisit();
}
static inline int hw__lock_try(void) {
  if (hw__owner_self == 1 && hw__owner_enter()) {
    hw__owner_elided = 1;
    return 1;
  }
  if (hw__owner_must_visit() && !hw__owner_visit_try()) return 0;
  uint32_t free_ = 0;
  if (!atomic_compare_exchange_strong_explicit(&hw__lock.state, &free_, 1, memory_order_acquire,
                                               memory_order_relaxed)) {
    if (hw__owner_visiting) hw__owner_unvisit();
    return 0;
  }
  if (hw__owner_must_visit() && !hw__owner_visit_try()) {
    hw__lock_give();
    return 0;
  }
  return 1;
}
/* A fork child: the only thread left; the lock was held by the parent's
 * fork, and the owner (if any) is gone or is this thread: claimed anew. */
static inline void hw__lock_reset(void) {
  atomic_store_explicit(&hw__lock.state, 0, memory_order_relaxed);
  hw__owner_reset_in_child();
}
extern _Atomic int hw__tracking;
void hw__track_alloc(void *p, size_t size, uint32_t node);
void hw__track_free(void *p);
/* Like track_free, giving back what the block was charged (0: not tracked). */
int hw__track_take(void *p, size_t *size, uint32_t *node);
void hw__track_mmap(void *p, size_t len, uint32_t node);
void hw__track_munmap(void *p, size_t len);
void hw__tracker_reset(void); /* API mode: forget everything, start a new peak */
void hw__tracker_forget_in_child(void);
size_t hw__tracker_live_allocations(void);
size_t hw__tracker_overhead_bytes(void);

/* ---- pystack.c: the shadow stack fed by the profile callback ---- */
#define HW_SLEVEL_MEMO 4
typedef struct {
  void *frame;   /* PyFrameObject*, borrowed: alive between CALL and RETURN */
  uint32_t node; /* node of the stack down to here while suspended, or NONE */
  /* Its end is seen (the profile callback, or the frame-evaluation hook
   * started it): it is never left behind on the shadow stack after it
   * ended, and the frames below it cannot resume while it is there. A frame
   * read from the interpreter's chain (hw__rebuild) is not: it may end
   * without a pop. */
  uint32_t hooked;
  /* The profile callback's frames: we hold a reference to the frame object
   * (taken at its call event, dropped at its return). A program that sets
   * its own profile function stops our events, and a frame that then ends
   * unseen stays on the shadow stack: held, it is still an object, never
   * freed memory read for a line (pystack.c, hw__pop_held). */
  uint32_t held;
  /* Sampling mode's f_back walk (3.8 - 3.10): the frame's code object and
   * instruction when its node was computed; the node is reused while they
   * and every frame below are the same. */
  void *code;
  int lasti;
  /* The last few nodes this level was interned to (hw__shadow_level_node in
   * pystack.c): kept across the frames pushed at this depth. */
  struct {
    void *code;
    int lasti;
    uint32_t parent, node, gen; /* node 0 = empty */
  } memo[HW_SLEVEL_MEMO];
} hw_sframe;

typedef struct {
  int guard;          /* re-entrancy: inside a hook or our own code */
  int registered;     /* the profile callback runs on this thread */
  uint32_t inherited; /* node charged when no Python frame is known */
  uint32_t last_node; /* last node computed with the GIL held */
  int depth, capacity;
  hw_sframe *frames;
  uint32_t fwalk_gen; /* hw__code_gen when the f_back walk filled frames[] */
  void *walk;         /* framewalk.c's per-thread cache (3.11+) */
  void *front;        /* intern.c's per-thread front caches */
  /* guard.c: the share of the guard's byte budget this thread took, spent
   * without atomics; valid only while budget_epoch is the guard's epoch. */
  uint64_t budget_left;
  uint32_t budget_epoch;
} hw_thread_t;
extern HW_TLS hw_thread_t hw__thread;
uint32_t hw__current_node(hw_thread_t *t);
int hw__py_register_thread(int seed, int skip);
/* Frees the thread's pages above (shadow stack, walk and intern caches) when
 * it ends; call when allocating them. */
void hw__thread_keep(hw_thread_t *t);
void hw__walk_free(hw_thread_t *t);
void hw__front_free(hw_thread_t *t);
/* framewalk.c: 3.11+ stacks read from the interpreter's frames (no profile
 * callback). hw__walk_init verifies the layout; GIL held. */
extern _Atomic int hw__walk_on;
int hw__walk_init(void);
uint32_t hw__walk_node(hw_thread_t *t);
/* munmap: a data-stack chunk of this thread may be going (datastack.c). */
void hw__walk_unmapped(hw_thread_t *t, void *addr, size_t len);
/* Walks of this thread the held chunk let stop a chunk higher (datastack.c). */
unsigned long hw__walk_held_walks(hw_thread_t *t);
/* pystack.c, 3.8 - 3.10: the shadow stack fed by a frame-evaluation hook
 * (PEP 523) instead of the profile callback; hw__eval_init verifies and
 * installs it, GIL held. */
extern _Atomic int hw__eval_on;
/* Sampling mode, 3.8 - 3.10: no hook, the f_back chain read at sampled
 * allocations only (hw__eval_init sets it instead of installing the hook). */
extern _Atomic int hw__fwalk_on;
int hw__eval_init(void);
void hw__py_unregister_thread(void);

/* ---- compat.c: the CPython C-API, resolved at run time ---- */
typedef struct _object PyObject;
typedef struct {
  int ready; /* every required symbol was found */
  int minor; /* 3.<minor> */
  char version[32];
  int (*Py_IsInitialized)(void);
  int (*PyGILState_Check)(void);
  void (*PyEval_SetProfile)(int (*)(PyObject *, void *, int, PyObject *), PyObject *);
  void *(*PyEval_GetFrame)(void);
  int (*PyFrame_GetLineNumber)(void *);
  void *(*PyFrame_GetCode)(void *); /* 3.9+, new reference */
  void *(*PyFrame_GetBack)(void *); /* 3.9+, new reference */
  PyObject *(*PyObject_GetAttrString)(PyObject *, const char *);
  const char *(*PyUnicode_AsUTF8AndSize)(PyObject *, ssize_t *);
  void (*Py_IncRef)(PyObject *);
  void (*Py_DecRef)(PyObject *);
  void (*PyErr_Fetch)(PyObject **, PyObject **, PyObject **);
  void (*PyErr_Restore)(PyObject *, PyObject *, PyObject *);
  const char *(*Py_GetVersion)(void);
  void *PyCode_Type;
} hw_py_t;
extern hw_py_t hw__py;
extern _Atomic int hw__py_alive; /* interpreter usable: between bootstrap and atexit */
int hw__py_resolve(void);
/* 3.11+: where the interpreter keeps its frames (offsets in bytes). */
typedef struct {
  int minor;
  size_t cframe;         /* PyThreadState.cframe (3.11, 3.12), 0 = none */
  size_t cframe_current; /* _PyCFrame.current_frame */
  size_t current_frame;  /* PyThreadState.current_frame (3.13+), 0 = none */
  size_t code;           /* f_code / f_executable */
  uintptr_t code_tag;    /* tag bits of a _PyStackRef f_executable (3.14+) */
  size_t previous, instr, owner;
  size_t code_adaptive; /* 3.11: PyCodeObject.co_code_adaptive */
  int cstack_owner;     /* owner value of C-stack entry frames, -1 = none */
  /* PyThreadState.datastack_chunk (then datastack_top, datastack_limit);
   * 0 = unknown: no level is ever skipped (datastack.c) */
  size_t datastack_chunk;
  /* PyThreadState.datastack_cached_chunk, the one popped chunk 3.13.13+,
   * 3.14.4+ and 3.15 hold back (datastack.c, "The held chunk"); 0 = none */
  size_t datastack_held;
} hw_frame_layout;
#define HW_PYFRAME_F_FRAME 24                  /* PyFrameObject.f_frame, 3.11 - 3.15 */
const hw_frame_layout *hw__frame_layout(void); /* NULL before 3.11 or unknown */
static inline void *hw__iframe_code(const hw_frame_layout *L, void *iframe) {
  return (void *)(*(uintptr_t *)((char *)iframe + L->code) & ~L->code_tag);
}
void *hw__frame_code(void *frame);          /* new reference */
void *hw__frame_back(void *frame);          /* new reference or NULL */
void *hw__frame_code_borrowed(void *frame); /* no call, no refcount; NULL if unknown */
int hw__py_check_offsets(void);
/* 3.8 - 3.10: a frame's line read from memory only (safe without the GIL);
 * -2 when the layout is not verified (hw__lines_verify, GIL held). */
int hw__frame_line_direct(void *frame);
int hw__lines_verify(void);
/* 3.8 has no PyFrame_GetCode/GetBack; its PyFrameObject (3.9, 3.10 too)
 * starts with PyObject_VAR_HEAD (24 bytes), then f_back, then f_code. */
#define HW_PY38_F_BACK 24
#define HW_PY38_F_CODE 32
typedef struct {
  int minor;
  size_t f_trace;           /* 3.8, 3.9: the line is f_lineno while tracing */
  size_t f_lasti;           /* int; 3.8, 3.9 in bytes, 3.10 in code units */
  size_t f_lineno;          /* int; 3.10: when not 0, the line */
  size_t co_lines;          /* co_lnotab / co_linetable */
  size_t tstate_frame;      /* PyThreadState.frame */
  size_t interp_eval_frame; /* 3.8: PyInterpreterState.eval_frame (3.9+: a setter) */
} hw_line_layout;
/* The 3.8 - 3.10 layout once hw__lines_verify verified it, else NULL. */
const hw_line_layout *hw__line_layout(void);
/* 1 when a 3.8 - 3.10 frame's line is a function of its code object and
 * instruction alone (read from memory with the verified layout L, not
 * traced: a traced frame reports the tracer's f_lineno), with both in *code
 * and *lasti; 0 when it is not, or L is NULL (lines not read from memory). */
static inline int hw__frame_line_key(const hw_line_layout *L, void *frame, void **code,
                                     int *lasti) {
  if (!L || !frame) return 0;
  if (L->minor <= 9 ? HW_AT(frame, L->f_trace) != NULL : *(int *)((char *)frame + L->f_lineno) != 0)
    return 0;
  *code = HW_AT(frame, HW_PY38_F_CODE);
  *lasti = *(int *)((char *)frame + L->f_lasti);
  return *code != NULL;
}
int hw__is_code(void *obj);
/* Where a code object keeps its names and lines, and where a compact str
 * keeps its characters, per minor version (compat.c; verified by names.c). */
typedef struct {
  int minor;
  size_t co_filename, co_name; /* co_name before 3.11, co_qualname after */
  size_t co_firstlineno;
  size_t co_linetable; /* co_lnotab (3.8, 3.9) / co_linetable; 0 = not used for line ids */
  size_t str_ascii_data, str_compact_data;
} hw_code_layout;
const hw_code_layout *hw__code_layout(void); /* NULL: unknown version */
/* names.c: pure reads of a code object's file and function names. */
int hw__names_verify(void);
uint64_t hw__code_sig(void *code);
/* codewatch.c: moves on every code object's death; caches keyed by a code
 * object's address compare it with the generation they were filled in. */
extern _Atomic uint32_t hw__code_gen;
int hw__code_watch_init(void);          /* GIL held, before tracking; -1: cannot watch */
int hw__intern_forget_code(void *code); /* intern.c: the code died */
uint64_t hw__code_lines_id(void *code); /* 0: unknown, do not cache lines */
int hw__code_names(void *code, char *file, size_t fcap, size_t *flen, char *name, size_t ncap,
                   size_t *nlen);

/* ---- guard.c: memory readings and the synchronous floor ---- */
typedef struct {
  int source; /* HW_SOURCE_* */
  uint64_t limit, usage, inactive_file, active_file, working_set, host_available, host_total,
      available, swap;
  int available_known; /* 0: neither a limit nor host MemAvailable could be read */
} hw_readings_t;
void hw__guard_init(void);
/* Fork child handler: the guard lock as if never taken (guard.c). */
void hw__guard_reset_in_child(void);
int hw__read_memory(hw_readings_t *r);
/* The memory cgroup found by the readings (0 before the first reading found
 * one): this process's own directory and the limiting ancestor's, and the
 * version (1 or 2). */
int hw__memory_cgroup_dirs(const char **own, const char **limiting, int *version);
/* hw__read_whole under the readings' test root (HIGHWATER_TEST_ROOT). */
ssize_t hw__read_cgroup_file(const char *path, char *buf, size_t cap);

/* ---- killsnap.c: live bytes per node at the kernel's OOM kill ---- */
/* Control thread tick and the exit paths: copies `live` into the `kill` area
 * the first time the cgroup's oom_kill count moves past its value at start. */
void hw__killsnap_check(void);
void hw__publish_readings(const hw_readings_t *r);
/* Called before an allocation of `size` bytes: 0 to go on, or the rule
 * (HW_OOM_LOW_AVAILABLE, HW_OOM_SWAP) the allocation would break if it succeeds. */
int hw__guard_check(size_t size);
/* The common case of hw__guard_check, inlined into the hooks: this thread's
 * chunk, of this epoch, holds the allocation. A relaxed load and plain
 * arithmetic, no locked instruction. 0: ask hw__guard_check. */
extern _Atomic uint32_t hw__budget_epoch;
static inline int hw__guard_spend(hw_thread_t *t, size_t size) {
  if (HW_LIKELY(t->budget_epoch == HW_RELAXED(hw__budget_epoch) && size < t->budget_left)) {
    t->budget_left -= size;
    return 1;
  }
  return 0;
}
/* The byte budget left before the next reading (native/test/core_test.c). */
uint64_t hw__guard_budget(void);
uint64_t
hw__guard_seq(void); /* 2 x the readings the guard took, odd while one sets its budget (tests) */
/* An allocation the real allocator refused: recorded (last one and a count,
 * also in the state header), never fatal by itself. */
void hw__failed_allocation(size_t size, uint32_t node);
uint64_t hw__failed_last(size_t *bytes, uint32_t *node); /* returns the count */
void hw__guard_set_floor(uint64_t floor);
extern _Atomic int hw__guard_on;
__attribute__((noreturn)) void hw__oom_exit(int reason, size_t bytes, uint32_t node);

/* ---- dump.c ---- */
enum { HW_SNAP_PEAK = 1, HW_SNAP_CURRENT = 2 };
/* Writes a raw dump. path NULL: hw-<pid>-<seq>.dump in the run dir. The path
 * written is copied to out (if not NULL). Returns 0 or -errno. */
/* Fork child handler: the dump lock as if never taken (dump.c). */
void hw__dump_reset_in_child(void);
/* The next dump's number comes after every hw-<pid>-N.dump already in the run
 * dir: a program that exec'd this one in the same process (children.c) left
 * its exit dump under our pid, and a rename over it would lose it. */
void hw__dump_seq_after_taken(void);
int hw__dump(const char *path, const char *trigger, int reason, int snaps, size_t oom_bytes,
             uint32_t oom_node, char *out, size_t outlen);

/* ---- timeline.c: memory over time, in the state file ---- */
uint64_t hw__timeline_bytes(void);
void hw__timeline_init(void); /* after the state file is mapped */
void hw__timeline_sample(int force);
extern _Atomic int64_t hw__tl_lo, hw__tl_hi;
/* Allocation path (hw__lock held): one compare unless bytes moved a lot. */
static inline void hw__timeline_moved(int64_t cur) {
  if (HW_UNLIKELY(cur < HW_RELAXED(hw__tl_lo) || cur > HW_RELAXED(hw__tl_hi)))
    hw__timeline_sample(0);
}

/* Both bands at once, for sampling mode's lean path (lean.h): the total is
 * inside the timeline's band and the container's while it is inside
 * [hw__band_lo, hw__band_hi], the larger low and the smaller high.
 * hw__bands_sync rewrites it; every write of either band calls it after. */
extern _Atomic int64_t hw__band_lo, hw__band_hi;
void hw__bands_sync(void);

/* ---- control.c ---- */
int hw__control_start(void);
void hw__control_close_in_child(void);
/* Around a Python-level os.fork() (bootstrap hooks, through init.c). */
void hw__control_park(void);
void hw__control_fork_counted(void);
void hw__control_fork_parent(void);
extern _Atomic int hw__fork_watch; /* parked: CPython's thread count is still to come */

/* ---- container.c: the container file shared by every tracked process ---- */
enum { HW_ORIGIN_ROOT = 1, HW_ORIGIN_EXEC = 2, HW_ORIGIN_FORK = 3 };
extern volatile uint64_t *hw__cont_epoch; /* the container's peakEpoch (a private 0 when none) */
extern uint64_t hw__cont_seen;            /* the epoch this process's cpeak area holds */
extern int64_t hw__cont_lo, hw__cont_hi;  /* publish when tracked bytes leave [lo, hi] */
/* Joins (or creates) the container file; origin and tracked parent come from
 * the fork (HW_ORIGIN_FORK) or are found here (0). State file open. */
void hw__container_join(int origin, uint64_t tracked_parent);
void hw__container_forget_in_child(void); /* fork child handler: the slot is the parent's */
void hw__container_snapshot(void);        /* hw__lock held */
void hw__container_publish(int64_t cur);  /* hw__lock held */
void hw__container_leave(int have_code, int code);
void hw__container_tick(void); /* control thread: reap slots of dead processes */
/* OOM: claim the container flag (before the dump), then stop the others. */
void hw__container_oom_claim(int reason);
void hw__container_oom_after_dump(void);
__attribute__((noreturn)) void hw__container_stop_all(void); /* then _exit(53) */
int hw__container_oom_set(void);
/* A process started while the container is stopped for an OOM stops itself (container.c). */
void hw__container_fork_check(uint64_t parent_pid, uint64_t parent_ticks); /* fork child handler */
void hw__container_stop_late_joiner(void);                                 /* at join */
extern uint64_t hw__fork_parent_pid, hw__fork_parent_ticks;
uint64_t hw__proc_start_ticks(int pid, int *ppid, char *state);
/* Before `live` changes (hw__lock held): one compare, a copy after a new container peak. */
static inline void hw__container_check(void) {
  if (HW_UNLIKELY(*hw__cont_epoch != hw__cont_seen)) hw__container_snapshot();
}
/* The band is read without hw__lock by sampling mode's lock-free total
 * (relaxed: a hint; the publication itself takes the lock). */
static inline int hw__container_out_of_band(int64_t cur) {
  return cur < __atomic_load_n(&hw__cont_lo, __ATOMIC_RELAXED) ||
         cur > __atomic_load_n(&hw__cont_hi, __ATOMIC_RELAXED);
}
static inline void hw__container_moved(int64_t cur) {
  if (HW_UNLIKELY(hw__container_out_of_band(cur))) hw__container_publish(cur);
}

/* ---- children.c: forked children start their own tracking ---- */
extern volatile int hw__child_pending;         /* a fork child that has not allocated yet */
void hw__children_prepare(void);               /* atfork prepare */
int hw__children_fork_child(int was_tracking); /* atfork child; 1: tracking restarts lazily */
int hw__child_begin(void);                     /* first allocation in the child: 1 = tracking */

/* ---- process.c: leaf helpers (no unit depends on init.c, the exported API) ---- */
extern _Atomic int hw__active; /* a Python process with a run dir */
extern _Atomic int hw__in_child;
uint64_t hw__now_ms(void);

#pragma GCC visibility pop

#endif
