// report/html.ts directly: the words for each trigger, the flamegraph frames
// (inline and lazily kept) surviving hostile text, and renderPage's tables
// against the stacks they come from (the seed example and the OOM fixture).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseDump } from '../../sidecar/src/report/dump.js';
import { code, explainTrigger, frame, renderPage, where } from '../../sidecar/src/report/html.js';
import type { ProfileData, Trigger } from '../../sidecar/src/report/model.js';
import { boundProfile, buildReportJson } from '../../sidecar/src/report/render.js';

const DUMPS = join(import.meta.dirname, '../fixtures/dumps');

function page(data: ProfileData) {
  const bounded = boundProfile(data);
  const report = buildReportJson(data, bounded);
  return { report, ...renderPage(data, report, bounded.sorted) };
}

function dump(name: string): ProfileData {
  return parseDump(readFileSync(join(DUMPS, name), 'utf8'));
}

/** Text of an HTML fragment as a browser shows it (tags dropped, the entities esc() makes decoded). */
function text(html: string): string {
  return html
    .replace(/<[^>]*>/g, '')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, '&');
}

describe('explainTrigger', () => {
  it('says why for every trigger; the floor only for low-available with a floor', () => {
    const all: Trigger[] = ['exit', 'oom', 'killed', 'signal', 'api', 'request'];
    const words = all.map((t) => explainTrigger(t, null));
    expect(new Set(words).size).toBe(all.length);
    expect(words[0]).toMatch(/^Normal exit/);
    expect(words[2]).toMatch(/^Killed: .*SIGKILL.*post-mortem/);
    expect(explainTrigger('oom', 'low-available', 100 * 1024 * 1024)).toBe(
      'Out of memory: available memory fell under the floor (floor 100.0 MiB). highwater stopped the process (exit code 53) before the kernel OOM killer did.',
    );
    expect(explainTrigger('oom', 'low-available', 0)).not.toContain('floor (');
    expect(explainTrigger('oom', 'swap', 1 << 20)).not.toContain('floor (');
    expect(explainTrigger('oom', 'failed-allocation')).toContain('an allocation failed');
    expect(explainTrigger('oom', null)).toContain('the watcher declared the process out of memory');
  });
});

describe('frame', () => {
  // Text a flamegraph may carry from a hostile source line or file name.
  const svg = '<svg height="40"><text>&lt;/script&gt; </script><!-- \u2028 " & \' </text></svg>';

  it('a lazily kept flamegraph is JSON that no text inside can end early, and parses back to its document', () => {
    for (const mode of ['near', 'hidden'] as const) {
      const html = frame('fg-x', svg, mode);
      expect(html.match(/<\/script>/g)).toHaveLength(1); // only the element's own end tag
      expect(html).not.toContain('<!--');
      const json = /<script type="application\/json" id="fg-x-doc">(.*)<\/script>$/s.exec(html)![1]!;
      expect(JSON.parse(json)).toBe(`<!DOCTYPE html><html><head><meta charset="utf-8"><style>body{margin:0}</style></head><body>${svg}</body></html>`);
      expect(html).toContain('style="height:40px"');
      expect(html.includes(' hidden></iframe>')).toBe(mode === 'hidden');
    }
  });

  it('an inline flamegraph is one attribute whose value decodes back to its document', () => {
    const html = frame('fg-y', svg, 'now');
    const attr = /^<iframe class="fg" id="fg-y" title="flamegraph" style="height:40px" srcdoc="([^"]*)"><\/iframe>$/.exec(html);
    expect(attr).not.toBeNull();
    expect(attr![1]!.replace(/&quot;/g, '"').replace(/&amp;/g, '&')).toContain(`<body>${svg}</body>`);
  });
});

describe('where and code', () => {
  it('name a line by its basename with the full path in the title, a pseudo-frame in italics', () => {
    const f = { file: '/app/<odd> "dir"/job.py', line: 12, function: 'f', code: 'x = [b"<" & 1]' };
    expect(where(f)).toBe('<span class="loc" title="/app/&lt;odd&gt; &quot;dir&quot;/job.py:12">job.py:12</span>');
    expect(where({ file: '', line: 0, function: '[3 frames folded]', code: '' })).toBe('<em>[3 frames folded]</em>');
    expect(where(undefined)).toBe('<em>no Python frame</em>');
    expect(text(code(f))).toBe(f.code);
    expect(code({ ...f, code: '' })).toBe('');
  });
});

