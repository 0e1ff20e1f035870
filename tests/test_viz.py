"""interp.viz: figures plot what they are given, attention pages are offline and escaped, the report is whole."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from interp import probes
from interp.config import preset
from interp.errors import ConfigError
from interp.fourier import basis_labels
from interp.model import build_model
from interp.train import train
from interp.viz import (attention, attention_html, attention_patterns, fourier_norms_figure, loss_curves_figure,
                        neuron_clusters_figure, progress_figure, save_figure, write_attention_page, write_report)
from interp.viz.attention import BUNDLE_MARKER, script_json
from interp.viz.figures import PHASE_GID

HOSTILE = "<script>alert(1)</script>"
HOSTILE_DIR = "<b onmouseover=alert(1)>run & co"  # a directory name cannot hold "/", so no </script> here
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """The `small` preset for 200 steps (5 checkpoints), with a hostile config name and directory name."""
    out = tmp_path_factory.mktemp("viz") / HOSTILE_DIR
    return train(preset("small").replace(n_steps=200, save_every=50, name=HOSTILE), out, progress=False)


@pytest.fixture(scope="module")
def tiny_model():
    return build_model(preset("tiny"))  # p = 23, 2 heads


def _measures_frame(n: int = 41) -> pd.DataFrame:
    steps = np.linspace(0, 2000, n).astype(int)
    s = steps.astype(float)
    return pd.DataFrame({
        "step": steps,
        "train_loss": np.exp(-s / 100) + 1e-7,
        "test_loss": 10 * np.exp(-((s - 900) / 400) ** 2) + 1e-6,
        "restricted_loss": 4 * np.exp(-s / 800),
        "excluded_loss": 1e-3 * np.exp(s / 600),
        "train_acc": np.minimum(1, s / 200), "test_acc": (s > 1200) * 1.0,
        "gini_W_E": 0.2 + s / 4000, "gini_W_L": 0.1 + s / 3000,
        "sum_sq_weights": 1000 - 0.2 * s,
    })


def _phase_lines(ax) -> int:
    return sum(1 for line in ax.lines if line.get_gid() == PHASE_GID)


def _png_ok(path: Path, fig) -> None:
    save_figure(fig, path)
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert not [f for f in path.parent.iterdir() if f.name.endswith(".tmp")]


# ---------------------------------------------------------------------------------------------
# figures


@pytest.mark.parametrize("bounds, expected", [
    ((150, 700, 1300), 3),
    ((150, 700, None), 2),
    ((None, None, None), 0),
])
def test_progress_figure_panels_and_phase_lines(tmp_path, bounds, expected):
    df = _measures_frame()
    ph = probes.Phases(memorisation_end=bounds[0], circuit_formation_end=bounds[1], cleanup_end=bounds[2])
    fig = progress_figure(df, ph)
    axes = fig.axes
    assert len(axes) == 4
    loss_ax = axes[0]
    assert loss_ax.get_yscale() == "log"
    assert [t.get_text() for t in loss_ax.get_legend().get_texts()] == ["train", "test", "restricted", "excluded"]
    assert all(_phase_lines(ax) == expected for ax in axes)
    assert {"Gini"} <= {ax.get_ylabel() for ax in axes}
    xs = sorted({line.get_xdata()[0] for line in loss_ax.lines if line.get_gid() == PHASE_GID})
    assert xs == sorted(b for b in bounds if b is not None)
    legend_texts = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    assert len(legend_texts) == expected and all("ends: step" in t for t in legend_texts)
    _png_ok(tmp_path / "progress.png", fig)


def test_progress_figure_accepts_mapping_and_no_phases():
    df = _measures_frame().drop(columns=["restricted_loss", "excluded_loss"])  # e.g. no key frequencies
    fig = progress_figure(df, {"memorisation_end": 100, "circuit_formation_end": None, "cleanup_end": None})
    assert _phase_lines(fig.axes[0]) == 1
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["train", "test"]
    assert all(_phase_lines(ax) == 0 for ax in progress_figure(df).axes)
    with pytest.raises(ConfigError, match="step"):
        progress_figure(pd.DataFrame({"x": [1]}))


def test_fourier_norms_figure_cos_sin_order(tmp_path):
    p = 7
    norms = {"W_E": torch.arange(1.0, p + 1), "W_L": torch.ones(p)}
    fig = fourier_norms_figure(norms, p)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == basis_labels(p) == \
        ["const", "cos 1", "sin 1", "cos 2", "sin 2", "cos 3", "sin 3"]
    by_label = {c.get_label(): c for c in ax.containers}
    cos = next(c for name, c in by_label.items() if name.startswith("cos"))
    sin = next(c for name, c in by_label.items() if name.startswith("sin"))
    assert [b.get_x() + b.get_width() / 2 for b in cos] == [1, 3, 5]
    assert [b.get_height() for b in cos] == [2, 4, 6]  # norms[1::2]: the cos rows
    assert [b.get_x() + b.get_width() / 2 for b in sin] == [2, 4, 6]
    assert [b.get_height() for b in sin] == [3, 5, 7]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[1].startswith("cos") and legend[2].startswith("sin")
    _png_ok(tmp_path / "fourier.png", fig)


def test_fourier_norms_figure_large_p_labels_the_peaks():
    p = 53
    v = np.full(p, 0.1)
    v[2 * 5] = 3.0      # sin 5
    v[2 * 17 - 1] = 2.0  # cos 17
    fig = fourier_norms_figure({"W_E": v}, p)
    ax = fig.axes[0]
    assert {t.get_text() for t in ax.texts} == {"sin 5", "cos 17"}
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks[0] == "cos 1" and all(t.startswith("cos ") for t in ticks)
    per_freq = fourier_norms_figure({"W_E": v[1::2]}, p)  # ((p-1)/2,) per-frequency norms
    assert len(per_freq.axes[0].patches) == (p - 1) // 2
    with pytest.raises(ConfigError, match="shape"):
        fourier_norms_figure({"W_E": v[:10]}, p)


def test_neuron_clusters_figure(tmp_path):
    df = pd.DataFrame({"neuron": range(10), "frequency": [3, 3, 3, 5, 5, 7, 7, 7, 7, 2],
                       "frac_explained": [0.9, 0.95, 0.5, 0.99, 0.86, 0.9, 0.91, 0.92, 0.2, 0.3]})
    df["clustered"] = df["frac_explained"] >= 0.85
    fig = neuron_clusters_figure(df)
    sizes_ax, hist_ax = fig.axes[:2]
    assert [t.get_text() for t in sizes_ax.get_xticklabels()] == ["3", "5", "7", "unclustered"]
    assert [b.get_height() for b in sizes_ax.patches] == [2, 2, 3, 3]
    assert hist_ax.lines[0].get_xdata()[0] == 0.85
    _png_ok(tmp_path / "clusters.png", fig)


def test_loss_curves_figure(small_run, tmp_path):
    fig = loss_curves_figure(small_run.metrics)
    assert fig.axes[0].get_yscale() == "log"
    assert len(fig.axes[0].lines) == 2
    _png_ok(tmp_path / "curves.png", fig)


# ---------------------------------------------------------------------------------------------
# attention


def test_script_json_escapes_everything_that_can_break_out():
    value = {"title": "</script><script>alert(1)</script><!-- & \u2028\u2029", "n": [1, 2.5]}
    text = script_json(value)
    for raw in ("<", ">", "&", "\u2028", "\u2029"):
        assert raw not in text
    assert json.loads(text) == value


def test_attention_patterns_are_the_hooked_pattern(tiny_model):
    pairs = [(1, 2), (12, 22)]
    pattern, tokens = attention_patterns(tiny_model, pairs)
    assert pattern.shape == (2, tiny_model.cfg.n_heads, 3, 3)
    assert tokens == [["1", "2", "="], ["12", "22", "="]]
    toks = torch.tensor([[1, 2, 23], [12, 22, 23]])
    _, cache = tiny_model.run_with_cache(toks)
    torch.testing.assert_close(pattern, cache["blocks.0.attn.hook_pattern"])
    torch.testing.assert_close(pattern.sum(-1), torch.ones(2, tiny_model.cfg.n_heads, 3))


def _external_refs(page: str) -> list[str]:
    """Anything a browser would fetch from the network: src/href/url()/import of an http(s) URL."""
    patterns = [r"""\b(?:src|href|action|poster|data)\s*=\s*["']?\s*(?:https?:)?//""",
                r"""url\(\s*["']?\s*(?:https?:)?//""",
                r"""\bimport\s*(?:[^;]*?\bfrom\s*)?["']\s*(?:https?:)?//""",
                r"""@import\s+["']?(?:https?:)?//""",
                r"<script[^>]*\bsrc\s*=", r"<link[^>]*\bhref\s*="]
    return [m.group(0) for pat in patterns for m in re.finditer(pat, page, flags=re.IGNORECASE)]


