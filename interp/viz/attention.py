"""Token-level attention on a few inputs, as one circuitsvis view that works offline.

One function, one object: :func:`attention` computes the patterns on ``[a, b, =]`` inputs and returns
an :class:`AttentionView`, which shows inline in a notebook and ``.save(path)`` writes a standalone
page. For attention over *every* input see :func:`interp.viz.mechanism.attention_grid`.

The inputs are shown side by side in one circuitsvis view: the 3-token inputs are concatenated and
their 3x3 patterns placed on the diagonal of one block-diagonal pattern (attention never crosses
between inputs, so the off-diagonal blocks are zero).

circuitsvis renders its React components from a JavaScript bundle; we never load it from a CDN.
A saved page inlines the bundle from the circuitsvis wheel once. In a notebook the bundle (1.3 MB)
is sent with the first view displayed in a kernel and not again: later views only carry their
fragment, which waits for ``window.CircuitsVis``. A module flag remembers that it was sent, so
re-running cells does not resend it; if the output that carried it was cleared and the page
reloaded, a view says so, and ``attention.reset_bundle()`` makes the next display send it again
(a restarted kernel sends it again by itself).

Everything placed in a ``<script>`` goes through :func:`script_json` (escapes ``<``, ``>``, ``&``,
U+2028, U+2029), so no string (a token, a title, a run name) can close the script or start markup.

>>> view = attention(model, [(12, 40), (3, 7)], step=20000)   # doctest: +SKIP
>>> view                                                       # inline in a notebook  # doctest: +SKIP
>>> view.save("attention.html")                                # a standalone offline page  # doctest: +SKIP
"""

from __future__ import annotations

import html
import operator
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

from ..errors import ConfigError
from ..files import atomic_write_text
from .mechanism import model_format
from .page import BUNDLE_MARKER, bundle_path, bundle_script, html_page, script_json  # noqa: F401 (re-exported)

__all__ = ["attention_patterns", "AttentionView", "attention", "reset_bundle", "script_json"]

_bundle_sent = False  # has this kernel already displayed a view that carried the bundle?


def reset_bundle() -> None:
    """Make the next notebook display send the circuitsvis bundle again (after clearing outputs and reloading)."""
    global _bundle_sent
    _bundle_sent = False


# ---------------------------------------------------------------------------------------------
# computing


def _check_pairs(pairs: Iterable[Sequence[int]], p: int) -> list[tuple[int, int]]:
    """Pairs as ``(a, b)`` ints in [0, p); anything else is a ConfigError naming the pair."""
    try:
        items = list(pairs)
    except TypeError:
        raise ConfigError(f"attention pairs: expected a list of (a, b) pairs, got {type(pairs).__name__}") from None
    if not items:
        raise ConfigError("attention pairs: the list is empty; give pairs like [(12, 40)]")
    out = []
    for i, pair in enumerate(items):
        try:
            a, b = pair
            if isinstance(a, bool) or isinstance(b, bool):
                raise TypeError
            a, b = operator.index(a), operator.index(b)
        except (TypeError, ValueError):
            raise ConfigError(f"attention pairs[{i}] = {pair!r}: expected two integers (a, b)") from None
        if not (0 <= a < p and 0 <= b < p):
            raise ConfigError(f"attention pairs[{i}] = ({a}, {b}): a and b must be in [0, {p}) "
                              f"for this model (p = {p})")
        out.append((a, b))
    return out


def attention_patterns(model, pairs: Iterable[Sequence[int]], *, layer: int = 0):
    """Attention of ``model`` on the inputs ``[a, b, =]``, and their token labels, from its hooked forward.

    Returns ``(pattern, tokens)``: pattern ``(n_pairs, n_heads, 3, 3)`` float tensor, destination
    by source (``blocks.{layer}.attn.hook_pattern``); tokens, one ``["a", "b", "="]`` list per pair (``(n_pairs,
    n_heads, 2, 2)`` and ``["a", "b"]`` for a model of [a, b] inputs).
    """

    try:
        p, eq_sign = model_format(model)
    except ConfigError as e:
        raise ConfigError(f"attention: {e}") from None
    checked = _check_pairs(pairs, p)
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < model.cfg.n_layers:
        raise ConfigError(f"attention: layer must be in [0, {model.cfg.n_layers}), got {layer!r}")
    device = next(model.parameters()).device
    tokens = torch.tensor([[a, b, p][:3 if eq_sign else 2] for a, b in checked], dtype=torch.long, device=device)
    name = f"blocks.{layer}.attn.hook_pattern"
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=name)
    labels = [[str(a), str(b), "="][:3 if eq_sign else 2] for a, b in checked]
    return cache[name].detach().float().cpu(), labels


# ---------------------------------------------------------------------------------------------
# the view


def _rounded(x, digits: int = 4):
    """Nested lists of floats to ``digits`` significant digits (a NaN of a diverged model becomes null)."""
    if isinstance(x, list):
        return [_rounded(v, digits) for v in x]
    return None if x != x else float(f"{x:.{digits}g}")


