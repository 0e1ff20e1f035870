"""Training with checkpoints and exact resume. This module only trains; the run directory it writes is
:mod:`interp.runs`, the update rule (optimiser, schedule, minibatches, gradient filter) :mod:`interp.optim`.

The module is callable: ``from interp import train; train(cfg, "runs/x")`` calls :func:`train`, and
``from interp.train import train`` gives the function itself.

Step semantics: "step t" is the model after t optimiser updates (by default one full-batch update per epoch
over all training pairs; with ``batch_size`` one minibatch each). Row t of metrics.csv holds the train
loss/accuracy of that model over all training pairs (and its test loss/accuracy when t is a multiple of
``eval_every``, and at the final step); ``step_t.safetensors`` holds its weights. Step 0 is the initialisation.

The learning rate follows the paper's code: ``lr * min(t / warmup_steps, 1)`` for the update
from step t to t+1 (so the very first update has learning rate 0), then constant unless ``lr_schedule``
decays it. The loss is cross-entropy with the log-softmax taken in float64
(:func:`interp.model.float64_cross_entropy`).
Everything is deterministic on CPU, which is what makes resumed runs bit-identical.

A run that stops for any reason records it in run.json (``interrupted`` on Ctrl-C, ``failed`` with the error
otherwise; a SIGKILL is recognised when the run is opened, by its lock) and can be continued with
``interp train --out RUN --resume``.
"""

from __future__ import annotations

import inspect
import math
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from . import tl
from .config import RunConfig, preset_names
from .errors import ConfigError, RunFormatError, TrainingError
from .files import prepare_out_dir
from .model import (
    build_model,
    check_device,
    float64_cross_entropy,
    frozen_parameter_names,
    hooked_config_kwargs,
    training_logits,
)
from .optim import (
    GradFilter,
    Minibatches,
    describe_update,
    learning_rate,
    load_optimiser_state,
    make_optimiser,
    optimiser_state_keys,
    optimiser_state_tensors,
)
from .progress import Progress
from .resume_state import check_resume_tensors
from .runs import RUN_JSON, Run, RunLock, remove_stale_temporaries
from .tasks import Task
from .threads import torch_threads

__all__ = ["train", "checkpoint_steps", "protocol", "recorded_threads", "PROTOCOL", "RESUME_EVERY"]

RESUME_EVERY = 100  # resume state is refreshed at least this often (and at every checkpoint)


def protocol(cfg: RunConfig) -> dict[str, str]:
    """The protocol choices of a run, recorded in its run.json (the paper's run: :data:`PROTOCOL`)."""
    update = describe_update(cfg)
    return {
        "step": update.pop("step"),
        "loss": "cross-entropy at the last position, log-softmax in float64",
        "lr_schedule": update.pop("lr_schedule"),
        "frozen_at_zero": "attention biases b_Q, b_K, b_V, b_O and unembed bias b_U",
        "metrics": "train loss/acc every step; test loss/acc every eval_every steps and at the final step, "
                   "no gradients",
        "split": "seeded torch.randperm over pair indices a*p+b; first int(frac_train*p^2) train "
                 "(recorded in split.json)",
        **update,
        **_input_and_attention(cfg),
    }


def _input_and_attention(cfg: RunConfig) -> dict[str, str]:
    """Protocol lines for a run whose input or attention is not the paper's (none for the paper's run)."""
    out = {}
    if not cfg.eq_sign:
        out["input"] = "[a, b]: no '=' token, 2 positions, the logits read at b's position (Zhong et al. 2023)"
    if cfg.attention_rate != 1:
        constant = ("1/n on each of the n positions a query may attend to (rows sum to 1)"
                    if cfg.constant_attention == "average" else
                    "1 on each position a query may attend to (the values summed, as Zhong et al.'s code)")
        out["attention"] = (f"pattern = {cfg.attention_rate:g} softmax(scores) + {1 - cfg.attention_rate:g} x "
                            f"{constant}")
    return out


PROTOCOL = protocol(RunConfig())


def checkpoint_steps(cfg: RunConfig) -> set[int]:
    """Steps that get a checkpoint file: 0, every ``save_every``, the explicit ``save_steps``, the last step."""
    steps = {0, cfg.n_steps}
    if cfg.save_every:
        steps.update(range(0, cfg.n_steps + 1, cfg.save_every))
    steps.update(s for s in cfg.save_steps if s <= cfg.n_steps)
    return steps


