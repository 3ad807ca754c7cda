"""highwater: peak-memory profiling and out-of-memory diagnostics for Python.

The tracking itself lives in the preloaded shim (libhighwater.so); this package
is the thin in-interpreter part: the start-up bootstrap, the Python API
(`highwater.api.profile`) and the IPython/Jupyter extension.
"""

__all__ = ["load_ipython_extension"]


def load_ipython_extension(ipython):
    from highwater.ipython import load_ipython_extension as _load

    _load(ipython)
