/**
 * V8's heap growth for `watch`: the watcher renders inside a memory limit
 * while the workload may still hold most of it (single-container mode,
 * docs/docker.md; the chart's sidecar has a small limit of its own).
 *
 * A report is mostly short-lived strings. By default V8 lets the young
 * generation grow (Node 24 on a large machine or limit: 64 MiB and more)
 * and the old one reach up to 4× what is live before a full collection, so
 * the heap fills with garbage. Two flags keep both small:
 * `--semi-space-growth-factor=1` (the young generation stays at its start
 * size) and `--heap-growing-percent=100` (a full collection once the old
 * generation is 2× what the last one left live; 1.5× saved ~6 MiB more
 * for ~0.2 s more CPU per 16-worker post-mortem). Both are read when V8
 * decides to grow, so setting them at start-up takes effect (the semispace's
 * maximum itself is fixed before any code runs). Measured in
 * docs/report.md "Memory of the renderer": the 16-worker post-mortem's peak
 * fell from 208 to 130 MiB on Node 24 at about the same CPU (Node 20: 171 to
 * 112 MiB, ~13 % more CPU); `--optimize-for-size`, ~50 % more CPU, stays
 * unused.
 */
import { setFlagsFromString } from 'node:v8';

export function compactHeap(): void {
  setFlagsFromString('--semi-space-growth-factor=1');
  setFlagsFromString('--heap-growing-percent=100');
}
