"""Profile part of a program.

    from highwater.api import profile
    result = profile(lambda: run_processing(config), "/tmp/hw-result")

Run the program with `highwater python yourscript.py`: the shim is loaded
with tracking off, and only what runs inside profile() is tracked. The report
goes straight into the given directory (no timestamped sub-directory, no
browser). The function's result is returned; its exception propagates, after
the report of what happened has been written.
"""
import os
import tempfile
import threading

from highwater import _render, _shim, _threadpools

__all__ = ["profile", "HighwaterUsageError"]

_HOWTO = (
    "highwater.api.profile() needs the highwater shim: run your program with "
    "`highwater python yourscript.py` (or `python -m highwater python yourscript.py`)"
)

_lock = threading.Lock()
_owner_pid = os.getpid()


class HighwaterUsageError(RuntimeError):
    """profile() was called where it cannot work."""


def _check_usable():
    lib = _shim.shim()
    if lib is None:
        raise HighwaterUsageError(_HOWTO)
    if os.getpid() != _owner_pid or not lib.hw_is_active():
        raise HighwaterUsageError(
            "highwater.api.profile() cannot profile a forked child or a process "
            "the shim is not active in; " + _HOWTO
        )
    if os.environ.get("HIGHWATER_MODE") != "python":
        raise HighwaterUsageError(
            "highwater.api.profile() is for programs run with `highwater python`; "
            "under `highwater run` the whole program is already profiled"
        )
    return lib


def profile(code_to_profile, output_dir):
    """Runs code_to_profile() with memory tracking on; writes the report to output_dir."""
    lib = _check_usable()
    if not _lock.acquire(blocking=False):
        raise HighwaterUsageError(
            "highwater.api.profile() is already running (nested or concurrent calls "
            "are not supported: tracking is process-wide)"
        )
    try:
        output_dir = os.path.abspath(output_dir)
        os.makedirs(output_dir, exist_ok=True)
        with _threadpools.single_threaded():
            rc = lib.hw_tracking_start()
            if rc != 0:
                raise HighwaterUsageError("highwater: could not start tracking (error %d)" % rc)
            try:
                return code_to_profile()
            finally:
                # Dump before stopping: the peak must include the last frame.
                fd, dump_path = tempfile.mkstemp(prefix="hw-api-", suffix=".dump",
                                                 dir=os.environ.get("HIGHWATER_RUN_DIR"))
                os.close(fd)
                try:
                    _shim.dump(dump_path, "api")
                finally:
                    lib.hw_tracking_stop()
                try:
                    _render.render(dump_path, output_dir, timestamped=False)
                finally:
                    try:
                        os.unlink(dump_path)
                    except OSError:
                        pass
    finally:
        _lock.release()
