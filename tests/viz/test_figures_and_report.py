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
from interp.errors import ConfigError, FigureError, InterpError
from interp.fourier import basis_labels
from interp.model import build_model
from interp.train import train
from interp.viz import (
    attention,
    attention_patterns,
    fourier_norms_figure,
    loss_curves_figure,
    measures_figure,
    neuron_clusters_figure,
    progress_figure,
    save_figure,
    write_report,
)
from interp.viz import attention as attention_module_function
from interp.viz.attention import BUNDLE_MARKER, AttentionView, script_json
from interp.viz.figures import PHASE_GID
from interp.viz.report import FIGURES

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
    with pytest.raises(FigureError, match="step"):
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
    with pytest.raises(FigureError, match="shape"):
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
    fig = loss_curves_figure(small_run.metrics, {"memorisation_end": 50})
    assert len(fig.axes) == 4
    loss, _, loss_log, acc_log = fig.axes
    assert loss.get_yscale() == "log" and loss.get_xscale() == "linear"
    assert loss_log.get_xscale() == acc_log.get_xscale() == "log"  # memorisation readable
    assert {line.get_gid() for line in loss.lines} >= {"train_loss", "test_loss"}
    assert min(loss_log.lines[0].get_xdata()) >= 1  # step 0 cannot sit on a log axis
    assert [t.get_text() for t in loss.texts if t.get_gid() == "phase-label"] == ["memorisation"]
    assert len(loss_curves_figure(small_run.metrics, log_steps=False).axes) == 2
    _png_ok(tmp_path / "curves.png", fig)


def _drawn_columns(fig) -> set[str]:
    return {line.get_gid() for ax in fig.axes for line in ax.lines if line.get_gid()} - {PHASE_GID}


def test_every_measure_of_the_shipped_run_is_drawn():
    """Each column the probes compute appears as a line in the progress or the more-measures figure."""
    shipped = Path(__file__).resolve().parents[2] / "probes" / "nanda2023-p113-seed0"
    df = probes.load_measures(shipped).df
    drawn = _drawn_columns(progress_figure(df)) | _drawn_columns(measures_figure(df))
    if "llc" in df.columns:  # the LLC and its health checks: their own figure
        from interp.viz.figures import llc_figure

        drawn |= _drawn_columns(llc_figure(df)) | {"llc_std", "llc_frac_negative", "llc_chain_spread"}
        assert "llc" in drawn
    assert set(df.columns) - {"step"} <= drawn, set(df.columns) - {"step"} - drawn
    per_k = [c for c in df.columns if c.startswith("excluded_loss_k")]
    assert len(per_k) == 3 and set(per_k) <= drawn  # key frequencies 1, 21, 49


def test_measures_figure_draws_new_columns_when_present():
    df = _measures_frame().assign(excluded_loss_k3=1.0, excluded_loss_k7=2.0, frac_neurons_clustered=0.5,
                                  test_prob_correct=0.9, test_brier=0.1)
    fig = measures_figure(df, {"memorisation_end": 100})
    assert len(fig.axes) == 6
    assert {"excluded_loss_k3", "excluded_loss_k7", "test_prob_correct", "test_brier"} <= _drawn_columns(fig)
    assert len(measures_figure(_measures_frame()).axes) == 4


@pytest.mark.parametrize("call", [
    lambda: progress_figure(pd.DataFrame({"x": [1]})),
    lambda: measures_figure([1, 2, 3]),
    lambda: loss_curves_figure(pd.DataFrame({"step": [0]})),
    lambda: neuron_clusters_figure(pd.DataFrame({"frequency": [1]})),
    lambda: fourier_norms_figure({}, 7),
])
def test_bad_data_for_a_figure_is_a_figure_error(call):
    with pytest.raises(FigureError) as e:
        call()
    assert not isinstance(e.value, ConfigError) and isinstance(e.value, (InterpError, ValueError))


