/**
 * File access for data another party can write (docs/security.md): the run
 * dir belongs to the application, and in a pod the application is another
 * user than the watcher. Inputs are opened without following a symlink
 * (O_NOFOLLOW), without blocking on a FIFO or a device (O_NONBLOCK), checked
 * to be regular files after the open (fstat on the descriptor, so nothing can
 * be swapped in between), and read with a size cap. Outputs are created
 * exclusively (O_EXCL), so a name planted in advance is never written through.
 */
import { constants } from 'node:fs';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { HighwaterError } from '../errors.js';
import { writeContent, type FileContent } from './chunks.js';

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK, O_CLOEXEC, O_DIRECTORY } = constants as typeof constants & {
  O_CLOEXEC?: number;
};
const CLOEXEC = O_CLOEXEC ?? 0;
export const READ_FLAGS = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | CLOEXEC;
export const CREATE_FLAGS = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | CLOEXEC;

/** What a non-regular file is, for messages. */
export function fileKind(st: {
  isFile(): boolean;
  isDirectory(): boolean;
  isFIFO(): boolean;
  isSocket(): boolean;
  isCharacterDevice(): boolean;
  isBlockDevice(): boolean;
  isSymbolicLink(): boolean;
}): string {
  if (st.isFile()) return 'a regular file';
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  if (st.isSymbolicLink()) return 'a symbolic link';
  return 'not a regular file';
}

function unreadable(path: string, why: string, cause?: unknown): HighwaterError {
  return new HighwaterError('HW_ERR_INPUT_UNREADABLE', `cannot read ${path}: ${why}`, cause === undefined ? undefined : { cause });
}

/**
 * Open `path` for reading if, and only if, it is a regular file reached
 * without a symlink in its last component. Raises HW_ERR_INPUT_UNREADABLE
 * naming the reason (ENOENT, EACCES, a symbolic link, a FIFO, ...).
 */
export async function openRegular(path: string): Promise<{ fh: FileHandle; size: number }> {
  let fh: FileHandle;
  try {
    fh = await open(path, READ_FLAGS);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // ELOOP is what O_NOFOLLOW gives for a symlink.
    throw unreadable(path, code === 'ELOOP' ? 'a symbolic link (never followed)' : (code ?? String(e)), e);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw unreadable(path, `${fileKind(st)}, not a regular file`);
    return { fh, size: st.size };
  } catch (e) {
    await fh.close().catch(() => {});
    throw e instanceof HighwaterError ? e : unreadable(path, (e as NodeJS.ErrnoException).code ?? String(e), e);
  }
}

/** Reads `length` bytes at `position` (fewer only at end of file). */
export async function readAt(fh: FileHandle, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done === length ? buf : buf.subarray(0, done);
}

/**
 * The whole content of a regular file, at most `maxBytes` (HW_ERR_INPUT_TOO_LARGE
 * beyond). The cap is checked against the size fstat gives and again while
 * reading, since a file can grow under us.
 */
export async function readRegularFile(path: string, maxBytes: number): Promise<Buffer> {
  const { fh, size } = await openRegular(path);
  try {
    if (size > maxBytes) throw tooLarge(path, size, maxBytes);
    const buf = await readAt(fh, 0, Math.min(maxBytes + 1, size + 1));
    if (buf.length > maxBytes) throw tooLarge(path, buf.length, maxBytes);
    return buf;
  } finally {
    await fh.close().catch(() => {});
  }
}

export function tooLarge(path: string, size: number, maxBytes: number): HighwaterError {
  return new HighwaterError('HW_ERR_INPUT_TOO_LARGE', `${path} is ${size} bytes, more than the ${maxBytes} highwater reads`);
}

/** Creates `path` exclusively (never through an existing name or link) with `mode`, and writes `content`. */
export async function writeExclusive(path: string, content: FileContent, mode: number): Promise<void> {
  const fh = await open(path, CREATE_FLAGS, mode);
  try {
    await fh.chmod(mode); // the umask must not change it; fchmod: our own descriptor, never a link
    await writeContent(fh, content);
  } finally {
    await fh.close();
  }
}

/**
 * Writes `path` so that whatever was planted there (a symlink to a victim, a
 * file of someone else) is replaced, never written through: the content goes
 * into a new exclusive temporary file beside it, then rename(2) swaps the
 * name (rename replaces a symlink itself, not its target).
 */
export async function replaceFile(path: string, content: FileContent, mode: number): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`);
  await writeExclusive(tmp, content, mode);
  try {
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
}

/** Opens a directory without following a symlink (for fchmod and the like). */
export function openDirectory(path: string): Promise<FileHandle> {
  return open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | CLOEXEC);
}

const COPY_CHUNK = 64 * 1024; // the grain of the holes kept in a sparse copy

/**
 * Copies a regular file (never a link, never a special file) to a new name in
 * `destDir`, at most `maxBytes`. Chunks that are all zeros are not written,
 * so a sparse state file stays sparse (its holes read back as zeros). The
 * name is `basename(src)`, or `<name>.1`, `.2` ... when taken: never an
 * existing file or link. Returns the path written.
 */
export async function copyOut(src: string, destDir: string, maxBytes: number, mode = 0o600): Promise<string> {
  const { fh, size } = await openRegular(src);
  try {
    if (size > maxBytes) throw tooLarge(src, size, maxBytes);
    let out: FileHandle | undefined;
    let dest = '';
    for (let n = 0; !out; n++) {
      dest = join(destDir, n === 0 ? basename(src) : `${basename(src)}.${n}`);
      try {
        out = await open(dest, CREATE_FLAGS, mode);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || n >= 100) throw e;
      }
    }
    try {
      const buf = Buffer.alloc(COPY_CHUNK);
      const zeros = Buffer.alloc(COPY_CHUNK);
      let pos = 0;
      while (pos < size) {
        const { bytesRead } = await fh.read(buf, 0, Math.min(COPY_CHUNK, size - pos), pos);
        if (bytesRead === 0) break;
        const chunk = buf.subarray(0, bytesRead);
        if (!chunk.equals(zeros.subarray(0, bytesRead))) await out.write(chunk, 0, bytesRead, pos);
        pos += bytesRead;
      }
      await out.truncate(pos); // the trailing hole, if any
      await out.chmod(mode);
    } finally {
      await out.close();
    }
    return dest;
  } finally {
    await fh.close().catch(() => {});
  }
}
