"""Build the paper's model as a TransformerLens model; its loss; and the training forward.

The model *is* a TransformerLens model (a ``HookedTransformer`` on TransformerLens 3.9, a ``TransformerBridge``
with the same hook names and parameter layout on 4.x; :mod:`interp.tl` is the seam), so
``model.run_with_cache(tokens)`` gives every activation under the usual names (``blocks.0.mlp.hook_post``,
``blocks.0.attn.hook_pattern``, ...).

Training only needs the logits at the last position; in a 1-layer model those depend on the last
position's query, every position's key and value, and the last position's MLP and unembed.
:func:`training_logits` computes exactly that on the model's own parameters (about a third of the work
of ``model(tokens)[:, -1]``). It is a private training detail: it bypasses TransformerLens' HookPoints,
so on a model with any hook attached (or an architecture it does not cover: more than one layer, LayerNorm, ...)
it runs the model's own forward instead. Measures never use it (:mod:`interp.probes` always runs the hooked forward).
"""

from __future__ import annotations

from typing import Any

import einops
import torch
import torch.nn.functional as F

from . import tl
from .config import CONSTANT_ATTENTION, RunConfig
from .errors import ConfigError

__all__ = [
    "hooked_config_kwargs",
    "build_model",
    "model_from_kwargs",
    "frozen_parameter_names",
    "float64_cross_entropy",
    "has_hooks",
    "model_shapes",
    "check_header_shapes",
    "apply_attention_rate",
]

# The paper's model has no attention biases and no unembed bias; TransformerLens always creates
# them, so we keep them at zero and out of the optimiser. MLP biases (b_in, b_out) are trained.
_FROZEN_SUFFIXES = ("attn.b_Q", "attn.b_K", "attn.b_V", "attn.b_O", "b_U")


def hooked_config_kwargs(cfg: RunConfig, device: str = "cpu") -> dict[str, Any]:
    """Keyword arguments for ``HookedTransformerConfig`` (recorded in run.json so anyone can rebuild the model)."""
    return dict(
        n_layers=cfg.n_layers,
        d_model=cfg.d_model,
        n_heads=cfg.n_heads,
        d_head=cfg.d_head,
        d_mlp=cfg.d_mlp,
        d_vocab=cfg.d_vocab,
        d_vocab_out=cfg.d_vocab_out,
        n_ctx=cfg.n_ctx,
        act_fn=cfg.act_fn,
        normalization_type="LN" if cfg.layer_norm else None,
        positional_embedding_type="standard",
        attn_only=False,
        seed=cfg.model_seed,
        device=device,
    )


def check_device(device: Any) -> str:
    """``device`` ('cpu', 'cuda' or 'cuda:N'), or one ConfigError line when it cannot be used on this machine."""
    if device == "cpu":
        return device
    if isinstance(device, str) and (device == "cuda" or device.startswith("cuda:") and device[5:].isdigit()):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r}: CUDA is not available on this machine; use 'cpu'",
                              field="device", detail=f"{device!r}: CUDA is not available on this machine")
        if ":" in device and int(device[5:]) >= torch.cuda.device_count():
            raise ConfigError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)",
                              field="device", detail=f"this machine has {torch.cuda.device_count()} CUDA device(s)")
        return device
    raise ConfigError(f"device must be 'cpu' or 'cuda', got {device!r}", field="device",
                      detail=f"must be 'cpu' or 'cuda', got {device!r}")


def model_from_kwargs(kwargs: dict[str, Any], device: str | None = None):
    """A TransformerLens model from ``HookedTransformerConfig`` keyword arguments (interp's seeded init, seeded by
    ``kwargs["seed"]`` when set): a HookedTransformer on TransformerLens 3.9, a TransformerBridge on 4.x."""
    return tl.build(kwargs, device)


_ST_DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.bfloat16: "BF16",
              torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
              torch.bool: "BOOL"}


def model_shapes(kwargs: dict[str, Any]) -> dict[str, tuple[str, tuple[int, ...]]]:
    """``{name: (safetensors dtype, shape)}`` of the state dict of the model ``kwargs`` describe, found without
    allocating it (built on PyTorch's ``meta`` device), so a file can be checked against it before the model is made."""
    with torch.device("meta"):
        model = model_from_kwargs(kwargs, device="meta")
    return {k: (_ST_DTYPES.get(v.dtype, str(v.dtype)), tuple(v.shape)) for k, v in tl.state_dict(model).items()}


