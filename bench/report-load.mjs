#!/usr/bin/env node
// How long a 100 000-stack report's index.html takes to open in Chromium and
// answer a click (issue 13: < 2 s). Not a test: CI does not run it.
//   npm run build && node bench/report-load.mjs [runs]
// Renders a synthetic dump (100 000 distinct stacks, some through
// importlib, a full 4096-sample timeline) with the real renderer, then, per
// run, in a fresh headless Chromium page: time to the `load` event (every
// inline flamegraph parsed and its script run), and from there the time for
// a click on the first top-lines row to zoom its flamegraph.
import { mkdirSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const runs = Number(process.argv[2] ?? 3);
const work = mkdtempSync(join(tmpdir(), 'hw-bench-load-'));

const t0ms = Date.now() - 600_000;
const lines = [
  JSON.stringify({
    type: 'header',
    format: 'highwater-dump',
    version: 1,
    pid: 1,
    trigger: 'exit',
    oomReason: null,
    timeMs: t0ms + 600_000,
    python: '3.11.7',
    argv: ['python', 'gen.py'],
    cwd: '/',
    peakBytes: 0,
    memory: { source: 'cgroup-v2', limitBytes: 8 << 30, workingSetBytes: 0, availableBytes: 0, swapBytes: 0, floorBytes: 100 << 20 },
  }),
];
const funcs = 500;
for (let i = 0; i < funcs; i++) {
  const file = i < 10 ? '<frozen importlib._bootstrap>' : `/src/mod${i % 50}.py`;
  lines.push(JSON.stringify({ type: 'func', id: i, file, name: `fn_${i}` }));
}
let peak = 0;
let x = 12345;
for (let s = 0; s < 100_000; s++) {
  const depth = 4 + (s % 12);
  const frames = [];
  for (let d = 0; d < depth; d++) {
    x = (x * 1103515245 + 12345) >>> 0;
    frames.push([x % funcs, 1 + (x % 400)]);
  }
  const bytes = 1024 + (x % 1_000_000);
  peak += bytes;
  lines.push(JSON.stringify({ type: 'stack', snapshot: 'peak', bytes, frames }));
}
lines[0] = lines[0].replace('"peakBytes":0', `"peakBytes":${peak}`);
const samples = [];
for (let i = 0; i < 4096; i++) samples.push([t0ms + i * 146, Math.round((peak * i) / 4096), Math.round((peak * i) / 4000), 8 << 30, 100 << 20]);
lines.push(JSON.stringify({ type: 'timeline', intervalMs: 128, peakMs: samples[4095][0], peakBytes: peak, samples }));
lines.push(JSON.stringify({ type: 'end', funcs, stacks: 100_000, sources: 0 }));
const dump = join(work, 'big.dump');
writeFileSync(dump, lines.join('\n') + '\n');

const { renderDumpFile } = await import(join(root, 'dist', 'report', 'index.js'));
const out = join(work, 'out');
mkdirSync(out);
let t = performance.now();
const { dir } = await renderDumpFile(dump, out, { timestampedSubdir: false });
console.log(`render: ${(performance.now() - t).toFixed(0)} ms; index.html ${(statSync(join(dir, 'index.html')).size / 1e6).toFixed(1)} MB`);

const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu'] });
// For scale on a busy machine: the same browser opening the seed example's
// small report (a few stacks) from test/fixtures.
const small = join(work, 'small');
mkdirSync(small);
await renderDumpFile(join(root, 'test', 'fixtures', 'dumps', 'example.dump'), small, { timestampedSubdir: false });
{
  const page = await browser.newPage();
  t = performance.now();
  await page.goto(`file://${small}/index.html`, { waitUntil: 'load' });
  console.log(`baseline: the seed example's index.html loads in ${(performance.now() - t).toFixed(0)} ms`);
  await page.close();
}
const results = [];
for (let r = 0; r < runs; r++) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  t = performance.now();
  await page.goto(`file://${dir}/index.html`, { waitUntil: 'load' });
  const loaded = performance.now() - t;
  const row = page.locator('#top-lines-peak tbody tr').first();
  const sel = `g.f[data-x="${await row.getAttribute('data-x')}"][data-d="${await row.getAttribute('data-d')}"] rect`;
  const fg = await (await page.$('#fg-peak')).contentFrame();
  t = performance.now();
  await row.locator('td').first().click();
  await fg.waitForFunction((s) => Number(document.querySelector(s).getAttribute('width')) > 1170, sel);
  const click = performance.now() - t;
  results.push([loaded, click]);
  console.log(`run ${r + 1}: load ${loaded.toFixed(0)} ms, click to zoomed ${click.toFixed(0)} ms, total ${(loaded + click).toFixed(0)} ms`);
  await page.close();
}
await browser.close();
const med = (i) => results.map((v) => v[i]).sort((a, b) => a - b)[Math.floor(results.length / 2)];
console.log(`median: load ${med(0).toFixed(0)} ms, click ${med(1).toFixed(0)} ms (target: < 2000 ms together)`);
