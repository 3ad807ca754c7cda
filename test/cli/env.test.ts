import { describe, expect, it } from 'vitest';
import { childEnv, execBlock, rawEnvironment, THREAD_POOL_VARS } from '../../sidecar/src/cli/env.js';
import { bundlePaths, findHome } from '../../sidecar/src/cli/paths.js';
import { formatTextLine } from '../../sidecar/src/log.js';

const paths = bundlePaths('/opt/highwater');
const cfg = { oomDetection: true, minAvailable: { bytes: 104857600, percent: 2 } };

describe('childEnv', () => {
  it('preloads the shim, keeps the old LD_PRELOAD, prepends PYTHONPATH', () => {
    const env = childEnv({ LD_PRELOAD: '/lib/libjemalloc.so', PYTHONPATH: '/app', KEEP: 'x' }, paths, cfg, '/tmp/rd', 'run', '/usr/bin/node');
    expect(env.LD_PRELOAD).toBe('/opt/highwater/native/build/libhighwater.so:/lib/libjemalloc.so');
    expect(env.HIGHWATER_ORIG_LD_PRELOAD).toBe('/lib/libjemalloc.so');
    expect(env.PYTHONPATH).toBe('/opt/highwater/native/python/bootstrap:/opt/highwater/native/python:/app');
    expect(env).toMatchObject({
      KEEP: 'x',
      HIGHWATER_RUN_DIR: '/tmp/rd',
      HIGHWATER_MODE: 'run',
      HIGHWATER_OOM_DETECTION: '1',
      HIGHWATER_MIN_AVAILABLE: '104857600,2%',
      HIGHWATER_CLI: '/opt/highwater/bin/highwater.js',
      HIGHWATER_NODE: '/usr/bin/node',
    });
    // Thread pools are left alone unless asked (--limit-threads); no sampling unless asked.
    for (const v of THREAD_POOL_VARS) expect(env[v]).toBeUndefined();
    expect(env.NUMEXPR_MAX_THREADS).toBeUndefined();
    expect(env.HIGHWATER_SAMPLE_RATE).toBeUndefined();
  });
  it('--limit-threads lowers the pool defaults to 1 (never a cap), keeping what the user set', () => {
    const env = childEnv({ OMP_NUM_THREADS: '3' }, paths, { ...cfg, limitThreads: true }, '/rd', 'run', 'node');
    expect(THREAD_POOL_VARS).toEqual(['OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS', 'NUMEXPR_NUM_THREADS', 'BLOSC_NTHREADS']);
    expect(env.OMP_NUM_THREADS).toBe('3');
    for (const v of THREAD_POOL_VARS.slice(1)) expect(env[v]).toBe('1');
    for (const cap of ['NUMEXPR_MAX_THREADS', 'VECLIB_MAXIMUM_THREADS', 'OMP_THREAD_LIMIT']) expect(env[cap]).toBeUndefined();
    // API mode limits only inside profile(), whatever the flag says.
    const api = childEnv({}, paths, { ...cfg, limitThreads: true }, '/rd', 'python', 'node');
    for (const v of THREAD_POOL_VARS) expect(api[v]).toBeUndefined();
  });
  it('passes the sampling rate to the shim in bytes, and clears an inherited one when exact', () => {
    expect(childEnv({}, paths, { ...cfg, sampleRate: 262144 }, '/rd', 'run', 'node').HIGHWATER_SAMPLE_RATE).toBe('262144');
    expect(childEnv({ HIGHWATER_SAMPLE_RATE: '1k' }, paths, { ...cfg, sampleRate: 0 }, '/rd', 'run', 'node').HIGHWATER_SAMPLE_RATE).toBeUndefined();
  });
  it('without a previous LD_PRELOAD or PYTHONPATH; python mode; detection off', () => {
    const env = childEnv({}, paths, { oomDetection: false, minAvailable: { percent: 5 } }, '/rd', 'python', 'node');
    expect(env.LD_PRELOAD).toBe('/opt/highwater/native/build/libhighwater.so');
    expect(env.HIGHWATER_ORIG_LD_PRELOAD).toBe('');
    expect(env.PYTHONPATH).toBe('/opt/highwater/native/python/bootstrap:/opt/highwater/native/python');
    expect(env).toMatchObject({ HIGHWATER_MODE: 'python', HIGHWATER_OOM_DETECTION: '0', HIGHWATER_MIN_AVAILABLE: '5%' });
    // API mode: pools are limited only inside profile(), not for the whole program.
    for (const v of THREAD_POOL_VARS) expect(env[v]).toBeUndefined();
  });
});

describe('findHome', () => {
  it('HIGHWATER_HOME wins; otherwise the directory holding bin/highwater.js', () => {
    expect(findHome({ HIGHWATER_HOME: '/x/y' })).toBe('/x/y');
    expect(findHome({})).toBe(new URL('../..', import.meta.url).pathname.replace(/\/$/, ''));
  });
});

describe('formatTextLine', () => {
  it('prefixes pino lines for humans', () => {
    expect(formatTextLine('{"level":40,"time":1,"module":"readings","msg":"degraded","err":"x"}')).toBe('highwater: warn: [readings] degraded err=x\n');
  });
});

describe('rawEnvironment and the exec block', () => {
  it("unchanged variables keep their bytes, highwater's own take their new value, new ones are added", () => {
    const raw = [Buffer.from([0x41, 0x3d, 0x61, 0xff]), Buffer.from('PATH=/bin'), Buffer.from('LD_PRELOAD=/x.so'), Buffer.from('A=dup')];
    const decoded = { A: 'a\ufffd', PATH: '/bin', LD_PRELOAD: '/x.so' };
    const env = { ...decoded, LD_PRELOAD: '/shim.so:/x.so', HIGHWATER_MODE: 'run' };
    const out = rawEnvironment(raw, decoded, env);
    expect(out).toEqual([raw[0], raw[1], Buffer.from('LD_PRELOAD=/shim.so:/x.so'), Buffer.from('HIGHWATER_MODE=run')]);
  });

  it('execBlock: counts, then NUL-terminated fields (empty fields included)', () => {
    const block = execBlock([Buffer.from('py'), Buffer.from('')], [Buffer.from('A=1')]);
    expect(block).toEqual(Buffer.from('2\0py\0\0' + '1\0A=1\0'));
  });
});

describe('--no-children (issue 12)', () => {
  it('sets HIGHWATER_CHILDREN=0 for the shim; by default children stay tracked', async () => {
    const { parseArgs } = await import('../../sidecar/src/cli/args.js');
    const { loadConfig } = await import('../../sidecar/src/config/config.js');
    const cmd = parseArgs(['run', '--no-children', 'job.py']);
    if (cmd.cmd !== 'run') throw new Error(cmd.cmd);
    const off = loadConfig(cmd.flags, {});
    expect(childEnv({}, paths, off, '/rd', 'run', '/node').HIGHWATER_CHILDREN).toBe('0');
    const on = loadConfig({}, {});
    expect(childEnv({}, paths, on, '/rd', 'run', '/node').HIGHWATER_CHILDREN).toBeUndefined();
    expect(loadConfig({}, { HIGHWATER_CHILDREN: '0' }).children).toBe(false);
    expect(childEnv({}, paths, loadConfig({}, { HIGHWATER_CHILDREN: '0' }), '/rd', 'run', '/node').HIGHWATER_CHILDREN).toBe('0');
  });
});
