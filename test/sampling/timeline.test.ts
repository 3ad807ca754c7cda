// Sampling mode's timeline on the lean path: an allocation that moves the
// total out of the timeline's band takes a sample, as in exact mode, so a
// spike of a few milliseconds is in the timeline even though the periodic
// sample (every 50 ms) misses it. The rate is 1 GiB: nothing is sampled, so
// every block of the fixture goes through the lean hooks. With the OOM guard
// off as well: with it on, its budget sends one allocation in 64 KiB to the
// general path, which checks the band too.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { fixture, runUnderShim } from './helpers.js';

const pythons = ['3.8', '3.12'].map((v) => `${process.env.HOME}/.pyenv/versions/${v}`);
const pythonBin = (prefix: string) => spawnSync('sh', ['-c', `ls -d ${prefix}*/bin/python3 | head -1`], { encoding: 'utf8' }).stdout.trim();

describe('sampling mode: the timeline sees brief spikes (lean path)', () => {
  for (const prefix of pythons) {
    const python = pythonBin(prefix);
    for (const oomDetection of [false, true]) {
      it.skipIf(!python)(`${prefix.split('/').at(-1)}, guard ${oomDetection ? 'on' : 'off'}: each spike's top, within the band, inside its window`, () => {
        const { data, stdout } = runUnderShim(python, fixture('timeline_spikes.py'), 1 << 30, undefined, undefined, { oomDetection });
        const spikes = stdout
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as { start: number; end: number; top: number; base: number });
        expect(spikes).toHaveLength(3);
        const samples = data.timeline!.samples;
        for (const s of spikes) {
          // The spike really is brief and really is a spike.
          expect(s.end - s.start).toBeLessThan(45);
          expect(s.top - s.base).toBeGreaterThan(20 * 2 ** 20);
          // A sample is taken whenever the total leaves ±max(1 MiB, total/8) of the last one.
          const band = Math.max(2 ** 20, s.top / 8);
          const inWindow = samples.filter(([t]) => t >= Math.floor(s.start) - 1 && t <= Math.ceil(s.end) + 1);
          const highest = Math.max(...inWindow.map(([, bytes]) => bytes));
          expect(highest).toBeGreaterThanOrEqual(s.top - band);
          expect(highest).toBeLessThanOrEqual(s.top);
        }
      });
    }
  }
});
