"""The irrep figure of a group task (Chughtai et al. 2023): irrep measures over the run and the final irrep norms."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import FigureError
from ._figure import Figure
from .figures import _boundaries, _draw_phases

__all__ = ["irrep_figure"]


def irrep_figure(df, norms: Mapping[str, Any], names: Sequence[str], key_irreps: Sequence[str],
                 phases: Any = None) -> Figure:
    """Left: irrep restricted and excluded loss (and each key irrep's excluded loss) over the steps, log scale, with
    test loss for reference. Right: the final model's irrep norms of W_E and W_L (``probes.irreps.irrep_norms``,
    one bar per irrep in ``names`` order, key irreps marked). df: the measures table with the irrep columns."""
    need = ("step", "irrep_restricted_loss", "irrep_excluded_loss")
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise FigureError(f"irrep_figure: the measures table lacks {missing} (a group task's irrep columns)")
    fig = Figure(figsize=(11, 3.6), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=[3, 2])
    steps = df["step"].to_numpy()
    for col, style in (("test_loss", dict(color="#7f7f7f", ls=":")), ("irrep_restricted_loss", dict(color="#2ca02c")),
                       ("irrep_excluded_loss", dict(color="#d62728"))):
        if col in df.columns:
            left.plot(steps, df[col].clip(lower=1e-12), label=col.replace("_", " "), **style)
    for k in key_irreps:
        col = f"irrep_excluded_loss_{k}"
        if col in df.columns:
            left.plot(steps, df[col].clip(lower=1e-12), lw=0.8, ls="--", label=f"excluded loss without {k}")
    left.set_yscale("log")
    left.set_xlabel("step")
    left.set_title("irrep restricted / excluded loss")
    if phases is not None:
        _draw_phases(left, _boundaries(phases), float(steps.min()))
    left.legend(fontsize=7)
    x = np.arange(len(names))
    width = 0.4
    for i, (name, values) in enumerate(norms.items()):
        v = np.asarray(values, dtype=float)
        v = v / v.max() if v.max() > 0 else v
        right.bar(x + (i - 0.5) * width, v, width=width, label=f"{name} (scaled to its largest)")
    for j, n in enumerate(names):
        if n in key_irreps:
            right.axvspan(j - 0.5, j + 0.5, color="#ffd92f", alpha=0.45, lw=0, zorder=0,
                          label="key irrep" if n == key_irreps[0] else None)
    right.set_xticks(x, names, rotation=45, fontsize=8)
    right.set_title("final model: irrep norms")
    right.legend(fontsize=7)
    return fig
