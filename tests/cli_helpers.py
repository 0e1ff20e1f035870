"""`interp ARGS` and example scripts in the test's own process: what they do, without a new interpreter.

A new Python process imports torch and TransformerLens again before it does anything: about 10 s a command on a
2-core machine, most of the time of the tests that check what a command prints. :func:`interp_cli` calls
``interp.cli.main`` here instead, with stdout and stderr captured, and returns what ``subprocess.run`` would.
:func:`run_script` does the same for an example script (``python examples/X.py ARGS``). Tests about the process
itself (Ctrl-C, kills, the console script, a fresh interpreter's imports) and scripts that start worker processes
(sweeps) still start one."""

from __future__ import annotations

import contextlib
import io
import os
import runpy
import subprocess
import sys
import warnings
from pathlib import Path


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """What Python prints for a warning, written to the current sys.stderr (under pytest, the warnings module
    records them instead: setting its own showwarning back would not print them)."""
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def interp_cli(*args, cwd: str | Path | None = None) -> subprocess.CompletedProcess:
    """``interp *args`` run by ``interp.cli.main`` in this process, in ``cwd``: its exit code (argparse's
    SystemExit included), stdout and stderr, as a CompletedProcess."""
    from interp.cli import main

    argv = [str(a) for a in args]
    return _captured(lambda: main(argv), cwd, ["interp", *argv])


def _captured(call, cwd, args: list[str]) -> subprocess.CompletedProcess:
    """``call()`` in ``cwd`` with stdout and stderr captured; its return value (or SystemExit's code: None is 0, a
    message is printed and 1) is the exit code. Warnings are shown as in a fresh process: printed to (the captured)
    stderr, not to pytest's record, once per place, with what earlier tests saw forgotten (entering catch_warnings
    resets that memory)."""
    out, err = io.StringIO(), io.StringIO()
    here = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.showwarning = _show_warning
            warnings.simplefilter("default")
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            try:
                code = call()
            except SystemExit as e:
                code = e.code
                if code is not None and not isinstance(code, int):  # sys.exit("message"): printed, exit code 1
                    print(code, file=sys.stderr)
            code = 0 if code is None else code if isinstance(code, int) else 1
    finally:
        os.chdir(here)
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def run_script(path: str | Path, *args, cwd: str | Path | None = None) -> subprocess.CompletedProcess:
    """``python PATH *args`` run by ``runpy`` in this process, in ``cwd``, as ``__main__`` with ``sys.argv`` and
    ``sys.path[0]`` as Python sets them: its exit code, stdout and stderr, as a CompletedProcess."""
    argv = [str(path), *(str(a) for a in args)]

    def call() -> None:
        saved_argv, saved_path = sys.argv, list(sys.path)
        sys.argv, sys.path[0:0] = argv, [str(Path(path).resolve().parent)]
        try:
            runpy.run_path(str(path), run_name="__main__")
        finally:
            sys.argv, sys.path[:] = saved_argv, saved_path

    return _captured(call, cwd, ["python", *argv])
