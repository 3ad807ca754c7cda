/**
 * V8's memory-frugal mode for `watch`: the watcher renders inside a memory
 * limit while the workload may still hold most of it (single-container mode,
 * docs/docker.md; the chart's sidecar has a small limit of its own).
 *
 * By default V8 lets the heap grow to a few times what is live (up to 4×,
 * plus a 16 MiB-semispace young generation) before a full collection; a
 * report is mostly short-lived strings, so the heap filled with garbage:
 * the post-mortem of 16 small workers peaked at 213 MiB RSS with ~17 MiB
 * live. `--optimize-for-size` keeps the growth factor small: 118 MiB, the
 * same bytes written (docs/report.md "Memory of the renderer"). It is read
 * at each collection, so setting it at start-up, before the work, takes
 * effect. Not for `run` and `render`: they render when the program has
 * ended (its memory is free), and the mode costs CPU: the 1 M-stack dump of
 * test/report/limits.test.ts took ~50 % longer to render with it.
 */
import { setFlagsFromString } from 'node:v8';

export function frugalHeap(): void {
  setFlagsFromString('--optimize-for-size');
}
