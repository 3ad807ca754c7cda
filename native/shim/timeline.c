/*
 * Memory over time: a bounded series of samples in the state file, so a
 * post-mortem read has it as much as a dump does. Layout: docs/protocol.md
 * "Timeline". Samples are taken by the readings refresh (the control thread
 * every 250 ms, the guard when it re-reads) and from the allocation path when
 * tracked bytes moved a lot since the last sample. When the ring is full,
 * every other sample is dropped and the spacing doubles: the series always
 * covers the whole run with at most HW_TL_CAP points.
 *
 * Never blocks: two writers (the control thread, an allocating thread) meet
 * at a try-lock, and the loser skips its sample.
 */
#define _GNU_SOURCE
#include <stddef.h>
#include <string.h>

#include <sched.h>

#include "hw.h"
#include "timeline.h"

#define HW_TL_CAP 4096u
#define HW_TL_START_INTERVAL_MS 50u

typedef struct {
  uint64_t time_ms;
  int64_t tracked_bytes;
  uint64_t working_set_bytes, limit_bytes, floor_bytes;
} hw_tl_sample;

typedef struct {
  uint64_t capacity;
  volatile uint64_t count; /* samples 0 .. count-1 are complete */
  uint64_t interval_ms;
  volatile uint64_t peak_ms; /* when tracked bytes reached peak_bytes (as noticed here) */
  volatile int64_t peak_bytes;
  uint64_t start_ms;
  uint64_t reserved[2];
  hw_tl_sample samples[];
} hw_tl_region;

/* docs/protocol.md "Timeline": a 64-byte region header, 40-byte samples. */
_Static_assert(offsetof(hw_tl_region, capacity) == 0, "capacity");
_Static_assert(offsetof(hw_tl_region, count) == 8, "count");
_Static_assert(offsetof(hw_tl_region, interval_ms) == 16, "intervalMs");
_Static_assert(offsetof(hw_tl_region, peak_ms) == 24, "peakMs");
_Static_assert(offsetof(hw_tl_region, peak_bytes) == 32, "peakBytes");
_Static_assert(offsetof(hw_tl_region, start_ms) == 40, "startMs");
_Static_assert(offsetof(hw_tl_region, samples) == 64, "samples");
_Static_assert(sizeof(hw_tl_sample) == 40, "sample record");
_Static_assert(offsetof(hw_tl_sample, tracked_bytes) == 8 &&
                   offsetof(hw_tl_sample, working_set_bytes) == 16 &&
                   offsetof(hw_tl_sample, limit_bytes) == 24 &&
                   offsetof(hw_tl_sample, floor_bytes) == 32,
               "sample fields");

/* Tracked bytes outside [lo, hi]: sample again now (checked inline in hw.h). */
/* Relaxed: a hint for when to sample next; written by the sampler holding
 * hw__tl_busy, read by the allocation path. */
_Atomic int64_t hw__tl_lo = INT64_MIN, hw__tl_hi = INT64_MAX;
/* Empty until the first sync: every total leaves it (the slow path). */
_Atomic int64_t hw__band_lo = 1, hw__band_hi = 0;

/* Why a loop and no lock: it runs in fork child handlers too. Sequentially
 * consistent, so that of two threads moving different bands at once, the
 * one that stores last reads again after its store, sees the other's
 * band, and stores once more if what it stored was computed without it.
 * Each word ends written from the final four bounds. */
void hw__bands_sync(void) {
  for (;;) {
    int64_t tl = atomic_load(&hw__tl_lo), th = atomic_load(&hw__tl_hi);
    int64_t cl = __atomic_load_n(&hw__cont_lo, __ATOMIC_SEQ_CST);
    int64_t ch = __atomic_load_n(&hw__cont_hi, __ATOMIC_SEQ_CST);
    atomic_store(&hw__band_lo, tl > cl ? tl : cl);
    atomic_store(&hw__band_hi, th < ch ? th : ch);
    if (tl == atomic_load(&hw__tl_lo) && th == atomic_load(&hw__tl_hi) &&
        cl == __atomic_load_n(&hw__cont_lo, __ATOMIC_SEQ_CST) &&
        ch == __atomic_load_n(&hw__cont_hi, __ATOMIC_SEQ_CST))
      return;
  }
}
/* A try-lock: acquire on taking, release on giving back. */
static _Atomic int hw__tl_busy;

uint64_t hw__timeline_bytes(void) {
  return (uint64_t)sizeof(hw_tl_region) + (uint64_t)HW_TL_CAP * sizeof(hw_tl_sample);
}

static hw_tl_region *hw__tl(void) {
  hw_state_header *h = hw__state.hdr;
  if (!h || !h->off_timeline) return NULL;
  return (hw_tl_region *)((char *)h + h->off_timeline);
}

