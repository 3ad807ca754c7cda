/*
 * The raw dump (JSON Lines, docs/protocol.md). Written with fixed buffers and
 * write(2) — no heap — so it works inside a failing malloc and at the OOM
 * floor. Written to "<path>.tmp" and renamed: a .dump file is always whole.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "hw.h"
#include "timeline.h"
#include "writer.h"

static pthread_mutex_t hw__dump_lock = PTHREAD_MUTEX_INITIALIZER;
static hw_writer hw__wr;
static char hw__src_buf[64 * 1024];
static unsigned hw__dump_seq;
/* A source file is read front to back up to its last wanted line, and never
 * more than this: a dump must end even when a "source" is endless. */
#define HW_SOURCE_READ_MAX (64u << 20)

typedef struct {
  uint32_t func, line;
} hw_pair;

/* How many frames a stack of the dump holds at most. A deeper one keeps its
 * innermost frames, the marker of frames not recorded, and its outermost
 * HW_DUMP_OUTER (the program's entry), as the walk does (framewalk.c);
 * before, its outermost frames were dropped without a word. The marker's
 * function must be among the dump's funcs: made before the dump began. */
#define HW_DUMP_DEPTH 2048
#define HW_DUMP_OUTER 64
static uint64_t hw__w_fcount; /* funcs written to this dump (hw__dump) */

static void hw__w_frame(hw_writer *w, uint32_t func, uint32_t line, int more) {
  hw__w_str(w, "[");
  hw__w_u64(w, func);
  hw__w_str(w, ",");
  hw__w_u64(w, line);
  hw__w_str(w, more ? "]," : "]");
}

static void hw__w_frames(hw_writer *w, uint32_t node) {
  uint32_t path[HW_DUMP_DEPTH];
  int n = 0;
  const hw_node_rec *nodes = hw__state.nodes;
  while (node != 0 && n < HW_DUMP_DEPTH) {
    path[n++] = node;
    node = nodes[node].parent;
  }
  uint32_t marker = node != 0 ? hw__not_recorded_func_id() : HW_NODE_NONE;
  hw__w_str(w, "[");
  if (marker != HW_NODE_NONE && marker < hw__w_fcount) {
    uint32_t outer[HW_DUMP_OUTER];
    long seen = 0;
    while (node != 0 && seen < (1l << 24)) { /* parents come before their children: no cycle */
      outer[seen % HW_DUMP_OUTER] = node;
      seen++;
      node = nodes[node].parent;
    }
    long o = node != 0 ? 0 : seen < HW_DUMP_OUTER ? seen : HW_DUMP_OUTER;
    for (long x = seen - 1; x >= seen - o; x--) {
      const hw_node_rec *r = &nodes[outer[x % HW_DUMP_OUTER]];
      hw__w_frame(w, r->func, r->line, 1);
    }
    hw__w_frame(w, marker, 0, 1);
    n = HW_DUMP_DEPTH - 1 - (int)o;
  }
  for (int i = n - 1; i >= 0; i--) hw__w_frame(w, nodes[path[i]].func, nodes[path[i]].line, i);
  hw__w_str(w, "]");
}

/* Marks every node on the path of `node` in the bitmap. */
static void hw__mark_path(uint64_t *bits, uint32_t node) {
  while (node != 0 && !(bits[node >> 6] & (1ull << (node & 63)))) {
    bits[node >> 6] |= 1ull << (node & 63);
    node = hw__state.nodes[node].parent;
  }
}

static int hw__w_stacks(hw_writer *w, const int64_t *bytes, uint64_t count, const char *snap,
                        uint64_t *bits) {
  int stacks = 0;
  for (uint64_t i = 0; i < count; i++) {
    if (bytes[i] <= 0) continue;
    hw__w_str(w, "{\"type\":\"stack\",\"snapshot\":\"");
    hw__w_str(w, snap);
    hw__w_str(w, "\",\"bytes\":");
    hw__w_i64(w, bytes[i]);
    hw__w_str(w, ",\"frames\":");
    hw__w_frames(w, (uint32_t)i);
    hw__w_str(w, "}\n");
    if (bits) hw__mark_path(bits, (uint32_t)i);
    stacks++;
  }
  return stacks;
}

