// The settings of `highwater watch` (config/watch.ts): flag, then HIGHWATER_* variable, then default.
import { describe, expect, it } from 'vitest';
import { loadWatchConfig } from '../../sidecar/src/config/watch.js';

describe('loadWatchConfig', () => {
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
    const k8s = {
      HIGHWATER_EVENTS: '1',
      HIGHWATER_UPLOAD_URL: 'https://s3.example/b/{namespace}/{pod}/{report}/{file}?sig=x',
      HIGHWATER_UPLOAD_TIMEOUT: '7.5',
      HIGHWATER_POD_NAME: 'p',
      HIGHWATER_POD_NAMESPACE: 'n',
    };
    expect(loadWatchConfig('/r', {}, k8s)).toMatchObject({
      events: true,
      uploadUrl: k8s.HIGHWATER_UPLOAD_URL,
      uploadTimeoutMs: 7500,
      pod: { name: 'p', namespace: 'n' },
    });
    expect(loadWatchConfig('/r', {}, { HIGHWATER_EVENTS: '0' }).events).toBe(false);
    expect(() => loadWatchConfig('/r', {}, { HIGHWATER_EVENTS: 'maybe' })).toThrow(/invalid value for HIGHWATER_EVENTS/);
    expect(() => loadWatchConfig('/r', { uploadUrl: 'https://s3/{bucket}/{file}' }, {})).toThrow(
      /invalid value for --upload-url.*unknown placeholder \{bucket\}/,
    );
    expect(() => loadWatchConfig('/r', { uploadTimeout: '0' }, {})).toThrow(/invalid value for --upload-timeout/);
  });
});
