"""The HTML report of a sweep: the registered protocol's answer (``docs/emergence-protocol.md``: the verdict
table, Kaplan-Meier survival curves of t90, per-run metrics against each scale axis at each budget, the
lead grid with its controls and intervals, the forecasts' MAE ratio against the look time, the robustness
table), then the exploratory pre-protocol tables (emergence step, half-way steps, sharpness), labelled.

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
from ..emergence.analysis import Analysis, analyse
from ..emergence.answer import Answer, answer
from ..emergence.protocol import N_BOOT
from ..files import atomic_write_text, prepare_out_dir
from .emergence_figures import (
    forecast_figure,
    lead_figure,
    lead_grid_figure,
    metric_scale_figure,
    prediction_figure,
    run_curves_figure,
    scale_figure,
    survival_figure,
)
from .figures import save_figure
from .page import IMAGE_CHECK, html_page
from .story import fmt as fmt_number

__all__ = ["write_sweep_report", "RUNS_PER_FIGURE"]

RUNS_PER_FIGURE = 6  # small multiples: one PNG per this many runs

_RULES = [
    ("emergence step", "first step where test accuracy is at least 0.5, interpolated from the checkpoint before"),
    ("rise", "from the last step below 10 % test accuracy to the first step at or above 90 %, as a share of the run"),
    ("transition of a metric", "the move from the checkpoint farthest from where the curve ends (after a 5-point "
                               "running median) to its end, fitted by a monotone envelope (isotonic regression); "
                               "losses in log10 space"),
    ("half-way step, width", "where the envelope has made 50 % of the change; width from 10 % to 90 %, as a share "
                             "of the run"),
    ("no transition", "the change is below 0.05 (bounded scores), 0.1 decades (losses), 5 % of the largest value "
                      "(weight norm), or four times the noise"),
    ("lead", "emergence step minus the metric's half-way step (positive: ahead of accuracy)"),
    ("sharpness", "largest change between adjacent scale values as a share of the metric's range over the axis"),
    ("discontinuity", "value at the largest scale minus the straight line through the two scale values before it "
                      "(log scale axis), as for PaLM's BIG-bench tasks"),
    ("prediction", "leave one run out: a line fitted from the measure's half-way step to the emergence step on the "
                   "other runs, against the mean emergence step of the other runs"),
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


def _figures(a: Analysis) -> dict[str, Any]:
    """file name -> Figure."""
    figs: dict[str, Any] = {}
    order = a.runs.sort_values([*a.tables.axes, "run"] if a.tables.axes else ["run"])["run"].tolist()
    for i in range(0, len(order), RUNS_PER_FIGURE):
        figs[f"runs_{i // RUNS_PER_FIGURE + 1:02d}.png"] = run_curves_figure(
            a.tables.results, a.transitions, order[i:i + RUNS_PER_FIGURE])
    if len(a.leads):
        figs["leads.png"] = lead_figure(a.leads)
    if a.scale is not None:
        figs["scale.png"] = scale_figure(a.scale)
    if any(p.n_scored for p in a.predictions):
        figs["prediction.png"] = prediction_figure(a.predictions)
    return figs


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
        "<h2>The answer (the registered protocol)</h2>",
        f'<p class="note">{html.escape(intro)}</p>',
        _df_table(vt, [(c, c, None) for c in vt.columns], "verdicts", wrap=True),
        *[f'<p class="note">{html.escape("note: " + n)}</p>' for n in ans.notes],
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
    if ans.leads is not None:
        parts += ["<h3>Leads over t90, beside the controls (headline: q = 0.25, losses log10)</h3>",
                  _df_table(ans.leads.summary, [(c, c, None) for c in ans.leads.summary.columns
                                                if c not in ("not_beaten",)], "lead_summary")]
    if "lead_grid.png" in figure_names:
        parts.append(_img("lead_grid.png", "the lead grid with intervals and controls",
                          "Median lead (event minus the metric's transition step) with its 95 % interval, per event, "
                          "quantile and loss space; black: the headline cell."))
    if ans.forecasts is not None:
        sc = ans.forecasts.scores
        parts += ["<h3>Forecasts of t90 from the past</h3>",
                  _df_table(sc, [(c, c, None) for c in ("T", "measure", "role", "n_eligible", "n_evaluated", "mae",
                                                         "mae_baseline", "ratio", "ratio_low", "ratio_high", "auc",
                                                         "auc_share")], "forecasts")]
    if "forecast.png" in figure_names:
        parts.append(_img("forecast.png", "forecast MAE ratio against look time",
                          "Below 1: better than the config baseline; dashed: the controls."))
    rt = ans.robustness_table()
    parts += ["<h3>Robustness (every alternative choice; never a headline)</h3>",
              _df_table(rt, [(c, c, None) for c in rt.columns], "robustness")]
    return parts


def _page(a: Analysis, name: str, figure_names: list[str], ans: Answer | None = None) -> str:
    axes = a.tables.axes
    title = f"interp sweep report: {name}"
    fields = ", ".join(axes) or "none"
    run_cols = [("run", "run", None), *[(x, x, None) for x in axes], ("status", "status", None),
                ("final_step", "final step", "int"), ("final_test_acc", "final test acc", None),
                ("emergence_step", "emergence step", "int"), ("rise_steps", "rise 10→90 % (steps)", "int"),
                ("rise_frac", "rise (share of run)", "pct")]
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="note">{html.escape(f"{len(a.runs)} runs; varied fields: {fields}.")}</p>',
        *(_protocol_section(ans, figure_names) if ans is not None else []),
        "<h2>Exploratory (before the protocol; not its answer)</h2>",
        '<ul id="headline">' + "".join(f"<li>{html.escape(s)}</li>" for s in a.headline()) + "</ul>",
        "<h2>Runs</h2>",
        _df_table(a.runs, run_cols, "runs"),
        "<h2>Each run over training</h2>",
        *[_img(f, "test accuracy, continuous metrics and progress measures of each run over training",
               "Left: test accuracy. Middle and right: each metric as the share of its own transition done "
               "(0 at its start level, 1 at its end level; log10 space for losses); dots mark half-way steps "
               "(hollow: the curve had not settled by the end of the run). "
               "Dashed line: the emergence step.") for f in figure_names if f.startswith("runs_")],
        "<h2>Leads of the progress measures</h2>",
        _df_table(a.lead_summary, [("label", "metric", None), ("role", "role", None),
                                   ("n_leading", "runs leading", "int"), ("n_measured", "runs measured", "int"),
                                   ("median_lead", "median lead (steps)", "int"), ("q25_lead", "q25", "int"),
                                   ("q75_lead", "q75", "int"), ("median_lead_frac", "median lead (share)", None),
                                   ("n_never_emerged", "never emerged", "int"),
                                   ("n_no_transition", "no transition", "int")], "leads"),
    ]
    if "leads.png" in figure_names:
        parts.append(_img("leads.png", "lead of each metric over emergence, per run",
                          "Each dot is a run: lead as a share of its time to emergence; bar: median."))
    parts.append("<h2>Across the scale axis</h2>")
    if a.scale is not None:
        budget = "" if a.scale.budget_step is None else f" at step {a.scale.budget_step}"
        what = f"Each metric against {a.scale.axis}{budget}; means over seeds."
        parts += [f'<p class="note">{html.escape(what)}</p>',
                  _df_table(a.scale.table, [("group", "group", None), ("label", "metric", None),
                                            ("kind", "kind", None), ("space", "space", None),
                                            ("n_scales", "scale values", "int"), ("smallest", "at smallest", None),
                                            ("largest", "at largest", None), ("sharpness", "sharpness", None),
                                            ("jump_from", "largest jump from", None), ("jump_to", "to", None),
                                            ("discontinuity", "discontinuity", None),
                                            ("discontinuity_rel", "discontinuity / range", None)], "scale"),
                  _img("scale.png", "each metric against the scale axis",
                       "Dashed: the straight line (log scale) through the two scale values before the largest; "
                       "the gap at the largest is the discontinuity.")]
    else:
        parts.append(f'<p class="note">{html.escape(a.scale_note)}</p>')
    parts += ["<h2>Predicting the emergence step</h2>",
              _df_table(a.prediction_table, [("measure", "measure", None), ("n_scored", "runs scored", "int"),
                                             ("mae", "MAE (steps)", "int"), ("mae_baseline", "baseline MAE", "int"),
                                             ("mae_ratio", "MAE / baseline", None),
                                             ("n_never_emerged", "never emerged", "int"),
                                             ("n_beyond_end", "of those, predicted beyond the run's end", "int"),
                                             ("n_no_transition", "no transition", "int")], "prediction")]
    if "prediction.png" in figure_names:
        parts.append(_img("prediction.png", "predicted against actual emergence step",
                          "Leave one run out; grey: the baseline; dotted: perfect prediction."))
    parts += ["<h2>How it is measured</h2>",
              '<table class="numbers" id="rules">' + "".join(
                  f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in _RULES) + "</table>",
              IMAGE_CHECK]
    return html_page(title, "\n".join(parts), bundle=False)


def write_sweep_report(sweep, out_dir: Path | str, *, axis: str | None = None, budget_step: int | None = None,
                       n_boot: int = N_BOOT) -> Path:
    """Write ``out_dir/index.html`` and its figures for a sweep; returns the path of index.html.

    sweep: a sweep directory (results.csv, summary.csv, sweep.json) or its loaded tables. axis: the scale
    axis (default the first varied non-seed field; ``"step"`` for the training budget). budget_step: the
    step the scale analysis reads each run at (default the largest step every run reached).
    """
    a = analyse(sweep, axis=axis, budget_step=budget_step)
    ans = answer(a.tables, n_boot=n_boot)
    out = Path(out_dir)
    prepare_out_dir(out, "sweep report output")
    figs = {**_protocol_figures(ans), **_figures(a)}
    for fname, fig in figs.items():
        save_figure(fig, out / fname)
    name = a.tables.path.name if a.tables.path is not None else "results table"
    index = out / "index.html"
    atomic_write_text(index, _page(a, name, list(figs), ans))  # last: it only points at figures already written
    return index
