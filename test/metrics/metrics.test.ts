// The metrics registry and its HTTP server, scraped for real on port 0.
import { afterEach, describe, expect, it } from 'vitest';
import { Metrics, MetricsServer, type ProcessSample } from '../../sidecar/src/metrics/index.js';

describe('metrics', () => {
  const servers: MetricsServer[] = [];
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.stop();
  });
  const serve = async (m: Metrics) => {
    const s = new MetricsServer(m, { port: 0, host: '127.0.0.1' });
    servers.push(s);
    const addr = await s.start();
    return { s, base: `http://127.0.0.1:${addr.port}` };
  };

  it('counts reports, OOMs and failures by label and reads the gauges at scrape time', async () => {
    let samples: ProcessSample[] = [{ pid: 12, peakBytes: 300, currentBytes: 200, availableBytes: 1000 }];
    const m = new Metrics({ processes: () => samples });
    m.reportWritten('oom');
    m.reportWritten('oom');
    m.reportWritten('exit');
    m.oom('low-available');
    m.reportFailed('EROFS');
    const { base } = await serve(m);
    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await res.text();
    expect(text).toMatch(/^highwater_reports_total\{trigger="oom"\} 2$/m);
    expect(text).toMatch(/^highwater_reports_total\{trigger="exit"\} 1$/m);
    expect(text).toMatch(/^highwater_oom_total\{reason="low-available"\} 1$/m);
    expect(text).toMatch(/^highwater_report_failures_total\{reason="EROFS"\} 1$/m);
    expect(text).toMatch(/^highwater_tracked_processes 1$/m);
    expect(text).toMatch(/^highwater_peak_bytes\{pid="12"\} 300$/m);
    expect(text).toMatch(/^highwater_current_bytes\{pid="12"\} 200$/m);
    expect(text).toMatch(/^highwater_available_bytes\{pid="12"\} 1000$/m);

    // A process that ended leaves no stale series; one without readings has no available gauge.
    samples = [{ pid: 13, peakBytes: 5, currentBytes: 4, availableBytes: undefined }];
    await new Promise((r) => setTimeout(r, 60));
    const again = await (await fetch(`${base}/metrics`)).text();
    expect(again).not.toContain('pid="12"');
    expect(again).toMatch(/^highwater_peak_bytes\{pid="13"\} 5$/m);
    expect(again).not.toMatch(/^highwater_available_bytes\{/m);
  });

  it('a source that throws does not break the scrape', async () => {
    const m = new Metrics({
      processes: () => {
        throw new Error('state file vanished');
      },
    });
    m.reportWritten('killed');
    const { base } = await serve(m);
    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toMatch(/^highwater_reports_total\{trigger="killed"\} 1$/m);
    expect(text).toMatch(/^highwater_tracked_processes 0$/m);
    expect(m.lastCollectError).toBe('state file vanished');
  });

  it('serves /healthz, 404 elsewhere; start() is idempotent, stop() tolerant', async () => {
    const m = new Metrics({ processes: () => [] });
    const { s, base } = await serve(m);
    const again = await s.start();
    expect(again.port).toBe(s.port);
    expect(await (await fetch(`${base}/healthz`)).text()).toBe('ok\n');
    expect((await fetch(`${base}/nope`)).status).toBe(404);
    expect((await fetch(`${base}/metrics`, { method: 'POST' })).status).toBe(405);
    await s.stop();
    await s.stop();
    await expect(fetch(`${base}/healthz`)).rejects.toThrow();
    await new MetricsServer(m, { port: 0 }).stop(); // never started
  });

  it('a port in use rejects start() naming the errno, and stop() after that is fine', async () => {
    const m = new Metrics({ processes: () => [] });
    const { s } = await serve(m);
    const clash = new MetricsServer(m, { port: s.port!, host: '127.0.0.1' });
    await expect(clash.start()).rejects.toMatchObject({ code: 'EADDRINUSE' });
    await clash.stop();
  });
});
