"""Full-batch training with checkpoints and exact resume. This module only trains; the run directory it
writes is :mod:`interp.runs`.

Step semantics: "step t" is the model after t optimiser updates (one update per epoch over all
training pairs). Row t of metrics.csv holds the train loss/accuracy of that model (and its test
loss/accuracy when t is a multiple of ``eval_every``, and at the final step); ``step_t.safetensors``
holds its weights. Step 0 is the initialisation.

The learning rate follows the paper's code: ``lr * min(t / warmup_steps, 1)`` for the update
from step t to t+1 (so the very first update has learning rate 0). The loss is cross-entropy with
the log-softmax taken in float64 (:func:`interp.model.float64_cross_entropy`).
Everything is deterministic on CPU, which is what makes resumed runs bit-identical.

A run that stops for any reason records it in run.json (``interrupted`` on Ctrl-C, ``failed`` with the error
otherwise; a SIGKILL is recognised when the run is opened, by its lock) and can be continued with
``interp train --out RUN --resume``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from .config import RunConfig, preset_names
from .errors import ConfigError, RunFormatError, TrainingError
from .files import prepare_out_dir
from .model import build_model, float64_cross_entropy, frozen_parameter_names, hooked_config_kwargs, training_logits
from .progress import Progress
from .resume_state import check_resume_tensors
from .runs import RUN_JSON, Run, RunLock, remove_stale_temporaries
from .tasks import Task

__all__ = ["train", "checkpoint_steps", "PROTOCOL", "RESUME_EVERY"]

RESUME_EVERY = 100  # resume state is refreshed at least this often (and at every checkpoint)

PROTOCOL = {
    "step": "step t = model after t full-batch AdamW updates; step 0 is the initialisation",
    "loss": "cross-entropy at the last position, log-softmax in float64",
    "lr_schedule": "lr * min(t / warmup_steps, 1) for the update from step t (the paper's LambdaLR)",
    "frozen_at_zero": "attention biases b_Q, b_K, b_V, b_O and unembed bias b_U",
    "metrics": "train loss/acc every step; test loss/acc every eval_every steps and at the final step, no gradients",
    "split": "seeded torch.randperm over pair indices a*p+b; first int(frac_train*p^2) train (recorded in split.json)",
}


def checkpoint_steps(cfg: RunConfig) -> set[int]:
    """Steps that get a checkpoint file: 0, every ``save_every``, the explicit ``save_steps``, the last step."""
    steps = {0, cfg.n_steps}
    if cfg.save_every:
        steps.update(range(0, cfg.n_steps + 1, cfg.save_every))
    steps.update(s for s in cfg.save_steps if s <= cfg.n_steps)
    return steps


def check_device(device: str) -> str:
    if device == "cpu":
        return device
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r}: CUDA is not available on this machine; use 'cpu'",
                              field="device", detail=f"{device!r}: CUDA is not available on this machine")
        return device
    raise ConfigError(f"device must be 'cpu' or 'cuda', got {device!r}", field="device",
                      detail=f"must be 'cpu' or 'cuda', got {device!r}")


def train(
    cfg: RunConfig | None,
    out_dir: str | Path,
    *,
    device: str = "cpu",
    resume: bool = False,
    n_steps: int | None = None,
    progress: bool = True,
    on_step: Callable[[int, dict[str, Any]], None] | None = None,
) -> Run:
    """Train ``cfg`` into ``out_dir`` and return the :class:`Run`.

    With ``resume=True`` the config is read from ``out_dir/run.json`` (``cfg`` may be None, or must
    match it) and training continues from the last saved state; ``n_steps`` may extend the run.
    A directory that already holds a run is never overwritten without ``resume``.
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
        return _Trainer(run.config if run is not None else cfg, out, device, run, state).run(progress, on_step)


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

    def __init__(self, cfg: RunConfig, out: Path, device: str, run: Run | None, state: dict | None):
        self.cfg, self.out, self.device = cfg, out, device
        self.model = build_model(cfg, device)
        self.params = {n: p for n, p in self.model.named_parameters() if p.requires_grad}
        self.opt = torch.optim.AdamW(self.params.values(), lr=cfg.lr, betas=cfg.betas, eps=cfg.eps,
                                     weight_decay=cfg.weight_decay)
        task = run.task if run is not None else Task.from_config(cfg)
        tokens, labels = task.tokens().to(device), task.labels().to(device)
        train_idx, test_idx = task.train_idx.to(device), task.test_idx.to(device)
        self.data = _Data(tokens[train_idx], labels[train_idx], tokens[test_idx], labels[test_idx])
        self.save_at = checkpoint_steps(cfg)
        self.saved_step = 0
        if state is None:
            if run is None:
                run = Run.create(out, cfg, task, hooked_config=hooked_config_kwargs(cfg, "cpu"),
                                 frozen_parameters=frozen_parameter_names(self.model), device=device,
                                 protocol=PROTOCOL)
            self.start, self.rows = 0, []
        else:
            self.start, self.rows = state["step"], state["rows"]
            self._restore(state["tensors"], out / "resume.safetensors")
            run.discard_checkpoints_after(self.start)
            self.saved_step = self.start
        self.run_dir = run
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
                stop = (row["test_loss"] is not None and cfg.stop_test_loss is not None
                        and row["test_loss"] < cfg.stop_test_loss and not final)
                self.record(row, on_step)
                self.save(t, force=stop)
                bar.update(t, row)
                if final or stop:
                    state = "stopped_early" if stop else "complete"
                    break
                self.optimiser_step(t, loss)
        except KeyboardInterrupt:
            self.run_dir.write_status("interrupted", self.saved_step)
            bar.close()
            raise
        except Exception as e:
            self.run_dir.write_status("failed", self.saved_step, error=" ".join(str(e).split())[:300])
            bar.close()
            raise
        bar.close()
        self.run_dir.write_status(state, t)
        return Run(self.out)

    def evaluate(self, t: int, final: bool) -> tuple[torch.Tensor, dict[str, Any]]:
        """The train loss (with gradients, unless final) and this step's metrics row (test every eval_every)."""
        d = self.data
        with torch.set_grad_enabled(not final):
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
            self.run_dir.save_checkpoint(t, self.model.state_dict())
        if t in self.save_at or force or t % RESUME_EVERY == 0:
            self.run_dir.write_metrics(self.rows)
            self.run_dir.save_resume(t, self._resume_tensors())
            self.saved_step = t
            self.run_dir.write_status("running", t)  # status.step: the last saved step, true at every save

    def optimiser_step(self, t: int, loss: torch.Tensor) -> None:
        cfg = self.cfg
        lr = cfg.lr * min(t / cfg.warmup_steps, 1.0) if cfg.warmup_steps else cfg.lr
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    # -- resume state -------------------------------------------------------------------------------

    def _resume_tensors(self) -> dict[str, torch.Tensor]:
        tensors: dict[str, torch.Tensor] = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        for name, p in self.params.items():
            st = self.opt.state.get(p, {})
            for key in ("exp_avg", "exp_avg_sq"):
                if key in st:
                    tensors[f"optim.{name}.{key}"] = st[key]
            if "step" in st:
                tensors[f"optim.{name}.step"] = torch.as_tensor(st["step"]).reshape(1).to(torch.float32)
        return tensors

    def _restore(self, tensors: dict[str, torch.Tensor], path: Path) -> None:
        # full batch: one optimiser update per step, so the state at step t has counted t updates
        check_resume_tensors(tensors, self.model, self.opt, {id(p): n for n, p in self.params.items()},
                             self.start, self.start, path)
        sd = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        try:
            self.model.load_state_dict(sd)
        except RuntimeError as e:
            raise RunFormatError(f"{path}: resume state does not fit the run's model "
                                 f"({str(e).splitlines()[0]})") from None
        for name, p in self.params.items():
            if self.start == 0:
                continue  # no update yet: AdamW state starts empty, as in a fresh run
            self.opt.state[p] = {
                "step": tensors[f"optim.{name}.step"].reshape(()).clone(),
                "exp_avg": tensors[f"optim.{name}.exp_avg"].clone().to(p.device),
                "exp_avg_sq": tensors[f"optim.{name}.exp_avg_sq"].clone().to(p.device),
            }
