"""Full-batch training with checkpoints and exact resume.

Step semantics: "step t" is the model after t optimiser updates (one update per epoch over all
training pairs). Row t of metrics.csv holds the train loss/accuracy of that model (and its test
loss/accuracy when t is a multiple of ``eval_every``, and at the final step); ``step_t.safetensors``
holds its weights. Step 0 is the initialisation.

The learning rate follows the paper's code: ``lr * min(t / warmup_steps, 1)`` for the update
from step t to t+1 (so the very first update has learning rate 0). The loss is cross-entropy with
the log-softmax taken in float64 (in float32 it floors near 1e-7 and causes loss spikes).
Everything is deterministic on CPU, which is what makes resumed runs bit-identical.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
from pathlib import Path
from typing import Any, Callable

import torch

from .checkpoints import (
    FORMAT,
    FORMAT_VERSION,
    Run,
    RunLock,
    atomic_write_text,
    checkpoint_name,
    format_metrics_csv,
    parse_metrics_csv,
    read_safetensors,
    save_tensors,
)
from .config import RunConfig
from .errors import ConfigError, RunFormatError
from .model import build_model, frozen_parameter_names, hooked_config_kwargs, last_position_logits
from .tasks import Task

__all__ = ["train", "checkpoint_steps", "float64_cross_entropy", "PROTOCOL"]

RESUME_FILE = "resume.safetensors"
RESUME_EVERY = 100  # resume state is refreshed at least this often (and at every checkpoint)

PROTOCOL = {
    "step": "step t = model after t full-batch AdamW updates; step 0 is the initialisation",
    "loss": "cross-entropy at the last position, log-softmax in float64",
    "lr_schedule": "lr * min(t / warmup_steps, 1) for the update from step t (the paper's LambdaLR)",
    "frozen_at_zero": "attention biases b_Q, b_K, b_V, b_O and unembed bias b_U",
    "metrics": "train loss/acc every step; test loss/acc every eval_every steps and at the final step, no gradients",
    "split": "seeded torch.randperm over pair indices a*p+b; first int(frac_train*p^2) train (recorded in split.json)",
}


def float64_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy with the log-softmax in float64. logits: (batch, classes), labels: (batch,)."""
    logprobs = logits.to(torch.float64).log_softmax(dim=-1)
    return -logprobs.gather(-1, labels.unsqueeze(-1)).mean()


