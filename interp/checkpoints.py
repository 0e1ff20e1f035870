"""A run on disk, and reading it back.

A run directory holds::

    run.json                 RunConfig, seeds, HookedTransformerConfig kwargs, protocol, library versions
    split.json               the exact training (and test) pair indices, index = a * p + b
    metrics.csv              step, train_loss, train_acc, test_loss, test_acc (test only every eval_every steps)
    step_000000.safetensors  one per checkpoint: the plain TransformerLens state dict, fp32
    resume.safetensors       latest model + AdamW state, for `interp train --resume` (may be absent in shipped runs)

Every file is written to a temporary name in the same directory, flushed, fsynced and renamed,
so a killed process leaves either the old file or the new one, never half of one. Files are
only ever read as JSON, CSV or safetensors: nothing is unpickled.

>>> run = Run("checkpoints/nanda2023-p113-seed0")      # doctest: +SKIP
>>> run.steps[:3], run.config.p                       # doctest: +SKIP
([0, 100, 200], 113)
>>> model = run.load(run.final_step)                  # a HookedTransformer  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterator

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load_bytes
from safetensors.torch import save as st_save_bytes

from .config import RunConfig
from .errors import CheckpointError, ConfigError, RunFormatError, RunLockedError
from .tasks import Task

__all__ = [
    "Run",
    "CheckpointSeries",
    "METRIC_COLUMNS",
    "atomic_write_bytes",
    "atomic_write_text",
    "checkpoint_name",
    "read_safetensors",
    "RunLock",
]

FORMAT = "interp-run"
FORMAT_VERSION = 1
METRIC_COLUMNS = ("step", "train_loss", "train_acc", "test_loss", "test_acc")
_STEP_RE = re.compile(r"^step_(\d{6,})\.safetensors$")


def checkpoint_name(step: int) -> str:
    return f"step_{step:06d}.safetensors"


# ---------------------------------------------------------------------------------------------
# atomic writes


_UMASK = os.umask(0o022)
os.umask(_UMASK)


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers only ever see the old or the complete new file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; a run is meant to be shared like any file
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: Path | str, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_tensors(path: Path | str, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Atomically save tensors (made contiguous, on CPU) as safetensors."""
    clean = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    atomic_write_bytes(path, st_save_bytes(clean, metadata=metadata))


def read_safetensors(path: Path | str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file; any damage becomes a CheckpointError naming the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: file not found") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read ({e.strerror})") from None
    if len(data) < 8:
        raise CheckpointError(f"{path}: not a safetensors file ({len(data)} bytes; truncated or empty)")
    header_len = int.from_bytes(data[:8], "little")
    if header_len > len(data) - 8:
        raise CheckpointError(f"{path}: not a valid safetensors file (header claims {header_len} bytes, "
                              f"file has {len(data)}; truncated or corrupt)")
    try:
        header = json.loads(data[8:8 + header_len])
        metadata = header.get("__metadata__") or {}
        ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
        expected = 8 + header_len + max(ends, default=0)
        if len(data) < expected:
            raise CheckpointError(f"{path}: truncated or corrupt safetensors file ({len(data)} bytes, "
                                  f"its header needs {expected})")
        tensors = st_load_bytes(data)
    except (SafetensorError, ValueError, UnicodeDecodeError, AttributeError, KeyError, TypeError, IndexError) as e:
        raise CheckpointError(f"{path}: not a valid safetensors file ({_one_line(e)})") from None
    return tensors, dict(metadata)


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:200]


# ---------------------------------------------------------------------------------------------
# one writer at a time


class RunLock:
    """An exclusive ``flock`` on ``<run>/.lock``. The kernel drops it when the holder dies, so a
    killed run never leaves the directory locked."""

    def __init__(self, run_dir: Path | str):
        self.path = Path(run_dir) / ".lock"
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
            finally:
                os.close(fd)
            raise RunLockedError(f"{self.path.parent}: run directory is in use by {holder}; "
                                 "wait for it to finish or stop it first") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


# ---------------------------------------------------------------------------------------------
# metrics.csv


def format_metrics_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(METRIC_COLUMNS)
    for r in rows:
        w.writerow([_fmt(r.get(c)) for c in METRIC_COLUMNS])
    return buf.getvalue()


