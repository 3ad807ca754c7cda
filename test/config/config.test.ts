import { describe, expect, it } from 'vitest';
import { isHighwaterError } from '../../sidecar/src/errors.js';
import { DEFAULTS, loadConfig } from '../../sidecar/src/config/config.js';

function configError(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(isHighwaterError(e, 'HW_ERR_CONFIG')).toBe(true);
    return (e as Error).message;
  }
  throw new Error('expected HW_ERR_CONFIG');
}

describe('loadConfig', () => {
  it('defaults', () => {
    expect(loadConfig({}, {})).toEqual({ ...DEFAULTS, minAvailable: { bytes: 104857600, percent: 2 } });
    expect(DEFAULTS.outputDir).toBe('highwater-result');
    expect(DEFAULTS.pollIntervalMs).toBe(100);
    expect(DEFAULTS.python).toBe('python3');
  });
  it('env over defaults', () => {
    const c = loadConfig(
      {},
      {
        HIGHWATER_OUTPUT_DIR: '/reports',
        HIGHWATER_OPEN_BROWSER: '0',
        HIGHWATER_OOM_DETECTION: 'false',
        HIGHWATER_MIN_AVAILABLE: '200MiB,5%',
        HIGHWATER_POLL_INTERVAL_MS: '250',
        HIGHWATER_LOG_LEVEL: 'DEBUG',
        HIGHWATER_LOG_FORMAT: 'json',
        HIGHWATER_PYTHON: 'python3.11',
        HIGHWATER_RUN_DIR: '/ignored',
      },
    );
    expect(c).toEqual({
      outputDir: '/reports',
      timestampedSubdir: true,
      openBrowser: false,
      oomDetection: false,
      minAvailable: { bytes: 200 * 2 ** 20, percent: 5 },
      pollIntervalMs: 250,
      runDir: undefined,
      logLevel: 'debug',
      logFormat: 'json',
      python: 'python3.11',
      limitThreads: false,
      sampleRate: 0,
    });
  });
  it('thread limits and the sampling rate: flag over env over default', () => {
    expect(loadConfig({}, { HIGHWATER_LIMIT_THREADS: '1', HIGHWATER_SAMPLE_RATE: '256KiB' })).toMatchObject({ limitThreads: true, sampleRate: 262144 });
    expect(loadConfig({ limitThreads: false, sampleRate: '1MiB' }, { HIGHWATER_LIMIT_THREADS: '1', HIGHWATER_SAMPLE_RATE: '4096' })).toMatchObject({
      limitThreads: false,
      sampleRate: 1048576,
    });
    expect(loadConfig({ sampleRate: '0' }, { HIGHWATER_SAMPLE_RATE: '64k' }).sampleRate).toBe(0);
    expect(configError(() => loadConfig({ sampleRate: '5%' }, {}))).toContain('--sample-rate');
    expect(configError(() => loadConfig({}, { HIGHWATER_SAMPLE_RATE: 'lots' }))).toContain('HIGHWATER_SAMPLE_RATE');
    expect(configError(() => loadConfig({}, { HIGHWATER_SAMPLE_RATE: '2TiB' }))).toContain('at most 1TiB');
    expect(configError(() => loadConfig({}, { HIGHWATER_LIMIT_THREADS: 'maybe' }))).toContain('HIGHWATER_LIMIT_THREADS');
  });
  it('flags over env', () => {
    const c = loadConfig(
      { outputDir: 'out', openBrowser: true, oomDetection: true, minAvailable: '1GiB', timestampedSubdir: false, runDir: '/rd' },
      { HIGHWATER_OUTPUT_DIR: '/reports', HIGHWATER_OPEN_BROWSER: '0', HIGHWATER_OOM_DETECTION: '0', HIGHWATER_MIN_AVAILABLE: '5%' },
    );
    expect(c).toMatchObject({
      outputDir: 'out',
      openBrowser: true,
      oomDetection: true,
      minAvailable: { bytes: 2 ** 30 },
      timestampedSubdir: false,
      runDir: '/rd',
    });
  });
  it('empty env values count as unset', () => {
    expect(loadConfig({}, { HIGHWATER_OUTPUT_DIR: '', HIGHWATER_OOM_DETECTION: '' })).toMatchObject({
      outputDir: 'highwater-result',
      oomDetection: true,
    });
  });
  it('invalid values name their source', () => {
    expect(configError(() => loadConfig({ minAvailable: 'lots' }, {}))).toMatch(/--min-available.*accepted forms/);
    expect(configError(() => loadConfig({}, { HIGHWATER_MIN_AVAILABLE: '10MB' }))).toMatch(/HIGHWATER_MIN_AVAILABLE/);
    expect(configError(() => loadConfig({}, { HIGHWATER_OOM_DETECTION: 'maybe' }))).toMatch(/HIGHWATER_OOM_DETECTION/);
    expect(configError(() => loadConfig({}, { HIGHWATER_POLL_INTERVAL_MS: '5' }))).toMatch(/10 to 60000/);
    expect(configError(() => loadConfig({}, { HIGHWATER_POLL_INTERVAL_MS: '1.5' }))).toMatch(/POLL/);
    expect(configError(() => loadConfig({}, { HIGHWATER_LOG_LEVEL: 'loud' }))).toMatch(/HIGHWATER_LOG_LEVEL/);
    expect(configError(() => loadConfig({}, { HIGHWATER_LOG_FORMAT: 'xml' }))).toMatch(/text or json/);
    expect(configError(() => loadConfig({ outputDir: '' }, {}))).toMatch(/-o/);
  });
});
