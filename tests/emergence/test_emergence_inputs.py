"""Every valid sweep gets an answer: a sweep that varies only seeds, a one-run sweep, a short sweep (the budget
follows its data) and a zipped width axis (one scale axis); each through the library, `interp emergence` (within
100 columns) and `interp report`."""

from __future__ import annotations

import pandas as pd
import pytest

from interp.cli import main
from interp.emergence import answer, axis_groups
from interp.emergence.synthetic import protocol_sweep, write_sweep
from interp.sweep.tables import SweepTables


def _only(tables: SweepTables, keep) -> SweepTables:
    runs = set(tables.summary.loc[keep(tables.summary), "run"])
    r = tables.results[tables.results["run"].isin(runs)]
    s = tables.summary[tables.summary["run"].isin(runs)]
    axes = [a for a in tables.axes if r.drop_duplicates("run")[a].nunique() > 1]
    return SweepTables(r.reset_index(drop=True), s.reset_index(drop=True), axes, None, {"axes": axes})


@pytest.fixture(scope="module")
def base():
    return protocol_sweep(frac_train=(0.4, 0.45), seeds=range(4), budget=3000)[0]


@pytest.mark.parametrize("kind", ["seeds only", "one run"])
def test_a_sweep_without_cells_gives_its_tables_and_not_determined(base, kind, tmp_path, capsys):
    keep = (lambda s: s["frac_train"] == 0.45) if kind == "seeds only" else \
        (lambda s: (s["frac_train"] == 0.45) & (s["data_seed"] == 0))
    t = _only(base, keep)
    a = answer(t, n_boot=100)
    assert set(a.events["cell"]) == {"all runs"}
    assert len(a.km[a.km["event"] == "t90"]) == 1
    v = a.verdict_table()
    assert len(v) and v["verdict"].str.startswith(("not determined", "informative", "not informative",
                                                   "no better", "predictable", "adds")).all()
    assert not a.scale   # no scale axis: nothing to compare along
    if kind == "one run":
        assert any("one seed: nothing to compare" in n for n in a.notes)
        assert (v["verdict"] == "not determined").all()
    d = tmp_path / kind.replace(" ", "-")
    write_sweep(t, d)
    assert main(["emergence", str(d), "--n-boot", "100"]) == 0
    out = capsys.readouterr().out
    assert "== information about t90" in out and max(len(x) for x in out.splitlines()) <= 100
    assert main(["report", str(d), "--out", str(tmp_path / f"report-{d.name}")]) == 0
    assert (tmp_path / f"report-{d.name}" / "index.html").is_file()


def test_a_short_sweep_is_read_at_its_own_end_and_a_zip_is_one_axis(capsys, tmp_path):
    """The README tour's shape: 1,500 steps, frac_train x a (d_model, d_mlp) zip, 3 seeds: the metric question is
    read at step 1,500 (never beyond the data) on two axes, frac_train and the zipped width."""
    t, _ = protocol_sweep(frac_train=(0.4, 0.5, 0.6), seeds=range(3), budget=1500, widths=(128, 512),
                          width_frac=0.5)
    r = t.results.copy()
    r["d_model"] = r["d_mlp"].map({128: 48, 256: 64, 512: 96})
    s = t.summary.copy()
    s["d_model"] = s["d_mlp"].map({128: 48, 256: 64, 512: 96})
    axes = ["frac_train", "d_model", "d_mlp", "data_seed", "model_seed"]
    t = SweepTables(r, s, axes, None, {"axes": axes})
    assert axis_groups(t) == [("frac_train", []), ("d_model", ["d_mlp"])]
    a = answer(t, n_boot=100)
    assert a.headline_budget == 1500 and {b for _, b in a.scale} <= {1000, 1500}
    assert {ax for ax, b in a.scale if b == 1500} == {"frac_train", "d_model"}
    assert not any("beyond the data" in why for why in a.missing.values())
    rows = a.verdict_table()
    scale = rows[rows["claim"] == "real or artefact"]
    assert set(scale["subject"]) == {"frac_train at step 1500", "d_model at step 1500"}
    assert any("vary together (a zip)" in n for n in a.notes)
    d = tmp_path / "short"
    write_sweep(t, d)
    assert main(["emergence", str(d), "--n-boot", "100"]) == 0
    out = capsys.readouterr().out
    assert "d_model at step 1500" in out and "step 6000" not in out
    assert max(len(x) for x in out.splitlines()) <= 100
    pd.testing.assert_frame_equal(a.events, answer(t, n_boot=100).events)  # deterministic
