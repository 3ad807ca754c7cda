import { existsSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isHighwaterError } from '../../sidecar/src/errors.js';
import { claimRunDir, LOCK_NAME } from '../../sidecar/src/watcher/claim.js';
import { removeDir, tempDir } from './helpers.js';

const DEAD = 2_999_996; // above the default pid_max

describe('claimRunDir', () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => removeDir(dir));

  it('takes the lock with our pid, removes files of dead processes only, releases cleanly', () => {
    for (const f of [`hw-${DEAD}.state`, `hw-${DEAD}.sock`, `hw-${DEAD}-3.dump`, `hw-${DEAD}-4.dump.tmp`, `hw-${process.pid}.state`, 'mine.txt'])
      writeFileSync(join(dir, f), '');
    const victim = join(tempDir(), 'victim');
    writeFileSync(victim, 'keep');
    symlinkSync(victim, join(dir, `hw-${DEAD}-5.dump`));
    const claim = claimRunDir(dir);
    expect(readFileSync(join(dir, LOCK_NAME), 'utf8')).toBe(`${process.pid}\n`);
    expect(claim.removedStale.sort()).toEqual([`hw-${DEAD}-3.dump`, `hw-${DEAD}-4.dump.tmp`, `hw-${DEAD}-5.dump`, `hw-${DEAD}.sock`, `hw-${DEAD}.state`]);
    expect(readFileSync(victim, 'utf8')).toBe('keep'); // the link was removed, not its target
    expect(readdirSync(dir).sort()).toEqual([LOCK_NAME, `hw-${process.pid}.state`, 'mine.txt']);
    claim.release({ removeLeftovers: true });
    expect(existsSync(join(dir, LOCK_NAME))).toBe(false);
    expect(readdirSync(dir).sort()).toEqual([`hw-${process.pid}.state`, 'mine.txt']); // a live process's file stays
  });

  it('a lock of a live process is HW_ERR_RUN_DIR_BUSY; of a dead one, or garbage, it is taken over', () => {
    writeFileSync(join(dir, LOCK_NAME), '1\n'); // pid 1 is alive
    try {
      claimRunDir(dir);
      throw new Error('expected HW_ERR_RUN_DIR_BUSY');
    } catch (e) {
      expect(isHighwaterError(e, 'HW_ERR_RUN_DIR_BUSY')).toBe(true);
    }
    writeFileSync(join(dir, LOCK_NAME), `${DEAD}\n`);
    claimRunDir(dir).release({ removeLeftovers: false });
    writeFileSync(join(dir, LOCK_NAME), 'not a pid');
    const c = claimRunDir(dir);
    expect(readFileSync(join(dir, LOCK_NAME), 'utf8')).toBe(`${process.pid}\n`);
    c.release({ removeLeftovers: false });
  });
});
