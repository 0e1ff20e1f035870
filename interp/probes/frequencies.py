"""Which frequencies a model uses: neuron clusters, key frequencies, Fourier norms of W_E and W_L.

Frequencies are k = 1..(p-1)/2 (w_k = 2 pi k / p); basis rows are cos-first (:mod:`interp.fourier`).
The neuron rule measures activations from the model's hooked forward; Fourier norms read weights.
Everything here reads layer 0 (the only layer of the paper's model): ``blocks.0.mlp.hook_post``,
``W_E``, and ``W_L = blocks[0].mlp.W_out @ W_U``.
"""

from __future__ import annotations

from typing import Any

import torch

from .. import fourier
from ..errors import ProbeError
from ..tasks import Task
from ._common import check_model, logits_and_neuron_acts

RULES = ("neurons", "embedding", "logits")
DEFAULT_THRESHOLDS = {"neurons": 0.85, "embedding": 0.5, "logits": 0.5}
THRESHOLD_MEANING = {
    "neurons": "a neuron counts when one frequency's 3x3 block {const, cos k, sin k}^2 holds at least this share "
               "of its variance over the pairs (const-const excluded: neurons are centred)",
    "embedding": "k is key when its Fourier norm sqrt(|cos k|^2 + |sin k|^2) of W_E rows 0..p-1 is at least this "
                 "fraction of the largest one",
    "logits": "k is key when its Fourier norm sqrt(|cos k|^2 + |sin k|^2) of W_L = W_out W_U (output axis) is at "
              "least this fraction of the largest one",
}


