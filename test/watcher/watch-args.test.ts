// Parsing of `highwater watch` and `highwater collect docker`, and the watch settings.
import { describe, expect, it } from 'vitest';
import { parseArgs } from '../../sidecar/src/cli/args.js';
import { loadWatchConfig } from '../../sidecar/src/config/watch.js';
import { terminationSummary } from '../../sidecar/src/cli/watch.js';
import type { ReportJson } from '../../sidecar/src/report/model.js';

describe('watch and collect arguments', () => {
  it('parses every watch flag', () => {
    expect(
      parseArgs(['watch', '--run-dir', '/r', '--output=/o', '--metrics-port', '9090', '--disable-oom-detection', '--min-available', '5%', '--warn-after', '2.5', '--once']),
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
    expect(parseArgs(['collect', 'kubernetes', '-n', 'ml', '--since', '2h', '-f'])).toEqual({ cmd: 'collect-kubernetes', follow: true, namespace: 'ml', allNamespaces: false, since: '2h' });
    expect(parseArgs(['collect', 'kubernetes', '-A'])).toEqual({ cmd: 'collect-kubernetes', follow: false, namespace: undefined, allNamespaces: true, since: undefined });
    expect(() => parseArgs(['collect', 'kubernetes', '-n', 'ml', '-A'])).toThrow(/not both/);
    expect(() => parseArgs(['collect', 'kubernetes', '--bogus'])).toThrow(/unknown option --bogus for highwater collect kubernetes/);
  });

  it('watch settings: flag, then HIGHWATER_* variable, then default; invalid values name the flag', () => {
    expect(loadWatchConfig('/r', {}, {})).toEqual({
      runDir: '/r',
      metricsPort: 19753,
      warnAfterMs: 5000,
      once: false,
      terminationLog: '/dev/termination-log',
      events: false,
      uploadUrl: undefined,
      uploadTimeoutMs: 20000,
      pod: undefined,
    });
    const env = { HIGHWATER_RUN_DIR: '/env-run', HIGHWATER_METRICS_PORT: '0', HIGHWATER_WARN_AFTER: '0', HIGHWATER_TERMINATION_LOG: '/t' };
    expect(loadWatchConfig(undefined, {}, env)).toMatchObject({ runDir: '/env-run', metricsPort: 0, warnAfterMs: 0, terminationLog: '/t' });
    expect(loadWatchConfig('/r', { metricsPort: '8080', warnAfter: '1.5' }, env)).toMatchObject({ runDir: '/r', metricsPort: 8080, warnAfterMs: 1500 });
    expect(() => loadWatchConfig(undefined, {}, {})).toThrow(/--run-dir DIR is required/);
    expect(() => loadWatchConfig('/r', { metricsPort: '70000' }, {})).toThrow(/invalid value for --metrics-port: "70000"/);
    expect(loadWatchConfig('/r', { metricsPort: 'off' }, { HIGHWATER_METRICS_PORT: '0' }).metricsPort).toBeUndefined();
    expect(() => loadWatchConfig('/r', {}, { HIGHWATER_WARN_AFTER: 'soon' })).toThrow(/invalid value for HIGHWATER_WARN_AFTER/);
    // Kubernetes: Events, uploads, the pod from the downward API.
    const k8s = { HIGHWATER_EVENTS: '1', HIGHWATER_UPLOAD_URL: 'https://s3.example/b/{namespace}/{pod}/{report}/{file}?sig=x', HIGHWATER_UPLOAD_TIMEOUT: '7.5', HIGHWATER_POD_NAME: 'p', HIGHWATER_POD_NAMESPACE: 'n' };
    expect(loadWatchConfig('/r', {}, k8s)).toMatchObject({ events: true, uploadUrl: k8s.HIGHWATER_UPLOAD_URL, uploadTimeoutMs: 7500, pod: { name: 'p', namespace: 'n' } });
    expect(loadWatchConfig('/r', {}, { HIGHWATER_EVENTS: '0' }).events).toBe(false);
    expect(() => loadWatchConfig('/r', {}, { HIGHWATER_EVENTS: 'maybe' })).toThrow(/invalid value for HIGHWATER_EVENTS/);
    expect(() => loadWatchConfig('/r', { uploadUrl: 'https://s3/{bucket}/{file}' }, {})).toThrow(/invalid value for --upload-url.*unknown placeholder \{bucket\}/);
    expect(() => loadWatchConfig('/r', { uploadTimeout: '0' }, {})).toThrow(/invalid value for --upload-timeout/);
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
