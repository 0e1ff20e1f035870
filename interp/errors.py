"""One exception family for the whole toolkit.

Every error we raise on purpose is an :class:`InterpError`, and its message says what was
wrong, where (file, field, argument) and, when it is not obvious, what to do. The CLI prints
these as one line and exits non-zero; anything else is a bug.
"""

from __future__ import annotations

__all__ = [
    "InterpError",
    "ConfigError",
    "RunFormatError",
    "CheckpointError",
    "RunLockedError",
    "ProbeError",
    "TrainingError",
    "FigureError",
    "OutputError",
]


class InterpError(Exception):
    """Base class of every error `interp` raises deliberately."""


class ConfigError(InterpError, ValueError):
    """A configuration value or argument is invalid (names the field).

    ``field`` is the library's name of the offending field or parameter (e.g. ``"stop_test_loss"``) and
    ``detail`` what is wrong with it, so the CLI can restate the error in terms of its own flags.
    """

    def __init__(self, message: str, *, field: str | None = None, detail: str | None = None):
        super().__init__(message)
        self.field = field
        self.detail = detail


class RunFormatError(InterpError):
    """A run directory or one of its files is missing, malformed or inconsistent (names the file)."""


class CheckpointError(RunFormatError):
    """A checkpoint file cannot be read or does not fit the run's model (names the file and tensor)."""


class RunLockedError(InterpError):
    """Another process is writing to this run directory."""


class ProbeError(InterpError, ValueError):
    """A progress measure was asked for something it cannot compute (empty key set, bad split, ...)."""


class TrainingError(InterpError):
    """Training cannot go on (the loss diverged, ...): the run is recorded as failed."""


class FigureError(InterpError, ValueError):
    """A figure was given data it cannot draw (a DataFrame without the columns it plots, wrong shapes, ...)."""


class OutputError(InterpError):
    """A file could not be written (a full disk, a read-only directory): names the file and the reason."""
