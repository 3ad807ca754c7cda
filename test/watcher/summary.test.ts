import { describe, expect, it } from 'vitest';
import type { Frame } from '../../sidecar/src/report/model.js';
import { topLine, userFrame } from '../../sidecar/src/watcher/summary.js';

const frame = (file: string, line: number, fn = 'f', code = ''): Frame => ({ file, line, function: fn, code }) as Frame;

describe('userFrame', () => {
  it("is the innermost frame of the program's own code, below library frames", () => {
    const own = frame('/app/job.py', 12, 'load');
    const frames = [
      frame('/app/job.py', 40, '<module>'),
      own,
      frame('/usr/lib/python3/dist-packages/numpy/core/numeric.py', 204, 'ones'),
      frame('/venv/lib/python3.11/site-packages/pandas/io/parsers.py', 88, 'read'),
      frame('/usr/local/lib/python3.12/json/decoder.py', 353, 'raw_decode'),
      frame('<frozen importlib._bootstrap>', 1, '_find_and_load'),
    ];
    expect(userFrame(frames)).toBe(own);
  });

  it('is the innermost frame when every frame is a library frame, undefined without frames', () => {
    const inner = frame('/venv/lib/python3.11/site-packages/torch/nn.py', 3);
    expect(userFrame([frame('/usr/lib/python3.11/runpy.py', 1), inner])).toBe(inner);
    expect(userFrame([])).toBeUndefined();
  });

  it('a file that merely looks like a library (a user directory called lib) stays own code', () => {
    const own = frame('/home/me/lib/tools.py', 9);
    expect(userFrame([own, frame('/usr/lib/python3.11/copy.py', 5)])).toBe(own);
  });
});

describe('topLine', () => {
  it('is `file:line code` of the largest stack, the code trimmed, the function when there is no code', () => {
    const stacks = [
      { frames: [frame('/app/job.py', 7, '<module>', 'x = make()'), frame('/app/job.py', 3, 'make', 'return bytearray(n)')] },
      { frames: [frame('/app/other.py', 1, 'g', 'small()')] },
    ];
    expect(topLine({ stacks } as never)).toBe('job.py:3 return bytearray(n)');
    expect(topLine({ stacks: [{ frames: [frame('/app/job.py', 5, 'grow', '')] }] } as never)).toBe('job.py:5 grow');
  });

  it("'' for a report without stacks or frames", () => {
    expect(topLine({})).toBe('');
    expect(topLine({ stacks: [] } as never)).toBe('');
    expect(topLine({ stacks: [{ frames: [] }] } as never)).toBe('');
  });
});
