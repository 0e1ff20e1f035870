"""`RunConfig`: everything that defines a training run, in one validated, JSON-round-trippable dataclass.

Nothing here is derived at class-definition time: the vocabulary sizes are properties of
``p`` (the public grokking code computed them from a default ``p`` once, so changing ``p``
silently kept the old vocabulary).

>>> cfg = preset("nanda2023")
>>> cfg.p, cfg.d_vocab, cfg.d_vocab_out
(113, 114, 113)
>>> RunConfig.from_dict(cfg.to_dict()) == cfg
True
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError

__all__ = ["RunConfig", "OPS", "PRESETS", "preset", "preset_names", "is_prime", "parse_steps", "parse_field",
           "describe_op", "group_order_or"]

# Binary operations mod p on the pairs (a, b): all p^2 of them, except div, which has no b = 0.
OPS: dict[str, str] = {
    "add": "(a + b) mod p",
    "sub": "(a - b) mod p",
    "mul": "(a * b) mod p",
    "div": "(a / b) mod p, b != 0",
    "a2+b2": "(a^2 + b^2) mod p",
    "a2+ab+b2": "(a^2 + a b + b^2) mod p",
}
RENAMED_OPS = {"x2y2": "a2+b2"}  # old name -> the name that says what it computes


# Besides OPS: the composition a * b in a finite group, op "C<n>", "D<n>" or "S<n>" (interp.finite_groups); its
# p is the number of group elements |G|.
GROUP_OPS_HELP = "C<n>, D<n>, S<n> (composition in the cyclic, dihedral or symmetric group, e.g. S4)"


def describe_op(op: str) -> str:
    """What ``op`` computes, in words (``OPS[op]``, or the group of a group op)."""
    from .finite_groups import GROUP_FAMILIES, is_group_op

    if is_group_op(op):
        return f"a * b in {op[0]}_{op[1:]}, the {GROUP_FAMILIES[op[0]].split(' (')[0]}"
    return OPS[op]


def n_pairs_of(op: str, p: int) -> int:
    """How many pairs (a, b) the task has: p^2, or p (p - 1) for div (b != 0)."""
    return p * (p - 1) if op == "div" else p * p

ACT_FNS = ("relu", "gelu")
OPTIMISERS = ("adamw", "adam", "sgd")
CONSTANT_ATTENTION = ("average", "sum")  # RunConfig.constant_attention: what attention_rate < 1 mixes in
LR_SCHEDULES = ("constant", "cosine", "linear")
GRAD_FILTERS = ("none", "ema", "ma")

# Bounds, checked before any work (and before any loop over them): p up to MAX_P keeps the p^2 pairs and the
# primality test instant; sizes and step counts past these are typos, not experiments on one machine.
MAX_P = 2003
MAX_WIDTH = 16_384        # d_model, d_mlp, n_heads * d_head
MAX_LAYERS = 64
MAX_STEPS = 100_000_000
MAX_SEED = 2**32 - 1
MAX_CHECKPOINTS = 100_000  # explicit save steps
MAX_PARAMETERS = 2**28     # weights of one model (1 GiB in fp32), counted from the sizes before anything is built


def parameter_count(*, n_layers: int, d_model: int, n_heads: int, d_head: int, d_mlp: int, d_vocab: int,
                    d_vocab_out: int, n_ctx: int, **_: object) -> int:
    """Weights of a TransformerLens transformer of these sizes (embeddings, attention, MLP, unembed, biases), by
    arithmetic alone, so a size too large for one machine is refused before any tensor is allocated."""
    attn = 4 * n_heads * d_model * d_head + 3 * n_heads * d_head + d_model
    mlp = 2 * d_model * d_mlp + d_mlp + d_model
    return n_layers * (attn + mlp + 4 * d_model) + (d_vocab + n_ctx) * d_model + (d_model + 1) * d_vocab_out


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    return all(n % d for d in range(3, math.isqrt(n) + 1, 2))


def check_task_fields(op: Any, p: Any, frac_train: Any, where: str) -> None:
    """The checks a task's (op, p, frac_train) must pass, shared by :class:`RunConfig` and :class:`interp.Task`."""
    if op in RENAMED_OPS:
        _check(False, where, "op", f"{op!r} was renamed {RENAMED_OPS[op]!r} (it computes {OPS[RENAMED_OPS[op]]}); "
                                   f"use op = {RENAMED_OPS[op]!r} (edit run.json of an older run)")
    from .finite_groups import group_op_order, is_group_op

    _check(op in OPS or is_group_op(op), where, "op", f"must be one of {sorted(OPS)} or {GROUP_OPS_HELP}, got {op!r}")
    _check(isinstance(p, int) and not isinstance(p, bool), where, "p", f"must be an integer, got {p!r}")
    if is_group_op(op):
        order = group_op_order(op, where)
        _check(p == order, where, "p", f"must be {order}, the number of elements of {op} (leave p out to have it "
                                       f"filled in), got {p}")
    else:
        _check_modulus(p, where)
    _check(isinstance(frac_train, (int, float)) and not isinstance(frac_train, bool) and 0 < frac_train < 1,
           where, "frac_train", f"must be strictly between 0 and 1, got {frac_train!r}")
    n = n_pairs_of(op, p)
    n_train = int(frac_train * n)
    _check(0 < n_train < n, where, "frac_train", f"{frac_train} of {n} pairs leaves an empty train or test split")


