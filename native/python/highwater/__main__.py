"""`python -m highwater ...`: an alias of the highwater CLI where it is installed.

    python -m highwater run script.py        same as: highwater run script.py

The CLI is found through HIGHWATER_CLI (set by the CLI for its children), then
next to this package, then `highwater` on PATH:
  - the repository: <repo>/native/python/highwater -> <repo>/bin/highwater.js,
    run with HIGHWATER_NODE or the `node` on PATH;
  - the bundle (Dockerfile): /opt/highwater/python/highwater ->
    /opt/highwater/dist/cli/main.js, run with the bundled
    /opt/highwater/node/bin/node (the init-only bundle has no CLI).
Scripts and modules run with this interpreter (HIGHWATER_PYTHON).
"""
import os
import shutil
import sys


def _up(path, levels):
    for _ in range(levels):
        path = os.path.dirname(path)
    return path


def _repository_cli(package_dir):
    repo = _up(package_dir, 3)  # <repo>/native/python/highwater
    cli = os.path.join(repo, "bin", "highwater.js")
    if not os.path.isfile(cli):
        return None
    node = os.environ.get("HIGHWATER_NODE") or shutil.which("node")
    return [node, cli] if node else None


def _bundle_cli(package_dir):
    bundle = _up(package_dir, 2)  # <bundle>/python/highwater
    cli = os.path.join(bundle, "dist", "cli", "main.js")
    node = os.path.join(bundle, "node", "bin", "node")
    if os.path.isfile(cli) and os.access(node, os.X_OK):
        return [node, cli]
    return None


def _bundled_cli():
    package_dir = os.path.dirname(os.path.realpath(__file__))
    return _repository_cli(package_dir) or _bundle_cli(package_dir)


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