describe('renderPage', () => {
  it('the seed example: the top-lines rows are the stacks, largest first, with their share of the peak', () => {
    const data = dump('example.dump');
    const { html, report, svg, reversedSvg } = page(data);
    const rows = [...html.matchAll(/<tr class="line"[^>]*>(.*?)<\/tr>/g)].map((m) =>
      [...m[1]!.matchAll(/<td[^>]*>(.*?)<\/td>/g)].map((c) => text(c[1]!.replace(/<details>.*<\/details>/, ''))),
    );
    // Own code only, the innermost own line of each stack. The page lists every stack (report.json
    // cuts to 99 % of the peak, so it has only the first three).
    expect(rows).toEqual([
      ['1', 'example.py:4', 'make_big_array', 'return np.zeros((1024, 1024, 50))', '400.0 MiB', '71.43%'],
      ['2', 'example.py:7', 'make_two_arrays', 'arr1 = np.zeros((1024, 1024, 10))', '80.0 MiB', '14.29%'],
      ['3', 'example.py:8', 'make_two_arrays', 'arr2 = np.ones((1024, 1024, 10))', '80.0 MiB', '14.29%'],
      ['4', 'example.py:1', '<module>', 'import numpy as np', '3.9 KiB', '0.00%'],
      ['5', '[no Python frame]', '[no Python frame]', '', '1000 B', '0.00%'],
    ]);
    expect(report.stacks.map((s) => s.bytes)).toEqual([419430400, 83886080, 83886080]);
    // A row zooms the flamegraph only to a frame the page draws (one pixel or wider).
    const zoom = [...html.matchAll(/<tr class="line" data-fg="fg-peak" data-x="[\d.]+" data-d="\d+"/g)];
    expect(zoom).toHaveLength(3);
    expect(text(/<p class="why" id="trigger">(.*?)<\/p>/.exec(html)![1]!)).toBe(
      'Normal exit: the peak memory use of the whole run. The line holding the most at the peak: example.py:4 make_big_array (400.0 MiB).',
    );
    expect(html).not.toContain('id="live"'); // only an OOM report has the live view
    expect(svg).toContain('>make_big_array (example.py:4)<');
    expect(reversedSvg).toContain('reversed: allocation sites first');
  });

  it('the OOM fixture: live view first, the tripping allocation, run details escaped, no stray script', () => {
    const data = dump('oom.dump');
    const { html } = page(data);
    expect(html.indexOf('<section id="live">')).toBeGreaterThan(0);
    expect(html.indexOf('<section id="live">')).toBeLessThan(html.indexOf('<section id="peak">'));
    expect(text(/<p id="oom-allocation">(.*?)<\/p>/.exec(html)![1]!)).toBe('8.0 TiB requested at job.py:4 load <rows> & "quote" big = np.empty(n * 1024)');
    const details = Object.fromEntries(
      [.../<table id="details">(.*?)<\/table>/s.exec(html)![1]!.matchAll(/<tr><th>(.*?)<\/th><td>(.*?)<\/td><\/tr>/g)].map((m) => [m[1]!, text(m[2]!)]),
    );
    expect(details).toMatchObject({
      Command: data.process.argv.join(' '),
      PID: String(data.process.pid),
      Python: data.process.python,
      'Working directory': data.process.cwd,
      'Recorded at': new Date(data.timeMs).toISOString(),
      Floor: '100.0 MiB',
    });
    expect(details).not.toHaveProperty('Stacks'); // exact, not sampled
    expect(html.match(/<script/g)!.length).toBe(html.match(/<\/script>/g)!.length);
    expect(html).not.toContain('</script>"'); // the source line's "</script>" is escaped everywhere
  });

  it('a sampled profile says so in the run details', () => {
    const data = { ...dump('example.dump'), sampling: { rateBytes: 512 * 1024 } };
    const { html } = page(data);
    expect(html).toContain('<tr><th>Stacks</th><td>sampled: about one per 512.0 KiB allocated;');
  });
});