def neuron_frequency_shares(acts: torch.Tensor, p: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For each neuron, the share of its variance in each frequency's block {const, cos k, sin k}^2.

    acts: (p*p, n_neurons), indexed by pair a*p + b. Returns ``(shares, variance)``: shares is
    (n_neurons, (p-1)/2) with column k-1 for frequency k; variance is (n_neurons,), the sum of
    squares of the centred activations. A constant (dead) neuron, whose variance is below rounding noise,
    gets variance and shares of 0.
    Computed in the activations' precision (float32 activations: shares to ~1e-6; pass float64 for more).
    """
    if acts.ndim != 2 or acts.shape[0] != p * p:
        raise ProbeError(f"neuron_frequency_shares: acts must be (p*p, n_neurons) = ({p * p}, n), "
                         f"got {tuple(acts.shape)}")
    x = acts if acts.dtype in (torch.float32, torch.float64) else acts.to(torch.float64)
    raw = x
    x = x - x.mean(0, keepdim=True)
    power = fourier.fft2d(x, p).reshape(p, p, -1).square()  # (p, p, n): squared 2-D coefficients
    K = fourier.n_frequencies(p)

    def group(t: torch.Tensor) -> torch.Tensor:  # rows {0}, {1,2}, {3,4}, ... -> const, freq 1, freq 2, ...
        return torch.cat([t[:1], t[1:].reshape(K, 2, *t.shape[1:]).sum(1)])

    blocks = group(group(power).transpose(0, 1)).transpose(0, 1)  # (K+1, K+1, n)
    variance = power.sum((0, 1)) - power[0, 0]
    diag = blocks.diagonal(dim1=0, dim2=1).T  # (K+1, n): [k, k] entries
    in_block = blocks[0, 1:] + blocks[1:, 0] + diag[1:]  # (K, n)
    # Constant ("dead") neurons: centring leaves only rounding noise, whose spectrum means nothing.
    alive = variance > (1e3 * torch.finfo(x.dtype).eps) ** 2 * raw.square().sum(0)
    safe = torch.where(alive, variance, torch.ones_like(variance))
    shares = torch.where(alive, in_block / safe, torch.zeros_like(in_block))
    variance = torch.where(alive, variance, torch.zeros_like(variance))
    return shares.T.to(torch.float64).contiguous(), variance.to(torch.float64)


def _shares_of(model_or_acts: Any, task: Task, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(model_or_acts, torch.Tensor):
        return neuron_frequency_shares(model_or_acts, task.p)
    return neuron_frequency_shares(logits_and_neuron_acts(model_or_acts, task, where)[1], task.p)


def _check_threshold(threshold: float, where: str) -> float:
    try:
        t = float(threshold)
    except (TypeError, ValueError):
        raise ProbeError(f"{where}: threshold must be a number in (0, 1], got {threshold!r}") from None
    if not 0 < t <= 1:
        raise ProbeError(f"{where}: threshold must be in (0, 1], got {threshold!r}")
    return t


def neuron_clusters(model_or_acts: Any, task: Task, threshold: float = 0.85):
    """One row per MLP neuron: which frequency explains it, and how much.

    model_or_acts: a HookedTransformer, or its ``blocks.0.mlp.hook_post`` at the last position, (p*p, d_mlp).
    Returns a pandas DataFrame with columns ``neuron``, ``frequency`` (the best k), ``frac_explained``
    (share of the neuron's variance in the block {const, cos k, sin k}^2 of that k), ``clustered``
    (frac_explained >= threshold) and ``variance`` (sum of squares of the centred activations; 0 for dead
    neurons, whose frac_explained is 0). ``df.attrs["threshold"]`` records the threshold.
    """
    import pandas as pd

    threshold = _check_threshold(threshold, "neuron_clusters")
    shares, variance = _shares_of(model_or_acts, task, "neuron_clusters")
    best, k = shares.max(dim=1)
    df = pd.DataFrame({
        "neuron": range(shares.shape[0]),
        "frequency": (k + 1).numpy().astype("int64"),
        "frac_explained": best.numpy(),
        "clustered": (best >= threshold).numpy(),
        "variance": variance.numpy(),
    })
    df.attrs["threshold"] = threshold
    return df


def fourier_norms(model: Any, per_frequency: bool = False) -> dict[str, torch.Tensor]:
    """Norms of the Fourier components of the embedding and of the neuron-logit map (weights, not activations).

    ``"W_E"``: W_E rows 0..p-1 (the residue tokens) transformed along the token axis, one norm per
    basis row: (p,) in cos-first order (labels: :func:`interp.fourier.basis_labels`).
    ``"W_L"``: W_L = W_out @ W_U, (d_mlp, p), transformed along its output axis, one norm per basis row: (p,).
    With ``per_frequency=True`` each is ((p-1)/2,): sqrt(|cos k|^2 + |sin k|^2) for k = 1..(p-1)/2.
    Float64 tensors on the CPU.
    """
    if not (isinstance(model, torch.nn.Module) and hasattr(model, "cfg")):
        raise ProbeError(f"fourier_norms: expected a HookedTransformer, got {type(model).__name__}")
    p = model.cfg.d_vocab_out
    if p % 2 == 0 or model.cfg.d_vocab < p:
        raise ProbeError(f"fourier_norms: the model's d_vocab_out={p} is not an odd modulus p with d_vocab >= p")
    with torch.no_grad():
        W_E = model.W_E[:p].detach().to("cpu", torch.float64)  # (p, d_model)
        W_L = (model.blocks[0].mlp.W_out @ model.W_U).detach().to("cpu", torch.float64)  # (d_mlp, p)
    norms = {
        "W_E": fourier.fft1d(W_E, dim=0).norm(dim=1),
        "W_L": fourier.fft1d(W_L, dim=1).norm(dim=0),
    }
    if per_frequency:
        norms = {name: per_frequency_norms(v) for name, v in norms.items()}
    return norms


def per_frequency_norms(norms: torch.Tensor) -> torch.Tensor:
    """(p,) norms per basis row -> ((p-1)/2,) sqrt(cos^2 + sin^2) per frequency."""
    return (norms[1::2].square() + norms[2::2].square()).sqrt()


def top_frequencies(model_or_acts: Any, task: Task, k: int = 4) -> list[int]:
    """The ``k`` frequencies that hold the most MLP-neuron variance, sorted: a key set that always exists.

    Each frequency's score is the summed variance of the neurons in its block {const, cos f, sin f}^2 (each
    neuron's share of its variance in that block, weighted by the neuron's variance), so the rule returns ``k``
    frequencies for any model, including one that has formed no circuit (where the paper's threshold rule
    returns none). Ties go to the lower frequency. ``model_or_acts`` as for :func:`key_frequencies`.
    """
    n = fourier.n_frequencies(task.p)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n:
        raise ProbeError(f"top_frequencies: k must be an integer in 1..{n} (the frequencies of p = {task.p}), "
                         f"got {k!r}")
    shares, variance = _shares_of(model_or_acts, task, "top_frequencies")
    return _top_k(shares, variance, k)


def _top_k(shares: torch.Tensor, variance: torch.Tensor, k: int) -> list[int]:
    score = (shares * variance[:, None]).sum(0)  # (K,): neuron variance held by each frequency
    order = sorted(range(score.numel()), key=lambda i: (-float(score[i]), i))
    return sorted(i + 1 for i in order[:k])


def key_frequencies(model_or_acts: Any, task: Task, rule: str = "neurons", threshold: float | None = None) -> list[int]:
    """The key frequencies of a model, sorted; ``[]`` when none qualifies.

    rule="neurons" (the paper's): post-ReLU MLP activations at the last position on all pairs, each
    neuron centred over the pairs and 2-D Fourier transformed; a neuron's frequency is the k whose
    block {const, cos k, sin k}^2 holds the largest share of its variance; the key frequencies are the
    distinct frequencies of the neurons whose share is >= threshold (default 0.85).
    rule="embedding": frequencies whose Fourier norm of W_E (rows 0..p-1) is >= threshold times the
    largest frequency's norm (default 0.5). rule="logits": the same on W_L = W_out W_U (output axis).
    ``model_or_acts``: a HookedTransformer, or (neuron rule only) its ``blocks.0.mlp.hook_post`` at the last
    position, (p*p, d_mlp). The neuron rule runs the model's hooked forward; the embedding and logits rules read
    weights (hooks do not change weights).
    """
    if rule not in RULES:
        raise ProbeError(f"key_frequencies: rule must be one of {list(RULES)}, got {rule!r}")
    threshold = _check_threshold(DEFAULT_THRESHOLDS[rule] if threshold is None else threshold, "key_frequencies")
    if rule == "neurons":
        shares, _ = _shares_of(model_or_acts, task, "key_frequencies")
        best, k = shares.max(dim=1)
        return sorted({int(f) + 1 for f in k[best >= threshold].tolist()})
    check_model(model_or_acts, task, "key_frequencies")
    norms = fourier_norms(model_or_acts, per_frequency=True)["W_E" if rule == "embedding" else "W_L"]
    top = norms.max()
    if top <= 0:
        return []
    return [int(i) + 1 for i in torch.nonzero(norms >= threshold * top).flatten().tolist()]