def _check_page(page: str, n_views: int) -> None:
    assert page.count(BUNDLE_MARKER) == 1
    assert page.count("var CircuitsVis") == 1  # the bundle itself, once
    assert len(re.findall(r"CircuitsVis\.render\(", page)) == n_views
    assert _external_refs(page) == []
    assert "sourceMappingURL" not in page
    assert "Content-Security-Policy" in page
    assert HOSTILE not in page and "<script>alert" not in page


def test_attention_html_one_bundle_offline_and_escaped(tiny_model):
    page = attention_html(tiny_model, [(1, 2), (3, 4), (5, 6)], title=HOSTILE)
    _check_page(page, n_views=3)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("CircuitsVis.AttentionHeads") == 3
    one_head = attention_html(tiny_model, [(1, 2)], head=1)
    _check_page(one_head, n_views=1)
    assert "CircuitsVis.AttentionPattern," in one_head


def test_attention_view_inline_in_a_notebook(tiny_model):
    view = attention(tiny_model, [(0, 0), (22, 22)])
    snippet = view._repr_html_()
    assert snippet.count(BUNDLE_MARKER) == 1 and len(re.findall(r"CircuitsVis\.render\(", snippet)) == 2
    assert _external_refs(snippet) == []
    ids = re.findall(r'<div id="([^"]+)" class="interp-attention"', snippet)
    other = re.findall(r'<div id="([^"]+)" class="interp-attention"', view._repr_html_())
    assert len(ids) == 2 and not set(ids) & set(other)  # two outputs in one notebook never collide
    assert BUNDLE_MARKER not in view.fragment("x")


