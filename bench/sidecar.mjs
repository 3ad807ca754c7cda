// The Kubernetes sidecar's own cost, measured the way the closing note of
// issue 10 asks: `highwater watch --events` (with the pod's downward-API
// variables, Events going to the FAKE API server of test/kubernetes) idle,
// while watching a tracked process, scrape latency of /metrics, time from an
// OOM (the app's exit 53) and from a kernel SIGKILL to the Event received.
// RSS and CPU come from /proc/<pid> of the Node process itself.
//
// The sidecar runs as in a pod: in its own mount namespace with a service
// account directory at /var/run/secrets/kubernetes.io/serviceaccount (token,
// ca.crt) and KUBERNETES_SERVICE_HOST/PORT pointing at the fake over HTTPS,
// so it takes the in-cluster path (kubernetes/in-cluster.ts). BENCH_KUBECONFIG=1
// gives it a KUBECONFIG instead (the client-node path, as the tests use).
//
//   node_modules/node/bin/node bench/sidecar.mjs [SECONDS]   (root: mount namespace, memory cgroup)
//
// Node >= 22.18 / 24 (it imports the TypeScript fakes with type stripping).
// `npm run build` first. Env BENCH_CPU_PROF=DIR adds --cpu-prof to the
// sidecar (the profile is written when it exits on SIGTERM); BENCH_NODE_FLAGS
// adds Node flags (e.g. "--max-semi-space-size=1").
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { childEnv } from '../dist/cli/env.js';
import { bundlePaths } from '../dist/cli/paths.js';
import { loadConfig } from '../dist/config/config.js';
import { startFakeApiServer } from '../test/kubernetes/fake-api-server.ts';
import { makeCgroup } from '../test/helpers/cgroup.ts';

const root = resolve(import.meta.dirname, '..');
const seconds = Number(process.argv[2] ?? 20);
const node = process.execPath;
const CLK_TCK = 100; // Linux USER_HZ on every architecture Node runs on
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const MiB = 1024 * 1024;
const holdPy = join(root, 'test', 'watcher', 'fixtures', 'hold.py');
const leakPy = join(root, 'test', 'fixtures', 'python', 'leak.py');
const numpyPython = ['/root/.pyenv/versions/3.11.7/bin/python3', '/usr/bin/python3'].find((p) => {
  try {
    readFileSync(p);
    return true;
  } catch {
    return false;
  }
});

