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
  | 'HW_ERR_INPUT_UNREADABLE' // an input file missing, unreadable, a symlink, a directory or a special file
  | 'HW_ERR_INPUT_TOO_LARGE' // an input file over the size highwater reads
  | 'HW_ERR_RUN_DIR_BUSY' // the run dir is claimed by another live run
  | 'HW_ERR_K8S_NO_CONFIG' // no KUBECONFIG, no service account token, no ~/.kube/config
  | 'HW_ERR_K8S_FORBIDDEN' // the API server said 401/403 (token or RBAC)
  | 'HW_ERR_K8S_REJECTED' // the API server refused the request (another 4xx)
  | 'HW_ERR_K8S_UNREACHABLE' // network error, 5xx or timeout talking to the API server
  | 'HW_ERR_UPLOAD' // a report file could not be uploaded with --upload-url
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