def check_header_shapes(found: dict[str, tuple[str, tuple[int, ...]]], expected: dict[str, tuple[str, tuple[int, ...]]],
                        path, *, what: str, optional: tuple[str, ...] = ()) -> None:
    """CheckpointError unless a safetensors header (:func:`interp.files.read_safetensors_header`) names exactly the
    tensors of ``expected`` (those ending in ``optional`` may be absent), each with its dtype and shape: checked
    before the file's tensors are read or a model is built, so a size nobody bounded is never allocated."""
    from .errors import CheckpointError

    for name, (dtype, shape) in expected.items():
        if optional and name.endswith(optional):
            continue  # constant buffers (the attention mask): rebuilt by the model, their layout differs by version
        if name not in found:
            raise CheckpointError(f"{path}: tensor {name!r} is missing; this file is not from {what}")
        fd, fs = found[name]
        if fs != shape:
            raise CheckpointError(f"{path}: tensor {name!r} has shape {fs}, {what} needs {shape} (a file from a "
                                  "different config?)")
        if fd != dtype:
            raise CheckpointError(f"{path}: tensor {name!r} is {_torch_name(fd)}, {what} needs {_torch_name(dtype)}")
    extra = sorted(n for n in set(found) - set(expected) if not (optional and n.endswith(optional)))
    if extra:
        raise CheckpointError(f"{path}: unexpected tensor(s) {extra[:5]}; not a file of {what}")


def _torch_name(st_dtype: str) -> str:
    back = {v: k for k, v in _ST_DTYPES.items()}
    return str(back.get(st_dtype, st_dtype))


def build_model(cfg: RunConfig, device: str = "cpu"):
    """A freshly initialised HookedTransformer for ``cfg``, seeded by ``cfg.model_seed``.

    Attention and unembed biases are zero and frozen (``requires_grad=False``).
    """
    # interp's init seeds torch's global RNG with the config's seed first, so it never depends on what ran before.
    model = model_from_kwargs(hooked_config_kwargs(cfg, device))
    freeze_biases(model)
    apply_attention_rate(model, cfg.attention_rate, cfg.constant_attention)
    return model


def apply_attention_rate(model, rate: float, mode: str = "average") -> None:
    """Attention rate ``rate`` (Zhong et al. 2023, "The clock and the pizza"): every attention pattern becomes
    ``rate * softmax(scores) + (1 - rate) * U`` by a permanent hook on ``blocks.{l}.attn.hook_pattern`` (so every
    forward, hooked or not, sees it, and the fast training forward is not used). ``mode`` says what U is:
    ``"average"``, 1/n on each of the n positions a query may attend to (causal), so rows still sum to 1; ``"sum"``,
    1 on each of them, as the paper's code (``softmax * attn_coeff + (1 - attn_coeff)``), so at rate 0 the last
    position reads the sum of the values of [a, b, =] (or [a, b]) instead of their mean. ``rate = 1``: standard
    attention, nothing attached."""
    if mode not in CONSTANT_ATTENTION:
        raise ValueError(f"apply_attention_rate: mode must be one of {CONSTANT_ATTENTION}, got {mode!r}")
    if rate == 1:
        return
    r = float(rate)

    def hook(pattern: torch.Tensor, hook=None) -> torch.Tensor:
        q, k = pattern.shape[-2:]
        allowed = torch.ones(q, k, dtype=pattern.dtype, device=pattern.device).tril(k - q)
        constant = allowed / allowed.sum(-1, keepdim=True) if mode == "average" else allowed
        return r * pattern + (1 - r) * constant

    for layer in range(model.cfg.n_layers):
        model.add_hook(f"blocks.{layer}.attn.hook_pattern", hook, is_permanent=True)


def frozen_parameter_names(model) -> list[str]:
    return [n for n in tl.parameters(model) if n.endswith(_FROZEN_SUFFIXES)]


def freeze_biases(model) -> None:
    with torch.no_grad():
        for name, param in tl.parameters(model).items():
            if name.endswith(_FROZEN_SUFFIXES):
                param.zero_()
                param.requires_grad_(False)


def float64_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy with the log-softmax in float64 (the training loss and every measured loss).

    logits: (batch, classes), labels: (batch,). In float32 the loss floors near 1e-7 and training spikes.
    """
    logprobs = logits.to(torch.float64).log_softmax(dim=-1)
    return -logprobs.gather(-1, labels.unsqueeze(-1)).mean()


def has_hooks(model) -> bool:
    """True when a user's forward or backward hook is attached to the model or any of its modules
    (TransformerLens ``add_hook``, ``model.hooks(...)``, ``run_with_hooks`` and plain torch hooks), or globally;
    TransformerLens 4's own capture hooks do not count."""
    return tl.has_user_hooks(model)