static int hw__pair_cmp(const hw_pair *a, const hw_pair *b) {
  const hw_func_rec *fa = &hw__state.funcs[a->func], *fb = &hw__state.funcs[b->func];
  size_t la = fa->file_len, lb = fb->file_len;
  int c =
      memcmp(hw__state.strings + fa->file_off, hw__state.strings + fb->file_off, la < lb ? la : lb);
  if (c) return c;
  if (la != lb) return la < lb ? -1 : 1;
  return a->line < b->line ? -1 : a->line > b->line;
}

/* Heap sort: qsort may allocate, and we may be at the memory floor. */
static void hw__sift(hw_pair *p, size_t start, size_t end) {
  size_t root = start;
  while (2 * root + 1 < end) {
    size_t child = 2 * root + 1;
    if (child + 1 < end && hw__pair_cmp(&p[child], &p[child + 1]) < 0) child++;
    if (hw__pair_cmp(&p[root], &p[child]) >= 0) return;
    hw_pair t = p[root];
    p[root] = p[child];
    p[child] = t;
    root = child;
  }
}

static void hw__sort_pairs(hw_pair *p, size_t n) {
  if (n < 2) return;
  for (size_t i = n / 2; i-- > 0;) hw__sift(p, i, n);
  for (size_t end = n - 1; end > 0; end--) {
    hw_pair t = p[0];
    p[0] = p[end];
    p[end] = t;
    hw__sift(p, 0, end);
  }
}

static void hw__w_source_line(hw_writer *w, const hw_func_rec *f, uint32_t line, const char *text,
                              size_t len) {
  while (len && (text[len - 1] == '\n' || text[len - 1] == '\r')) len--;
  if (len > 512) len = 512;
  hw__w_str(w, "{\"type\":\"source\",\"file\":");
  hw__w_json(w, hw__state.strings + f->file_off, f->file_len);
  hw__w_str(w, ",\"line\":");
  hw__w_u64(w, line);
  hw__w_str(w, ",\"text\":");
  hw__w_json(w, text, len);
  hw__w_str(w, "}\n");
}

/* Emits the wanted lines of one file, reading it once, front to back. */
static int hw__w_file_sources(hw_writer *w, const hw_pair *p, size_t n) {
  const hw_func_rec *f = &hw__state.funcs[p[0].func];
  char path[1024];
  if (f->file_len == 0 || f->file_len >= sizeof path) return 0;
  memcpy(path, hw__state.strings + f->file_off, f->file_len);
  path[f->file_len] = '\0';
  if (path[0] == '<') return 0; /* <frozen ...>, <string>: no file */
  hw_ownfd src;
  if (hw__own_open(&src, path, O_RDONLY | O_NONBLOCK, 0) != 0) return 0;
  if (!S_ISREG(src.mode)) { /* a FIFO or device named like a source file */
    hw__own_close(&src);
    return 0;
  }
  int written = 0;
  size_t total = 0;
  size_t want = 0;
  uint32_t lineno = 1;
  char line[520];
  size_t llen = 0;
  while (want < n && p[want].line < 1) want++;
  while (want < n && total < HW_SOURCE_READ_MAX) {
    ssize_t got = hw__own_read(&src, hw__src_buf, sizeof hw__src_buf);
    if (got <= 0) break;
    total += (size_t)got;
    for (ssize_t i = 0; i < got && want < n; i++) {
      char c = hw__src_buf[i];
      if (lineno == p[want].line && llen < sizeof line) line[llen++] = c;
      if (c == '\n') {
        if (lineno == p[want].line) {
          hw__w_source_line(w, f, lineno, line, llen);
          written++;
        }
        lineno++;
        llen = 0;
        while (want < n && p[want].line < lineno) want++;
      }
    }
  }
  if (want < n && lineno == p[want].line && llen) {
    hw__w_source_line(w, f, lineno, line, llen); /* last line, no newline */
    written++;
  }
  hw__own_close(&src);
  return written;
}

