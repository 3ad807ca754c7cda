// The tar reader on archives made by GNU tar in the formats the engine and
// other tools produce (ustar, PAX long names, GNU long names).
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { reportDirs, topLine } from '../../sidecar/src/docker/collect.js';
import { parseEvent } from '../../sidecar/src/docker/engine.js';
import { readTar, safePath } from '../../sidecar/src/docker/tar.js';

function tree(): string {
  const root = mkdtempSync(join(tmpdir(), 'hw-tar-'));
  const long = 'd'.repeat(60) + '/' + 'e'.repeat(60);
  mkdirSync(join(root, 'reports/20250101T000000Z', long), { recursive: true });
  writeFileSync(join(root, 'reports/20250101T000000Z/report.json'), '{"peakBytes":5,"stacks":[]}');
  writeFileSync(join(root, 'reports/20250101T000000Z', long, 'f'.repeat(90) + '.svg'), '<svg/>');
  writeFileSync(join(root, 'reports/stray.txt'), 'x');
  mkdirSync(join(root, 'reports/not-a-report'));
  writeFileSync(join(root, 'reports/not-a-report/a.txt'), 'a');
  return root;
}

describe.each(['ustar', 'pax', 'gnu'])('readTar (%s)', (format) => {
  it('reads files, directories and long names', () => {
    const root = tree();
    const archive = execFileSync('tar', ['-C', root, `--format=${format === 'pax' ? 'posix' : format}`, '-cf', '-', 'reports']);
    const entries = readTar(archive);
    const json = entries.find((e) => e.path === 'reports/20250101T000000Z/report.json');
    expect(json?.type).toBe('file');
    expect(json?.data.toString()).toBe('{"peakBytes":5,"stacks":[]}');
    const svg = entries.find((e) => e.path.endsWith('.svg'))!;
    expect(svg.path.length).toBeGreaterThan(200);
    expect(svg.data.toString()).toBe('<svg/>');
    expect(entries.some((e) => e.path === 'reports' && e.type === 'directory')).toBe(true);

    const dirs = reportDirs(entries);
    expect([...dirs.keys()]).toEqual(['20250101T000000Z']);
    expect(dirs.get('20250101T000000Z')!.map((e) => e.path)).toContain('report.json');
  });
});

describe('tar safety and formats', () => {
  it('rejects escaping paths', () => {
    expect(safePath('../etc/passwd')).toBeUndefined();
    expect(safePath('a/../../b')).toBeUndefined();
    expect(safePath('./a//b/')).toBe('a/b');
  });

  it('rejects a corrupted header', () => {
    const root = tree();
    const archive = Buffer.from(execFileSync('tar', ['-C', root, '-cf', '-', 'reports']));
    archive[10] = archive[10]! ^ 0xff;
    expect(() => readTar(archive)).toThrow(/checksum/);
  });

  it('skips symlinks', () => {
    const root = tree();
    execFileSync('ln', ['-s', '/etc/passwd', join(root, 'reports/link')]);
    const entries = readTar(execFileSync('tar', ['-C', root, '-cf', '-', 'reports']));
    expect(entries.find((e) => e.path === 'reports/link')).toBeUndefined();
    expect(readFileSync(join(root, 'reports/stray.txt'), 'utf8')).toBe('x');
  });
});

describe('collect helpers', () => {
  it('names the top line from report.json', () => {
    expect(
      topLine({
        stacks: [
          {
            bytes: 1,
            frames: [
              { file: '/app/job.py', line: 60, function: '<module>', code: 'sys.exit(main())' },
              { file: '/app/job.py', line: 30, function: 'load_batch', code: 'return np.ones(n)' },
            ],
          },
        ],
      }),
    ).toBe('job.py:30 return np.ones(n)');
    expect(topLine({ stacks: [] })).toBe('');
  });

  it('parses engine events', () => {
    const die = parseEvent(
      JSON.stringify({
        Type: 'container',
        Action: 'die',
        Actor: { ID: 'abc', Attributes: { exitCode: '53', name: 'job', 'io.highwater.enabled': 'true', image: 'x' } },
      }),
    );
    expect(die).toEqual({ action: 'die', id: 'abc', name: 'job', exitCode: 53, labels: { 'io.highwater.enabled': 'true' } });
    expect(parseEvent(JSON.stringify({ Action: 'oom', Actor: { ID: 'abc', Attributes: { name: 'job' } } }))?.action).toBe('oom');
    expect(parseEvent(JSON.stringify({ Action: 'start', Actor: { ID: 'abc' } }))).toBeUndefined();
    expect(parseEvent('not json')).toBeUndefined();
  });
});
