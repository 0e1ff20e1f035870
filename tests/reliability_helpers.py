"""Shared by the reliability tests: the real CLI in a child that kills itself at a named kill point."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from interp.killpoints import ENV

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, kill: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``interp ARGS`` in a child process (no time limit: a slow machine is not a failure); with ``kill`` the child
    SIGKILLs itself at that kill point (``NAME`` or ``NAME:N``), so its return code is -9."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop(ENV, None)
    if kill:
        env[ENV] = kill
    return subprocess.run([sys.executable, "-m", "interp.cli", *map(str, args)], env=env, cwd=cwd,
                          capture_output=True, text=True)


def one_line_error(result, rc: int = 1) -> str:
    """The child failed with ``rc`` and a single stderr line, no traceback; returns that line."""
    assert result.returncode == rc, (result.returncode, result.stderr[-2000:])
    lines = [ln for ln in result.stderr.splitlines() if ln.strip() and "warning" not in ln]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    return lines[0]
