"""The sweep report page, its figures and the CLI, on a sweep directory written by hand."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from interp.cli import main
from interp.emergence.tables import run_transitions
from interp.emergence.synthetic import synthetic_sweep
from interp.viz.emergence_figures import EMERGENCE_GID, run_curves_figure
from interp.viz.sweep_report import write_sweep_report
from tests.cli_helpers import interp_cli

HOSTILE = "<script>alert(1)</script>"
ROOT = Path(__file__).resolve().parents[2]


def write_sweep(d: Path) -> Path:
    """A sweep directory as the sweep runner writes it: results.csv, summary.csv, sweep.json."""
    results, _ = synthetic_sweep(frac_train=(0.1, 0.3, 0.5), seeds=(0, 1), n_steps=6000, every=200)
    results["run"] = results["run"].replace({"frac0.3-seed0": HOSTILE})
    d.mkdir(parents=True, exist_ok=True)
    results.to_csv(d / "results.csv", index=False)
    runs = results.groupby("run", sort=False).first().reset_index()
    summary = runs[["run", "frac_train", "data_seed"]].assign(status="done", grokked=runs["frac_train"] > 0.2)
    summary.to_csv(d / "summary.csv", index=False)
    (d / "sweep.json").write_text(json.dumps({"spec": {"preset": "small"}, "axes": ["frac_train", "data_seed"]}))
    return d


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    return write_sweep(tmp_path_factory.mktemp("sweep") / "a <b> sweep")


def test_report_page_is_complete_and_escaped(sweep_dir, tmp_path):
    index = write_sweep_report(sweep_dir, tmp_path / "report", n_boot=200)
    page = index.read_text()
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "a &lt;b&gt; sweep" in page
    srcs = re.findall(r'<img class="figure" src="([^"]+)"', page)
    assert srcs and all((index.parent / s).stat().st_size > 1000 for s in srcs)
    assert {"runs_01.png", "survival.png", "scale_frac_train.png", "lead_grid.png"} <= set(srcs)
    for table in ("verdicts", "information", "predictability", "events", "scale_fits", "robustness", "runs",
                  "rules"):
        assert f'id="{table}"' in page
    # one generation of the analysis: protocol v2's answer; the pre-protocol tables are gone
    assert "Exploratory" not in page and 'id="lead_summary"' not in page and 'id="prediction"' not in page
    assert "4 of 6 runs reached t90" in page  # frac 0.1 never reaches it in 6000 steps
    info = page[page.index('id="information"'):page.index("</table>", page.index('id="information"'))]
    for measure in ("train_loss", "restricted_loss"):   # a control and a measure go through the same test
        assert f"<td>{measure}</td>" in info
    assert "http://" not in page and "https://" not in page  # offline
    assert not list(index.parent.glob("*.tmp"))  # atomic writes leave no temporaries


def test_figures_mark_what_they_claim(sweep_dir):
    results = pd.read_csv(sweep_dir / "results.csv")
    tr = run_transitions(results)
    runs = list(dict.fromkeys(results["run"]))
    fig = run_curves_figure(results, tr, runs)
    emerged = tr.groupby("run")["emerged"].first()
    lines = [ln for ax in fig.axes for ln in ax.lines if ln.get_gid() == EMERGENCE_GID]
    assert len(lines) == 3 * int(emerged.sum())  # one per panel of each run that emerged


def _cli(*args: str) -> subprocess.CompletedProcess:
    return interp_cli(*args, cwd=ROOT)


def test_cli_emergence_prints_the_protocol_and_writes_its_tables(sweep_dir, tmp_path, capsys):
    assert main(["emergence", str(sweep_dir), "--n-boot", "200", "--out", str(tmp_path / "tables")]) == 0
    out = capsys.readouterr().out
    for heading in ("== t90 per cell", "== information about t90", "== (a) predictable from the past",
                    "== (b) beyond test loss + clock", "== real or artefact"):
        assert heading in out
    assert max(len(line) for line in out.splitlines()) <= 100
    written = {p.name for p in (tmp_path / "tables").iterdir()}
    assert {"verdicts.csv", "information.csv", "predictability.csv", "robustness.csv", "events.csv"} <= written
    assert len(pd.read_csv(tmp_path / "tables" / "events.csv")) == 6


@pytest.mark.parametrize("args,match", [
    (["--out", "x.csv"], "the protocol's tables go into a directory"),
    (["--replication", "no/such/sweep"], "--replication no/such/sweep: not a directory"),
])
def test_cli_errors_are_one_line_and_come_first(sweep_dir, args, match, capsys):
    assert main(["emergence", str(sweep_dir), *args]) == 1
    captured = capsys.readouterr()
    assert match in captured.err and len(captured.err.strip().splitlines()) == 1
    assert captured.out == ""   # nothing of the analysis was printed before the error


def test_cli_missing_sweep_and_bad_n_boot_in_a_real_process(tmp_path):
    r = _cli("emergence", str(tmp_path / "none"))
    assert r.returncode == 1 and "not a directory" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    r = _cli("emergence", str(tmp_path), "--n-boot", "5")
    assert r.returncode == 2 and "--n-boot must be >= 100" in r.stderr and "Traceback" not in r.stderr
    r = _cli("emergence", str(tmp_path), "--exploratory")   # one generation: the pre-protocol tables are gone
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_report_dispatches_on_sweep_json(tmp_path, capsys):
    results, _ = synthetic_sweep(frac_train=(0.3, 0.5), seeds=(0,), n_steps=4000, every=200)
    d = tmp_path / "small sweep"
    d.mkdir()
    results.to_csv(d / "results.csv", index=False)
    (d / "sweep.json").write_text(json.dumps({"axes": ["frac_train", "data_seed"]}))
    assert main(["report", str(d), "--out", str(tmp_path / "rep")]) == 0
    assert (tmp_path / "rep" / "index.html").exists() and (tmp_path / "rep" / "runs_01.png").exists()
    assert main(["report", str(d), "--recompute", "--out", str(tmp_path / "rep2")]) == 1
    assert "apply to a run" in capsys.readouterr().err
