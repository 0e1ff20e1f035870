"""The one seam between interp and TransformerLens: 3.9 (``HookedTransformer``) and 4.x (``TransformerBridge``).

Nothing else in interp names a TransformerLens class. Both versions give a model with the standard hook names
(``blocks.0.mlp.hook_post``, ``blocks.0.attn.hook_pattern``, ...), ``cfg``, ``W_E``/``W_U``/``W_in``/... and
``run_with_cache``. What differs, and is handled here:

- construction and seeded init: interp's own init on both (seed, then N(0, initializer_range) per ``W_*`` in the
  HookedTransformer's parameter order, zero biases, unit LayerNorm gains), bit-exact with HookedTransformer 3.9;
- parameter names and the state-dict layout: :func:`parameters` and :func:`state_dict` speak the HookedTransformer
  layout on both (``blocks.0.attn.W_Q`` of shape (n_heads, d_model, d_head)), so checkpoints and resume files are
  one format. On 4.x a bridge built here holds its weights as leaves in that layout and computes the bridge's
  ``nn.Linear`` weights from them (a property on the wrapped torch module), so the optimiser state, the Grokfast filter and
  devinterp's SGLD noise are all drawn and stored in the 3.9 layout; ``unembed.b_U`` is a (frozen) parameter again;
- ``attn_scale`` (:func:`attn_scale`) and the final norm (:func:`final_norm`: the bridge's ``ln_final`` wraps
  ``nn.Identity`` in a model without LayerNorm);
- TransformerLens 4's own capture hooks (:func:`has_user_hooks` counts only a user's);
- deepcopy: TransformerLens 4.3's copy keeps capture hooks that point at the original; :func:`copyable` (and every
  bridge built here) tears them down first, so the copy wires its own on its first forward.

The default ``enable_compatibility_mode()`` of a bridge centres W_U (it moves the measures): never used here.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from importlib.metadata import version
from typing import Any, Iterator

import torch

from .errors import ConfigError

__all__ = ["TL_VERSION", "TL_MAJOR", "build", "parameters", "in_ht_layout", "sampler_names", "state_dict", "load_state_dict",
           "attn_scale", "final_norm", "has_user_hooks", "copyable", "is_model", "unsupported", "init_weights"]

TL_VERSION = version("transformer-lens")
TL_MAJOR = int(TL_VERSION.split(".")[0])

# The two constant buffers of a HookedTransformer attention layer, as its state_dict() writes them (the causal mask
# is registered lazily, so it is saved empty); kept in the files on both versions.
_MASK = "mask"
_IGNORE = "IGNORE"


@contextlib.contextmanager
def _quiet():
    with warnings.catch_warnings():
        # transformers (imported by transformer_lens) imports tqdm.auto, which in a Jupyter kernel without
        # ipywidgets warns "IProgress not found"; 3.9 deprecates HookedTransformer in favour of 4.x (handled here).
        warnings.filterwarnings("ignore", message="IProgress not found")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning, module="transformer_lens")
        yield


# -- the HookedTransformer layout, from the config alone -------------------------------------------------------------

def ht_layout(c) -> dict[str, tuple[int, ...]]:
    """``{name: shape}`` of a HookedTransformer's parameters in its ``named_parameters()`` order (the init order and
    the order SGLD draws noise in), for the architectures interp builds."""
    H, dm, dh, dv = c.n_heads, c.d_model, c.d_head, c.d_vocab
    ln = c.normalization_type in ("LN", "LNPre")
    out: dict[str, tuple[int, ...]] = {"embed.W_E": (dv, dm), "pos_embed.W_pos": (c.n_ctx, dm)}
    for i in range(c.n_layers):
        b = f"blocks.{i}"
        if c.normalization_type == "LN":
            out.update({f"{b}.ln1.w": (dm,), f"{b}.ln1.b": (dm,)})
            if not c.attn_only:
                out.update({f"{b}.ln2.w": (dm,), f"{b}.ln2.b": (dm,)})
        out.update({f"{b}.attn.W_Q": (H, dm, dh), f"{b}.attn.W_O": (H, dh, dm), f"{b}.attn.b_Q": (H, dh),
                    f"{b}.attn.b_O": (dm,), f"{b}.attn.W_K": (H, dm, dh), f"{b}.attn.W_V": (H, dm, dh),
                    f"{b}.attn.b_K": (H, dh), f"{b}.attn.b_V": (H, dh)})
        if not c.attn_only:
            out.update({f"{b}.mlp.W_in": (dm, c.d_mlp), f"{b}.mlp.b_in": (c.d_mlp,),
                        f"{b}.mlp.W_out": (c.d_mlp, dm), f"{b}.mlp.b_out": (dm,)})
    if ln and c.normalization_type == "LN":
        out.update({"ln_final.w": (dm,), "ln_final.b": (dm,)})
    out.update({"unembed.W_U": (dm, c.d_vocab_out), "unembed.b_U": (c.d_vocab_out,)})
    return out


def init_weights(model, seed: int | None) -> None:
    """interp's seeded init, the same on both versions and bit-exact with HookedTransformer 3.9's ``gpt2`` init:
    seed torch, then N(0, cfg.initializer_range) for every ``W_*`` in HookedTransformer parameter order; biases 0,
    LayerNorm gains 1."""
    if seed is not None:
        torch.manual_seed(seed)
    std = model.cfg.initializer_range
    with torch.no_grad():
        for name, p in parameters(model).items():
            leaf = name.rsplit(".", 1)[1]
            if leaf.startswith("W_"):
                torch.nn.init.normal_(p, std=std)
            elif leaf == "w":
                p.fill_(1.0)
            else:
                p.zero_()


# -- construction ----------------------------------------------------------------------------------------------------

def build(kwargs: dict[str, Any], device: str | None = None, init: bool = True):
    """A model from ``HookedTransformerConfig`` keyword arguments (run.json's ``hooked_transformer_config``):
    a HookedTransformer on TransformerLens 3.x, a TransformerBridge in the HookedTransformer layout on 4.x.
    ``init``: interp's seeded init (:func:`init_weights`, seeded by ``kwargs["seed"]``); otherwise the weights are
    whatever construction left (a template to load a state dict into)."""
    kwargs = dict(kwargs)
    if device is not None:
        kwargs["device"] = device
    with _quiet():
        if TL_MAJOR < 4:
            from transformer_lens import HookedTransformer, HookedTransformerConfig
            model = HookedTransformer(HookedTransformerConfig(**{**kwargs, "init_weights": False}))
        else:
            model = _build_bridge(kwargs)
    if init:
        init_weights(model, kwargs.get("seed"))
    return model


# -- TransformerLens 4: a bridge in the HookedTransformer layout -----------------------------------------------------

def _heads(W, c):  # (n_heads, d_model, d_head) -> nn.Linear weight ((n_heads d_head), d_model): W_Q, W_K, W_V
    return W.permute(0, 2, 1).reshape(W.shape[0] * W.shape[2], W.shape[1])


def _heads_out(W, c):  # (n_heads, d_head, d_model) -> nn.Linear weight (d_model, (n_heads d_head)): W_O
    return W.reshape(-1, W.shape[2]).T


def _head_bias(b, c):  # (n_heads, d_head) -> ((n_heads d_head),): b_Q, b_K, b_V
    return b.reshape(-1)


def _transposed(W, c):  # (d_in, d_out) -> nn.Linear weight (d_out, d_in): W_in, W_out, W_U
    return W.T


def _same(t, c):
    return t


# HookedTransformer leaf name -> (the nn.Linear / nn.Embedding attribute it feeds, HT -> torch layout)
_LAYOUT = {"W_Q": ("weight", _heads), "W_K": ("weight", _heads), "W_V": ("weight", _heads),
           "W_O": ("weight", _heads_out), "b_Q": ("bias", _head_bias), "b_K": ("bias", _head_bias),
           "b_V": ("bias", _head_bias), "b_O": ("bias", _same), "W_in": ("weight", _transposed),
           "W_out": ("weight", _transposed), "b_in": ("bias", _same), "b_out": ("bias", _same),
           "W_U": ("weight", _transposed), "b_U": ("bias", _same), "W_E": ("weight", _same),
           "W_pos": ("weight", _same), "w": ("weight", _same), "b": ("bias", _same)}


def _to_ht(name: str, t: torch.Tensor, c) -> torch.Tensor:
    """A torch-layout tensor (a user bridge's nn.Linear weight) in the HookedTransformer layout."""
    leaf = name.rsplit(".", 1)[1]
    if leaf in ("W_Q", "W_K", "W_V"):
        return t.reshape(c.n_heads, c.d_head, -1).permute(0, 2, 1)
    if leaf == "W_O":
        return t.T.reshape(c.n_heads, c.d_head, -1)
    if leaf in ("b_Q", "b_K", "b_V"):
        return t.reshape(c.n_heads, c.d_head)
    if leaf in ("W_in", "W_out", "W_U"):
        return t.T
    return t


def _from_ht(name: str, t: torch.Tensor, c) -> torch.Tensor:
    return _LAYOUT[name.rsplit(".", 1)[1]][1](t, c)


class _HTLayout:
    """Mixed into a bridge's nn.Linear / nn.Embedding / LayerNorm: its ``weight`` and ``bias`` are computed from
    parameters held in the HookedTransformer layout under HookedTransformer names (``W_Q``, ``b_Q``, ...)."""

    @property
    def weight(self):
        return self._ht_tensor("weight")

    @property
    def bias(self):
        return self._ht_tensor("bias")

    def _ht_tensor(self, attr):
        leaf = self.__dict__["_ht_leaves"].get(attr)
        if leaf is None:
            return None
        return _LAYOUT[leaf][1](self._parameters[leaf], self.__dict__["_ht_cfg"])


_HT_CLASSES: dict[type, type] = {}


def _hold_in_ht_layout(mod: torch.nn.Module, leaves: dict[str, str], c) -> None:
    """Re-home ``mod``'s weight/bias as HookedTransformer-layout parameters named by ``leaves`` ({attr: HT leaf})."""
    for attr, leaf in leaves.items():
        t = mod._parameters.pop(attr, None)
        if t is None:
            t = mod._buffers.pop(attr, None)
        data = torch.zeros(c.d_vocab_out) if t is None else _to_ht("x." + leaf, t.detach(), c)
        mod.register_parameter(leaf, torch.nn.Parameter(data.contiguous().clone()))
    cls = type(mod)
    if cls not in _HT_CLASSES:
        _HT_CLASSES[cls] = type(cls.__name__, (_HTLayout, cls), {"__module__": __name__})
    mod.__class__ = _HT_CLASSES[cls]
    mod.__dict__["_ht_leaves"] = dict(leaves)
    mod.__dict__["_ht_cfg"] = c


def _bridge_class():
    from transformer_lens.model_bridge.bridge import TransformerBridge

    global _InterpBridge
    if _InterpBridge is None:
        _InterpBridge = type("TransformerBridge", (TransformerBridge,), {
            "__deepcopy__": _deepcopy_bridge, "__module__": __name__,
            "__doc__": "A TransformerBridge built by interp: HookedTransformer layout, safe to deepcopy."})
    return _InterpBridge


_InterpBridge = None


def _build_bridge(kwargs: dict[str, Any]):
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge.sources.native import boot

    model = boot(TransformerBridgeConfig(**{**kwargs, "init_weights": False}), device=kwargs.get("device"))
    reason = unsupported(model)
    if reason:
        raise ConfigError(f"interp cannot build this model on TransformerLens {TL_VERSION}: {reason}")
    c = model.cfg
    by_module: dict[int, tuple[torch.nn.Module, dict[str, str]]] = {}
    for name, (mod, attr) in _bridge_entries(model).items():
        by_module.setdefault(id(mod), (mod, {}))[1][attr] = name.rsplit(".", 1)[1]
    with torch.no_grad():
        for mod, leaves in by_module.values():
            _hold_in_ht_layout(mod, leaves, c)
    model.__class__ = _bridge_class()
    return model


def _deepcopy_bridge(self, memo):
    """deepcopy without TransformerLens 4.3's stale capture hooks (they are wired again on the next forward)."""
    _teardown_capture_hooks(self)
    new = object.__new__(type(self))
    memo[id(self)] = new
    new.__setstate__(copy.deepcopy(self.__dict__, memo))
    return new


def _teardown_capture_hooks(model) -> None:
    for m in model.modules():
        if getattr(m, "_capture_hook_handles", None):
            m._teardown_capture_hooks()


@contextlib.contextmanager
def copyable(model) -> Iterator[Any]:
    """Within the block ``copy.deepcopy(model)`` gives an independent model (devinterp's chains deepcopy it): on a
    user's TransformerBridge its capture hooks are torn down before each copy. A no-op on a HookedTransformer."""
    if not _is_bridge(model) or isinstance(model, _bridge_class()):
        yield model
        return
    cls = model.__class__
    model.__class__ = type(cls.__name__, (cls,), {"__deepcopy__": _deepcopy_bridge, "__module__": cls.__module__})
    try:
        yield model
    finally:
        model.__class__ = cls


def _is_bridge(model) -> bool:
    return TL_MAJOR >= 4 and hasattr(model, "original_model") and hasattr(model, "blocks") and hasattr(model, "cfg")


def _bridge_entries(model) -> dict[str, tuple[torch.nn.Module, str]]:
    """HookedTransformer name -> (the torch module holding the tensor, attribute) on a native bridge; for a bridge
    built here the tensor behind it is the HookedTransformer-layout leaf."""
    c = model.cfg
    out: dict[str, tuple[torch.nn.Module, str]] = {}
    names = {"W_Q": ("q", "weight"), "W_O": ("o", "weight"), "b_Q": ("q", "bias"), "b_O": ("o", "bias"),
             "W_K": ("k", "weight"), "W_V": ("v", "weight"), "b_K": ("k", "bias"), "b_V": ("v", "bias")}
    for name in ht_layout(c):
        parts = name.split(".")
        if name == "embed.W_E":
            mod, attr = model.embed.original_component, "weight"
        elif name == "pos_embed.W_pos":
            mod, attr = model.pos_embed.original_component, "weight"
        elif name.startswith("unembed."):
            mod, attr = model.unembed.original_component, "weight" if parts[1] == "W_U" else "bias"
        elif name.startswith("ln_final."):
            mod, attr = model.ln_final.original_component, "weight" if parts[1] == "w" else "bias"
        else:
            block = model.blocks[int(parts[1])]
            if parts[2] == "attn":
                proj, attr = names[parts[3]]
                mod = block.attn.get_submodule(proj).original_component
            elif parts[2] == "mlp":
                mod = block.mlp.get_submodule("in" if parts[3] in ("W_in", "b_in") else "out").original_component
                attr = "weight" if parts[3].startswith("W_") else "bias"
            else:  # ln1 / ln2
                mod, attr = block.get_submodule(parts[2]).original_component, "weight" if parts[3] == "w" else "bias"
        out[name] = (mod, attr)
    return out


def _leaf(mod: torch.nn.Module, attr: str):
    """The stored tensor behind ``mod.attr``: the HookedTransformer-layout parameter on a bridge built here, the
    module's own parameter (or buffer) on a user's bridge."""
    leaves = mod.__dict__.get("_ht_leaves")
    if leaves is not None and attr in leaves:
        return mod._parameters[leaves[attr]]
    return mod._parameters.get(attr, mod._buffers.get(attr))


def _is_interp_bridge(model) -> bool:
    return _InterpBridge is not None and isinstance(model, _InterpBridge)


# -- the HookedTransformer layout on both ------------------------------------------------------------------------------

def parameters(model) -> dict[str, torch.Tensor]:
    """``{HookedTransformer name: parameter}`` in HookedTransformer order: the leaves an optimiser updates. On a
    bridge built by interp they have the HookedTransformer shapes; on a user's bridge the bridge's own (nn.Linear
    shapes; its b_U buffer is left out)."""
    if not _is_bridge(model):
        return dict(model.named_parameters())
    cached = model.__dict__.get("_interp_ht_parameters")
    # (a module conversion that swapped the parameter objects, not just their data, invalidates the cache)
    if cached is not None and cached["embed.W_E"] is model.embed.original_component._parameters.get("W_E"):
        return dict(cached)
    out = {}
    for name, (mod, attr) in _bridge_entries(model).items():
        t = _leaf(mod, attr)
        if isinstance(t, torch.nn.Parameter):
            out[name] = t
    if _is_interp_bridge(model):  # its leaves are fixed objects (loading and .to() write into them)
        model.__dict__["_interp_ht_parameters"] = out
    return dict(out)


def in_ht_layout(model) -> bool:
    """True when :func:`parameters` gives HookedTransformer-shaped leaves (a HookedTransformer, or a bridge built
    by interp); False for a user's bridge (its nn.Linear shapes)."""
    return not _is_bridge(model) or _is_interp_bridge(model)


def sampler_names(model) -> dict[str, str]:
    """``{HookedTransformer name: the model's own named_parameters() name}`` in HookedTransformer order, for code
    (devinterp) that addresses parameters by the model's names: noise drawn in this order is the 3.9 noise."""
    own = {id(p): n for n, p in model.named_parameters()}
    return {name: own[id(p)] for name, p in parameters(model).items() if id(p) in own}


def state_dict(model) -> dict[str, torch.Tensor]:
    """The model's tensors in the HookedTransformer ``state_dict()`` layout (names, shapes, order, the constant
    ``mask``/``IGNORE`` buffers): what checkpoints and resume files hold on both versions."""
    if not _is_bridge(model):
        return model.state_dict()
    interp_built = _is_interp_bridge(model)
    c = model.cfg
    device = next(model.parameters()).device
    out: dict[str, torch.Tensor] = {}
    for name, (mod, attr) in _bridge_entries(model).items():
        t = _leaf(mod, attr)
        if t is None:  # b_U of a user bridge without a bias
            t = torch.zeros(c.d_vocab_out, device=device)
        t = t.detach() if interp_built else _to_ht(name, t.detach(), c)
        out[name] = t
        if name.endswith(".attn.b_V"):
            prefix = name[: -len("b_V")]
            out[prefix + _MASK] = torch.zeros(0, 0, dtype=torch.bool, device=device)
            out[prefix + _IGNORE] = torch.tensor(float("-inf"), device=device)
    return out


def load_state_dict(model, tensors: dict[str, torch.Tensor], strict: bool = True) -> None:
    """Load HookedTransformer-layout ``tensors`` (a checkpoint or resume file) into ``model``. ``strict=False``
    ignores the constant buffers (mask, IGNORE). RuntimeError on a missing or misshapen tensor, as torch's."""
    if not _is_bridge(model):
        model.load_state_dict(tensors, strict=strict)
        return
    interp_built = _is_interp_bridge(model)
    c = model.cfg
    entries = _bridge_entries(model)
    missing = [n for n in entries if n not in tensors]
    unexpected = [n for n in tensors if n not in entries and not n.endswith((_MASK, _IGNORE))]
    if missing or (strict and unexpected):
        raise RuntimeError(f"Error(s) in loading state_dict: missing keys {missing}, unexpected keys {unexpected}")
    with torch.no_grad():
        for name, (mod, attr) in entries.items():
            t = _leaf(mod, attr)
            src = tensors[name]
            if not interp_built:
                src = _from_ht(name, src, c)
            if t is None or tuple(t.shape) != tuple(src.shape):
                raise RuntimeError(f"Error(s) in loading state_dict: size mismatch for {name}: copying a param with "
                                   f"shape {tuple(src.shape)}, the model's is "
                                   f"{None if t is None else tuple(t.shape)}")
            t.copy_(src)


# -- what differs when reading a model -------------------------------------------------------------------------------

def attn_scale(model, layer: int) -> float:
    """The attention score divisor of ``layer`` (sqrt(d_head) unless the config says otherwise)."""
    attn = model.blocks[layer].attn
    if hasattr(attn, "attn_scale"):
        return attn.attn_scale
    return attn.original_component.scale


def final_norm(model) -> tuple[str, torch.Tensor | None] | None:
    """The final normalisation before the unembed: None when there is none (a HookedTransformer without
    ``ln_final``, or a bridge whose ``ln_final`` wraps ``nn.Identity``), else ``(kind, gain)`` with kind "LN"
    (centres, then scales) or "RMS" (scales only) and gain the elementwise weight (None if it has none)."""
    ln = getattr(model, "ln_final", None)
    if ln is None or isinstance(ln, torch.nn.Identity):
        return None
    inner = getattr(ln, "original_component", None) if _is_bridge(model) else ln
    if inner is None or isinstance(inner, torch.nn.Identity):
        return None
    gain = getattr(inner, "w", None)
    if gain is None:
        gain = getattr(inner, "weight", None)
    kind = "RMS" if "RMS" in type(inner).__name__ else "LN"
    return kind, gain


def has_user_hooks(model) -> bool:
    """True when any forward or backward hook is attached to the model or any of its modules (TransformerLens
    ``add_hook``, ``model.hooks(...)``, ``run_with_hooks``, plain torch hooks) or globally, other than
    TransformerLens 4's own capture hooks (which a bridge keeps after its first forward)."""
    from torch.nn.modules import module as torch_module

    if (torch_module._global_forward_hooks or torch_module._global_forward_pre_hooks
            or torch_module._global_backward_hooks):
        return True
    own = {h.id for m in model.modules() for h in getattr(m, "_capture_hook_handles", ()) or ()}
    for m in model.modules():
        for hooks in (m._forward_hooks, m._forward_pre_hooks, m._backward_hooks,
                      getattr(m, "_backward_pre_hooks", None) or {}):
            if any(k not in own for k in hooks):
                return True
    return False


def is_model(x: Any) -> bool:
    """A TransformerLens model (HookedTransformer or TransformerBridge): a torch module with a ``cfg``."""
    return isinstance(x, torch.nn.Module) and hasattr(x, "cfg")


def unsupported(model) -> str | None:
    """None when the measures cover ``model``'s architecture; otherwise one phrase naming what differs.
    A HookedTransformer is always accepted (its measures check their own needs); a TransformerBridge must be a
    TransformerLens-native one (``boot_native``: the HookedTransformer's architecture, same hook semantics)."""
    if not _is_bridge(model):
        return None
    c = model.cfg
    arch = type(model.original_model).__name__
    if arch != "NativeModel":
        return (f"a TransformerBridge around {arch} (architecture {getattr(c, 'architecture', None)!r}); the measures "
                "cover TransformerLens-native bridges (TransformerBridge.boot_native) only")
    if getattr(model, "_weights_processed", False):
        return ("its weights were processed (enable_compatibility_mode() or process_weights(): W_U centred, "
                "LayerNorm folded), which moves the measures; measure the plain bridge or "
                "enable_compatibility_mode(no_processing=True)")
    checks = [
        ("positional_embedding_type", getattr(c, "positional_embedding_type", "standard"), "standard"),
        ("normalization_type", getattr(c, "normalization_type", None), (None, "LN")),
        ("gated_mlp", getattr(c, "gated_mlp", False), False),
        ("n_key_value_heads", getattr(c, "n_key_value_heads", None), (None, c.n_heads)),
        ("parallel_attn_mlp", getattr(c, "parallel_attn_mlp", False), False),
    ]
    for field, value, ok in checks:
        if value not in (ok if isinstance(ok, tuple) else (ok,)):
            return f"{field}={value!r} (the measures cover {ok!r})"
    return None
