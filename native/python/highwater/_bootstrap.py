"""Start-up: switch tracking on in the shim and hook new threads."""
import atexit
import os
import stat
import sys

from highwater import _shim

# threading is imported only where the profile-callback stacks need its
# setprofile (_set_thread_hook): a program that never imports it starts
# without it, as it does without highwater (4 - 12 ms less per tracked
# process's start), and one that does import it has those bytes at its own
# line, as it has without highwater.


def _thread_hook(frame, event, arg):
    # Runs once as the Python-level profile function of each new thread;
    # installing the shim's C profile callback replaces it.
    lib = _shim.shim()
    if lib is not None:
        lib.hw_thread_start()


# The MemoryError our excepthook saw on its way to ending the program.
_memory_error_seen = None


# The hook that was in place before ours; ours hands every exception on.
_previous_excepthook = None


# `highwater python`: this process was started inside highwater.api.profile()
# of another process (HIGHWATER_API_CHILDREN names that call's directory): it
# tracks from its start and leaves its dump there at its exit (api.py).
_api_children_dir = None


# A module-level function on purpose, like everything this start-up code
# compiles: no nested function and no class. Compiling one makes CPython 3.10
# look up its "." and ".<locals>" identifiers for the qualified name, and the
# interpreter's identifier cache (interp->unicode.ids) then grows at a
# different program line: the C identifiers are numbered in order of first
# use and the cache is realloc'ed (to 2048 bytes when number 128 comes) on
# whichever program line first uses the next one, charged to that line,
# although the program without the shim does it elsewhere (at exit).
def _excepthook(exc_type, value, tb):
    global _memory_error_seen
    if isinstance(value, MemoryError):
        _memory_error_seen = value
    return _previous_excepthook(exc_type, value, tb)


_excepthook._highwater = True


def _ended_by_memory_error():
    """True when an unhandled MemoryError is ending the program.

    The interpreter keeps the exception that ended the program in
    sys.last_value (set right before it calls sys.excepthook). While our hook
    is in place it must also have seen that very exception, so a program that
    calls sys.excepthook itself for an error it handled is not mistaken for
    one that died; a program that installed its own hook still works as it
    wrote it, and is judged by sys.last_value alone.

    An interactive session never ends by an exception: the interpreter's
    prompt (python, python -i script.py, PYTHONINSPECT) prints it through
    sys.excepthook, sets sys.last_value, and reads the next statement. Its
    prompt, sys.ps1, exists once that loop ran; a MemoryError it printed
    then made a session that went on and ended 0 exit 53 with an OOM report.
    """
    if hasattr(sys, "ps1"):
        return False
    value = getattr(sys, "last_value", None)
    if not isinstance(value, MemoryError):
        return False
    if getattr(sys.excepthook, "_highwater", False):
        return value is _memory_error_seen
    return True


def _flush_std():
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:
            pass


def _at_exit():
    lib = _shim.shim()
    if lib is None or not lib.hw_is_active():
        return
    if os.environ.get("HIGHWATER_MODE", "run") == "run" and _ended_by_memory_error():
        # An allocation the shim saw fail ended the program: the OOM report
        # and exit 53. The program's own output is flushed first, as its
        # normal exit would have.
        _flush_std()
        oom_unhandled = getattr(lib, "hw_oom_unhandled", None)
        if oom_unhandled is not None:
            oom_unhandled()  # returns only when the shim saw no failure
    if os.environ.get("HIGHWATER_MODE", "run") == "run":
        try:
            _shim.dump(None, "exit")
        except OSError as e:
            sys.stderr.write("highwater: could not write the exit dump: %s\n" % (e,))
    if _api_children_dir is not None:
        _api_child_dump(lib)
    lib.hw_python_stop()


