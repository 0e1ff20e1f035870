"""The HTML report of a run: the story of its phases, the progress measures, and the mechanism
(spectra over training, neurons and attention over the (a, b) grid, token-level attention).

``write_report(run, out_dir)`` writes ``index.html`` and its PNG figures into ``out_dir``. The page
loads nothing from the network (a Content-Security-Policy forbids it; the circuitsvis bundle is
inlined once), escapes every string it shows (run names are directory names, and can be anything),
and every file is written atomically, ``index.html`` last, so a killed run never leaves a page that
points at missing or half-written figures.

>>> index = write_report(Run("checkpoints/nanda2023-p113-seed0"), "/tmp/report",
...                      measures=probes.load_measures("probes/nanda2023-p113-seed0"))  # doctest: +SKIP
"""

from __future__ import annotations

import html
import json
import math
import os
from pathlib import Path
from typing import Any, Sequence

from .. import probes
from ..config import describe_op
from ..errors import ConfigError, ProbeError
from ..folder import CheckpointFolder
from ..probes._common import has_mlp
from ..files import atomic_write_text, prepare_out_dir
from ..killpoints import kill_point
from ..threads import uses_threads
from . import mechanism
from .attention import AttentionView, attention
from .figures import (
    PHASE_NAMES,
    fourier_norms_figure,
    llc_figure,
    loss_curves_figure,
    measures_figure,
    neuron_clusters_figure,
    progress_figure,
    save_figure,
)
from .mechanism_figures import (
    attention_grid_figure,
    neuron_frequency_figure,
    neuron_grids_figure,
    spectra_over_time_figure,
)
from .page import IMAGE_CHECK, html_page
from .story import StoryPart, curve_landmarks, fmt, story

__all__ = ["write_report", "report_pairs", "phase_checkpoints", "FIGURES", "OPTIONAL_FIGURES"]

FIGURES = {
    "progress": "progress.png",
    "curves": "training_curves.png",
    "measures": "more_measures.png",
    "spectra_time": "spectra_over_time.png",
    "fourier": "fourier_norms.png",
    "neuron_freqs": "neuron_frequencies.png",
    "neuron_grids": "neuron_grids.png",
    "clusters": "neuron_clusters.png",
    "attention_grid": "attention_grid.png",
}
# drawn only when the measures have the column (the opt-in `llc`, `interp measure --llc`)
OPTIONAL_FIGURES = {"llc": "llc.png", "irreps": "irreps.png"}
_FILES = {**FIGURES, **OPTIONAL_FIGURES}


# ---------------------------------------------------------------------------------------------
# choices the report makes (computations, kept apart from the page)


def _measures_table(measures) -> tuple[Any, list[int], bool, Any]:
    """``(DataFrame, key frequencies, run finished, protocol)`` of a :class:`interp.probes.Measures`."""
    if not isinstance(measures, probes.Measures):
        raise ConfigError(f"write_report: measures must be a probes.Measures (probes.measure_run or "
                          f"probes.load_measures), got {type(measures).__name__}")
    df = measures.df
    if "step" not in df.columns or len(df) == 0:
        raise ConfigError("write_report: the measures table is empty or has no 'step' column")
    return df, list(measures.key_frequencies), measures.run_finished, measures.protocol