def train(
    cfg: RunConfig | None,
    out_dir: str | Path,
    *,
    device: str = "cpu",
    resume: bool = False,
    n_steps: int | None = None,
    progress: bool = True,
    on_step: Callable[[int, dict[str, Any]], None] | None = None,
    threads: int | None = None,
) -> Run:
    """Train ``cfg`` into ``out_dir`` and return the :class:`Run`.

    With ``resume=True`` the config is read from ``out_dir/run.json`` (``cfg`` may be None, or must
    match it) and training continues from the last saved state; ``n_steps`` may extend the run.
    A directory that already holds a run is never overwritten without ``resume``.
    threads: torch CPU threads while training (default: :func:`interp.threads.default_threads`, or for a resumed
    run the count it was recorded with, so that it stays bit-identical); recorded in run.json
    (``torch_threads``) and restored when training ends.
    """
    out = Path(out_dir)
    device = check_device(device)
    if resume and not (out / RUN_JSON).is_file():
        # checked before anything is created, so a mistyped directory leaves nothing behind
        hint = (f"start it with `interp train --preset {cfg.name} --out {out}`" if cfg is not None
                and cfg.name in preset_names() else f"start one with `interp train --preset PRESET --out {out}` "
                f"(PRESET: {', '.join(preset_names())})")
        raise ConfigError(f"out_dir {out}: there is no run to resume (no {RUN_JSON}); {hint}", field="out_dir",
                          detail=f"{out}: there is no run to resume (no {RUN_JSON}); {hint}")
    if cfg is not None and n_steps is not None and not resume:
        cfg = cfg.replace(n_steps=n_steps)  # validated before anything is created
    prepare_out_dir(out, "out_dir")
    with RunLock(out):
        remove_stale_temporaries(out)
        if resume:
            run, state = _open_for_resume(out, cfg, n_steps)
        else:
            if (out / RUN_JSON).exists():
                raise ConfigError(f"out_dir {out}: already holds a run ({RUN_JSON}); resume it or choose another "
                                  "directory", field="out_dir",
                                  detail=f"{out}: already holds a run ({RUN_JSON}); add --resume to continue it "
                                         "or choose another directory")
            if cfg is None:
                raise ConfigError("train: a RunConfig is needed for a new run", field="cfg",
                                  detail="a preset is needed for a new run")
            run, state = None, None
            if n_steps is not None:
                cfg = cfg.replace(n_steps=n_steps)
        if threads is None and run is not None:
            threads = recorded_threads(run)
        with torch_threads(threads) as n:
            trainer = _Trainer(run.config if run is not None else cfg, out, device, run, state, n)
            return trainer.run(progress, on_step)


def recorded_threads(run: Run) -> int | None:
    """The torch thread count the run was last trained with (run.json ``torch_threads``), None if unrecorded."""
    segments = run.meta.get("torch_threads")
    try:
        return int(segments[-1]["threads"])
    except (TypeError, KeyError, IndexError, ValueError):
        return None


def _record_threads(run: Run, step: int, threads: int) -> None:
    """Append ``{from_step, threads}`` to run.json's ``torch_threads`` when training (re)starts with a new count
    (written with the next status; results are bit-identical only within one thread count)."""
    segments = run.meta.setdefault("torch_threads", [])
    if recorded_threads(run) != threads:
        segments.append({"from_step": int(step), "threads": int(threads)})


def _open_for_resume(out: Path, cfg: RunConfig | None, n_steps: int | None) -> tuple[Run, dict | None]:
    run = Run(out)
    if cfg is not None and cfg.replace(n_steps=run.config.n_steps) != run.config:
        given, recorded = cfg.to_dict(), run.config.to_dict()
        diff = sorted(k for k in given if k != "n_steps" and given[k] != recorded[k])
        raise ConfigError(f"{out / RUN_JSON}: the run was recorded with different {', '.join(diff)}; "
                          "resume continues the recorded config (only the number of steps may change)")
    saved = run.read_resume()
    step = 0 if saved is None else saved[0]
    if n_steps is not None:
        if n_steps < step:
            raise ConfigError(f"n_steps {n_steps}: the run is already at step {step}", field="n_steps",
                              detail=f"{n_steps}: the run is already at step {step}")
        if n_steps != run.config.n_steps and run.config.lr_schedule != "constant":
            detail = (f"{n_steps}: the run's {run.config.lr_schedule} learning-rate decay ends at its n_steps "
                      f"{run.config.n_steps}; changing it would change the rates of the steps already trained "
                      "(start a new run instead)")
            raise ConfigError(f"n_steps {detail}", field="n_steps", detail=detail)
        run.config = run.config.replace(n_steps=n_steps)
    if saved is None:
        return run, None
    return run, {"step": step, "tensors": saved[1], "rows": saved[2]}


