"""The Figure every figure function returns: a plain matplotlib Figure that also shows itself in a notebook.

Figures are built without pyplot (no global state), so a fresh Jupyter kernel has no display hook for them;
``_repr_png_`` lets IPython show one inline with no ``%matplotlib inline``, and never twice (pyplot does
not know these figures).
"""

from __future__ import annotations

import io

from matplotlib.figure import Figure as _MplFigure

__all__ = ["Figure"]

INLINE_DPI = 100


class Figure(_MplFigure):
    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png", dpi=INLINE_DPI)
        return buf.getvalue()
