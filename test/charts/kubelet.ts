// A small stand-in for a kubelet, on the real Docker engine: it runs the pod
// of a rendered Job the way a kubelet would, because no API server or kubelet
// can run here. What it does, in the kubelet's order:
//   - a pause container owns the pod's network and IPC namespaces (--network
//     none: the pod has only loopback, as the tests want no network);
//   - every pod volume becomes a fresh Docker volume (emptyDir: mode 0777 as
//     the kubelet makes it; PVC: owned by fsGroup with setgid when the pod
//     sets one, as the kubelet's volume ownership change does); configMap
//     volumes are written from the ConfigMaps given;
//   - each container gets its securityContext (user, group, fsGroup as a
//     supplementary group, read-only root, no-new-privileges, dropped
//     capabilities), env (value with $(VAR) expansion of earlier entries,
//     downward-API fieldRefs), resources.limits (memory with no swap, cpu),
//     command/args with Kubernetes' meaning (command replaces ENTRYPOINT,
//     args replace CMD), and a /dev/termination-log file of its own;
//   - init containers run in order, each to exit 0; one with restartPolicy
//     Always is a native sidecar: started detached, and the next container
//     starts only once its startupProbe (httpGet, run from inside the pod's
//     network namespace) succeeds;
//   - then the main containers; when they have ended, the sidecars get
//     SIGTERM and terminationGracePeriodSeconds (`docker stop -t`).
// Not emulated: image pulls (images must exist: imagePullPolicy Never or
// IfNotPresent), restarts, liveness, Services.
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { docker, type DockerResult } from '../helpers/docker.js';

/* eslint-disable @typescript-eslint/no-explicit-any */

export interface PodIdentity {
  name: string;
  namespace: string;
  uid: string;
  nodeName: string;
}

export interface PodRun {
  prefix: string;
  spec: any;
  identity: PodIdentity;
  /** ConfigMaps by name (data: file name -> text), for configMap volumes. */
  configMaps?: Record<string, Record<string, string>>;
}

export interface StartedContainer {
  name: string;
  docker: string;
  terminationLog: string;
}

