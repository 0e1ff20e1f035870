"""The HTML report of a run: progress measures, phases, Fourier spectra, neuron clusters, attention.

``write_report(run, out_dir)`` writes ``index.html`` and its PNG figures into ``out_dir``. The page
loads nothing from the network (a Content-Security-Policy forbids it; the circuitsvis bundle is
inlined once), escapes every string it shows (run names are directory names, and can be anything),
and every file is written atomically, ``index.html`` last, so a killed run never leaves a page that
points at missing or half-written figures.

>>> index = write_report(Run("checkpoints/nanda2023-p113-seed0"), "report",
...                      measures=probes.load_measures("probes/nanda2023-p113-seed0"))  # doctest: +SKIP
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from .. import probes
from ..errors import ConfigError
from ..files import atomic_write_text, prepare_out_dir
from .attention import AttentionView, attention, html_page
from .figures import PHASE_NAMES, fourier_norms_figure, loss_curves_figure, neuron_clusters_figure, progress_figure
from .figures import save_figure

__all__ = ["write_report", "report_pairs", "phase_checkpoints"]

FIGURES = {
    "progress": "progress.png",
    "curves": "training_curves.png",
    "fourier": "fourier_norms.png",
    "clusters": "neuron_clusters.png",
}

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1150px; margin: 1.5em auto;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table.numbers { border-collapse: collapse; margin: 0.8em 0; }
table.numbers th, table.numbers td { border: 1px solid #ddd; padding: 0.25em 0.7em; text-align: left;
       vertical-align: top; }
table.numbers th { background: #f5f5f5; font-weight: 600; white-space: nowrap; }
img.figure { max-width: 100%; height: auto; border: 1px solid #eee; }
.note { color: #555; font-size: 0.92em; }
.interp-attention-group { border-top: 1px dashed #ccc; margin-top: 1.2em; }
pre { background: #f7f7f7; padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
"""

# Records on <body> whether every figure really loaded (read by tests in a headless browser).
_IMAGE_CHECK = """<script>
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute("data-images-loaded", ok + "/" + imgs.length);
});
</script>"""


# ---------------------------------------------------------------------------------------------
# choices the report makes (computations, kept apart from the page)


