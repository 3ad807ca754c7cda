"""IPython / Jupyter: `%load_ext highwater`, then `%%highwater` on a cell.

Works in the kernel "Python 3 with highwater" (`highwater kernel install`),
which runs ipykernel under `highwater python`. The cell runs in the notebook's
own namespace (its variables stay, its last expression is its result), its
allocations are profiled with the cell's own line numbers (the `%%highwater`
line is line 1), and the flamegraph is shown inline.

    %%highwater [OUTPUT_DIR]

Each run writes a new report directory, OUTPUT_DIR/<timestamp> (default
OUTPUT_DIR: highwater-result, next to the notebook).
"""
import ast
import atexit
import datetime
import os
import shutil
import tempfile

from highwater import _shim

KERNEL_DISPLAY_NAME = "Python 3 with highwater"
KERNEL_NAME = "highwater"
DEFAULT_OUTPUT = "highwater-result"


def _usage_error(message):
    try:
        from IPython.core.error import UsageError
    except ImportError:  # pragma: no cover - IPython is what calls us
        return RuntimeError(message)
    return UsageError(message)


def load_ipython_extension(ipython):
    if not _shim.active() or os.environ.get("HIGHWATER_MODE") != "python":
        raise _usage_error(
            "highwater: this kernel does not run under `highwater python`, so %%highwater "
            "cannot profile here. Choose the kernel '%s' (kernel name '%s'; install it with "
            "`highwater kernel install --user`) in Kernel > Change Kernel, then run "
            "%%load_ext highwater again." % (KERNEL_DISPLAY_NAME, KERNEL_NAME)
        )
    from IPython.core.magic import Magics, cell_magic, magics_class

    @magics_class
    class HighwaterMagics(Magics):
        @cell_magic
        def highwater(self, line, cell):
            """Profile the peak memory of this cell: %%highwater [OUTPUT_DIR]"""
            __tracebackhide__ = True  # IPython leaves our frames out of the cell's traceback
            return run_cell(self.shell, line, cell)

    ipython.register_magics(HighwaterMagics)


_cells_dir = None


def _cell_file(shell, line, cell):
    """The cell as a real file, so that the report shows its source lines.
    The magic line is kept as line 1: the file's line numbers are the cell's."""
    global _cells_dir
    if _cells_dir is None:
        _cells_dir = tempfile.mkdtemp(prefix="highwater-cells-")
        atexit.register(shutil.rmtree, _cells_dir, True)
    count = getattr(shell, "execution_count", 0)
    path = os.path.join(_cells_dir, "In%d.py" % count)
    n = 0
    while os.path.exists(path):  # the same execution count twice (%%highwater run twice by code)
        n += 1
        path = os.path.join(_cells_dir, "In%d-%d.py" % (count, n))
    with open(path, "w") as f:
        f.write("%%highwater" + (" " + line if line else "") + "\n" + cell)
    return path


def _compile_cell(shell, cell, path):
    """(body, last expression or None), compiled with the cell's line numbers."""
    transform = getattr(shell, "transform_cell", None)
    source = transform(cell) if transform else cell  # IPython syntax, line for line
    tree = ast.parse(source, filename=path)
    ast.increment_lineno(tree, 1)  # below the %%highwater line
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    flags = getattr(getattr(shell, "compile", None), "flags", 0)
    body = compile(tree, path, "exec", flags=flags, dont_inherit=True)
    expr = compile(last, path, "eval", flags=flags, dont_inherit=True) if last else None
    return body, expr


def _report_dir(root):
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H-%M-%S-%f")[:-3] + "Z"
    path = os.path.join(root, stamp)
    n = 0
    while os.path.exists(path):  # the CLI's rule: <stamp>, <stamp>-1, ...
        n += 1
        path = os.path.join(root, "%s-%d" % (stamp, n))
    return path


def run_cell(shell, line, cell):
    __tracebackhide__ = True
    from IPython.display import IFrame, display

    from highwater.api import profile

    line = line.strip()
    path = _cell_file(shell, line, cell)
    body, expr = _compile_cell(shell, cell, path)
    out_dir = _report_dir(line or DEFAULT_OUTPUT)
    ns = shell.user_ns

    def run():
        __tracebackhide__ = True
        exec(body, ns)
        return eval(expr, ns) if expr is not None else None

    try:
        return profile(run, out_dir)
    finally:
        index = os.path.join(out_dir, "index.html")
        if os.path.exists(index):
            display(IFrame(os.path.relpath(index), width="100%", height=600))
            print("highwater: report written to %s" % os.path.abspath(index))
