"""Every measure of one model from one forward, every checkpoint of a run, and the measures on disk.

>>> m = measure_run(run)                       # doctest: +SKIP
>>> m.key_frequencies, m.df.columns[:5].tolist()   # doctest: +SKIP
([9, 16, 26], ['step', 'train_loss', 'train_acc', 'test_loss', 'test_acc'])
>>> save_measures(m, "probes/small")            # measures.csv + measures.json  # doctest: +SKIP

A :class:`Measures` carries its table together with the key frequencies, the protocol and the identity and
state of the run it was computed from, so nothing depends on ``DataFrame.attrs`` (which pandas drops).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd
import torch

from .. import fourier
from ..errors import ProbeError, RunFormatError
from ..files import atomic_write_text, one_line
from ..progress import Progress
from ..tasks import Task
from ._common import check_task_add, logits_and_neuron_acts
from .frequencies import (DEFAULT_THRESHOLDS, RULES, THRESHOLD_MEANING, _top_k, fourier_norms, key_frequencies,
                          neuron_frequency_shares, per_frequency_norms, top_frequencies)
from .learning_coefficient import LLCSettings, devinterp_modules, llc_protocol, llc_row, warn_unhealthy
from .losses import Decomposition, cos_coefficients, train_test_metrics
from .sparsity import gini, sum_squared_weights

__all__ = ["Measures", "measure_model", "measure_run", "save_measures", "load_measures", "find_measures",
           "protocol", "MEASURES_CSV", "MEASURES_JSON"]

MEASURES_CSV = "measures.csv"
MEASURES_JSON = "measures.json"
MEASURES_FORMAT = "interp-measures-1"
NEURON_THRESHOLD = DEFAULT_THRESHOLDS["neurons"]
KEY_COLUMNS = ("restricted_loss", "restricted_acc", "excluded_loss", "excluded_acc", "test_over_restricted",
               "cos_explained", "frac_neurons_key")
CAUSAL_COLUMNS = ("restricted_loss_causal", "restricted_acc_causal", "excluded_loss_causal", "excluded_acc_causal")


def protocol(rule: str = "neurons", threshold: float | None = None, source: str = "final checkpoint") -> dict[str, Any]:
    """Every choice behind the columns of :func:`measure_run` (recorded with the measures)."""
    if rule in DEFAULT_THRESHOLDS and threshold is None:
        threshold = DEFAULT_THRESHOLDS[rule]
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
        "sum_sq_weights": "sum of squares of every trainable parameter (requires_grad); frozen zero biases excluded",
        "cos_explained": "sum over key k of <L, unit cos(w_k(a+b-c))>^2 / squared norm of L centred over the "
                         "classes of each pair",
        "frac_neurons_clustered": f"fraction of MLP neurons (blocks.0.mlp.hook_post, last position) whose best "
                                  f"frequency holds >= {NEURON_THRESHOLD} of their variance",
        "frac_neurons_key": f"fraction of MLP neurons (blocks.0.mlp.hook_post, last position) whose best frequency "
                            f"holds >= {NEURON_THRESHOLD} of their variance and is a key frequency",
        "empty_key_set": "restricted, excluded, cos and neuron columns are NaN when the key set is empty",
    }


# ---------------------------------------------------------------------------------------------
# one model


def _measures(model, task: Task, key_freqs: Sequence[int], where: str,
              causal_top_k: int | None = None) -> dict[str, float]:
    L, acts = logits_and_neuron_acts(model, task, where)
    out: dict[str, float] = train_test_metrics(L, task)
    shares, variance = neuron_frequency_shares(acts, task.p)
    best, best_k = shares.max(dim=1)
    clustered = best >= NEURON_THRESHOLD
    out["frac_neurons_clustered"] = clustered.double().mean().item()
    if key_freqs and task.op == "add":
        d = Decomposition(L, task, key_freqs, where)
        out["restricted_loss"], out["restricted_acc"] = d.restricted("all")
        out["excluded_loss"], out["excluded_acc"] = d.excluded("train")
        for k, v in d.excluded_per_frequency("train").items():
            out[f"excluded_loss_k{k}"] = v
        out["test_over_restricted"] = out["test_loss"] / out["restricted_loss"]
        out["cos_explained"] = cos_coefficients(L, task, d.freqs).explained_fraction
        on_key = torch.isin(best_k + 1, torch.tensor(d.freqs)) & clustered
        out["frac_neurons_key"] = on_key.double().mean().item()
    else:
        out.update({name: math.nan for name in KEY_COLUMNS})
    if causal_top_k is not None and task.op == "add":  # keys chosen at this checkpoint alone: no future
        c = Decomposition(L, task, _top_k(shares, variance, causal_top_k), where)
        out["restricted_loss_causal"], out["restricted_acc_causal"] = c.restricted("all")
        out["excluded_loss_causal"], out["excluded_acc_causal"] = c.excluded("train")
    for name, v in fourier_norms(model).items():
        out[f"gini_{name}"] = gini(v)
        out[f"gini_{name}_freq"] = gini(per_frequency_norms(v))
    out["sum_sq_weights"] = sum_squared_weights(model)
    return out


def measure_model(model, task: Task, key_freqs: Iterable[int]) -> dict[str, float]:
    """Every scalar measure of one model from a single ``run_with_cache`` on all pairs (hooks honoured).

    Keys: train_/test_ loss, acc, prob_correct and brier (the task's split), restricted_loss and
    restricted_acc (all pairs), excluded_loss and excluded_acc (train pairs), excluded_loss_k{K} for
    each key K, test_over_restricted, gini_W_E, gini_W_L (N = p basis-row norms), gini_W_E_freq,
    gini_W_L_freq (N = (p-1)/2 per-frequency norms), sum_sq_weights, cos_explained, frac_neurons_clustered,
    frac_neurons_key. See :func:`protocol` for the exact definitions. ProbeError if ``key_freqs`` is empty.
    """
    check_task_add(task, "measure_model")
    freqs = fourier.check_frequencies(key_freqs, task.p, what="measure_model: key frequencies")
    if not freqs:
        raise ProbeError("measure_model: empty key-frequency set; restricted and excluded loss need at least one "
                         "key frequency (pass key_freqs, e.g. from key_frequencies() of the final checkpoint)")
    return _measures(model, task, freqs, "measure_model")


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

    @property
    def run_finished(self) -> bool:
        return bool(self.run.get("finished", True))

    @property
    def steps(self) -> list[int]:
        return [int(s) for s in self.df["step"]]

    def belongs_to(self, run) -> bool:
        """True when these measures were computed from ``run`` (same identity) and cover its checkpoints."""
        return self.run.get("run_id") == run.run_id and self.steps == run.steps

    def __repr__(self) -> str:
        return (f"Measures(run={self.run.get('name')!r}, {len(self.df)} checkpoints, "
                f"key_frequencies={self.key_frequencies}, finished={self.run_finished})")


def measure_run(run, key_freqs: Iterable[int] | None = None, steps: Iterable[int] | None = None,
                progress: bool = True, *, rule: str = "neurons", threshold: float | None = None,
                device: str = "cpu", fallback_top_k: int | None = None,
                causal_top_k: int | None = None, llc: bool | LLCSettings = False) -> Measures:
    """Measure every checkpoint of ``run`` (an :class:`interp.Run`): a :class:`Measures`, one row per step.

    The key frequencies are found once, from the run's final checkpoint with ``rule``/``threshold``
    (the paper's neuron rule, 0.85, by default), unless ``key_freqs`` is given; they are the same for
    every row. Columns: ``step`` and the keys of :func:`measure_model`. If the key set is empty (a run that
    formed no circuit) the key-dependent columns are NaN. ``steps`` restricts the rows to some of the run's
    checkpoint steps. Train/test use ``run.task``, the run's recorded split. On an unfinished run the result
    says so (``run_finished`` False) and its key frequencies come from the last checkpoint there is.

    ``llc``: True (default settings) or an :class:`LLCSettings` adds the local learning coefficient of every
    checkpoint (columns ``llc``, ``llc_std``, ``llc_frac_negative``, ``llc_chain_spread``; needs ``interp[llc]``;
    slower than every other column together) and records its settings in the protocol. Checkpoints that fail a
    health check are named in one :class:`LLCWarning`.
    """
    if rule not in RULES:
        raise ProbeError(f"measure_run: rule must be one of {list(RULES)}, got {rule!r}")
    if llc is True:
        llc = LLCSettings()
    if llc:
        devinterp_modules()  # a missing extra fails before any work
    elif llc is not False and not isinstance(llc, LLCSettings):
        raise ProbeError(f"measure_run: llc must be True, False or an LLCSettings, got {llc!r}")
    task = run.task
    for name, k in (("fallback_top_k", fallback_top_k), ("causal_top_k", causal_top_k)):
        n = fourier.n_frequencies(task.p)
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n):
            raise ProbeError(f"measure_run: {name} must be None or an integer in 1..{n} (the frequencies of "
                             f"p = {task.p}), got {k!r}")
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
    final = all_steps[-1]
    if key_freqs is None:
        final_model = run.load(final, device=device)
        freqs = key_frequencies(final_model, task, rule=rule, threshold=threshold)
        threshold = DEFAULT_THRESHOLDS[rule] if threshold is None else float(threshold)
        source, freq_step = f"checkpoint {final} (the last of the run), rule {rule!r}", final
        if not freqs and fallback_top_k is not None and task.op == "add":
            freqs = top_frequencies(final_model, task, fallback_top_k)
            source += f" found none: the top-{fallback_top_k} rule (most neuron variance) at checkpoint {final}"
            rule, threshold = f"top{fallback_top_k}", None
        del final_model
    else:
        freqs = fourier.check_frequencies(key_freqs, task.p, what="measure_run: key_freqs")
        if not freqs:
            raise ProbeError("measure_run: key_freqs is empty; pass at least one frequency or None to find them")
        source, rule, threshold, freq_step = "given by the caller", "given", None, None

    bar = Progress(len(chosen), f"measure {run.name}", "checkpoint", enabled=progress)
    rows, unhealthy = [], {}
    for i, step in enumerate(chosen, start=1):
        model = run.load(step, device=device)
        rows.append({"step": step, **_measures(model, task, freqs, "measure_run", causal_top_k)})
        if llc:
            row, problems = llc_row(model, task, llc)
            rows[-1].update(row)
            if problems:
                unhealthy[step] = problems
        del model
        bar.update(i)
    bar.close()
    if unhealthy:
        warn_unhealthy("measure_run", unhealthy)
    proto = protocol(rule, threshold, source)
    if llc:
        proto["llc"] = llc_protocol(llc)
    if causal_top_k is not None:
        proto["causal_columns"] = (f"restricted/excluded loss and accuracy with the top-{causal_top_k} frequencies "
                                   "(most neuron variance) of each checkpoint alone")
    if task.op != "add":
        proto["op"] = f"op {task.op!r}: the a+b directions do not apply, key-dependent columns are NaN"
    status = run.meta.get("status", {})
    return Measures(pd.DataFrame(rows), list(freqs), rule, threshold, freq_step, proto,
                    {"name": run.name, "path": str(run.path), "run_id": run.run_id, "state": run.state,
                     "finished": run.finished, "last_step": status.get("step"), "n_steps": run.config.n_steps})


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
    }
    atomic_write_text(out / MEASURES_CSV, measures.df.to_csv(index=False))
    atomic_write_text(out / MEASURES_JSON, json.dumps(meta, indent=1) + "\n")
    return out


def load_measures(directory: str | Path) -> Measures:
    """Read what :func:`save_measures` wrote."""
    d = Path(directory)
    csv_path, json_path = d / MEASURES_CSV, d / MEASURES_JSON
    for path in (csv_path, json_path):
        if not path.is_file():
            raise RunFormatError(f"{path}: file not found (write it with `interp measure`)")
    try:
        meta = json.loads(json_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunFormatError(f"{json_path}: malformed JSON ({one_line(e)[:120]})") from None
    if not isinstance(meta, dict) or meta.get("format") != MEASURES_FORMAT:
        raise RunFormatError(f"{json_path}: not an interp measures file (field 'format' must be {MEASURES_FORMAT!r})")
    if not isinstance(meta.get("key_frequencies"), list):
        raise RunFormatError(f"{json_path}: field 'key_frequencies' is missing or not a list")
    try:
        df = pd.read_csv(csv_path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise RunFormatError(f"{csv_path}: not a valid CSV ({one_line(e)[:120]})") from None
    if "step" not in df.columns or not pd.api.types.is_integer_dtype(df["step"]):
        raise RunFormatError(f"{csv_path}: needs an integer 'step' column")
    if meta.get("steps") != df["step"].tolist():
        raise RunFormatError(f"{csv_path}: its steps do not match {json_path.name} "
                             "(files from different measurements?)")
    return Measures(df, [int(k) for k in meta["key_frequencies"]], meta.get("rule"), meta.get("threshold"),
                    meta.get("key_frequency_step"), meta.get("protocol", {}), meta.get("run") or {}, str(d))


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
        why = (f"they were computed from run {m.run.get('run_id')} ({m.run.get('path')}), this is run {run.run_id}"
               if m.run.get("run_id") != run.run_id else
               f"they cover steps {m.steps[:1]}..{m.steps[-1:]} ({len(m.steps)} checkpoints), the run now has "
               f"{len(run.steps)}")
        raise RunFormatError(f"{d}: these measures are not this run's ({run.path}): {why}; rerun "
                             f"`interp measure {run.path} --out DIR` or recompute")
    return None
