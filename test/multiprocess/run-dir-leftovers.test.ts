/**
 * What multi-process runs leave in a run dir is cleaned: the container file
 * once no tracked process is alive (claim.ts), a `.dump.tmp` its process's
 * end cut short (leftovers.ts). Never a link's target, never a live process's file.
 */
import { existsSync, mkdtempSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { claimRunDir } from '../../sidecar/src/watcher/claim.js';
import { removeDumpLeftovers } from '../../sidecar/src/watcher/leftovers.js';

const DEAD = 2 ** 22 + 12345; // above pid_max's default: no such process

test('the container file goes with the last tracked process, not before', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hw-left-'));
  writeFileSync(join(dir, 'hw-container'), 'x');
  writeFileSync(join(dir, `hw-container.${DEAD}.tmp`), 'x');
  writeFileSync(join(dir, `hw-${process.pid}.state`), 'x'); // a live process still shares it
  writeFileSync(join(dir, `hw-${DEAD}.state`), 'x');
  const claim = claimRunDir(dir);
  expect(claim.removedStale.sort()).toEqual([`hw-${DEAD}.state`, `hw-container.${DEAD}.tmp`]);
  expect(existsSync(join(dir, 'hw-container'))).toBe(true);
  claim.release({ removeLeftovers: false });

  const alone = mkdtempSync(join(tmpdir(), 'hw-left-'));
  writeFileSync(join(alone, 'hw-container'), 'x');
  writeFileSync(join(alone, `hw-${DEAD}.sock`), 'x');
  const c2 = claimRunDir(alone);
  expect(c2.removedStale.sort()).toEqual([`hw-${DEAD}.sock`, 'hw-container']);
  c2.release({ removeLeftovers: true });
  expect(readdirSync(alone)).toEqual([]);
});

test('a cut-short dump of an ended process is removed; a link is removed as a link; other names stay', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hw-left-'));
  const target = join(mkdtempSync(join(tmpdir(), 'hw-left-target-')), 'precious');
  writeFileSync(target, 'keep me');
  writeFileSync(join(dir, 'hw-41-1.dump.tmp'), 'partial');
  symlinkSync(target, join(dir, 'hw-41-2.dump.tmp'));
  writeFileSync(join(dir, 'hw-41-3.dump'), 'complete');
  writeFileSync(join(dir, 'hw-411-1.dump.tmp'), 'another pid');
  const removed = removeDumpLeftovers(dir, 41);
  expect(removed.map((p) => p.slice(dir.length + 1))).toEqual(['hw-41-1.dump.tmp']);
  // The link is not a regular file: left alone (the claim's leftover rule removes links by name).
  expect(readdirSync(dir).sort()).toEqual(['hw-41-2.dump.tmp', 'hw-41-3.dump', 'hw-411-1.dump.tmp']);
  expect(existsSync(target)).toBe(true);
});
