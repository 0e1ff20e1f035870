"""A folder of checkpoints trained elsewhere, read like a run: TransformerLens state dicts and the task they learnt.

A folder holds::

    config.json                      HookedTransformerConfig fields (n_layers, d_model, n_ctx, d_head, d_vocab, ...)
    *_STEP.safetensors               one plain TransformerLens state dict per checkpoint, the step in the name
                                     (step_000100.safetensors, checkpoint_100.safetensors)
    metrics.csv                      optional: step, train_loss, train_acc, test_loss, test_acc at any increasing
                                     steps (rows only at checkpoints are fine; test values may be blank)

The folder does not say which task the models learnt or which pairs they trained on: the caller gives the
:class:`interp.Task` (``interp measure/report FOLDER --task OP``). :class:`CheckpointFolder` offers what
:class:`interp.Run` offers a reader (``steps``, ``load``, ``task``, ``metrics``, ``run_id``), so the measures and
the report take either. Files are only read as JSON, CSV or safetensors; nothing is unpickled, and no field of
config.json can make TransformerLens fetch a tokenizer or weights.

>>> folder = CheckpointFolder("elsewhere/", Task(op="add", p=113))   # doctest: +SKIP
>>> folder.steps[:3], folder.load().cfg.n_layers                      # doctest: +SKIP
([0, 100, 200], 1)
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

from . import tl
from .errors import CheckpointError, ConfigError, RunFormatError
from .files import one_line, read_json, read_limited, read_safetensors, read_safetensors_header
from .model import check_device, check_header_shapes, model_from_kwargs, model_shapes
from .tasks import Task

__all__ = ["CheckpointFolder", "is_checkpoint_folder", "folder_task", "FOLDER_CONFIG", "FOLDER_METRICS"]

FOLDER_CONFIG = "config.json"
FOLDER_METRICS = "metrics.csv"
_STEP_RE = re.compile(r"(\d+)\.safetensors$")


def is_checkpoint_folder(path: Path | str) -> bool:
    """True for a directory with a config.json and no run.json (a run directory of `interp train` has run.json)."""
    p = Path(path)
    return p.is_dir() and (p / FOLDER_CONFIG).is_file() and not (p / "run.json").exists()


def folder_task(folder: Path | str, op: str, *, p: int | None = None, frac_train: float = 0.3, seed: int = 0,
                split: Path | str | None = None) -> Task:
    """The task of a folder's checkpoints: ``op`` mod ``p`` (default: the models' output size, d_vocab_out of
    config.json), trained on the pairs listed in ``split`` (a JSON object whose ``train`` lists pair indices
    a * p + b, like a run's split.json) or else on the seeded split (``frac_train``, ``seed``). Models with n_ctx 2
    read [a, b] (no '=' token, as ``RunConfig.eq_sign`` false); any other n_ctx, [a, b, =]."""
    path = Path(folder) / FOLDER_CONFIG
    kwargs = _read_config(path) if p is None or path.is_file() else {}
    eq_sign = kwargs.get("n_ctx") != 2
    if p is None:
        p = kwargs.get("d_vocab_out", kwargs.get("d_vocab"))
        if not isinstance(p, int) or isinstance(p, bool):
            raise RunFormatError(f"{Path(folder) / FOLDER_CONFIG}: has no integer d_vocab_out to take p from; "
                                 "pass --p")
    train = None
    if split is not None:
        data = read_json(Path(split))
        train = data.get("train") if isinstance(data, dict) else None
        if not isinstance(train, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in train):
            raise RunFormatError(f"{split}: field 'train' must be a list of pair indices a * p + b")
    if train is None:  # a bad op, p or frac_train: ConfigError naming the field (the CLI restates it with its flag)
        return Task(op=op, p=p, frac_train=frac_train, seed=seed, eq_sign=eq_sign)
    task = Task(op=op, p=p)  # the pair order, to turn a * p + b into pair indices (div has no b = 0)
    position = {int(g): i for i, g in enumerate(task.grid_index.tolist())}
    bad = [i for i in train if i not in position]
    if bad or len(set(train)) != len(train) or not train or len(train) == task.n_pairs:
        raise RunFormatError(f"{split}: 'train' must list distinct pair indices a * p + b of {op} mod {p}, at least "
                             f"one and not all ({'e.g. ' + str(bad[:3]) + ' are not' if bad else 'got ' + str(len(train))})")
    return Task.custom(op, p, train_idx=[position[i] for i in train], eq_sign=eq_sign)


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise RunFormatError(f"{path}: file not found (a folder of state dicts needs config.json with the "
                             "HookedTransformerConfig fields: n_layers, d_model, n_ctx, d_head, d_vocab, ...)")
    try:
        kwargs = json.loads(read_limited(path).decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunFormatError(f"{path}: malformed JSON ({one_line(e)[:120]})") from None
    if not isinstance(kwargs, dict):
        raise RunFormatError(f"{path}: expected a JSON object of HookedTransformerConfig fields")
    external = sorted(k for k, v in kwargs.items() if v is not None and v is not False  # None: nothing to fetch
                      and any(w in k.lower() for w in ("tokenizer", "checkpoint", "hf", "pretrained")))
    if external:  # TransformerLens would fetch these from a model hub: a file never causes network access
        raise RunFormatError(f"{path}: field(s) {external} would load a tokenizer or weights from outside; "
                             "refused (a folder of state dicts needs only the architecture fields)")
    _check_sizes(kwargs, path)
    return kwargs


MAX_CTX = 4096  # n_ctx of a folder's model (interp's tasks use 3)


def _check_sizes(kwargs: dict[str, Any], path: Path) -> None:
    """config.json's sizes bounded as a run's are (and the weights they imply counted), before any model is built."""
    from .config import MAX_LAYERS, MAX_P, MAX_PARAMETERS, MAX_WIDTH, parameter_count

    sizes = {"n_layers": MAX_LAYERS, "d_model": MAX_WIDTH, "n_heads": MAX_WIDTH, "d_head": MAX_WIDTH,
             "d_mlp": MAX_WIDTH, "d_vocab": MAX_P + 1, "d_vocab_out": MAX_P + 1, "n_ctx": MAX_CTX}
    got = {}
    for name, top in sizes.items():
        v = kwargs.get(name)
        if v is None and name in ("d_mlp", "d_vocab_out", "n_heads"):
            continue  # TransformerLens derives these (4 * d_model, d_vocab, d_model // d_head)
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= top:
            raise RunFormatError(f"{path}: {name} must be an integer in 1..{top:,}, got {v!r}")
        got[name] = v
    got.setdefault("d_mlp", 4 * got["d_model"])
    got.setdefault("d_vocab_out", got["d_vocab"])
    got.setdefault("n_heads", max(1, got["d_model"] // got["d_head"]))
    if got["n_heads"] * got["d_head"] > MAX_WIDTH:
        raise RunFormatError(f"{path}: n_heads * d_head must be at most {MAX_WIDTH:,}, got "
                             f"{got['n_heads'] * got['d_head']:,}")
    n = parameter_count(**got)
    if n > MAX_PARAMETERS:
        raise RunFormatError(f"{path}: the model would have {n:,} weights, more than the {MAX_PARAMETERS:,} one model "
                             "may have; refused before anything is built")


def _parse_folder_metrics(path: Path) -> pd.DataFrame:
    """metrics.csv of a folder: the run format's columns at any strictly increasing steps (errors name the line)."""
    from .runs import METRIC_COLUMNS, parse_metrics_csv

    rows = parse_metrics_csv(path, every_step=False)
    if not rows:
        raise RunFormatError(f"{path}: has a header but no rows")
    return pd.DataFrame(rows, columns=list(METRIC_COLUMNS)).astype(
        {"step": "int64", "train_loss": "float64", "train_acc": "float64", "test_loss": "float64",
         "test_acc": "float64"})


@dataclass(frozen=True)
class FolderSetting:
    """What the report shows as a folder's configuration (a run shows its RunConfig)."""

    op: str
    p: int
    frac_train: float
    name: str
    hooked: dict
    split: str
    n_steps: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "p": self.p, "frac_train": round(self.frac_train, 6), "split": self.split,
                **{f"config.json {k}": v for k, v in self.hooked.items()}}


