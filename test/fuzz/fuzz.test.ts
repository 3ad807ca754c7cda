/**
 * Fuzz targets for every reader of data another party writes: the raw dump
 * parser, the state-file parser (and header), the control answer reader, and
 * the cgroup / /proc parsers. Each runs for HW_FUZZ_SECONDS (default 5) from
 * the seeds in test/fuzz/seeds/<target>/. Every input must give a result or
 * a HighwaterError (HW_ERR_*): never another exception, never an input that
 * takes seconds, never a result over the rendering limits. A failing input is
 * saved (its path is in the failure message) to replay it.
 */
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { isHighwaterError } from '../../sidecar/src/errors.js';
import {
  findCgroupMounts,
  hostAvailableBytes,
  parseBytes,
  parseLimit,
  parseMeminfo,
  parseMemoryStat,
  parseMountinfo,
  parseProcCgroup,
  parseProcStatusVmSwap,
  v1MemoryEntry,
  v2Entry,
} from '../../sidecar/src/memory/parse.js';
import { parseDump } from '../../sidecar/src/report/dump.js';
import type { ProfileData } from '../../sidecar/src/report/model.js';
import { buildReportJson, reportJsonText } from '../../sidecar/src/report/render.js';
import { MAX_DEPTH, MAX_STACKS, toFolded } from '../../sidecar/src/report/stacks.js';
import { parseStateFile } from '../../sidecar/src/report/state.js';
import { AnswerLine, MAX_ANSWER_CHARS } from '../../sidecar/src/watcher/control.js';
import { parseStateHeader } from '../../sidecar/src/watcher/state-header.js';
import { jsonLineMutation, mutate, Rng } from './mutate.js';

const SECONDS = Number(process.env.HW_FUZZ_SECONDS ?? 5);
/** An input that takes this long is a hang in the making (the inputs are a few KB). */
const SLOW_MS = 2000;
const SEEDS = join(import.meta.dirname, 'seeds');

function checkProfile(d: ProfileData): void {
  for (const list of [d.stacks, d.currentStacks ?? []]) {
    if (list.length > MAX_STACKS) throw new Error(`${list.length} stacks, over the limit`);
    for (const s of list) if (s.frames.length > MAX_DEPTH) throw new Error(`a stack of ${s.frames.length} frames, over the limit`);
  }
  // What the renderer does with it next (the pure part) must not throw either.
  const report = buildReportJson(d);
  reportJsonText(report);
  toFolded(report.stacks);
}

type Target = (input: Buffer, seedName: string) => void;

const targets: Record<string, Target> = {
  dump: (input) => checkProfile(parseDump(input.toString('utf8'))),
  state: (input) => {
    parseStateHeader(input);
    checkProfile(parseStateFile(input, { readSource: () => undefined }));
  },
  control: (input, _seed) => {
    // Arbitrary chunking of what the peer sends.
    const a = new AnswerLine('/fuzz.sock');
    const text = input.toString('utf8');
    let line: string | undefined;
    for (let i = 0; i < text.length && line === undefined;) {
      const n = 1 + ((i * 7919) % 97);
      line = a.push(text.slice(i, i + n));
      i += n;
    }
    line ??= a.end();
    if (line !== undefined && (line.includes('\n') || line.length > MAX_ANSWER_CHARS)) throw new Error('answer line not bounded');
  },
  proc: (input, seed) => {
    const text = input.toString('utf8');
    if (seed.startsWith('meminfo')) hostAvailableBytes(parseMeminfo(text));
    else if (seed.startsWith('memory.stat')) parseMemoryStat(text);
    else if (seed.startsWith('cgroup')) {
      const e = parseProcCgroup(text);
      v1MemoryEntry(e);
      v2Entry(e);
    } else if (seed.startsWith('mountinfo')) findCgroupMounts(parseMountinfo(text));
    else if (seed.startsWith('limit')) parseLimit(text);
    else if (seed.startsWith('status')) parseProcStatusVmSwap(text);
    else parseBytes(text, seed);
  },
};

describe('fuzz (bounded time per target; HW_FUZZ_SECONDS to run longer)', () => {
  for (const [name, run] of Object.entries(targets)) {
    test(
      `${name}: every mutated input gives a result or an HW_ERR_* error`,
      () => {
        const seedNames = readdirSync(join(SEEDS, name)).sort();
        const seeds = seedNames.map((f) => readFileSync(join(SEEDS, name, f)));
        expect(seeds.length).toBeGreaterThan(0);
        const rng = new Rng(Number(process.env.HW_FUZZ_SEED ?? 0x5eed) ^ name.length);
        const failures: string[] = [];
        let saveDir: string | undefined;
        let runs = 0;
        let errors = 0;
        let slowest = 0;
        const end = Date.now() + SECONDS * 1000;
        const tryOne = (input: Buffer, seedName: string): void => {
          const t0 = performance.now();
          let failure: string | undefined;
          try {
            run(input, seedName);
          } catch (e) {
            if (isHighwaterError(e) && e.code.startsWith('HW_ERR_')) errors++;
            else failure = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
          }
          const ms = performance.now() - t0;
          slowest = Math.max(slowest, ms);
          if (ms > SLOW_MS) failure ??= `took ${ms.toFixed(0)} ms`;
          runs++;
          if (failure && failures.length < 5) {
            saveDir ??= mkdtempSync(join(tmpdir(), `hw-fuzz-${name}-`));
            const path = join(saveDir, `${failures.length}-${seedName}`);
            writeFileSync(path, input);
            failures.push(`${failure} (input saved at ${path})`);
          }
        };
        // The seeds themselves must pass, then mutations until the time is up.
        seeds.forEach((s, i) => tryOne(s, seedNames[i]!));
        while (Date.now() < end && failures.length < 5) {
          const k = rng.below(seeds.length);
          tryOne(mutate(seeds[k]!, rng, seeds, name === 'dump' ? [jsonLineMutation] : []), seedNames[k]!);
        }
        console.log(`fuzz ${name}: ${runs} inputs in ${SECONDS} s, ${errors} clean HW_ERR_* errors, slowest ${slowest.toFixed(1)} ms`);
        expect(failures).toEqual([]);
        expect(runs).toBeGreaterThan(seeds.length);
      },
      SECONDS * 1000 + 30_000,
    );
  }
});
