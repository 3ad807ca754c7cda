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
            # importlib.util's two functions, taken from the import system's
            # own modules (always loaded): importlib.util itself is not yet
            # loaded at this point on most CPythons, and loading it costs
            # 2 - 25 ms (3.9: importlib.abc, typing, re) in every tracked
            # process's start, and modules the program would not have had.
            try:
                from _frozen_importlib import module_from_spec
                from _frozen_importlib_external import spec_from_file_location
            except ImportError:
                from importlib.util import module_from_spec, spec_from_file_location
            spec = spec_from_file_location("sitecustomize", candidate)
            if spec and spec.loader:
                module = module_from_spec(spec)
                # The program's own `import sitecustomize` must give it its
                # own module, as without highwater: the import of this file,
                # still under way, ends with whatever sys.modules then holds
                # under its name (and drops it if this raises, as it would).
                sys.modules["sitecustomize"] = module
                spec.loader.exec_module(module)
            return


_highwater_bootstrap()
_chain_sitecustomize()
