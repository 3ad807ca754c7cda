// Per test file scratch space. Every test file gets its own directory under
// the system temp dir, exported as TMPDIR so that `os.tmpdir()`, `mkdtemp`
// and every Python or shell process a test starts write there, and the whole
// directory is removed when the file's tests end. Without this a full run
// left about 5 GB of report and run dirs behind, and CI runs on the same disk
// one after another ran it out of space (the Docker build then failed with
// ENOSPC). HIGHWATER_KEEP_TEST_TMP=1 keeps the directories for debugging.
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll } from 'vitest';

// A short prefix: unix socket paths inside run dirs must stay under 108 bytes.
const base = process.env.HIGHWATER_TEST_TMP_BASE ?? '/tmp';
const scratch = mkdtempSync(join(base, 'hwt-'));
// The same mode as /tmp: tests run watchers and programs as other users
// (nobody), which must reach the directories the test made for them.
chmodSync(scratch, 0o1777);
const previous = process.env.TMPDIR;
process.env.TMPDIR = scratch;

afterAll(() => {
  if (previous === undefined) delete process.env.TMPDIR;
  else process.env.TMPDIR = previous;
  if (process.env.HIGHWATER_KEEP_TEST_TMP === '1') return;
  try {
    rmSync(scratch, { recursive: true, force: true, maxRetries: 3 });
  } catch (e) {
    // A mount a failed test left inside (tmpfs, ramfs) cannot be removed;
    // say so rather than fail a file whose tests passed.
    console.warn(`scratch ${scratch} not fully removed: ${(e as Error).message}`);
  }
});
