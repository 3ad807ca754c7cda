// Parsing of `highwater watch` and `highwater collect`, and the termination-log summary (the settings: test/config/watch.test.ts).
import { describe, expect, it } from 'vitest';
import { parseArgs } from '../../sidecar/src/cli/args.js';
import { terminationSummary } from '../../sidecar/src/cli/watch.js';
import type { ReportJson } from '../../sidecar/src/report/model.js';

describe('watch and collect arguments', () => {
  it('parses every watch flag', () => {
    expect(
      parseArgs([
        'watch',
        '--run-dir',
        '/r',
        '--output=/o',
        '--metrics-port',
        '9090',
        '--disable-oom-detection',
        '--min-available',
        '5%',
        '--warn-after',
        '2.5',
        '--once',
      ]),
    ).toEqual({
      cmd: 'watch',
      flags: { runDir: '/r', outputDir: '/o', oomDetection: false, minAvailable: '5%' },
      watch: { metricsPort: '9090', warnAfter: '2.5', once: true },
    });
  });

  it('refuses unknown options and arguments naming them', () => {
    expect(() => parseArgs(['watch', '--bogus'])).toThrow(/unknown option --bogus for highwater watch/);
    expect(() => parseArgs(['watch', 'extra'])).toThrow(/takes no arguments \(got extra\)/);
    expect(() => parseArgs(['collect', 'k8s'])).toThrow(/unknown collect source k8s/);
    expect(() => parseArgs(['collect', 'docker', '--nope'])).toThrow(/unknown option --nope/);
  });

  it('parses collect docker', () => {
    expect(parseArgs(['collect', 'docker', '--follow', '-o', 'out'])).toEqual({ cmd: 'collect', source: 'docker', follow: true, output: 'out' });
    expect(parseArgs(['collect', 'docker'])).toEqual({ cmd: 'collect', source: 'docker', follow: false, output: undefined });
  });

  it('parses collect kubernetes', () => {
    expect(parseArgs(['collect', 'kubernetes', '-n', 'ml', '--since', '2h', '-f'])).toEqual({
      cmd: 'collect-kubernetes',
      follow: true,
      namespace: 'ml',
      allNamespaces: false,
      since: '2h',
    });
    expect(parseArgs(['collect', 'kubernetes', '-A'])).toEqual({
      cmd: 'collect-kubernetes',
      follow: false,
      namespace: undefined,
      allNamespaces: true,
      since: undefined,
    });
    expect(() => parseArgs(['collect', 'kubernetes', '-n', 'ml', '-A'])).toThrow(/not both/);
    expect(() => parseArgs(['collect', 'kubernetes', '--bogus'])).toThrow(/unknown option --bogus for highwater collect kubernetes/);
  });

  it('parses the Kubernetes watch flags', () => {
    expect(parseArgs(['watch', '--run-dir', '/r', '-o', '/o', '--events', '--upload-url', 'http://x/{file}', '--upload-timeout', '5'])).toMatchObject({
      watch: { events: true, uploadUrl: 'http://x/{file}', uploadTimeout: '5' },
    });
  });

  it('the termination-log summary gives trigger, peak, top line and the report', () => {
    const report = {
      trigger: 'oom',
      oomReason: 'low-available',
      peakBytes: 350 * 1024 * 1024,
      stacks: [{ bytes: 1, frames: [{ file: '/app/job.py', line: 31, function: 'load_batch', code: 'return np.ones(n)' }] }],
    } as unknown as ReportJson;
    expect(terminationSummary(report, '/reports/x')).toBe(
      'highwater: oom (low-available): peak 350.0 MiB at job.py:31 return np.ones(n)\nreport: /reports/x/index.html\n',
    );
  });
});