const dockerOk = async (args: string[], what: string): Promise<DockerResult> => {
  const r = await docker(args);
  if (r.code !== 0) throw new Error(`${what}: docker ${args.slice(0, 2).join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
  return r;
};

/** Kubernetes' $(VAR) expansion: earlier entries only, $$ escapes, unknown refs stay as written. */
export function expandEnv(value: string, defined: Map<string, string>): string {
  return value.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (m, name: string | undefined) => {
    if (m === '$$') return '$';
    return defined.has(name!) ? defined.get(name!)! : m;
  });
}

function fieldRef(path: string, id: PodIdentity): string {
  const known: Record<string, string> = { 'metadata.name': id.name, 'metadata.namespace': id.namespace, 'metadata.uid': id.uid, 'spec.nodeName': id.nodeName };
  if (!(path in known)) throw new Error(`kubelet stand-in: fieldRef ${path} not emulated`);
  return known[path]!;
}

export function resolveEnv(env: any[] | undefined, id: PodIdentity): Map<string, string> {
  const out = new Map<string, string>();
  for (const e of env ?? []) {
    if (e.value !== undefined) out.set(e.name, expandEnv(String(e.value), out));
    else if (e.valueFrom?.fieldRef) out.set(e.name, fieldRef(e.valueFrom.fieldRef.fieldPath, id));
    else if (e.valueFrom) throw new Error(`kubelet stand-in: env ${e.name}: ${Object.keys(e.valueFrom).join()} not emulated`);
    else out.set(e.name, '');
  }
  return out;
}

/** Kubernetes quantity → bytes (memory) for --memory. */
export function memoryBytes(q: string): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(String(q));
  if (!m) throw new Error(`kubelet stand-in: memory quantity ${q} not emulated`);
  const unit: Record<string, number> = { '': 1, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4, k: 1e3, M: 1e6, G: 1e9, T: 1e12 };
  return Math.round(Number(m[1]) * unit[m[2] ?? '']!);
}

function cpus(q: string): string {
  const s = String(q);
  return s.endsWith('m') ? String(Number(s.slice(0, -1)) / 1000) : s;
}

export class Pod {
  readonly pause: string;
  readonly volumes = new Map<string, string>();
  readonly containers: StartedContainer[] = [];
  private readonly tmp = mkdtempSync(join(tmpdir(), 'hw-pod-'));
  private readonly allVolumes: string[] = [];
  /** Extra `docker run` arguments per container name (what the test adds that a kubelet would not). */
  readonly extraArgs: Record<string, string[]> = {};

  constructor(private readonly run: PodRun) {
    this.pause = `${run.prefix}-pause`;
  }

  private get fsGroup(): number | undefined {
    return this.run.spec.securityContext?.fsGroup;
  }

  /** The pause container and the volumes. `helperImage` needs sleep, chmod, chown. */
  async create(helperImage: string): Promise<void> {
    await dockerOk(['run', '-d', '--name', this.pause, '--network', 'none', '--ipc', 'shareable', '--entrypoint', 'sleep', helperImage, 'infinity'], 'pause');
    for (const v of this.run.spec.volumes ?? []) {
      const name = `${this.run.prefix}-${v.name}`;
      if (v.configMap) {
        const dir = join(this.tmp, `cm-${v.name}`);
        const data = this.run.configMaps?.[v.configMap.name];
        if (!data) throw new Error(`kubelet stand-in: no ConfigMap ${v.configMap.name}`);
        mkdirSync(dir);
        for (const [f, text] of Object.entries(data)) writeFileSync(join(dir, f), text, { mode: 0o644 });
        chmodSync(dir, 0o755);
        this.volumes.set(v.name, `${dir}`);
        continue;
      }
      if (!v.emptyDir && !v.persistentVolumeClaim) throw new Error(`kubelet stand-in: volume ${v.name} kind not emulated`);
      await dockerOk(['volume', 'create', name], `volume ${v.name}`);
      this.allVolumes.push(name);
      this.volumes.set(v.name, name);
      // emptyDir: 0777 (kubelet). PVC: a new filesystem's root, root-owned,
      // changed to the fsGroup with setgid when the pod has one.
      const prep = v.emptyDir ? 'chmod 0777 /v' : this.fsGroup !== undefined ? `chgrp ${this.fsGroup} /v && chmod 2775 /v` : 'chmod 0755 /v';
      await dockerOk(
        ['run', '--rm', '--network', 'none', '--user', '0:0', '-v', `${name}:/v`, '--entrypoint', 'sh', helperImage, '-c', prep],
        `prepare ${v.name}`,
      );
    }
  }

  private runArgs(c: any, detached: boolean): string[] {
    const name = `${this.run.prefix}-${c.name}`;
    const args = ['run', '--name', name, '--network', `container:${this.pause}`, '--ipc', `container:${this.pause}`];
    if (detached) args.push('-d');
    const sc = c.securityContext ?? {};
    const psc = this.run.spec.securityContext ?? {};
    const uid = sc.runAsUser ?? psc.runAsUser;
    const gid = sc.runAsGroup ?? psc.runAsGroup;
    if (uid !== undefined) args.push('--user', gid !== undefined ? `${uid}:${gid}` : String(uid));
    if (this.fsGroup !== undefined) args.push('--group-add', String(this.fsGroup));
    if (sc.readOnlyRootFilesystem) args.push('--read-only');
    if (sc.allowPrivilegeEscalation === false) args.push('--security-opt', 'no-new-privileges');
    for (const cap of sc.capabilities?.drop ?? []) args.push('--cap-drop', cap);
    for (const cap of sc.capabilities?.add ?? []) args.push('--cap-add', cap);
    const lim = c.resources?.limits ?? {};
    if (lim.memory) args.push('--memory', String(memoryBytes(lim.memory)), '--memory-swap', String(memoryBytes(lim.memory)));
    if (lim.cpu) args.push('--cpus', cpus(lim.cpu));
    for (const [k, v] of resolveEnv(c.env, this.run.identity)) args.push('-e', `${k}=${v}`);
    for (const m of c.volumeMounts ?? []) {
      const src = this.volumes.get(m.name);
      if (!src) throw new Error(`kubelet stand-in: ${c.name} mounts unknown volume ${m.name}`);
      args.push('-v', `${src}:${m.mountPath}${m.readOnly ? ':ro' : ''}`);
    }
    // Every container has a termination-log file of its own, writable by it.
    const log = join(this.tmp, `termination-log-${c.name}`);
    writeFileSync(log, '', { mode: 0o666 });
    chmodSync(log, 0o666);
    args.push('-v', `${log}:${c.terminationMessagePath ?? '/dev/termination-log'}`);
    args.push(...(this.extraArgs[c.name] ?? []));
    const command: string[] = c.command ?? [];
    if (command.length) args.push('--entrypoint', command[0]!);
    args.push(c.image);
    if (command.length) args.push(...command.slice(1), ...(c.args ?? []));
    else if (c.args) args.push(...c.args);
    this.containers.push({ name: c.name, docker: name, terminationLog: log });
    return args;
  }

  /** Runs a plain init container to completion; it must exit 0. Returns the wall time (ms). */
  async runInit(c: any): Promise<number> {
    const t0 = Date.now();
    const r = await docker(this.runArgs(c, false));
    if (r.code !== 0) throw new Error(`init container ${c.name} exited ${r.code}: ${r.stderr.trim()}`);
    return Date.now() - t0;
  }

  /** An HTTP GET from inside the pod's network namespace (what a kubelet's probe reaches). */
  async httpGet(container: string, port: number, path: string): Promise<{ status: number; body: string; ms: number }> {
    const script =
      'const t=performance.now();require("http").get({host:"127.0.0.1",port:+process.argv[1],path:process.argv[2],timeout:2000},' +
      'r=>{let b="";r.on("data",d=>b+=d);r.on("end",()=>{process.stdout.write(JSON.stringify({status:r.statusCode,ms:performance.now()-t,body:b}))})})' +
      '.on("error",e=>{process.stdout.write(JSON.stringify({status:0,ms:performance.now()-t,body:String(e)}))})';
    const r = await docker(['exec', container, '/opt/highwater/node/bin/node', '-e', script, String(port), path], 15_000);
    try {
      return JSON.parse(r.stdout) as { status: number; body: string; ms: number };
    } catch {
      return { status: 0, body: r.stderr, ms: 0 };
    }
  }

  /**
   * Starts a native sidecar and waits for its startupProbe (httpGet) as a
   * kubelet does: every periodSeconds, up to failureThreshold failures.
   * Returns the time from start to started (ms).
   */
  async startSidecar(c: any): Promise<number> {
    const t0 = Date.now();
    await dockerOk(this.runArgs(c, true), `sidecar ${c.name}`);
    const probe = c.startupProbe?.httpGet;
    if (!probe) return Date.now() - t0;
    const port = typeof probe.port === 'number' ? probe.port : c.ports.find((p: any) => p.name === probe.port).containerPort;
    const period = (c.startupProbe.periodSeconds ?? 10) * 1000;
    const threshold = c.startupProbe.failureThreshold ?? 3;
    for (let i = 0; i < threshold; i++) {
      const r = await this.httpGet(`${this.run.prefix}-${c.name}`, port, probe.path);
      if (r.status >= 200 && r.status < 400) return Date.now() - t0;
      await new Promise((res) => setTimeout(res, period));
    }
    const logs = await docker(['logs', `${this.run.prefix}-${c.name}`]);
    throw new Error(`sidecar ${c.name}: startupProbe ${probe.path} never succeeded: ${logs.stdout}${logs.stderr}`);
  }

  /** Starts a main container detached. */
  async startMain(c: any): Promise<string> {
    await dockerOk(this.runArgs(c, true), `container ${c.name}`);
    return `${this.run.prefix}-${c.name}`;
  }

  async wait(container: string, timeoutMs = 300_000): Promise<number> {
    const r = await docker(['wait', container], timeoutMs);
    return Number(r.stdout.trim());
  }

  /** The kubelet's end of a pod whose main containers ended: SIGTERM to sidecars, then the grace period. */
  async stopSidecars(sidecars: any[]): Promise<number[]> {
    const grace = String(this.run.spec.terminationGracePeriodSeconds ?? 30);
    const codes: number[] = [];
    for (const c of [...sidecars].reverse()) {
      const name = `${this.run.prefix}-${c.name}`;
      await docker(['stop', '-t', grace, name]);
      codes.push(Number((await docker(['inspect', '-f', '{{.State.ExitCode}}', name])).stdout.trim()));
    }
    return codes;
  }

  /** A helper container in the pod's namespaces that is not part of the pod spec (the test's fakes). */
  async startHelper(name: string, args: string[]): Promise<string> {
    const full = `${this.run.prefix}-${name}`;
    await dockerOk(['run', '-d', '--name', full, '--network', `container:${this.pause}`, ...args], `helper ${name}`);
    this.helpers.push(full);
    return full;
  }

  private readonly helpers: string[] = [];

  async delete(): Promise<void> {
    const names = [...this.containers.map((c) => c.docker), ...this.helpers, this.pause];
    await docker(['rm', '-f', '-v', ...names]);
    if (this.allVolumes.length) await docker(['volume', 'rm', '-f', ...this.allVolumes]);
  }
}