def test_fourier_norms_figure_marks_key_frequencies():
    p = 13
    v = np.full(p, 0.1)
    v[2 * 2 - 1], v[2 * 5] = 3.0, 2.5  # cos 2 (key), sin 5 (not key)
    ax = fourier_norms_figure({"W_E": v}, p, key_frequencies=[2]).axes[0]
    assert {t.get_text() for t in ax.texts} == {"cos 2", "sin 5 (not key)"}
    spans = [pt for pt in ax.patches if pt.get_label() == "key frequency"]
    assert len(spans) == 1
    xs = spans[0].get_x(), spans[0].get_x() + spans[0].get_width()
    assert xs[0] < 3 < 4 < xs[1]  # the cos 2 and sin 2 bars (indices 3, 4) are inside the shading
    assert "key frequency" in [t.get_text() for t in ax.get_legend().get_texts()]


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


def test_one_attention_api():
    import interp.viz as viz
    import interp.viz.attention as module

    for gone in ("attention_html", "write_attention_page"):
        assert not hasattr(viz, gone) and not hasattr(module, gone)
    assert not hasattr(AttentionView, "to_html")
    assert attention_module_function.reset_bundle is module.reset_bundle


def test_saved_attention_page_is_one_offline_escaped_view(tiny_model, tmp_path):
    view = attention(tiny_model, [(1, 2), (3, 4), (5, 6)], title=HOSTILE)
    out = view.save(tmp_path / "att.html")
    assert sorted(f.name for f in tmp_path.iterdir()) == ["att.html"]  # atomic: nothing else left behind
    page = out.read_text()
    _check_page(page, n_views=1)  # three inputs, one circuitsvis view
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("CircuitsVis.AttentionHeads") == 1
    assert "table.numbers" in page  # the report's stylesheet
    one_head = attention(tiny_model, [(1, 2)], head=1).save(tmp_path / "head1.html").read_text()
    _check_page(one_head, n_views=1)
    assert "CircuitsVis.AttentionPattern," in one_head


def test_attention_view_block_pattern_holds_each_input_on_the_diagonal(tiny_model):
    pairs = [(1, 2), (12, 22)]
    view = attention(tiny_model, pairs)
    block = np.array(view.block_pattern())
    assert block.shape == (tiny_model.cfg.n_heads, 6, 6)
    pattern, _ = attention_patterns(tiny_model, pairs)
    for i in range(2):
        np.testing.assert_allclose(block[:, 3 * i:3 * i + 3, 3 * i:3 * i + 3], pattern[i].numpy(), rtol=1e-3, atol=1e-6)
    assert (block[:, 3:, :3] == 0).all() and (block[:, :3, 3:] == 0).all()  # nothing crosses between inputs


def test_attention_view_in_a_notebook_sends_the_bundle_once_per_kernel(tiny_model):
    view = attention(tiny_model, [(0, 0), (22, 22)], step=100)
    attention_module_function.reset_bundle()
    first, second = view._repr_html_(), attention(tiny_model, [(1, 1)])._repr_html_()
    assert first.count(BUNDLE_MARKER) == 1 and BUNDLE_MARKER not in second
    assert len(second) < 20_000 < 1_000_000 < len(first)
    assert _external_refs(first) == []
    ids = [re.findall(r'<div id="([^"]+)" class="interp-attention"', s) for s in (first, second)]
    assert len(ids[0]) == len(ids[1]) == 1 and ids[0] != ids[1]  # two outputs in one notebook never collide
    assert "window.CircuitsVis" in second  # a fragment without the bundle says so instead of throwing
    attention_module_function.reset_bundle()  # e.g. after clearing outputs and reloading the page
    assert view._repr_html_().count(BUNDLE_MARKER) == 1
    assert BUNDLE_MARKER not in view.fragment("x")


def test_attention_view_text_repr_is_one_line(tiny_model):
    view = attention(tiny_model, [(0, 0), (1, 2), (3, 4), (5, 6)], step=1200)
    assert repr(view) == "AttentionView(4 inputs, 2 heads, layer 0, step 1200)"
    one = attention(tiny_model, [(0, 0)], head=1, title="t")
    assert repr(one) == "AttentionView(1 input, head 1 of 2, layer 0, 't')"


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
        attention(tiny_model, pairs)
    assert shown in str(e.value)
    if pairs and shown not in ("(1, 2, 3)", "('a', 1)", "(True, 1)"):
        assert "[0, 23)" in str(e.value)


