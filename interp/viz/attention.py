"""Attention patterns as circuitsvis views that work offline.

circuitsvis renders its React components from a JavaScript bundle; by default its HTML loads that
bundle from a CDN. We never do: every page and notebook output inlines the bundle shipped inside
the circuitsvis wheel (``circuitsvis/dist/cdn/iife.js``), once per page, however many views it holds.

circuitsvis also pastes its props into a ``<script>`` as raw JSON. Everything we embed in a script
goes through :func:`script_json`, which escapes ``<``, ``>``, ``&``, U+2028 and U+2029, so no string
(a token, a title, a run name) can close the script or start markup.

>>> view = attention(model, [(12, 40), (3, 7)])           # doctest: +SKIP
>>> view                                                 # a notebook shows the heads inline  # doctest: +SKIP
>>> write_attention_page(model, [(12, 40)], "attention.html", title="step 1000")  # doctest: +SKIP
"""

from __future__ import annotations

import html
import json
import operator
import re
import uuid
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..errors import ConfigError, InterpError
from ..files import atomic_write_text

__all__ = [
    "attention_patterns",
    "AttentionView",
    "attention",
    "attention_html",
    "write_attention_page",
    "bundle_path",
    "bundle_script",
    "script_json",
    "html_page",
]

# Marks the one inlined bundle of a page (tests count it; a page must hold exactly one).
BUNDLE_MARKER = "interp: circuitsvis bundle"

# A page that loads nothing from anywhere: inline scripts and styles, images from beside the page.
CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
       "img-src 'self' file: data: blob:; font-src data:")


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


def _model_p(model) -> int:
    """p of a model built by :mod:`interp.model`: inputs are the p residues and '=' (token id p)."""
    cfg = model.cfg
    if cfg.d_vocab_out != cfg.d_vocab - 1 or cfg.n_ctx != 3:
        raise ConfigError(f"attention: model has d_vocab={cfg.d_vocab}, d_vocab_out={cfg.d_vocab_out}, "
                          f"n_ctx={cfg.n_ctx}; expected a modular-arithmetic model ([a, b, =] inputs, d_vocab = p + 1)")
    return cfg.d_vocab_out


def attention_patterns(model, pairs: Iterable[Sequence[int]], *, layer: int = 0):
    """Attention of ``model`` on the inputs ``[a, b, =]``, and their token labels.

    Returns ``(pattern, tokens)``: pattern ``(n_pairs, n_heads, 3, 3)`` float tensor, destination
    by source (``blocks.{layer}.attn.hook_pattern``); tokens, one ``["a", "b", "="]`` list per pair.
    """
    import torch

    p = _model_p(model)
    checked = _check_pairs(pairs, p)
    if not (isinstance(layer, int) and 0 <= layer < model.cfg.n_layers):
        raise ConfigError(f"attention: layer must be in [0, {model.cfg.n_layers}), got {layer!r}")
    device = next(model.parameters()).device
    tokens = torch.tensor([[a, b, p] for a, b in checked], dtype=torch.long, device=device)
    name = f"blocks.{layer}.attn.hook_pattern"
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=name)
    labels = [[str(a), str(b), "="] for a, b in checked]
    return cache[name].detach().float().cpu(), labels


# ---------------------------------------------------------------------------------------------
# embedding safely


def script_json(value: Any) -> str:
    """JSON for a ``<script>``: ``<``, ``>``, ``&``, U+2028 and U+2029 become ``\\uXXXX`` escapes.

    Those characters only occur inside JSON strings, where the escapes mean the same thing, so
    ``json.loads(script_json(x)) == x``, and no string can close the script or open a comment.
    """
    text = json.dumps(value, allow_nan=False, separators=(",", ":"))
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def bundle_path() -> Path:
    """The circuitsvis browser bundle shipped inside the installed wheel."""
    import circuitsvis

    return Path(circuitsvis.__file__).parent / "dist" / "cdn" / "iife.js"


@lru_cache(maxsize=1)
def _bundle_source() -> str:
    path = bundle_path()
    try:
        js = path.read_text(encoding="utf-8")
    except OSError as e:
        raise InterpError(f"{path}: cannot read the circuitsvis bundle ({e.strerror}); "
                          "reinstall circuitsvis (pip install --force-reinstall circuitsvis)") from None
    if "var CircuitsVis" not in js:
        raise InterpError(f"{path}: does not define CircuitsVis; this circuitsvis version is not supported")
    # The source map lives beside the wheel's file, not beside our page; browsers would ask for it.
    js = re.sub(r"^//# sourceMappingURL=.*$", "", js, flags=re.MULTILINE)
    # Inside a script element only "</script" (any case) and "<!--" are special. In the bundle they
    # occur inside string literals, where "<\/" and "<\!" mean the same characters.
    js = re.sub(r"</(script)", r"<\\/\1", js, flags=re.IGNORECASE)
    return js.replace("<!--", "<\\!--")


def bundle_script() -> str:
    """``<script>`` defining ``window.CircuitsVis`` from the wheel's bundle (put exactly one per page)."""
    return f"<script>/* {BUNDLE_MARKER} */\n{_bundle_source()}\n</script>"


