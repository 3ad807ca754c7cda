/**
 * Every error highwater raises on purpose carries a stable `code` (documented
 * in docs/errors.md). Only the CLI maps codes to exit statuses.
 */
export type HighwaterErrorCode =
  | 'HW_ERR_USAGE' // bad flags or arguments
  | 'HW_ERR_CONFIG' // invalid configuration value (flag or env)
  | 'HW_ERR_OUTPUT_UNWRITABLE' // report directory cannot be created or written
  | 'HW_ERR_DUMP_TRUNCATED' // raw dump without its end line
  | 'HW_ERR_DUMP_INVALID' // raw dump that is not the documented format
  | 'HW_ERR_STATE_INVALID' // state file too short, wrong magic or version
  | 'HW_ERR_READING' // a memory reading could not be taken
  | 'HW_ERR_CONTROL' // the control channel refused or failed
  | 'HW_ERR_DOCKER' // the Docker engine refused or failed
  | 'HW_ERR_INTERNAL'
  | 'HW_ERR_REPORT_INVALID'; // highwater diff: an input that is not a readable report.json

export class HighwaterError extends Error {
  override name = 'HighwaterError';
  constructor(
    readonly code: HighwaterErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function isHighwaterError(e: unknown, code?: HighwaterErrorCode): e is HighwaterError {
  return e instanceof HighwaterError && (code === undefined || e.code === code);
}
