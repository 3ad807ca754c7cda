"""Start-up: switch tracking on in the shim and hook new threads."""
import atexit
import os
import sys
import threading

from highwater import _shim


def _thread_hook(frame, event, arg):
    # Runs once as the Python-level profile function of each new thread;
    # installing the shim's C profile callback replaces it.
    lib = _shim.shim()
    if lib is not None:
        lib.hw_thread_start()


def _at_exit():
    lib = _shim.shim()
    if lib is None or not lib.hw_is_active():
        return
    if os.environ.get("HIGHWATER_MODE", "run") == "run":
        try:
            _shim.dump(None, "exit")
        except OSError as e:
            sys.stderr.write("highwater: could not write the exit dump: %s\n" % (e,))
    lib.hw_python_stop()


def start():
    lib = _shim.shim()
    if lib is None and os.environ.get("HIGHWATER_RUN_DIR") and not _glibc():
        _say_unsupported_libc()
    if lib is None or not lib.hw_is_active():
        return
    rc = lib.hw_python_start()
    if rc != 0:
        return
    # With the profile-callback stacks (Python < 3.11), each new thread needs
    # the callback; from 3.11 the shim reads the interpreter's frames itself.
    if os.environ.get("HIGHWATER_MODE", "run") == "run" and _shim.stat("stack_mode") == 0:
        threading.setprofile(_thread_hook)
    # Registered first, so it runs last: after the program's own atexit work.
    atexit.register(_at_exit)


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
