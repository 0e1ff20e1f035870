"""Which frequencies a model uses: neuron clusters, key frequencies, Fourier norms of W_E and W_L.

Every measure here is taken in the task's group (:attr:`interp.Task.group`): Z_p for add/sub, Z_(p-1) by
discrete logarithm for mul/div, whose pairs with a zero input are left out. Frequencies are k = 1..n//2 of
the group of order n (w_k = 2 pi k / n; for even n the last is the Nyquist frequency); basis rows are cos-first
(:mod:`interp.fourier`). The neuron rule measures activations from the model's hooked forward; Fourier norms
read weights. ``layer=`` picks the MLP (``blocks.{layer}.mlp.hook_post``, ``W_L = blocks[layer].mlp.W_out @
W_U``); the default is the last layer. For a layer below the last, W_L is the direct path only, and with a final
LayerNorm, its centring and gain are folded in and its per-input scale is ignored (an approximation, recorded in
the protocol of :func:`interp.probes.measure_run`).
"""

from __future__ import annotations

from typing import Any

import torch

from .. import fourier, tl
from ..errors import ProbeError
from ..tasks import Task
from ._common import check_layer, check_model, logits_and_neuron_acts

RULES = ("neurons", "embedding", "logits")
DEFAULT_THRESHOLDS = {"neurons": 0.85, "embedding": 0.5, "logits": 0.5}
THRESHOLD_MEANING = {
    "neurons": "a neuron counts when one frequency's 3x3 block {const, cos k, sin k}^2 holds at least this share "
               "of its variance over the pairs (const-const excluded: neurons are centred)",
    "embedding": "k is key when its Fourier norm sqrt(|cos k|^2 + |sin k|^2) of the W_E rows of the group's "
                 "residues (in group order) is at least this fraction of the largest one",
    "logits": "k is key when its Fourier norm sqrt(|cos k|^2 + |sin k|^2) of W_L = W_out W_U (output axis) is at "
              "least this fraction of the largest one",
}