@dataclass
class _Data:
    train_tokens: torch.Tensor
    train_labels: torch.Tensor
    test_tokens: torch.Tensor
    test_labels: torch.Tensor


class _Trainer:
    """One training run as named steps: evaluate, record, save, optimiser step."""

    def __init__(self, cfg: RunConfig, out: Path, device: str, run: Run | None, state: dict | None, threads: int):
        self.cfg, self.out, self.device = cfg, out, device
        self.model = build_model(cfg, device)
        self.params = {n: p for n, p in tl.parameters(self.model).items() if p.requires_grad}
        self.opt = make_optimiser(cfg, self.params.values())
        self.opt_keys = optimiser_state_keys(cfg)
        self.grad_filter = GradFilter.from_config(cfg)
        task = run.task if run is not None else Task.from_config(cfg)
        tokens, labels = task.tokens().to(device), task.labels().to(device)
        train_idx, test_idx = task.train_idx.to(device), task.test_idx.to(device)
        self.data = _Data(tokens[train_idx], labels[train_idx], tokens[test_idx], labels[test_idx])
        self.batches = None if cfg.batch_size is None else Minibatches(len(train_idx), cfg.batch_size, cfg.data_seed)
        self.save_at = checkpoint_steps(cfg)
        self.saved_step = 0
        self.first_acc_step: int | None = None
        if state is None:
            if run is None:
                run = Run.create(out, cfg, task, hooked_config=hooked_config_kwargs(cfg, "cpu"),
                                 frozen_parameters=frozen_parameter_names(self.model), device=device,
                                 protocol=protocol(cfg))
            self.start, self.rows = 0, []
        else:
            self.start, self.rows = state["step"], state["rows"]
            self._restore(state["tensors"], out / "resume.safetensors", self.start)
            run.discard_checkpoints_after(self.start)
            self.saved_step = self.start
        self.run_dir = run
        _record_threads(run, self.start, threads)
        run.write_status("running", self.start, config=cfg)

    # -- the loop --------------------------------------------------------------------------------

    def run(self, progress: bool, on_step: Callable | None) -> Run:
        cfg = self.cfg
        bar = Progress(cfg.n_steps, f"train {cfg.name}", "step", initial=self.start, enabled=progress)
        if self.start:
            bar.note(f"resuming {self.out} from step {self.start} of {cfg.n_steps}")
        t, state = self.start, "complete"
        try:
            for t in range(self.start, cfg.n_steps + 1):
                final = t == cfg.n_steps
                loss, row = self.evaluate(t, final)
                stop = not final and (
                    (row["test_loss"] is not None and cfg.stop_test_loss is not None
                     and row["test_loss"] < cfg.stop_test_loss)
                    or self.stop_by_accuracy(t, row))
                self.record(row, on_step)
                self.save(t, force=stop)
                bar.update(t, row)
                if final or stop:
                    state = "stopped_early" if stop else "complete"
                    break
                self.optimiser_step(t, loss)
        except KeyboardInterrupt:
            # the step of the resume file on disk: a Ctrl-C between writing it and noting it is not lost
            self.run_dir.write_status("interrupted", self.run_dir.saved_step)
            bar.close()
            raise
        except Exception as e:
            self.run_dir.write_status("failed", self.run_dir.saved_step, error=" ".join(str(e).split())[:300])
            bar.close()
            raise
        bar.close()
        self.run_dir.write_status(state, t)
        return Run(self.out)

    def evaluate(self, t: int, final: bool) -> tuple[torch.Tensor, dict[str, Any]]:
        """The train loss (with gradients for a full-batch update) and this step's metrics row (test every
        eval_every)."""
        d = self.data
        with torch.set_grad_enabled(not final and self.batches is None):
            logits = training_logits(self.model, d.train_tokens)
            loss = float64_cross_entropy(logits, d.train_labels)
        row: dict[str, Any] = {"step": t, "train_loss": loss.item(),
                               "train_acc": (logits.argmax(-1) == d.train_labels).float().mean().item(),
                               "test_loss": None, "test_acc": None}
        if not math.isfinite(row["train_loss"]):
            raise TrainingError(f"training diverged at step {t}: train loss is {row['train_loss']}")
        if t % self.cfg.eval_every == 0 or final:
            with torch.no_grad():
                test_logits = training_logits(self.model, d.test_tokens)
                row["test_loss"] = float64_cross_entropy(test_logits, d.test_labels).item()
                row["test_acc"] = (test_logits.argmax(-1) == d.test_labels).float().mean().item()
        return loss, row

    def stop_by_accuracy(self, t: int, row: dict[str, Any]) -> bool:
        """True `stop_after_steps` steps after test accuracy first reached `stop_test_acc`. The first step is
        found in the recorded rows after a resume, so a resumed run stops at the same step as an uninterrupted one."""
        level = self.cfg.stop_test_acc
        if level is None:
            return False
        if self.first_acc_step is None:
            self.first_acc_step = next((r["step"] for r in self.rows if r["step"] < t and r["test_acc"] is not None
                                        and r["test_acc"] >= level), None)
        if self.first_acc_step is None and row["test_acc"] is not None and row["test_acc"] >= level:
            self.first_acc_step = t
        return self.first_acc_step is not None and t >= self.first_acc_step + self.cfg.stop_after_steps

    def record(self, row: dict[str, Any], on_step: Callable | None) -> None:
        if self.rows and self.rows[-1]["step"] == row["step"]:  # the resume step's row is recomputed, identically
            self.rows[-1] = row
        else:
            self.rows.append(row)
        if on_step is not None:
            on_step(row["step"], row)

    def save(self, t: int, force: bool = False) -> None:
        """Checkpoint at the scheduled steps; metrics and resume state at those and every RESUME_EVERY steps."""
        if t in self.save_at or force:
            self.run_dir.save_checkpoint(t, tl.state_dict(self.model))
        if t in self.save_at or force or t % RESUME_EVERY == 0:
            self.run_dir.write_metrics(self.rows)
            self.run_dir.save_resume(t, self._resume_tensors(), metadata=self.resume_metadata())
            self.saved_step = t
            self.run_dir.write_status("running", t)  # status.step: the last saved step, true at every save

    def optimiser_step(self, t: int, loss: torch.Tensor) -> None:
        """The update from step t to t + 1: on ``loss`` (all training pairs) or on the next minibatch."""
        lr = learning_rate(self.cfg, t)
        for group in self.opt.param_groups:
            group["lr"] = lr
        if self.batches is not None:
            idx = self.batches.next()
            loss = float64_cross_entropy(training_logits(self.model, self.data.train_tokens[idx]),
                                         self.data.train_labels[idx])
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.grad_filter.apply(self.params)
        self.opt.step()

    # -- resume state -------------------------------------------------------------------------------

    def _resume_tensors(self) -> dict[str, torch.Tensor]:
        """Model, optimiser, gradient-filter and minibatch state (named as in :mod:`interp.optim`)."""
        tensors: dict[str, torch.Tensor] = {f"model.{k}": v for k, v in tl.state_dict(self.model).items()}
        tensors.update(optimiser_state_tensors(self.opt, self.params, self.opt_keys))
        if self.grad_filter.active:
            tensors.update(self.grad_filter.state_tensors())
        if self.batches is not None:
            tensors.update(self.batches.state_tensors())
        return tensors

    def resume_metadata(self) -> dict[str, str]:
        """What resume.safetensors says about its own layout (the optimiser and its per-parameter state keys)."""
        return {"optimiser": self.cfg.optimiser, "optimiser_state": ",".join(self.opt_keys),
                "grad_filter": self.cfg.grad_filter,
                "batches": "full" if self.batches is None else "minibatch"}

    def _restore(self, tensors: dict[str, torch.Tensor], path: Path, step: int) -> None:
        # one optimiser update per step (full batch or one minibatch), so the state at step t has counted t updates
        check_resume_tensors(tensors, self.model, self.opt, {id(p): n for n, p in self.params.items()},
                             self.start, self.start, path)
        sd = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        try:
            tl.load_state_dict(self.model, sd)
        except RuntimeError as e:
            raise RunFormatError(f"{path}: resume state does not fit the run's model "
                                 f"({str(e).splitlines()[0]})") from None
        # no update yet: the optimiser state starts empty, as in a fresh run
        load_optimiser_state(self.opt, self.params, self.opt_keys, tensors, str(path))
        self.grad_filter.load_state({k: v.to(self.device) for k, v in tensors.items() if k.startswith("filter.")},
                                    list(self.params), step, str(path))
        if self.batches is not None:
            self.batches.load_state(tensors, str(path))


class _CallableModule(types.ModuleType):
    """``interp.train`` is this module (``interp.train.PROTOCOL``, ``from interp.train import ...``) and, called,
    the function :func:`train`, so ``from interp import train`` gives what people expect either way."""

    def __call__(self, *args, **kwargs) -> Run:
        return train(*args, **kwargs)


__signature__ = inspect.signature(train)  # inspect.signature(interp.train) shows the function's
sys.modules[__name__].__class__ = _CallableModule
