"""ctypes bindings to the preloaded shim.

The shim is looked up in the global namespace (ctypes.PyDLL(None)): it is
there when LD_PRELOAD loaded it, and nowhere else. PyDLL, not CDLL: the calls
touch the C-API, so the GIL must stay held during them.
"""
import ctypes

_lib = None


def shim():
    """The shim's functions, or None when this process was not started by highwater."""
    global _lib
    if _lib is None:
        try:
            lib = ctypes.PyDLL(None)
            lib.hw_api_version  # raises AttributeError when the shim is absent
        except (OSError, AttributeError):
            _lib = False
            return None
        lib.hw_api_version.restype = ctypes.c_int
        lib.hw_is_active.restype = ctypes.c_int
        for name in ("hw_python_start", "hw_thread_start", "hw_tracking_start",
                     "hw_tracking_stop", "hw_python_stop", "hw_oom_unhandled",
                     "hw_fork_before", "hw_fork_after_parent"):
            try:
                fn = getattr(lib, name)
            except AttributeError:  # an older shim: that feature is off
                continue
            fn.restype = ctypes.c_int
            fn.argtypes = []
        lib.hw_dump.restype = ctypes.c_int
        lib.hw_dump.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]
        lib.hw_stat.restype = ctypes.c_longlong
        lib.hw_stat.argtypes = [ctypes.c_char_p]
        _lib = lib
    return _lib or None


def active():
    lib = shim()
    return bool(lib and lib.hw_is_active())


def dump(path=None, trigger="request"):
    """Writes a raw dump; returns its path. Raises OSError on failure."""
    lib = shim()
    if lib is None:
        raise RuntimeError("the highwater shim is not loaded in this process")
    out = ctypes.create_string_buffer(1024)
    rc = lib.hw_dump(path.encode() if path else None, trigger.encode(), out, len(out))
    if rc != 0:
        import os
        raise OSError(-rc, os.strerror(-rc), path)
    return out.value.decode()


def stat(name):
    lib = shim()
    return lib.hw_stat(name.encode()) if lib else -1
