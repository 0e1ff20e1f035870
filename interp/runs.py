"""A run on disk: the one module that writes and reads a run directory.

A run directory holds::

    run.json                 RunConfig, seeds, identity, HookedTransformerConfig kwargs, protocol, versions, status
    split.json               the exact training (and test) pair indices, index = a * p + b
    metrics.csv              step, train_loss, train_acc, test_loss, test_acc (test only every eval_every steps)
    step_000000.safetensors  one per checkpoint: the plain TransformerLens state dict, fp32
    resume.safetensors       latest model + optimiser (+ gradient filter, minibatch) state, for `interp train --resume`
                             (may be absent in shipped runs; tensor names in interp.optim)
    .lock                    held (flock) by the one process writing the run

Every file is written atomically (:mod:`interp.files`), so a killed process leaves either the old file or the new
one. Files are only ever read as JSON, CSV or safetensors: nothing is unpickled.

``run.json``'s ``status`` says whether the run is finished: ``state`` is ``running``, ``complete``,
``stopped_early``, ``interrupted`` (Ctrl-C) or ``failed`` (an error, recorded in ``error``), and ``step`` is the last
saved step. A run whose status says ``running`` while no process holds its lock was killed: :attr:`Run.state`
reports it as ``interrupted``.

>>> run = Run("checkpoints/nanda2023-p113-seed0")      # doctest: +SKIP
>>> run.steps[:3], run.config.p, run.finished         # doctest: +SKIP
([0, 100, 200], 113, True)
>>> model = run.load(run.final_step)                  # a HookedTransformer  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import csv
import datetime as _dt
import fcntl
import hashlib
import io
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import torch

from . import tl
from .config import RunConfig
from .errors import CheckpointError, ConfigError, RunFormatError, RunLockedError
from .files import (atomic_write_text, one_line, read_json, read_limited, read_safetensors, read_safetensors_header,
                    save_tensors)
from .killpoints import kill_point
from .model import apply_attention_rate, check_device, check_header_shapes, freeze_biases, hooked_config_kwargs, \
    model_from_kwargs, model_shapes
from .tasks import Task

__all__ = ["Run", "RunLock", "METRIC_COLUMNS", "FINISHED_STATES", "checkpoint_name", "check_state_dict",
           "check_tensors"]

FORMAT = "interp-run"
FORMAT_VERSION = 1
RUN_JSON = "run.json"
SPLIT_JSON = "split.json"
METRICS_CSV = "metrics.csv"
RESUME_FILE = "resume.safetensors"
LOCK_FILE = ".lock"
RESUME_FORMAT = "interp-resume-1"
CHECKPOINT_FORMAT = "interp-checkpoint-1"
# run.json of a run created since checkpoints carry their identity: every checkpoint and resume file of it must
# (a run written before, such as the shipped one, may hold files without; where present it is checked all the same)
FILE_IDENTITY = "file_identity"
# config fields that do not change the weights at a given step (labels, when to evaluate, save or stop): two runs
# that differ only in these have the same weights at every step they share, so their files carry one identity
_NOT_WEIGHTS = ("name", "eval_every", "save_every", "save_steps", "stop_test_loss", "stop_test_acc",
                "stop_after_steps")
# Fields added to RunConfig after runs were shipped: left out of weights_identity at their default, so every run
# written before them (which used that default) keeps its identity and its checkpoints stay its own.
_ADDED_FIELDS = {"constant_attention": "average", "eq_sign": True}
METRIC_COLUMNS = ("step", "train_loss", "train_acc", "test_loss", "test_acc")
STATES = ("running", "complete", "stopped_early", "interrupted", "failed")
FINISHED_STATES = ("complete", "stopped_early")
# Every run.json of format 1 records these config fields; one missing is a damaged file, never a default silently
# used (fields added to RunConfig since may be absent from older runs: their defaults are what those runs used).
RECORDED_CONFIG_FIELDS = ("op", "p", "frac_train", "data_seed", "n_layers", "d_model", "n_heads", "d_head", "d_mlp",
                          "act_fn", "model_seed", "lr", "weight_decay", "betas", "eps", "warmup_steps", "n_steps",
                          "eval_every", "save_every", "save_steps", "stop_test_loss", "name")
_STEP_RE = re.compile(r"^step_(\d{6,})\.safetensors$")


def checkpoint_name(step: int) -> str:
    return f"step_{step:06d}.safetensors"


def checkpoint_step(filename: str) -> int | None:
    """The step of a checkpoint file name (``step_000100.safetensors`` -> 100), None for any other file."""
    m = _STEP_RE.match(filename)
    return int(m.group(1)) if m else None


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _versions() -> dict[str, str]:
    import importlib.metadata as md
    import platform

    out = {"python": platform.python_version()}
    for pkg in ("interp", "torch", "transformer-lens", "safetensors", "einops"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "unknown"
    return out


def provenance() -> dict[str, Any]:
    """Where numbers were made: library versions, the CPU model, the platform and the core count (recorded in
    sweep.json; float rounding, and so the exact step of a late event, can differ between machines)."""
    import os
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"versions": _versions(), "cpu": cpu, "platform": platform.platform(), "cpu_count": os.cpu_count()}


def run_identity(config: dict[str, Any], train: list[int], created: str) -> str:
    """16 hex digits naming one run: a hash of its config, its exact training pairs and its creation time.

    Two runs with the same directory name (or even the same config) get different identities; measures
    record it, so they are never mistaken for another run's.
    """
    blob = json.dumps({"config": config, "train": train, "created": created}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def weights_identity(cfg: RunConfig, train: list[int]) -> str:
    """16 hex digits naming what determines a run's weights at each step: its config (less the labels and the
    evaluation/save/stop schedule; less n_steps too under a constant learning rate, so an extended run keeps its
    identity) and its exact training pairs. Every checkpoint and resume file records it (with its step), so a file
    from another run is refused, while equal runs (a killed and resumed one, a sweep's run and the same run alone)
    write equal bytes."""
    fields = {k: v for k, v in cfg.to_dict().items()
              if k not in _NOT_WEIGHTS and not (k in _ADDED_FIELDS and v == _ADDED_FIELDS[k])}
    if cfg.lr_schedule == "constant":
        fields.pop("n_steps")
    blob = json.dumps({"config": fields, "train": train}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# one writer at a time


class RunLock:
    """An exclusive ``flock`` on the run directory itself. The kernel drops it when the holder dies, so a
    killed run never leaves the directory locked, and no file can fake it: deleting ``.lock`` (which only
    records the holder's pid, for messages) leaves the directory, and its lock, in place."""

    def __init__(self, run_dir: Path | str):
        self.dir = Path(run_dir)
        self.path = self.dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunLockedError(f"{self.dir}: run directory is in use by {self.holder()}; "
                                 "wait for it to finish or stop it first") from None
        self._fd = fd
        try:
            atomic_write_text(self.path, f"pid {os.getpid()}")
        except BaseException:
            self.release()
            raise
        return self

    def holder(self) -> str:
        """Who holds the lock, as recorded in ``.lock`` (``pid N``), for messages."""
        try:
            return read_limited(self.path, 64).decode(errors="replace").strip() or "another process"
        except RunFormatError:
            return "another process"

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def held_elsewhere(self) -> bool:
        """True while another process holds the lock (probed with a shared lock, released at once)."""
        try:
            fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # drops the probe's lock too

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
        w.writerow([_csv_value(r.get(c)) for c in METRIC_COLUMNS])
    return buf.getvalue()


def _csv_value(x: Any) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    if isinstance(x, float):
        return repr(x)
    return str(x)


def parse_metrics_csv(path: Path, *, every_step: bool = True) -> list[dict[str, Any]]:
    """Rows of metrics.csv as dicts (missing test values as None); errors name the file and line.

    every_step: a run's metrics.csv has a row at every step from 0; False accepts any strictly increasing steps
    (a folder of checkpoints trained elsewhere, with rows only at its checkpoints)."""
    try:
        text = read_limited(path).decode("utf-8")
    except UnicodeDecodeError as e:
        raise RunFormatError(f"{path}: cannot read ({one_line(e)})") from None
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
        _check_metric_ranges(row, path, lineno)
        if rows and not every_step and row["step"] <= rows[-1]["step"]:
            raise RunFormatError(f"{path}: line {lineno}: step {row['step']} follows step {rows[-1]['step']}; "
                                 "steps must increase")
        if rows and every_step and row["step"] != rows[-1]["step"] + 1:
            raise RunFormatError(f"{path}: line {lineno}: step {row['step']} follows step {rows[-1]['step']}; "
                                 "rows are missing or out of order (every step has a row)")
        rows.append(row)
    return rows


def _check_metric_ranges(row: dict[str, Any], path: Path, lineno: int) -> None:
    """Losses are finite and >= 0, accuracies in [0, 1]: anything else is a damaged file, not a curve to draw."""
    if row["step"] < 0:
        raise RunFormatError(f"{path}: line {lineno}: step {row['step']} is negative")
    for name in METRIC_COLUMNS[1:]:
        v = row[name]
        if v is None:
            continue
        top = 1.0 if name.endswith("_acc") else math.inf
        if not (math.isfinite(v) and 0.0 <= v <= top):
            allowed = "in [0, 1]" if name.endswith("_acc") else "finite and >= 0"
            raise RunFormatError(f"{path}: line {lineno} (step {row['step']}): {name} is {v}; it must be {allowed}")


# ---------------------------------------------------------------------------------------------
# checkpoints


def check_tensors(tensors: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], path: Path, *,
                  what: str = "the run's model", optional: tuple[str, ...] = ()) -> None:
    """Raise CheckpointError unless ``tensors`` has exactly the names of ``expected``, each with its shape and dtype,
    and every floating-point value finite (a diverged-but-finite checkpoint is fine; NaN or inf is not).

    ``expected`` maps names to template tensors (their shape and dtype); names ending in one of ``optional`` are
    constant buffers: they may be absent, and where present must equal the template. Errors name the file and
    the tensor.
    """
    for name, ref in expected.items():
        if name not in tensors:
            if optional and name.endswith(optional):
                continue
            raise CheckpointError(f"{path}: tensor {name!r} is missing; this file is not from {what}")
        t = tensors[name]
        if t.dtype != ref.dtype:
            raise CheckpointError(f"{path}: tensor {name!r} is {t.dtype}, {what} needs {ref.dtype}")
        if tuple(t.shape) != tuple(ref.shape):
            raise CheckpointError(f"{path}: tensor {name!r} has shape {tuple(t.shape)}, "
                                  f"{what} needs {tuple(ref.shape)} (a file from a different config?)")
        if optional and name.endswith(optional):  # a constant buffer (the causal mask, IGNORE = -inf)
            if not torch.equal(t, ref):
                raise CheckpointError(f"{path}: buffer {name!r} differs from the constant {what} uses")
            continue
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            kind = "NaN" if bool(torch.isnan(t).any()) else "infinite"
            raise CheckpointError(f"{path}: tensor {name!r} has {bad} {kind} value(s) of {t.numel()}; "
                                  "a damaged file (or a diverged run) is not measured")
    extra = sorted(set(tensors) - set(expected))
    if extra:
        raise CheckpointError(f"{path}: unexpected tensor(s) {extra[:5]}; not a file of {what}")


def check_state_dict(tensors: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], path: Path) -> None:
    """A checkpoint: exactly the model's parameters (TransformerLens' buffers optional), checked by
    :func:`check_tensors`."""
    check_tensors(tensors, expected, path, what="this run's model", optional=("IGNORE", "mask"))


