"""argparse value types shared by every command of the `interp` CLI (errors name the option)."""

from __future__ import annotations

import argparse

__all__ = ["int_at_least", "MAX_THREADS"]


MAX_THREADS = 256  # torch threads per process (and sweep runs at a time): past this a typo, not a machine


def int_at_least(name: str, minimum: int, maximum: int | None = None):
    """argparse type: an integer >= minimum (and <= maximum), with an error that names the option."""
    def parse(text: str) -> int:
        if len(text) > 30:
            raise argparse.ArgumentTypeError(f"{name} must be an integer of at most 30 digits, got {text[:20]!r}...")
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(
                f"{name} must be positive, got {value}" if minimum == 1 else f"{name} must be >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"{name} must be at most {maximum:,}, got {value:,}")
        return value
    return parse