def test_attention_rejects_bad_head(tiny_model):
    with pytest.raises(ConfigError, match="head"):
        attention(tiny_model, [(1, 2)], head=tiny_model.cfg.n_heads)


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


def _check_report(index: Path, n_views: int = 1) -> _Page:
    page = index.read_text()
    _check_page(page, n_views=n_views)
    assert "<b onmouseover" not in page
    parsed = _parse(page)
    assert sorted(parsed.imgs) == sorted(FIGURES.values())
    for src in parsed.imgs:
        assert (index.parent / src).read_bytes()[:8] == PNG_MAGIC
    assert not [f for f in index.parent.iterdir() if f.name.endswith(".tmp")]
    assert HOSTILE_DIR in "".join(parsed.text)  # shown, as text
    assert page.count('<section style="--phase') == 4  # the story: three phases and the final model
    return parsed


def test_write_report_computes_measures(small_run, tmp_path):
    index = write_report(small_run, tmp_path / "report")
    assert index == tmp_path / "report" / "index.html"
    parsed = _check_report(index)
    keys = probes.key_frequencies(small_run.load(small_run.final_step), small_run.task)
    assert parsed.rows["key frequencies"] == (", ".join(map(str, keys)) or "none found")
    assert parsed.rows["clustered neurons (final model)"].endswith(")")
    assert "unclustered:" in parsed.rows["cluster sizes (neurons per frequency)"]
    m = small_run.metrics.dropna()
    peak = m.loc[m["test_loss"].idxmax()]
    assert parsed.rows["test-loss peak"].endswith(f"at step {int(peak['step'])}")
    hit = m[m["test_acc"] >= 0.99]
    assert parsed.rows["test accuracy reaches 0.99"] == (f"step {int(hit['step'].iloc[0])}" if len(hit) else "never")
    text = "".join(parsed.text)
    assert "computed now with probes.measure_run" in text
    assert 'id="unfinished"' not in index.read_text()
    from interp.probes import clock_pizza  # an addition run: the clock / pizza diagnostics of its final model

    cp = clock_pizza.clock_or_pizza(small_run.load(small_run.final_step), small_run.task)
    assert parsed.rows["clock or pizza (final model)"] == f"{cp.verdict}: {cp.reason}"
    gs = float(parsed.rows["gradient symmetricity (final model)"])
    assert gs == pytest.approx(cp.gradient_symmetricity, rel=1e-3)
    assert "key irreps" not in parsed.rows  # irrep rows are for group tasks


def test_write_report_with_measures_and_phases(small_run, tmp_path, monkeypatch):
    measures = probes.measure_run(small_run, key_freqs=[4, 11], progress=False)
    probes.save_measures(measures, tmp_path / "probes" / "x")
    measures = probes.load_measures(tmp_path / "probes" / "x")
    df = measures.df
    # The 200-step run has not grokked; fix the boundaries to test one attention-grid row per phase.
    monkeypatch.setattr(probes, "phases", lambda d: probes.Phases(memorisation_end=50, circuit_formation_end=120,
                                                                   cleanup_end=190, grokked=True, rule="test rule"))
    index = write_report(small_run, tmp_path / "report", measures=measures)
    parsed = _check_report(index)
    rows = parsed.rows
    assert rows["key frequencies"] == "4, 11"
    assert rows["memorisation ends"] == "step 50"
    assert rows["circuit formation ends"] == "step 120 (nearest checkpoint 100)"
    assert rows["cleanup ends"] == "step 190 (nearest checkpoint 200)"
    assert "phase rule" not in rows  # it lives in the protocol section
    text = "".join(parsed.text)
    assert "Phase rule. test rule" in text.replace("\n", " ")
    assert "probes/x/measures.csv" in text and str(tmp_path) not in text  # no absolute path of this machine
    last = df.iloc[-1]
    for label, col in (("train loss", "train_loss"), ("test loss", "test_loss"),
                       ("restricted loss", "restricted_loss"), ("excluded loss", "excluded_loss"),
                       ("Gini of W_E Fourier norms", "gini_W_E"), ("Gini of W_L Fourier norms", "gini_W_L")):
        assert float(rows[f"final {label} (step 200)"]) == pytest.approx(last[col], rel=1e-3)
    for row in ("step 50: end of memorisation", "step 100: end of circuit formation",
                "step 200: final (end of cleanup)"):
        assert row in text
    # Writing again over the same directory replaces the files and leaves nothing else behind.
    write_report(small_run, tmp_path / "report", measures=measures)
    assert sorted(f.name for f in (tmp_path / "report").iterdir()) == sorted([*FIGURES.values(), "index.html"])