@pytest.mark.parametrize("pairs, shown", [
    ([(1, 2), (0, 23)], "(0, 23)"),
    ([(23, 0)], "(23, 0)"),
    ([(-1, 5)], "(-1, 5)"),
    ([(1, 2, 3)], "(1, 2, 3)"),
    ([("a", 1)], "('a', 1)"),
    ([(True, 1)], "(True, 1)"),
    ([], "empty"),
])
def test_attention_rejects_bad_pairs(tiny_model, pairs, shown):
    with pytest.raises(ConfigError) as e:
        attention_html(tiny_model, pairs)
    assert shown in str(e.value)
    if pairs and shown not in ("(1, 2, 3)", "('a', 1)", "(True, 1)"):
        assert "[0, 23)" in str(e.value)


def test_attention_rejects_bad_head(tiny_model):
    with pytest.raises(ConfigError, match="head"):
        attention(tiny_model, [(1, 2)], head=tiny_model.cfg.n_heads)


def test_write_attention_page_is_atomic(tiny_model, tmp_path):
    out = write_attention_page(tiny_model, [(1, 2)], tmp_path / "att.html", title="step 0")
    _check_page(out.read_text(), n_views=1)
    assert sorted(f.name for f in tmp_path.iterdir()) == ["att.html"]


# ---------------------------------------------------------------------------------------------
# report


