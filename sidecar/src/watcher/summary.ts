/**
 * One-line summaries of a report (pure): the line a person should look at
 * first, for the watcher's log, the termination log and `collect docker`.
 */
import type { Frame, ReportJson } from '../report/model.js';

/** Frames of installed packages, the standard library and frozen modules. */
const LIBRARY = /(?:^|\/)(?:site-packages|dist-packages)\/|\/lib\/python\d+(?:\.\d+)?\/|^<frozen /;

/**
 * The innermost frame of `frames` that is the program's own code (not a
 * library's: `np.ones` is Python code in numpy); the innermost frame when all
 * are library frames.
 */
export function userFrame(frames: readonly Frame[]): Frame | undefined {
  for (let i = frames.length - 1; i >= 0; i--) if (!LIBRARY.test(frames[i]!.file)) return frames[i];
  return frames[frames.length - 1];
}

/** `file:line code` of the largest stack's own-code frame; '' when the report has no frame. */
export function topLine(report: Partial<Pick<ReportJson, 'stacks'>>): string {
  const f = userFrame(report.stacks?.[0]?.frames ?? []);
  if (!f) return '';
  const file = f.file.split('/').pop() ?? f.file;
  return `${file}:${f.line} ${f.code || f.function}`.trim();
}