def html_page(title: str, body: str, *, bundle: bool = True, head: str = "") -> str:
    """A standalone HTML document: ``title`` is escaped, ``body`` and ``head`` are inserted as they are.

    A Content-Security-Policy forbids any network load, so the page provably works offline.
    """
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{html.escape(CSP)}\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{html.escape(title)}</title>\n{head}"
        f"{bundle_script() if bundle else ''}\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


# ---------------------------------------------------------------------------------------------
# views


def _rounded(x, digits: int = 5):
    """Nested lists of floats to ``digits`` significant digits (a NaN of a diverged model becomes null)."""
    if isinstance(x, list):
        return [_rounded(v, digits) for v in x]
    return None if x != x else float(f"{x:.{digits}g}")


@dataclass
class AttentionView:
    """circuitsvis views of attention patterns, one per input pair.

    ``pattern``: ``(n_pairs, n_heads, 3, 3)``; ``tokens``: one label list per pair; ``head``: show
    one head (``AttentionPattern``) or, when None, all heads (``AttentionHeads``).
    Shows inline in Jupyter (bundle included); :meth:`fragment` is the same without the bundle,
    for pages that hold several views and one bundle.
    """

    pattern: Any
    tokens: list[list[str]]
    head: int | None = None
    title: str = ""
    pair_captions: list[str] = field(default_factory=list)

    def _props(self, i: int) -> tuple[str, dict[str, Any]]:
        pat = _rounded(self.pattern[i].tolist())
        if self.head is None:
            names = [f"Head {h}" for h in range(len(pat))]
            return "AttentionHeads", {"attention": pat, "tokens": self.tokens[i],
                                      "attentionHeadNames": names, "maskUpperTri": True}
        return "AttentionPattern", {"attention": pat[self.head], "tokens": self.tokens[i],
                                    "showAxisLabels": True, "maskUpperTri": True, "zoomed": True}

    def fragment(self, id_prefix: str | None = None) -> str:
        """HTML for the views (needs a :func:`bundle_script` earlier in the page)."""
        prefix = id_prefix or f"cv-{uuid.uuid4().hex[:12]}"
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", prefix):
            raise ConfigError(f"AttentionView.fragment: id_prefix must be a letter then letters, digits, '-' "
                              f"or '_', got {prefix!r}")
        parts = ['<div class="interp-attention-group">']
        if self.title:
            parts.append(f"<h3>{html.escape(self.title)}</h3>")
        for i, toks in enumerate(self.tokens):
            component, props = self._props(i)
            caption = self.pair_captions[i] if i < len(self.pair_captions) else ""
            heading = f"{toks[0]}, {toks[1]}" + (f" ({caption})" if caption else "")
            head = "all heads" if self.head is None else f"head {self.head}"
            vid = f"{prefix}-{i}"
            parts.append(
                f'<div class="interp-attention-pair"><h4>input [{html.escape(", ".join(toks))}]: '
                f"a, b = {html.escape(heading)}; {head}</h4>"
                f'<div id="{vid}" class="interp-attention" data-component="{component}"></div>'
                f"<script>CircuitsVis.render({script_json(vid)}, CircuitsVis.{component}, "
                f"{script_json(props)});</script></div>")
        parts.append("</div>")
        return "\n".join(parts)

    def _repr_html_(self) -> str:
        return f"{bundle_script()}\n{self.fragment()}"

    def to_html(self, title: str | None = None) -> str:
        """A standalone page: the views and one inlined bundle."""
        title = self.title if title is None else title
        body = f"<h1>{html.escape(title)}</h1>\n{self.fragment('attention')}" if title else self.fragment("attention")
        return html_page(title or "attention patterns", body)

    def save(self, out_file: Path | str, title: str | None = None) -> Path:
        """Write :meth:`to_html` atomically; returns the path."""
        out = Path(out_file)
        atomic_write_text(out, self.to_html(title))
        return out


def attention(model, pairs: Iterable[Sequence[int]], *, head: int | None = None, layer: int = 0,
              title: str = "", pair_captions: Sequence[str] = ()) -> AttentionView:
    """Attention views of ``model`` on ``[a, b, =]`` for each pair; displays inline in a notebook.

    ``head``: one head index, or None for all heads. Pairs outside [0, p) raise ConfigError.
    """
    pattern, tokens = attention_patterns(model, pairs, layer=layer)
    n_heads = pattern.shape[1]
    if head is not None and (isinstance(head, bool) or not isinstance(head, int) or not 0 <= head < n_heads):
        raise ConfigError(f"attention: head must be None or an integer in [0, {n_heads}), got {head!r}")
    return AttentionView(pattern, tokens, head=head, title=title, pair_captions=list(pair_captions))


def attention_html(model, pairs: Iterable[Sequence[int]], title: str = "attention patterns", *,
                   head: int | None = None, layer: int = 0) -> str:
    """A full standalone HTML page of the views, with the circuitsvis bundle inlined once."""
    return attention(model, pairs, head=head, layer=layer).to_html(title)


def write_attention_page(model, pairs: Iterable[Sequence[int]], out_file: Path | str, *,
                         title: str = "attention patterns", head: int | None = None, layer: int = 0) -> Path:
    """Write :func:`attention_html` to ``out_file`` atomically; returns the path."""
    page = attention_html(model, pairs, title, head=head, layer=layer)
    out = Path(out_file)
    atomic_write_text(out, page)
    return out
