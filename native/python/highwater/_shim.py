"""Bindings to the preloaded shim.

First choice: the shim's own module (native/shim/pymod.c), loaded from the
shim file named in LD_PRELOAD with RTLD_NOLOAD: the copy already in the
process answers, no second copy can be loaded, and nothing is imported (the
module is not put in sys.modules). A tracked child's start-up then skips
importing ctypes (~2.7 ms and four modules).

Fallback: ctypes.PyDLL(None), the shim looked up in the global namespace,
when LD_PRELOAD no longer names it (HIGHWATER_CHILDREN=0: the shim put back
the program's own LD_PRELOAD), in debug and free-threaded builds (another
object header than pymod.c's), or when the module cannot be made. PyDLL, not
CDLL: the calls touch the C-API, so the GIL must stay held during them.

Either way shim() returns an object whose hw_* functions take no argument
and return an int; stat() and dump() below hide how each asks.
"""
import os
import sys

_lib = None

# The ctypes module when the fallback is in use, else None.
_ctypes = None

_NOARGS = ("hw_python_start", "hw_thread_start", "hw_tracking_start", "hw_tracking_stop",
           "hw_python_stop", "hw_oom_unhandled", "hw_fork_before", "hw_fork_after_parent")


def shim():
    """The shim's functions, or None when this process was not started by highwater."""
    global _lib
    if _lib is None:
        lib = _own_module()
        if lib is None:
            lib = _by_ctypes()
        _lib = lib if lib is not None else False  # _ABSENT is False
    return _lib or None


def _own_module():
    if "t" in getattr(sys, "abiflags", "") or hasattr(sys, "getobjects"):
        return None  # free-threaded or Py_TRACE_REFS: another object header
    rtld_noload = getattr(os, "RTLD_NOLOAD", None)
    if rtld_noload is None:
        return None
    paths = []  # a loop, not a comprehension: no nested scope (bootstrap-lines.test.ts)
    for entry in os.environ.get("LD_PRELOAD", "").replace(" ", ":").split(":"):
        if os.path.basename(entry) == "libhighwater.so":
            paths.append(entry)
    if not paths and os.environ.get("HIGHWATER_CHILDREN") == "0":
        # --no-children: the root's shim put the program's own LD_PRELOAD
        # back, and the children it starts run without the shim. The maps
        # tell which of the two this is, without ctypes.
        paths = _mapped_shim()
        if paths == []:
            return _ABSENT
    for path in paths or ():
        import _imp
        from _frozen_importlib import ModuleSpec

        flags = sys.getdlopenflags()
        try:
            sys.setdlopenflags(os.RTLD_NOW | rtld_noload)
            return _imp.create_dynamic(ModuleSpec("_highwater", None, origin=path))
        except Exception:  # not loaded under this name, or no module: ctypes
            return None
        finally:
            sys.setdlopenflags(flags)
    return None


# _own_module's answer when the shim is certainly not in this process.
_ABSENT = False


def _mapped_shim():
    """[path] of the libhighwater.so mapped in this process, [] when none is,
    None when that cannot be told (unreadable maps, a file since replaced)."""
    try:
        with open("/proc/self/maps", "rb") as f:
            maps = f.read()
    except OSError:
        return None
    at = maps.find(b"libhighwater.so")
    if at < 0:
        return []
    line = maps[maps.rfind(b"\n", 0, at) + 1:maps.find(b"\n", at)]
    path = line.split(None, 5)[-1] if line.count(b" ") >= 5 else b""
    if not path.startswith(b"/") or not path.endswith(b"/libhighwater.so"):
        return None  # "(deleted)": replaced on disk since it was loaded
    return [os.fsdecode(path)]


def _by_ctypes():
    global _ctypes
    import ctypes

    try:
        lib = ctypes.PyDLL(None)
        lib.hw_api_version  # raises AttributeError when the shim is absent
    except (OSError, AttributeError):
        return None
    lib.hw_api_version.restype = ctypes.c_int
    lib.hw_is_active.restype = ctypes.c_int
    for name in _NOARGS:
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
    _ctypes = ctypes
    return lib


def active():
    lib = shim()
    return bool(lib and lib.hw_is_active())


def dump(path=None, trigger="request"):
    """Writes a raw dump; returns its path. Raises OSError on failure."""
    lib = shim()
    if lib is None:
        raise RuntimeError("the highwater shim is not loaded in this process")
    if _ctypes is None:
        written = lib.dump(path or None, trigger)
        rc = written if isinstance(written, int) else 0
    else:
        out = _ctypes.create_string_buffer(1024)
        rc = lib.hw_dump(path.encode() if path else None, trigger.encode(), out, len(out))
        written = out.value
    if rc != 0:
        raise OSError(-rc, os.strerror(-rc), path)
    return written.decode()


def stat(name):
    lib = shim()
    if lib is None:
        return -1
    return lib.stat(name) if _ctypes is None else lib.hw_stat(name.encode())
