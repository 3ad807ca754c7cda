"""Profile part of a program.

    from highwater.api import profile
    result = profile(lambda: run_processing(config), "/tmp/hw-result")

Run the program with `highwater python yourscript.py`: the shim is loaded
with tracking off, and only what runs inside profile() is tracked (threads
started inside it included, and the Python processes started inside it:
`subprocess` of python, multiprocessing fork, spawn and forkserver, os.fork;
each is one part of the report, at its own peak, once it has ended, also
through os._exit or a signal: docs/python-api.md). The report goes straight into the given
directory (no timestamped sub-directory, no browser). The function's result
is returned; its exception propagates, after the report of what happened has
been written. Importing this module works anywhere; calling profile() where
it cannot work raises HighwaterUsageError (a RuntimeError).
"""
import os
import shutil
import sys
import tempfile
import threading
import time

from highwater import _bootstrap, _render, _shim, _threadpools

__all__ = ["profile", "HighwaterUsageError"]

_HOWTO = (
    "run your program with `highwater python yourscript.py` "
    "(or `python -m highwater python yourscript.py`)"
)

_lock = threading.Lock()
_owner_pid = os.getpid()


class HighwaterUsageError(RuntimeError):
    """profile() was called where it cannot work."""


def _check_usable():
    lib = _shim.shim()
    if lib is None:
        raise HighwaterUsageError(
            "highwater.api.profile() needs the highwater shim, which is not loaded in "
            "this process: " + _HOWTO
        )
    if os.getpid() != _owner_pid or (os.environ.get("HIGHWATER_RUN_DIR") and not lib.hw_is_active()):
        # The shim stops tracking in a forked child (it must not write the
        # parent's state), and this module was imported by the parent.
        raise HighwaterUsageError(
            "highwater.api.profile() cannot run in a forked child process: only the "
            "process that `highwater python` started is tracked; call profile() in the parent"
        )
    if not lib.hw_is_active():
        raise HighwaterUsageError(
            "highwater.api.profile(): the highwater shim is loaded but not active here "
            "(HIGHWATER_RUN_DIR is not set): " + _HOWTO
        )
    if os.environ.get("HIGHWATER_MODE") != "python":
        raise HighwaterUsageError(
            "highwater.api.profile() is for programs run with `highwater python`; "
            "under `highwater run` the whole program is already profiled"
        )
    return lib


def _get_thread_profile():
    getter = getattr(threading, "getprofile", None)  # 3.10+
    return getter() if getter else getattr(threading, "_profile_hook", None)


def _dump_path():
    run_dir = os.environ.get("HIGHWATER_RUN_DIR") or None
    # Not hw-<pid>-<seq>.dump: the CLI renders those; this one we render ourselves.
    fd, path = tempfile.mkstemp(prefix="hw-api-", suffix=".dump", dir=run_dir)
    os.close(fd)
    return path


# Names the directory where the Python processes started inside a profile()
# call (subprocess, multiprocessing spawn/forkserver, exec) leave their dumps:
# set in os.environ for the call only, so children started before or after
# it are not tracked (_bootstrap.py).
_CHILDREN_ENV = "HIGHWATER_API_CHILDREN"


def _children_dir():
    run_dir = os.environ.get("HIGHWATER_RUN_DIR") or None
    try:
        return tempfile.mkdtemp(prefix="hw-api-children-", dir=run_dir)
    except OSError as e:
        # The call is still profiled, its children are not: say so, never fail the call for it.
        sys.stderr.write("highwater: profile(): children not tracked: %s\n" % (e,))
        return None


def _set_env(name, value):
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def _unlink(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def profile(code_to_profile, output_dir):
    """Runs code_to_profile() with memory tracking on and returns its result.

    The peak-memory report of the call (index.html, report.json, flamegraph
    SVGs, folded stacks) is written into output_dir itself; an exception of
    code_to_profile propagates after the report is written.
    """
    __tracebackhide__ = True  # IPython: keep this frame out of tracebacks
    lib = _check_usable()
    if not _lock.acquire(blocking=False):
        raise HighwaterUsageError(
            "highwater.api.profile() is already running: nested or concurrent calls are "
            "not supported (tracking is process-wide); profile the outer call only"
        )
    try:
        output_dir = os.path.abspath(output_dir)
        os.makedirs(output_dir, exist_ok=True)
        failed = True
        children = _children_dir()
        previous_children = os.environ.get(_CHILDREN_ENV)
        with _threadpools.single_threaded():
            old_hook = _get_thread_profile()
            # Threads started inside profile() get their own Python stacks.
            threading.setprofile(_bootstrap._thread_hook)
            try:
                # Children's state files begun from here on can be this call's (wall-clock ms, as the shim's).
                since_ms = int(time.time() * 1000)
                rc = lib.hw_tracking_start()
                if rc != 0:
                    raise HighwaterUsageError(
                        "highwater.api.profile(): could not start tracking (error %d); is this "
                        "Python supported (3.8 - 3.15)? See the shim's message on stderr" % rc
                    )
                try:
                    if children is not None:
                        os.environ[_CHILDREN_ENV] = children
                    result = code_to_profile()
                    failed = False
                    return result
                finally:
                    _set_env(_CHILDREN_ENV, previous_children)
                    # Dump before stopping, so the peak includes the last frame.
                    dump_path = _dump_path()
                    try:
                        _shim.dump(dump_path, "api")
                    except BaseException as e:
                        _unlink(dump_path)
                        dump_path = None
                        _report_failure(failed, "could not write the dump: %s" % (e,))
                    finally:
                        lib.hw_tracking_stop()
                    if dump_path is not None:
                        try:
                            _render.render(dump_path, output_dir, timestamped=False, children=children,
                                           child_states=_child_states(since_ms))
                        except Exception as e:
                            _report_failure(failed, str(e))
                        finally:
                            _unlink(dump_path)
            finally:
                threading.setprofile(old_hook)
                if children is not None:
                    shutil.rmtree(children, ignore_errors=True)
    finally:
        _lock.release()


def _child_states(since_ms):
    # Fork workers end through os._exit and terminated ones by a signal: no
    # dump, but their state files in the run dir hold their peaks.
    run_dir = os.environ.get("HIGHWATER_RUN_DIR")
    return (run_dir, since_ms) if run_dir else None


def _report_failure(code_failed, message):
    """A report that cannot be written must not hide the program's own exception."""
    if code_failed:
        sys.stderr.write("highwater: no report for this profile() call: %s\n" % (message,))
    else:
        raise RuntimeError("highwater: no report for this profile() call: %s" % (message,))