# ---------------------------------------------------------------------------------------------
# the run


class Run:
    """A run directory: its config, split, metrics and checkpoints (read lazily), and the writes training makes.

    ``Run(path)`` opens an existing run; :meth:`create` starts a new one. Iterating yields ``(step, model)``
    pairs in step order, loading one checkpoint at a time.
    """

    def __init__(self, path: Path | str):
        self.path = Path(path)
        if not self.path.is_dir():
            raise RunFormatError(f"{self.path}: not a directory (expected a run directory with run.json)")
        self.meta = self._read_meta()
        self.config = self._config_of(self.meta)
        self._task: Task | None = None
        self._metrics: pd.DataFrame | None = None
        self._template = None
        self._shapes = None
        self._frozen_steps: tuple[int, ...] | None = None
        self._check_run_id()

    # -- creating -------------------------------------------------------------------------------

    @classmethod
    def create(cls, path: Path | str, cfg: RunConfig, task: Task, *, hooked_config: dict[str, Any],
               frozen_parameters: list[str], device: str, protocol: dict[str, str]) -> "Run":
        """Write ``split.json`` and ``run.json`` (state ``running`` at step 0) of a new run into ``path``."""
        path = Path(path)
        train, test = task.train_idx.tolist(), task.test_idx.tolist()
        atomic_write_text(path / SPLIT_JSON, json.dumps({
            "p": cfg.p, "op": cfg.op, "frac_train": cfg.frac_train, "data_seed": cfg.data_seed,
            "pair_index": "a * p + b", "train": train, "test": test,
        }))
        created = _now()
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "name": cfg.name,
            "run_id": run_identity(cfg.to_dict(), train, created),
            "created": created,
            "config": cfg.to_dict(),
            "seeds": {"data_seed": cfg.data_seed, "model_seed": cfg.model_seed},
            "hooked_transformer_config": hooked_config,
            "frozen_parameters": frozen_parameters,
            "protocol": protocol,
            "versions": _versions(),
            "trained_on": device,
            FILE_IDENTITY: True,
            "status": {"state": "running", "step": 0, "n_steps": cfg.n_steps},
        }
        atomic_write_text(path / RUN_JSON, json.dumps(meta, indent=2) + "\n")
        kill_point("train.created")
        return cls(path)

    def write_status(self, state: str, step: int, *, config: RunConfig | None = None, error: str | None = None) -> None:
        """Record the run's state and last saved step in run.json (and the config, when resuming changed n_steps)."""
        if state not in STATES:
            raise ValueError(f"unknown run state {state!r}")
        if config is not None:
            recorded = self.meta["config"].get("n_steps")
            if config.n_steps != recorded and "identity_n_steps" not in self.meta:
                self.meta["identity_n_steps"] = recorded  # run_id was computed with the first n_steps
            self.config = config
            # only n_steps may change (a resumed run extended): the recorded fields stay as they were written, so
            # run_id can be recomputed from them
            self.meta["config"] = {**self.meta["config"], "n_steps": config.n_steps}
        status: dict[str, Any] = {"state": state, "step": int(step), "n_steps": self.config.n_steps}
        if error:
            status["error"] = error
        self.meta["status"] = status
        self.meta["updated"] = _now()
        atomic_write_text(self.path / RUN_JSON, json.dumps(self.meta, indent=2) + "\n")

    @property
    def weights_id(self) -> str:
        """The identity every checkpoint and resume file of this run records (:func:`weights_identity`)."""
        return weights_identity(self.config, self.task.train_idx.tolist())

    def file_metadata(self, step: int, fmt: str) -> dict[str, str]:
        return {"format": fmt, "weights_id": self.weights_id, "step": str(int(step))}

    def save_checkpoint(self, step: int, state_dict: dict[str, torch.Tensor]) -> None:
        """Write ``step_<step>.safetensors`` with this run's identity. A checkpoint already there (the resume step's,
        rewritten by a resumed run) is only ever replaced by the same weights: different ones are refused, so no
        resume can destroy a checkpoint."""
        path = self.path / checkpoint_name(step)
        if path.exists():
            old = self.state_dict(step)
            differ = sorted(k for k, v in state_dict.items() if k in old and not torch.equal(old[k], v.cpu()))
            if differ:
                raise CheckpointError(f"{path}: holds different weights at step {step} than this run has now "
                                      f"(tensor {differ[0]!r}); refused to overwrite it (was a file from another "
                                      "run resumed?)")
        save_tensors(path, state_dict, metadata=self.file_metadata(step, CHECKPOINT_FORMAT))
        kill_point("train.checkpoint")

    def write_metrics(self, rows: list[dict[str, Any]]) -> None:
        atomic_write_text(self.path / METRICS_CSV, format_metrics_csv(rows))
        self._metrics = None
        kill_point("train.metrics")

    def save_resume(self, step: int, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
        """Model and optimiser state in one file, so they can never disagree about the step. ``metadata``: what
        the trainer records about the layout (its optimiser and state keys, see :mod:`interp.train`)."""
        save_tensors(self.path / RESUME_FILE, tensors,
                     metadata={**(metadata or {}), **self.file_metadata(step, RESUME_FORMAT)})
        kill_point("train.resume")

    def read_resume(self) -> tuple[int, dict[str, torch.Tensor], list[dict[str, Any]]] | None:
        """``(step, tensors, metrics rows up to step)`` of the resume state; None if the run was killed
        before it saved any (then it has no training progress either: at most the step-0 checkpoint, which
        the restarted run rewrites identically); RunFormatError if it is missing from a run that trained."""
        path = self.path / RESUME_FILE
        if not path.exists():
            if all(s == 0 for s in self.steps):
                return None  # killed before the first resume state: start again from the initialisation
            raise RunFormatError(f"{path}: no resume state in this run, which has checkpoints to step "
                                 f"{self.steps[-1]} (it may have been thinned for shipping)")
        self._check_not_foreign_link(path)
        shapes, meta = read_safetensors_header(path)  # identity and the model's sizes before any tensor is read
        step = self._resume_step(path, meta)
        self._check_identity(path, meta, step)
        check_header_shapes({k[len("model."):]: v for k, v in shapes.items() if k.startswith("model.")},
                            self.model_shapes, path, what="this run's model (model.* tensors)",
                            optional=("IGNORE", "mask"))
        tensors, _ = read_safetensors(path)
        if step in self.steps:  # the resume file's model must be this run's own checkpoint at that step
            own = self.state_dict(step)
            differ = sorted(k for k, v in own.items() if (t := tensors.get(f"model.{k}")) is not None
                            and t.dtype == v.dtype and t.shape == v.shape and not torch.equal(t, v))  # (else: the
            # structure check names the fault)
            if differ:
                raise CheckpointError(f"{path}: its model at step {step} differs from this run's checkpoint "
                                      f"{checkpoint_name(step)} (tensor {differ[0]!r}); a resume file from another "
                                      "run is refused")
        rows = [r for r in parse_metrics_csv(self.path / METRICS_CSV) if r["step"] <= step]
        if not rows or rows[-1]["step"] != step:
            raise RunFormatError(f"{self.path / METRICS_CSV}: has no row for the resume step {step}")
        return step, tensors, rows

    def _resume_step(self, path: Path, meta: dict[str, str]) -> int:
        try:
            step = int(meta["step"])
        except (KeyError, ValueError):
            raise RunFormatError(f"{path}: metadata has no valid 'step'") from None
        if not 0 <= step <= self.config.n_steps:
            raise RunFormatError(f"{path}: step {step} is outside the run's 0..{self.config.n_steps}")
        return step

    @property
    def saved_step(self) -> int:
        """The last step training saved: the step of resume.safetensors on disk (read from its header), which run.json's
        ``status.step`` can trail by one save when the process was stopped between the two writes; ``status.step``
        for a run without a resume file."""
        path = self.path / RESUME_FILE
        if path.is_file():
            try:
                return self._resume_step(path, read_safetensors_header(path)[1])
            except RunFormatError:
                pass  # a damaged resume file is named when the run is resumed
        return int(self.meta["status"]["step"])

    def _check_identity(self, path: Path, meta: dict[str, str], step: int) -> None:
        """A checkpoint or resume file must carry this run's identity and the step its name (or run.json) gives it;
        a run created without file identity (before interp wrote it) may hold files without."""
        if "weights_id" not in meta:
            if self.meta.get(FILE_IDENTITY) is True:
                raise CheckpointError(f"{path}: carries no run identity, but every file of run {self.run_id} "
                                      f"({self.path}) does; a file from elsewhere is refused")
            return
        if meta["weights_id"] != self.weights_id:
            raise CheckpointError(f"{path}: belongs to another run (weights identity {meta['weights_id']}), not to "
                                  f"{self.path} (weights identity {self.weights_id}: its config and split); refused")
        if meta.get("step") != str(step):
            raise CheckpointError(f"{path}: records step {meta.get('step')!r}, its place in {self.path} says "
                                  f"{step}; refused")

    def _check_not_foreign_link(self, path: Path) -> None:
        """A file of the run that is a symbolic link must stay inside the run directory."""
        if path.is_symlink() and path.resolve().parent != self.path.resolve():
            raise CheckpointError(f"{path}: a symbolic link to {path.resolve()}, outside the run directory "
                                  f"{self.path}; a file of another run is not read as this run's")

    def discard_checkpoints_after(self, step: int) -> None:
        """Checkpoints past the resume point are rewritten, identically, by the resumed run."""
        for f in os.listdir(self.path):
            s = checkpoint_step(f)
            if s is not None and s > step:
                os.unlink(self.path / f)

    def remove_stale_temporaries(self) -> None:
        """Temporary files of a killed writer (never renamed into place, so never read) are removed."""
        remove_stale_temporaries(self.path)

    # -- reading run.json -----------------------------------------------------------------------

    def _read_meta(self) -> dict[str, Any]:
        run_json = self.path / RUN_JSON
        if not run_json.is_file():
            raise RunFormatError(f"{self.path}: not a run directory (no run.json); "
                                 "create one with `interp train --preset NAME --out DIR`")
        meta = read_json(run_json)
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise RunFormatError(f"{run_json}: not an interp run file (field 'format' must be {FORMAT!r})")
        if meta.get("format_version") != FORMAT_VERSION:
            raise RunFormatError(f"{run_json}: format_version {meta.get('format_version')!r} is not supported "
                                 f"(this interp reads {FORMAT_VERSION})")
        for key in ("config", "hooked_transformer_config"):
            if not isinstance(meta.get(key), dict):
                raise RunFormatError(f"{run_json}: field {key!r} is missing or not an object")
        _check_status(meta.get("status"), run_json)
        return meta

    def _config_of(self, meta: dict[str, Any]) -> RunConfig:
        missing = [k for k in RECORDED_CONFIG_FIELDS if k not in meta["config"]]
        if missing:
            raise RunFormatError(f"{self.path / RUN_JSON}: config lacks field(s) {missing}; a damaged run.json "
                                 "(a default is never substituted for a recorded value)")
        try:
            cfg = RunConfig.from_dict(meta["config"], where=f"{self.path / RUN_JSON}: config")
        except ConfigError as e:
            raise RunFormatError(str(e)) from None
        _check_copies_agree(meta, cfg, self.path / RUN_JSON)
        return cfg

    # -- identity and state -----------------------------------------------------------------------

    def _check_run_id(self) -> None:
        """run.json's ``run_id`` must be the hash of its config, its split and its creation time: an edited config
        (both copies changed alike) or a split.json from another run is refused, not measured."""
        rid = self.meta.get("run_id")
        if rid is None:
            return  # (not recorded: computed when asked)
        train = self.task.train_idx.tolist()
        created = str(self.meta.get("created", ""))
        for config in self._recorded_configs():
            if run_identity(config, train, created) == rid:
                return
        raise RunFormatError(f"{self.path / RUN_JSON}: run_id {rid!r} does not match its config, split.json and "
                             f"creation time (recomputed {run_identity(self.meta['config'], train, created)!r}); an "
                             "edited or mixed run directory is refused")

    def _recorded_configs(self) -> Iterator[dict[str, Any]]:
        """The config as run.json recorded it when the run was created: as written, with the first n_steps of an
        extended run, and (for runs extended by an older interp, which rewrote the whole config) without fields
        added since at their defaults, at each checkpointed step as n_steps."""
        config = self.meta["config"]
        yield config
        first = self.meta.get("identity_n_steps")
        if first is not None:
            yield {**config, "n_steps": first}
            return
        defaults = RunConfig().to_dict()
        lean = {k: v for k, v in config.items() if k in RECORDED_CONFIG_FIELDS or v != defaults.get(k)}
        steps = sorted(s for f in os.listdir(self.path) if (s := checkpoint_step(f)) is not None)
        for c in ((config, lean) if lean != config else (config,)):
            for n in [c.get("n_steps")] + steps:
                yield {**c, "n_steps": n}

    @property
    def name(self) -> str:
        return self.path.resolve().name

    @property
    def run_id(self) -> str:
        """This run's identity (see :func:`run_identity`), recorded in run.json when the run was created."""
        rid = self.meta.get("run_id")
        if isinstance(rid, str) and rid:
            return rid
        return run_identity(self.meta["config"], self.task.train_idx.tolist(), str(self.meta.get("created", "")))

    @property
    def state(self) -> str:
        """``running``, ``complete``, ``stopped_early``, ``interrupted`` or ``failed``.

        A run recorded as ``running`` whose lock no process holds was killed: ``interrupted``.
        """
        state = self.meta["status"]["state"]
        if state == "running" and not RunLock(self.path).held_elsewhere():
            return "interrupted"
        return state

    @property
    def finished(self) -> bool:
        """True when training ran to its end (or stopped early by its own rule)."""
        return self.state in FINISHED_STATES

    def describe_state(self) -> str:
        """One line for warnings: the state, the last saved step, and how to continue."""
        status = self.meta.get("status", {})
        step, n_steps = self.saved_step, status.get("n_steps", self.config.n_steps)
        text = f"{self.path} is unfinished: {self.state} at step {step} of {n_steps}"
        if status.get("error"):
            text += f" ({status['error']})"
        if self.state != "running":
            text += f"; continue it with `interp train --out {self.path} --resume`"
        return text

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, steps={len(self.steps)}, p={self.config.p}, state={self.state!r})"

    @property
    def hooked_config_kwargs(self) -> dict[str, Any]:
        """The ``HookedTransformerConfig`` keyword arguments, derived from the validated config alone (run.json's
        recorded copy was checked to agree with them, so no file can pass TransformerLens anything else)."""
        return hooked_config_kwargs(self.config, "cpu")

    # -- data ---------------------------------------------------------------------------------

    @property
    def task(self) -> Task:
        """The run's task, carrying the exact training pairs recorded in split.json."""
        if self._task is None:
            path = self.path / SPLIT_JSON
            if not path.exists():
                raise RunFormatError(f"{path}: file not found (every run records its training pairs)")
            split = read_json(path)
            train = split.get("train") if isinstance(split, dict) else None
            if not isinstance(train, list) or not all(isinstance(i, int) for i in train):
                raise RunFormatError(f"{path}: field 'train' must be a list of pair indices")
            try:
                self._task = Task.from_config(self.config, explicit_train=tuple(train))
            except ConfigError as e:
                raise RunFormatError(f"{path}: {e}") from None
        return self._task

    @property
    def metrics(self) -> pd.DataFrame:
        """metrics.csv as a pandas DataFrame (one row per step; test columns NaN between evaluations)."""
        if self._metrics is None:
            rows = parse_metrics_csv(self.path / METRICS_CSV)
            self._metrics = pd.DataFrame(rows, columns=list(METRIC_COLUMNS)).astype(
                {"step": "int64", "train_loss": "float64", "train_acc": "float64",
                 "test_loss": "float64", "test_acc": "float64"})
        return self._metrics

    # -- checkpoints ----------------------------------------------------------------------------

    @property
    def steps(self) -> list[int]:
        """Sorted steps that have a checkpoint file (as listed once by :meth:`snapshot`, on a snapshot)."""
        if self._frozen_steps is not None:
            return list(self._frozen_steps)
        steps = sorted(s for f in os.listdir(self.path) if (s := checkpoint_step(f)) is not None)
        if steps and steps[-1] > self.config.n_steps:
            raise CheckpointError(f"{self.path / checkpoint_name(steps[-1])}: step {steps[-1]} is past the run's "
                                  f"n_steps {self.config.n_steps}, so not a checkpoint of this run; remove it")
        return steps

    def snapshot(self) -> "Run":
        """This run as it is now: its checkpoint list read once, and its metrics cut at the last of them.

        A report or measurement made while the run trains uses one snapshot throughout, so its final step,
        its model and its curves all describe the same moment, not whatever was saved meanwhile."""
        snap = copy.copy(self)
        snap._frozen_steps = tuple(self.steps)
        last = snap._frozen_steps[-1] if snap._frozen_steps else -1
        metrics = self.metrics
        snap._metrics = metrics[metrics["step"] <= last].reset_index(drop=True)
        return snap

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
        self._check_not_foreign_link(path)
        shapes, meta = read_safetensors_header(path)  # the file must fit the run's model before either is allocated
        check_header_shapes(shapes, self.model_shapes, path, what="this run's model", optional=("IGNORE", "mask"))
        self._check_identity(path, meta, step)
        tensors, _ = read_safetensors(path)
        check_state_dict(tensors, tl.state_dict(self._empty_template()), path)
        return tensors

    @property
    def model_shapes(self) -> dict[str, tuple[str, tuple[int, ...]]]:
        """``{name: (dtype, shape)}`` of the run's model state dict, found without allocating the model."""
        if self._shapes is None:
            self._shapes = model_shapes(self.hooked_config_kwargs)
        return self._shapes

    def _empty_template(self):
        if self._template is None:
            model = model_from_kwargs(self.hooked_config_kwargs, device="cpu")
            freeze_biases(model)
            self._template = model
        return self._template

    def empty_model(self, device: str = "cpu"):
        """A HookedTransformer with this run's architecture (weights not loaded)."""
        model = copy.deepcopy(self._empty_template())
        # a permanent hook, attached to this copy only
        apply_attention_rate(model, self.config.attention_rate, self.config.constant_attention)
        return model if device == "cpu" else model.to(device)

    def load(self, step: int | None = None, device: str = "cpu"):
        """The HookedTransformer at ``step`` (default: the final checkpoint), in eval mode."""
        step = self.final_step if step is None else step
        check_device(device)
        tensors = self.state_dict(step)
        model = self.empty_model(device)
        tl.load_state_dict(model, tensors, strict=False)
        model.eval()
        return model

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        for step in self.steps:
            yield step, self.load(step)

    def __len__(self) -> int:
        return len(self.steps)


