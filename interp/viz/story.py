"""The report's narrative: per phase, what the paper predicts, what this run's numbers show, where they differ.

Every sentence about the run is generated from its measures (one row per checkpoint) and its per-step
metrics, so the text cannot drift from the curves. The paper's numbers are those of its main run
(Nanda et al. 2023: a + b mod 113, 30 % of pairs); step numbers are compared only for that setting.

>>> parts = story(df, run.metrics, phases, key_freqs, nf, run.config)   # doctest: +SKIP
>>> parts[0].name, parts[0].observed                                     # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .figures import PHASE_NAMES

__all__ = ["PAPER", "StoryPart", "story", "curve_landmarks", "fmt"]

# The paper's main run (p = 113, 30 % of pairs, seed 0 of its sweep).
PAPER = {"memorisation_end": 1400, "circuit_formation_end": 9400, "cleanup_end": 14000, "test_loss_peak": 27.0,
         "final_loss": 2.4e-7, "n_key_frequencies": 5, "frac_clustered": 0.85, "cos_explained": 0.95}


@dataclass
class StoryPart:
    name: str
    span: str
    colour: str
    paper: str
    observed: list[str] = field(default_factory=list)
    differs: list[str] = field(default_factory=list)


def fmt(x: Any, digits: int = 3) -> str:
    """A number for prose: 3 significant digits, scientific below 1e-3 or from 1e5, 'n/a' for None/NaN."""
    if x is None:
        return "n/a"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(v):
        return "n/a"
    if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
        return f"{v:.{digits - 1}e}"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}"


def _step(s: Any) -> str:
    return f"{int(s):,}" if s is not None else "n/a"


def _at(df, col: str, step: int | None):
    """Value of ``col`` at the checkpoint nearest ``step`` (None if the column or step is missing)."""
    if step is None or col not in df.columns or not len(df):
        return None
    i = int(np.argmin(np.abs(df["step"].to_numpy() - step)))
    v = df[col].iloc[i]
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _decades(a, b) -> float | None:
    if a is None or b is None or a <= 0 or b <= 0:
        return None
    return math.log10(b / a)


def curve_landmarks(metrics) -> dict[str, Any]:
    """From per-step metrics (columns step, test_loss, test_acc): the test-loss peak (value, step), and the
    first steps where test accuracy reaches 0.99 and test loss falls below 1 (None where never)."""
    out: dict[str, Any] = {"test_loss_peak": None, "test_loss_peak_step": None, "test_acc_099_step": None,
                           "test_loss_below_1_step": None}
    if metrics is None or "test_loss" not in getattr(metrics, "columns", ()):
        return out
    m = metrics[["step", "test_loss"] + (["test_acc"] if "test_acc" in metrics.columns else [])].dropna()
    if not len(m):
        return out
    i = int(m["test_loss"].to_numpy().argmax())
    out["test_loss_peak"], out["test_loss_peak_step"] = float(m["test_loss"].iloc[i]), int(m["step"].iloc[i])
    after = m.iloc[i:]
    below = after[after["test_loss"] < 1.0]
    out["test_loss_below_1_step"] = int(below["step"].iloc[0]) if len(below) else None
    if "test_acc" in m.columns:
        hit = m[m["test_acc"] >= 0.99]
        out["test_acc_099_step"] = int(hit["step"].iloc[0]) if len(hit) else None
    return out


def _paper_setting(config) -> bool:
    return getattr(config, "p", None) == 113 and abs(getattr(config, "frac_train", 0) - 0.3) < 1e-9 \
        and getattr(config, "op", "add") == "add"


def _compare_step(name: str, ours: int | None, paper: int, comparable: bool) -> list[str]:
    if ours is None or not comparable:
        return []
    ratio = ours / paper
    if 0.8 <= ratio <= 1.25:
        return []
    return [f"It ends at step {_step(ours)}, {ratio:.2g}x the paper's {_step(paper)}."]


def story(df, metrics, phases: Any, key_freqs: Sequence[int], nf: Any, config: Any,
          finished: bool = True, circuit_not_applicable: str | None = None) -> list[StoryPart]:
    """Four parts (memorisation, circuit formation, cleanup, final model), each with the paper's
    prediction, sentences about this run from its numbers, and the differences found.

    circuit_not_applicable: why the circuit measures (key frequencies, neuron clusters, cos terms) have no meaning
    for this run (a task without a group basis, a model without an MLP); the final model's part says so instead of
    quoting them. ``metrics`` may be None (checkpoints without per-step curves): landmarks come from ``df``."""

    colours = {name: colour for _, name, colour in PHASE_NAMES}
    comparable = _paper_setting(config)
    m, c, e = (getattr(phases, a, None) for a in ("memorisation_end", "circuit_formation_end", "cleanup_end"))
    first = int(df["step"].min())
    last = int(df["step"].max())
    land = curve_landmarks(metrics if metrics is not None else df)
    parts = []

    # memorisation
    mem = StoryPart("Memorisation", f"steps {_step(first)} to {_step(m) if m is not None else '?'}",
                    colours["memorisation"],
                    "Train loss falls to about 1e-6 while test loss rises (peak about 27 near step 1.4k); the "
                    "excluded loss falls with the train loss; the restricted loss stays high.")
    if m is None:
        mem.observed.append("The rule found no memorisation peak in the test loss.")
        mem.differs.append("No memorisation phase was found.")
    else:
        mem.observed.append(f"Train loss {fmt(_at(df, 'train_loss', first))} -> {fmt(_at(df, 'train_loss', m))} "
                            f"by step {_step(m)}; test loss peaks at {fmt(land['test_loss_peak'])} "
                            f"at step {_step(land['test_loss_peak_step'])}.")
        exc0, excm = _at(df, "excluded_loss", first), _at(df, "excluded_loss", m)
        res0, resm = _at(df, "restricted_loss", first), _at(df, "restricted_loss", m)
        if excm is not None:
            mem.observed.append(f"Excluded loss {fmt(exc0)} -> {fmt(excm)}; "
                                f"restricted loss {fmt(res0)} -> {fmt(resm)}.")
            if exc0 is not None and excm >= exc0:
                mem.differs.append("The excluded loss did not fall with the train loss.")
            if res0 is not None and resm is not None and resm < 0.5 * res0:
                mem.differs.append("The restricted loss already fell by half.")
        mem.differs += _compare_step("memorisation", m, PAPER["memorisation_end"], comparable)
    parts.append(mem)

    # circuit formation
    cf = StoryPart("Circuit formation", f"steps {_step(m)} to {_step(c)}" if m is not None else "not found",
                   colours["circuit formation"],
                   "Train and test loss look flat, but the excluded loss rises by orders of magnitude, the restricted "
                   "loss starts to fall and the sum of squared weights falls.")
    if c is None or m is None:
        grokked = getattr(phases, "grokked", False)
        cf.observed.append("The run has not grokked (test loss did not fall 100x from its peak), so circuit formation "
                           "has no end yet." if not grokked else "The rule could not place this phase.")
        cf.differs.append("Not found in this run" + ("" if finished else " (the run is unfinished)") + ".")
    else:
        exc = (_at(df, "excluded_loss", m), _at(df, "excluded_loss", c))
        res = (_at(df, "restricted_loss", m), _at(df, "restricted_loss", c))
        w = (_at(df, "sum_sq_weights", m), _at(df, "sum_sq_weights", c))
        up = _decades(*exc)
        if exc[0] is not None:
            cf.observed.append(f"Excluded loss {fmt(exc[0])} -> {fmt(exc[1])}"
                               + (f" ({up:+.1f} decades)" if up is not None else "")
                               + f"; restricted loss {fmt(res[0])} -> {fmt(res[1])}.")
        cf.observed.append(f"Sum of squared weights {fmt(w[0])} -> {fmt(w[1])}; test loss at step {_step(c)}: "
                           f"{fmt(_at(df, 'test_loss', c))}.")
        if up is not None and up < 1:
            cf.differs.append(f"The excluded loss rose only {up:.2g} decades.")
        if res[0] is not None and res[1] is not None and res[1] >= res[0]:
            cf.differs.append("The restricted loss did not fall.")
        if w[0] is not None and w[1] is not None and w[1] >= w[0]:
            cf.differs.append("The weights did not shrink.")
        cf.differs += _compare_step("circuit formation", c, PAPER["circuit_formation_end"], comparable)
    parts.append(cf)

    # cleanup
    cu = StoryPart("Cleanup", f"steps {_step(c)} to {_step(e)}" if c is not None else "not found", colours["cleanup"],
                   "Test loss drops suddenly to about 1e-7 (grokking), after the restricted loss; the Gini "
                   "coefficients of the Fourier norms rise and the sum of squared weights drops sharply.")
    if c is None:
        cu.observed.append("No cleanup yet: the test loss has not fallen.")
        cu.differs.append("Not found in this run" + ("" if finished else " (the run is unfinished)") + ".")
    else:
        end = e if e is not None else last
        t = (_at(df, "test_loss", c), _at(df, "test_loss", end))
        cu.observed.append(f"Test loss {fmt(t[0])} -> {fmt(t[1])} by step {_step(end)}"
                           + (f"; below 1 from step {_step(land['test_loss_below_1_step'])}"
                              if land["test_loss_below_1_step"] is not None else "")
                           + (f"; test accuracy reaches 0.99 at step {_step(land['test_acc_099_step'])}."
                              if land["test_acc_099_step"] is not None else "."))
        g = [(n, _at(df, f"gini_{n}", c), _at(df, f"gini_{n}", end)) for n in ("W_E", "W_L")]
        w = (_at(df, "sum_sq_weights", c), _at(df, "sum_sq_weights", end))
        gini_text = ", ".join(f"of {n} {fmt(a)} -> {fmt(b)}" for n, a, b in g if a is not None)
        cu.observed.append((f"Gini {gini_text}; s" if gini_text else "S")
                           + f"um of squared weights {fmt(w[0])} -> {fmt(w[1])}.")
        if e is None:
            cu.differs.append("The test loss is still falling at the last checkpoint: cleanup has no end yet.")
        if t[1] is not None and t[1] > 1e-3:
            cu.differs.append(f"Test loss ends at {fmt(t[1])}, far above the paper's ~1e-7.")
        rises = [b - a for _, a, b in g if a is not None and b is not None]
        if rises and max(rises) < 0.1:
            cu.differs.append("The Gini coefficients barely moved.")
        cu.differs += _compare_step("cleanup", e, PAPER["cleanup_end"], comparable)
    parts.append(cu)

    # final model
    fin = StoryPart("Final model", f"step {_step(last)}", "#555555",
                    "5 key frequencies; about 85 % of the 512 neurons explained >= 0.85 by one frequency; the key "
                    "cos(w(a+b-c)) terms explain about 95 % of the logits; loss about 2.4e-7.")
    sizes = nf.cluster_sizes() if nf is not None else {}
    frac = float(np.mean(nf.clustered)) if nf is not None else None
    ce = _at(df, "cos_explained", last)
    n_neurons = len(nf.clustered) if nf is not None else "?"
    losses = f"test loss {fmt(_at(df, 'test_loss', last))}, train loss {fmt(_at(df, 'train_loss', last))}"
    if circuit_not_applicable:
        acc = _at(df, "test_acc", last)
        fin.observed.append(f"Key frequencies, neuron clusters and the cos terms: not applicable "
                            f"({circuit_not_applicable}).")
        fin.observed.append(f"{losses[0].upper()}{losses[1:]}; test accuracy {fmt(acc)}.")
        fin.differs.append("The paper's circuit cannot be looked for here, so it is neither found nor missing.")
    else:
        fin.observed.append(f"Key frequencies {', '.join(map(str, key_freqs)) or 'none'}; "
                            f"{fmt(100 * frac, 2) if frac is not None else 'n/a'} % of {n_neurons} neurons "
                            "clustered (" + ", ".join(f"k={k}: {n}" for k, n in sizes.items()) + ").")
        fin.observed.append(f"Key cos terms explain {fmt(100 * ce, 3) if ce is not None else 'n/a'} % of the "
                            f"logits; {losses}.")
    if comparable and len(key_freqs) != PAPER["n_key_frequencies"]:
        fin.differs.append(f"{len(key_freqs)} key frequencies rather than the paper's 5 (its other seeds find 3 to 4).")
    if frac is not None and comparable and abs(frac - PAPER["frac_clustered"]) > 0.05:
        fin.differs.append(f"{fmt(100 * frac, 2)} % of neurons clustered rather than about 85 %.")
    if ce is not None and ce < 0.8:
        fin.differs.append(f"The key cos terms explain only {fmt(100 * ce, 2)} % of the logits.")
    if not comparable:
        fin.differs.append("This run's setting differs from the paper's main run (p = 113, 30 % of pairs), so only "
                           "the shape of the story is compared, not step numbers or counts.")
    parts.append(fin)
    return parts