def report_pairs(task) -> list[tuple[tuple[int, int], str]]:
    """The inputs whose attention the report shows: the middle training pair and the middle test pair."""
    out = []
    for split, idx in (("train pair", task.train_idx), ("test pair", task.test_idx)):
        i = int(idx[len(idx) // 2])
        out.append(((i // task.p, i % task.p), split))
    return out


def phase_checkpoints(steps: Sequence[int], phases: Any) -> list[tuple[str, int, int]]:
    """``(phase name, boundary step, nearest checkpoint step)`` for each boundary found."""
    out = []
    for attr, name, _ in PHASE_NAMES:
        boundary = getattr(phases, attr, None)
        if boundary is None or not steps:
            continue
        nearest = min(steps, key=lambda s: (abs(s - boundary), s))
        out.append((name, int(boundary), int(nearest)))
    return out


@dataclass
class _Summary:
    key_frequencies: list[int]
    rows: list[tuple[str, str]]


def _fmt(x: Any) -> str:
    if x is None:
        return "n/a"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(v):
        return "n/a"
    if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e4):
        return f"{v:.3e}"
    return f"{v:.4g}"


def _summary(run, df, phases, key_freqs: list[int], clusters, bounds) -> _Summary:
    last = df.loc[df["step"].idxmax()]
    at = f" (step {int(last['step'])})"
    clustered = clusters[clusters["clustered"].astype(bool)]
    sizes = clustered.groupby("frequency").size().sort_index()
    size_text = ", ".join(f"k={int(k)}: {int(n)}" for k, n in sizes.items())
    size_text += (", " if size_text else "") + f"unclustered: {len(clusters) - len(clustered)}"
    rows = [("key frequencies", ", ".join(str(k) for k in key_freqs) or "none found")]
    found = {name: (b, c) for name, b, c in bounds}
    for _, name, _ in PHASE_NAMES:
        if name in found:
            b, c = found[name]
            rows.append((f"{name} ends", f"step {b}" + (f" (nearest checkpoint {c})" if c != b else "")))
        else:
            rows.append((f"{name} ends", "not found"))
    notes = getattr(phases, "notes", ())
    if notes:
        rows.append(("phase notes", "; ".join(str(n) for n in notes)))
    rule = getattr(phases, "rule", None)
    if rule:
        rows.append(("phase rule", str(rule)))
    for col, label in (("train_loss", "train loss"), ("test_loss", "test loss"),
                       ("restricted_loss", "restricted loss"), ("excluded_loss", "excluded loss"),
                       ("train_acc", "train accuracy"), ("test_acc", "test accuracy"),
                       ("gini_W_E", "Gini of W_E Fourier norms"), ("gini_W_L", "Gini of W_L Fourier norms"),
                       ("sum_sq_weights", "sum of squared weights")):
        if col in df.columns:
            rows.append((f"final {label}{at}", _fmt(last[col])))
    frac = len(clustered) / len(clusters) if len(clusters) else float("nan")
    rows.append(("clustered neurons (final model)", f"{len(clustered)} of {len(clusters)} ({_fmt(frac)})"))
    rows.append(("cluster sizes (neurons per frequency)", size_text))
    return _Summary(key_freqs, rows)


# ---------------------------------------------------------------------------------------------
# the page


def _table(rows: list[tuple[str, str]], css_class: str = "numbers", row_id: str | None = None) -> str:
    body = "\n".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    ident = f' id="{row_id}"' if row_id else ""
    return f'<table class="{css_class}"{ident}>\n{body}\n</table>'


def _figure(name: str, alt: str, caption: str) -> str:
    return (f'<figure><img class="figure" src="{html.escape(FIGURES[name])}" alt="{html.escape(alt)}">'
            f'<figcaption class="note">{html.escape(caption)}</figcaption></figure>')


def _page(run, summary: _Summary, views: list[AttentionView], pairs_text: str, measured: str,
          protocol: Any) -> str:
    cfg = run.config
    title = f"interp report: {run.name}"
    config_rows = [(k, json.dumps(v) if isinstance(v, (list, tuple, dict)) else str(v))
                   for k, v in cfg.to_dict().items()]
    config_rows.insert(0, ("run directory", str(run.path)))
    config_rows.insert(1, ("checkpoints", f"{len(run.steps)} (steps {run.steps[0]} to {run.steps[-1]})"))
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="note">{html.escape(f"{cfg.op} mod {cfg.p}, config {cfg.name!r}; measures {measured}.")}</p>',
        "<h2>Key numbers</h2>",
        _table(summary.rows, row_id="key-numbers"),
        "<h2>Progress measures and phases</h2>",
        _figure("progress", "progress measures over training with phase boundaries",
                "Restricted loss keeps only the key frequencies of the logits; excluded loss removes them "
                "(on the training pairs). Dashed lines: phase boundaries."),
        _figure("curves", "train and test loss at every step",
                "Train and test loss from metrics.csv (every step; test every eval_every steps)."),
        "<h2>Fourier spectra of the final model</h2>",
        _figure("fourier", "Fourier-component norms of W_E and W_L",
                "Norms of the Fourier components, cos-first order: const, cos 1, sin 1, cos 2, sin 2, ..."),
        "<h2>Neuron clusters of the final model</h2>",
        _figure("clusters", "neurons per frequency cluster and variance explained",
                "Each MLP neuron's best frequency and the share of its variance that frequency explains."),
        "<h2>Attention patterns</h2>",
        f'<p class="note">{html.escape(pairs_text)} Hover a head to view it, click to lock.</p>',
    ]
    parts += [v.fragment(f"att{i}") for i, v in enumerate(views)]
    parts += ["<h2>Run configuration</h2>", _table(config_rows)]
    if protocol:
        parts += ["<details><summary>Measurement protocol</summary>",
                  f"<pre>{html.escape(json.dumps(protocol, indent=2, default=str))}</pre></details>"]
    parts.append(_IMAGE_CHECK)
    return html_page(title, "\n".join(parts), head=f"<style>{_CSS}</style>\n")


def write_report(run, out_dir: Path | str, measures=None, progress: bool = False) -> Path:
    """Write ``out_dir/index.html`` and its figures for ``run``; returns the path of index.html.

    measures: the run's :class:`interp.probes.Measures` (``probes.find_measures(run)``); computed with
    ``probes.measure_run(run)`` when None. progress: show progress while measuring.
    """
    out = Path(out_dir)
    prepare_out_dir(out, "report output")
    final_step = run.final_step
    if measures is None:
        measures, measured = probes.measure_run(run, progress=progress), "computed now with probes.measure_run"
    else:
        measured = "read from a measures table"
    df = measures.df
    if "step" not in df.columns or len(df) == 0:
        raise ConfigError("write_report: the measures table is empty or has no 'step' column")
    phases = probes.phases(df)
    final = run.load(final_step)
    task = run.task
    key_freqs = list(measures.key_frequencies)
    norms = probes.fourier_norms(final)
    clusters = probes.neuron_clusters(final, task)
    bounds = phase_checkpoints(run.steps, phases)

    figures = {
        "progress": progress_figure(df, phases),
        "curves": loss_curves_figure(run.metrics, phases),
        "fourier": fourier_norms_figure(norms, run.config.p),
        "clusters": neuron_clusters_figure(clusters),
    }
    for name, fig in figures.items():
        save_figure(fig, out / FIGURES[name])

    labelled = report_pairs(task)
    pairs = [pr for pr, _ in labelled]
    captions = [c for _, c in labelled]
    views = []
    for name, boundary, step in bounds:
        views.append(attention(run.load(step), pairs, pair_captions=captions,
                               title=f"End of {name}: checkpoint {step} (boundary at step {boundary})"))
    views.append(attention(final, pairs, pair_captions=captions, title=f"Final model: checkpoint {final_step}"))
    pairs_text = ("Layer-0 attention on the inputs [a, b, =] for " +
                  " and ".join(f"({a}, {b}), a {c}" for (a, b), c in labelled) +
                  ", at the checkpoint nearest each phase boundary found and at the final checkpoint.")

    summary = _summary(run, df, phases, key_freqs, clusters, bounds)
    page = _page(run, summary, views, pairs_text, measured, measures.protocol)
    index = out / "index.html"
    atomic_write_text(index, page)  # last: the page only ever points at figures already in place
    return index