def test_report_draws_the_llc_curve_only_when_the_column_is_present(small_run, tmp_path):
    from interp.viz.figures import llc_figure
    from interp.viz.report import OPTIONAL_FIGURES

    measures = probes.measure_run(small_run, key_freqs=[4, 11], progress=False)
    n = len(measures.df)
    measures.df = measures.df.assign(llc=[float(i) for i in range(n)], llc_std=0.5)
    fig = llc_figure(measures.df)
    line = next(ln for ax in fig.axes for ln in ax.get_lines() if ln.get_gid() == "llc")
    assert list(line.get_ydata()) == list(range(n))  # the column itself, nothing else
    # checkpoints that fail a health check (here: step 0's estimate is 0, and one spread above the limit) are marked
    spread = [0.0] * n
    spread[-1] = 0.5
    fig = llc_figure(measures.df.assign(llc_frac_negative=0.0, llc_chain_spread=spread))
    bad = next(ln for ax in fig.axes for ln in ax.get_lines() if ln.get_gid() == "llc_unhealthy")
    assert list(bad.get_xdata()) == [measures.df.step.iloc[0], measures.df.step.iloc[-1]]
    assert "2 of" in bad.get_label()
    out = tmp_path / "report"
    page = write_report(small_run, out, measures=measures).read_text()
    assert (out / OPTIONAL_FIGURES["llc"]).is_file() and 'src="llc.png"' in page
    measures.df = measures.df.drop(columns=["llc", "llc_std"])
    page = write_report(small_run, out, measures=measures).read_text()
    assert not (out / OPTIONAL_FIGURES["llc"]).exists() and "llc.png" not in page
    with pytest.raises(FigureError, match="llc"):
        llc_figure(measures.df)


class _Unfinished:
    """A run that says it is still training (what Run.finished / Run.state report)."""

    def __init__(self, run):
        self._run = run
        self.finished, self.state = False, "training"

    def snapshot(self):  # the report snapshots its run once: the snapshot of this stand-in is itself
        return self

    def __getattr__(self, name):
        return getattr(self._run, name)


def test_report_banner_when_the_run_or_its_measures_are_unfinished(small_run, tmp_path):
    measures = probes.measure_run(small_run, key_freqs=[4, 11], progress=False)
    page = write_report(_Unfinished(small_run), tmp_path / "a", measures=measures).read_text()
    banner = re.search(r'<div class="banner" id="unfinished"[^>]*>([^<]*)</div>', page)
    assert banner and "unfinished (state: training)" in banner.group(1) and "step 200" in banner.group(1)
    assert page.index('id="unfinished"') < page.index("<h2>")  # at the top
    # measures taken before the run finished say so, and the page uses the same check
    from dataclasses import replace

    from interp.viz.report import _measures_table, _unfinished

    early = replace(measures, run={**measures.run, "finished": False})
    _, _, finished, _ = _measures_table(early)
    assert finished is False and "measured before the run finished" in _unfinished(small_run, finished)
    assert _measures_table(measures)[2] is True
    assert _unfinished(small_run, True) is None
    stopped = _Unfinished(small_run)
    stopped.finished, stopped.state = True, "stopped_early"  # stopped by its own rule: finished, no banner
    assert _unfinished(stopped, True) is None
    with pytest.raises(ConfigError, match="must be a probes.Measures"):
        _measures_table(measures.df)


