// highwater-init's termination message when the command is SIGKILLed (in a
// container with a memory limit, most likely the kernel's OOM killer beating
// the shim's guard). A file stands in for /dev/termination-log.
import { mkdtempSync, readFileSync, writeFileSync, existsSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildInit, cleanEnv, makeFakeBundle, run } from './init-helpers.js';

let init: string;
let env: Record<string, string>;
let runDir: string;

beforeAll(() => {
  init = buildInit();
  runDir = join(mkdtempSync(join(tmpdir(), 'hw-init-')), 'run');
  env = cleanEnv({ HIGHWATER_HOME: makeFakeBundle().home, HIGHWATER_RUN_DIR: runDir });
});

describe('highwater-init termination message', () => {
  it('SIGKILL with an empty termination log: says so and where the post-mortem comes from; exit 137', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hw-tl-'));
    const log = join(dir, 'termination-log');
    writeFileSync(log, '');
    const r = await run(init, ['--', 'sh', '-c', 'kill -KILL $$'], { ...env, HIGHWATER_TERMINATION_LOG: log });
    expect(r.code).toBe(137);
    expect(readFileSync(log, 'utf8')).toBe(
      "highwater: the command was killed by SIGKILL (exit 137), most likely by the kernel's OOM killer before highwater's guard could act\n" +
        `report: highwater watch renders a post-mortem from the state file in ${runDir}\n`,
    );
  });

  it("never replaces a message already there (the shim's), never creates the file, never follows a symlink, and says nothing for other endings", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hw-tl-'));
    const full = join(dir, 'full');
    writeFileSync(full, 'highwater: out of memory (low-available): ...\n');
    expect((await run(init, ['--', 'sh', '-c', 'kill -KILL $$'], { ...env, HIGHWATER_TERMINATION_LOG: full })).code).toBe(137);
    expect(readFileSync(full, 'utf8')).toBe('highwater: out of memory (low-available): ...\n');

    const missing = join(dir, 'missing');
    await run(init, ['--', 'sh', '-c', 'kill -KILL $$'], { ...env, HIGHWATER_TERMINATION_LOG: missing });
    expect(existsSync(missing)).toBe(false);

    const target = join(dir, 'target');
    writeFileSync(target, '');
    symlinkSync(target, join(dir, 'link'));
    await run(init, ['--', 'sh', '-c', 'kill -KILL $$'], { ...env, HIGHWATER_TERMINATION_LOG: join(dir, 'link') });
    expect(readFileSync(target, 'utf8')).toBe('');

    const empty = join(dir, 'empty');
    writeFileSync(empty, '');
    expect((await run(init, ['--', 'sh', '-c', 'exit 3'], { ...env, HIGHWATER_TERMINATION_LOG: empty })).code).toBe(3);
    expect((await run(init, ['--', 'sh', '-c', 'kill -TERM $$'], { ...env, HIGHWATER_TERMINATION_LOG: empty })).code).toBe(143);
    expect(readFileSync(empty, 'utf8')).toBe('');
  });
});