def training_logits(model, tokens: torch.Tensor) -> torch.Tensor:
    """Logits at the last position, ``(batch, d_vocab_out)``: exactly ``model(tokens)[:, -1]``.

    The fast path when the architecture allows it and no hook is attached; the model's own forward otherwise.
    """
    if has_hooks(model) or not _supports_fast_forward(model):
        return model(tokens)[:, -1]
    return _fast_last_position_logits(model, tokens)


def _supports_fast_forward(model) -> bool:
    """True when :func:`_fast_last_position_logits` computes the logits exactly without the full model."""
    c = model.cfg
    return (
        tl.in_ht_layout(model)
        and c.n_layers == 1
        and c.normalization_type is None
        and c.positional_embedding_type == "standard"
        and not c.attn_only
        and not getattr(c, "gated_mlp", False)
        and c.act_fn in ("relu", "gelu")
        and getattr(c, "use_attn_scale", True)
        and not getattr(c, "parallel_attn_mlp", False)
        and getattr(c, "n_key_value_heads", None) in (None, c.n_heads)
        and getattr(c, "attn_types", None) is None
        and getattr(c, "attn_scores_soft_cap", -1.0) in (None, -1.0)
        and getattr(c, "output_logits_soft_cap", -1.0) in (None, -1.0)
        and not getattr(c, "use_qk_norm", False)
    )


def _bias(x: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # Frozen all-zero biases (the paper's attention and unembed biases) are skipped: adding zeros changes nothing.
    if not b.requires_grad and not b.any():
        return x
    return x + b


def _fast_last_position_logits(model, tokens: torch.Tensor) -> torch.Tensor:
    """``model(tokens)[:, -1]`` for a 1-layer model with no LayerNorm, without its HookPoints.

    tokens: (batch, n_ctx) long. Differentiable with respect to the model's parameters.
    Runs the last position's query, MLP and unembed only, and computes queries, keys and values once
    per (vocab token, position) and looks them up per row (an embedding lookup), instead of once per
    row and position.
    """
    w = tl.parameters(model)  # the HookedTransformer-layout leaves, by their names, on both versions
    batch, n_ctx = tokens.shape
    W_E, W_pos = w["embed.W_E"], w["pos_embed.W_pos"]
    d_model = W_E.shape[1]
    n_heads, d_head = w["blocks.0.attn.W_Q"].shape[0], w["blocks.0.attn.W_Q"].shape[2]
    b_Q, b_K, b_V, b_O = (w[f"blocks.0.attn.b_{x}"] for x in "QKVO")
    # all heads in one matmul
    W_K, W_V, W_Q = (einops.rearrange(w[f"blocks.0.attn.W_{x}"], "head d_model d_head -> d_model (head d_head)")
                     for x in "KVQ")
    keys, values = [], []
    for pos in range(n_ctx):
        table = W_E + W_pos[pos]  # residual stream before the block, for every token at this position
        keys.append(F.embedding(tokens[:, pos], _bias(table @ W_K, b_K.reshape(-1))))
        values.append(F.embedding(tokens[:, pos], _bias(table @ W_V, b_V.reshape(-1))))
    last = tokens[:, -1]
    resid = F.embedding(last, table)  # (batch, d_model) at the last position
    q = F.embedding(last, _bias(table @ W_Q, b_Q.reshape(-1))).view(batch, 1, n_heads, d_head)
    k = torch.stack(keys, dim=1).view(batch, n_ctx, n_heads, d_head)
    v = torch.stack(values, dim=1).view(batch, n_ctx, n_heads, d_head)
    # The last position attends to every position, so the causal mask removes nothing here.
    pattern = ((q * k).sum(-1) / tl.attn_scale(model, 0)).softmax(dim=1)  # (batch, pos, head)
    z = (pattern.unsqueeze(-1) * v).sum(dim=1).reshape(batch, n_heads * d_head)
    resid = resid + _bias(z @ w["blocks.0.attn.W_O"].reshape(n_heads * d_head, d_model), b_O)
    pre = torch.addmm(w["blocks.0.mlp.b_in"], resid, w["blocks.0.mlp.W_in"])
    post = F.relu(pre) if model.cfg.act_fn == "relu" else F.gelu(pre)
    resid = resid + torch.addmm(w["blocks.0.mlp.b_out"], post, w["blocks.0.mlp.W_out"])
    return _bias(resid @ w["unembed.W_U"], w["unembed.b_U"])

