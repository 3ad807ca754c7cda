"""`python -m highwater ...`: an alias of the highwater CLI where it is installed."""
import os
import shutil
import sys


def main():
    from highwater._render import cli_command

    cmd = cli_command()
    if cmd is None:
        exe = shutil.which("highwater")
        if exe is None:
            sys.stderr.write(
                "highwater: the highwater CLI is not installed here (npm install highwater, "
                "or set HIGHWATER_CLI to its bin/highwater.js)\n"
            )
            return 2
        cmd = [exe]
    args = cmd + sys.argv[1:]
    env = dict(os.environ)
    env.setdefault("HIGHWATER_PYTHON", sys.executable)
    os.execvpe(args[0], args, env)


if __name__ == "__main__":
    sys.exit(main())