class _Page(HTMLParser):
    """Image sources, table rows (th -> td text) and the text of the page (script contents excluded)."""

    def __init__(self):
        super().__init__()
        self.imgs, self.rows, self.text = [], {}, []
        self._cell, self._th = None, None

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.imgs.append(dict(attrs)["src"])
        if tag in ("th", "td"):
            self._cell = (tag, [])

    def handle_endtag(self, tag):
        if tag in ("th", "td") and self._cell:
            text = "".join(self._cell[1])
            if tag == "th":
                self._th = text
            elif self._th is not None:
                self.rows[self._th] = text
            self._cell = None

    def handle_data(self, data):
        if self._cell:
            self._cell[1].append(data)
        if self.lasttag != "script":
            self.text.append(data)


def _parse(page: str) -> _Page:
    parser = _Page()
    parser.feed(page)
    return parser


def _check_report(index: Path, n_views: int) -> _Page:
    page = index.read_text()
    _check_page(page, n_views=n_views)
    assert "<b onmouseover" not in page
    parsed = _parse(page)
    assert len(parsed.imgs) == 4
    for src in parsed.imgs:
        assert (index.parent / src).read_bytes()[:8] == PNG_MAGIC
    assert not [f for f in index.parent.iterdir() if f.name.endswith(".tmp")]
    assert HOSTILE_DIR in "".join(parsed.text)  # shown, as text
    return parsed


def test_write_report_computes_measures(small_run, tmp_path):
    index = write_report(small_run, tmp_path / "report")
    assert index == tmp_path / "report" / "index.html"
    parsed = _check_report(index, n_views=2)  # the final model on a train pair and a test pair
    keys = probes.key_frequencies(small_run.load(small_run.final_step), small_run.task)
    assert parsed.rows["key frequencies"] == (", ".join(map(str, keys)) or "none found")
    assert parsed.rows["clustered neurons (final model)"].endswith(")")
    assert "unclustered:" in parsed.rows["cluster sizes (neurons per frequency)"]


def test_write_report_with_measures_and_phases(small_run, tmp_path, monkeypatch):
    measures = probes.measure_run(small_run, key_freqs=[4, 11], progress=False)
    df = measures.df
    # The 200-step run has not grokked; fix the boundaries to test one attention view per phase.
    monkeypatch.setattr(probes, "phases", lambda d: probes.Phases(memorisation_end=50, circuit_formation_end=120,
                                                                   cleanup_end=190, grokked=True, rule="test rule"))
    index = write_report(small_run, tmp_path / "report", measures=measures)
    parsed = _check_report(index, n_views=2 * 4)
    rows = parsed.rows
    assert rows["key frequencies"] == "4, 11"
    assert rows["memorisation ends"] == "step 50"
    assert rows["circuit formation ends"] == "step 120 (nearest checkpoint 100)"
    assert rows["cleanup ends"] == "step 190 (nearest checkpoint 200)"
    assert rows["phase rule"] == "test rule"
    last = df.iloc[-1]
    for label, col in (("train loss", "train_loss"), ("test loss", "test_loss"),
                       ("restricted loss", "restricted_loss"), ("excluded loss", "excluded_loss"),
                       ("Gini of W_E Fourier norms", "gini_W_E"), ("Gini of W_L Fourier norms", "gini_W_L")):
        assert float(rows[f"final {label} (step 200)"]) == pytest.approx(last[col], rel=1e-3)
    text = "".join(parsed.text)
    for title in ("End of memorisation: checkpoint 50", "End of circuit formation: checkpoint 100",
                  "End of cleanup: checkpoint 200", "Final model: checkpoint 200"):
        assert title in text
    # Writing again over the same directory replaces the files and leaves nothing else behind.
    write_report(small_run, tmp_path / "report", measures=measures)
    assert sorted(f.name for f in (tmp_path / "report").iterdir()) == [
        "fourier_norms.png", "index.html", "neuron_clusters.png", "progress.png", "training_curves.png"]
