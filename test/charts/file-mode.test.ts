// The chart's file-mode scheme with real uids, no kubelet (none can run
// here): the init container's own rendered command makes the shared run dir
// as uid/gid 10001 (its two image paths pointed at temporary directories);
// the app runs under the shim as another uid and gid (1000:1000, not in
// highwater's group) with the rendered HIGHWATER_RUN_DIR / _FILE_MODE /
// _CONTROL_UID; the watcher runs as the sidecar does (10001:10001) and must
// read what the app wrote; a third uid must not. Needs root (setpriv).
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { childEnv } from '../../sidecar/src/cli/env.js';
import { bundlePaths } from '../../sidecar/src/cli/paths.js';
import { loadConfig } from '../../sidecar/src/config/config.js';
import { MiB, bytesAtLine, cliPath, readReport, repoRoot } from '../helpers/cli.js';
import { containerOf, envOf, podSpecOf, template } from './render.js';

const SIDECAR = '10001';
const APP = '1000';
const OTHER = '2000';

function unavailable(): string | null {
  if (process.getuid?.() !== 0) return 'not root';
  try {
    execFileSync('setpriv', ['--reuid', APP, '--regid', APP, '--clear-groups', 'true'], { stdio: 'ignore' });
  } catch {
    return 'setpriv cannot change uid';
  }
  return existsSync('/usr/bin/python3') ? null : 'no /usr/bin/python3';
}
const why = unavailable();

/** Run argv as uid:gid with no supplementary groups. */
const as = (id: string, argv: string[], env: NodeJS.ProcessEnv = process.env) =>
  spawnSync('setpriv', ['--reuid', id, '--regid', id, '--clear-groups', ...argv], { cwd: repoRoot, env, encoding: 'utf8', timeout: 60_000 });

describe.skipIf(why !== null)(`run-dir file modes between the app's uid and the sidecar's${why ? ` (skipped: ${why})` : ''}`, () => {
  it("the sidecar's uid reads the app's files through the setgid run dir the init container makes; another uid cannot", async () => {
    const root = mkdtempSync(join(tmpdir(), 'hw-filemode-'));
    chmodSync(root, 0o755);
    const volume = join(root, 'run-volume'); // the emptyDir: 0777, root-owned, as the kubelet makes it
    mkdirSync(volume);
    chmodSync(volume, 0o777);

    const r = await template(['--set', 'workload.image.repository=registry.example.com/job', '--set', `highwater.runDir=${volume}`]);
    expect(r.code, r.stderr).toBe(0);
    const workload = r.objects.find((o) => o.kind === 'Job')!;
    const spec = podSpecOf(workload);
    const init = containerOf(spec, 'highwater-bundle');
    const sidecar = containerOf(spec, 'highwater');
    const appEnv = envOf(spec.containers[0]);
    const runDir: string = appEnv.HIGHWATER_RUN_DIR;
    expect(sidecar.args[sidecar.args.indexOf('--run-dir') + 1]).toBe(runDir);
    expect(String(sidecar.securityContext.runAsUser)).toBe(SIDECAR);
    expect(String(sidecar.securityContext.runAsGroup)).toBe(SIDECAR);

    // The init container's command, as its uid; /opt/highwater and /highwater-bundle are temporary directories here.
    const image = join(root, 'opt-highwater');
    for (const d of ['bin', 'lib', 'python']) mkdirSync(join(image, d), { recursive: true });
    const bundle = join(root, 'bundle');
    mkdirSync(bundle);
    chownSync(bundle, Number(SIDECAR), Number(SIDECAR));
    chmodSync(root, 0o755);
    const [sh, dashC, script, ...rest] = init.command as string[];
    const initRun = as(SIDECAR, [sh!, dashC!, script!.replaceAll('/opt/highwater/', `${image}/`).replaceAll('/highwater-bundle/', `${bundle}/`), ...rest]);
    expect(initRun.status, initRun.stderr).toBe(0);
    const dir = lstatSync(runDir);
    expect(dir.uid).toBe(Number(SIDECAR));
    expect(dir.mode & 0o7777).toBe(0o3777); // setgid + sticky + rwx for all

    // The app: another uid and gid, under the shim, with the chart's variables.
    const program = join(root, 'job.py');
    writeFileSync(program, 'import sys\nblocks = [bytearray(8 * 1024 * 1024) for _ in range(4)]  # JOB-LINE\nsys.exit(0)\n');
    chmodSync(program, 0o644);
    const env = {
      ...childEnv({ ...process.env, HOME: root }, bundlePaths(repoRoot), loadConfig({}, {}), runDir, 'run', process.execPath),
      HIGHWATER_RUN_DIR: runDir,
      HIGHWATER_FILE_MODE: appEnv.HIGHWATER_FILE_MODE,
      HIGHWATER_CONTROL_UID: appEnv.HIGHWATER_CONTROL_UID,
    };
    const app = as(APP, ['/usr/bin/python3', program], env);
    expect(app.status, app.stderr).toBe(0);
    const files = readdirSync(runDir);
    expect(
      files.some((f) => /^hw-\d+-\d+\.dump$/.test(f)),
      files.join(' '),
    ).toBe(true);
    for (const f of files) {
      const st = lstatSync(join(runDir, f));
      if (!st.isFile()) continue;
      expect({ f, uid: st.uid, gid: st.gid, mode: (st.mode & 0o777).toString(8) }).toEqual({ f, uid: Number(APP), gid: Number(SIDECAR), mode: '640' });
    }

    // Anyone else in the pod cannot read them (source lines, command lines).
    const dump = files.find((f) => f.endsWith('.dump'))!;
    const other = as(OTHER, ['cat', join(runDir, dump)]);
    expect(other.status).not.toBe(0);
    expect(other.stderr).toMatch(/Permission denied/);

    // The sidecar: its uid and gid only, as the chart runs it.
    const out = join(root, 'reports');
    mkdirSync(out);
    chownSync(out, Number(SIDECAR), Number(SIDECAR));
    const watch = as(
      SIDECAR,
      [process.execPath, cliPath, 'watch', '--run-dir', runDir, '--output', out, '--once', '--metrics-port', 'off', '--warn-after', '0'],
      {
        ...process.env,
        HOME: root,
        HIGHWATER_TERMINATION_LOG: '/nonexistent',
      },
    );
    expect(watch.status, watch.stderr).toBe(0);
    const [reportDir] = readdirSync(out);
    expect(reportDir, watch.stderr).toBeDefined();
    const report = readReport(join(out, reportDir!));
    expect(report.trigger).toBe('exit');
    expect(bytesAtLine(report, 'job.py', 2)).toBeGreaterThanOrEqual(32 * MiB);
    // Rendered files of the sidecar are removed by it as the run dir's owner (sticky bit).
    expect(readdirSync(runDir).filter((f) => f.endsWith('.dump'))).toEqual([]);
  });
});
