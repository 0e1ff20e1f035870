"""Text of the analysis commands in a terminal of 100 columns: wrapped lines, tables as columns when they fit, else
one record per row (``--wide`` prints everything unwrapped)."""

from __future__ import annotations

import textwrap

__all__ = ["COLUMNS", "emit", "print_table"]

COLUMNS = 100  # the terminal width every line fits unless --wide


def emit(text: str, wide: bool) -> None:
    for line in text.splitlines() or [""]:
        if wide or len(line) <= COLUMNS:
            print(line)
        else:
            print("\n".join(textwrap.wrap(line, COLUMNS, subsequent_indent="    ", break_long_words=True)))


def print_table(title: str, df, wide: bool, columns=None) -> None:
    """A table as aligned columns when it fits 100 columns (or with --wide), else one wrapped record per row."""
    emit(f"\n== {title}", wide)
    if df is None or not len(df):
        print("(none)")
        return
    import pandas as pd  # the CLI starts without it (parse errors and --help stay fast)

    cols = [c for c in (columns or df.columns) if c in df.columns]
    with pd.option_context("display.width", 10_000, "display.max_columns", 100, "display.max_colwidth", 200):
        text = df[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}")
    if wide or max(len(x) for x in text.splitlines()) <= COLUMNS:
        emit(text, True)
        return
    for _, r in df[cols].iterrows():
        vals = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in r.tolist()]
        emit(f"- {vals[0]}: " + "; ".join(f"{c} {v}" for c, v in zip(cols[1:], vals[1:])), wide)
