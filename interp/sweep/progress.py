"""The sweep's progress display: runs complete / running / failed / pending, and the running runs' losses.

On a terminal one status line is redrawn (at most twice a second); otherwise (a log file, CI) a line is
printed when a run starts or finishes.
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import Any, TextIO

__all__ = ["Display"]


class Display:
    def __init__(self, total: int, enabled: bool = True, stream: TextIO | None = None):
        self.total = total
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.tty = enabled and getattr(self.stream, "isatty", lambda: False)()
        self.latest: dict[str, dict[str, Any]] = {}  # running run -> its latest progress row
        self._last_draw = 0.0
        self._drawn = False

    def event(self, counts: dict[str, int], name: str, what: str) -> None:
        """A run started or finished (``what`` says how)."""
        if not self.enabled:
            return
        if self.tty:
            self._clear()
            print(f"{name}: {what}", file=self.stream, flush=True)
            self.update(counts, force=True)
        else:
            done = counts["complete"] + counts["failed"]
            print(f"[{done}/{self.total}] {name}: {what}", file=self.stream, flush=True)

    def update(self, counts: dict[str, int], force: bool = False) -> None:
        if not self.tty:
            return
        now = time.monotonic()
        if not force and now - self._last_draw < 0.5:
            return
        self._last_draw = now
        head = (f"sweep: {counts['complete']}/{self.total} complete, {counts['running']} running, "
                f"{counts['failed']} failed, {counts['pending']} pending")
        parts = [f"{n} {r['step']}/{r['n_steps']} train {r['train_loss']:.2e} test {r['test_loss']:.2e}"
                 for n, r in self.latest.items()]
        line = " | ".join([head, *parts])
        width = shutil.get_terminal_size((120, 20)).columns - 1
        self._clear()
        self.stream.write(line[:width])
        self.stream.flush()
        self._drawn = True

    def _clear(self) -> None:
        if self._drawn:
            self.stream.write("\r\033[K")
            self._drawn = False

    def close(self) -> None:
        if self.tty:
            self._clear()
            self.stream.flush()
