// The output directory checks `run` and `watch` make before the program
// starts, and opening the report in a browser.
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ensureWritableDir, hasDisplay, mkdirParents, openInBrowser, removeIfEmpty } from '../../sidecar/src/cli/output.js';
import { isHighwaterError } from '../../sidecar/src/errors.js';
import { freshDir } from '../helpers/cli.js';

function outputError(dir: string): string {
  try {
    ensureWritableDir(dir);
  } catch (e) {
    if (isHighwaterError(e, 'HW_ERR_OUTPUT_UNWRITABLE')) return e.message;
    throw e;
  }
  throw new Error(`expected HW_ERR_OUTPUT_UNWRITABLE for ${dir}`);
}

describe('ensureWritableDir', () => {
  it('creates missing parents, says whether it created the directory, and leaves no probe behind', () => {
    const base = freshDir('hw-output-');
    const dir = join(base, 'a', 'b', 'reports');
    expect(ensureWritableDir(dir)).toEqual({ created: true });
    expect(readdirSync(dir)).toEqual([]);
    expect(ensureWritableDir(dir)).toEqual({ created: false });
    expect(readdirSync(dir)).toEqual([]);
  });

  it('names the path and the errno when reports cannot be written there', () => {
    const base = freshDir('hw-output-');
    writeFileSync(join(base, 'file'), '');
    expect(outputError(join(base, 'file', 'reports'))).toBe(`cannot write reports to ${join(base, 'file', 'reports')}: ENOTDIR`);
    expect(outputError(join(base, 'file'))).toMatch(/: (ENOTDIR|EEXIST)$/);
    // Under /proc, Node's recursive mkdir would loop forever; one mkdir per component fails at once.
    const t0 = Date.now();
    expect(outputError('/proc/hw-no-such-dir/reports')).toBe('cannot write reports to /proc/hw-no-such-dir/reports: ENOENT');
    expect(Date.now() - t0).toBeLessThan(2_000);
  });

  it('a directory whose mode forbids writing is refused (not as root, which bypasses modes)', () => {
    if (process.getuid?.() === 0) {
      // Root writes anyway: the check must agree with what rendering will do later.
      const dir = freshDir('hw-output-');
      chmodSync(dir, 0o500);
      expect(ensureWritableDir(dir)).toEqual({ created: false });
      return;
    }
    const dir = freshDir('hw-output-');
    chmodSync(dir, 0o500);
    expect(outputError(dir)).toBe(`cannot write reports to ${dir}: EACCES`);
  });
});

describe('mkdirParents and removeIfEmpty', () => {
  it('mkdirParents creates each missing component and accepts an existing path', () => {
    const base = freshDir('hw-output-');
    mkdirParents(join(base, 'x', 'y'));
    expect(existsSync(join(base, 'x', 'y'))).toBe(true);
    mkdirParents(join(base, 'x', 'y'));
  });

  it('removeIfEmpty removes only an empty directory and is quiet otherwise', () => {
    const base = freshDir('hw-output-');
    mkdirSync(join(base, 'empty'));
    mkdirSync(join(base, 'full'));
    writeFileSync(join(base, 'full', 'report.json'), '{}');
    removeIfEmpty(join(base, 'empty'));
    removeIfEmpty(join(base, 'full'));
    removeIfEmpty(join(base, 'missing'));
    expect(readdirSync(base).sort()).toEqual(['full']);
    expect(readFileSync(join(base, 'full', 'report.json'), 'utf8')).toBe('{}');
  });
});

describe('browser', () => {
  const savedPath = process.env.PATH;
  afterEach(() => {
    process.env.PATH = savedPath;
  });

  it('hasDisplay: X11 or Wayland, an empty variable is none', () => {
    expect(hasDisplay({ DISPLAY: ':0' })).toBe(true);
    expect(hasDisplay({ WAYLAND_DISPLAY: 'wayland-0' })).toBe(true);
    expect(hasDisplay({ DISPLAY: '', WAYLAND_DISPLAY: '' })).toBe(false);
    expect(hasDisplay({})).toBe(false);
  });

  it('openInBrowser runs xdg-open with the file, detached', async () => {
    const bin = freshDir('hw-xdg-');
    const seen = join(bin, 'seen');
    writeFileSync(join(bin, 'xdg-open'), `#!/bin/sh\nprintf '%s' "$1" > ${seen}.tmp && mv ${seen}.tmp ${seen}\n`, { mode: 0o755 });
    process.env.PATH = `${bin}:${savedPath}`;
    openInBrowser('/reports/2026/index.html');
    const deadline = Date.now() + 10_000;
    while (!existsSync(seen) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(readFileSync(seen, 'utf8')).toBe('/reports/2026/index.html');
  });

  it('openInBrowser without xdg-open neither throws nor leaves an unhandled error', async () => {
    process.env.PATH = freshDir('hw-empty-path-');
    const unhandled: unknown[] = [];
    const onError = (e: unknown) => unhandled.push(e);
    process.on('uncaughtException', onError);
    try {
      openInBrowser('/reports/index.html');
      await new Promise((r) => setTimeout(r, 300)); // spawn reports ENOENT asynchronously
    } finally {
      process.off('uncaughtException', onError);
    }
    expect(unhandled).toEqual([]);
  });
});
