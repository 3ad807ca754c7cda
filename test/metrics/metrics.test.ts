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

  it('counts reports, detections and failures by label and reads container gauges at scrape time, without pid labels', async () => {
    let samples: ProcessSample[] = [
      { pid: 12, peakBytes: 300, currentBytes: 200, availableBytes: 1000, limitBytes: 4096, workingSetBytes: 3000, swapBytes: 7, floorBytes: 64 },
      { pid: 40, peakBytes: 50, currentBytes: 20, availableBytes: 999, limitBytes: 4096, workingSetBytes: 3001, swapBytes: 8, floorBytes: 65 },
    ];
    const m = new Metrics({ processes: () => samples }, { version: '9.8.7' });
    m.reportWritten('oom');
    m.reportWritten('oom');
    m.reportWritten('exit');
    m.reportFailed('EROFS');
    const { base } = await serve(m);
    let text = await (await fetch(`${base}/metrics`)).text();
    // No detection yet: neither "last detection" gauge is there.
    expect(text).not.toMatch(/^highwater_seconds_since_last_oom_detection /m);
    expect(text).not.toMatch(/^highwater_last_oom_detection_timestamp_seconds /m);
    const before = Date.now() / 1000;
    m.oom('low-available');
    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    text = await res.text();
    expect(text).toMatch(/^highwater_reports_written_total\{trigger="oom"\} 2$/m);
    expect(text).toMatch(/^highwater_reports_written_total\{trigger="exit"\} 1$/m);
    expect(text).toMatch(/^highwater_oom_detections_total\{reason="low-available"\} 1$/m);
    expect(text).toMatch(/^highwater_report_failures_total\{reason="EROFS"\} 1$/m);
    expect(text).toMatch(/^highwater_watched_processes 2$/m);
    // Sums over processes for tracked memory; the lowest pid's readings for the container.
    expect(text).toMatch(/^highwater_tracked_bytes 220$/m);
    expect(text).toMatch(/^highwater_tracked_peak_bytes 350$/m);
    expect(text).toMatch(/^highwater_memory_limit_bytes 4096$/m);
    expect(text).toMatch(/^highwater_memory_working_set_bytes 3000$/m);
    expect(text).toMatch(/^highwater_memory_available_bytes 1000$/m);
    expect(text).toMatch(/^highwater_memory_swap_bytes 7$/m);
    expect(text).toMatch(/^highwater_memory_floor_bytes 64$/m);
    const at = Number(/^highwater_last_oom_detection_timestamp_seconds (\S+)$/m.exec(text)?.[1]);
    expect(at).toBeGreaterThanOrEqual(before - 0.001);
    expect(at).toBeLessThanOrEqual(Date.now() / 1000);
    expect(Number(/^highwater_seconds_since_last_oom_detection (\S+)$/m.exec(text)?.[1])).toBeLessThan(5);
    expect(text).toMatch(/^highwater_build_info\{version="9\.8\.7",nodejs_version="\d+\.\d+\.\d+"\} 1$/m);
    // Node's default process metrics, under the prefix only.
    expect(text).toMatch(/^highwater_process_resident_memory_bytes \d+$/m);
    expect(text).toMatch(/^highwater_process_cpu_seconds_total \S+$/m);
    expect(text).not.toMatch(/^process_/m);
    // Conventions: no pid or path label anywhere; every counter ends in _total.
    expect(text).not.toMatch(/\{[^}]*\b(pid|path|file)="/);
    for (const [, name] of text.matchAll(/^# TYPE (\S+) counter$/gm)) expect(name).toMatch(/_total$/);

    // Processes that ended leave no stale values; a limit of 0 (none) and missing readings are absent.
    samples = [{ pid: 13, peakBytes: 5, currentBytes: 4, availableBytes: undefined, limitBytes: 0 }];
    await new Promise((r) => setTimeout(r, 60));
    const again = await (await fetch(`${base}/metrics`)).text();
    expect(again).toMatch(/^highwater_tracked_peak_bytes 5$/m);
    expect(again).toMatch(/^highwater_watched_processes 1$/m);
    expect(again).not.toMatch(/^highwater_memory_(available|limit|floor)_bytes /m);
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
    expect(text).toMatch(/^highwater_reports_written_total\{trigger="killed"\} 1$/m);
    expect(text).toMatch(/^highwater_watched_processes 0$/m);
    expect(m.lastCollectError).toBe('state file vanished');
  });

  it('/readyz answers 503 until ready() says so, then 200; /healthz is 200 all along', async () => {
    let ready = false;
    const s = new MetricsServer(new Metrics({ processes: () => [] }, undefined, { processMetrics: false }), { port: 0, host: '127.0.0.1', ready: () => ready });
    servers.push(s);
    const base = `http://127.0.0.1:${(await s.start()).port}`;
    const first = await fetch(`${base}/readyz`);
    expect(first.status).toBe(503);
    expect(await first.text()).toMatch(/first scan/);
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    ready = true;
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
  });

  it('uploads and Events are counted; a failed upload is also a report failure', async () => {
    const m = new Metrics({ processes: () => [] }, undefined, { processMetrics: false });
    m.uploadDone(true);
    m.uploadDone(false);
    m.eventPosted();
    m.eventFailed('HW_ERR_K8S_FORBIDDEN');
    const text = await m.text();
    expect(text).toMatch(/^highwater_report_uploads_total\{result="ok"\} 1$/m);
    expect(text).toMatch(/^highwater_report_uploads_total\{result="failed"\} 1$/m);
    expect(text).toMatch(/^highwater_report_failures_total\{reason="upload"\} 1$/m);
    expect(text).toMatch(/^highwater_kubernetes_events_posted_total 1$/m);
    expect(text).toMatch(/^highwater_kubernetes_event_failures_total\{code="HW_ERR_K8S_FORBIDDEN"\} 1$/m);
    expect(text).not.toMatch(/^highwater_process_/m);
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
