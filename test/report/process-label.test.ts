/** Short process names of container-wide reports (report/process-label.ts), from real argv shapes of CPython 3.11. */
import { expect, test } from 'vitest';
import { processLabel, processRole, shortArgv } from '../../sidecar/src/report/process-label.js';
import { processFrame } from '../../sidecar/src/report/container.js';
import { processShort } from '../../sidecar/src/report/toplines.js';

const PROGRAM = ['/usr/bin/python3', '/srv/app/train.py', '--epochs', '3'];
const SPAWN = ['/usr/bin/python3', '-c', 'from multiprocessing.spawn import spawn_main; spawn_main(tracker_fd=5, pipe_handle=7)', '--multiprocessing-fork'];
const FORKSERVER = ['/usr/bin/python3', '-c', "from multiprocessing.forkserver import main; main(7, 8, ['__main__'], **{'sys_path': ['/srv/app']})"];
const TRACKER = ['/usr/bin/python3', '-c', 'from multiprocessing.resource_tracker import main;main(6)'];

test('roles from argv and the parent argv', () => {
  expect(processRole(PROGRAM)).toEqual({ kind: 'program' });
  expect(processRole(SPAWN, PROGRAM)).toEqual({ kind: 'worker', how: 'multiprocessing spawn' });
  expect(processRole(FORKSERVER, PROGRAM)).toEqual({ kind: 'forkserver' });
  expect(processRole(FORKSERVER, FORKSERVER)).toEqual({ kind: 'worker', how: 'multiprocessing forkserver' });
  expect(processRole(TRACKER, PROGRAM)).toEqual({ kind: 'resource-tracker' });
  expect(processRole(PROGRAM, PROGRAM)).toEqual({ kind: 'worker', how: 'fork' });
  // A python child started with its own script is a program of its own.
  expect(processRole(['/usr/bin/python3', 'child.py'], PROGRAM)).toEqual({ kind: 'program' });
});

test('labels and their short form in the terminal', () => {
  expect(processLabel(PROGRAM, processRole(PROGRAM))).toBe('python3 train.py --epochs 3');
  expect(processLabel(SPAWN, processRole(SPAWN), 3)).toBe('worker 3 (multiprocessing spawn)');
  expect(processLabel(PROGRAM, { kind: 'worker', how: 'fork' }, 2)).toBe('worker 2 (fork)');
  expect(processShort(processFrame(41, 'worker 3 (multiprocessing spawn)'))).toBe('pid 41 (worker 3)');
  expect(processShort(processFrame(12, 'python3 train.py (x)'))).toBe('pid 12 (python3 train.py (x))');
  expect(shortArgv(['python3', '-c', 'x'.repeat(100)])).toHaveLength(48);
  expect(shortArgv(['python3', 'a\u001b[31mb'])).toBe('python3 a [31mb');
});
