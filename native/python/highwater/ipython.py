"""IPython / Jupyter: `%load_ext highwater`, then `%%highwater` on a cell.

Works in the kernel "Python 3 with highwater" (`highwater kernel install`),
which runs ipykernel under `highwater python`. The cell runs in the notebook's
own namespace (its variables stay), its allocations are profiled, and the
flamegraph is shown inline.
"""
import datetime
import itertools
import os
import tempfile

from highwater import _shim

KERNEL_NAME = "Python 3 with highwater"
_cells = itertools.count(1)


def _usage_error(message):
    try:
        from IPython.core.error import UsageError
    except ImportError:  # pragma: no cover - IPython is what calls us
        return RuntimeError(message)
    return UsageError(message)


def load_ipython_extension(ipython):
    if not _shim.active() or os.environ.get("HIGHWATER_MODE") != "python":
        raise _usage_error(
            "highwater: this kernel was not started under highwater. Choose the kernel "
            "'%s' (install it with `highwater kernel install --user`), then run "
            "%%load_ext highwater again." % KERNEL_NAME
        )
    from IPython.core.magic import Magics, cell_magic, magics_class

    @magics_class
    class HighwaterMagics(Magics):
        @cell_magic
        def highwater(self, line, cell):
            """Profile the peak memory of this cell: %%highwater [output-dir]"""
            return run_cell(self.shell, cell, line.strip() or None)

    ipython.register_magics(HighwaterMagics)


def _cell_file(cell):
    """The cell as a real file, so the report can show its source lines.
    A leading newline keeps the cell's own line numbers (the magic is line 1)."""
    directory = os.path.join(tempfile.gettempdir(), "highwater-cells-%d" % os.getpid())
    os.makedirs(directory, mode=0o700, exist_ok=True)
    path = os.path.join(directory, "cell-%d.py" % next(_cells))
    source = "\n" + cell
    with open(path, "w") as f:
        f.write(source)
    return path, source


def run_cell(shell, cell, out_root=None):
    from IPython.display import IFrame, display

    from highwater.api import profile

    path, source = _cell_file(cell)
    code = compile(source, path, "exec")
    stamp = datetime.datetime.now().strftime("%Y-%m-%dT%H-%M-%S-%f")
    out_root = out_root or "highwater-result"
    out_dir = os.path.join(out_root, stamp)

    def run():
        exec(code, shell.user_ns)

    try:
        profile(run, out_dir)
    finally:
        index = os.path.join(out_dir, "index.html")
        if os.path.exists(index):
            display(IFrame(os.path.relpath(index), width="100%", height=600))
            print("highwater: report written to %s" % index)
