"""The sweep record: status changes go to an append-only journal (sweep.status.jsonl) folded into sweep.json at
the start, the end and every N changes; readers fold it in; a kill between the two loses nothing."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from interp.config import preset
from interp.errors import RunFormatError
from interp.sweep.state import STATUS_JOURNAL, SWEEP_JSON, SweepState, read_sweep_json
from tests.sweep.sweep_helpers import ROOT, cli

SHIPPED = ROOT / "sweeps" / "emergence-dense"


class _Spec:
    """What SweepState needs of a spec: its TOML structure."""

    def __init__(self, d):
        self.d = d

    def to_dict(self):
        return self.d


def _open(out, n, resume=False, compact_every=None):
    out.mkdir(exist_ok=True)
    runs = [(f"run{i}", preset("tiny", lr=1e-3 * (i + 1))) for i in range(n)]
    return SweepState.open(out, _Spec({"sweep": {"preset": "tiny"}}), runs, ["lr"], threads=1, backend="local",
                           resume=resume, compact_every=compact_every)


def _identity(path):
    st = path.stat()
    return st.st_ino, st.st_mtime_ns, st.st_size


def test_a_status_change_appends_one_line_whatever_the_grid_size(tmp_path):
    grown = {}
    for n in (10, 2000):
        state = _open(tmp_path / str(n), n)
        record = tmp_path / str(n) / SWEEP_JSON
        before = _identity(record)
        journal = tmp_path / str(n) / STATUS_JOURNAL
        state.set("run1", "running", error=None)
        state.set("run1", "complete", error=None, seconds=1.25, final={"step": 10, "test_acc": 0.5})
        assert _identity(record) == before, "sweep.json is not rewritten for a status change"
        grown[n] = journal.stat().st_size
        assert len(journal.read_text().splitlines()) == 2
        # a reader sees the change all the same, and what the writer holds
        assert read_sweep_json(tmp_path / str(n))["runs"] == state.data["runs"]
        assert read_sweep_json(tmp_path / str(n))["runs"]["run1"]["final"] == {"step": 10, "test_acc": 0.5}
        assert state.counts() == {"pending": n - 1, "running": 0, "complete": 1, "failed": 0}
    assert grown[10] == grown[2000]  # bytes per change do not depend on the number of runs
    assert (tmp_path / "2000" / SWEEP_JSON).stat().st_size > 100 * grown[2000]


def test_the_journal_is_compacted_every_n_changes_and_at_close(tmp_path):
    out = tmp_path / "s"
    state = _open(out, 4, compact_every=3)
    gen = json.loads((out / SWEEP_JSON).read_text())["journal_generation"]
    state.set("run0", "running")
    state.set("run1", "running")
    state.set("run1", "running")  # no change: nothing written
    assert len((out / STATUS_JOURNAL).read_text().splitlines()) == 2
    state.set("run2", "running")  # the third change: folded into sweep.json, journal emptied
    raw = json.loads((out / SWEEP_JSON).read_text())
    assert raw["journal_generation"] == gen + 1 and (out / STATUS_JOURNAL).read_bytes() == b""
    assert [raw["runs"][f"run{i}"]["status"] for i in range(4)] == ["running"] * 3 + ["pending"]
    state.set("run0", "failed", error="boom")
    state.close()
    raw = json.loads((out / SWEEP_JSON).read_text())
    assert raw["runs"]["run0"] == {**state.data["runs"]["run0"], "status": "failed", "error": "boom"}
    assert (out / STATUS_JOURNAL).read_bytes() == b"" and raw["runs"] == state.data["runs"]


def test_a_torn_last_line_is_ignored_and_other_damage_named(tmp_path):
    out = tmp_path / "s"
    state = _open(out, 3)
    state.set("run0", "running")
    state.set("run0", "complete", seconds=2.0)
    good = read_sweep_json(out)
    journal = out / STATUS_JOURNAL
    whole = journal.read_bytes()
    # a kill in the middle of an append: half a line, no newline
    journal.write_bytes(whole + b'{"gen":1,"run":"run1","set":{"status":"ru')
    assert read_sweep_json(out)["runs"] == good["runs"]
    # the next change of a live writer first cuts the torn piece off
    state.set("run1", "running")
    assert journal.read_bytes().count(b"\n") == 3 and b'"ru{' not in journal.read_bytes()
    assert read_sweep_json(out)["runs"]["run1"]["status"] == "running"
    for bad, what in ((b"not json\n", "line 3 is not a status record"),
                      (b'{"gen":1,"run":"nobody","set":{"status":"running"}}\n', "line 3 names run 'nobody'"),
                      (b'{"gen":1,"run":"run1","set":{"status":"done"}}\n', "line 3: fields must be among")):
        journal.write_bytes(whole + bad)
        with pytest.raises(RunFormatError, match=f"{STATUS_JOURNAL}: {what}"):
            read_sweep_json(out)


def test_a_sweep_json_of_the_previous_format_reads_as_before_and_resumes(tmp_path):
    """Format version 1 (every status in sweep.json, no journal): the shipped sweeps, and what earlier interp
    wrote (and writes, for a sweep it is still running)."""
    raw = json.loads((SHIPPED / SWEEP_JSON).read_text())
    assert raw["format_version"] == 1
    assert read_sweep_json(SHIPPED) == raw
    copy = tmp_path / "old"
    copy.mkdir()
    shutil.copy(SHIPPED / SWEEP_JSON, copy / SWEEP_JSON)
    (copy / STATUS_JOURNAL).write_text("not read for a version-1 sweep\n")
    assert read_sweep_json(copy) == raw
    # resumed by this interp, it becomes version 2 with the same runs, statuses and errors
    old = _open(tmp_path / "v1", 3)
    old.set("run2", "failed", error="diverged")
    old.close()
    v1 = json.loads((tmp_path / "v1" / SWEEP_JSON).read_text())
    v1.update(format_version=1)
    del v1["journal_generation"]
    (tmp_path / "v1" / SWEEP_JSON).write_text(json.dumps(v1))
    os.unlink(tmp_path / "v1" / STATUS_JOURNAL)
    again = _open(tmp_path / "v1", 3, resume=True)
    again.close()
    new = read_sweep_json(tmp_path / "v1")
    assert new["format_version"] == 2 and new["runs"] == v1["runs"]


_DRIVE = """
import sys
from pathlib import Path
from tests.sweep.test_sweep_record import _open
state = _open(Path(sys.argv[1]), 4, compact_every=int(sys.argv[2]))
for name in ("run0", "run1"):
    state.set(name, "running", error=None)
    state.set(name, "complete", error=None, seconds=1.0, final={"step": 100})
