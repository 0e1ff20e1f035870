"""Range checks of the CSV tables interp reads (measures, sweep results): a damaged table is refused, not drawn.

By column name: accuracies (``*_acc``, ``*accuracy*``) and fractions (``frac_*``) lie in [0, 1], losses (``*_loss*``) are
>= 0, and no value is infinite; NaN is allowed only where a measure may be undefined (a key-dependent column of a
run without key frequencies), but a column that should hold numbers must not hold text.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .errors import RunFormatError
from .files import read_limited

__all__ = ["check_table_ranges", "read_csv_checked", "check_not_all_nan"]


def _bounds(column: str) -> tuple[float, float] | None:
    c = column.lower()
    if c.endswith("_acc") or "accuracy" in c or c.startswith("frac_"):
        return 0.0, 1.0
    if "_loss" in c or c.endswith("loss"):
        return 0.0, np.inf
    return None


def check_table_ranges(df: pd.DataFrame, path: Path | str, columns=None) -> None:
    """Raise RunFormatError naming the file, column and row of the first value out of range."""
    for col in columns if columns is not None else df.columns:
        b = _bounds(str(col))
        if b is None:
            continue
        values = pd.to_numeric(df[col], errors="coerce")
        text = values.isna() & df[col].notna()
        if text.any():
            i = int(np.flatnonzero(text.to_numpy())[0])
            raise RunFormatError(f"{path}: column {col!r} row {i + 2} holds {str(df[col].iloc[i])[:40]!r}, "
                                 "not a number")
        v = values.to_numpy(dtype=float)
        bad = ~np.isnan(v) & ~((v >= b[0]) & (v <= b[1]) & np.isfinite(v))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            allowed = "in [0, 1]" if b[1] == 1.0 else "finite and >= 0"
            raise RunFormatError(f"{path}: column {col!r} row {i + 2} is {v[i]}; it must be {allowed}")


def check_not_all_nan(df: pd.DataFrame, path: Path | str, columns) -> None:
    """A column every conclusion rests on (test accuracy, test loss) must hold at least one number."""
    for col in columns:
        if col in df.columns and len(df) and pd.to_numeric(df[col], errors="coerce").isna().all():
            raise RunFormatError(f"{path}: column {col!r} holds no numbers (all empty or NaN); a damaged table")


# pandas 3 reads floats back exactly by default and deprecates the argument; pandas 2 needs it
_EXACT_FLOATS = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}


def read_csv_checked(path: Path | str) -> pd.DataFrame:
    """A CSV file (a regular file of bounded size) as a DataFrame, range-checked; faults name the file."""
    import io

    path = Path(path)
    data = read_limited(path)
    try:
        df = pd.read_csv(io.BytesIO(data), **_EXACT_FLOATS)  # floats read back exactly as written
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as e:
        raise RunFormatError(f"{path}: not a readable CSV table ({' '.join(str(e).split())[:120]})") from None
    check_table_ranges(df, path)
    return df