void hw__timeline_init(void) {
  hw_tl_region *t = hw__tl();
  if (!t) return;
  t->capacity = HW_TL_CAP;
  t->interval_ms = HW_TL_START_INTERVAL_MS;
  t->start_ms = hw__now_ms();
  t->count = 0;
  /* A child after fork starts here too: a flag held by a parent's thread at
   * fork time would otherwise stay held forever. */
  atomic_store_explicit(&hw__tl_busy, 0, memory_order_release);
  HW_SET_RELAXED(hw__tl_lo, INT64_MIN);
  HW_SET_RELAXED(hw__tl_hi, 0); /* the first allocation takes the first sample */
  hw__bands_sync();
}

/* Every other sample dropped, spacing doubled. The count is 0 while samples
 * move, so a reader after SIGKILL sees either the old or the new series. */
static void hw__tl_halve(hw_tl_region *t) {
  uint64_t n = t->count;
  __atomic_store_n(&t->count, 0, __ATOMIC_RELEASE);
  for (uint64_t i = 1; 2 * i < n; i++) t->samples[i] = t->samples[2 * i];
  t->interval_ms *= 2;
  __atomic_store_n(&t->count, (n + 1) / 2, __ATOMIC_RELEASE);
}

/* hw__tl_busy held. */
static void hw__tl_take(hw_tl_region *t, int force) {
  hw_state_header *h = hw__state.hdr;
  uint64_t now = hw__now_ms();
  int64_t cur = HW_HDR_GET(h->current_bytes);
  int64_t peak = HW_HDR_GET(h->peak_bytes);
  /* A new peak, or a lower one after the API's tracker reset. */
  if (peak != t->peak_bytes) {
    t->peak_bytes = peak;
    t->peak_ms = now;
  }
  uint64_t n = t->count;
  int moved = cur < HW_RELAXED(hw__tl_lo) || cur > HW_RELAXED(hw__tl_hi);
  if (force || moved || n == 0 || now >= t->samples[n - 1].time_ms + t->interval_ms) {
    if (n == HW_TL_CAP) {
      hw__tl_halve(t);
      n = t->count;
    }
    hw_tl_sample *s = &t->samples[n];
    s->time_ms = now;
    s->tracked_bytes = cur;
    s->working_set_bytes = HW_HDR_GET(h->working_set_bytes);
    s->limit_bytes = HW_HDR_GET(h->limit_bytes);
    s->floor_bytes = HW_HDR_GET(h->floor_bytes);
    __atomic_store_n(&t->count, n + 1, __ATOMIC_RELEASE);
    /* Next sample from the allocation path once bytes move by 1/8 (at least 1 MiB). */
    int64_t band = cur / 8 > (1 << 20) ? cur / 8 : (1 << 20);
    HW_SET_RELAXED(hw__tl_lo, cur - band);
    HW_SET_RELAXED(hw__tl_hi, cur + band);
    hw__bands_sync();
  }
}

void hw__timeline_sample(int force) {
  hw_tl_region *t = hw__tl();
  if (!t || t->capacity != HW_TL_CAP) return;
  if (atomic_exchange_explicit(&hw__tl_busy, 1, memory_order_acquire))
    return; /* the other writer samples */
  hw__tl_take(t, force);
  atomic_store_explicit(&hw__tl_busy, 0, memory_order_release);
}

void hw__timeline_write(hw_writer *w) {
  hw_tl_region *t = hw__tl();
  if (!t || t->capacity != HW_TL_CAP) return;
  /* Held while writing, so no halving moves samples under us; the other
   * writers only ever hold it for a sample, and skip theirs meanwhile. */
  for (int tries = 0; atomic_exchange_explicit(&hw__tl_busy, 1, memory_order_acquire); tries++) {
    if (tries > 10000) return; /* never hang a dump on the timeline: leave it out */
    sched_yield();
  }
  hw__tl_take(t, 1); /* the series ends at the moment of the dump */
  uint64_t n = t->count;
  hw__w_str(w, "{\"type\":\"timeline\",\"intervalMs\":");
  hw__w_u64(w, t->interval_ms);
  hw__w_str(w, ",\"peakMs\":");
  hw__w_u64(w, t->peak_ms);
  hw__w_str(w, ",\"peakBytes\":");
  hw__w_i64(w, t->peak_bytes);
  hw__w_str(w, ",\"samples\":[");
  for (uint64_t i = 0; i < n; i++) {
    const hw_tl_sample *s = &t->samples[i];
    hw__w_str(w, i ? ",[" : "[");
    hw__w_u64(w, s->time_ms);
    hw__w_str(w, ",");
    hw__w_i64(w, s->tracked_bytes);
    hw__w_str(w, ",");
    hw__w_u64(w, s->working_set_bytes);
    hw__w_str(w, ",");
    hw__w_u64(w, s->limit_bytes);
    hw__w_str(w, ",");
    hw__w_u64(w, s->floor_bytes);
    hw__w_str(w, "]");
  }
  hw__w_str(w, "]}\n");
  atomic_store_explicit(&hw__tl_busy, 0, memory_order_release);
}
