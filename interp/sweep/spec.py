"""A sweep spec: a base preset, a grid over `RunConfig` fields, zip-axes and seeds -> named, validated runs.

In TOML (``interp sweep SPEC``)::

    [sweep]
    preset = "small"          # the base RunConfig
    n_steps = 1500            # step budget (optional; these four set the checkpoint schedule too)
    save_every = 100
    save_steps = "0-300:50"   # optional: extra checkpoints, a step list as in `interp train --save-steps`
    eval_every = 10
    measures = "all"          # "all", "none" (training metrics at each checkpoint only) or a list of columns
    top_k = 4                 # optional: key frequencies that always exist (the top-4 rule when the neuron rule
                              # finds none) and the causal columns (top-4 of each checkpoint alone)

    [base]                    # optional: other fields fixed for every run
    weight_decay = 1.0

    [grid]                    # crossed: every combination of these
    frac_train = [0.3, 0.5]
    d_mlp = [128, 256]

    [[zip]]                   # varied together (lists of one length), crossed with the rest
    d_model = [32, 64]
    d_head = [16, 32]

    [seeds]                   # data (split) and model (init) seeds, lists or counts (3 = [0, 1, 2]);
    data = 2                  # crossed with each other, or `both = 3` for data_seed = model_seed
    model = [0]

In Python the same thing is ``SweepSpec(preset="small", grid={"frac_train": [0.3, 0.5]}, seeds={"both": 2})``.
:meth:`SweepSpec.expand` builds every run's RunConfig up front, so a bad value fails before any training,
naming the run, the field and the value. Runs are named from their varied fields, in axis order:
``frac_train=0.3,d_mlp=128,seed=0``.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from .. import RunConfig, preset as get_preset
from ..errors import ConfigError
from ..config import group_order_or, parse_steps
from ..files import check_nesting, read_json, read_limited

__all__ = ["SweepSpec", "as_spec", "select_measures", "MEASURE_COLUMNS", "ALWAYS_MEASURED"]

CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(RunConfig))
SCHEDULE_KEYS = ("n_steps", "save_every", "save_steps", "eval_every")
SWEEP_KEYS = ("preset", "name", "measures", "top_k", *SCHEDULE_KEYS)
SEED_KEYS = {"data": ("data_seed",), "model": ("model_seed",), "both": ("data_seed", "model_seed")}
MAX_RUNS = 10_000  # runs in one sweep (each a directory and a sweep.json entry); checked before expanding
MAX_SPEC_BYTES = 1 * 2**20

# The training metrics at each checkpoint are always kept (the summary's phases need them).
ALWAYS_MEASURED = ("train_loss", "train_acc", "test_loss", "test_acc")
# Columns of probes.measure_run (plus the per-key excluded_loss_k{K}) that a spec may select.
MEASURE_COLUMNS = ALWAYS_MEASURED + (
    "restricted_loss", "restricted_acc", "excluded_loss", "excluded_acc", "excluded_loss_k",
    "test_over_restricted", "gini_W_E", "gini_W_L", "gini_W_E_freq", "gini_W_L_freq", "sum_sq_weights",
    "cos_explained", "frac_neurons_clustered", "frac_neurons_key", "test_prob_correct", "test_brier",
    "restricted_loss_causal", "restricted_acc_causal", "excluded_loss_causal", "excluded_acc_causal",
)
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9._+-]+$")


@dataclass(frozen=True)
class SweepSpec:
    """What to train: ``preset`` + ``base`` + schedule, crossed over ``grid``, each ``zip`` group and ``seeds``.

    grid: field -> list of values (crossed). zip: groups of field -> equal-length lists (each group is
    one axis). seeds: ``data``/``model`` (crossed) or ``both``, each a list of seeds or a count.
    measures: "all", "none", or a list of measure columns (``excluded_loss_k`` keeps every per-key column).
    """

    preset: str = "small"
    grid: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    zip: Sequence[Mapping[str, Sequence[Any]]] = ()
    seeds: Mapping[str, Any] = field(default_factory=dict)
    base: Mapping[str, Any] = field(default_factory=dict)
    n_steps: int | None = None
    save_every: int | None = None
    save_steps: str | Sequence[int] | None = None
    eval_every: int | None = None
    measures: str | Sequence[str] = "all"
    top_k: int | None = None
    name: str | None = None
    source: str = field(default="sweep spec", compare=False, repr=False)

    # -- reading ---------------------------------------------------------------------------------

    @classmethod
    def from_toml(cls, path: str | Path) -> "SweepSpec":
        """From a TOML spec, or from a sweep's ``sweep.json`` (its recorded spec: the same sweep again)."""
        path = Path(path)
        if path.suffix == ".json":
            data = read_json(path, error=ConfigError, max_bytes=MAX_SPEC_BYTES)
            if not isinstance(data, dict) or not isinstance(data.get("spec"), dict):
                raise ConfigError(f"{path}: not a sweep.json (no 'spec' table)")
            return cls.from_dict(data["spec"], source=str(path))
        try:
            text = read_limited(path, MAX_SPEC_BYTES, error=ConfigError).decode("utf-8")
        except UnicodeDecodeError as e:
            raise ConfigError(f"{path}: cannot read the sweep spec ({e})") from None
        check_nesting(text, path, error=ConfigError)
        try:
            data = tomllib.loads(text)
        except ValueError as e:  # TOMLDecodeError, and integers over Python's digit limit
            raise ConfigError(f"{path}: not valid TOML ({' '.join(str(e).split())[:200]})") from None
        except RecursionError:
            raise ConfigError(f"{path}: nested too deeply") from None
        if not data:
            raise ConfigError(f"{path}: the sweep spec is empty; it needs at least a [sweep] table (preset, n_steps) "
                              "and the axes to vary ([grid], [[zip]] or [seeds])")
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "sweep spec") -> "SweepSpec":
        """From the TOML structure (tables ``sweep``, ``base``, ``grid``, ``zip``, ``seeds``)."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: a sweep spec is a table, got {type(data).__name__}")
        unknown = sorted(set(data) - {"sweep", "base", "grid", "zip", "seeds"})
        if unknown:
            raise ConfigError(f"{source}: unknown table(s) {unknown}; a spec has [sweep], [base], [grid], "
                              "[[zip]] and [seeds]")
        sweep = _table(data.get("sweep", {}), "[sweep]", source)
        bad = sorted(set(sweep) - set(SWEEP_KEYS))
        if bad:
            raise ConfigError(f"{source}: [sweep] has unknown key(s) {bad}; allowed: {list(SWEEP_KEYS)} "
                              "(other RunConfig fields go in [base] or [grid])")
        zips = data.get("zip", [])
        if isinstance(zips, Mapping):
            zips = [zips]
        if not isinstance(zips, list):
            raise ConfigError(f"{source}: [[zip]] must be an array of tables")
        return cls(preset=sweep.get("preset", "small"), grid=_table(data.get("grid", {}), "[grid]", source),
                   zip=tuple(_table(z, "[[zip]]", source) for z in zips),
                   seeds=_table(data.get("seeds", {}), "[seeds]", source),
                   base=_table(data.get("base", {}), "[base]", source),
                   **{k: sweep[k] for k in (*SCHEDULE_KEYS, "measures", "top_k", "name") if k in sweep},
                   source=source)

    def to_dict(self) -> dict[str, Any]:
        """The TOML structure, JSON-ready (what sweep.json records and :meth:`from_dict` reads back)."""
        sweep: dict[str, Any] = {"preset": self.preset}
        for k in (*SCHEDULE_KEYS, "top_k", "name"):
            v = getattr(self, k)
            if v is not None:
                sweep[k] = list(v) if isinstance(v, (tuple, list)) else v
        sweep["measures"] = self.measures if isinstance(self.measures, str) else list(self.measures)
        out: dict[str, Any] = {"sweep": sweep}
        if self.base:
            out["base"] = {k: _plain(v) for k, v in self.base.items()}
        if self.grid:
            out["grid"] = {k: _plain(v) for k, v in self.grid.items()}
        if self.zip:
            out["zip"] = [{k: _plain(v) for k, v in z.items()} for z in self.zip]
        if self.seeds:
            out["seeds"] = {k: _plain(v) for k, v in self.seeds.items()}
        return out

    # -- expanding -------------------------------------------------------------------------------

    def base_config(self) -> RunConfig:
        """The preset with ``base`` and the schedule applied (validated)."""
        src = self.source
        fixed: dict[str, Any] = {}
        for k, v in self.base.items():
            _check_field(k, "[base]", src)
            fixed[k] = v
        for k in SCHEDULE_KEYS:
            v = getattr(self, k)
            if v is None:
                continue
            if k in fixed:
                raise ConfigError(f"{src}: {k} is given both in [sweep] and in [base]; give it once")
            if k == "save_steps" and isinstance(v, str):
                try:
                    v = parse_steps(v)
                except ConfigError as e:
                    raise ConfigError(f"{src}: [sweep] save_steps: {e}") from None
            fixed[k] = v
        try:
            cfg = get_preset(self.preset)
        except ConfigError as e:
            raise ConfigError(f"{src}: [sweep] preset: {e}") from None
        return _build(cfg, fixed, f"{src}: [base]")

    def axes(self) -> list[tuple[tuple[str, ...], list[tuple[Any, ...]], str]]:
        """The axes in order: (fields, values (one tuple per point), label for run names) each."""
        src = self.source
        axes: list[tuple[tuple[str, ...], list[tuple[Any, ...]], str]] = []
        seen: dict[str, str] = {}

        def claim(name: str, where: str) -> None:
            _check_field(name, where, src)
            if name in seen:
                raise ConfigError(f"{src}: {name} is varied twice ({seen[name]} and {where}); vary it once")
            if name in self.base or (name in SCHEDULE_KEYS and getattr(self, name) is not None):
                raise ConfigError(f"{src}: {name} is both fixed ([sweep]/[base]) and varied ({where})")
            seen[name] = where

        for name, values in self.grid.items():
            claim(name, "[grid]")
            axes.append(((name,), [(v,) for v in _values(values, f"[grid] {name}", src)], name))
        for i, group in enumerate(self.zip):
            where = f"[[zip]] #{i + 1}"
            if not group:
                raise ConfigError(f"{src}: {where} is empty; give fields with equal-length lists")
            columns = []
            for name, values in group.items():
                claim(name, where)
                columns.append(_values(values, f"{where} {name}", src, distinct=False))
            lengths = {len(c) for c in columns}
            if len(lengths) != 1:
                raise ConfigError(f"{src}: {where}: lists must have one length to be zipped, got "
                                  + ", ".join(f"{n}: {len(c)}" for n, c in zip(group, columns)))
            points = list(zip(*columns))
            _values(points, f"{where} ({', '.join(group)})", src)  # the zipped points must be distinct
            axes.append((tuple(group), points, ""))
        bad = sorted(set(self.seeds) - set(SEED_KEYS))
        if bad:
            raise ConfigError(f"{src}: [seeds] has unknown key(s) {bad}; use data, model, or both")
        if "both" in self.seeds and len(self.seeds) > 1:
            raise ConfigError(f"{src}: [seeds] both sets data and model seeds together; do not also give "
                              f"{sorted(set(self.seeds) - {'both'})}")
        for key in ("data", "model", "both"):
            if key in self.seeds:
                names = SEED_KEYS[key]
                for n in names:
                    claim(n, f"[seeds] {key}")
                seeds = _seed_values(self.seeds[key], f"[seeds] {key}", src)
                axes.append((names, [(s,) * len(names) for s in seeds], "seed" if key == "both" else names[0]))
        return axes

    def varied_fields(self) -> list[str]:
        """The RunConfig fields that the sweep varies, in axis order (the tidy tables' columns)."""
        return [f for fields, _, _ in self.axes() for f in fields]

    def expand(self) -> list[tuple[str, RunConfig]]:
        """Every run as (name, RunConfig), in grid order (the last axis varies fastest); all validated."""
        src = self.source
        _check_measures(self.measures, src)
        if self.top_k is not None and (isinstance(self.top_k, bool) or not isinstance(self.top_k, int)
                                       or self.top_k < 1):
            raise ConfigError(f"{src}: [sweep] top_k must be a positive integer (frequencies), got {self.top_k!r}")
        base = self.base_config()
        axes = self.axes()
        n_runs = 1
        for _, values, _ in axes:
            n_runs *= len(values)
        if n_runs > MAX_RUNS:
            raise ConfigError(f"{src}: the sweep has {n_runs:,} runs, more than the {MAX_RUNS:,} one sweep may have; "
                              "split it into several sweeps")
        formats = [_formatter(fields, values, label, src) for fields, values, label in axes]
        runs: list[tuple[str, RunConfig]] = []
        names: set[str] = set()
        for point in itertools.product(*(range(len(values)) for _, values, _ in axes)):
            changes: dict[str, Any] = {}
            parts = []
            for (fields, values, _), fmt, i in zip(axes, formats, point):
                changes.update(zip(fields, values[i]))
                parts.append(fmt(values[i]))
            name = ",".join(parts) or base.name
            if name in names:  # cannot happen with distinct, distinctly formatted values; kept as a guard
                raise ConfigError(f"{src}: two runs would both be named {name!r}; make the values distinct")
            names.add(name)
            runs.append((name, _build(base, {**changes, "name": name}, f"{src}: run {name!r}")))
        if not runs:
            raise ConfigError(f"{src}: the sweep has no runs")
        return runs



def select_measures(measures: str | Sequence[str], columns: Sequence[str]) -> list[str]:
    """Which of ``columns`` (from measure_run) a spec's ``measures`` keeps, in their order."""
    if measures == "all":
        return list(columns)
    keep = set(ALWAYS_MEASURED) | (set() if measures == "none" else set(measures))
    return [c for c in columns if c == "step" or c in keep or re.sub(r"_l\d+$", "", c) in keep
            or (c.startswith("excluded_loss_k") and "excluded_loss_k" in keep)]


def as_spec(spec: "SweepSpec | Mapping[str, Any] | str | Path") -> SweepSpec:
    """A SweepSpec from a SweepSpec, a dict of the TOML structure, or a path to a TOML file."""
    if isinstance(spec, SweepSpec):
        return spec
    if isinstance(spec, Mapping):
        return SweepSpec.from_dict(spec)
    if isinstance(spec, (str, Path)):
        return SweepSpec.from_toml(spec)
    raise ConfigError(f"sweep spec must be a SweepSpec, a dict or a TOML path, got {type(spec).__name__}")


# ---------------------------------------------------------------------------------------------


def _table(value: Any, where: str, src: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{src}: {where} must be a table, got {value!r}")
    return dict(value)


def _check_field(name: str, where: str, src: str) -> None:
    if name == "name":
        raise ConfigError(f"{src}: {where} name: run names are made from the varied fields; set the sweep's "
                          "name in [sweep] instead")
    if name not in CONFIG_FIELDS:
        raise ConfigError(f"{src}: {where}: {name!r} is not a RunConfig field; fields: {list(CONFIG_FIELDS)}")


def _values(values: Any, where: str, src: str, distinct: bool = True) -> list[Any]:
    if not isinstance(values, (list, tuple)) or not values:
        raise ConfigError(f"{src}: {where} must be a non-empty list of values, got {values!r}")
    _check_axis_length(len(values), where, src)
    if distinct:  # one pass with a set (== semantics as before: 1, 1.0 and True are one value)
        seen: set[Any] = set()
        for v in values:
            key = _hashable(_plain(v))
            if key in seen:
                raise ConfigError(f"{src}: {where} lists {_plain(v)!r} twice")
            seen.add(key)
    return list(values)


def _check_axis_length(n: int, where: str, src: str) -> None:
    """One axis longer than a whole sweep may be is refused before its values are built or compared."""
    if n > MAX_RUNS:
        raise ConfigError(f"{src}: {where} has {n:,} values, more than the {MAX_RUNS:,} runs one sweep may have; "
                          "split it into several sweeps")


def _hashable(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return tuple(_hashable(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((str(k), _hashable(x)) for k, x in v.items()))
    return v


def _seed_values(value: Any, where: str, src: str) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise ConfigError(f"{src}: {where} = {value}: a count of seeds must be >= 1")
        _check_axis_length(value, where, src)  # before range() is materialised
        return list(range(value))
    seeds = _values(value, where, src)
    bad = [s for s in seeds if not isinstance(s, int) or isinstance(s, bool) or s < 0]
    if bad:
        raise ConfigError(f"{src}: {where}: seeds must be integers >= 0, got {bad[0]!r}")
    return seeds


def _check_measures(measures: Any, src: str) -> None:
    if isinstance(measures, str):
        if measures not in ("all", "none"):
            raise ConfigError(f"{src}: [sweep] measures = {measures!r}: use \"all\", \"none\" or a list of "
                              f"columns from {list(MEASURE_COLUMNS)}")
        return
    if not isinstance(measures, (list, tuple)) or not measures:
        raise ConfigError(f"{src}: [sweep] measures must be \"all\", \"none\" or a non-empty list of columns, "
                          f"got {measures!r}")
    bad = [m for m in measures if m not in MEASURE_COLUMNS]
    if bad:
        raise ConfigError(f"{src}: [sweep] measures: unknown column(s) {bad}; choose from {list(MEASURE_COLUMNS)}")


def _build(cfg: RunConfig, changes: dict[str, Any], where: str) -> RunConfig:
    d = cfg.to_dict()
    d.update(changes)
    if "op" in changes and "p" not in changes:  # a group op (S4, D5, ...) brings its own p, the group's order
        d["p"] = group_order_or(changes["op"], d["p"])
    return RunConfig.from_dict(d, where=where)


def _plain(v: Any) -> Any:
    return [_plain(x) for x in v] if isinstance(v, (list, tuple)) else v


def _fmt(v: Any, exact: bool) -> str:
    if isinstance(v, (list, tuple)):
        return "-".join(_fmt(x, exact) for x in v)
    if isinstance(v, float) and not exact:
        return format(v, "g")
    return repr(v) if isinstance(v, float) else str(v)


def _formatter(fields: tuple[str, ...], values: list[tuple[Any, ...]], label: str, src: str):
    """name part of one axis point: ``field=value`` (``seed=S`` for seeds.both, every field for a zip group).
    Floats are written short (``g``) unless that would make two values look alike."""
    shown = list(range(len(fields))) if not label else [0]
    labels = [label] if label else list(fields)

    def make(exact: bool):
        return lambda point: ",".join(f"{lab}={_fmt(point[i], exact)}" for lab, i in zip(labels, shown))

    for exact in (False, True):
        fmt = make(exact)
        texts = [fmt(p) for p in values]
        if len(set(texts)) == len(texts):
            break
    for t in texts:
        for part in t.split(","):
            value = part.split("=", 1)[1]
            if not _SAFE_VALUE.match(value):
                raise ConfigError(f"{src}: value {value!r} of {part.split('=')[0]} cannot be part of a run "
                                  "directory name (letters, digits and . _ + - only)")
    if len(set(texts)) != len(texts):
        raise ConfigError(f"{src}: values of {'/'.join(fields)} are not distinct: {values}")
    return fmt