def checkpoint_steps(cfg: RunConfig) -> set[int]:
    """Steps that get a checkpoint file: 0, every ``save_every``, the explicit ``save_steps``, the last step."""
    steps = {0, cfg.n_steps}
    if cfg.save_every:
        steps.update(range(0, cfg.n_steps + 1, cfg.save_every))
    steps.update(s for s in cfg.save_steps if s <= cfg.n_steps)
    return steps


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("interp", "torch", "transformer-lens", "safetensors", "einops"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "unknown"
    return out


def _run_meta(cfg: RunConfig, model, device: str, status: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": cfg.name,
        "config": cfg.to_dict(),
        "seeds": {"data_seed": cfg.data_seed, "model_seed": cfg.model_seed},
        "hooked_transformer_config": {**hooked_config_kwargs(cfg, "cpu")},
        "frozen_parameters": frozen_parameter_names(model),
        "protocol": PROTOCOL,
        "versions": _versions(),
        "trained_on": device,
        "status": status,
    }


def _check_device(device: str) -> str:
    if device == "cpu":
        return device
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
        return device
    raise ConfigError(f"--device must be 'cpu' or 'cuda', got {device!r}")


def prepare_out_dir(out: Path, flag: str = "--out") -> None:
    """Create ``out`` if needed and check it is a writable directory, before any work is done."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{flag} {out}: exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"{flag} {out}: cannot create directory ({e.strerror})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {out}: directory is not writable")


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
    device = _check_device(device)
    prepare_out_dir(out)
    with RunLock(out):
        _remove_stale_temporaries(out)
        if resume:
            cfg, state = _load_resume(out, cfg, n_steps)
        else:
            if (out / "run.json").exists():
                raise ConfigError(f"--out {out}: already holds a run (run.json); pass --resume to continue it "
                                  "or choose another directory")
            if cfg is None:
                raise ConfigError("train: a RunConfig is needed for a new run")
            if n_steps is not None:
                cfg = cfg.replace(n_steps=n_steps)
            state = None
        return _train_loop(cfg, out, device, state, progress, on_step)


def _remove_stale_temporaries(out: Path) -> None:
    """Temporary files of a killed writer (never renamed into place, so never read) are removed."""
    for f in out.iterdir():
        if f.name.startswith(".") and f.name.endswith(".tmp"):
            f.unlink(missing_ok=True)


def _load_resume(out: Path, cfg: RunConfig | None, n_steps: int | None):
    run = Run(out)
    if cfg is not None and cfg.replace(n_steps=run.config.n_steps) != run.config:
        given, recorded = cfg.to_dict(), run.config.to_dict()
        diff = sorted(k for k in given if k != "n_steps" and given[k] != recorded[k])
        raise ConfigError(f"{out / 'run.json'}: the run was recorded with different {', '.join(diff)}; "
                          "resume continues the recorded config (only --steps may change)")
    run_cfg = run.config
    resume_path = out / RESUME_FILE
    if not resume_path.exists():
        if run.meta.get("status") == {"state": "running", "step": 0}:
            return run_cfg if n_steps is None else run_cfg.replace(n_steps=n_steps), None  # killed before step 0 was saved
        raise RunFormatError(f"{resume_path}: no resume state in this run (it may have been thinned for shipping)")
    tensors, meta = read_safetensors(resume_path)
    try:
        step = int(meta["step"])
    except (KeyError, ValueError):
        raise RunFormatError(f"{resume_path}: metadata has no valid 'step'") from None
    if n_steps is not None:
        if n_steps < step:
            raise ConfigError(f"--steps {n_steps}: the run is already at step {step}")
        run_cfg = run_cfg.replace(n_steps=n_steps)
    rows = [r for r in parse_metrics_csv(out / "metrics.csv") if r["step"] <= step]
    if not rows or rows[-1]["step"] != step:
        raise RunFormatError(f"{out / 'metrics.csv'}: has no row for the resume step {step}")
    return run_cfg, {"step": step, "tensors": tensors, "rows": rows, "meta": meta}


def _train_loop(cfg: RunConfig, out: Path, device: str, state: dict | None, progress: bool,
                on_step: Callable | None) -> Run:
    task = Task.from_config(cfg)
    model = build_model(cfg, device)
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    opt = torch.optim.AdamW(params.values(), lr=cfg.lr, betas=cfg.betas, eps=cfg.eps,
                            weight_decay=cfg.weight_decay)

    tokens = task.tokens().to(device)
    labels = task.labels().to(device)
    train_idx, test_idx = task.train_idx.to(device), task.test_idx.to(device)
    train_tokens, train_labels = tokens[train_idx], labels[train_idx]
    test_tokens, test_labels = tokens[test_idx], labels[test_idx]

    if state is None:
        start, rows = 0, []
        atomic_write_text(out / "split.json", json.dumps({
            "p": cfg.p, "op": cfg.op, "frac_train": cfg.frac_train, "data_seed": cfg.data_seed,
            "pair_index": "a * p + b", "train": task.train_idx.tolist(), "test": task.test_idx.tolist(),
        }))
        _write_run_json(out, cfg, model, device, {"state": "running", "step": 0})
    else:
        start, rows = state["step"], state["rows"]
        _restore(model, opt, params, state["tensors"], out / RESUME_FILE)
        for f in os.listdir(out):  # checkpoints past the resume point get rewritten, identically
            if f.startswith("step_") and f.endswith(".safetensors") and int(f[5:-12]) > start:
                os.unlink(out / f)
        _write_run_json(out, cfg, model, device, {"state": "running", "step": start})

    save_at = checkpoint_steps(cfg)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.n_steps, initial=start, desc=f"train {cfg.name}", unit="step",
                   dynamic_ncols=True, mininterval=0.5)
    last_test = math.nan
    status = "complete"
    t = start
    try:
        for t in range(start, cfg.n_steps + 1):
            final = t == cfg.n_steps
            with torch.set_grad_enabled(not final):
                logits = last_position_logits(model, train_tokens)
                loss = float64_cross_entropy(logits, train_labels)
            row: dict[str, Any] = {"step": t, "train_loss": loss.item(),
                                   "train_acc": (logits.argmax(-1) == train_labels).float().mean().item(),
                                   "test_loss": None, "test_acc": None}
            stop = False
            if t % cfg.eval_every == 0 or final:
                with torch.no_grad():
                    test_logits = last_position_logits(model, test_tokens)
                    row["test_loss"] = float64_cross_entropy(test_logits, test_labels).item()
                    row["test_acc"] = (test_logits.argmax(-1) == test_labels).float().mean().item()
                last_test = row["test_loss"]
                if cfg.stop_test_loss is not None and last_test < cfg.stop_test_loss and not final:
                    stop, status = True, "stopped_early"
            if not math.isfinite(row["train_loss"]):
                raise RunFormatError(f"training diverged at step {t}: train loss is {row['train_loss']}")
            if len(rows) and rows[-1]["step"] == t:  # the resume step's row is recomputed, identically
                rows[-1] = row
            else:
                rows.append(row)
            if on_step is not None:
                on_step(t, row)

            if t in save_at or stop:
                save_tensors(out / checkpoint_name(t), model.state_dict())
            if t in save_at or stop or t % RESUME_EVERY == 0:
                atomic_write_text(out / "metrics.csv", format_metrics_csv(rows))
                _save_resume(out, model, opt, params, t)
            if bar is not None:
                bar.update(0 if t == start else 1)
                if row["test_loss"] is not None:
                    bar.set_postfix(train=f"{row['train_loss']:.2e}", test=f"{last_test:.2e}", refresh=False)
            if final or stop:
                break

            lr = cfg.lr * min(t / cfg.warmup_steps, 1.0) if cfg.warmup_steps else cfg.lr
            for group in opt.param_groups:
                group["lr"] = lr
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    finally:
        if bar is not None:
            bar.close()
    _write_run_json(out, cfg, model, device, {"state": status, "step": t})
    return Run(out)


def _write_run_json(out: Path, cfg: RunConfig, model, device: str, status: dict[str, Any]) -> None:
    meta = _run_meta(cfg, model, device, status)
    meta["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    atomic_write_text(out / "run.json", json.dumps(meta, indent=2) + "\n")


def _save_resume(out: Path, model, opt: torch.optim.Optimizer, params: dict[str, torch.nn.Parameter], step: int) -> None:
    """Model and AdamW state in one file, so they can never disagree about the step."""
    tensors: dict[str, torch.Tensor] = {f"model.{k}": v for k, v in model.state_dict().items()}
    for name, p in params.items():
        st = opt.state.get(p, {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in st:
                tensors[f"optim.{name}.{key}"] = st[key]
        if "step" in st:
            tensors[f"optim.{name}.step"] = torch.as_tensor(st["step"]).reshape(1).to(torch.float32)
    save_tensors(out / RESUME_FILE, tensors, metadata={"step": str(step), "format": "interp-resume-1"})


def _restore(model, opt: torch.optim.Optimizer, params: dict[str, torch.nn.Parameter],
             tensors: dict[str, torch.Tensor], path: Path) -> None:
    sd = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    missing = set(model.state_dict()) - set(sd)
    if missing:
        raise RunFormatError(f"{path}: resume state lacks model tensors {sorted(missing)[:3]}")
    try:
        model.load_state_dict(sd)
    except RuntimeError as e:
        raise RunFormatError(f"{path}: resume state does not fit the run's model ({str(e).splitlines()[0]})") from None
    for name, p in params.items():
        if f"optim.{name}.exp_avg" not in tensors:
            continue  # no update yet: AdamW state starts empty, as in a fresh run
        opt.state[p] = {
            "step": tensors[f"optim.{name}.step"].reshape(()).clone(),
            "exp_avg": tensors[f"optim.{name}.exp_avg"].clone().to(p.device),
            "exp_avg_sq": tensors[f"optim.{name}.exp_avg_sq"].clone().to(p.device),
        }
