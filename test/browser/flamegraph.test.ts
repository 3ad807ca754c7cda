/**
 * The flamegraph's embedded script in a real browser: headless Chromium
 * opening the rendered files from file://, as a user would.
 */
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { renderDumpFile } from '../../sidecar/src/report/render.js';

const CHROMIUM = '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) console.warn(`browser tests skipped: ${CHROMIUM} does not exist (apt-get install -y chromium)`);

const DUMP = join(import.meta.dirname, '../fixtures/dumps/example.dump');
const FULL = 1180; // frame area width of a 1200-px SVG

describe.skipIf(!haveChromium)('flamegraph in Chromium', () => {
  let browser: Browser;
  let page: Page;
  let dir: string;
  const errors: string[] = [];

  beforeAll(async () => {
    ({ dir } = await renderDumpFile(DUMP, mkdtempSync(join(tmpdir(), 'hw-browser-'))));
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-quic',
        '--no-first-run',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    page = await browser.newPage({ viewport: { width: 1220, height: 320 } });
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(`file://${dir}/peak-memory.svg`);
  });
  afterAll(async () => {
    await browser?.close();
  });

  // Frame group selector by its data attributes (x and width are byte counts).
  const frame = (w: number, d: number, x?: number) => `g.f[data-w="${w}"][data-d="${d}"]${x === undefined ? '' : `[data-x="${x}"]`}`;
  const width = (sel: string) => page.$eval(`${sel} rect`, (r) => Number(r.getAttribute('width')));
  const MAIN13 = frame(419430400, 2, 0);
  const MAIN12 = frame(167772160, 2, 419430400);
  const BIG = frame(419430400, 3, 0);

  test('frames render; the widest leaf frame is make_big_array with its source line', async () => {
    // all, <module>:15, main:13, main:12 and 3 leaves; <module>:1 (4000 B) and
    // [no Python frame] (1000 B) are narrower than 0.1 px and folded into "all".
    expect(await page.locator('g.f rect').count()).toBe(7);
    const leaves = await page.$$eval('g.f[data-d="3"]', (gs) =>
      gs.map((g) => ({ w: Number(g.querySelector('rect')!.getAttribute('width')), text: g.textContent ?? '' })),
    );
    leaves.sort((a, b) => b.w - a.w);
    expect(leaves[0]!.text).toContain('make_big_array (example.py:4)');
    expect(leaves[0]!.text).toContain('return np.zeros((1024, 1024, 50))');
    expect(leaves[0]!.w).toBeCloseTo((419430400 / 587207560) * FULL, 1);
    expect(errors).toEqual([]);
  });

  test('hover shows function, file:line, bytes and % of peak in the details bar', async () => {
    await page.hover(`${BIG} rect`);
    expect(await page.textContent('#details')).toBe('make_big_array \u2014 /work/example.py:4 \u2014 400.0 MiB (71.43% of peak)');
    expect(await page.textContent('#source')).toBe('    return np.zeros((1024, 1024, 50))'); // indentation kept
    await page.screenshot({ path: '/tmp/highwater-flamegraph.png' });
  });

  test('click zooms to the frame; Reset restores', async () => {
    const before = await width(MAIN12);
    expect(before).toBeCloseTo((167772160 / 587207560) * FULL, 1);
    await page.click(`${MAIN12} rect`);
    expect(await width(MAIN12)).toBeCloseTo(FULL, 1);
    expect(await width(frame(83886080, 3, 419430400))).toBeCloseTo(FULL / 2, 1);
    // The sibling main:13 and its child are hidden.
    expect(await width(MAIN13)).toBe(0);
    expect(await page.$eval(MAIN13, (g) => getComputedStyle(g).display)).toBe('none');
    expect(await page.$eval(BIG, (g) => getComputedStyle(g).display)).toBe('none');
    // Ancestors stay as full-width context.
    expect(await width(frame(587202560, 1))).toBeCloseTo(FULL, 1);
    expect(await page.getAttribute('#reset', 'class')).toBe('btn');
    await page.screenshot({ path: '/tmp/highwater-flamegraph-zoomed.png' });

    await page.click('#reset');
    expect(await width(MAIN12)).toBeCloseTo(before, 1);
    expect(await width(MAIN13)).toBeCloseTo((419430400 / 587207560) * FULL, 1);
    expect(await page.$eval(MAIN13, (g) => getComputedStyle(g).display)).not.toBe('none');
  });

  test('search highlights matching frames and reports the matched share', async () => {
    await page.fill('#search', '^make_two'); // function names only: code lines also say make_two_arrays()
    const hits = await page.$$eval('g.f.m', (gs) => gs.map((g) => g.getAttribute('data-x')));
    expect(hits).toEqual(['419430400', '503316480']);
    expect(await page.textContent('#matched')).toBe('Matched: 28.57% (160.0 MiB)');
    const fill = await page.$eval('g.f.m rect', (r) => getComputedStyle(r).fill);
    expect(fill).toBe('rgb(210, 76, 255)');
    // Nested matches count once: "main" matches main:13 and main:12 (and nothing under them twice).
    await page.fill('#search', 'main|make');
    expect(await page.textContent('#matched')).toBe('Matched: 100.00% (560.0 MiB)');
    await page.fill('#search', '');
    expect(await page.locator('g.f.m').count()).toBe(0);
    expect(await page.textContent('#matched')).toBe('');
  });
});
