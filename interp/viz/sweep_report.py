"""The HTML report of a sweep: the registered protocol's answer (``docs/emergence-protocol.md``, v2): the verdict
table, the information test of every measure and control, predictability at every look time, Kaplan-Meier survival
curves of t90, per-run metrics against each scale axis at each budget, the robustness table (the earliness leads
among its rows, with why they cannot decide), then each run over training.

``write_sweep_report(sweep_dir, out_dir)`` writes ``index.html`` and its PNG figures. Like the run
report: nothing loads from the network, every string shown is escaped (run names and field values
come from files), every file is written atomically and ``index.html`` last.

>>> write_sweep_report("sweeps/data-width", "report-sweep")      # doctest: +SKIP
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from ..emergence import survival_curves
from ..emergence.answer import EARLINESS_CANNOT_DECIDE, Answer, answer
from ..emergence.tables import run_transitions
from ..sweep.tables import as_tables
from ..emergence.protocol import N_BOOT
from ..files import atomic_write_text, prepare_out_dir
from .emergence_figures import (
    forecast_figure,
    lead_grid_figure,
    metric_scale_figure,
    run_curves_figure,
    survival_figure,
)
from .figures import save_figure
from .page import IMAGE_CHECK, html_page
from .story import fmt as fmt_number

__all__ = ["write_sweep_report", "RUNS_PER_FIGURE"]

RUNS_PER_FIGURE = 6  # small multiples: one PNG per this many runs

_RULES = [
    ("t_mem, t90, t99", "first step with train accuracy at least 0.99, test accuracy at least 0.90 / 0.99; a run "
                        "that never reaches an event is right-censored at its budget (Kaplan-Meier medians)"),
    ("information about t90", "within-cell Spearman correlation of the measure's transition step with t90 (seed-"
                              "cluster bootstrap interval, within-cell permutation null) and a stratified Cox model "
                              "with the measure as a time-varying covariate, tested by likelihood ratio against "
                              "configuration + clock; informative / not informative / not determined"),
    ("(a) predictable from the past", "t90 forecast at look time T from what the run showed up to T, against the "
                                      "recalibrated configuration baseline (MAE ratio with its interval)"),
    ("(b) beyond test loss + clock", "the same forecast with a mechanistic measure added to test loss and the "
                                     "clock; the equivalence margin makes 'adds nothing' a finding"),
    ("real or artefact", "logistic fits of accuracy and of the log-probability of the correct answer along a scale "
                         "axis, constrained to the observed range ('not reached' at a boundary); per-run "
                         "bimodality near the critical value"),
    ("transition of a metric (the per-run figures)", "where its monotone envelope (after a 5-point running median; "
                                                     "losses in log10 space) has made half of its change"),
]


def _cell(v: Any, fmt: str | None = None) -> str:
    if isinstance(v, (bool,)) or fmt == "bool":
        return "yes" if bool(v) else "no"
    if fmt == "int":
        try:
            return "n/a" if pd.isna(v) else f"{float(v):.0f}"
        except (TypeError, ValueError):
            return str(v)
    if fmt == "pct":
        return "n/a" if pd.isna(v) else f"{100 * float(v):.1f} %"
    return fmt_number(v)


def _df_table(df: pd.DataFrame, columns: Sequence[tuple[str, str, str | None]], table_id: str, *,
              wrap: bool = False) -> str:
    """An escaped HTML table of ``df``: columns are (column, header, format). ``wrap``: a table of sentences (the
    answer), whose cells wrap between words so that it fits the page without a horizontal scroll bar."""
    cols = [(c, h, f) for c, h, f in columns if c in df.columns]
    head = "".join(f"<th>{html.escape(h)}</th>" for _, h, f in cols)
    def td(c: str, f: str | None, v: Any) -> str:
        if c == "run":  # a break opportunity after each comma: the column is as narrow as its longest field
            return '<td class="run">' + ",<wbr>".join(html.escape(x) for x in str(v).split(",")) + "</td>"
        return f"<td>{html.escape(_cell(v, f))}</td>"

    body = "\n".join("<tr>" + "".join(td(c, f, r[c]) for c, _, f in cols) + "</tr>" for _, r in df.iterrows())
    if wrap:
        return f'<table class="numbers answer" id="{html.escape(table_id)}">\n<tr>{head}</tr>\n{body}\n</table>'
    # wide tables scroll sideways instead of breaking run names letter by letter
    return (f'<div class="wide"><table class="numbers sweep" id="{html.escape(table_id)}">\n<tr>{head}</tr>\n'
            f'{body}\n</table></div>')


def _img(src: str, alt: str, caption: str) -> str:
    return (f'<figure><img class="figure" src="{html.escape(src)}" alt="{html.escape(alt)}">'
            f'<figcaption class="note">{html.escape(caption)}</figcaption></figure>')


def _run_figures(ans: Answer, transitions: pd.DataFrame) -> dict[str, Any]:
    """file name -> Figure: each run over training, RUNS_PER_FIGURE runs a figure, in the order of the axes."""
    axes = [a for a in ans.tables.axes if a in ans.events.columns]
    order = ans.events.sort_values([*axes, "run"])["run"].astype(str).tolist()
    return {f"runs_{i // RUNS_PER_FIGURE + 1:02d}.png": run_curves_figure(
        ans.tables.results, transitions, order[i:i + RUNS_PER_FIGURE]) for i in range(0, len(order), RUNS_PER_FIGURE)}


def _protocol_figures(ans: Answer) -> dict[str, Any]:
    figs: dict[str, Any] = {}
    cells = [c for c in ans.tables.axes if c in ans.events.columns and c not in ("seed",)]
    by = "frac_train" if "frac_train" in ans.events.columns else (cells[0] if cells else None)
    if by is not None and ans.events[by].nunique() > 1:
        figs["survival.png"] = survival_figure(survival_curves(ans.events, "t90", by=by), "t90", by)
    for axis in dict.fromkeys(k[0] for k in ans.scale):
        figs[f"scale_{axis}.png"] = metric_scale_figure([v for k, v in ans.scale.items() if k[0] == axis])
    if ans.grid is not None and len(ans.grid):
        figs["lead_grid.png"] = lead_grid_figure(ans.grid)
    if ans.forecasts is not None and len(ans.forecasts.scores) and ans.forecasts.scores["ratio"].notna().any():
        figs["forecast.png"] = forecast_figure(ans.forecasts.scores)
    return figs


def _protocol_section(ans: Answer, figure_names: list[str]) -> list[str]:
    ev = ans.events
    km = ans.km[ans.km["event"] == "t90"].copy()
    km["km_median"] = [f"> {b:.0f}" if v == float("inf") else f"{v:.0f}" for v, b in zip(km["km_median"], km["budget"])]
    vt = ans.verdict_table()
    # the verdict is what a reader came for: right after what it is about, never past the right edge
    first = [c for c in ("claim", "subject", "verdict") if c in vt.columns]
    vt = vt[first + [c for c in vt.columns if c not in first]]
    intro = (f"{len(ev)} runs in {ev['cell'].nunique()} cells; events from {ev['event_source'].iloc[0]}; t90 "
             f"reached by {int(ev['t90'].notna().sum())} runs, the rest right-censored at their budget. "
             "Intervals: 95 % seed-cluster bootstrap.")
    parts = [
        "<h2>The answer (the registered protocol, v2)</h2>",
        f'<p class="note">{html.escape(intro)}</p>',
        _df_table(vt, [(c, c, None) for c in vt.columns], "verdicts", wrap=True),
        *[f'<p class="note">{html.escape("note: " + n)}</p>' for n in ans.notes],
    ]
    if ans.information is not None:
        it = ans.information.table
        parts += ["<h3>Information about when t90 comes, beyond the configuration and the clocks</h3>",
                  _df_table(it, [("measure", "measure", None), ("role", "role", None), ("n_runs", "runs", "int"),
                                 ("n_events", "reached t90", "int"), ("rho", "within-cell rho", None),
                                 ("rho_low", "rho low", None), ("rho_high", "rho high", None),
                                 ("p_perm", "permutation p", None), ("p_lr", "Cox LR p", None),
                                 ("null_model", "against", None), ("verdict", "verdict", None),
                                 ("reason", "reason", None)], "information")]
    if ans.predictability is not None:
        pt = ans.predictability.table
        parts += ["<h3>Predictable from the past, at every look time</h3>",
                  _df_table(pt, [("T", "look time", "int"), ("claim", "claim", None),
                                 ("forecaster", "forecaster", None), ("against", "against", None),
                                 ("n_evaluated", "runs", "int"), ("ratio", "MAE ratio", None),
                                 ("ratio_low", "low", None), ("ratio_high", "high", None),
                                 ("verdict", "verdict", None)], "predictability")]
    parts += [
        "<h3>When runs reach t90</h3>",
        _df_table(km, [("cell", "cell", None), ("n_runs", "runs", "int"), ("n_reached", "reached t90", "int"),
                       ("km_median", "Kaplan-Meier median t90", None)], "events"),
    ]
    if "survival.png" in figure_names:
        parts.append(_img("survival.png", "survival curves of t90", "Share of runs that have not reached test "
                          "accuracy 0.9, per data fraction (Kaplan-Meier; censored runs keep the curve up)."))
    parts.append("<h3>Real jump or artefact of the metric, per scale axis and budget</h3>")
    for f in figure_names:
        if f.startswith("scale_"):
            parts.append(_img(f, "per-run metrics against a scale axis at each budget",
                              "Dots: runs; line: the logistic fit; width: 10-90 % with its interval."))
    if ans.scale:
        rows = pd.concat([v.fit_table() for v in ans.scale.values()], ignore_index=True)
        parts.append(_df_table(rows, [("axis", "axis", None), ("budget", "budget", "int"), ("metric", "metric", None),
                                      ("status", "status", None), ("range", "range of cell medians", None),
                                      ("x0", "location", None), ("width", "width", None),
                                      ("width_low", "width low", None), ("width_high", "width high", None),
                                      ("note", "note", None)], "scale_fits"))
    rt = ans.robustness_table()
    parts += ["<h3>Robustness (every alternative choice; never a headline)</h3>",
              f'<p class="note">{html.escape("Earliness leads are here, not in the answer: " + EARLINESS_CANNOT_DECIDE + ".")}</p>',
              _df_table(rt, [(c, c, None) for c in rt.columns], "robustness")]
    if "lead_grid.png" in figure_names:
        parts.append(_img("lead_grid.png", "the lead grid with intervals and controls",
                          "Median lead (event minus the metric's transition step) with its 95 % interval, per event, "
                          "quantile and loss space; black: the v1 headline cell."))
    if ans.forecasts is not None:
        parts += ["<h3>Protocol v1's forecasts (history)</h3>",
                  _df_table(ans.forecasts.scores, [(c, c, None) for c in (
                      "T", "measure", "role", "n_eligible", "n_evaluated", "mae", "mae_baseline", "ratio", "ratio_low",
                      "ratio_high", "auc", "auc_share")], "forecasts")]
    if "forecast.png" in figure_names:
        parts.append(_img("forecast.png", "forecast MAE ratio against look time (protocol v1)",
                          "Below 1: better than v1's config baseline; dashed: the controls."))
    return parts


def _page(ans: Answer, name: str, figure_names: list[str]) -> str:
    axes = [a for a in ans.tables.axes if a in ans.events.columns]
    title = f"interp sweep report: {name}"
    ev = ans.events.copy()
    reached = int(ev["t90"].notna().sum())
    fields = ", ".join(axes) or "none"
    run_cols = [("run", "run", None), *[(x, x, None) for x in axes if x != "seed"], ("seed", "seed", None),
                ("t_mem", "t_mem", "int"), ("t90", "t90", "int"), ("t99", "t99", "int"), ("budget", "budget", "int")]
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="note">{html.escape(f"{len(ev)} runs; varied fields: {fields}.")}</p>',
        *_protocol_section(ans, figure_names),
        "<h2>Runs</h2>",
        f'<p class="note">{html.escape(f"{reached} of {len(ev)} runs reached t90; n/a: not reached by the budget.")}</p>',
        _df_table(ev, run_cols, "runs"),
        "<h2>Each run over training</h2>",
        *[_img(f, "test accuracy, continuous metrics and progress measures of each run over training",
               "Left: test accuracy. Middle and right: each metric as the share of its own transition done "
               "(0 at its start level, 1 at its end level; log10 space for losses); dots mark half-way steps "
               "(hollow: the curve had not settled by the end of the run). "
               "Dashed line: where test accuracy first reaches 0.5.") for f in figure_names if f.startswith("runs_")],
        "<h2>How it is measured</h2>",
        '<table class="numbers" id="rules">' + "".join(
            f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in _RULES) + "</table>",
        IMAGE_CHECK,
    ]
    return html_page(title, "\n".join(parts), bundle=False)


def write_sweep_report(sweep, out_dir: Path | str, *, n_boot: int = N_BOOT) -> Path:
    """Write ``out_dir/index.html`` and its figures for a sweep; returns the path of index.html.

    sweep: a sweep directory (results.csv, summary.csv, sweep.json) or its loaded tables. n_boot: bootstrap
    resamples (the protocol's 2,000 by default). The scale axes and budgets are the protocol's.
    """
    tables = as_tables(sweep)
    ans = answer(tables, n_boot=n_boot)
    out = Path(out_dir)
    prepare_out_dir(out, "sweep report output")
    figs = {**_protocol_figures(ans), **_run_figures(ans, run_transitions(tables))}
    for fname, fig in figs.items():
        save_figure(fig, out / fname)
    name = tables.path.name if tables.path is not None else "results table"
    index = out / "index.html"
    atomic_write_text(index, _page(ans, name, list(figs)))  # last: it only points at figures already written
    return index
