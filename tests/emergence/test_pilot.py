"""Protocol v2 §1's pilot decisions (cost cut, width extension) on pilot sweeps whose costs are set by hand."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from interp.emergence.power import pilot_plan
from interp.errors import ConfigError
from interp.sweep.spec import SweepSpec
from interp.sweep.state import FORMAT, FORMAT_VERSION

PILOT = {"sweep": {"preset": "small", "n_steps": 12000},
         "zip": [{"frac_train": [0.35, 0.5, 0.35, 0.35], "d_mlp": [256, 256, 128, 512]}],
         "seeds": {"both": [900, 901]}}
DENSE = {"sweep": {"preset": "small", "n_steps": 12000}, "base": {"d_mlp": 256},
         "grid": {"frac_train": [0.35, 0.5]}, "seeds": {"both": list(range(1000, 1010))}}
WIDTH = {"sweep": {"preset": "small", "n_steps": 12000}, "base": {"frac_train": 0.35},
         "grid": {"d_mlp": [128, 256, 512]}, "seeds": {"both": list(range(1000, 1004))}}


def _pilot(tmp_path, cpu_of, acc_of, wall_only=()):
    """A pilot directory: run r's CPU time cpu_of(cfg) seconds and final test accuracy acc_of(cfg)."""
    spec = SweepSpec.from_dict(PILOT)
    runs, rows = {}, []
    for name, cfg in spec.expand():
        rec = {"status": "complete", "error": None, "seconds": 3 * cpu_of(cfg), "final": None}
        if name not in wall_only:
            rec["cpu_seconds"] = cpu_of(cfg)
        runs[name] = rec
        rows += [{"run": name, "frac_train": cfg.frac_train, "d_mlp": cfg.d_mlp, "seed": cfg.model_seed, "step": s,
                  "test_acc": a} for s, a in ((0, 0.0), (12000, acc_of(cfg)))]
    d = tmp_path / "pilot"
    d.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(d / "results.csv", index=False)
    (d / "sweep.json").write_text(json.dumps({
        "format": FORMAT, "format_version": FORMAT_VERSION, "spec": spec.to_dict(),
        "axes": ["frac_train", "d_mlp", "seed"], "runs": runs, "journal_generation": 1, "threads_per_worker": 1}))
    return d


def test_costs_extrapolate_per_cell_and_the_dense_seeds_are_cut_to_what_fits(tmp_path):
    """Cell costs 360 s (0.35, 256), 180 s (0.5, 256), 100 s (128), 720 s (512). Dense: 10 seeds x (360 + 180) s
    = 1.5 h; width: 4 x (100 + 360 + 720) s = 1.311 h; total 2.811 h. Under a 2 h cap the dense sweep keeps
    floor((2 - 1.311) / 0.15) = 4 seeds; under 8 h nothing is cut."""
    cost = {(0.35, 256): 360.0, (0.5, 256): 180.0, (0.35, 128): 100.0, (0.35, 512): 720.0}
    d = _pilot(tmp_path, lambda c: cost[(c.frac_train, c.d_mlp)], lambda c: 1.0)
    cells, dec = pilot_plan(d, {"dense": DENSE, "width": WIDTH})
    assert dec["total_cpu_hours"] == pytest.approx((10 * 540 + 4 * 1180) / 3600)
    assert not dec["cut"] and dec["seeds"] == {"dense": 10, "width": 4}
    assert dec["add_width"] == {"width": None} and dec["widest"]["width"] == (512, 1.0)
    row = cells.set_index(["sweep", "d_mlp", "frac_train"]).loc[("width", 512, 0.35)]
    assert row["runs"] == 4 and row["pilot_runs"] == 2 and row["cpu_seconds_per_run"] == 720.0
    _, cut = pilot_plan(d, {"dense": DENSE, "width": WIDTH}, max_cpu_hours=2.0)
    assert cut["cut"] and cut["seeds"] == {"dense": 4, "width": 4}


def test_a_widest_width_that_does_not_reach_0_9_adds_twice_that_width(tmp_path):
    d = _pilot(tmp_path, lambda c: 100.0, lambda c: 0.5 if c.d_mlp == 512 else 1.0)
    _, dec = pilot_plan(d, {"dense": DENSE, "width": WIDTH})
    assert dec["add_width"] == {"width": 1024} and dec["widest"]["width"] == (512, 0.5)


def test_a_run_without_cpu_time_costs_its_steps_at_its_widths_cost_per_step(tmp_path):
    """A run that recorded only wall time (on a machine three times oversubscribed: wall = 3 x CPU) is costed as
    its steps (here 12,000, as every run) x the CPU-seconds per step of the other runs at its width, not its wall
    time; where no run of its width has a CPU time, wall time x threads stands in."""
    spec = dict(SweepSpec.from_dict(PILOT).expand())
    first = next(iter(spec))        # frac 0.35, d_mlp 256: the width of the 0.5 cell too
    d = _pilot(tmp_path, lambda c: 100.0, lambda c: 1.0, wall_only={first})
    record = json.loads((d / "sweep.json").read_text())
    for rec in record["runs"].values():
        rec["final"] = {"step": 12000}
    (d / "sweep.json").write_text(json.dumps(record))
    cells, _ = pilot_plan(d, {"dense": DENSE})
    c = spec[first]
    row = cells.set_index(["frac_train", "d_mlp"]).loc[(c.frac_train, c.d_mlp)]
    assert row["cpu_seconds_per_run"] == pytest.approx(100.0)
    width_128 = [n for n, cfg in spec.items() if cfg.d_mlp == 128]
    d2 = _pilot(tmp_path / "2", lambda c: 100.0, lambda c: 1.0, wall_only=set(width_128))
    cells, _ = pilot_plan(d2, {"width": WIDTH})
    assert cells.set_index("d_mlp").loc[128, "cpu_seconds_per_run"] == pytest.approx(300.0)


def test_a_cell_the_pilot_has_not_finished_is_named(tmp_path):
    d = _pilot(tmp_path, lambda c: 100.0, lambda c: 1.0)
    record = json.loads((d / "sweep.json").read_text())
    for name in record["runs"]:
        if "d_mlp=512" in name:
            record["runs"][name]["status"] = "pending"
    (d / "sweep.json").write_text(json.dumps(record))
    with pytest.raises(ConfigError, match="no finished run at frac_train=0.35, d_mlp=512"):
        pilot_plan(d, {"width": WIDTH})


def test_the_example_prints_the_plan_for_the_registered_specs(tmp_path):
    """examples/pilot_plan.py on a pilot shaped like the registered one (every cell at 60 CPU-seconds, the widest
    width at accuracy 0.5): (216 + 60) runs x 60 s = 4.6 CPU-hours, no cut; d_mlp 4096 is added."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    global PILOT
    saved = PILOT
    try:
        PILOT = SweepSpec.from_toml(root / "examples" / "sweeps" / "emergence-v2-pilot.toml").to_dict()
        d = _pilot(tmp_path, lambda c: 60.0, lambda c: 0.5 if c.d_mlp == 2048 else 1.0)
    finally:
        PILOT = saved
    r = subprocess.run([sys.executable, str(root / "examples" / "pilot_plan.py"), str(d)], capture_output=True,
                       text=True, cwd=root)
    assert r.returncode == 0, r.stderr
    assert "total 4.60 CPU-hours against the protocol's cap of 8: no cut; seeds per cell {'dense': 36, 'width': 12}" \
        in r.stdout
    assert "width: widest d_mlp 2048 ends at test accuracy 0.500 (lowest pilot run): below 0.9, add d_mlp 4096" \
        in r.stdout
