/**
 * index.html as a person uses it, in headless Chromium, on reports the real
 * CLI wrote for real programs: the answer first, rows that zoom the
 * flamegraph, the import toggle, the timeline.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { chromium, type Browser, type Frame as PwFrame, type Page } from 'playwright-core';
import { freshDir, readReport, reportDirs, runProfiled } from '../helpers/cli.js';

const CHROMIUM = '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
const FULL = 1180; // frame area width of a 1200-px flamegraph

const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--no-first-run',
  '--disable-component-update',
  '--disable-sync',
];

async function innerFrame(page: Page, id: string): Promise<PwFrame> {
  const f = await (await page.$(`#${id}`))!.contentFrame();
  await f!.waitForSelector('g.f', { state: 'attached' });
  return f!;
}

describe.skipIf(!haveChromium)('index.html in Chromium', () => {
  let browser: Browser;
  let example: string;
  let timelineDir: string;
  let allocMs: [number, number];
  const errors: string[] = [];

  beforeAll(async () => {
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
    const ex = await runProfiled(['examples/example.py']);
    expect(ex.code, ex.stderr).toBe(0);
    example = reportDirs(ex.outDir)[0]!;

    // A program whose peak time is known: 300 MiB for 1 s, then nothing for 1 s.
    const script = join(freshDir('hw-tl-'), 'plateau.py');
    writeFileSync(
      script,
      [
        'import time',
        'time.sleep(0.3)',
        't0 = time.time()',
        'buf = bytearray(300 * 1024 * 1024)',
        't1 = time.time()',
        'print(f"ALLOC {t0 * 1000:.0f} {t1 * 1000:.0f}", flush=True)',
        'time.sleep(1.0)',
        'del buf',
        'time.sleep(1.0)',
        '',
      ].join('\n'),
    );
    const tl = await runProfiled([script]);
    expect(tl.code, tl.stderr).toBe(0);
    const m = /ALLOC (\d+) (\d+)/.exec(tl.stdout)!;
    allocMs = [Number(m[1]), Number(m[2])];
    timelineDir = reportDirs(tl.outDir)[0]!;
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
  });

  async function open(dir: string): Promise<Page> {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(`file://${dir}/index.html`);
    return page;
  }

  test('the answer first: why, peak, then the top lines (example.py:4 first), above the first flamegraph', async () => {
    const page = await open(example);
    expect(await page.textContent('#trigger')).toMatch(/^Normal exit.*example\.py:4 make_big_array \(400\.0 MiB\)/);
    const first = page.locator('#top-lines-peak tbody tr').first();
    expect(await first.locator('td').nth(1).textContent()).toBe('example.py:4');
    expect(await first.locator('td').nth(2).textContent()).toMatch(/^make_big_array/);
    expect(await first.locator('td').nth(3).textContent()).toBe('return np.zeros((1024, 1024, 50))');
    expect(await first.locator('td').nth(4).textContent()).toBe('400.0 MiB');
    // The caller chain on hover (title) and on expand.
    expect(await first.getAttribute('title')).toBe('example.py:15 <module> \u2192 example.py:13 main \u2192 example.py:4 make_big_array');
    await first.locator('summary').click();
    expect(await first.locator('ol.chain li').allTextContents()).toEqual([
      'example.py:15 <module>main()',
      'example.py:13 mainanother_arr = make_big_array()',
      'example.py:4 make_big_arrayreturn np.zeros((1024, 1024, 50))',
    ]);
    const rows = await page.locator('#top-lines-peak tbody tr td:nth-child(2)').allTextContents();
    expect(rows.slice(0, 3)).toEqual(['example.py:4', 'example.py:7', 'example.py:8']);
    // `import numpy` is charged to the import line, not to importlib.
    expect(rows).toContain('example.py:1');
    const table = (await page.locator('#top-lines-peak').boundingBox())!;
    const graph = (await page.locator('iframe.fg:visible').first().boundingBox())!;
    expect(table.y + table.height).toBeLessThan(graph.y);
    // Self-contained: nothing but the page itself was loaded.
    expect(await page.evaluate(() => performance.getEntriesByType('resource').map((e) => e.name))).toEqual([]);
    await page.close();
  });

  test('clicking a row zooms the flamegraph to that line', async () => {
    const page = await open(example);
    const fg = await innerFrame(page, 'fg-peak');
    const row = page.locator('#top-lines-peak tbody tr').nth(1); // example.py:7, 80 MiB
    const sel = `g.f[data-x="${await row.getAttribute('data-x')}"][data-d="${await row.getAttribute('data-d')}"]`;
    expect(await fg.$eval(`${sel} title`, (t) => t.textContent)).toMatch(/^make_two_arrays \(example\.py:7\)/);
    const before = await fg.$eval(`${sel} rect`, (r) => Number(r.getAttribute('width')));
    expect(before).toBeLessThan(FULL / 5);
    await row.locator('td').first().click();
    await fg.waitForFunction((s) => Number(document.querySelector(`${s} rect`)!.getAttribute('width')) > 1000, sel);
    expect(await fg.$eval(`${sel} rect`, (r) => Number(r.getAttribute('width')))).toBeCloseTo(FULL, 1);
    expect(await fg.textContent('#details')).toMatch(/^make_two_arrays \u2014 .*example\.py:7 \u2014 80\.0 MiB/);
    expect(await fg.getAttribute('#reset', 'class')).toBe('btn');
    await page.close();
  });

  test('import machinery is hidden by default; the toggle shows it', async () => {
    const page = await open(example);
    const frozen = (f: PwFrame) => f.$$eval('g.f title', (ts) => ts.filter((t) => /<frozen importlib\._bootstrap/.test(t.textContent ?? '')).length);
    expect(await frozen(await innerFrame(page, 'fg-peak'))).toBe(0);
    expect(await page.isHidden('#fg-peak-full')).toBe(true);
    await page.check('#show-imports');
    expect(await page.isHidden('#fg-peak')).toBe(true);
    expect(await page.isVisible('#fg-peak-full')).toBe(true);
    expect(await frozen(await innerFrame(page, 'fg-peak-full'))).toBeGreaterThan(0);
    await page.uncheck('#show-imports');
    expect(await page.isVisible('#fg-peak')).toBe(true);
    expect(await page.isHidden('#fg-peak-full')).toBe(true);
    // report.json keeps the full frames.
    const json = readReport(example);
    expect(json.stacks.some((s) => s.frames.some((f) => f.file.startsWith('<frozen importlib._bootstrap')))).toBe(true);
    await page.close();
  });

  test('the timeline marks the peak when the program allocated, and hover shows values', async () => {
    const page = await open(timelineDir);
    const svg = page.locator('svg#timeline');
    const t0 = Number(await svg.getAttribute('data-t0'));
    const peakAt = t0 + Number(await page.getAttribute('#tl-peak', 'data-t'));
    // The program took its timestamps around the allocation; the clock is the same.
    expect(peakAt).toBeGreaterThanOrEqual(allocMs[0] - 5);
    expect(peakAt).toBeLessThanOrEqual(allocMs[1] + 60);
    // The marker sits where the plotted line rises to its plateau.
    const pts = (await page.getAttribute('polyline.tracked', 'points'))!.split(' ').map((p) => p.split(',').map(Number) as [number, number]);
    const topY = Math.min(...pts.map((p) => p[1]));
    const plateau = pts.filter((p) => p[1] <= topY + 1).map((p) => p[0]);
    const markX = Number(await page.getAttribute('#tl-peak line', 'x1'));
    expect(Math.abs(markX - Math.min(...plateau))).toBeLessThan(3);
    expect(Math.max(...plateau) - Math.min(...plateau)).toBeGreaterThan(100); // ~1 s of a ~2.4 s run
    // Hover over the middle of the plateau: the readout names ~300 MiB.
    const box = (await svg.boundingBox())!;
    const midX = (Math.min(...plateau) + Math.max(...plateau)) / 2;
    await page.mouse.move(box.x + midX * (box.width / 1180), box.y + box.height / 2);
    expect(await page.textContent('#tl-readout')).toMatch(/^\+\d+\.\d{3} s \u2014 tracked 30\d\.\d MiB/);
    await page.screenshot({ path: '/tmp/highwater-timeline.png' });
    expect(readReport(timelineDir).timeline!.samples.length).toBeGreaterThan(5);
    await page.close();
    expect(errors).toEqual([]);
  });
});
