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
