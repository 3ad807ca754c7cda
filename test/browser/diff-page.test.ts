/**
 * The differential flamegraph page of two known runs in Chromium: the line
 * that grew is drawn in the growth colour, the unchanged one in grey.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { chromium, type Browser } from 'playwright-core';
import { runCli } from '../helpers/cli.js';
import { twoRuns } from '../report/diff-runs.js';

const CHROMIUM = '/usr/bin/chromium';

describe.skipIf(!existsSync(CHROMIUM))('diff page in Chromium', () => {
  let browser: Browser;
  let page: string;
  beforeAll(async () => {
    const runs = await twoRuns();
    page = join(runs.dir, 'diff.html');
    const r = await runCli(['diff', runs.old, runs.new, '-o', page]);
    expect(r.code, r.stderr).toBe(0);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu'] });
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
  });

  test('grown line red, unchanged line grey, in the NEW flamegraph', async () => {
    const p = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors: string[] = [];
    p.on('pageerror', (e) => errors.push(String(e)));
    await p.goto(`file://${page}`);
    expect(await p.textContent('#changed-lines tbody tr:first-child')).toMatch(/\+100\.0 MiB.*grow\.py:6/);
    const fg = (await (await p.$('#fg-new'))!.contentFrame())!;
    await fg.waitForSelector('g.f', { state: 'attached' });
    const fillOf = (label: string) =>
      fg.$$eval(
        'g.f',
        (gs, l) => {
          const g = gs.find((x) => x.querySelector('title')!.textContent!.startsWith(l))!;
          return getComputedStyle(g.querySelector('rect')!).fill;
        },
        label,
      );
    const rgb = (s: string) => s.match(/\d+/g)!.map(Number) as [number, number, number];
    const [r, g, b] = rgb(await fillOf('grows (grow.py:6)'));
    expect(r).toBeGreaterThan(g + 60); // red: the growth colour
    expect(r).toBeGreaterThan(b + 60);
    const [r2, g2, b2] = rgb(await fillOf('fixed (grow.py:4)'));
    expect(r2).toBe(g2); // grey: unchanged
    expect(g2).toBe(b2);
    await p.screenshot({ path: '/tmp/highwater-diff.png', fullPage: false });
    expect(errors).toEqual([]);
    await p.close();
  });
});
