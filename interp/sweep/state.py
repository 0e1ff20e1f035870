"""``DIR/sweep.json``: the spec, the varied fields (axes) and every run's status, rewritten atomically.

::

    {"format": "interp-sweep", "format_version": 1, "spec": {...TOML structure...},
     "axes": ["frac_train", "data_seed", ...], "threads_per_worker": 1, "backend": "local",
     "provenance": {"versions": {"torch": ...}, "cpu": "...", "platform": "...", "cpu_count": 2, ...},
     "runs": {"frac_train=0.3,seed=0": {"status": "complete", "error": null,
                                         "varied": {"frac_train": 0.3, ...}, "seconds": 12.1,
                                         "final": {"step": 1500, "train_loss": ..., ...}}, ...}}

Statuses: ``pending`` (not started, or interrupted: resumed by ``--resume``), ``running``, ``complete``,
``failed`` (with ``error``; retried by ``--resume``).
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

from .. import RunConfig
from ..errors import ConfigError, RunFormatError
from ..files import atomic_write_text, read_json
from ..runs import provenance

__all__ = ["SweepState", "check_dir", "read_sweep_json", "SWEEP_JSON", "STATUSES"]

SWEEP_JSON = "sweep.json"
FORMAT = "interp-sweep"
FORMAT_VERSION = 1
STATUSES = ("pending", "running", "complete", "failed")


def read_sweep_json(out: Path) -> dict[str, Any]:
    """The parsed sweep.json of ``out``; RunFormatError naming the file if it is missing or damaged."""
    path = Path(out) / SWEEP_JSON
    if not path.exists():
        raise RunFormatError(f"{path}: file not found; {out} is not a sweep directory "
                             "(create one with `interp sweep SPEC --out DIR`)")
    data = read_json(path)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise RunFormatError(f"{path}: not an interp sweep file (field 'format' must be {FORMAT!r})")
    if data.get("format_version") != FORMAT_VERSION:
        raise RunFormatError(f"{path}: format_version {data.get('format_version')!r} is not supported "
                             f"(this interp reads {FORMAT_VERSION})")
    runs = data.get("runs")
    if (not isinstance(data.get("spec"), dict) or not isinstance(data.get("axes"), list)
            or not isinstance(runs, dict)
            or not all(isinstance(r, dict) and r.get("status") in STATUSES for r in runs.values())):
        raise RunFormatError(f"{path}: fields 'spec', 'axes' and 'runs' (each with a status in {list(STATUSES)}) "
                             "are missing or malformed")
    return data


def check_dir(out: Path, resume: bool) -> None:
    """A new sweep needs a new or empty directory; ``resume`` needs one that holds a sweep."""
    out = Path(out)
    if (out / SWEEP_JSON).exists():
        if not resume:
            raise ConfigError(f"--out {out}: already holds a sweep ({SWEEP_JSON}); pass --resume to continue "
                              "it, or choose another directory")
        return
    if resume:
        raise ConfigError(f"--out {out}: no sweep to resume here (no {SWEEP_JSON})")
    stray = sorted(p.name for p in out.iterdir() if p.name != ".lock") if out.is_dir() else []
    if stray:
        raise ConfigError(f"--out {out}: is not empty ({', '.join(stray[:3])}{' ...' if len(stray) > 3 else ''}) "
                          "and holds no sweep; choose a new or empty directory")


class SweepState:
    """The statuses of a sweep's runs, mirrored to sweep.json on every change."""

    def __init__(self, out: Path, data: dict[str, Any]):
        self.out = Path(out)
        self.data = data

    @classmethod
    def open(cls, out: Path, spec, runs: list[tuple[str, RunConfig]], axes: list[str], *, threads: int,
             backend: str, resume: bool) -> "SweepState":
        out = Path(out)
        path = out / SWEEP_JSON
        spec_dict = spec.to_dict()
        check_dir(out, resume)
        old: dict[str, Any] = {}
        if path.exists():
            recorded = read_sweep_json(out)
            if recorded["spec"] != spec_dict:
                diff = sorted(k for k in set(spec_dict) | set(recorded["spec"])
                              if spec_dict.get(k) != recorded["spec"].get(k))
                raise ConfigError(f"{path}: the sweep was started with a different spec (tables {diff} differ); "
                                  "resume continues the recorded spec (omit SPEC to use it)")
            old = recorded["runs"]
        data = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "spec": spec_dict, "axes": list(axes),
            "threads_per_worker": threads, "backend": backend,
            "provenance": {**provenance(), "threads_per_worker": threads},
            "runs": {name: {**{"status": "pending", "error": None, "seconds": None, "final": None},
                            **old.get(name, {}), "varied": {a: _plain(getattr(cfg, a)) for a in axes}}
                     for name, cfg in runs},
        }
        state = cls(out, data)
        state.write()
        return state

    def status(self, name: str) -> str:
        return self.data["runs"][name]["status"]

    def set(self, name: str, status: str, **fields: Any) -> None:
        assert status in STATUSES, status
        self.data["runs"][name].update(status=status, **fields)
        self.write()

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in STATUSES}
        for r in self.data["runs"].values():
            out[r["status"]] += 1
        return out

    def write(self) -> None:
        self.data["updated"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        atomic_write_text(self.out / SWEEP_JSON, json.dumps(self.data, indent=1) + "\n")


def _plain(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v
