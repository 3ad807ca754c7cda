# highwater bootstrap: imported by Python at start-up because highwater puts
# this directory first on PYTHONPATH. It switches tracking on in the preloaded
# shim, then hands over to any sitecustomize the environment already had.
import sys


def _highwater_bootstrap():
    try:
        from highwater import _bootstrap
    except Exception as e:  # never break the program for our sake
        sys.stderr.write("highwater: bootstrap failed: %r\n" % (e,))
        return
    _bootstrap.start()


def _chain_sitecustomize():
    import importlib.util
    import os

    here = os.path.dirname(os.path.abspath(__file__))
    for entry in sys.path:
        try:
            if os.path.abspath(entry or ".") == here:
                continue
        except Exception:
            continue
        candidate = os.path.join(entry or ".", "sitecustomize.py")
        if os.path.isfile(candidate):
            spec = importlib.util.spec_from_file_location("_highwater_chained_sitecustomize", candidate)
            if spec and spec.loader:
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
            return


_highwater_bootstrap()
_chain_sitecustomize()