def test_story_is_computed_from_the_numbers():
    from interp.viz.story import curve_landmarks, story

    df = _measures_frame()
    ph = probes.Phases(memorisation_end=150, circuit_formation_end=700, cleanup_end=1300, grokked=True)

    class Cfg:
        p, frac_train, op = 113, 0.3, "add"

    class NF:
        clustered = np.array([True, True, False, False])
        def cluster_sizes(self):
            return {3: 2}

    parts = story(df, df, ph, [3], NF(), Cfg())
    assert [p.name for p in parts] == ["Memorisation", "Circuit formation", "Cleanup", "Final model"]
    mem, cf, _cleanup, fin = parts
    # the synthetic excluded loss grows from the start, so it did not fall with the train loss
    assert any("did not fall with the train loss" in d for d in mem.differs)
    assert any("0.11x the paper's 1,400" in d for d in mem.differs)  # step 150 against 1.4k
    assert "Excluded loss" in cf.observed[0] and "decades" in cf.observed[0]
    assert any("1 key frequencies rather than the paper's 5" in d for d in fin.differs)
    assert any("50 % of neurons clustered" in d for d in fin.differs)
    land = curve_landmarks(df)
    peak = df.loc[df["test_loss"].idxmax()]
    assert land["test_loss_peak_step"] == int(peak["step"])
    assert land["test_loss_peak"] == pytest.approx(peak["test_loss"])
    assert land["test_acc_099_step"] == int(df[df["test_acc"] >= 0.99]["step"].iloc[0])
    not_grokked = story(df, df, probes.Phases(None, None, None), [3], NF(), Cfg())
    assert "not found" in not_grokked[1].span and not_grokked[1].differs


def test_survival_legend_sits_beside_the_curves():
    """Runs that never reach the event keep their Kaplan-Meier curve at 1 up to the budget, in the top right corner
    where a legend inside the axes used to sit: the legend is drawn outside the axes, over no data."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from interp.viz.emergence_figures import survival_figure

    curves = pd.DataFrame({"group": [0.3] * 3 + [0.5] * 4, "step": [0, 2000, 6000, 0, 800, 1200, 6000],
                           "survival": [1.0, 1.0, 1.0, 1.0, 0.5, 0.0, 0.0]})  # 0.3: censored, flat at the top
    fig = survival_figure(curves, "t90", "frac_train")
    FigureCanvasAgg(fig).draw()
    ax = fig.axes[0]
    legend, axes_box = ax.get_legend().get_window_extent(), ax.get_window_extent()
    assert legend.x0 >= axes_box.x1  # entirely to the right of the plotting area
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["frac_train = 0.3", "frac_train = 0.5"]


def test_report_of_a_group_run_shows_its_key_irreps(tmp_path):
    """S3 composition: the Fourier measures are not applicable (non-abelian), the key irreps and the final irrep
    measures are in the key-number table, equal to the measures table; no clock / pizza rows."""
    run = train(preset("tiny").replace(op="S3", frac_train=0.7, n_steps=40, save_every=20), tmp_path / "s3",
                progress=False)
    m = probes.measure_run(run, progress=False)
    parsed = _parse(write_report(run, tmp_path / "report", measures=m).read_text())
    rows, last = parsed.rows, m.df.iloc[-1]
    assert rows["key irreps"] == (", ".join(m.key_irreps) or "none found")
    assert rows["key frequencies"] == "not applicable"
    assert float(rows["final irrep excluded loss (training pairs) (step 40)"]) == pytest.approx(
        last["irrep_excluded_loss"], rel=1e-3)
    assert float(rows["final Gini of W_E irrep norms (step 40)"]) == pytest.approx(last["gini_irrep_W_E"], rel=1e-3)
    assert not any(r.startswith("clock or pizza") for r in rows)
    assert "not abelian" in "".join(parsed.text)
    assert "irreps.png" in parsed.imgs and (tmp_path / "report" / "irreps.png").stat().st_size > 1000
