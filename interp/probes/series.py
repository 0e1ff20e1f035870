"""Every measure of one model from one forward, every checkpoint of a run, and saving the result.

>>> df = measure_run(run)                      # doctest: +SKIP
>>> df.attrs["key_frequencies"], df.columns[:5].tolist()   # doctest: +SKIP
([9, 16, 26], ['step', 'train_loss', 'train_acc', 'test_loss', 'test_acc'])
>>> save_measures(df, "probes/small", run=run)  # measures.csv + key_frequencies.json  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

from .. import fourier
from ..errors import ProbeError, RunFormatError
from ..tasks import Task
from ._common import accuracy, check_task_add, cross_entropy, logits_and_neuron_acts
from .frequencies import DEFAULT_THRESHOLDS, RULES, THRESHOLD_MEANING, _per_frequency, fourier_norms, key_frequencies
from .frequencies import neuron_frequency_shares
from .losses import Decomposition, _cos_coefficients, train_test_metrics
from .losses import _per_frequency as _excluded_per_frequency
from .sparsity import gini, sum_squared_weights

__all__ = ["measure_model", "measure_run", "save_measures", "load_measures", "protocol", "MEASURES_CSV",
           "KEY_FREQUENCIES_JSON"]

MEASURES_CSV = "measures.csv"
KEY_FREQUENCIES_JSON = "key_frequencies.json"
NEURON_THRESHOLD = DEFAULT_THRESHOLDS["neurons"]


def protocol(rule: str = "neurons", threshold: float | None = None, source: str = "final checkpoint") -> dict[str, Any]:
    """Every choice behind the columns of :func:`measure_run` (recorded in ``df.attrs["protocol"]``)."""
    threshold = DEFAULT_THRESHOLDS[rule] if threshold is None else threshold
    return {
        "fourier_order": "cos-first: row 0 const, row 2k-1 cos(2 pi k x / p), row 2k sin (REFERENCE.md 2)",
        "key_frequencies": {"rule": rule, "threshold": threshold, "threshold_meaning": THRESHOLD_MEANING[rule],
                            "source": source, "fixed_for_all_checkpoints": True},
        "logits": "last position, all p^2 pairs, d_vocab_out classes, one model.run_with_cache per checkpoint",
        "loss": "mean cross-entropy, log-softmax in float64",
        "train_loss/test_loss/acc": "recomputed on the checkpoint from the run's recorded split (split.json)",
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


def _measures(model, task: Task, key_freqs: Sequence[int], where: str) -> dict[str, float]:
    L, acts = logits_and_neuron_acts(model, task, where)
    labels = task.labels()
    out: dict[str, float] = train_test_metrics(L, task)
    shares, _ = neuron_frequency_shares(acts, task.p)
    best, best_k = shares.max(dim=1)
    clustered = best >= NEURON_THRESHOLD
    out["frac_neurons_clustered"] = clustered.double().mean().item()
    nan = math.nan
    if key_freqs and task.op == "add":
        d = Decomposition(L, task, key_freqs, where)
        restricted, excluded = d.restricted(), d.excluded()
        train = task.train_idx
        out["restricted_loss"] = cross_entropy(restricted, labels)
        out["restricted_acc"] = accuracy(restricted, labels)
        out["excluded_loss"] = cross_entropy(excluded[train], labels[train])
        out["excluded_acc"] = accuracy(excluded[train], labels[train])
        for k, v in _excluded_per_frequency(d, "train").items():
            out[f"excluded_loss_k{k}"] = v
        out["test_over_restricted"] = out["test_loss"] / out["restricted_loss"]
        out["cos_explained"] = _cos_coefficients(L, task, d.freqs).explained_fraction
        on_key = torch.isin(best_k + 1, torch.tensor(d.freqs)) & clustered
        out["frac_neurons_key"] = on_key.double().mean().item()
    else:
        for name in ("restricted_loss", "restricted_acc", "excluded_loss", "excluded_acc", "test_over_restricted",
                     "cos_explained", "frac_neurons_key"):
            out[name] = nan
    norms = fourier_norms(model)
    for name, v in norms.items():
        out[f"gini_{name}"] = gini(v)
        out[f"gini_{name}_freq"] = gini(_per_frequency(v))
    out["sum_sq_weights"] = sum_squared_weights(model)
    return out


def measure_model(model, task: Task, key_freqs: Iterable[int]) -> dict[str, float]:
    """Every scalar measure of one model from a single ``run_with_cache`` on all pairs.

    Keys: train_loss, train_acc, test_loss, test_acc (the task's split), restricted_loss and
    restricted_acc (all pairs), excluded_loss and excluded_acc (train pairs), excluded_loss_k{K} for
    each key K, test_over_restricted, gini_W_E, gini_W_L (N = p basis-row norms), gini_W_E_freq,
    gini_W_L_freq (N = (p-1)/2 per-frequency norms), sum_sq_weights, cos_explained, frac_neurons_clustered,
    frac_neurons_key.
    See :func:`protocol` for the exact definitions. ProbeError if ``key_freqs`` is empty.
    """
    check_task_add(task, "measure_model")
    freqs = fourier.check_frequencies(key_freqs, task.p, what="measure_model: key frequencies")
    if not freqs:
        raise ProbeError("measure_model: empty key-frequency set; restricted and excluded loss need at least one "
                         "key frequency (pass key_freqs, e.g. from key_frequencies() of the final checkpoint)")
    return _measures(model, task, freqs, "measure_model")


def measure_run(run, key_freqs: Iterable[int] | None = None, steps: Iterable[int] | None = None,
                progress: bool = True, *, rule: str = "neurons", threshold: float | None = None,
                device: str = "cpu"):
    """Measure every checkpoint of ``run`` (an :class:`interp.Run`): a pandas DataFrame, one row per step.

    The key frequencies are found once, from the run's final checkpoint with ``rule``/``threshold``
    (the paper's neuron rule, 0.85, by default), unless ``key_freqs`` is given; they are the same for
    every row and stored in ``df.attrs["key_frequencies"]``, with every protocol choice in
    ``df.attrs["protocol"]``. Columns: ``step`` and the keys of :func:`measure_model`. If the key set is
    empty (a run that formed no circuit) the key-dependent columns are NaN. ``steps`` restricts the
    rows to some of the run's checkpoint steps. Train/test use ``run.task``, the run's recorded split.
    """
    import pandas as pd

    if rule not in RULES:
        raise ProbeError(f"measure_run: rule must be one of {list(RULES)}, got {rule!r}")
    task = run.task
    all_steps = run.steps
    if not all_steps:
        raise RunFormatError(f"{run.path}: run has no checkpoints (no step_*.safetensors)")
    if steps is None:
        chosen = all_steps
    else:
        chosen = sorted({int(s) for s in steps})
        missing = sorted(set(chosen) - set(all_steps))
        if missing:
            raise ProbeError(f"measure_run: steps {missing[:10]} have no checkpoint in {run.path} "
                             f"(it has {len(all_steps)} checkpoints, steps {all_steps[0]}..{all_steps[-1]})")
        if not chosen:
            raise ProbeError("measure_run: steps is empty")
    final = all_steps[-1]
    if key_freqs is None:
        freqs = key_frequencies(run.load(final, device=device), task, rule=rule, threshold=threshold)
        source = f"final checkpoint (step {final}), rule {rule!r}"
    else:
        freqs = fourier.check_frequencies(key_freqs, task.p, what="measure_run: key_freqs")
        if not freqs:
            raise ProbeError("measure_run: key_freqs is empty; pass at least one frequency or None to find them")
        source = "given by the caller"
        rule, threshold = "given", None

    iterator: Any = chosen
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(chosen, desc=f"measure {run.name}", unit="ckpt", dynamic_ncols=True, mininterval=0.5)
    rows = []
    for step in iterator:
        model = run.load(step, device=device)
        rows.append({"step": step, **_measures(model, task, freqs, "measure_run")})
        del model
    df = pd.DataFrame(rows)
    df.attrs.update(_attrs(run, freqs, rule, threshold, source, final, chosen))
    return df


def _attrs(run, freqs, rule, threshold, source, final, steps) -> dict[str, Any]:
    if rule == "given":
        proto = protocol("neurons", None, source)
        proto["key_frequencies"] = {"rule": "given", "threshold": None, "source": source,
                                    "fixed_for_all_checkpoints": True}
    else:
        proto = protocol(rule, threshold, source)
        threshold = proto["key_frequencies"]["threshold"]
    if run.task.op != "add":
        proto["op"] = f"op {run.task.op!r}: the a+b directions do not apply, key-dependent columns are NaN"
    return {"key_frequencies": list(freqs), "key_frequency_rule": rule, "key_frequency_threshold": threshold,
            "key_frequency_step": final if rule != "given" else None, "protocol": proto,
            "run_name": run.name, "run_path": str(run.path), "steps": list(steps)}


# ---------------------------------------------------------------------------------------------
# files


def save_measures(df, out_dir: str | Path, run=None) -> Path:
    """Write ``measures.csv`` and ``key_frequencies.json`` into ``out_dir`` (created), each atomically.

    The JSON holds the key frequencies, the rule and threshold that found them, the protocol, the
    source run (name and path; from ``run`` if given, else from ``df.attrs``) and the measured steps.
    Returns ``out_dir``.
    """
    from ..checkpoints import atomic_write_text

    if "step" not in df.columns:
        raise ProbeError("save_measures: the DataFrame has no 'step' column (expected the output of measure_run)")
    if "key_frequencies" not in df.attrs:
        raise ProbeError("save_measures: df.attrs has no 'key_frequencies' (expected the output of measure_run)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    attrs = dict(df.attrs)
    if run is not None:
        attrs["run_name"], attrs["run_path"] = run.name, str(run.path)
    meta = {
        "key_frequencies": [int(k) for k in attrs["key_frequencies"]],
        "rule": attrs.get("key_frequency_rule"),
        "threshold": attrs.get("key_frequency_threshold"),
        "key_frequency_step": attrs.get("key_frequency_step"),
        "protocol": attrs.get("protocol", {}),
        "run": {"name": attrs.get("run_name"), "path": attrs.get("run_path")},
        "steps": [int(s) for s in df["step"]],
        "columns": list(df.columns),
    }
    atomic_write_text(out / MEASURES_CSV, df.to_csv(index=False))
    atomic_write_text(out / KEY_FREQUENCIES_JSON, json.dumps(meta, indent=1) + "\n")
    return out


def load_measures(directory: str | Path):
    """Read what :func:`save_measures` wrote: a DataFrame with ``attrs`` (key_frequencies, protocol, run) restored."""
    import pandas as pd

    d = Path(directory)
    csv_path, json_path = d / MEASURES_CSV, d / KEY_FREQUENCIES_JSON
    for path in (csv_path, json_path):
        if not path.is_file():
            raise RunFormatError(f"{path}: file not found (write it with `interp measure`)")
    try:
        meta = json.loads(json_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunFormatError(f"{json_path}: malformed JSON ({' '.join(str(e).split())[:120]})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("key_frequencies"), list):
        raise RunFormatError(f"{json_path}: field 'key_frequencies' is missing or not a list")
    try:
        df = pd.read_csv(csv_path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise RunFormatError(f"{csv_path}: not a valid CSV ({' '.join(str(e).split())[:120]})") from None
    if "step" not in df.columns or not pd.api.types.is_integer_dtype(df["step"]):
        raise RunFormatError(f"{csv_path}: needs an integer 'step' column")
    steps = meta.get("steps")
    if isinstance(steps, list) and steps != df["step"].tolist():
        raise RunFormatError(f"{csv_path}: its steps do not match {json_path.name} "
                             "(files from different measurements?)")
    run = meta.get("run") or {}
    df.attrs.update({"key_frequencies": [int(k) for k in meta["key_frequencies"]],
                     "key_frequency_rule": meta.get("rule"), "key_frequency_threshold": meta.get("threshold"),
                     "key_frequency_step": meta.get("key_frequency_step"), "protocol": meta.get("protocol", {}),
                     "run_name": run.get("name"), "run_path": run.get("path"), "steps": df["step"].tolist()})
    return df