def _check_modulus(p: int, where: str) -> None:
    _check(p >= 5, where, "p", f"must be at least 5 (two Fourier frequencies), got {p}")
    _check(p <= MAX_P, where, "p", f"must be at most {MAX_P} (p^2 pairs are trained full-batch), got {p}")
    _check(is_prime(p), where, "p", f"must be prime (Z_p must be a field), got {p}")


@dataclass(frozen=True, init=False)
class RunConfig:
    """Task, model, optimiser, schedule and seeds of one run.

    Steps are optimiser steps: full-batch by default (one step = one epoch over the training pairs), or one
    minibatch each with ``batch_size``. Fields are keyword-only; an unknown field is a ConfigError naming it.
    Every default is the paper's run; the knobs below the paper's fields (``optimiser``, ``momentum``,
    ``lr_schedule``, ``lr_min``, ``batch_size``, ``layer_norm``, ``grad_filter*``) change nothing unless set.
    """

    # task
    op: str = "add"
    p: int = 113
    frac_train: float = 0.3
    data_seed: int = 0
    # model (1-layer, no LayerNorm by default: the paper's architecture)
    n_layers: int = 1
    d_model: int = 128
    n_heads: int = 4
    d_head: int = 32
    d_mlp: int = 512
    act_fn: str = "relu"
    layer_norm: bool = False  # True: TransformerLens LayerNorm (normalization_type "LN") before attn, MLP, unembed
    # attention rate (Zhong et al. 2023): pattern = rate * softmax + (1 - rate) * uniform over the causal positions;
    # 1 is standard attention, 0 constant attention (see interp.model.apply_attention_rate)
    attention_rate: float = 1.0
    # what attention_rate < 1 mixes in: "average" (uniform weights 1/n over the n allowed positions, rows sum to 1)
    # or "sum" (weight 1 on every allowed position, as Zhong et al.'s code: at rate 0 the output is the sum of values)
    constant_attention: str = "average"
    # the input: True [a, b, =] (the paper's, '=' is token p, 3 positions); False [a, b] (Zhong et al.'s models:
    # no '=' token, 2 positions, the logits read at b's position)
    eq_sign: bool = True
    model_seed: int = 0
    # optimiser: adamw (the paper's), adam (weight decay as an L2 term), sgd (with momentum; L2 weight decay)
    optimiser: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1.0
    betas: tuple[float, float] = (0.9, 0.98)  # adamw, adam
    eps: float = 1e-8  # adamw, adam
    momentum: float = 0.9  # sgd
    warmup_steps: int = 10
    # learning rate after the warm-up: constant, or cosine / linear decay from lr to lr_min at n_steps
    lr_schedule: str = "constant"
    lr_min: float = 0.0
    # None: full batch; else minibatches of this many training pairs (seeded by data_seed, see interp.optim)
    batch_size: int | None = None
    # gradient filter between backward and the optimiser step (Grokfast, Lee et al. 2024):
    # ema: g + lambda * EMA_alpha(g); ma: g + lambda * mean of the last `window` gradients (once that many)
    grad_filter: str = "none"
    grad_filter_alpha: float = 0.98
    grad_filter_lambda: float = 2.0
    grad_filter_window: int = 100
    # schedule (save_every = 0: only save_steps, step 0 and the final step are checkpointed)
    n_steps: int = 40_000
    eval_every: int = 10
    save_every: int = 100
    save_steps: tuple[int, ...] = ()
    stop_test_loss: float | None = None
    # stop `stop_after_steps` steps after test accuracy first reaches `stop_test_acc` (None: never); the event
    # times (t90, t99: first crossings) are unchanged by the stop, and the run's budget is recorded as its last step
    stop_test_acc: float | None = None
    stop_after_steps: int = 0
    name: str = "custom"

    def __init__(self, **values: Any) -> None:
        fields = dataclasses.fields(self)
        unknown = sorted(set(values) - {f.name for f in fields})
        if unknown:
            raise ConfigError(f"RunConfig has no field(s) {unknown}; its fields are {[f.name for f in fields]}",
                              field=unknown[0], detail="is not a RunConfig field")
        if "p" not in values:
            values = {**values, "p": group_order_or(values.get("op"), None)}
            if values["p"] is None:
                del values["p"]
        for f in fields:
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            object.__setattr__(self, f.name, values.get(f.name, default))
        self.__post_init__()

    def __post_init__(self) -> None:
        # Coerce JSON-ish inputs (lists, ints for floats) before validating.
        try:
            object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
            object.__setattr__(self, "save_steps", tuple(sorted(set(int(s) for s in self.save_steps))))
        except (TypeError, ValueError):
            raise ConfigError("RunConfig.betas must be two numbers and RunConfig.save_steps a list of "
                              f"integers, got betas={self.betas!r}, save_steps={self.save_steps!r}") from None
        for name in ("lr", "weight_decay", "eps", "frac_train"):
            value = getattr(self, name)
            _check_cfg(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
                       name, f"must be a finite number, got {value!r}")
        _check_cfg(self.stop_test_loss is None or (isinstance(self.stop_test_loss, (int, float))
                                                   and not isinstance(self.stop_test_loss, bool)),
                   "stop_test_loss", f"must be a number or null, got {self.stop_test_loss!r}")
        check_task_fields(self.op, self.p, self.frac_train, "RunConfig")
        for name in ("n_layers", "d_model", "n_heads", "d_head", "d_mlp", "n_steps",
                     "eval_every", "save_every", "data_seed", "model_seed", "warmup_steps", "grad_filter_window",
                     "stop_after_steps"):
            value = getattr(self, name)
            _check_cfg(_is_int(value), name, f"must be an integer, got {value!r}")
        for name in ("n_layers", "d_model", "n_heads", "d_head", "d_mlp", "n_steps", "eval_every",
                     "grad_filter_window"):
            _check_cfg(getattr(self, name) > 0, name, f"must be positive, got {getattr(self, name)}")
        for name in ("data_seed", "model_seed", "warmup_steps", "save_every", "stop_after_steps"):
            _check_cfg(getattr(self, name) >= 0, name, f"must be >= 0, got {getattr(self, name)}")
        for name in ("lr", "weight_decay", "eps", "momentum", "lr_min", "grad_filter_alpha", "grad_filter_lambda",
                     "attention_rate"):
            value = getattr(self, name)
            _check_cfg(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
                       name, f"must be a finite number, got {value!r}")
        for name, top in (("d_model", MAX_WIDTH), ("d_mlp", MAX_WIDTH), ("n_heads", MAX_WIDTH),
                          ("d_head", MAX_WIDTH), ("n_layers", MAX_LAYERS), ("n_steps", MAX_STEPS),
                          ("eval_every", MAX_STEPS), ("save_every", MAX_STEPS), ("warmup_steps", MAX_STEPS),
                          ("data_seed", MAX_SEED), ("model_seed", MAX_SEED)):
            _check_cfg(getattr(self, name) <= top, name, f"must be at most {top:,}, got {getattr(self, name):,}")
        _check_cfg(self.n_heads * self.d_head <= MAX_WIDTH, "d_head",
                   f"n_heads * d_head must be at most {MAX_WIDTH:,}, got {self.n_heads * self.d_head:,}")
        n_params = parameter_count(n_layers=self.n_layers, d_model=self.d_model, n_heads=self.n_heads,
                                   d_head=self.d_head, d_mlp=self.d_mlp, d_vocab=self.d_vocab,
                                   d_vocab_out=self.p, n_ctx=self.n_ctx)
        _check_cfg(n_params <= MAX_PARAMETERS, "d_model",
                   f"the model would have {n_params:,} weights (n_layers {self.n_layers}, d_model {self.d_model}, "
                   f"d_mlp {self.d_mlp}, n_heads * d_head {self.n_heads * self.d_head}), more than the "
                   f"{MAX_PARAMETERS:,} one model may have")
        _check_cfg(len(self.save_steps) <= MAX_CHECKPOINTS, "save_steps",
                   f"must list at most {MAX_CHECKPOINTS:,} steps, got {len(self.save_steps):,}")
        _check_cfg(all(s <= MAX_STEPS for s in self.save_steps), "save_steps", f"must be steps <= {MAX_STEPS:,}")
        _check_cfg(self.act_fn in ACT_FNS, "act_fn", f"must be one of {ACT_FNS}, got {self.act_fn!r}")
        _check_cfg(isinstance(self.layer_norm, bool), "layer_norm", f"must be true or false, got {self.layer_norm!r}")
        _check_cfg(0 <= self.attention_rate <= 1, "attention_rate",
                   f"must be in [0, 1] (1: standard attention, 0: constant attention), got {self.attention_rate}")
        _check_cfg(self.constant_attention in CONSTANT_ATTENTION, "constant_attention",
                   f"must be one of {CONSTANT_ATTENTION}, got {self.constant_attention!r}")
        _check_cfg(isinstance(self.eq_sign, bool), "eq_sign", f"must be true or false, got {self.eq_sign!r}")
        self._check_knobs()
        _check_cfg(self.lr > 0, "lr", f"must be positive, got {self.lr}")
        _check_cfg(self.weight_decay >= 0, "weight_decay", f"must be >= 0, got {self.weight_decay}")
        _check_cfg(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "betas",
               f"must be two numbers in [0, 1), got {self.betas}")
        _check_cfg(self.eps > 0, "eps", f"must be positive, got {self.eps}")
        _check_cfg(all(s >= 0 for s in self.save_steps), "save_steps", "must be steps >= 0")
        _check_cfg(self.stop_test_loss is None or self.stop_test_loss > 0, "stop_test_loss",
               f"must be positive or null, got {self.stop_test_loss}")
        _check_cfg(self.stop_test_acc is None or (isinstance(self.stop_test_acc, (int, float))
                                                  and not isinstance(self.stop_test_acc, bool)
                                                  and 0 < self.stop_test_acc <= 1), "stop_test_acc",
                   f"must be an accuracy in (0, 1] or null, got {self.stop_test_acc!r}")
        _check_cfg(isinstance(self.name, str) and self.name != "", "name", "must be a non-empty string")

    def _check_knobs(self) -> None:
        """The optimiser, schedule, minibatch and gradient-filter fields (numbers already checked finite)."""
        _check_cfg(self.optimiser in OPTIMISERS, "optimiser", f"must be one of {OPTIMISERS}, got {self.optimiser!r}")
        _check_cfg(0 <= self.momentum < 1, "momentum", f"must be in [0, 1), got {self.momentum}")
        _check_cfg(self.lr_schedule in LR_SCHEDULES, "lr_schedule",
                   f"must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        _check_cfg(0 <= self.lr_min <= self.lr, "lr_min", f"must be in [0, lr = {self.lr}], got {self.lr_min}")
        if self.batch_size is not None:
            _check_cfg(_is_int(self.batch_size), "batch_size", f"must be an integer or null, got {self.batch_size!r}")
            _check_cfg(1 <= self.batch_size <= self.n_train, "batch_size",
                       f"must be between 1 and the {self.n_train} training pairs (null: full batch), "
                       f"got {self.batch_size}")
        _check_cfg(self.grad_filter in GRAD_FILTERS, "grad_filter",
                   f"must be one of {GRAD_FILTERS}, got {self.grad_filter!r}")
        _check_cfg(0 <= self.grad_filter_alpha < 1, "grad_filter_alpha",
                   f"must be in [0, 1), got {self.grad_filter_alpha}")
        _check_cfg(self.grad_filter_lambda >= 0, "grad_filter_lambda", f"must be >= 0, got {self.grad_filter_lambda}")

    # Derived sizes: properties, never stored, so they always follow p.
    @property
    def d_vocab(self) -> int:
        """Input vocabulary: the p residues plus the '=' token (id p); p with ``eq_sign`` false."""
        return self.p + 1 if self.eq_sign else self.p

    @property
    def d_vocab_out(self) -> int:
        """Output classes: the p residues (no '=' class)."""
        return self.p

    @property
    def n_ctx(self) -> int:
        """Positions of one input: 3 for [a, b, =], 2 for [a, b] (``eq_sign`` false)."""
        return 3 if self.eq_sign else 2

    @property
    def n_train(self) -> int:
        return int(self.frac_train * self.p * self.p)

    def replace(self, **changes: Any) -> "RunConfig":
        """A copy with some fields changed (validated again)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigError(f"RunConfig has no field(s) {sorted(unknown)}")
        if "op" in changes and "p" not in changes:  # a group op brings its own p (|G|)
            order = group_order_or(changes["op"], None)
            if order is not None:
                changes = {**changes, "p": order}
            elif group_order_or(self.op, None) is not None:
                raise ConfigError(f"RunConfig.p: changing op from the group op {self.op!r} to {changes['op']!r} "
                                  "needs a modulus p too", field="p", detail="needs a modulus with this op")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        d["save_steps"] = list(self.save_steps)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, where: str = "config") -> "RunConfig":
        """Build from a dict (e.g. parsed JSON); `where` names the source in error messages."""
        if not isinstance(d, dict):
            raise ConfigError(f"{where}: expected a JSON object, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {unknown}")
        try:
            return cls(**d)
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from None
        except TypeError as e:  # wrong types that slipped past the checks (e.g. betas=3)
            raise ConfigError(f"{where}: {e}") from None


def group_order_or(op: Any, default: Any) -> Any:
    """|G| of a valid group op, else ``default`` (the checks report a bad op later)."""
    from .finite_groups import group_op_order, is_group_op

    if not is_group_op(op):
        return default
    try:
        return group_op_order(op)
    except ConfigError:
        return default


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check(ok: bool, where: str, fieldname: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{where}.{fieldname} {message}", field=fieldname, detail=message)


def _check_cfg(ok: bool, fieldname: str, message: str) -> None:
    _check(ok, "RunConfig", fieldname, message)


@dataclass(frozen=True)
class Preset:
    name: str
    purpose: str
    cpu_time: str
    config: RunConfig = field(repr=False)


# The checkpoint schedule of the shipped nanda2023 run: dense where the phases change, 50 checkpoints (~46 MB).
NANDA2023_SAVE_STEPS = "0-1000:100,1200-3000:300,3500-9000:500,9000-15000:400,16000-20000:1000"


def _presets() -> dict[str, Preset]:
    # The paper's run (RunConfig's defaults), trained for 20k steps (cleanup ends near 10k on seed 0) with the
    # shipped run's thinned checkpoint schedule, so a default run takes ~46 MB, not the ~365 MB of a checkpoint
    # every 100 of 40k steps.
    nanda = RunConfig(name="nanda2023", n_steps=20_000, save_every=0, save_steps=parse_steps(NANDA2023_SAVE_STEPS))
    # Found by experiment (see docs/tour.md): a small model, more data and a faster lr so that the whole
    # memorise -> circuit -> cleanup story plays out in about a minute on 2 CPU cores.
    small = RunConfig(name="small", p=53, frac_train=0.4, d_model=64, n_heads=4, d_head=16,
                      d_mlp=256, lr=3e-3, weight_decay=1.0, n_steps=3000, save_every=50,
                      stop_test_loss=None)
    tiny = RunConfig(name="tiny", p=23, frac_train=0.6, d_model=32, n_heads=2, d_head=16,
                     d_mlp=64, lr=3e-3, weight_decay=1.0, n_steps=200, save_every=50,
                     eval_every=10)
    return {
        "nanda2023": Preset("nanda2023", "the paper's run: a + b mod 113, 30% data, 1-layer d_model 128, 20k steps",
                            "~15 min to grok (9k steps), ~30-55 min for 20k", nanda),
        "small": Preset("small", "a + b mod 53, 40% data, d_model 64: groks on a laptop CPU",
                        "~1 min", small),
        "tiny": Preset("tiny", "a + b mod 23, smoke tests and examples (does not grok)",
                       "~7 s with start-up", tiny),
    }




def preset_names() -> list[str]:
    return list(PRESETS)


def preset(name: str, /, **overrides: Any) -> RunConfig:
    """The named preset's RunConfig, with optional field overrides."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {preset_names()}")
    cfg = PRESETS[name].config
    return cfg.replace(**overrides) if overrides else cfg



def parse_steps(spec: str) -> tuple[int, ...]:
    """Parse a checkpoint-step list: comma-separated steps and ranges ``START-END:EVERY`` (END included).

    >>> parse_steps("0-300:100,450,1000-2000:500")
    (0, 100, 200, 300, 450, 1000, 1500, 2000)
    """
    steps: set[int] = set()
    for part in (s.strip() for s in str(spec).split(",")):
        if not part:
            continue
        try:
            if "-" in part:
                span, _, every = part.partition(":")
                start, _, end = span.partition("-")
                a, b, e = int(start), int(end), int(every or 1)
                if a < 0 or b < a or e <= 0:
                    raise ValueError
                if len(steps) + (b - a) // e + 1 > MAX_CHECKPOINTS:
                    raise ConfigError(f"step list {spec!r} names more than {MAX_CHECKPOINTS:,} checkpoints; "
                                      "thin it (a larger EVERY in START-END:EVERY)", field="save_steps",
                                      detail=f"names more than {MAX_CHECKPOINTS:,} checkpoints; use a larger EVERY")
                steps.update(range(a, b + 1, e))
            else:
                s = int(part)
                if s < 0:
                    raise ValueError
                steps.add(s)
        except ConfigError:
            raise
        except ValueError:
            raise ConfigError(f"bad step list item {part!r} in {spec!r}: use steps (e.g. 500) or ranges "
                              "START-END:EVERY (e.g. 0-2000:100), separated by commas") from None
    return tuple(sorted(steps))


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")
_NULL = ("null", "none")


def parse_field(name: str, text: str) -> Any:
    """The value of RunConfig field ``name`` written as text (``interp train --set name=text``), read by its type.

    Numbers as usual, booleans ``true``/``false``, ``null`` for an optional field, ``betas`` as ``B1,B2`` and
    ``save_steps`` as a step list (:func:`parse_steps`). The value is then validated by :class:`RunConfig`.

    >>> parse_field("betas", "0.9,0.99"), parse_field("batch_size", "null"), parse_field("layer_norm", "true")
    ((0.9, 0.99), None, True)
    """
    types = {f.name: str(f.type) for f in dataclasses.fields(RunConfig)}
    if name not in types:
        import difflib

        close = difflib.get_close_matches(name, types, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigError(f"RunConfig has no field {name!r}{hint}; its fields are {list(types)}", field=name,
                          detail=f"is not a RunConfig field{hint}; fields: {', '.join(types)}")
    kind = types[name]
    word = text.strip().lower()
    if kind.endswith("| None"):
        if word in _NULL:
            return None
        kind = kind[: -len("| None")].strip()

    def bad(expected: str) -> ConfigError:
        return ConfigError(f"RunConfig.{name} must be {expected}, got {text!r}", field=name,
                           detail=f"must be {expected}, got {text!r}")

    if kind == "str":
        return text
    if kind == "bool":
        if word not in _TRUE + _FALSE:
            raise bad("true or false")
        return word in _TRUE
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
        if kind == "tuple[float, float]":
            return tuple(float(x) for x in text.strip("()[] ").split(","))
        if kind == "tuple[int, ...]":
            return parse_steps(text)
    except ValueError:
        raise bad({"int": "an integer", "float": "a number"}.get(kind, "comma-separated numbers")
                  + (" or null" if types[name].endswith("| None") else "")) from None
    raise AssertionError(f"parse_field: no reader for RunConfig.{name} of type {kind}")  # a new field's type


PRESETS: dict[str, Preset] = _presets()