@dataclass(repr=False)
class AttentionView:
    """One circuitsvis view of the attention of a few inputs, side by side.

    ``pattern``: ``(n_inputs, n_heads, 3, 3)``; ``tokens``: one ``[a, b, "="]`` label list per input;
    ``head``: one head (circuitsvis ``AttentionPattern``) or None for all (``AttentionHeads``).
    Shows inline in Jupyter; :meth:`save` writes a standalone offline page; :meth:`fragment` is the
    view without the bundle, for pages that hold one bundle.
    """

    pattern: Any
    tokens: list[list[str]]
    head: int | None = None
    title: str = ""
    captions: list[str] = field(default_factory=list)
    layer: int = 0
    step: int | None = None

    @property
    def n_inputs(self) -> int:
        return len(self.tokens)

    @property
    def n_heads(self) -> int:
        return int(self.pattern.shape[1])

    def __repr__(self) -> str:
        parts = [f"{self.n_inputs} input{'s' if self.n_inputs != 1 else ''}",
                 f"{self.n_heads} heads" if self.head is None else f"head {self.head} of {self.n_heads}",
                 f"layer {self.layer}"]
        if self.step is not None:
            parts.append(f"step {self.step}")
        if self.title:
            parts.append(repr(self.title))
        return f"AttentionView({', '.join(parts)})"

    def block_pattern(self) -> list:
        """``(n_heads, kn, kn)`` nested lists: each input's k x k pattern (k = 3 for [a, b, =], 2 for [a, b]) on the
        diagonal, zeros elsewhere."""
        n, H, k = self.n_inputs, self.n_heads, self.n_ctx
        pat = self.pattern.tolist()
        out = [[[0.0] * (k * n) for _ in range(k * n)] for _ in range(H)]
        for i in range(n):
            for h in range(H):
                for d in range(k):
                    out[h][k * i + d][k * i:k * i + k] = pat[i][h][d]
        return _rounded(out)

    @property
    def n_ctx(self) -> int:
        return int(self.pattern.shape[-1])

    def _props(self) -> tuple[str, dict[str, Any]]:
        tokens = [t for toks in self.tokens for t in toks]
        pat = self.block_pattern()
        if self.head is None:
            return "AttentionHeads", {"attention": pat, "tokens": tokens,
                                      "attentionHeadNames": [f"Head {h}" for h in range(self.n_heads)],
                                      "maskUpperTri": True}
        return "AttentionPattern", {"attention": pat[self.head], "tokens": tokens, "showAxisLabels": True,
                                    "maskUpperTri": True}

    def describe(self) -> str:
        """One sentence naming the inputs, for a caption."""
        items = []
        for i, toks in enumerate(self.tokens):
            cap = self.captions[i] if i < len(self.captions) else ""
            items.append(f"[{', '.join(toks)}]" + (f" ({cap})" if cap else ""))
        heads = "every head" if self.head is None else f"head {self.head}"
        return (f"Layer-{self.layer} attention ({heads}) on {', '.join(items)}, side by side as one sequence: "
                f"each input's {self.n_ctx}x{self.n_ctx} pattern sits on the diagonal; attention never crosses between "
                "inputs.")

    def fragment(self, id_prefix: str | None = None, *, heading: bool = True) -> str:
        """HTML for the view (needs a :func:`bundle_script` earlier in the page, or already run in a notebook).

        heading: show the title as an ``<h3>`` (a saved page shows it as its ``<h1>`` instead).
        """
        vid = id_prefix or f"cv-{uuid.uuid4().hex[:12]}"
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", vid):
            raise ConfigError(f"AttentionView.fragment: id_prefix must be a letter then letters, digits, '-' "
                              f"or '_', got {vid!r}")
        component, props = self._props()
        missing = ("circuitsvis is not loaded in this page: it comes with the first attention view shown in a "
                   "kernel. Run interp.viz.attention.reset_bundle() and show the view again.")
        title = f"<h3>{html.escape(self.title)}</h3>" if self.title and heading else ""
        return (f'<div class="interp-attention-view">{title}'
                f'<p class="note">{html.escape(self.describe())}</p>'
                f'<div id="{vid}" class="interp-attention" data-component="{component}"></div>'
                f"<script>(function () {{ var id = {script_json(vid)}; "
                f"if (window.CircuitsVis) {{ CircuitsVis.render(id, CircuitsVis.{component}, {script_json(props)}); }}"
                f" else {{ document.getElementById(id).textContent = {script_json(missing)}; }} }})();</script></div>")

    def _repr_html_(self) -> str:
        global _bundle_sent
        head = "" if _bundle_sent else bundle_script() + "\n"
        _bundle_sent = True
        return head + self.fragment()

    def save(self, path: Path | str, title: str | None = None) -> Path:
        """Write a standalone page (the report's styling, one inlined bundle, no network) atomically; returns it."""
        title = (self.title or "attention patterns") if title is None else title
        body = f"<h1>{html.escape(title)}</h1>\n{self.fragment('attention', heading=False)}"
        out = Path(path)
        atomic_write_text(out, html_page(title, body))
        return out


def attention(model, pairs: Iterable[Sequence[int]], *, head: int | None = None, layer: int = 0,
              title: str = "", captions: Sequence[str] = (), step: int | None = None) -> AttentionView:
    """The attention of ``model`` on ``[a, b, =]`` for each pair, as one :class:`AttentionView`.

    head: one head index, or None for all heads. captions: one short note per pair (e.g. "train pair").
    step: the checkpoint step, shown in the view's repr. Pairs outside [0, p) raise ConfigError.
    """
    pattern, tokens = attention_patterns(model, pairs, layer=layer)
    n_heads = pattern.shape[1]
    if head is not None and (isinstance(head, bool) or not isinstance(head, int) or not 0 <= head < n_heads):
        raise ConfigError(f"attention: head must be None or an integer in [0, {n_heads}), got {head!r}")
    return AttentionView(pattern, tokens, head=head, title=title, captions=list(captions), layer=layer, step=step)


# `viz.attention` is this function, so `viz.attention.reset_bundle()` is where a notebook user looks for it.
attention.reset_bundle = reset_bundle