state.close()
"""


def _drive(out, kill, compact_every=100):
    env = dict(os.environ, INTERP_KILL_AT=kill, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", _DRIVE, str(out), str(compact_every)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_killed_between_journal_and_compaction_nothing_is_lost(tmp_path):
    # killed after the third journalled change (run0 running, complete; run1 running), before any compaction
    out = tmp_path / "journal"
    assert _drive(out, "sweep.journal:3").returncode == -9
    assert json.loads((out / SWEEP_JSON).read_text())["runs"]["run0"]["status"] == "pending"  # not compacted
    runs = read_sweep_json(out)["runs"]
    assert [runs[f"run{i}"]["status"] for i in range(4)] == ["complete", "running", "pending", "pending"]
    assert runs["run0"]["final"] == {"step": 100}
    # a resume starts from exactly that, compacted
    state = _open(out, 4, resume=True)
    assert state.data["runs"] == runs and (out / STATUS_JOURNAL).read_bytes() == b""
    assert json.loads((out / SWEEP_JSON).read_text())["runs"] == runs

    # killed in a compaction (the 4th change triggers it), after sweep.json, before the journal was emptied
    out = tmp_path / "compact"
    assert _drive(out, "sweep.compact:2", compact_every=4).returncode == -9
    raw = json.loads((out / SWEEP_JSON).read_text())
    stale = [json.loads(line) for line in (out / STATUS_JOURNAL).read_text().splitlines()]
    assert len(stale) == 3 and all(line["gen"] < raw["journal_generation"] for line in stale)
    runs = read_sweep_json(out)["runs"]
    assert runs == raw["runs"]  # the stale lines are skipped, not applied twice
    assert [runs[f"run{i}"]["status"] for i in range(4)] == ["complete", "complete", "pending", "pending"]
    state = _open(out, 4, resume=True)
    state.set("run2", "running")
    assert read_sweep_json(out)["runs"]["run2"]["status"] == "running"
    assert len((out / STATUS_JOURNAL).read_text().splitlines()) == 1


SWEEP_TOML = """\
[sweep]
preset = "tiny"
n_steps = 50
save_every = 50
measures = "none"

[grid]
frac_train = [0.5]
"""


def test_a_real_sweep_killed_after_journalling_resumes(tmp_path):
    """`interp sweep` killed right after it journalled a run's completion (sweep.json still says pending): the
    sweep reads as complete and --resume finishes it (tables written) without training it again."""
    spec = tmp_path / "one.toml"
    spec.write_text(SWEEP_TOML)
    out = tmp_path / "sweep"
    r = subprocess.run([sys.executable, "-m", "interp.cli", "sweep", str(spec), "--out", str(out), "--workers", "1",
                        "--quiet"], env=dict(os.environ, PYTHONPATH=str(ROOT), INTERP_KILL_AT="sweep.journal:2"),
                       capture_output=True, text=True, timeout=300)  # journal line 1: running, 2: complete
    assert r.returncode == -9, r.stderr
    name = "frac_train=0.5"
    assert json.loads((out / SWEEP_JSON).read_text())["runs"][name]["status"] == "pending"
    assert read_sweep_json(out)["runs"][name]["status"] == "complete"
    assert not (out / "results.csv").exists()
    trained = (out / "runs" / name / "step_000050.safetensors").stat().st_mtime_ns
    r = cli("sweep", "--resume", "--out", str(out), "--quiet", timeout=300)
    assert r.returncode == 0, r.stderr
    assert "1 runs: 1 complete" in r.stdout or "1 run: 1 complete" in r.stdout, r.stdout
    assert (out / "runs" / name / "step_000050.safetensors").stat().st_mtime_ns == trained
    assert (out / "results.csv").exists() and (out / STATUS_JOURNAL).read_bytes() == b""
    assert json.loads((out / SWEEP_JSON).read_text())["runs"][name]["status"] == "complete"