def report_pairs(task, n: int = 2) -> list[tuple[tuple[int, int], str]]:
    """The inputs whose token-level attention the report shows: ``n`` training pairs and ``n`` test pairs,
    spread through each split."""
    out = []
    for split, idx in (("train pair", task.train_idx), ("test pair", task.test_idx)):
        for j in range(n):
            i = int(idx[(len(idx) * (2 * j + 1)) // (2 * n)])
            a, b = task.pairs()[i].tolist()
            out.append(((a, b), split))
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


def _clusters_frame(nf):
    """``probes.neuron_clusters``-shaped DataFrame from a NeuronFrequencies (no second forward)."""
    import pandas as pd

    df = pd.DataFrame({"neuron": range(len(nf.frac)), "frequency": nf.frequency.astype("int64"),
                       "frac_explained": nf.frac, "clustered": nf.clustered})
    df.attrs["threshold"] = nf.threshold
    return df


def _unfinished(run, finished_by_measures: bool) -> str | None:
    """The banner text when the run (or its measures) say it is not finished, else None."""
    state = getattr(run, "state", "complete")
    if getattr(run, "finished", True) is not False and finished_by_measures:
        return None
    n_steps = getattr(getattr(run, "config", None), "n_steps", None)
    where = f"its last checkpoint is step {run.final_step:,}" + (f" of {n_steps:,} planned" if n_steps else "")
    state_text = f" (state: {state})" if state not in (None, "complete") else ""
    by = "" if finished_by_measures else " The measures table records that it was measured before the run finished."
    return (f"This run is unfinished{state_text}: {where}. Phases, numbers and the story below describe only what has "
            f"happened so far, and may change when it finishes.{by}")


def _shown_path(path: Path, run_path: Path) -> str:
    """``path`` as the page shows it: relative to the folder that holds both it and the run (for the shipped run,
    ``probes/nanda2023-p113-seed0/measures.csv``), never the absolute path of this machine."""
    path, run_path = Path(path).resolve(), Path(run_path).resolve()
    try:
        base = Path(os.path.commonpath([path, run_path]))
    except ValueError:
        return path.name
    if base == run_path:  # measures inside the run directory (a sweep's runs): name the run too
        base = run_path.parent
    return path.relative_to(base).as_posix()


def _phase_notes(notes, land, metrics) -> list[str]:
    """The phase rule's notes, with the grokking note restated from the per-step test-loss peak (metrics.csv,
    the one the story and the key numbers quote) rather than from the highest checkpoint."""
    out = []
    final = metrics["test_loss"].dropna() if metrics is not None and "test_loss" in metrics else None
    for note in map(str, notes):
        if note.startswith("grokked:") and land["test_loss_peak"] and final is not None and len(final) \
                and final.iloc[-1] > 0:
            peak, end = land["test_loss_peak"], float(final.iloc[-1])
            note = (f"grokked: test loss fell {math.log10(peak / end):.1f} decades, from its peak {fmt(peak)} at "
                    f"step {land['test_loss_peak_step']} to {fmt(end)}")
        out.append(note)
    return out


def _measures_caption(df, source: str, na: dict[str, str] | None = None) -> str:
    """What the measures figure draws, from the columns it has (every drawn measure is named)."""
    na = na or {}
    drawn = [text for col, text in (
        ("excluded_loss", "excluded loss with one key frequency removed at a time (training pairs)"),
        ("frac_neurons_clustered", "the fraction of neurons clustered (by any frequency and by a key frequency)"),
        ("cos_explained", "the share of the logits explained by the key cos(w(a+b-c)) terms (all pairs)"),
        ("test_over_restricted", "test loss / restricted loss")) if col not in na]
    if {"train_prob_correct", "test_prob_correct"} & set(df.columns):
        drawn.append("the mean probability of the correct class, p(correct), on train and test pairs")
    if {"train_brier", "test_brier"} & set(df.columns):
        drawn.append("the Brier score on train and test pairs")
    gone = [c for c in ("excluded_loss", "frac_neurons_clustered", "cos_explained", "test_over_restricted")
            if c in na]
    tail = f" Panels marked not applicable: {', '.join(gone)}." if gone else ""
    if not drawn:
        return f"The other measures of the same table ({source}): none applies to this run.{tail}"
    listed = drawn[0] if len(drawn) == 1 else ", ".join(drawn[:-1]) + f", and {drawn[-1]}"
    return f"The other measures of the same table ({source}): {listed}.{tail}"


def _key_rows(df, metrics, phases, key_freqs, nf, bounds, land, circuit_na: str | None = None
              ) -> list[tuple[str, str]]:
    last = df.loc[df["step"].idxmax()]
    at = f" (step {int(last['step'])})"
    rows = [("key frequencies", "not applicable" if circuit_na and not key_freqs else
             ", ".join(str(k) for k in key_freqs) or "none found")]
    found = {name: (b, c) for name, b, c in bounds}
    for _, name, _ in PHASE_NAMES:
        if name in found:
            b, c = found[name]
            rows.append((f"{name} ends", f"step {b}" + (f" (nearest checkpoint {c})" if c != b else "")))
        else:
            rows.append((f"{name} ends", "not found"))
    notes = getattr(phases, "notes", ())
    if notes:
        rows.append(("phase notes", "; ".join(_phase_notes(notes, land, metrics))))
    where = "" if metrics is not None else " (at the checkpoints)"
    if land["test_loss_peak"] is not None:
        rows.append((f"test-loss peak{where}", f"{fmt(land['test_loss_peak'])} at step {land['test_loss_peak_step']}"))
    rows.append((f"test accuracy reaches 0.99{where}", f"step {land['test_acc_099_step']}"
                 if land["test_acc_099_step"] is not None else "never"))
    for col, label in (("train_loss", "train loss"), ("test_loss", "test loss"),
                       ("restricted_loss", "restricted loss"), ("excluded_loss", "excluded loss"),
                       ("train_acc", "train accuracy"), ("test_acc", "test accuracy"),
                       ("gini_W_E", "Gini of W_E Fourier norms"), ("gini_W_L", "Gini of W_L Fourier norms"),
                       ("sum_sq_weights", "sum of squared weights"), ("cos_explained", "cos(w(a+b-c)) explained")):
        if col in df.columns:
            rows.append((f"final {label}{at}", fmt(last[col], 4)))
    if nf is None:
        rows.append(("clustered neurons (final model)", "not applicable"))
        return rows
    sizes = nf.cluster_sizes()
    n, k = len(nf.clustered), int(nf.clustered.sum())
    rows.append(("clustered neurons (final model)", f"{k} of {n} ({fmt(k / n if n else math.nan, 4)})"))
    size_text = ", ".join(f"k={f}: {c}" for f, c in sizes.items())
    rows.append(("cluster sizes (neurons per frequency)", (size_text + ", " if size_text else "") +
                 f"unclustered: {n - k}"))
    return rows


IRREP_ROWS = (("irrep_restricted_loss", "irrep restricted loss (all pairs)"),
              ("irrep_excluded_loss", "irrep excluded loss (training pairs)"),
              ("char_explained", "share of the logits in the key characters chi(a b c^-1)"),
              ("frac_neurons_irrep", "neurons explained by one irrep (>= 0.85)"),
              ("frac_neurons_key_irrep", "neurons explained by a key irrep"),
              ("gini_irrep_W_E", "Gini of W_E irrep norms"), ("gini_irrep_W_L", "Gini of W_L irrep norms"))


def irrep_rows(df, key_irreps: Sequence[str]) -> list[tuple[str, str]]:
    """Key-number rows of a group task's irrep measures (Chughtai et al. 2023): the key irreps, the final value of
    every irrep column and the excluded loss per key irrep; [] for a task without irrep columns."""
    if not key_irreps and not any(c in df.columns for c, _ in IRREP_ROWS):
        return []
    last = df.loc[df["step"].idxmax()]
    at = f" (step {int(last['step'])})"
    rows = [("key irreps", ", ".join(key_irreps) or "none found")]
    for col, label in IRREP_ROWS:
        if col in df.columns:
            rows.append((f"final {label}{at}", fmt(last[col], 4)))
    per = [(c[len("irrep_excluded_loss_"):], last[c]) for c in df.columns if c.startswith("irrep_excluded_loss_")]
    if per:
        rows.append((f"excluded loss with one key irrep removed{at}", ", ".join(f"{k}: {fmt(v, 3)}" for k, v in per)))
    return rows


def clock_pizza_series_rows(df) -> list[tuple[str, str]]:
    """The clock / pizza verdict of every checkpoint, from measures that hold the diagnostics
    (``interp measure --clock-pizza``): the steps of each verdict, then each checkpoint's two diagnostics; []
    when the table has no such columns."""
    from ..probes import clock_pizza

    if not all(c in df.columns for c in clock_pizza.COLUMNS):
        return []
    df = df.sort_values("step")
    steps = [int(s) for s in df["step"]]
    spans: list[list] = []  # [verdict, first step, last step] of each run of equal verdicts
    for step, v in zip(steps, clock_pizza.verdicts(df)):
        if spans and spans[-1][0] == v:
            spans[-1][2] = step
        else:
            spans.append([v, step, step])
    said = "; ".join(f"{v} at step {a:,}" if a == b else f"{v} at steps {a:,}-{b:,}" for v, a, b in spans)
    values = "; ".join(f"{step:,}: {fmt(g, 3)} / {fmt(d, 3)}" for step, g, d in
                       zip(steps, df["gradient_symmetricity"], df["distance_irrelevance"]))
    return [("clock or pizza per checkpoint", said),
            ("gradient symmetricity / distance irrelevance per checkpoint", values)]


def clock_pizza_rows(model, task, df=None) -> list[tuple[str, str]]:
    """The clock / pizza diagnostics of the final model (Zhong et al. 2023) for an addition task; [] otherwise.
    With a measures table ``df`` that holds them (``interp measure --clock-pizza``) they are read from its last row
    and every checkpoint's verdict is added (:func:`clock_pizza_series_rows`)."""
    from ..probes import clock_pizza

    series = clock_pizza_series_rows(df) if df is not None else []
    if series:
        last = df.loc[df["step"].idxmax()]
        gs, di, acc = (float(last[c]) for c in clock_pizza.COLUMNS)
        v, why = clock_pizza.verdict(gs, di, acc)
        return [("clock or pizza (final model)", f"{v}: {why}"),
                ("gradient symmetricity (final model)", fmt(gs, 4)),
                ("distance irrelevance (final model)", fmt(di, 4)), *series]
    try:
        r = clock_pizza.clock_or_pizza(model, task)
    except ProbeError:
        return []
    return [("clock or pizza (final model)", f"{r.verdict}: {r.reason}"),
            ("gradient symmetricity (final model)", fmt(r.gradient_symmetricity, 4)),
            ("distance irrelevance (final model)", fmt(r.distance_irrelevance, 4))]


def _non_key_peaks(norms, key_freqs: Sequence[int], share: float = 0.25) -> dict[str, list[tuple[int, float]]]:
    """Per matrix, the non-key frequencies whose per-frequency norm is >= ``share`` of the largest."""
    out = {}
    for name, v in norms.items():
        v = v.numpy() if hasattr(v, "numpy") else v
        top = float(v.max()) if len(v) else 0.0
        out[name] = [(k + 1, float(v[k]) / top) for k in range(len(v))
                     if top > 0 and v[k] >= share * top and (k + 1) not in key_freqs]
    return out


# ---------------------------------------------------------------------------------------------
# the page


def _table(rows: list[tuple[str, str]], css_class: str = "numbers", row_id: str | None = None) -> str:
    body = "\n".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    ident = f' id="{row_id}"' if row_id else ""
    return f'<table class="{css_class}"{ident}>\n{body}\n</table>'


def _figure(name: str, alt: str, caption: str) -> str:
    return (f'<figure><img class="figure" src="{html.escape(_FILES[name])}" alt="{html.escape(alt)}">'
            f'<figcaption>{html.escape(caption)}</figcaption></figure>')


def _story_html(parts: list[StoryPart]) -> str:
    out = ['<div class="story" id="story">']
    for part in parts:
        out.append(f'<section style="--phase: {html.escape(part.colour)}"><h3>{html.escape(part.name)} '
                   f'<span class="note">({html.escape(part.span)})</span></h3>')
        out.append(f"<p><b>The paper:</b> {html.escape(part.paper)}</p>")
        out.append(f"<p><b>This run:</b> {html.escape(' '.join(part.observed))}</p>")
        if part.differs:
            out.append(f'<p class="differs"><b>Where it differs:</b> {html.escape(" ".join(part.differs))}</p>')
        else:
            out.append('<p class="differs"><b>Where it differs:</b> nothing in these numbers.</p>')
        out.append("</section>")
    out.append("</div>")
    return "\n".join(out)


def _splits_text(run, na: dict[str, str] | None = None) -> str:
    """What each loss is computed on, naming where the training pairs came from."""
    pairs = "split.json" if not isinstance(run, CheckpointFolder) else run.split_source
    text = f"train loss: the training pairs ({pairs}); test loss: the held-out pairs"
    if "restricted_loss" in (na or {}):
        return text + "; restricted and excluded loss: not applicable"
    return (text + "; restricted loss: all p² pairs, logits kept only on the key frequencies; excluded loss: the "
            "training pairs, key frequencies removed")


def _data_source(run) -> str:
    """Where the page's data came from, in one paragraph."""
    if isinstance(run, CheckpointFolder):
        return run.describe()
    return (f"Run directory {run.name}/ written by `interp train`: run.json (config), split.json (training pairs), "
            f"metrics.csv (train loss at every step, test loss every eval_every steps) and {len(run.steps)} "
            "checkpoints.")


def _circuit_not_applicable(task, model) -> str | None:
    """Why the Fourier and neuron parts of the report have no meaning for this run, or None when they have."""
    if task.group is None:
        if task.finite_group is not None:
            return (f"task {task.op!r} computes {describe_op(task.op)}, a group that is not abelian, so it has no "
                    "Fourier basis (its irrep measures are in the measures table)")
        return (f"task {task.op!r} computes {describe_op(task.op)}, which is not a group operation of a and b, so no "
                "group's Fourier basis describes the algorithm")
    if not has_mlp(model):
        return "an attention-only model: no MLP neurons and no W_L = W_out W_U"
    return None


def _na_rows(na: dict[str, str], circuit_na: str | None) -> list[tuple[str, str]]:
    """Table rows of what is not applicable: the measure columns grouped by reason, then the figures left out."""
    by_reason: dict[str, list[str]] = {}
    for col, why in na.items():
        by_reason.setdefault(why, []).append(col)
    rows = [(", ".join(cols), why) for why, cols in by_reason.items()]
    if circuit_na:
        rows.append(("figures not drawn: Fourier spectra over training, Fourier norms of the final model, neuron "
                     "frequencies, neuron grids, neuron clusters", "they read the group's Fourier basis and the "
                     f"MLP neurons: {circuit_na}"))
    return rows


@uses_threads
def write_report(run, out_dir: Path | str, measures=None, progress: bool = False, device: str = "cpu", *,
                 threads: int | None = None) -> Path:
    """Write ``out_dir/index.html`` and its figures for ``run``; returns the path of index.html.

    run: an :class:`interp.Run`, or an :class:`interp.folder.CheckpointFolder` of checkpoints trained elsewhere
    (the page says which; training curves are drawn only from a metrics.csv that exists, at the rows it has).
    measures: the run's :class:`interp.probes.Measures` (``probes.find_measures(run)``); computed with
    ``probes.measure_run(run)`` when None (the captions name the file they were read from). progress: show
    progress while measuring. device: where measures computed now run (figures load checkpoints on the CPU).
    threads: torch CPU threads (default :func:`interp.threads.default_threads`). A task without a group basis (the
    quadratic tasks) or a model without an MLP gets the parts that have meaning (losses, accuracy, weight norm,
    attention) and a section saying which measures are not applicable and why.
    """

    out = Path(out_dir)
    prepare_out_dir(out, "report output")
    run = run.snapshot()  # one list of checkpoints for the whole page, even while the run trains
    if measures is None:
        measures = probes.measure_run(run, progress=progress, device=device)
        source = "computed now with probes.measure_run (not saved)"
    else:
        source = (f"read from {_shown_path(Path(measures.source) / 'measures.csv', run.path)}"
                  if getattr(measures, "source", None) else "a measures table given by the caller")
    df, key_freqs, finished_by_measures, protocol = _measures_table(measures)
    phases = probes.phases(df)
    final_step = run.final_step
    final = run.load(final_step)
    task = run.task
    bounds = phase_checkpoints(run.steps, phases)
    metrics = run.metrics  # None: a folder of checkpoints without a metrics.csv
    land = curve_landmarks(metrics if metrics is not None else df)
    na = {**probes.not_applicable(task, final), **dict(getattr(measures, "not_applicable", None) or {})}
    circuit_na = _circuit_not_applicable(task, final)

    # the mechanism's arrays, each from the models' own hooked forward, in the task's group and the measured layer
    layer = final.cfg.n_layers - 1 if getattr(measures, "layer", None) is None else int(measures.layer)
    grid_steps = {}
    for name, boundary, step in bounds:
        grid_steps.setdefault(step, f"step {step:,}: end of {name}")
    grid_steps[final_step] = f"step {final_step:,}: final" + (
        f" (end of {grid_steps[final_step].split('end of ')[1]})" if final_step in grid_steps else "")
    attention_grids = {grid_steps[s]: g for s, g in mechanism.attention_grids(run, sorted(grid_steps)).items()}

    figures = {"progress": progress_figure(df, phases, not_applicable=na)}
    if metrics is not None:
        figures["curves"] = loss_curves_figure(metrics, phases)
    figures["measures"] = measures_figure(df, phases, not_applicable=na)
    nf, peaks = None, {}
    last = _read_at(task)
    if circuit_na is None:
        group = task.group
        nf = mechanism.neuron_frequencies(final, task=task, layer=layer)
        spectra = mechanism.spectra_over_time(run, progress=progress, layer=layer)
        reps = mechanism.representative_neurons(nf, per_cluster=2 if len(nf.cluster_sizes()) <= 4 else 1)
        if not reps:  # nothing clustered: show the best-explained neurons
            reps = [(int(n), int(nf.frequency[n]), float(nf.frac[n])) for n in nf.order[:4]]
        neuron_titles = [f"neuron {n}: k={k}, share {s:.2f}" for n, k, s in reps]
        peaks = _non_key_peaks({name: v[-1] for name, v in spectra.norms.items()}, key_freqs)
        figures.update({
            "spectra_time": spectra_over_time_figure(spectra, key_freqs, phases),
            "fourier": fourier_norms_figure(probes.fourier_norms(final, task, layer=layer), group.order,
                                            key_frequencies=key_freqs),
            "neuron_freqs": neuron_frequency_figure(nf, key_freqs),
            "neuron_grids": neuron_grids_figure(mechanism.neuron_grids(final, [n for n, _, _ in reps], layer=layer),
                                                neuron_titles, position=last),
            "clusters": neuron_clusters_figure(_clusters_frame(nf)),
        })
    figures["attention_grid"] = attention_grid_figure(attention_grids, destination=last)
    if "llc" in df.columns:  # opt-in column (`interp measure --llc`)
        figures["llc"] = llc_figure(df, phases)
    key_irreps = list(getattr(measures, "key_irreps", None) or [])
    if key_irreps and "irrep_restricted_loss" in df.columns:  # a group task (docs/groups.md)
        from ..probes import irreps as probe_irreps
        from .irrep_figures import irrep_figure

        basis = probe_irreps.irrep_basis_of(task)
        figures["irreps"] = irrep_figure(df, probe_irreps.irrep_norms(final, task, layer=layer), basis.names,
                                         key_irreps, phases)
    for name, fig in figures.items():
        save_figure(fig, out / _FILES[name])
        kill_point("report.figure")
    shown = set(figures)
    del figures
    for name, file in _FILES.items():  # a figure of an earlier report in this directory that this one has not
        if name not in shown and (out / file).is_file():
            (out / file).unlink()

    labelled = report_pairs(task)
    view = attention(final, [pr for pr, _ in labelled], captions=[c for _, c in labelled], step=final_step,
                     title=f"Token-level attention of the final model (step {final_step:,})")
    banner = _unfinished(run, finished_by_measures)
    parts = story(df, metrics, phases, key_freqs, nf, run.config, finished=banner is None,
                  circuit_not_applicable=circuit_na)
    rows = _key_rows(df, metrics, phases, key_freqs, nf, bounds, land, circuit_na)
    rows += irrep_rows(df, list(getattr(measures, "key_irreps", None) or []))
    rows += clock_pizza_rows(final, task, df)
    if circuit_na is None:
        basis_note = (f"Basis: {task.group.description}. Neuron and W_L figures and columns read layer {layer} of "
                      f"{final.cfg.n_layers}" + (" (each layer has its own columns in the measures table)"
                                                  if final.cfg.n_layers > 1 else "") + ".")
    else:
        basis_note = (f"No circuit measures: {circuit_na}. Shown: losses, accuracy, the sum of squared weights "
                      "and attention; the section 'Not applicable to this run' lists the rest and why.")
    page = _page(run, parts, rows, view, source, banner, peaks, key_freqs, grid_steps, protocol,
                 getattr(phases, "rule", ""), basis_note, _measures_caption(df, source, na), shown=shown,
                 na_rows=_na_rows(na, circuit_na), not_applicable=na,
                 key_irreps=list(getattr(measures, "key_irreps", None) or []))
    index = out / "index.html"
    atomic_write_text(index, page)  # last: the page only ever points at figures already in place
    return index


def _curves_caption(run) -> str:
    m = run.metrics
    if not isinstance(run, CheckpointFolder):
        return ("Every step, from metrics.csv (test evaluated every eval_every steps). The lower row has a "
                "logarithmic step axis, where memorisation is readable.")
    return (f"From the folder's metrics.csv, at the {len(m)} steps it has rows for (test values at "
            f"{int(m['test_loss'].notna().sum())} of them): points are drawn only where the file has them. The lower "
            "row has a logarithmic step axis.")


def _read_at(task) -> str:
    """The token whose position the logits are read at, as the figures name it: '=', or b for [a, b] inputs."""
    return "=" if task.eq_token is not None else "b"


def _page(run, parts, rows, view: AttentionView, source: str, banner: str | None, peaks, key_freqs,
          grid_steps: dict, protocol: Any, rule: str, basis_note: str = "", measures_caption: str = "", *,
          shown: set[str] | None = None, na_rows: list[tuple[str, str]] | None = None,
          not_applicable: dict[str, str] | None = None, key_irreps: Sequence[str] = ()) -> str:
    cfg = run.config
    shown = set(FIGURES) if shown is None else shown
    folder = isinstance(run, CheckpointFolder)
    title = f"interp report: {run.name}"
    keys = ", ".join(map(str, key_freqs)) or "none"
    peak_text = "; ".join(
        f"{name} also has large non-key components at " + ", ".join(f"k={k} ({share:.0%} of its largest)"
                                                                    for k, share in ks)
        for name, ks in peaks.items() if ks)
    peak_text = (peak_text + ".") if peak_text else "Neither has a non-key frequency above a quarter of its largest."
    config_rows = [(k, json.dumps(v) if isinstance(v, (list, tuple, dict)) else str(v))
                   for k, v in cfg.to_dict().items()]
    config_rows.insert(0, ("folder" if folder else "run directory", str(run.path)))
    config_rows.insert(1, ("checkpoints", f"{len(run.steps)} (steps {run.steps[0]} to {run.steps[-1]})"))
    grid_text = "; ".join(grid_steps.values())
    last = _read_at(run.task)
    splits = _splits_text(run, dict(not_applicable or {}))
    what = (f"{cfg.op} mod {cfg.p}, checkpoints trained elsewhere" if folder else
            f"{cfg.op} mod {cfg.p}, config {cfg.name!r}")
    parts_html = [
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="note">{html.escape(f"{what}; measures {source}.")}</p>',
        f'<p class="note" id="data-source"><b>Data.</b> {html.escape(_data_source(run))}</p>',
        f'<p class="note" id="basis">{html.escape(basis_note)}</p>',
    ]
    if banner:
        parts_html.append(f'<div class="banner" id="unfinished" role="alert">{html.escape(banner)}</div>')
    parts_html += [
        "<h2>What happened</h2>", _story_html(parts),
        "<h2>Key numbers</h2>", _table(rows, row_id="key-numbers"),
    ]
    if na_rows:
        parts_html += ["<h2>Not applicable to this run</h2>",
                       '<p class="note">These measures have no meaning here; they are left out (never drawn as '
                       'flat or missing curves).</p>', _table(na_rows, row_id="not-applicable")]
    parts_html += [
        "<h2>Progress measures and phases</h2>",
        _figure("progress", "progress measures over training with phase boundaries",
                f"Measured at every checkpoint ({source}). {splits}. Dashed lines and shading: phases "
                "(the rule is in the protocol section)."),
    ]
    if "curves" in shown:
        parts_html.append(_figure("curves", "train and test loss and accuracy from metrics.csv, linear and "
                                            "logarithmic step axes", _curves_caption(run)))
    else:
        parts_html.append('<p class="note" id="no-curves">No training curves: the folder has no metrics.csv. The '
                          'losses and accuracies above are recomputed from each checkpoint.</p>')
    parts_html.append(_figure("measures", "per-frequency excluded loss, clustered neurons, cos terms explained, "
                                          "test/restricted", measures_caption))
    if "irreps" in shown:
        parts_html.append(_figure("irreps", "irrep restricted and excluded loss over the run; final irrep norms",
                                  f"Left: the logits restricted to the key irreps ({', '.join(key_irreps)}; all "
                                  "pairs) and with them removed (training pairs), per key irrep dashed, beside the "
                                  "test loss. Right: the norm of W_E and W_L in each irrep of the group (each scaled "
                                  "to its largest), key irreps shaded. Definitions: docs/groups.md."))
    if "llc" in shown:
        parts_html.append(_figure("llc", "local learning coefficient at every checkpoint, beside test and restricted "
                                         "accuracy",
                                  f"The local learning coefficient of each checkpoint ({source}): SGLD around the "
                                  "checkpoint with devinterp, settings in the protocol section (llc); band: spread "
                                  "across chains. Definition and health checks: docs/science.md."))
    if "spectra_time" in shown:
        parts_html += [
            "<h2>Fourier spectra</h2>",
            _figure("spectra_time", "Fourier norms of W_E and W_L per frequency at every checkpoint",
                    f"Each column is one checkpoint, each row one frequency; key frequencies ({keys}) are marked in "
                    "red. The spectrum sharpens onto the key frequencies as the circuit forms and is cleaned up."),
            _figure("fourier", "Fourier-component norms of W_E and W_L of the final model",
                    f"Final model, cos-first order (const, cos 1, sin 1, ...); key frequencies ({keys}) shaded. "
                    + peak_text),
            "<h2>Neurons</h2>",
            _figure("neuron_freqs", "neuron by frequency share of variance, sorted by cluster",
                    "Final model, every MLP neuron: the share of its variance over all p² inputs in each "
                    "frequency's block {const, cos k, sin k}² (the paper's clustering)."),
            _figure("neuron_grids", "activations of representative neurons over the (a, b) grid",
                    "The best-explained neurons of each cluster over every input (a, b): periodic in a and b with "
                    "their frequency."),
            _figure("clusters", "neurons per frequency cluster and variance explained",
                    "Cluster sizes, and how well one frequency explains each neuron."),
        ]
    parts_html += [
        "<h2>Attention</h2>",
        _figure("attention_grid", f"attention from {last} to a over the (a, b) grid per head at chosen checkpoints",
                f"Attention paid by {last} to a, over every input, per head; rows: {grid_text}. One colour scale."),
        '<p class="note">Token-level view with circuitsvis: hover a head to see it, click to lock.</p>',
        view.fragment("att-final"),
        "<h2>Measurement protocol</h2>",
        f"<p><b>Splits.</b> {html.escape(splits)}.</p>",
        f"<p><b>Phase rule.</b> {html.escape(str(rule) or 'not recorded')}</p>",
        f"<p><b>Measures.</b> {html.escape(source)}.</p>",
    ]
    if protocol:
        parts_html += ["<details><summary>Every protocol choice (JSON)</summary>",
                       f"<pre>{html.escape(json.dumps(protocol, indent=2, default=str))}</pre></details>"]
    parts_html += ["<h2>Run configuration</h2>" if not folder else "<h2>Folder and task</h2>", _table(config_rows),
                   IMAGE_CHECK]
    return html_page(title, "\n".join(parts_html))
