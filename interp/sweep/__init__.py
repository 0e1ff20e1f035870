"""Many runs: a grid of runs trained, measured and tabulated, resumable, local or on a Ray cluster.

>>> from interp import sweep
>>> spec = sweep.SweepSpec(preset="tiny", grid={"frac_train": [0.5, 0.6]}, seeds={"both": 2})  # doctest: +SKIP
>>> s = sweep.run(spec, "sweeps/demo")            # 4 runs, 2 worker processes   # doctest: +SKIP
>>> s.results.groupby("frac_train").test_loss.min(); s.summary[["run", "grokked"]]  # doctest: +SKIP
>>> sweep.load("sweeps/demo")                     # the same tables, rebuilt from the runs, also mid-sweep  # doctest: +SKIP
>>> sweep.load_sweep("sweeps/demo")                # the written CSV tables, read back (the one reader)  # doctest: +SKIP

See :mod:`interp.sweep.spec` for the spec (TOML or Python), :mod:`interp.sweep.driver` for the directory
layout, :mod:`interp.sweep.results` for the tables.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what the names are, for type checkers and the API reference; imported on first use below
    from .spec import SweepSpec, as_spec
    from .tables import SweepTables, load_sweep


def __getattr__(name):  # each part loads torch, pandas or the probes: on first use (`interp --help` needs none)
    if name in ("SweepSpec", "as_spec"):
        from . import spec

        return getattr(spec, name)
    if name in ("SweepTables", "load_sweep"):
        from . import tables

        return getattr(tables, name)
    if name in ("run", "default_workers"):
        from . import driver

        return getattr(driver, name)
    if name in ("load", "Sweep"):
        from . import results

        return getattr(results, name)
    raise AttributeError(f"module 'interp.sweep' has no attribute {name!r}")


__all__ = ["run", "load", "Sweep", "SweepSpec", "as_spec", "default_workers", "load_sweep", "SweepTables"]
