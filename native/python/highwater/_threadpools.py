"""Limit native thread pools to one thread for the duration of a profile.

Allocations in a C thread are charged to the Python code that started the
thread; a pool started long ago would be charged to whoever started it. One
thread keeps the work (and its allocations) in the calling Python thread.
Uses threadpoolctl, numexpr and blosc when they are installed; none is required.
"""
import contextlib
import sys


@contextlib.contextmanager
def single_threaded():
    restores = []
    try:
        try:
            import threadpoolctl

            limiter = threadpoolctl.threadpool_limits(limits=1)
            restores.append(limiter.restore_original_limits)
        except Exception:
            pass
        numexpr = sys.modules.get("numexpr")
        if numexpr is not None:
            try:
                old = numexpr.set_num_threads(1)
                restores.append(lambda: numexpr.set_num_threads(old))
            except Exception:
                pass
        for name in ("blosc", "blosc2"):
            blosc = sys.modules.get(name)
            if blosc is not None:
                try:
                    old = blosc.set_nthreads(1)
                    restores.append(lambda b=blosc, o=old: b.set_nthreads(o))
                except Exception:
                    pass
        yield
    finally:
        for restore in reversed(restores):
            try:
                restore()
            except Exception:
                pass
