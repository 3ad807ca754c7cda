/** Exit statuses of highwater itself (docs/errors.md). */
import type { HighwaterErrorCode } from '../errors.js';

/** Usage and configuration errors (the program never started) exit 2; anything else 1. */
export function exitStatusForError(code: HighwaterErrorCode): number {
  switch (code) {
    case 'HW_ERR_USAGE':
    case 'HW_ERR_CONFIG':
    case 'HW_ERR_OUTPUT_UNWRITABLE':
    case 'HW_ERR_INPUT_UNREADABLE': // `render` of a missing, unreadable or special DUMP
    case 'HW_ERR_RUN_DIR_BUSY': // the program was not started
    case 'HW_ERR_REPORT_INVALID':
      return 2;
    default:
      return 1;
  }
}