def _check_status(status: Any, run_json: Path) -> None:
    """run.json's ``status`` must be there and well-formed: a run without one is not read as complete."""
    if not isinstance(status, dict):
        raise RunFormatError(f"{run_json}: field 'status' is missing or not an object (every run records its state)")
    if status.get("state") not in STATES:
        raise RunFormatError(f"{run_json}: status.state must be one of {list(STATES)}, got {status.get('state')!r}")
    from .config import MAX_STEPS

    for key in ("step", "n_steps"):
        v = status.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= MAX_STEPS:
            raise RunFormatError(f"{run_json}: status.{key} must be an integer in 0..{MAX_STEPS:,}, got {v!r}")
    if status["step"] > status["n_steps"]:
        raise RunFormatError(f"{run_json}: status.step {status['step']} is past status.n_steps {status['n_steps']}")


def _check_copies_agree(meta: dict[str, Any], cfg: RunConfig, run_json: Path) -> None:
    """run.json's other copies of the config (the HookedTransformerConfig kwargs, the seeds) must agree with it.

    The model is always built from the validated RunConfig; a recorded kwarg that differs, or one that the
    config does not produce (``tokenizer_name`` would make TransformerLens reach for a model hub), is refused.
    Older files may lack kwargs added since (their defaults apply)."""
    derived = hooked_config_kwargs(cfg, "cpu")
    for key, value in meta["hooked_transformer_config"].items():
        if key == "device":
            continue  # where it was trained; the model is always rebuilt on the device asked for
        if key not in derived:
            raise RunFormatError(f"{run_json}: hooked_transformer_config.{key} is not a key interp records "
                                 f"(allowed: {sorted(derived)}); refused")
        if value != derived[key]:
            raise RunFormatError(f"{run_json}: hooked_transformer_config.{key} is {value!r} but the run's config "
                                 f"gives {derived[key]!r}; the copies disagree (edited or damaged file)")
    seeds = meta.get("seeds")
    if seeds is not None:
        want = {"data_seed": cfg.data_seed, "model_seed": cfg.model_seed}
        if not isinstance(seeds, dict) or any(seeds.get(k) != v for k, v in want.items()):
            raise RunFormatError(f"{run_json}: seeds {seeds!r} disagree with the config's {want}")


def remove_stale_temporaries(directory: Path) -> None:
    """Remove the hidden ``.NAME.XXXX.tmp`` files a killed atomic write left in ``directory``."""
    for f in Path(directory).iterdir():
        if f.name.startswith(".") and f.name.endswith(".tmp"):
            f.unlink(missing_ok=True)
