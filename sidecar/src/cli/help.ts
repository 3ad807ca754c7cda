/** Help and version text. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const MAIN_HELP = `highwater: find out why a Python process ran out of memory

Usage:
  highwater run [options] script.py [args...]     profile a script (peak memory report)
  highwater run [options] -m module [args...]     profile a module, like python -m
  highwater run [options] -- command [args...]    profile any command that runs Python
  highwater python [options] script.py [args...]  shim loaded, tracking off: use highwater.api.profile()
  highwater render DUMP -o DIR [--no-timestamp] [--children DIR]   render a raw dump into a report directory
  highwater kernel install [--user|--prefix DIR] [--python EXE]
                                                  install the Jupyter kernel "Python 3 with highwater"
  highwater watch --run-dir DIR --output DIR [options]
                                                  watch every tracked process in a shared run dir
                                                  (Docker single-container and sidecar modes)
  highwater collect docker [--follow] [--output DIR]
                                                  copy reports out of containers labelled
                                                  io.highwater.enabled=true and print a table
  highwater collect kubernetes [-n NS | -A] [--since DURATION] [--follow]
                                                  the HighwaterOOM Events of pods as a table
  highwater diff OLD NEW [-o FILE] [--fail-if-peak-grows PCT] [--top N]
                                                  compare two reports (directories or report.json):
                                                  peak change, lines that changed most, and a
                                                  differential flamegraph page (default highwater-diff.html);
                                                  exit 1 when the peak grew by more than PCT %
  highwater --help | --version

Options of run and python (before the program; what follows belongs to it):
  -o, --output DIR           report directory (default: highwater-result; env HIGHWATER_OUTPUT_DIR);
                             each report goes to a timestamped sub-directory
  --no-browser               do not open the report (default: open it when DISPLAY or
                             WAYLAND_DISPLAY is set; env HIGHWATER_OPEN_BROWSER=0)
  --disable-oom-detection    turn off the low-available-memory and swap rules
                             (env HIGHWATER_OOM_DETECTION=0); a failed allocation still stops the program
  --min-available SIZE       floor of available memory under which the program is stopped with
                             exit 53 (default: 100MiB,2% = the larger of both; env HIGHWATER_MIN_AVAILABLE);
                             SIZE is bytes (123), KiB/MiB/GiB (512k, 100MiB, 1.5GiB) or a percentage (5%),
                             or a size and a percentage separated by a comma
  --run-dir DIR              use this existing run dir instead of a private temporary one
  --sample-rate SIZE         sample stacks by bytes: about one stack per SIZE allocated
                             (e.g. 256KiB; default 0 = every allocation; env HIGHWATER_SAMPLE_RATE);
                             totals, the peak and the OOM guard stay exact
  --limit-threads            start BLAS/OpenMP/numexpr/BLOSC pools with one thread (run only;
  --no-limit-threads         default: not limited; env HIGHWATER_LIMIT_THREADS=1)
  --no-children              track only the first Python process, not its children (env HIGHWATER_CHILDREN=0)
  -h, --help                 this help

Options of render:
  -o, --output DIR           where to write the report (required)
  --no-timestamp             write into DIR itself, not into a timestamped sub-directory
  --children DIR             the child-<pid>.dump files in DIR (highwater.api.profile()'s
                             children) join the report, one part per process
  --child-states DIR --since MS
                             with --children: the call's children that ended without a dump
                             (fork workers, terminated ones) join from their state files in DIR

Options of kernel install (docs/jupyter.md):
  --user                     into the user's Jupyter data dir (the default; JUPYTER_DATA_DIR,
                             else $XDG_DATA_HOME/jupyter or ~/.local/share/jupyter)
  --prefix DIR               into DIR/share/jupyter/kernels/highwater (put DIR/share/jupyter on JUPYTER_PATH)
  --python EXE               the interpreter with ipykernel (default: HIGHWATER_PYTHON, else python3 on PATH)

Options of watch (docs/docker.md):
  --run-dir DIR              the run dir shared with the application (env HIGHWATER_RUN_DIR)
  -o, --output DIR           report directory (env HIGHWATER_OUTPUT_DIR)
  --metrics-port N|off       serve /metrics, /healthz, /readyz on port N (0 = any free port;
                             env HIGHWATER_METRICS_PORT; default 19753; off = no server)
  --disable-oom-detection, --min-available SIZE   as for run
  --warn-after SECONDS       say so when no tracked process appeared by then (default 5; 0 = never;
                             env HIGHWATER_WARN_AFTER)
  --once                     render what is there (dumps, post-mortems of ended processes) and exit
  --events                   post a HighwaterOOM Event on the pod for each OOM or killed report (env HIGHWATER_EVENTS=1;
                             pod from HIGHWATER_POD_NAME/_NAMESPACE/_UID, docs/configuration.md)
  --upload-url TEMPLATE      PUT every report file to TEMPLATE with {pod} {namespace} {node} {uid} {time}
                             {report} {file} (env HIGHWATER_UPLOAD_URL)
  --upload-timeout SECONDS   time for the upload of one report, retries included (default 20;
                             env HIGHWATER_UPLOAD_TIMEOUT)

Options of collect docker:
  -o, --output DIR           where copied reports go (default highwater-reports)
  -f, --follow               keep following the engine's events (die, oom) until interrupted

Options of collect kubernetes (the HighwaterOOM Events; KUBECONFIG, ~/.kube/config or in-cluster):
  -n, --namespace NS         this namespace (default: the current context's)
  -A, --all-namespaces       every namespace
  --since DURATION           only Events newer than 90s, 30m, 2h, 1d
  -f, --follow               then print new ones as they come, until interrupted

Environment: HIGHWATER_PYTHON (python executable, default python3), HIGHWATER_POLL_INTERVAL_MS
(default 100), HIGHWATER_LOG_LEVEL (default warn), HIGHWATER_LOG_FORMAT (text|json),
HIGHWATER_HOME (where native/build/libhighwater.so and native/python are). See docs/configuration.md.

Exit status: the program's own (128+N if killed by signal N); 53 when it ran out of memory;
2 for a usage or configuration error of highwater itself. See docs/errors.md.
`;

/** The version of the package this CLI belongs to. */
export function version(home: string): string {
  try {
    return (JSON.parse(readFileSync(join(home, 'package.json'), 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}
