"""The local learning coefficient (LLC) of a checkpoint, estimated with devinterp's SGLD sampler.

The LLC lambda(w*) measures the effective dimension of the loss basin at w*: near a strict minimum whose Hessian has
rank r it is r/2. It is estimated (Lau et al. 2023) by sampling the tempered, localised posterior
p(w) ~ exp(-n_beta L(w) - gamma/2 |w - w*|^2) with SGLD and taking

    llc = n_beta * (E_w[L(w)] - L(w*)),

one estimate per chain; ``estimate`` is their mean, ``std`` their spread. Optional dependency: ``pip install
'interp[llc]'`` (devinterp 2.0.1). Everything runs in memory; nothing is downloaded.

>>> r = probes.llc(model, task)                 # doctest: +SKIP
>>> r.estimate, r.std, r.healthy, r.problems    # doctest: +SKIP
(64.4, 0.66, True, [])

Definitions, the calibration behind the defaults and the health checks: docs/science.md, "The local learning
coefficient".
"""

from __future__ import annotations

import contextlib
import gc
import io
import math
import random
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .. import tl
from ..errors import ProbeError
from ..tasks import SPLITS, Task
from ._common import check_model, model_device

__all__ = ["LLCSettings", "LLCResult", "LLCWarning", "llc", "estimate_llc", "llc_sweep", "INSTALL_HINT",
           "LLC_COLUMNS"]

INSTALL_HINT = "pip install 'interp[llc]' (devinterp 2.0.1)"
# Health thresholds (docs/science.md): a chain at a local minimum rarely sees a loss below L(w*), and independent
# chains of a converged sampler agree.
MAX_FRAC_NEGATIVE = 0.1
MAX_CHAIN_SPREAD = 0.25


class LLCWarning(UserWarning):
    """An LLC estimate failed a health check (its ``problems`` say which)."""