def _fmt(x: Any) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    if isinstance(x, float):
        return repr(x)
    return str(x)


def parse_metrics_csv(path: Path) -> list[dict[str, Any]]:
    """Rows of metrics.csv as dicts (missing test values as None); errors name the file and line."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise RunFormatError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise RunFormatError(f"{path}: cannot read ({_one_line(e)})") from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or tuple(header) != METRIC_COLUMNS:
        raise RunFormatError(f"{path}: header must be {','.join(METRIC_COLUMNS)}, got {header}")
    rows: list[dict[str, Any]] = []
    for lineno, rec in enumerate(reader, start=2):
        if len(rec) != len(METRIC_COLUMNS):
            raise RunFormatError(f"{path}: line {lineno} has {len(rec)} fields, expected {len(METRIC_COLUMNS)}")
        try:
            row = {"step": int(rec[0])}
            for name, val in zip(METRIC_COLUMNS[1:], rec[1:]):
                row[name] = float(val) if val != "" else None
        except ValueError:
            raise RunFormatError(f"{path}: line {lineno} is not numeric: {','.join(rec)[:80]}") from None
        if row["train_loss"] is None:
            raise RunFormatError(f"{path}: line {lineno} (step {row['step']}) has no train_loss")
        if rows and row["step"] != rows[-1]["step"] + 1:
            raise RunFormatError(f"{path}: line {lineno}: step {row['step']} follows step {rows[-1]['step']}; "
                                 "rows are missing or out of order (every step has a row)")
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------
# reading a run


class Run:
    """A run directory: its config, split, metrics and checkpoints, loaded lazily.

    Iterating yields ``(step, model)`` pairs in step order, loading one checkpoint at a time.
    """

    def __init__(self, path: Path | str):
        self.path = Path(path)
        if not self.path.is_dir():
            raise RunFormatError(f"{self.path}: not a directory (expected a run directory with run.json)")
        run_json = self.path / "run.json"
        if not run_json.is_file():
            raise RunFormatError(f"{self.path}: not a run directory (no run.json); "
                                 "create one with `interp train --out DIR`")
        try:
            meta = json.loads(run_json.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise RunFormatError(f"{run_json}: malformed JSON ({_one_line(e)})") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise RunFormatError(f"{run_json}: not an interp run file (field 'format' must be {FORMAT!r})")
        if meta.get("format_version") != FORMAT_VERSION:
            raise RunFormatError(f"{run_json}: format_version {meta.get('format_version')!r} is not supported "
                                 f"(this interp reads {FORMAT_VERSION})")
        for key in ("config", "hooked_transformer_config"):
            if not isinstance(meta.get(key), dict):
                raise RunFormatError(f"{run_json}: field {key!r} is missing or not an object")
        try:
            self.config = RunConfig.from_dict(meta["config"], where=f"{run_json}: config")
        except ConfigError as e:
            raise RunFormatError(str(e)) from None
        self.meta = meta
        self._task: Task | None = None
        self._metrics = None

    # -- identity ---------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.path.resolve().name

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, steps={len(self.steps)}, p={self.config.p})"

    @property
    def hooked_config_kwargs(self) -> dict[str, Any]:
        return dict(self.meta["hooked_transformer_config"])

    # -- data ---------------------------------------------------------------------------------

    @property
    def task(self) -> Task:
        """The run's task, carrying the exact training pairs recorded in split.json."""
        if self._task is None:
            self._task = Task(op=self.config.op, p=self.config.p, frac_train=self.config.frac_train,
                              seed=self.config.data_seed, explicit_train=tuple(self._read_split()))
        return self._task

    def _read_split(self) -> list[int]:
        path = self.path / "split.json"
        try:
            split = json.loads(path.read_text())
        except FileNotFoundError:
            raise RunFormatError(f"{path}: file not found (every run records its training pairs)") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise RunFormatError(f"{path}: malformed JSON ({_one_line(e)})") from None
        train = split.get("train") if isinstance(split, dict) else None
        n_pairs = self.config.p ** 2
        if (not isinstance(train, list) or len(train) != self.config.n_train
                or not all(isinstance(i, int) and 0 <= i < n_pairs for i in train)
                or len(set(train)) != len(train)):
            raise RunFormatError(f"{path}: field 'train' must list {self.config.n_train} distinct pair "
                                 f"indices in [0, {n_pairs}) for this run's config")
        return train

    @property
    def metrics(self):
        """metrics.csv as a pandas DataFrame (one row per step; test columns NaN between evaluations)."""
        if self._metrics is None:
            import pandas as pd

            rows = parse_metrics_csv(self.path / "metrics.csv")
            self._metrics = pd.DataFrame(rows, columns=list(METRIC_COLUMNS)).astype(
                {"step": "int64", "train_loss": "float64", "train_acc": "float64",
                 "test_loss": "float64", "test_acc": "float64"})
        return self._metrics

    # -- checkpoints ----------------------------------------------------------------------------

    @property
    def steps(self) -> list[int]:
        """Sorted steps that have a checkpoint file."""
        return sorted(int(m.group(1)) for f in os.listdir(self.path) if (m := _STEP_RE.match(f)))

    @property
    def final_step(self) -> int:
        steps = self.steps
        if not steps:
            raise RunFormatError(f"{self.path}: run has no checkpoints (no step_*.safetensors)")
        return steps[-1]

    def checkpoint_path(self, step: int) -> Path:
        return self.path / checkpoint_name(step)

    def state_dict(self, step: int) -> dict[str, torch.Tensor]:
        """The checkpoint's tensors, checked against the run's model shapes."""
        if not isinstance(step, int) or step not in self.steps:
            steps = self.steps
            shown = f"{steps[:3]} ... {steps[-3:]}" if len(steps) > 6 else str(steps)
            raise CheckpointError(f"{self.path}: no checkpoint for step {step!r}; available steps: {shown}")
        path = self.checkpoint_path(step)
        tensors, _ = read_safetensors(path)
        check_state_dict(tensors, self._expected_shapes(), path)
        return tensors

    def _expected_shapes(self) -> dict[str, tuple[int, ...]]:
        if not hasattr(self, "_shapes"):
            model = self.empty_model()
            self._shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        return self._shapes

    def empty_model(self, device: str = "cpu"):
        """A HookedTransformer with this run's architecture (weights not loaded)."""
        from .model import freeze_biases, model_from_kwargs

        if not hasattr(self, "_template"):
            model = model_from_kwargs(self.hooked_config_kwargs, device="cpu")
            freeze_biases(model)
            self._template = model
        import copy

        model = copy.deepcopy(self._template)
        return model if device == "cpu" else model.to(device)

    def load(self, step: int | None = None, device: str = "cpu"):
        """The HookedTransformer at ``step`` (default: the final checkpoint), in eval mode."""
        step = self.final_step if step is None else step
        tensors = self.state_dict(step)
        model = self.empty_model(device)
        model.load_state_dict(tensors, strict=False)
        model.eval()
        return model

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        for step in self.steps:
            yield step, self.load(step)

    def __len__(self) -> int:
        return len(self.steps)


# A run *is* its checkpoint series; the second name reads better in research code that iterates.
CheckpointSeries = Run


def check_state_dict(tensors: dict[str, torch.Tensor], expected: dict[str, tuple[int, ...]], path: Path) -> None:
    """Raise CheckpointError unless ``tensors`` has exactly the model's parameters (buffers optional) with the right shapes."""
    for name, shape in expected.items():
        if name not in tensors:
            if name.endswith(("IGNORE", "mask")):  # TransformerLens buffers; rebuilt by the model
                continue
            raise CheckpointError(f"{path}: tensor {name!r} is missing; this checkpoint is not from this run's model")
        if tuple(tensors[name].shape) != shape:
            raise CheckpointError(f"{path}: tensor {name!r} has shape {tuple(tensors[name].shape)}, "
                                  f"the run's model needs {shape} (checkpoint from a different config?)")
        if tensors[name].dtype != torch.float32 and tensors[name].is_floating_point():
            raise CheckpointError(f"{path}: tensor {name!r} is {tensors[name].dtype}, expected float32")
    extra = sorted(set(tensors) - set(expected))
    if extra:
        raise CheckpointError(f"{path}: unexpected tensor(s) {extra[:5]}; not a checkpoint of this run's model")