def _api_child_start(lib):
    global _api_children_dir
    path = os.environ.get("HIGHWATER_API_CHILDREN")
    if not path:
        return
    try:
        st = os.lstat(path)
    except OSError:
        return  # the call has ended: its children are no longer its own
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        return
    if lib.hw_tracking_start() != 0:
        return
    _api_children_dir = path
    if _shim.stat("stack_mode") == 0:
        _set_thread_hook()


def _set_thread_hook():
    import threading

    threading.setprofile(_thread_hook)


def _api_child_dump(lib):
    # Written under another name, then renamed: the call never reads half a dump.
    final = os.path.join(_api_children_dir, "child-%d.dump" % os.getpid())
    part = final + ".part"
    try:
        _shim.dump(part, "api")
        os.rename(part, final)
    except (OSError, RuntimeError):
        # The call has ended and removed its directory: nothing to add to, nothing to say.
        try:
            os.unlink(part)
        except OSError:
            pass
    lib.hw_tracking_stop()


def start():
    global _previous_excepthook
    lib = _shim.shim()
    if lib is None and os.environ.get("HIGHWATER_RUN_DIR") and not _glibc():
        _say_unsupported_libc()
    if lib is None or not lib.hw_is_active():
        return
    if os.environ.get("HIGHWATER_STACKS") == "profile":
        # The profile callback was asked for: the thread hook will need
        # threading; imported before tracking starts, its bytes are no
        # program line's. (The shim also falls back to the callback on a
        # frame layout it could not verify: then it comes later, tracked.)
        import threading  # noqa: F401
    rc = lib.hw_python_start()
    if rc != 0:
        return
    # With the profile-callback stacks (Python < 3.11), each new thread needs
    # the callback; from 3.11 the shim reads the interpreter's frames itself.
    if os.environ.get("HIGHWATER_MODE", "run") == "run" and _shim.stat("stack_mode") == 0:
        _set_thread_hook()
    _park_control_thread_at_fork(lib)
    # Registered first, so it runs last: after the program's own atexit work.
    atexit.register(_at_exit)
    if os.environ.get("HIGHWATER_MODE", "run") == "run":
        # Only over the interpreter's own hook, and under both its names:
        # libraries install theirs only while `sys.excepthook is
        # sys.__excepthook__` (the exceptiongroup backport, a dependency of
        # pytest and anyio before 3.11: under ours alone, an uncaught
        # ExceptionGroup lost its sub-exceptions' tracebacks), and that must
        # stay as true as it was. A hook the environment set first (Ubuntu's
        # apport) is left alone: the exit is then judged by sys.last_value.
        if sys.excepthook is sys.__excepthook__ and not getattr(sys.excepthook, "_highwater", False):
            _previous_excepthook = sys.excepthook
            sys.excepthook = sys.__excepthook__ = _excepthook
    elif os.environ.get("HIGHWATER_API_CHILDREN"):
        _api_child_start(lib)


def _park_control_thread_at_fork(lib):
    # CPython 3.12+ warns about a "multi-threaded" fork when the kernel counts
    # more than one thread in the parent after os.fork(); the shim's control
    # thread must not be one. It is parked right before the fork (before-hooks
    # run in reverse order of registration: ours, registered first, runs
    # last) and comes back in the parent once CPython has counted. C-level
    # forks (subprocess, C extensions) run no such hook and count nothing.
    if sys.version_info < (3, 12) or not hasattr(os, "register_at_fork"):
        return
    before = getattr(lib, "hw_fork_before", None)
    after_in_parent = getattr(lib, "hw_fork_after_parent", None)
    if before is not None and after_in_parent is not None:
        os.register_at_fork(before=before, after_in_parent=after_in_parent)


def _glibc():
    """True on glibc; musl (Alpine) has no CS_GNU_LIBC_VERSION."""
    try:
        return bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (ValueError, OSError, AttributeError):
        return False


def _say_unsupported_libc():
    # One line, and the program goes on untracked: the shim is built for glibc.
    sys.stderr.write("highwater: this Python does not run on glibc (musl?): the shim cannot be "
                     "loaded, the program runs without highwater\n")