@dataclass(frozen=True)
class LLCSettings:
    """The SGLD hyperparameters of an LLC estimate (defaults from the calibration in docs/science.md).

    epsilon: step size (devinterp ``lr``); gamma: localisation strength; n_beta: inverse temperature n*beta;
    chains, draws, burn_in: SGLD chains, draws per chain, steps discarded before the first draw; batch_size:
    pairs per SGLD step (clipped to the split's size); split: the pairs the loss is taken on ("train", "test",
    "all"); seed: seeds the noise and the batch order (same seed, same estimate to float rounding).
    """

    epsilon: float = 1e-3
    gamma: float = 100.0
    n_beta: float = 10.0
    chains: int = 2
    draws: int = 100
    burn_in: int = 0
    batch_size: int = 512
    split: str = "train"
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("epsilon", "n_beta"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ProbeError(f"LLCSettings.{name} must be a positive number, got {v!r}")
        if isinstance(self.gamma, bool) or not isinstance(self.gamma, (int, float)) or not (
                math.isfinite(self.gamma) and self.gamma >= 0):
            raise ProbeError(f"LLCSettings.gamma must be a number >= 0, got {self.gamma!r}")
        for name, low in (("chains", 2), ("draws", 2), ("burn_in", 0), ("batch_size", 1), ("seed", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                why = " (the spread across chains needs two)" if name == "chains" else ""
                raise ProbeError(f"LLCSettings.{name} must be an integer >= {low}{why}, got {v!r}")
        if self.split not in SPLITS:
            raise ProbeError(f"LLCSettings.split must be one of {list(SPLITS)}, got {self.split!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LLCResult:
    """An LLC estimate with its spread and health checks.

    estimate: mean over chains of n_beta * (mean draw loss - L(w*)); std: standard deviation across chains;
    per_chain: one estimate per chain; init_loss: L(w*) (mean batch loss at the checkpoint); frac_negative:
    fraction of draws whose batch loss is below L(w*); chain_spread: std / |estimate|; trace: (chains, draws)
    batch loss of every draw; problems: the failed health checks (empty when ``healthy``).
    """

    estimate: float
    std: float
    per_chain: list[float]
    init_loss: float
    frac_negative: float
    chain_spread: float
    settings: LLCSettings
    trace: np.ndarray = field(repr=False)
    batch_size: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems

    @property
    def stderr(self) -> float:
        """Standard error of ``estimate`` from the chains (std / sqrt(chains))."""
        return self.std / math.sqrt(len(self.per_chain))


def devinterp_modules():
    try:
        from devinterp.slt.llc import compute_llc
        from devinterp.slt.sampling import sample
    except ImportError:
        raise ProbeError(f"the LLC needs the optional dependency devinterp: {INSTALL_HINT}") from None
    return sample, compute_llc


class _Rows(torch.utils.data.Dataset):
    """An in-memory dataset of ``{"input_ids": row}`` (what devinterp's sampler iterates)."""

    def __init__(self, input_ids: torch.Tensor):
        self.input_ids = input_ids

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, i):
        return {"input_ids": self.input_ids[i]}


@contextlib.contextmanager
def _gc_frozen():
    """devinterp runs gc.collect() twice per chain; with torch and transformers imported each pass walks millions of
    objects (seconds on a busy machine). Freezing what exists before sampling leaves those passes only the new."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@contextlib.contextmanager
def _rng_kept():
    """devinterp seeds the global torch / numpy / random generators; give the caller's states back."""
    states = torch.get_rng_state(), np.random.get_state(), random.getstate()
    try:
        yield
    finally:
        torch.set_rng_state(states[0])
        np.random.set_state(states[1])
        random.setstate(states[2])


def estimate_llc(model: torch.nn.Module, input_ids: torch.Tensor,
                 loss_fn: Callable[[torch.nn.Module, torch.Tensor], torch.Tensor],
                 settings: LLCSettings | None = None, *, progress: bool = False, where: str = "estimate_llc",
                 warn: bool = True) -> LLCResult:
    """The LLC of any ``model`` at its current weights through devinterp's sampler (the engine of :func:`llc`).

    input_ids: (n, seq) rows, batched by the sampler; loss_fn(model, input_ids) -> (batch, seq - 1) per-token
    losses (devinterp's convention). Only parameters with ``requires_grad`` are sampled. The model is not changed
    (each chain samples a copy; hooks attached to the model come with it).
    """
    s = settings if settings is not None else LLCSettings()
    if not isinstance(s, LLCSettings):
        raise ProbeError(f"{where}: settings must be an LLCSettings, got {type(s).__name__}")
    sample, _ = devinterp_modules()
    n = len(input_ids)
    if n < 1:
        raise ProbeError(f"{where}: no data to sample on")
    batch = min(s.batch_size, n)
    # SGLD draws noise per parameter in this order and shape: on a TransformerLens model, the HookedTransformer
    # order and layout on both versions (a bridge built by interp holds its weights in that layout), so the
    # estimate does not depend on the TransformerLens version.
    params = _sampled_parameters(model)
    if not params:
        raise ProbeError(f"{where}: the model has no trainable parameter (requires_grad) to sample")
    t0 = time.perf_counter()
    quiet = contextlib.nullcontext() if progress else contextlib.redirect_stderr(io.StringIO())
    with tempfile.TemporaryDirectory(prefix="interp-llc-") as tmp, _rng_kept(), _gc_frozen(), quiet, \
            tl.copyable(model), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        samples = sample(model, _Rows(input_ids), {}, lr=s.epsilon, n_beta=s.n_beta, localization=s.gamma,
                         param_masks=params, num_chains=s.chains, num_draws=s.draws, num_burnin_steps=s.burn_in,
                         batch_size=batch, init_seed=s.seed, loss_fn=loss_fn, device=str(model_device(model)),
                         output_path=Path(tmp) / "samples.zarr")
        ds = samples.dataset
        # (chain, draw): the batch loss of every draw; burn-in steps are not draws
        trace = ds.sampling_loss.values.astype(np.float64).mean(axis=(2, 3))
        init_loss = float(ds.init_loss.values.astype(np.float64).mean())
    failed = [str(w.message) for w in caught if "Chain failed" in str(w.message)]
    if failed or not np.isfinite(trace).all():
        raise ProbeError(f"{where}: an SGLD chain diverged ({(failed or ['non-finite loss'])[0]}); lower epsilon "
                         f"(now {s.epsilon:g}) or raise gamma (now {s.gamma:g})")
    # devinterp's compute_llc also averages the burn-in steps; the estimator averages the draws only
    per_chain = s.n_beta * (trace.mean(axis=1) - init_loss)
    estimate = float(per_chain.mean())
    std = float(per_chain.std(ddof=1))
    frac_negative = float((trace < init_loss).mean())
    spread = std / abs(estimate) if estimate != 0 else math.inf
    problems = []
    if frac_negative > MAX_FRAC_NEGATIVE:
        problems.append(f"{frac_negative:.0%} of draws have a loss below the loss at the checkpoint (limit "
                        f"{MAX_FRAC_NEGATIVE:.0%}): not a local minimum at this step size, or epsilon too large")
    if spread > MAX_CHAIN_SPREAD:
        problems.append(f"the chains disagree: std/estimate = {spread:.2f} (limit {MAX_CHAIN_SPREAD}); more draws "
                        "or burn-in, or recalibrate epsilon and n_beta")
    if estimate <= 0:
        problems.append(f"estimate {estimate:.3g} <= 0: the sampler did not stay near a minimum")
    result = LLCResult(estimate, std, [float(x) for x in per_chain], init_loss, frac_negative, spread, s, trace,
                       batch, time.perf_counter() - t0, problems)
    if problems and warn:
        warnings.warn(f"{where}: LLC {estimate:.4g} failed a health check: {'; '.join(problems)}", LLCWarning,
                      stacklevel=3)
    return result


def _sampled_parameters(model: torch.nn.Module) -> dict[str, None]:
    """devinterp's param_masks: the model's own names of its trainable parameters, in HookedTransformer order on a
    TransformerLens model (named_parameters() order otherwise)."""
    own = dict(model.named_parameters())
    names = list(tl.sampler_names(model).values()) if tl.is_model(model) else list(own)
    names += [n for n in own if n not in names]
    return {name: None for name in names if own[name].requires_grad}


def task_rows(task: Task, split: str) -> torch.Tensor:
    """(n, 4) long rows [a, b, =, c] of ``split``: the answer c is the last token, read by :func:`answer_loss`."""
    idx = task.split_idx(split)
    return torch.cat([task.tokens()[idx], task.labels()[idx, None]], dim=1)


def answer_loss(model, input_ids: torch.Tensor) -> torch.Tensor:
    """Per-row cross-entropy of the answer (log-softmax in float64) from the model's own hooked forward on
    [a, b, =], repeated over the 3 positions devinterp expects: (batch, 3), each row's mean is its loss."""
    logits = model(input_ids[:, :-1])[:, -1]
    ce = -logits.to(torch.float64).log_softmax(-1).gather(-1, input_ids[:, -1:])[:, 0]
    return ce[:, None].expand(-1, input_ids.shape[1] - 1)


def llc(model, task: Task, settings: LLCSettings | None = None, *, progress: bool = False, warn: bool = True,
        **overrides) -> LLCResult:
    """The LLC of ``model`` on ``task``'s ``split`` pairs (train by default), through devinterp's SGLD sampler.

    Hyperparameters are the fields of :class:`LLCSettings`, given as ``settings`` or as keywords
    (``probes.llc(model, task, epsilon=3e-4, chains=4)``). Seeded: the same settings give the same estimate (to float
    rounding: torch's CPU kernels can round differently from call to call, about 1e-8 relative).
    Every SGLD step runs the model's own forward, so hooks attached to the model are honoured. A failed health
    check warns (:class:`LLCWarning`) unless ``warn`` is False; the result lists it in ``problems`` either way.
    """
    check_model(model, task, "llc")
    if not isinstance(task, Task):
        raise ProbeError(f"llc: task must be an interp Task, got {type(task).__name__}")
    s = settings if settings is not None else LLCSettings()
    if overrides:
        unknown = sorted(set(overrides) - set(LLCSettings.__dataclass_fields__))
        if unknown:
            raise ProbeError(f"llc: unknown setting(s) {unknown}; the settings are "
                             f"{list(LLCSettings.__dataclass_fields__)}")
        s = LLCSettings(**{**s.to_dict(), **overrides})
    rows = task_rows(task, s.split).to(model_device(model))
    return estimate_llc(model, rows, answer_loss, s, progress=progress, where="llc", warn=warn)


LLC_COLUMNS = ("llc", "llc_std", "llc_frac_negative", "llc_chain_spread")


def llc_row(model, task: Task, settings: LLCSettings) -> tuple[dict[str, float], list[str]]:
    """The LLC columns of one checkpoint in a measures table, and its failed health checks."""
    r = llc(model, task, settings, warn=False)
    return dict(zip(LLC_COLUMNS, (r.estimate, r.std, r.frac_negative, r.chain_spread))), r.problems


def warn_unhealthy(where: str, unhealthy: dict[int, list[str]]) -> None:
    steps = sorted(unhealthy)
    first = unhealthy[steps[0]][0]
    warnings.warn(f"{where}: the LLC of {len(steps)} checkpoint(s) failed a health check (steps "
                  f"{', '.join(map(str, steps[:8]))}{', ...' if len(steps) > 8 else ''}); at step {steps[0]}: "
                  f"{first}", LLCWarning, stacklevel=3)


def llc_protocol(settings: LLCSettings) -> dict[str, Any]:
    """What the ``llc`` columns of a measures table are (recorded in its protocol)."""
    from importlib.metadata import version

    return {"settings": settings.to_dict(), "devinterp": version("devinterp"),
            "estimator": "n_beta * (mean batch loss of the draws - L(w*)), per chain; llc = mean over chains, "
                         "llc_std = their standard deviation; burn-in steps excluded",
            "sampler": "devinterp SGLD (sgmcmc_sgld): w <- w - eps/2 (n_beta grad L_batch + gamma (w - w*)) + "
                       "N(0, eps); trainable parameters only (requires_grad)",
            "loss": "cross-entropy of the answer at the last position (log-softmax in float64), model's own forward",
            "health": {"llc_frac_negative": f"fraction of draws with batch loss below L(w*); limit "
                                            f"{MAX_FRAC_NEGATIVE}",
                       "llc_chain_spread": f"llc_std / |llc|; limit {MAX_CHAIN_SPREAD}"}}


def llc_sweep(model, task: Task, epsilons, n_betas, settings: LLCSettings | None = None, **kw):
    """devinterp's calibration procedure: the LLC on a grid of step sizes x inverse temperatures.

    Returns a DataFrame, one row per (epsilon, n_beta): estimate, std, frac_negative, chain_spread, healthy and the
    loss rise (above L(w*)) of the last quarter of the draws over that of the second quarter (``trace_ratio``;
    near 1 when the trace has flattened, above 1 while it still climbs). A setting whose chain diverges is a row
    with ``diverged`` True and no estimate (the grid goes on). Pick the setting where the estimate is stable across
    neighbours and every check passes (examples/llc_calibration.py applies the rule of docs/science.md).
    """
    import pandas as pd

    base = settings if settings is not None else LLCSettings()
    rows = []
    for eps in epsilons:
        for nb in n_betas:
            t0 = time.perf_counter()
            try:
                r = llc(model, task, LLCSettings(**{**base.to_dict(), "epsilon": float(eps), "n_beta": float(nb)}),
                        warn=False, **kw)
            except ProbeError as e:
                if "diverged" not in str(e):
                    raise
                rows.append({"epsilon": eps, "n_beta": nb, "estimate": math.nan, "std": math.nan,
                             "frac_negative": math.nan, "chain_spread": math.nan, "healthy": False,
                             "trace_ratio": math.nan, "seconds": time.perf_counter() - t0, "diverged": True})
                continue
            q = max(1, r.trace.shape[1] // 4)
            rise = r.trace.mean(axis=0) - r.init_loss
            early, late = rise[q:2 * q].mean(), rise[-q:].mean()
            rows.append({"epsilon": eps, "n_beta": nb, "estimate": r.estimate, "std": r.std,
                         "frac_negative": r.frac_negative, "chain_spread": r.chain_spread, "healthy": r.healthy,
                         "trace_ratio": float(late / early) if early else math.nan, "seconds": r.seconds,
                         "diverged": False})
    return pd.DataFrame(rows)
