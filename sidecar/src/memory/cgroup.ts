/**
 * Locate the memory cgroup directory of a process from /proc/<pid>/cgroup and
 * /proc/<pid>/mountinfo. cgroup v2 is used only when the memory controller is
 * enabled there (`cgroup.controllers` lists `memory`); otherwise the v1
 * `memory` hierarchy. All roots are injectable so tests run on fixture trees.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { HighwaterError } from '../errors.js';
import { findCgroupMounts, parseMountinfo, parseProcCgroup, v1MemoryEntry, v2Entry, type Mount } from './parse.js';

export interface FsRoots {
  /** Where procfs is mounted. @default '/' + 'proc' */
  procRoot?: string;
  /**
   * Prefix put in front of every mount point found in mountinfo (a fixture
   * tree, or the host's root seen from a container). @default ''
   */
  rootPrefix?: string;
  /** Use this directory as the cgroup v1 memory mount point instead of the one in mountinfo. */
  cgroupV1MemoryMount?: string;
  /** Use this directory as the cgroup2 mount point instead of the one in mountinfo. */
  cgroupV2Mount?: string;
}

export interface CgroupLocation {
  version: 1 | 2;
  /** The directory holding the process's memory.* files. */
  dir: string;
}

/** Read a small text file; a failure becomes `HW_ERR_READING` naming the path. */
export function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    throw new HighwaterError('HW_ERR_READING', `cannot read ${path}: ${code}`, { cause: e });
  }
}

/**
 * Map a cgroup path as the process sees it onto a directory under the mount.
 * The mount's root is the cgroup path that was mounted (not '/' inside many
 * containers). A path outside that root (a container whose /proc/<pid>/cgroup
 * says '/' while its mount is the container's own cgroup) maps to the mount
 * point itself, as does a computed directory that does not exist.
 */
export function cgroupDir(mount: Mount, mountPoint: string, cgPath: string, probeFile: string): string {
  const root = mount.root === '/' ? '' : mount.root.replace(/\/+$/, '');
  let rel: string | undefined;
  if (root === '') rel = cgPath;
  else if (cgPath === root || cgPath.startsWith(root + '/')) rel = cgPath.slice(root.length);
  if (rel !== undefined && rel !== '' && rel !== '/') {
    const dir = join(mountPoint, rel);
    if (existsSync(join(dir, probeFile))) return dir;
  }
  return mountPoint;
}

/**
 * Find the memory cgroup of `pid`. Returns null when the process is in no
 * memory cgroup at all (no controller mounted or enabled). Raises
 * `HW_ERR_READING` when /proc files are missing or malformed.
 */
export function locateMemoryCgroup(pid: number | 'self', roots: FsRoots = {}): CgroupLocation | null {
  const procRoot = roots.procRoot ?? '/proc';
  const prefix = roots.rootPrefix ?? '';
  const entries = parseProcCgroup(readText(join(procRoot, String(pid), 'cgroup')));
  const mounts = findCgroupMounts(parseMountinfo(readText(join(procRoot, String(pid), 'mountinfo'))));

  const v2 = v2Entry(entries);
  if (v2 && mounts.v2) {
    const mp = roots.cgroupV2Mount ?? prefix + mounts.v2.mountPoint;
    const dir = cgroupDir(mounts.v2, mp, v2.path, 'cgroup.controllers');
    let controllers = '';
    try {
      controllers = readFileSync(join(dir, 'cgroup.controllers'), 'utf8');
    } catch {
      // no cgroup.controllers: treat the memory controller as not enabled here
    }
    if (controllers.split(/\s+/).includes('memory')) return { version: 2, dir };
  }
  const v1 = v1MemoryEntry(entries);
  if (v1 && mounts.v1Memory) {
    const mp = roots.cgroupV1MemoryMount ?? prefix + mounts.v1Memory.mountPoint;
    return { version: 1, dir: cgroupDir(mounts.v1Memory, mp, v1.path, 'memory.usage_in_bytes') };
  }
  return null;
}
