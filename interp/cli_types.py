"""argparse value types shared by every command of the `interp` CLI (errors name the option)."""

from __future__ import annotations

import argparse

__all__ = ["int_at_least"]


def int_at_least(name: str, minimum: int):
    """argparse type: an integer >= minimum, with an error that names the option."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(
                f"{name} must be positive, got {value}" if minimum == 1 else f"{name} must be >= {minimum}, got {value}")
        return value
    return parse