class CheckpointFolder:
    """A folder of TransformerLens state dicts and the :class:`interp.Task` they were trained on.

    Reads like a finished :class:`interp.Run`: ``steps``, ``final_step``, ``load(step)``, ``task``, ``metrics``
    (None without a metrics.csv), ``run_id`` (a hash of config.json, the task and its split, and the name, size
    and modification time of every checkpoint file: measures saved from it are reused only while all of these are
    unchanged). ``split_source`` says in words where the training pairs came from (shown on the report).
    """

    kind = "checkpoint folder"
    finished = True
    state = "complete"

    def __init__(self, path: Path | str, task: Task, *, split_source: str | None = None):
        self.path = Path(path)
        if not self.path.is_dir():
            raise RunFormatError(f"{self.path}: not a directory of checkpoints")
        if not isinstance(task, Task):
            raise ConfigError(f"CheckpointFolder: task must be an interp.Task, got {type(task).__name__}")
        self.task = task
        self.split_source = split_source or (
            "the pairs given with the task" if task.explicit_train is not None
            else f"the seeded split (frac_train {task.frac_train:g}, seed {task.seed})")
        found = []
        for f in sorted(self.path.glob("*.safetensors")):
            m = _STEP_RE.search(f.name)
            if m:
                found.append((int(m.group(1)), f))
        if not found:
            raise RunFormatError(f"{self.path}: no checkpoint files (*_STEP.safetensors) found")
        if len({s for s, _ in found}) != len(found):
            dup = sorted(s for s in {s for s, _ in found} if sum(t == s for t, _ in found) > 1)
            raise RunFormatError(f"{self.path}: two checkpoint files have the same step number ({dup[0]})")
        self._files = dict(sorted(found))
        self.config_path = self.path / FOLDER_CONFIG
        self.hooked_kwargs = _read_config(self.config_path)
        try:  # shapes only (PyTorch's meta device): nothing is allocated before a file is found to fit them
            self._shapes = model_shapes(self.hooked_kwargs)
        except (TypeError, ValueError, AssertionError, RuntimeError, NotImplementedError, ConfigError) as e:
            raise RunFormatError(f"{self.config_path}: not a valid HookedTransformerConfig ({one_line(e)[:160]})") \
                from None
        self._template = None
        self.metrics_path = self.path / FOLDER_METRICS
        self._metrics = _parse_folder_metrics(self.metrics_path) if self.metrics_path.is_file() else None
        self.config = FolderSetting(task.op, task.p, len(task.train_idx) / task.n_pairs, self.name,
                                    dict(self.hooked_kwargs), self.split_source)

    @property
    def name(self) -> str:
        return self.path.resolve().name

    @property
    def steps(self) -> list[int]:
        return list(self._files)

    @property
    def final_step(self) -> int:
        return self.steps[-1]

    @property
    def metrics(self) -> pd.DataFrame | None:
        """The folder's metrics.csv (rows at whatever steps it has), or None when there is none."""
        return self._metrics

    @property
    def run_id(self) -> str:
        h = hashlib.sha256()
        h.update(json.dumps(self.hooked_kwargs, sort_keys=True).encode())
        h.update(json.dumps({"op": self.task.op, "p": self.task.p, "train": self.task.train_idx.tolist()}).encode())
        for step, f in self._files.items():
            st = f.stat()
            h.update(f"{step} {f.name} {st.st_size} {st.st_mtime_ns}\n".encode())
        if self.metrics_path.is_file():
            h.update(read_limited(self.metrics_path))
        return "folder-" + h.hexdigest()[:16]

    def describe(self) -> str:
        """One sentence for the report: where the checkpoints, the task, the split and the curves came from."""
        m = self.metrics
        if m is None:
            curves = "no metrics.csv in the folder, so no training curves are drawn"
        else:
            n_test = int(m["test_loss"].notna().sum())
            curves = (f"metrics.csv in the folder: {len(m)} rows (steps {int(m['step'].iloc[0])} to "
                      f"{int(m['step'].iloc[-1])}), test values at {n_test} of them")
        return (f"Checkpoints trained elsewhere: {len(self.steps)} TransformerLens state dicts in {self.name}/ "
                f"(architecture from config.json), measured as {self.task.description} (the task given with them); "
                f"training pairs: {self.split_source}; {curves}.")

    def run_info(self) -> dict[str, Any]:
        """The identity record measures carry (as :func:`interp.probes.measure_run` records for a run)."""
        return {"name": self.name, "path": str(self.path), "run_id": self.run_id, "kind": self.kind,
                "task": self.task.description, "split": self.split_source, "finished": True,
                "state": "complete", "last_step": self.final_step}

    def snapshot(self) -> "CheckpointFolder":
        return self  # nothing here is being written by interp

    def state_dict(self, step: int):
        from .runs import check_tensors

        if step not in self._files:
            raise CheckpointError(f"{self.path}: no checkpoint for step {step!r}; available steps: {self.steps}")
        path = self._files[step]
        what = "the model of config.json"
        check_header_shapes(read_safetensors_header(path)[0], self._shapes, path, what=what,
                            optional=("IGNORE", "mask"))
        tensors, _ = read_safetensors(path)
        check_tensors(tensors, self._expected, path, what=what, optional=("IGNORE", "mask"))
        return tensors

    @property
    def _expected(self) -> dict:
        """The model's state dict (its constant buffers compared, its shapes and dtypes checked), built once a file
        was found to fit config.json."""
        if self._template is None:
            template = model_from_kwargs(self.hooked_kwargs, device="cpu")
            self._template = {k: v.detach() for k, v in tl.state_dict(template).items()}
        return self._template

    def load(self, step: int | None = None, device: str = "cpu"):
        """The HookedTransformer at ``step`` (default: the last checkpoint), in eval mode."""
        step = self.final_step if step is None else step
        check_device(device)
        tensors = self.state_dict(step)
        model = model_from_kwargs(self.hooked_kwargs, device="cpu")
        try:
            tl.load_state_dict(model, tensors, strict=False)
        except RuntimeError as e:
            raise CheckpointError(f"{self._files[step]}: does not fit config.json ({one_line(e)[:160]})") from None
        return (model if device == "cpu" else model.to(device)).eval()  # .to prints a line even for the cpu

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        for step in self.steps:
            yield step, self.load(step)

    def __len__(self) -> int:
        return len(self._files)

    def __repr__(self) -> str:
        return f"CheckpointFolder({str(self.path)!r}, steps={len(self.steps)}, task={self.task.description!r})"
