"""Progress of long loops (training steps, measured checkpoints) on stderr.

On a terminal: a tqdm bar (the plain one, so notebooks need no widgets). Anywhere else (a log file, CI, a
notebook's stderr): an occasional line, at most one per ``every`` seconds and at least every 10 % of the way,
instead of a bar redrawn with carriage returns.
"""

from __future__ import annotations

import sys
import time
from typing import Any

__all__ = ["Progress"]


class Progress:
    """``update(position, row)`` after each item; ``row`` may carry train_loss / test_loss to show."""

    def __init__(self, total: int, desc: str, unit: str, *, initial: int = 0, enabled: bool = True,
                 every: float = 30.0, stream=None):
        self.total, self.desc, self.unit = total, desc, unit
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.every = every
        self.position = initial
        self._shown: dict[str, str] = {}
        self._bar = None
        self._last_line = time.monotonic()
        self._last_frac = initial / total if total else 0.0
        if enabled and _is_terminal(self.stream):
            from tqdm.std import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True,
                             mininterval=0.5, file=self.stream)

    def note(self, text: str) -> None:
        if self.enabled:
            (self._bar.write if self._bar is not None else self._print)(text)

    def update(self, position: int, row: dict[str, Any] | None = None) -> None:
        if not self.enabled:
            return
        if row:
            for key, label in (("train_loss", "train"), ("test_loss", "test")):
                if row.get(key) is not None:
                    self._shown[label] = f"{row[key]:.2e}"
        advance, self.position = position - self.position, position
        if self._bar is not None:
            self._bar.update(max(advance, 0))
            if self._shown:
                self._bar.set_postfix(self._shown, refresh=False)
            return
        frac = position / self.total if self.total else 1.0
        now = time.monotonic()
        if now - self._last_line >= self.every or frac - self._last_frac >= 0.1 or position >= self.total:
            self._last_line, self._last_frac = now, frac
            shown = " ".join(f"{k} {v}" for k, v in self._shown.items())
            self._print(f"{self.desc}: {self.unit} {position}/{self.total} ({frac:.0%}) {shown}".rstrip())

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
