"""`python -m highwater ...`: an alias of the highwater CLI where it is installed.

    python -m highwater run script.py        same as: highwater run script.py

The CLI is found through HIGHWATER_CLI (set by the CLI for its children), then
next to this package (the repository or the /opt/highwater bundle:
<home>/native/python/highwater -> <home>/bin/highwater.js), then `highwater`
on PATH. Scripts and modules run with this interpreter (HIGHWATER_PYTHON).
"""
import os
import shutil
import sys


def _bundled_cli():
    home = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    cli = os.path.join(home, "bin", "highwater.js")
    if not os.path.isfile(cli):
        return None
    node = os.environ.get("HIGHWATER_NODE") or shutil.which("node")
    return [node, cli] if node else None


def find_cli():
    """The command that runs the highwater CLI, or None."""
    from highwater._render import cli_command

    cmd = cli_command() or _bundled_cli()
    if cmd is None:
        exe = shutil.which("highwater")
        cmd = [exe] if exe else None
    return cmd


def main():
    cmd = find_cli()
    if cmd is None:
        sys.stderr.write(
            "highwater: the highwater CLI is not installed here: install it (npm install -g "
            "highwater), or set HIGHWATER_CLI to its bin/highwater.js\n"
        )
        return 2
    args = cmd + sys.argv[1:]
    env = dict(os.environ)
    env.setdefault("HIGHWATER_PYTHON", sys.executable)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe(args[0], args, env)


if __name__ == "__main__":
    sys.exit(main())