def neuron_frequency_shares(acts: torch.Tensor, p: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For each neuron, the share of its variance in each frequency's block {const, cos k, sin k}^2.

    acts: (n*n, n_neurons), indexed by group pair i*n + j (for add/sub the pair a*p + b; take
    ``acts[task.circuit_idx]`` for any task). Returns ``(shares, variance)``: shares is
    (n_neurons, n//2) with column k-1 for frequency k (the Nyquist block of an even n is {const, cos n/2}^2);
    variance is (n_neurons,), the sum of squares of the centred activations. A constant (dead) neuron, whose
    variance is below rounding noise, gets variance and shares of 0.
    Computed in the activations' precision (float32 activations: shares to ~1e-6; pass float64 for more).
    """
    if acts.ndim != 2 or acts.shape[0] != p * p:
        raise ProbeError(f"neuron_frequency_shares: acts must be (n*n, n_neurons) = ({p * p}, n), "
                         f"got {tuple(acts.shape)}")
    x = acts if acts.dtype in (torch.float32, torch.float64) else acts.to(torch.float64)
    raw = x
    x = x - x.mean(0, keepdim=True)
    power = fourier.fft2d(x, p).reshape(p, p, -1).square()  # (n, n, m): squared 2-D coefficients
    K = fourier.n_frequencies(p)
    rows = torch.tensor(fourier.row_frequencies(p))

    def group(t: torch.Tensor) -> torch.Tensor:  # basis rows -> const, freq 1, ..., freq K along dim 0
        return torch.zeros(K + 1, *t.shape[1:], dtype=t.dtype).index_add_(0, rows, t)

    blocks = group(group(power).transpose(0, 1)).transpose(0, 1)  # (K+1, K+1, m)
    variance = power.sum((0, 1)) - power[0, 0]
    diag = blocks.diagonal(dim1=0, dim2=1).T  # (K+1, m): [k, k] entries
    in_block = blocks[0, 1:] + blocks[1:, 0] + diag[1:]  # (K, m)
    # Constant ("dead") neurons: centring leaves only rounding noise, whose spectrum means nothing.
    alive = variance > (1e3 * torch.finfo(x.dtype).eps) ** 2 * raw.square().sum(0)
    safe = torch.where(alive, variance, torch.ones_like(variance))
    shares = torch.where(alive, in_block / safe, torch.zeros_like(in_block))
    variance = torch.where(alive, variance, torch.zeros_like(variance))
    return shares.T.to(torch.float64).contiguous(), variance.to(torch.float64)


def group_acts(acts: torch.Tensor, task: Task, where: str) -> torch.Tensor:
    """(n_pairs, m) activations in pair order -> (n*n, m) on the group's pairs, in group order."""
    g = task.require_group(where)
    if acts.ndim != 2 or acts.shape[0] != task.n_pairs:
        raise ProbeError(f"{where}: acts must be (n_pairs, n_neurons) = ({task.n_pairs}, n) for {task.op} mod "
                         f"{task.p}, got {tuple(acts.shape)}")
    del g
    return acts[task.circuit_idx]


def _shares_of(model_or_acts: Any, task: Task, where: str, layer: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    g = task.require_group(where)
    if isinstance(model_or_acts, torch.Tensor):
        acts = model_or_acts
    else:
        acts = logits_and_neuron_acts(model_or_acts, task, where, layer)[1]
    return neuron_frequency_shares(group_acts(acts, task, where), g.order)


def _check_threshold(threshold: float, where: str) -> float:
    try:
        t = float(threshold)
    except (TypeError, ValueError):
        raise ProbeError(f"{where}: threshold must be a number in (0, 1], got {threshold!r}") from None
    if not 0 < t <= 1:
        raise ProbeError(f"{where}: threshold must be in (0, 1], got {threshold!r}")
    return t


def neuron_clusters(model_or_acts: Any, task: Task, threshold: float = 0.85, *, layer: int | None = None):
    """One row per MLP neuron of ``layer`` (default: the last): which frequency of the task's group explains it.

    model_or_acts: a HookedTransformer, or its ``blocks.{layer}.mlp.hook_post`` at the last position,
    (n_pairs, d_mlp) in pair order.
    Returns a pandas DataFrame with columns ``neuron``, ``frequency`` (the best k), ``frac_explained``
    (share of the neuron's variance in the block {const, cos k, sin k}^2 of that k), ``clustered``
    (frac_explained >= threshold) and ``variance`` (sum of squares of the centred activations; 0 for dead
    neurons, whose frac_explained is 0). ``df.attrs["threshold"]`` records the threshold.
    """
    import pandas as pd

    threshold = _check_threshold(threshold, "neuron_clusters")
    shares, variance = _shares_of(model_or_acts, task, "neuron_clusters", layer)
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


def logit_map(model, layer: int | None = None, where: str = "W_L") -> torch.Tensor:
    """W_L = blocks[layer].mlp.W_out @ W_U, (d_mlp, d_vocab_out) float64 on the CPU (default: the last layer).

    With a final LayerNorm (``ln_final``) its centring and gain are folded in (W_out P diag(w) W_U, P the
    centring projection) and its per-input scale is ignored: Fourier norms and their Gini coefficients are
    exact when that scale is the same for every input, an approximation otherwise. For a layer below the last
    it is the direct path to the logits only.
    """
    layer = check_layer(model, layer, where)
    with torch.no_grad():
        W_out = model.blocks[layer].mlp.W_out.detach().to("cpu", torch.float64)  # (d_mlp, d_model)
        W_U = model.W_U.detach().to("cpu", torch.float64)  # (d_model, d_vocab_out)
        # a bridge's ln_final wraps nn.Identity in a model without LayerNorm: ask the seam, not the attribute
        norm = tl.final_norm(model)
        if norm is not None:
            kind, w = norm
            if kind != "RMS":  # LayerNorm centres the residual stream; RMS norm does not
                W_out = W_out - W_out.mean(1, keepdim=True)
            if w is not None:
                W_out = W_out * w.detach().to("cpu", torch.float64)
        return W_out @ W_U


def fourier_norms(model: Any, task: Task | None = None, per_frequency: bool = False, *,
                  layer: int | None = None) -> dict[str, torch.Tensor]:
    """Norms of the Fourier components of the embedding and of the neuron-logit map (weights, not activations),
    in the task's group (default: Z_p of the model's p, the basis of add and sub).

    ``"W_E"``: the W_E rows of the group's residues in group order (add/sub: rows 0..p-1; mul/div: rows g^i,
    i = 0..p-2), transformed along the token axis, one norm per basis row: (n,) in cos-first order (labels:
    :func:`interp.fourier.basis_labels`). ``"W_L"``: W_L = W_out @ W_U of ``layer`` (:func:`logit_map`), its
    output axis taken in group order and transformed, one norm per basis row: (n,). With ``per_frequency=True``
    each is (n//2,): sqrt(|cos k|^2 + |sin k|^2) for k = 1..n//2. Float64 tensors on the CPU. An
    attention-only model has no W_L (only ``"W_E"`` is returned).
    """
    if not tl.is_model(model):
        raise ProbeError(f"fourier_norms: expected a TransformerLens model, got {type(model).__name__}")
    if isinstance(task, bool):
        raise ProbeError("fourier_norms: the second argument is the task; pass per_frequency= by name")
    if task is None:
        task = Task(op="add", p=model.cfg.d_vocab_out)
    check_model(model, task, "fourier_norms")
    elements = task.require_group("fourier_norms").residue_index()
    with torch.no_grad():
        W_E = model.W_E[elements].detach().to("cpu", torch.float64)  # (n, d_model)
    norms = {"W_E": fourier.fft1d(W_E, dim=0).norm(dim=1)}
    if not getattr(model.cfg, "attn_only", False):
        W_L = logit_map(model, layer, "fourier_norms")[:, elements]  # (d_mlp, n)
        norms["W_L"] = fourier.fft1d(W_L, dim=1).norm(dim=0)
    if per_frequency:
        norms = {name: per_frequency_norms(v) for name, v in norms.items()}
    return norms


per_frequency_norms = fourier.per_frequency_norms


def top_frequencies(model_or_acts: Any, task: Task, k: int = 4, *, layer: int | None = None) -> list[int]:
    """The ``k`` frequencies that hold the most MLP-neuron variance, sorted: a key set that always exists.

    Each frequency's score is the summed variance of the neurons in its block {const, cos f, sin f}^2 (each
    neuron's share of its variance in that block, weighted by the neuron's variance), so the rule returns ``k``
    frequencies for any model, including one that has formed no circuit (where the paper's threshold rule
    returns none). Ties go to the lower frequency. ``model_or_acts`` as for :func:`key_frequencies`.
    """
    n = fourier.n_frequencies(task.require_group("top_frequencies").order)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n:
        raise ProbeError(f"top_frequencies: k must be an integer in 1..{n} (the frequencies of "
                         f"{task.group.name}), got {k!r}")
    shares, variance = _shares_of(model_or_acts, task, "top_frequencies", layer)
    return _top_k(shares, variance, k)


def _top_k(shares: torch.Tensor, variance: torch.Tensor, k: int) -> list[int]:
    score = (shares * variance[:, None]).sum(0)  # (K,): neuron variance held by each frequency
    order = sorted(range(score.numel()), key=lambda i: (-float(score[i]), i))
    return sorted(i + 1 for i in order[:k])


def key_frequencies(model_or_acts: Any, task: Task, rule: str = "neurons", threshold: float | None = None, *,
                    layer: int | None = None) -> list[int]:
    """The key frequencies of a model, sorted; ``[]`` when none qualifies.

    rule="neurons" (the paper's): post-ReLU MLP activations at the last position on all pairs, each
    neuron centred over the pairs and 2-D Fourier transformed; a neuron's frequency is the k whose
    block {const, cos k, sin k}^2 holds the largest share of its variance; the key frequencies are the
    distinct frequencies of the neurons whose share is >= threshold (default 0.85).
    rule="embedding": frequencies whose Fourier norm of W_E (the group's residues) is >= threshold times the
    largest frequency's norm (default 0.5). rule="logits": the same on W_L = W_out W_U (output axis).
    Frequencies are those of the task's group (:attr:`interp.Task.group`); ``layer``: the MLP read (default the
    last). ``model_or_acts``: a HookedTransformer, or (neuron rule only) its ``blocks.{layer}.mlp.hook_post`` at
    the last position, (n_pairs, d_mlp). The neuron rule runs the model's hooked forward; the embedding and logits rules read
    weights (hooks do not change weights).
    """
    if rule not in RULES:
        raise ProbeError(f"key_frequencies: rule must be one of {list(RULES)}, got {rule!r}")
    threshold = _check_threshold(DEFAULT_THRESHOLDS[rule] if threshold is None else threshold, "key_frequencies")
    if rule == "neurons":
        shares, _ = _shares_of(model_or_acts, task, "key_frequencies", layer)
        best, k = shares.max(dim=1)
        return sorted({int(f) + 1 for f in k[best >= threshold].tolist()})
    check_model(model_or_acts, task, "key_frequencies")
    if rule == "logits":
        check_layer(model_or_acts, layer, "key_frequencies")
    norms = fourier_norms(model_or_acts, task, per_frequency=True, layer=layer)["W_E" if rule == "embedding" else "W_L"]
    top = norms.max()
    if top <= 0:
        return []
    return [int(i) + 1 for i in torch.nonzero(norms >= threshold * top).flatten().tolist()]