static int hw__w_sources(hw_writer *w, uint64_t *bits, uint64_t count) {
  size_t n = 0;
  for (uint64_t i = 1; i < count; i++)
    if (bits[i >> 6] & (1ull << (i & 63))) n++;
  if (!n) return 0;
  size_t bytes = n * sizeof(hw_pair);
  hw_pair *pairs = hw__pages_alloc(bytes);
  if (!pairs) return 0;
  size_t k = 0;
  for (uint64_t i = 1; i < count; i++) {
    if (!(bits[i >> 6] & (1ull << (i & 63)))) continue;
    const hw_node_rec *nd = &hw__state.nodes[i];
    if (nd->func == HW_NODE_NONE || nd->func >= hw__state.hdr->func_count) continue;
    pairs[k].func = nd->func;
    pairs[k].line = nd->line;
    k++;
  }
  hw__sort_pairs(pairs, k);
  int written = 0;
  size_t start = 0;
  while (start < k) {
    size_t end = start + 1;
    while (end < k) {
      hw_pair a = pairs[start], b = pairs[end];
      b.line = a.line;
      if (hw__pair_cmp(&a, &b) != 0) break;
      end++;
    }
    written += hw__w_file_sources(w, pairs + start, end - start);
    start = end;
  }
  hw__pages_free(pairs, bytes);
  return written;
}

static void hw__w_header(hw_writer *w, const char *trigger, int reason, const hw_readings_t *r) {
  static const char *reasons[] = {"null", "\"low-available\"", "\"swap\"", "\"failed-allocation\""};
  static const char *sources[] = {"none", "cgroup-v1", "cgroup-v2", "host"};
  hw_state_header *h = hw__state.hdr;
  hw__w_str(w, "{\"type\":\"header\",\"format\":\"highwater-dump\",\"version\":1,\"pid\":");
  hw__w_u64(w, (uint64_t)getpid());
  hw__w_str(w, ",\"trigger\":");
  hw__w_json(w, trigger, strlen(trigger));
  hw__w_str(w, ",\"oomReason\":");
  hw__w_str(w, reasons[reason >= 0 && reason <= 3 ? reason : 0]);
  hw__w_str(w, ",\"timeMs\":");
  hw__w_u64(w, hw__now_ms());
  hw__w_str(w, ",\"python\":");
  hw__w_json(w, hw__py.version, strlen(hw__py.version));
  hw__w_str(w, ",\"argv\":[");
  size_t i = 0, cap = sizeof h->argv - 1;
  int first = 1;
  while (i < cap && h->argv[i]) {
    size_t len = strnlen(h->argv + i, cap - i);
    if (!first) hw__w_str(w, ",");
    hw__w_json(w, h->argv + i, len);
    first = 0;
    i += len + 1;
  }
  hw__w_str(w, "],\"cwd\":");
  char cwd[1024];
  if (!getcwd(cwd, sizeof cwd)) cwd[0] = '\0';
  hw__w_json(w, cwd, strlen(cwd));
  hw__w_str(w, ",\"peakBytes\":");
  hw__w_i64(w, h->peak_bytes);
  hw__w_str(w, ",\"currentBytes\":");
  hw__w_i64(w, h->current_bytes);
  hw__w_str(w, ",\"sampleRateBytes\":");
  hw__w_u64(w, h->sample_rate_bytes);
  hw__w_str(w, ",\"memory\":{\"source\":\"");
  hw__w_str(w, sources[r->source >= 0 && r->source <= 3 ? r->source : 0]);
  hw__w_str(w, "\"");
  const struct {
    const char *key;
    uint64_t v;
  } fields[] = {
      {"limitBytes", r->limit},
      {"usageBytes", r->usage},
      {"workingSetBytes", r->working_set},
      {"hostAvailableBytes", r->host_available},
      {"availableBytes", r->available},
      {"swapBytes", r->swap},
      {"floorBytes", h->floor_bytes},
  };
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
    hw__w_str(w, ",\"");
    hw__w_str(w, fields[i].key);
    hw__w_str(w, "\":");
    hw__w_u64(w, fields[i].v);
  }
  hw__w_str(w, "}}\n");
}

