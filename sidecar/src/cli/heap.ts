/**
 * V8's memory-frugal mode for the processes that render reports (`run`,
 * `watch`, `render`): they live inside the memory limit they report on
 * (docs/docker.md single-container mode; `highwater run` shares the
 * program's cgroup).
 *
 * By default V8 lets the heap grow to a few times what is live (up to 4×,
 * plus a 16 MiB-semispace young generation) before a full collection; a
 * report is mostly short-lived strings, so the heap filled with garbage:
 * the post-mortem of 16 small workers peaked at 213 MiB RSS with ~17 MiB
 * live. `--optimize-for-size` keeps the growth factor small: 118 MiB, the
 * same bytes written (docs/report.md "Memory"). It is read at each
 * collection, so setting it at start-up, before the work, takes effect.
 */
import { setFlagsFromString } from 'node:v8';

export function frugalHeap(): void {
  setFlagsFromString('--optimize-for-size');
}
