/**
 * Which frames a person wants to see (pure): the program's own code versus
 * libraries, and the interpreter's import machinery, which memray's
 * flamegraph also hides by default.
 */
import type { Frame, Stack } from './model.js';

/** Frames of installed packages, the standard library and frozen modules. */
const LIBRARY = /(?:^|\/)(?:site-packages|dist-packages)\/|\/lib\/python\d+(?:\.\d+)?\/|^<frozen /;

/**
 * The interpreter running an `import`: `<frozen importlib._bootstrap>`,
 * `<frozen importlib._bootstrap_external>`, `<frozen zipimport>` (frozen
 * since 3.x), and the same modules when they run from their .py files.
 */
const IMPORT_MACHINERY = /^<frozen (?:importlib\.|zipimport)|\/importlib\/_bootstrap(?:_external)?\.py$|\/zipimport\.py$/;

// Parsers share one Frame object per distinct frame, so answers are cached
// per object: 100 000 stacks × 15 frames must not mean 1.5 M regex runs.
const importCache = new WeakMap<Frame, boolean>();
const libraryCache = new WeakMap<Frame, boolean>();

function cached(cache: WeakMap<Frame, boolean>, re: RegExp, f: Frame): boolean {
  let v = cache.get(f);
  if (v === undefined) cache.set(f, (v = re.test(f.file)));
  return v;
}

export function isImportMachinery(f: Frame): boolean {
  return cached(importCache, IMPORT_MACHINERY, f);
}

export function hasImportMachinery(stacks: readonly Stack[]): boolean {
  return stacks.some((s) => s.frames.some(isImportMachinery));
}

/**
 * Stacks without import machinery frames. The memory stays: what an import
 * allocated now hangs from the user's `import` line straight into the
 * imported module's own frames. Stacks that become equal are not merged here
 * (callers merge).
 */
export function foldImportMachinery(stacks: readonly Stack[]): Stack[] {
  return stacks.map((s) => (s.frames.some(isImportMachinery) ? { bytes: s.bytes, frames: s.frames.filter((f) => !isImportMachinery(f)) } : s));
}

export function isLibrary(f: Frame): boolean {
  return cached(libraryCache, LIBRARY, f);
}

/**
 * Index of the innermost frame that is the program's own code (`np.ones` is
 * Python code in numpy, not the user's); the innermost frame when all are
 * library frames; -1 for an empty stack.
 */
export function ownFrameIndex(frames: readonly Frame[]): number {
  for (let i = frames.length - 1; i >= 0; i--) if (!isLibrary(frames[i]!)) return i;
  return frames.length - 1;
}