/* Directory entries as getdents64 gives them (glibc has no wrapper before 2.30). */
struct hw_dirent64 {
  uint64_t ino;
  int64_t off;
  unsigned short reclen;
  unsigned char type;
  char name[];
};

void hw__dump_seq_after_taken(void) {
  char prefix[32];
  int plen = snprintf(prefix, sizeof prefix, "hw-%d-", (int)getpid());
  hw_ownfd own;
  if (hw__own_open(&own, hw__config.run_dir, O_RDONLY | O_DIRECTORY | O_NONBLOCK, 0) != 0) return;
  _Alignas(8) char buf[8192];
  unsigned taken = hw__dump_seq;
  /* Bounded: a run dir of a million names is read 8 KiB at a time, 4 MiB at most. */
  for (int reads = 0; reads < 512 && hw__own_check(&own); reads++) {
    long n = syscall(SYS_getdents64, own.fd, buf, sizeof buf);
    if (n <= 0) break;
    for (long at = 0; at < n;) {
      const struct hw_dirent64 *d = (const struct hw_dirent64 *)(buf + at);
      at += d->reclen;
      if (strncmp(d->name, prefix, (size_t)plen) != 0) continue;
      const char *p = d->name + plen;
      unsigned long seq = 0;
      int digits = 0;
      for (; *p >= '0' && *p <= '9' && digits < 10; p++, digits++)
        seq = seq * 10 + (unsigned)(*p - '0');
      if (digits && strncmp(p, ".dump", 5) == 0 && seq > taken && seq < 0xFFFFFFFFu)
        taken = (unsigned)seq;
    }
  }
  hw__own_close(&own);
  hw__dump_seq = taken;
}

/* The fork child handler: a dump in progress on another thread of the
 * parent (SIGUSR2, a request, the OOM dump) left the lock held for a thread
 * the child does not have, and the child's own dumps (its exit, its OOM)
 * would wait for ever. Every dump sets the writer up afresh; the parent's
 * file is the parent's: forgotten, never written or closed here. */
void hw__dump_reset_in_child(void) {
  pthread_mutex_init(&hw__dump_lock, NULL);
  hw__wr.out.fd = -1;
}

