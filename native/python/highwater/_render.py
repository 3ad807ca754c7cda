"""Render a raw dump into a report directory with the highwater CLI.

Rendering never happens inside the profiled interpreter: a child process
(`highwater render`) does it. The CLI that started us says where it is
(HIGHWATER_CLI, HIGHWATER_NODE).
"""
import os
import subprocess


def cli_command():
    cli = os.environ.get("HIGHWATER_CLI")
    if not cli:
        return None
    node = os.environ.get("HIGHWATER_NODE") or "node"
    return [node, cli]


def render(dump_path, out_dir, timestamped=False, children=None, child_states=None):
    """Renders dump_path into out_dir; returns the report directory.

    children: a directory of child-<pid>.dump files (highwater.api's
    children) that join the report, one part per process.
    child_states: (run dir, wall-clock ms when the call began): the call's
    children that ended without a dump join from their state files."""
    cmd = cli_command()
    if cmd is None:
        raise RuntimeError(
            "highwater: cannot render the report: HIGHWATER_CLI is not set "
            "(run the program with `highwater python script.py`)"
        )
    args = cmd + ["render", dump_path, "-o", out_dir]
    if not timestamped:
        args.append("--no-timestamp")
    if children:
        args += ["--children", children]
        if child_states is not None:
            args += ["--child-states", child_states[0], "--since", str(int(child_states[1]))]
    env = dict(os.environ)
    # The renderer is Node, not Python: keep the shim out of it.
    env.pop("LD_PRELOAD", None)
    proc = subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise RuntimeError("highwater: rendering %s failed: %s" % (dump_path, proc.stderr.strip()))
    return out_dir
