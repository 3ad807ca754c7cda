/**
 * Where the bundle is: the repository or /opt/highwater (the Dockerfile's layout). The compiled CLI is
 * `<home>/dist/cli/*.js`, so home is two levels up; `HIGHWATER_HOME`
 * overrides it.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface BundlePaths {
  home: string;
  /** native/build/libhighwater.so */
  shim: string;
  /** native/python/bootstrap (sitecustomize) */
  bootstrap: string;
  /** native/python (the `highwater` package) */
  pythonPackage: string;
  /** bin/highwater.js, for the Python side to call `highwater render` */
  cli: string;
  /** native/build/highwater-init: its `--exec-from-fd` mode starts the program with argv and environment as bytes */
  init: string;
}

export function findHome(env: NodeJS.ProcessEnv = process.env, moduleUrl: string = import.meta.url): string {
  if (env.HIGHWATER_HOME) return resolve(env.HIGHWATER_HOME);
  const here = dirname(fileURLToPath(moduleUrl));
  // compiled: <home>/dist/cli; from source (tests): <home>/sidecar/src/cli
  for (const up of ['../..', '../../..']) {
    const cand = resolve(here, up);
    if (existsSync(join(cand, 'bin', 'highwater.js'))) return cand;
  }
  return resolve(here, '../..');
}

export function bundlePaths(home: string): BundlePaths {
  // The Dockerfile's bundle (/opt/highwater): lib/, python/, dist/ instead of
  // the repository's native/build, native/python and bin/.
  if (!existsSync(join(home, 'native')) && existsSync(join(home, 'lib', 'libhighwater.so'))) {
    return {
      home,
      shim: join(home, 'lib', 'libhighwater.so'),
      bootstrap: join(home, 'python', 'bootstrap'),
      pythonPackage: join(home, 'python'),
      cli: join(home, 'dist', 'cli', 'main.js'),
      init: join(home, 'bin', 'highwater-init'),
    };
  }
  return {
    home,
    shim: join(home, 'native', 'build', 'libhighwater.so'),
    bootstrap: join(home, 'native', 'python', 'bootstrap'),
    pythonPackage: join(home, 'native', 'python'),
    cli: join(home, 'bin', 'highwater.js'),
    init: join(home, 'native', 'build', 'highwater-init'),
  };
}