int hw__dump(const char *path, const char *trigger, int reason, int snaps, size_t oom_bytes,
             uint32_t oom_node, char *out, size_t outlen) {
  hw_state_header *h = hw__state.hdr;
  if (!h) return -ENOENT;
  pthread_mutex_lock(&hw__dump_lock);
  char final[700], tmp[720];
  if (path) snprintf(final, sizeof final, "%s", path);
  else
    snprintf(final, sizeof final, "%s/hw-%d-%u.dump", hw__config.run_dir, (int)getpid(),
             ++hw__dump_seq);
  snprintf(tmp, sizeof tmp, "%s.tmp", final);
  /* Created exclusively: never a file or link someone else put there. */
  unlink(tmp);
  hw_writer *w = &hw__wr;
  if (hw__own_open(&w->out, tmp, O_WRONLY | O_CREAT | O_EXCL, hw__config.file_mode) != 0) {
    int e = errno;
    pthread_mutex_unlock(&hw__dump_lock);
    return -e;
  }
  w->error = 0;
  w->pos = 0;

  hw_readings_t r;
  hw__read_memory(&r);
  hw__publish_readings(&r);

  hw__lock_take();
  hw__w_header(w, trigger, reason, &r);
  uint64_t fcount = h->func_count;
  hw__w_fcount = fcount;
  for (uint64_t i = 0; i < fcount; i++) {
    const hw_func_rec *f = &hw__state.funcs[i];
    hw__w_str(w, "{\"type\":\"func\",\"id\":");
    hw__w_u64(w, i);
    hw__w_str(w, ",\"file\":");
    hw__w_json(w, hw__state.strings + f->file_off, f->file_len);
    hw__w_str(w, ",\"name\":");
    hw__w_json(w, hw__state.strings + f->name_off, f->name_len);
    hw__w_str(w, "}\n");
  }
  uint64_t count = h->node_count;
  size_t bits_bytes = ((count + 63) / 64) * 8;
  uint64_t *bits = hw__pages_alloc(bits_bytes);
  int stacks = 0;
  if (snaps & HW_SNAP_PEAK) {
    const int64_t *peak =
        h->peak_source == 1 ? (const int64_t *)hw__state.live : hw__state.snapshot;
    stacks += hw__w_stacks(w, peak, count, "peak", bits);
  }
  if (snaps & HW_SNAP_CURRENT)
    stacks += hw__w_stacks(w, (const int64_t *)hw__state.live, count, "current", bits);
  hw__lock_give();

  if (oom_bytes || oom_node != HW_NODE_NONE) {
    uint32_t node = oom_node == HW_NODE_NONE || oom_node >= count ? 0 : oom_node;
    hw__w_str(w, "{\"type\":\"oomAllocation\",\"bytes\":");
    hw__w_u64(w, oom_bytes);
    hw__w_str(w, ",\"frames\":");
    hw__w_frames(w, node);
    hw__w_str(w, "}\n");
    if (bits) hw__mark_path(bits, node);
  }
  size_t failed_bytes;
  uint32_t failed_node;
  uint64_t failed = hw__failed_last(&failed_bytes, &failed_node);
  if (failed) {
    /* Allocations the real allocator refused, handed back as NULL: the
     * program got a MemoryError it may have handled. The last one, where. */
    uint32_t node = failed_node == HW_NODE_NONE || failed_node >= count ? 0 : failed_node;
    hw__w_str(w, "{\"type\":\"failedAllocation\",\"count\":");
    hw__w_u64(w, failed);
    hw__w_str(w, ",\"bytes\":");
    hw__w_u64(w, failed_bytes);
    hw__w_str(w, ",\"frames\":");
    hw__w_frames(w, node);
    hw__w_str(w, "}\n");
    if (bits) hw__mark_path(bits, node);
  }
  int sources = bits ? hw__w_sources(w, bits, count) : 0;
  hw__pages_free(bits, bits_bytes);
  uint64_t short_bits = __atomic_load_n(&h->space_short, __ATOMIC_RELAXED);
  if (short_bits) { /* tables the full run dir stopped (state.c): the report says so */
    hw__w_str(w, "{\"type\":\"outOfSpace\",\"bits\":");
    hw__w_u64(w, short_bits);
    hw__w_str(w, "}\n");
  }
  hw__timeline_write(w);
  hw__w_str(w, "{\"type\":\"end\",\"funcs\":");
  hw__w_u64(w, fcount);
  hw__w_str(w, ",\"stacks\":");
  hw__w_u64(w, (uint64_t)stacks);
  hw__w_str(w, ",\"sources\":");
  hw__w_u64(w, (uint64_t)sources);
  hw__w_str(w, "}\n");
  hw__w_flush(w);
  int err = w->error;
  if (!hw__own_check(&w->out)) err = err ? err : EBADF; /* lost to the program mid-dump */
  else if (close(w->out.fd) != 0 && !err) err = errno;
  w->out.fd = -1;
  if (!err && rename(tmp, final) != 0) err = errno;
  if (err) unlink(tmp);
  else if (out) snprintf(out, outlen, "%s", final);
  pthread_mutex_unlock(&hw__dump_lock);
  return -err;
}