function procStat(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
  return { cpuTicks: Number(f[11]) + Number(f[12]), rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

/** CPU (fraction of one core) and RSS (median, max) of pid over `ms`. */
async function sample(pid, ms) {
  const a = procStat(pid);
  const t0 = performance.now();
  const rss = [];
  while (performance.now() - t0 < ms) {
    await sleep(1000);
    rss.push(procStat(pid).rss);
  }
  const b = procStat(pid);
  rss.sort((x, y) => x - y);
  return { cpu: (b.cpuTicks - a.cpuTicks) / CLK_TCK / ((performance.now() - t0) / 1000), rssMedian: rss[rss.length >> 1], rssMax: rss.at(-1) };
}

function startWatch(runDir, out, dir, fake) {
  const flags = [
    ...(process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean),
    ...(process.env.BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_CPU_PROF] : []),
  ];
  const argv = [
    node,
    ...flags,
    join(root, 'bin', 'highwater.js'),
    'watch',
    '--run-dir',
    runDir,
    '--output',
    out,
    '--metrics-port',
    '0',
    '--warn-after',
    '0',
    '--events',
  ];
  const env = {
    ...process.env,
    HIGHWATER_POD_NAME: 'bench-pod',
    HIGHWATER_POD_NAMESPACE: 'bench',
    HIGHWATER_POD_UID: '00000000-0000-4000-8000-000000000000',
    HIGHWATER_APP_CONTAINER: 'app',
    HIGHWATER_LOG_FORMAT: 'json',
    HIGHWATER_LOG_LEVEL: 'info',
    HIGHWATER_TERMINATION_LOG: '/nonexistent',
  };
  let child;
  if (process.env.BENCH_KUBECONFIG) {
    writeFileSync(join(dir, 'kubeconfig'), fake.kubeconfig());
    child = spawn(argv[0], argv.slice(1), { env: { ...env, KUBECONFIG: join(dir, 'kubeconfig') }, stdio: ['ignore', 'pipe', 'pipe'] });
  } else {
    // A pod's view: the service account mounted where the kubelet mounts it, in a private mount namespace.
    const sa = join(dir, 'serviceaccount');
    mkdirSync(sa);
    writeFileSync(join(sa, 'token'), fake.token);
    writeFileSync(join(sa, 'ca.crt'), readFileSync(join(dir, 'server.crt')));
    const quoted = argv.map((a) => `'${a}'`).join(' ');
    const script = `mount -t tmpfs tmpfs /run && mkdir -p /run/secrets/kubernetes.io && cp -r '${sa}' /run/secrets/kubernetes.io/ && exec ${quoted}`;
    delete env.KUBECONFIG;
    child = spawn('unshare', ['-m', 'sh', '-c', script], {
      env: { ...env, KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: new URL(fake.url).port },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  }
  let text = '';
  child.stdout.on('data', (d) => (text += d));
  child.stderr.on('data', (d) => (text += d));
  const waitFor = async (re, ms = 60_000) => {
    const end = Date.now() + ms;
    for (;;) {
      const m = re.exec(text);
      if (m) return m;
      if (Date.now() > end) throw new Error(`sidecar: no ${re} in:\n${text}`);
      await sleep(20);
    }
  };
  return { child, waitFor, text: () => text };
}

/**
 * python3 SCRIPT under the shim in its own PID namespace, as an app container
 * without shareProcessNamespace: the sidecar cannot see its /proc and takes
 * the readings the shim publishes in the state file, as in a pod.
 */
function app(runDir, script, env = {}, prefix = 'exec') {
  const python = numpyPython ?? 'python3';
  const e = childEnv({ ...process.env, ...env }, bundlePaths(root), loadConfig({}, {}), runDir, 'run', node);
  const child = spawn('sh', ['-c', `${prefix} unshare -p -f --mount-proc '${python}' '${script}'`], { cwd: root, env: e, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const exited = new Promise((r) => child.on('close', (code, signal) => r({ code, signal, at: Date.now() })));
  const ready = async () => {
    while (!/ready \d+/.test(out)) await sleep(20);
  };
  /** The kernel's SIGKILL to the Python process itself (unshare forked it). */
  const kill = () => {
    const [pythonPid] = readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(' ');
    process.kill(Number(pythonPid), 'SIGKILL');
  };
  return { child, exited, ready, kill };
}

async function scrape(url, n) {
  const ms = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const res = await fetch(url);
    await res.text();
    ms.push(performance.now() - t0);
    await sleep(1000);
  }
  ms.sort((a, b) => a - b);
  return { median: ms[ms.length >> 1], max: ms.at(-1), n };
}

const fmt = (s) => `${(s.cpu * 100).toFixed(2)} % of a core, RSS median ${(s.rssMedian / MiB).toFixed(1)} MiB, max ${(s.rssMax / MiB).toFixed(1)} MiB`;

const dir = mkdtempSync(join(tmpdir(), 'hw-bench-sidecar-'));
const runDir = join(dir, 'run');
mkdirSync(runDir, { mode: 0o700 });
execFileSync(
  'openssl',
  [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=127.0.0.1',
    '-addext',
    'subjectAltName=IP:127.0.0.1',
    '-keyout',
    join(dir, 'server.key'),
    '-out',
    join(dir, 'server.crt'),
  ],
  { stdio: 'ignore' },
);
const fake = await startFakeApiServer(
  'bench-token',
  process.env.BENCH_KUBECONFIG ? undefined : { key: readFileSync(join(dir, 'server.key'), 'utf8'), cert: readFileSync(join(dir, 'server.crt'), 'utf8') },
);
const received = [];
const add = fake.add.bind(fake);
fake.add = (ev) => (received.push({ at: Date.now(), ev }), add(ev));
const w = startWatch(runDir, join(dir, 'reports'), dir, fake);
const port = Number((await w.waitFor(/metrics at http:\/\/[^:]+:(\d+)\/metrics/))[1]);
const metricsUrl = `http://127.0.0.1:${port}/metrics`;
await w.waitFor(/HW_WATCH_STARTED/);
const pid = w.child.pid;
console.log(`sidecar start: RSS ${(procStat(pid).rss / MiB).toFixed(1)} MiB after the first pass`);
await sleep(3000);

console.log(`idle ${seconds} s:      ${fmt(await sample(pid, seconds * 1000))}`);
const idleScrape = await scrape(metricsUrl, 10);
console.log(`scrape idle:        median ${idleScrape.median.toFixed(1)} ms, max ${idleScrape.max.toFixed(1)} ms (${idleScrape.n} scrapes, 1 s apart)`);

const hold = app(runDir, holdPy, { HOLD_SECONDS: String(seconds + 15), STEPS: '4', STEP_MIB: '8' });
await hold.ready();
await w.waitFor(/HW_PROCESS_FOUND/);
await sleep(2000);
console.log(`watching ${seconds} s:  ${fmt(await sample(pid, seconds * 1000))}`);
const busyScrape = await scrape(metricsUrl, 10);
console.log(`scrape watching:    median ${busyScrape.median.toFixed(1)} ms, max ${busyScrape.max.toFixed(1)} ms (${busyScrape.n} scrapes, 1 s apart)`);
hold.kill(); // what the kernel does with memory.oom.group=1
const killedAt = Date.now();
await hold.exited;
await w.waitFor(/"trigger":"killed"/, 30_000);
const killEvent = await (async () => {
  const end = Date.now() + 15_000;
  while (Date.now() < end) {
    const r = received.find((x) => x.at >= killedAt);
    if (r) return r;
    await sleep(5);
  }
  return undefined;
})();
console.log(killEvent ? `SIGKILL -> Event:   ${killEvent.at - killedAt} ms (${killEvent.ev.reason})` : 'SIGKILL -> Event:   none within 15 s');

const cg = process.getuid?.() === 0 ? makeCgroup(256 * MiB) : 'not root';
if (typeof cg === 'string') console.log(`OOM phase skipped: ${cg}`);
else {
  const n = received.length;
  const leak = app(runDir, leakPy, {}, cg.enterPrefix);
  const { code, at } = await leak.exited;
  const end = Date.now() + 15_000;
  while (received.length === n && Date.now() < end) await sleep(5);
  const ev = received[n];
  console.log(
    `OOM (exit ${code}) -> Event: ${ev ? `${ev.at - at} ms (${ev.ev.reason}; eventTime ${Date.parse(ev.ev.eventTime) - at} ms after the exit)` : 'none within 15 s'}`,
  );
  cg.remove();
}
console.log(`sidecar RSS high-water mark (VmHWM, rendering included): ${(procStat(pid).hwm / MiB).toFixed(1)} MiB`);

w.child.kill('SIGTERM');
await new Promise((r) => w.child.on('close', r));
await fake.close();
console.log(
  `${process.env.BENCH_KUBECONFIG ? 'KUBECONFIG (client-node)' : 'in-cluster (node:https)'}; flags [${process.env.BENCH_NODE_FLAGS ?? ''}]; Node ${process.version}, ${new Date().toISOString()}; run dir ${dir}`,
);
