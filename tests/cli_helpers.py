"""`interp ARGS` in the test's own process: what the console script does, without a new interpreter.

A new Python process imports torch and TransformerLens again before it does anything: about 10 s a command on a
2-core machine, most of the time of the tests that check what a command prints. :func:`interp_cli` calls
``interp.cli.main`` here instead, with stdout and stderr captured, and returns what ``subprocess.run`` would.
Tests about the process itself (Ctrl-C, kills, the console script, a fresh interpreter's imports) still start
one."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import warnings
from pathlib import Path

_SHOW_WARNING = warnings.showwarning  # the interpreter's own, as imported (pytest swaps it while a test runs)


def interp_cli(*args, cwd: str | Path | None = None) -> subprocess.CompletedProcess:
    """``interp *args`` run by ``interp.cli.main`` in this process, in ``cwd``: its exit code (argparse's
    SystemExit included), stdout and stderr, as a CompletedProcess. Warnings are shown every time, as in a fresh
    process (not once per place for the whole test session)."""
    from interp.cli import main

    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    here = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            # as in a fresh process: warnings printed to (the captured) stderr, not to pytest's record; once per
            # place, with what earlier tests saw forgotten (entering catch_warnings resets that memory)
            warnings.showwarning = _SHOW_WARNING
            warnings.simplefilter("default")
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            try:
                code = main(argv)
            except SystemExit as e:  # argparse: usage errors (2) and --help (0)
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        os.chdir(here)
    return subprocess.CompletedProcess(["interp", *argv], code, out.getvalue(), err.getvalue())
