"""Every measure of one model from one forward, every checkpoint of a run, and the measures on disk.

>>> m = measure_run(run)                       # doctest: +SKIP
>>> m.key_frequencies, m.df.columns[:5].tolist()   # doctest: +SKIP
([9, 16, 26], ['step', 'train_loss', 'train_acc', 'test_loss', 'test_acc'])
>>> save_measures(m, "probes/small")            # measures.csv + measures.json  # doctest: +SKIP

A :class:`Measures` carries its table together with the key frequencies, the protocol and the identity and
state of the run it was computed from, so nothing depends on ``DataFrame.attrs`` (which pandas drops).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd
import torch

from .. import fourier
from ..errors import ProbeError, RunFormatError
from ..folder import CheckpointFolder
from ..files import atomic_write_text, read_json, read_limited
from ..killpoints import kill_point
from ..table_checks import read_csv_checked
from ..progress import Progress
from ..tasks import Task
from ..threads import uses_threads
from ._common import check_layer, check_model, has_mlp, logits_and_layer_acts
from .frequencies import (DEFAULT_THRESHOLDS, RULES, THRESHOLD_MEANING, _top_k, fourier_norms, group_acts,
                          key_frequencies, neuron_frequency_shares, per_frequency_norms, top_frequencies)
from .learning_coefficient import LLCSettings, devinterp_modules, llc_protocol, llc_row, warn_unhealthy
from . import clock_pizza as _cp
from .irreps import IRREP_THRESHOLDS, irrep_basis_of, key_irreps as find_key_irreps, measure_irreps
from .losses import Decomposition, cos_coefficients, train_test_metrics
from .sparsity import SSW_INCLUDES, gini, sum_squared_weights

__all__ = ["Measures", "measure_model", "measure_run", "measure_series", "save_measures", "load_measures",
           "find_measures", "not_applicable", "saved_identity", "protocol", "MEASURES_CSV", "MEASURES_JSON"]

MEASURES_CSV = "measures.csv"
MEASURES_JSON = "measures.json"
MEASURES_FORMAT = "interp-measures-1"
# written first into a measures directory, naming the run: a directory holding it (or measures.json) is interp's, so
# a measures.csv left alone by a write cut short is not mistaken for a user's own file (see measures_dir_foreign)
MEASURES_MARKER = ".interp-measures"
NEURON_THRESHOLD = DEFAULT_THRESHOLDS["neurons"]
KEY_COLUMNS = ("restricted_loss", "restricted_acc", "excluded_loss", "excluded_acc", "test_over_restricted",
               "cos_explained", "frac_neurons_key")
CAUSAL_COLUMNS = ("restricted_loss_causal", "restricted_acc_causal", "excluded_loss_causal", "excluded_acc_causal")
# Columns that read MLP neurons or W_L: one per layer (suffix _l{L}) in a multi-layer model, besides the
# unsuffixed column of the layer chosen.
LAYER_COLUMNS = ("frac_neurons_clustered", "frac_neurons_key", "gini_W_L", "gini_W_L_freq")
GROUP_COLUMNS = KEY_COLUMNS + CAUSAL_COLUMNS + ("frac_neurons_clustered", "gini_W_E", "gini_W_L", "gini_W_E_freq",
                                               "gini_W_L_freq")
MLP_COLUMNS = ("frac_neurons_clustered", "frac_neurons_key", "gini_W_L", "gini_W_L_freq")
# The irrep columns of a group-composition task (interp.probes.irreps.measure_irreps), besides the per-key
# irrep_excluded_loss_{rho}; those that read MLP neurons or W_L.
IRREP_COLUMNS = ("irrep_restricted_loss", "irrep_restricted_acc", "irrep_excluded_loss", "irrep_excluded_acc",
                 "char_explained", "frac_neurons_irrep", "frac_neurons_key_irrep", "gini_irrep_W_E", "gini_irrep_W_L")
IRREP_MLP_COLUMNS = ("frac_neurons_irrep", "frac_neurons_key_irrep", "gini_irrep_W_L")


IRREP_PROTOCOL = {
    "basis": "the real irreducible representations of the group, computed from its multiplication table "
             "(interp.irreps); V_rho is the span of rho's matrix entries, orthonormalised",
    "key_irreps": "fixed once like the key frequencies: by default the neuron rule (a neuron's variance over the "
                  "pairs, 2-D transformed in the irrep basis, held >= 0.85 by one block (1 + V_rho) x (1 + V_rho))",
    "irrep_restricted_loss": "all pairs; logits projected, per class, onto (i, j) -> u(i j), u in V_rho of the key "
                             "irreps, plus their mean over pairs",
    "irrep_excluded_loss": "training pairs; logits minus that projection (irrep_excluded_loss_{rho}: one irrep only)",
    "char_explained": "sum over key rho of <L, unit chi_rho(i j c^-1)>^2 / squared norm of L centred over classes",
    "frac_neurons_irrep": "share of MLP neurons with >= 0.85 of their variance in one irrep's block",
    "frac_neurons_key_irrep": "the same, that irrep a key irrep",
    "gini_irrep_W_E/gini_irrep_W_L": "Hurley-Rickard Gini of the norms of W_E (token axis) / W_L (output axis) "
                                     "projected on each non-trivial irrep (N = number of irreps - 1)",
}


def irrep_columns(task: Task) -> bool:
    """True when measure_run adds the irrep columns: the group-composition tasks (op C<n>, D<n>, S<n>). add/sub/
    mul/div keep their Fourier columns only (their irrep measures equal those; call interp.probes.irreps)."""
    from ..finite_groups import is_group_op

    return is_group_op(task.op)


def not_applicable(task: Task, model=None) -> dict[str, str]:
    """Measure columns that have no meaning for ``task`` (and ``model``), each with the reason.

    Such a column is absent from the table and listed in measures.json ``not_applicable``; a sweep table and the
    emergence analysis report it as "not applicable", never as a flat or missing curve. The Fourier columns are not
    applicable to a non-abelian group (D_n, S_n) or a task without a group (the quadratic tasks); the irrep columns
    to a task that is not a composition in a finite group (the quadratic tasks). add/sub/mul/div are measured in their
    Fourier basis, which their irrep measures equal (``interp.probes.irreps`` computes those): no irrep columns, and
    none listed here.
    """
    out: dict[str, str] = {}
    if task.group is None and task.finite_group is not None:
        why = f"the group {task.op} is not abelian: no Fourier basis (its irrep columns measure the circuit)"
        out.update({c: why for c in GROUP_COLUMNS})
    elif task.group is None:
        why = f"task {task.op!r} has no group basis (its labels are not a group operation of the inputs)"
        out.update({c: why for c in GROUP_COLUMNS})
    if task.finite_group is None:
        try:
            task.require_finite_group("irrep measures")
        except ProbeError as e:  # the irrep functions' own one-line reason
            out.update({c: str(e) for c in IRREP_COLUMNS})
    if model is not None and not has_mlp(model):
        mlp = MLP_COLUMNS + (IRREP_MLP_COLUMNS if irrep_columns(task) else ())
        out.update({c: "attention-only model: no MLP neurons, no W_L" for c in mlp if c not in out})
    return out


def protocol(rule: str = "neurons", threshold: float | None = None, source: str = "final checkpoint",
             task: Task | None = None, model=None, layer: int | None = None) -> dict[str, Any]:
    """Every choice behind the columns of :func:`measure_run` (recorded with the measures)."""
    if rule in DEFAULT_THRESHOLDS and threshold is None:
        threshold = DEFAULT_THRESHOLDS[rule]
    extra: dict[str, Any] = {}
    if task is not None:
        g = task.group
        extra["task"] = task.description
        extra["basis"] = g.record() if g is not None else "none: the task has no group basis; circuit measures are " \
                                                             "not applicable"
        if g is not None and g.generator is not None:
            extra["pairs_outside_the_group"] = (
                f"the {task.n_pairs - g.order ** 2} pairs with a zero input have no discrete logarithm: left out of "
                "every circuit measure (key frequencies, restricted/excluded loss, cos terms, neuron clusters; Fourier "
                "norms use the non-zero residues), kept in train/test loss and accuracy")
    if model is not None:
        c = model.cfg
        chosen = check_layer(model, layer, "protocol", needs_mlp=False)
        extra["layer"] = (f"neuron and W_L columns read layer {chosen} of {c.n_layers}"
                          + (f"; per-layer columns *_l0..*_l{c.n_layers - 1}" if c.n_layers > 1 else ""))
        approx = []
        if c.n_layers > 1:
            approx.append("W_L of a layer below the last is its direct path to the logits only")
        if getattr(c, "normalization_type", None):
            approx.append(f"the model has {c.normalization_type} normalisation: W_L folds in the final norm's "
                          "centring and gain and ignores its per-input scale (Gini is scale-invariant, so this is "
                          "exact only when the scale is the same for every input)")
        if approx:
            extra["approximations"] = approx
    return {
        "fourier_order": "cos-first: row 0 const, row 2k-1 cos(2 pi k x / p), row 2k sin (docs/science.md)",
        "key_frequencies": {"rule": rule, "threshold": threshold,
                            "threshold_meaning": THRESHOLD_MEANING.get(rule, "given by the caller"),
                            "source": source, "fixed_for_all_checkpoints": True},
        "forward": "the model's own hooked forward (model.run_with_cache), last position, all p^2 pairs",
        "loss": "mean cross-entropy, log-softmax in float64",
        "train_loss/test_loss/acc": "recomputed on the checkpoint from the run's recorded split (split.json)",
        "prob_correct/brier": "mean softmax probability of the correct class; mean over pairs of "
                              "sum over classes of (prob - one-hot)^2",
        "restricted_loss": {"split": "all", "logits": "P_S L + mean over pairs of L"},
        "restricted_acc": {"split": "all", "logits": "P_S L + mean over pairs of L"},
        "excluded_loss": {"split": "train", "logits": "(I - P_S) L"},
        "excluded_acc": {"split": "train", "logits": "(I - P_S) L"},
        "excluded_loss_k{K}": {"split": "train", "logits": "L minus its projection on c_K, s_K only"},
        "test_over_restricted": "test_loss / restricted_loss",
        "gini_W_E": "Hurley-Rickard Gini of the p norms of the Fourier components (one per basis row, const "
                    "included) of W_E rows 0..p-1, transformed along the token axis",
        "gini_W_L": "the same for W_L = blocks.0.mlp.W_out @ W_U, transformed along the output axis",
        "gini_W_E_freq/gini_W_L_freq": "per-frequency variant: (p-1)/2 values sqrt(cos^2 + sin^2)",
        "sum_sq_weights": f"sum of squares of {SSW_INCLUDES}",
        "cos_explained": "sum over key k of <L, unit cos(w_k(a+b-c))>^2 / squared norm of L centred over the "
                         "classes of each pair",
        "frac_neurons_clustered": f"fraction of MLP neurons (blocks.0.mlp.hook_post, last position) whose best "
                                  f"frequency holds >= {NEURON_THRESHOLD} of their variance",
        "frac_neurons_key": f"fraction of MLP neurons (blocks.0.mlp.hook_post, last position) whose best frequency "
                            f"holds >= {NEURON_THRESHOLD} of their variance and is a key frequency",
        "empty_key_set": "restricted, excluded, cos and neuron columns are NaN when the key set is empty",
        **({"irreps": IRREP_PROTOCOL} if task is not None and irrep_columns(task) else {}),
        **extra,
    }


# ---------------------------------------------------------------------------------------------
# one model


def _mlp_layers(model) -> list[int]:
    return list(range(model.cfg.n_layers)) if has_mlp(model) else []


def _measures(model, task: Task, key_freqs: Sequence[int], where: str, layer: int | None = None,
              causal_top_k: int | None = None) -> dict[str, float]:
    check_model(model, task, where)
    g = task.group
    layers = _mlp_layers(model) if g is not None else []
    chosen = check_layer(model, layer, where, needs_mlp=False)
    L, acts = logits_and_layer_acts(model, task, where, layers)
    out: dict[str, float] = train_test_metrics(L, task)
    if g is not None:
        per_layer: dict[int, dict[str, float]] = {}
        d = Decomposition(L, task, key_freqs, where) if key_freqs else None
        for lay, a in zip(layers, acts):
            shares, variance = neuron_frequency_shares(group_acts(a, task, where), g.order)
            if lay == chosen and causal_top_k is not None:  # keys chosen at this checkpoint alone: no future
                c = Decomposition(L, task, _top_k(shares, variance, causal_top_k), where)
                out["restricted_loss_causal"], out["restricted_acc_causal"] = c.restricted("all")
                out["excluded_loss_causal"], out["excluded_acc_causal"] = c.excluded("train")
            best, best_k = shares.max(dim=1)
            clustered = best >= NEURON_THRESHOLD
            row = {"frac_neurons_clustered": clustered.double().mean().item()}
            if d is not None:
                row["frac_neurons_key"] = (torch.isin(best_k + 1, torch.tensor(d.freqs)) & clustered).double().mean().item()
            else:
                row["frac_neurons_key"] = math.nan
            norms = fourier_norms(model, task, layer=lay)
            row["gini_W_L"] = gini(norms["W_L"])
            row["gini_W_L_freq"] = gini(per_frequency_norms(norms["W_L"]))
            per_layer[lay] = row
        if chosen in per_layer:
            out["frac_neurons_clustered"] = per_layer[chosen]["frac_neurons_clustered"]
        if d is not None:
            out["restricted_loss"], out["restricted_acc"] = d.restricted("all")
            out["excluded_loss"], out["excluded_acc"] = d.excluded("train")
            for k, v in d.excluded_per_frequency("train").items():
                out[f"excluded_loss_k{k}"] = v
            out["test_over_restricted"] = out["test_loss"] / out["restricted_loss"]
            out["cos_explained"] = cos_coefficients(L, task, d.freqs).explained_fraction
        else:
            out.update({name: math.nan for name in KEY_COLUMNS})
        if chosen in per_layer:
            out["frac_neurons_key"] = per_layer[chosen]["frac_neurons_key"]
        else:
            out.pop("frac_neurons_key", None)
        w_e = fourier_norms(model, task, layer=chosen)["W_E"]
        out["gini_W_E"] = gini(w_e)
        if chosen in per_layer:
            out["gini_W_L"] = per_layer[chosen]["gini_W_L"]
        out["gini_W_E_freq"] = gini(per_frequency_norms(w_e))
        if chosen in per_layer:
            out["gini_W_L_freq"] = per_layer[chosen]["gini_W_L_freq"]
        if len(layers) > 1:
            for lay, row in per_layer.items():
                out.update({f"{name}_l{lay}": v for name, v in row.items()})
    out["sum_sq_weights"] = sum_squared_weights(model)
    return out


def measure_model(model, task: Task, key_freqs: Iterable[int], *, layer: int | None = None) -> dict[str, float]:
    """Every scalar measure of one model from a single ``run_with_cache`` on all pairs (hooks honoured).

    Keys: train_/test_ loss, acc, prob_correct and brier (the task's split), restricted_loss and
    restricted_acc (all pairs in the task's group), excluded_loss and excluded_acc (train pairs in the group),
    excluded_loss_k{K} for each key K, test_over_restricted, gini_W_E, gini_W_L (N = n basis-row norms, n the
    group order), gini_W_E_freq, gini_W_L_freq (N = n//2 per-frequency norms), sum_sq_weights, cos_explained,
    frac_neurons_clustered, frac_neurons_key. The neuron and W_L keys read ``layer`` (default: the last); a
    multi-layer model also gets them per layer (suffix ``_l{L}``). See :func:`protocol` for the exact
    definitions. ProbeError if ``key_freqs`` is empty or the task has no group basis.
    """
    g = task.require_group("measure_model")
    freqs = fourier.check_frequencies(key_freqs, g.order, what="measure_model: key frequencies")
    if not freqs:
        raise ProbeError("measure_model: empty key-frequency set; restricted and excluded loss need at least one "
                         "key frequency (pass key_freqs, e.g. from key_frequencies() of the final checkpoint)")
    return _measures(model, task, freqs, "measure_model", layer)


# ---------------------------------------------------------------------------------------------
# a run


@dataclass
class Measures:
    """The measures of a run: ``df`` (one row per checkpoint) and everything needed to read it.

    ``key_frequencies`` were fixed once (from ``key_frequency_step`` by ``rule``/``threshold``, or given) and used
    for every row. ``run`` records the run it was computed from: ``name``, ``path``, ``run_id`` (its identity),
    ``state`` and ``last_step`` when measured. ``run_finished`` is False for measures of an unfinished run.
    """

    df: pd.DataFrame
    key_frequencies: list[int]
    rule: str
    threshold: float | None
    key_frequency_step: int | None
    protocol: dict[str, Any]
    run: dict[str, Any] = field(default_factory=dict)
    source: str | None = None  # the directory it was loaded from (None: computed in this process)
    # measure columns with no meaning for this task or model: absent from df, listed here with the reason
    not_applicable: dict[str, str] = field(default_factory=dict)
    layer: int | None = None  # the layer the unsuffixed neuron and W_L columns read (None: not recorded)
    key_irreps: list[str] = field(default_factory=list)  # group tasks: the key irreps of the irrep columns

    @property
    def run_finished(self) -> bool:
        return bool(self.run.get("finished", True))

    @property
    def steps(self) -> list[int]:
        return [int(s) for s in self.df["step"]]

    def belongs_to(self, run) -> bool:
        """True when these measures were computed from ``run`` (same identity) and cover its checkpoints."""
        return self.run.get("run_id") == run.run_id and self.steps == run.steps

    def same_measurement(self, run, key_freqs: Sequence[int] | None = None,
                         llc: bool | LLCSettings = False, layer: int | None = None,
                         clock_pizza: bool = False) -> bool:
        """True when these measures already hold what measuring ``run`` now would compute (with ``key_freqs``, or
        found by the default rule; ``llc`` and ``layer`` as :func:`measure_run` takes them): same run, same
        checkpoints, same key-frequency protocol, the same layer (None: the last), the LLC columns with the same
        settings, and the clock / pizza columns when ``clock_pizza``. Measures that hold the LLC also serve a request without it (the other columns are the same)."""
        if not self.belongs_to(run):
            return False
        want = _llc_settings(llc, "same_measurement")
        had = self.protocol.get("llc") if isinstance(self.protocol, dict) else None
        if want is not None and (had.get("settings") if isinstance(had, dict) else None) != want.to_dict():
            return False
        if clock_pizza and not (isinstance(self.protocol, dict) and "clock_pizza" in self.protocol):
            return False  # measures with the clock / pizza columns (or their "not applicable") serve both requests
        n_layers = getattr(getattr(run, "config", None), "n_layers", None) or \
            (getattr(run, "hooked_kwargs", None) or {}).get("n_layers")
        wanted = layer if layer is not None else (n_layers - 1 if isinstance(n_layers, int) else None)
        if self.layer is not None and wanted is not None and wanted != self.layer:
            return False  # (files written before layers were recorded read the last)
        if key_freqs is None:
            return self.rule == "neurons" and self.threshold == NEURON_THRESHOLD
        return self.rule == "given" and sorted(self.key_frequencies) == sorted(int(k) for k in key_freqs)

    def __repr__(self) -> str:
        na = f", not_applicable={len(self.not_applicable)} columns" if self.not_applicable else ""
        lay = f", layer={self.layer}" if self.layer is not None else ""
        return (f"Measures(run={self.run.get('name')!r}, {len(self.df)} checkpoints, "
                f"key_frequencies={self.key_frequencies}{lay}, finished={self.run_finished}{na})")


def _llc_settings(llc: Any, where: str) -> LLCSettings | None:
    """The LLC settings an ``llc=`` argument asks for (None: no LLC columns)."""
    if llc is True:
        return LLCSettings()
    if llc is False or llc is None:
        return None
    if not isinstance(llc, LLCSettings):
        raise ProbeError(f"{where}: llc must be True, False or an LLCSettings, got {llc!r}")
    return llc


@uses_threads
def measure_run(run, key_freqs: Iterable[int] | None = None, steps: Iterable[int] | None = None,
                progress: bool = True, *, rule: str = "neurons", threshold: float | None = None,
                device: str = "cpu", layer: int | None = None, fallback_top_k: int | None = None,
                causal_top_k: int | None = None, threads: int | None = None,
                llc: bool | LLCSettings = False, key_irreps: Sequence[str] | None = None,
                clock_pizza: bool = False) -> Measures:
    """Measure every checkpoint of ``run`` (an :class:`interp.Run`, or a :class:`interp.folder.CheckpointFolder` of
    checkpoints trained elsewhere): a :class:`Measures`, one row per step.

    The key frequencies are found once, from the run's final checkpoint with ``rule``/``threshold``
    (the paper's neuron rule, 0.85, by default), unless ``key_freqs`` is given; they are the same for
    every row. Columns: ``step`` and the keys of :func:`measure_model`, in the basis of the run's task; a
    column with no meaning for the task (e.g. every circuit measure of ``a2+b2``) is left out and listed in
    ``Measures.not_applicable``. If the key set is empty (a run that formed no circuit) the key-dependent
    columns are NaN. ``layer``: the MLP the neuron and W_L columns read (default the last; every layer also
    gets its own columns in a multi-layer model). ``steps`` restricts the rows to some of the run's checkpoint
    steps. Train/test use ``run.task``, the run's recorded split. On an unfinished run the result says so
    (``run_finished`` False) and its key frequencies come from the last checkpoint there is.
    ``fallback_top_k``: when the rule finds no key frequency, use the top-k rule (:func:`top_frequencies`) at
    the final checkpoint instead. ``causal_top_k``: also the columns ``restricted_loss_causal`` etc. with the
    top-k frequencies of each checkpoint alone (keys that know nothing of the future).
    ``threads``: torch CPU threads while measuring (default :func:`interp.threads.default_threads`), restored
    afterwards.

    ``llc``: True (default settings) or an :class:`LLCSettings` adds the local learning coefficient of every
    checkpoint (columns ``llc``, ``llc_std``, ``llc_frac_negative``, ``llc_chain_spread``; needs ``interp[llc]``;
    slower than every other column together) and records its settings in the protocol. Checkpoints that fail a
    health check are named in one :class:`LLCWarning`.

    A group-composition task (op C<n>, D<n>, S<n>) also gets the irrep columns of
    :func:`interp.probes.irreps.measure_irreps`, with ``key_irreps`` (names) fixed once from the final checkpoint
    unless given (``Measures.key_irreps``); a non-abelian group has no Fourier columns.

    ``clock_pizza``: also the diagnostics of Zhong et al. 2023 (:mod:`interp.probes.clock_pizza`) of every
    checkpoint, columns ``gradient_symmetricity``, ``distance_irrelevance`` and ``all_pairs_acc``, from which
    :func:`interp.probes.clock_pizza.verdicts` gives each row's verdict. They are defined for addition mod p; on
    any other task the three columns are "not applicable" (``Measures.not_applicable``, with the reason).
    """
    if _llc_settings(llc, "measure_run"):
        devinterp_modules()  # a missing extra fails before any work
    if not callable(getattr(run, "snapshot", None)):
        raise ProbeError(f"measure_run: expected a run (interp.Run(DIR)) or a CheckpointFolder, got "
                         f"{type(run).__name__}; for one model use probes.measure_model(model, task)")
    run = run.snapshot()  # one list of checkpoints for the whole measurement, even while the run trains
    all_steps = run.steps
    if not all_steps:
        raise RunFormatError(f"{run.path}: run has no checkpoints (no step_*.safetensors)")
    if steps is None:
        chosen = all_steps
    else:
        chosen = sorted({int(s) for s in steps})
        if not chosen:
            raise ProbeError("measure_run: steps is empty")
        missing = sorted(set(chosen) - set(all_steps))
        if missing:
            raise ProbeError(f"measure_run: steps {missing[:10]} have no checkpoint in {run.path} "
                             f"(it has {len(all_steps)} checkpoints, steps {all_steps[0]}..{all_steps[-1]})")
    info = run.run_info() if isinstance(run, CheckpointFolder) else {
        "name": run.name, "path": str(run.path), "run_id": run.run_id, "state": run.state,
        "finished": run.finished, "last_step": all_steps[-1], "n_steps": run.config.n_steps}
    m = measure_series(((s, lambda s=s: run.load(s, device=device)) for s in chosen), run.task,
                       key_freqs, progress=progress, rule=rule, threshold=threshold, layer=layer,
                       key_model=lambda: run.load(all_steps[-1], device=device), key_step=all_steps[-1],
                       name=run.name, run_info=info, where="measure_run", fallback_top_k=fallback_top_k,
                       causal_top_k=causal_top_k, llc=llc, key_irreps=key_irreps, clock_pizza=clock_pizza)
    if isinstance(run, CheckpointFolder):  # the split is the caller's, not a split.json
        m.protocol["train_loss/test_loss/acc"] = f"recomputed on the checkpoint from {run.split_source}"
        m.protocol["source"] = run.describe()
    return m


def measure_series(models, task: Task, key_freqs: Iterable[int] | None = None, *, progress: bool = False,
                   rule: str = "neurons", threshold: float | None = None, layer: int | None = None,
                   device: str = "cpu", name: str | None = None, key_model=None, key_step: int | None = None,
                   run_info: dict[str, Any] | None = None, where: str = "measure_series",
                   fallback_top_k: int | None = None, causal_top_k: int | None = None,
                   llc: bool | LLCSettings = False, key_irreps: Sequence[str] | None = None,
                   clock_pizza: bool = False) -> Measures:
    """Measure checkpoints trained anywhere: the same :class:`Measures` as :func:`measure_run`.

    models: an iterable of ``(step, model)`` pairs (a model may also be a zero-argument callable that returns
    it, so checkpoints load one at a time), or a folder of TransformerLens state dicts (``*_STEP.safetensors``
    and a ``config.json`` of HookedTransformerConfig fields; a path or an :class:`interp.folder.CheckpointFolder`,
    whose identity the measures record). task: the :class:`interp.Task` they were trained
    on (:meth:`interp.Task.custom` for another input format or split). Key frequencies come from the last step
    unless given; every probe checks each model against the task first. ``llc``: as in :func:`measure_run`
    (the LLC is taken on ``task``'s training pairs unless the settings say otherwise); ``clock_pizza`` as there.
    """
    if rule not in RULES:
        raise ProbeError(f"{where}: rule must be one of {list(RULES)}, got {rule!r}")
    llc = _llc_settings(llc, where)
    if llc:
        devinterp_modules()  # a missing extra fails before any work
    if not isinstance(task, Task):
        raise ProbeError(f"{where}: task must be an interp.Task, got {type(task).__name__}")
    if isinstance(models, (str, Path)):
        folder = Path(models)
        if not folder.is_dir():
            raise RunFormatError(f"{folder}: not a directory of checkpoints")
        models = CheckpointFolder(folder, task)
    if isinstance(models, CheckpointFolder):
        from ..model import check_device

        if models.task is not task and (models.task.op, models.task.p, models.task.train_idx.tolist()) != (
                task.op, task.p, task.train_idx.tolist()):
            raise ProbeError(f"{where}: the folder {models.path} was opened for {models.task.description}, not "
                             f"{task.description} (its identity records the task it is measured as)")

        check_device(device)
        name = name or models.name
        run_info = run_info or models.run_info()
        folder_models = models
        models = [(s, lambda s=s: folder_models.load(s, device=device)) for s in folder_models.steps]
    items = sorted(((int(s), m) for s, m in models), key=lambda t: t[0])
    if not items:
        raise ProbeError(f"{where}: no checkpoints to measure")
    if len({s for s, _ in items}) != len(items):
        raise ProbeError(f"{where}: two checkpoints have the same step")

    def get(m):
        return m() if callable(m) and not isinstance(m, torch.nn.Module) else m

    g = task.group
    n = fourier.n_frequencies(g.order) if g is not None else 0
    for arg, k in (("fallback_top_k", fallback_top_k), ("causal_top_k", causal_top_k)):
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n):
            raise ProbeError(f"{where}: {arg} must be None or an integer in 1..{n} (the frequencies of "
                             f"{g.name if g is not None else 'a task without a group'}), got {k!r}")
    if key_model is None:
        key_step, key_model = items[-1][0], items[-1][1]
    first = get(key_model)
    check_model(first, task, where)
    chosen_layer = check_layer(first, layer, where, needs_mlp=False)
    if g is None:
        freqs, source, rule, threshold, freq_step = [], "not applicable: the task has no group basis", "none", None, None
    elif key_freqs is None:
        freqs = key_frequencies(first, task, rule=rule, threshold=threshold, layer=chosen_layer) if has_mlp(first) \
            or rule == "embedding" else []
        threshold = DEFAULT_THRESHOLDS[rule] if threshold is None else float(threshold)
        source, freq_step = f"checkpoint {key_step} (the last of the run), rule {rule!r}, layer {chosen_layer}", key_step
        if not freqs and fallback_top_k is not None and has_mlp(first):
            freqs = top_frequencies(first, task, fallback_top_k, layer=chosen_layer)
            source += f" found none: the top-{fallback_top_k} rule (most neuron variance) at checkpoint {key_step}"
            rule, threshold = f"top{fallback_top_k}", None
    else:
        freqs = fourier.check_frequencies(key_freqs, g.order, what=f"{where}: key_freqs")
        if not freqs:
            raise ProbeError(f"{where}: key_freqs is empty; pass at least one frequency or None to find them")
        source, rule, threshold, freq_step = "given by the caller", "given", None, None
    irreps_on = irrep_columns(task)
    if irreps_on:
        irrep_keys, irrep_source = _find_key_irreps(first, task, key_irreps, chosen_layer, key_step)
    elif key_irreps is not None:
        raise ProbeError(f"{where}: key_irreps is for a group-composition task (op C<n>, D<n>, S<n>); "
                         f"{task.description} has its Fourier columns (call interp.probes.irreps directly)")
    na = not_applicable(task, first)
    proto = protocol(rule, threshold, source, task=task, model=first, layer=chosen_layer)
    cp_on = False
    if clock_pizza:
        try:
            _cp.check_applicable(task, where)
            cp_on = True
            proto["clock_pizza"] = {**_cp.PROTOCOL, "thresholds": _cp.THRESHOLDS}
        except ProbeError as e:  # the one-line reason, kept with the columns it leaves out
            na.update({c: str(e) for c in _cp.COLUMNS})
            proto["clock_pizza"] = f"not applicable: {e}"
    if irreps_on:
        proto["irreps"] = {**proto["irreps"], "key_irreps_source": irrep_source,
                           "irreps": [f"{r.name} (dim {r.dim})" for r in irrep_basis_of(task).irreps],
                           "group": task.finite_group.record()}
    if causal_top_k is not None:
        proto["causal_columns"] = (f"restricted/excluded loss and accuracy with the top-{causal_top_k} frequencies "
                                   "(most neuron variance) of each checkpoint alone")
    if llc:
        proto["llc"] = llc_protocol(llc)
    del first

    bar = Progress(len(items), f"measure {name or 'models'}", "checkpoint", enabled=progress)
    rows, unhealthy = [], {}
    for i, (step, m) in enumerate(items, start=1):
        model = get(m)
        rows.append({"step": step, **_measures(model, task, freqs, where, chosen_layer, causal_top_k)})
        if irreps_on:
            rows[-1].update(measure_irreps(model, task, irrep_keys, layer=chosen_layer))
        if cp_on:
            r = _cp.clock_or_pizza(model, task)
            rows[-1].update(gradient_symmetricity=r.gradient_symmetricity,
                            distance_irrelevance=r.distance_irrelevance, all_pairs_acc=r.accuracy)
        if llc:
            row, problems = llc_row(model, task, llc)
            rows[-1].update(row)
            if problems:
                unhealthy[step] = problems
        del model
        bar.update(i)
    bar.close()
    if unhealthy:
        warn_unhealthy(where, unhealthy)
    df = pd.DataFrame(rows)
    df = df[[c for c in df.columns if c not in na]]
    return Measures(df, list(freqs), rule, threshold, freq_step, proto,
                    run_info or {"name": name, "finished": True}, None, na, chosen_layer,
                    irrep_keys if irreps_on else [])


def _find_key_irreps(model, task: Task, given, layer: int, step) -> tuple[list[str], str]:
    """The key irreps of a group task's run: given, or the neuron rule at the final checkpoint; when it finds none,
    the embedding rule (irrep norm of W_E at least half the largest)."""
    basis = irrep_basis_of(task, "measure_run")
    if given is not None:
        keys = sorted({basis.index(k) for k in ([given] if isinstance(given, str) else given)})
        if not keys or 0 in keys:
            raise ProbeError(f"key_irreps must name non-trivial irreps of {task.op}: {basis.names[1:]}")
        return [basis.names[i] for i in keys], "given by the caller"
    if has_mlp(model):
        keys = find_key_irreps(model, task, "neurons", layer=layer)
        if keys:
            return keys, (f"checkpoint {step} (the last), neuron rule {IRREP_THRESHOLDS['neurons']}, layer {layer}")
    keys = find_key_irreps(model, task, "embedding")
    return keys, (f"checkpoint {step} (the last): the neuron rule found none, so the embedding rule (W_E irrep norm "
                  f">= {IRREP_THRESHOLDS['embedding']} of the largest)")


# ---------------------------------------------------------------------------------------------
# files


def save_measures(measures: Measures, out_dir: str | Path) -> Path:
    """Write ``measures.csv`` and ``measures.json`` (key frequencies, rule, protocol, source run) into
    ``out_dir`` (created), each atomically. Returns ``out_dir``."""
    if not isinstance(measures, Measures):
        raise ProbeError(f"save_measures: expected a Measures (the output of measure_run), got "
                         f"{type(measures).__name__}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": MEASURES_FORMAT,
        "key_frequencies": [int(k) for k in measures.key_frequencies],
        "rule": measures.rule,
        "threshold": measures.threshold,
        "key_frequency_step": measures.key_frequency_step,
        "protocol": measures.protocol,
        "run": measures.run,
        "steps": measures.steps,
        "columns": list(measures.df.columns),
        "layer": measures.layer,
        "not_applicable": sorted(measures.not_applicable),
        "not_applicable_reasons": measures.not_applicable,
    }
    if measures.key_irreps:  # only group tasks: the files of every other run stay as they were
        meta["key_irreps"] = list(measures.key_irreps)
    table = measures.df.to_csv(index=False)
    # The pair is one unit: measures.json records the hash of the table it describes, so a reader that finds a
    # measures.csv from another write (a kill between the two renames) refuses the pair instead of mixing them.
    meta["csv_sha256"] = hashlib.sha256(table.encode("utf-8")).hexdigest()
    atomic_write_text(out / MEASURES_MARKER, json.dumps({"run": measures.run}, sort_keys=True) + "\n")
    atomic_write_text(out / MEASURES_CSV, table)
    kill_point("measure.csv")
    atomic_write_text(out / MEASURES_JSON, json.dumps(meta, indent=1) + "\n")
    return out


def measures_dir_foreign(directory: str | Path) -> list[str]:
    """The names of files in ``directory`` that interp did not write as measures (empty when it is new, empty, or
    holds only interp's measures): a measures.csv without measures.json or the marker beside it is the user's."""
    d = Path(directory)
    if not d.is_dir():
        return []
    names = {f.name for f in d.iterdir()}
    ours = {MEASURES_CSV, MEASURES_JSON, MEASURES_MARKER, ".lock"}
    foreign = sorted(n for n in names if n not in ours and not (n.startswith(".") and n.endswith(".tmp")))
    if MEASURES_CSV in names and not names & {MEASURES_JSON, MEASURES_MARKER}:
        foreign.insert(0, MEASURES_CSV)
    return foreign


def saved_identity(directory: str | Path) -> dict[str, Any] | None:
    """The ``run`` record (name, path, run_id, ...) of the measures saved in ``directory``; None if none are.

    Read from measures.json alone, so it names the owner even of a pair damaged by an interrupted write."""
    path = Path(directory) / MEASURES_JSON
    if not path.exists():
        return None
    meta = read_json(path)
    run = meta.get("run") if isinstance(meta, dict) else None
    if not isinstance(run, dict):
        raise RunFormatError(f"{path}: has no 'run' record; cannot tell whose measures these are")
    return run


def load_measures(directory: str | Path) -> Measures:
    """Read what :func:`save_measures` wrote."""
    d = Path(directory)
    csv_path, json_path = d / MEASURES_CSV, d / MEASURES_JSON
    for path in (csv_path, json_path):
        if not path.is_file():
            raise RunFormatError(f"{path}: file not found (write it with `interp measure`)")
    meta = read_json(json_path)
    if not isinstance(meta, dict) or meta.get("format") != MEASURES_FORMAT:
        raise RunFormatError(f"{json_path}: not an interp measures file (field 'format' must be {MEASURES_FORMAT!r})")
    if not isinstance(meta.get("key_frequencies"), list):
        raise RunFormatError(f"{json_path}: field 'key_frequencies' is missing or not a list")
    want = meta.get("csv_sha256")
    if want is not None and hashlib.sha256(read_limited(csv_path)).hexdigest() != want:
        raise RunFormatError(f"{csv_path}: is not the table {json_path.name} describes (a write interrupted between "
                             f"the two files?); recompute with `interp measure RUN --out {d} --recompute`")
    df = read_csv_checked(csv_path)
    if "step" not in df.columns or not pd.api.types.is_integer_dtype(df["step"]):
        raise RunFormatError(f"{csv_path}: needs an integer 'step' column")
    if meta.get("steps") != df["step"].tolist():
        raise RunFormatError(f"{csv_path}: its steps do not match {json_path.name} "
                             "(files from different measurements?)")
    na = meta.get("not_applicable") or []
    reasons = meta.get("not_applicable_reasons") or {}
    if not isinstance(na, list) or not isinstance(reasons, dict):
        raise RunFormatError(f"{json_path}: field 'not_applicable' must be a list of column names")
    return Measures(df, [int(k) for k in meta["key_frequencies"]], meta.get("rule"), meta.get("threshold"),
                    meta.get("key_frequency_step"), meta.get("protocol", {}), meta.get("run") or {}, str(d),
                    {str(c): str(reasons.get(c, "not applicable")) for c in na}, meta.get("layer"),
                    [str(k) for k in meta.get("key_irreps") or []])


def measures_candidates(run) -> list[Path]:
    """Where the measures of ``run`` may be, in order: ``RUN/measures`` (where a sweep puts them), ``probes/<name>``
    beside the run's parent folder (the repository layout: checkpoints/NAME -> probes/NAME), then ``probes/<name>``
    in the current directory."""
    path = Path(run.path).resolve()
    out = [path / "measures", path.parent.parent / "probes" / run.name, Path.cwd() / "probes" / run.name]
    return list(dict.fromkeys(out))


def find_measures(run, candidates: Sequence[Path] | None = None) -> Measures | None:
    """The saved measures of ``run``: the first candidate directory whose measures belong to it (same identity,
    same checkpoints); None when there are none. Measures of another run under the run's name are refused
    (RunFormatError naming both identities), never silently used or replaced."""
    foreign = []
    for d in candidates if candidates is not None else measures_candidates(run):
        if not (Path(d) / MEASURES_JSON).is_file():
            continue
        m = load_measures(d)
        if m.belongs_to(run):
            return m
        foreign.append((Path(d), m))
    if foreign:
        d, m = foreign[0]
        if m.run.get("run_id") == run.run_id:
            steps = run.steps
            raise RunFormatError(
                f"{d}: these measures of {run.path} are out of date: they cover {len(m.steps)} checkpoints "
                f"(steps {m.steps[0] if m.steps else '-'}..{m.steps[-1] if m.steps else '-'}), the run now has "
                f"{len(steps)} (to step {steps[-1] if steps else '-'}); recompute them with "
                f"`interp measure {run.path} --out {d} --recompute` (or `interp report {run.path} --recompute`)")
        if m.run.get("kind") == "checkpoint folder" and m.run.get("path") == str(run.path):
            raise RunFormatError(
                f"{d}: these measures of {run.path} were computed as {m.run.get('task')} with training pairs from "
                f"{m.run.get('split')}, or from files since changed; this is {run.task.description} with pairs "
                f"from {run.split_source}: measure it into another --out, or pass --recompute")
        raise RunFormatError(f"{d}: these measures are not this run's: they were computed from run "
                             f"{m.run.get('run_id')} ({m.run.get('path')}), this is run {run.run_id} ({run.path}); "
                             f"measure it with `interp measure {run.path} --out DIR` or use "
                             f"`interp report {run.path} --recompute`")
    return None
