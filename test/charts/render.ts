// Rendering the chart and the examples with the real helm, parsing the output,
// and validating each object against the Kubernetes schemas (kubernetes-models).
// No API server can run here: what `helm template` renders is what is checked.
import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { CronJob } from 'kubernetes-models/batch/v1/CronJob';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { Role } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role';
import { RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding';
import { PersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { parseAllDocuments } from 'yaml';
import { chartDir, examplesDir, helm, KUBE_VERSION } from './helm.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
export type K8sObject = { apiVersion: string; kind: string; metadata: { name: string; [k: string]: any }; [k: string]: any };

export const RELEASE = 'example';

/** Scenario directories under examples/kubernetes (each has values.yaml). */
export const SCENARIOS = ['job-pvc', 'cronjob-upload', 'deployment', 'own-chart'] as const;
export type Scenario = (typeof SCENARIOS)[number];

export interface Rendered {
  code: number;
  stdout: string;
  stderr: string;
  objects: K8sObject[];
}

export function parseManifests(text: string): K8sObject[] {
  return parseAllDocuments(text)
    .map((d) => {
      if (d.errors.length) throw new Error(`helm output is not YAML: ${d.errors[0]!.message}`);
      return d.toJS() as K8sObject | null;
    })
    .filter((o): o is K8sObject => o !== null);
}

/** `helm template` of this chart with extra flags (values files, --set, --api-versions). */
export async function template(args: string[], chart = chartDir): Promise<Rendered> {
  const r = await helm(['template', RELEASE, chart, '--namespace', 'default', '--kube-version', KUBE_VERSION, ...args]);
  return { ...r, objects: r.code === 0 ? parseManifests(r.stdout) : [] };
}

/**
 * The own-chart example is a chart of its own with highwater as a dependency:
 * it is copied with the chart under charts/ (what `helm dependency update`
 * does) into a temporary directory and rendered there.
 */
export async function templateScenario(s: Scenario, extra: string[] = []): Promise<Rendered> {
  if (s !== 'own-chart') return template(['-f', join(examplesDir, s, 'values.yaml'), ...extra]);
  const dir = mkdtempSync(join(tmpdir(), 'hw-own-chart-'));
  try {
    cpSync(join(examplesDir, s), dir, { recursive: true });
    cpSync(chartDir, join(dir, 'charts/highwater'), { recursive: true });
    return await template(extra, dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function goldenPath(s: Scenario): string {
  return join(examplesDir, s, 'rendered.yaml');
}

export const hasGolden = (s: Scenario): boolean => existsSync(goldenPath(s));

const models: Record<string, new (o: any) => { validate(): void }> = {
  'batch/v1/Job': Job,
  'batch/v1/CronJob': CronJob,
  'apps/v1/Deployment': Deployment,
  'v1/ServiceAccount': ServiceAccount,
  'v1/PersistentVolumeClaim': PersistentVolumeClaim,
  'rbac.authorization.k8s.io/v1/Role': Role,
  'rbac.authorization.k8s.io/v1/RoleBinding': RoleBinding,
};

/**
 * Validates one object: kubernetes-models for the built-in kinds, a hand check
 * for the PodMonitor (a CRD it does not know). Throws with the object's name.
 */
export function validateObject(o: K8sObject): void {
  const key = `${o.apiVersion}/${o.kind}`;
  if (key === 'monitoring.coreos.com/v1/PodMonitor') return checkPodMonitor(o);
  const Model = models[key];
  if (!Model) throw new Error(`no schema for ${key} (${o.metadata?.name})`);
  try {
    new Model(o).validate();
  } catch (e) {
    throw new Error(`${key} ${o.metadata?.name}: ${(e as Error).message}`, { cause: e });
  }
  const spec = podSpecOf(o);
  if (spec) checkPodSpec(spec, o);
}

function checkPodMonitor(o: K8sObject): void {
  const eps = o.spec?.podMetricsEndpoints;
  if (!o.spec?.selector?.matchLabels || !Array.isArray(eps) || !eps.length || !eps.every((e: any) => typeof e.port === 'string'))
    throw new Error(`PodMonitor ${o.metadata.name}: needs spec.selector.matchLabels and podMetricsEndpoints[].port`);
}

/** The pod spec of a Job, CronJob or Deployment. */
export function podSpecOf(o: K8sObject): any {
  if (o.kind === 'CronJob') return o.spec.jobTemplate.spec.template.spec;
  if (o.kind === 'Job' || o.kind === 'Deployment') return o.spec.template.spec;
  return undefined;
}

export function jobSpecOf(o: K8sObject): any {
  if (o.kind === 'CronJob') return o.spec.jobTemplate.spec;
  if (o.kind === 'Job') return o.spec;
  return undefined;
}

/**
 * Facts of the Kubernetes API that the schema alone does not check (from the
 * API's validation code, k8s.io/kubernetes pkg/apis/{core,batch}/validation): container names
 * unique across containers and init containers, every mount names a volume,
 * podFailurePolicy needs restartPolicy Never, its containerName names a
 * container, its exit-code values sorted, unique, 1-255 of them.
 */
function checkPodSpec(spec: any, o: K8sObject): void {
  const where = `${o.kind} ${o.metadata.name}`;
  const all = [...(spec.initContainers ?? []), ...spec.containers];
  const names = all.map((c: any) => c.name);
  if (new Set(names).size !== names.length) throw new Error(`${where}: duplicate container names ${names.join(',')}`);
  const volumes = new Set((spec.volumes ?? []).map((v: any) => v.name));
  for (const c of all) for (const m of c.volumeMounts ?? []) if (!volumes.has(m.name)) throw new Error(`${where}: ${c.name} mounts unknown volume ${m.name}`);
  const job = jobSpecOf(o);
  for (const rule of job?.podFailurePolicy?.rules ?? []) {
    if (spec.restartPolicy !== 'Never') throw new Error(`${where}: podFailurePolicy needs restartPolicy Never`);
    const ec = rule.onExitCodes;
    if (!ec) continue;
    if (ec.containerName && !names.includes(ec.containerName)) throw new Error(`${where}: podFailurePolicy names no container ${ec.containerName}`);
    const v: number[] = ec.values;
    const sorted = [...new Set(v)].sort((a, b) => a - b);
    if (v.length < 1 || v.length > 255 || sorted.join() !== v.join()) throw new Error(`${where}: podFailurePolicy values must be sorted, unique, 1-255`);
  }
}

export function find(objects: K8sObject[], kind: string): K8sObject | undefined {
  return objects.find((o) => o.kind === kind);
}

export function containerOf(spec: any, name: string): any {
  return [...(spec.initContainers ?? []), ...spec.containers].find((c: any) => c.name === name);
}

export function envOf(container: any): Record<string, any> {
  return Object.fromEntries((container.env ?? []).map((e: any) => [e.name, e.value ?? e.valueFrom]));
}
