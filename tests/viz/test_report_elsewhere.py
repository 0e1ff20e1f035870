"""`interp measure` and `interp report` beyond runs of `interp train`: a folder of TransformerLens state dicts
trained elsewhere (with or without a metrics.csv that has rows only at checkpoints), and the quadratic tasks,
whose report shows what has meaning and says what has none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from interp import probes
from interp.cli import main
from interp.files import save_tensors
from interp.folder import CheckpointFolder
from interp.model import model_from_kwargs
from interp.tasks import Task
from interp.viz import loss_curves_figure, progress_figure, write_report
from interp.viz.report import FIGURES

from .test_figures_and_report import PNG_MAGIC, _parse

P = 23
KW = dict(n_layers=1, d_model=16, n_ctx=3, d_head=8, n_heads=2, d_mlp=32, d_vocab=P + 1, d_vocab_out=P,
          act_fn="relu", normalization_type=None, seed=0)
STEPS = (0, 10, 20)
HOSTILE = "elsewhere <b onmouseover=alert(1)>& co"  # the folder's name: shown as text, never as markup
# rows only at the checkpoints; test values at two of the three (blank at step 10); the peak is ours to know
METRICS = ("step,train_loss,train_acc,test_loss,test_acc\n"
           "0,3.2,0.05,3.3,0.04\n10,2.5,0.4,,\n20,1.5,0.7,4.5,0.06\n")


def _loss(model, task: Task, split: str) -> float:
    """Ground truth, independent of interp's probes: mean cross-entropy at the last position."""
    idx = task.split_idx(split)
    with torch.no_grad():
        logits = model(task.tokens()[idx])[:, -1].double()
    return float(F.cross_entropy(logits, task.labels()[idx]))


def _folder(root: Path, metrics: str | None = METRICS) -> tuple[Path, dict]:
    folder = root / HOSTILE
    folder.mkdir(parents=True)
    model, models = model_from_kwargs(KW, device="cpu"), {}
    for step in STEPS:
        with torch.no_grad():
            for prm in model.parameters():
                prm.mul_(1.5)  # a different model at each checkpoint
        state = {k: v.clone() for k, v in model.state_dict().items()}
        save_tensors(folder / f"checkpoint_{step}.safetensors", state)
        models[step] = model_from_kwargs(KW, device="cpu")
        models[step].load_state_dict(state)
    (folder / "config.json").write_text(json.dumps(KW))
    if metrics is not None:
        (folder / "metrics.csv").write_text(metrics)
    return folder, models


def _run(argv, capsys) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_a_folder_trained_elsewhere_is_measured_and_reported_from_the_command_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder, models = _folder(tmp_path / "in")
    rc, _out, err = _run(["measure", folder, "--task", "add", "--frac-train", "0.5", "--seed", "3", "--quiet"],
                        capsys)
    assert rc == 0, err
    saved = probes.load_measures(tmp_path / "probes" / HOSTILE)
    assert saved.steps == list(STEPS) and saved.run["kind"] == "checkpoint folder"
    task = Task(op="add", p=P, frac_train=0.5, seed=3)  # p from config.json's d_vocab_out
    for step in STEPS:
        row = saved.df.set_index("step").loc[step]
        assert row["train_loss"] == pytest.approx(_loss(models[step], task, "train"), rel=1e-5)
        assert row["test_loss"] == pytest.approx(_loss(models[step], task, "test"), rel=1e-5)

    rc, _out, err = _run(["report", folder, "--task", "add", "--frac-train", "0.5", "--seed", "3",
                         "--out", tmp_path / "report"], capsys)
    assert rc == 0, err
    assert "computing them now" not in err  # the measures just saved belong to this folder and task: reused
    index = tmp_path / "report" / "index.html"
    page = index.read_text()
    assert "<b onmouseover" not in page and "elsewhere &lt;b onmouseover=alert(1)&gt;&amp; co" in page
    parsed = _parse(page)
    assert sorted(parsed.imgs) == sorted(FIGURES.values())  # add has a group: every figure, curves included
    assert all((index.parent / src).read_bytes()[:8] == PNG_MAGIC for src in parsed.imgs)
    text = " ".join(parsed.text)
    assert "Checkpoints trained elsewhere: 3 TransformerLens state dicts" in text
    assert "metrics.csv in the folder: 3 rows (steps 0 to 20), test values at 2 of them" in text
    assert "the seeded split of interp (frac_train 0.5, seed 3" in text
    rows = parsed.rows
    assert float(rows["final train loss (step 20)"]) == pytest.approx(_loss(models[20], task, "train"), rel=1e-3)
    assert rows["test-loss peak"] == "4.5 at step 20"  # quoted from metrics.csv, the rows it has
    assert rows["folder"] == str(folder)


def test_training_curves_are_drawn_only_where_the_folder_has_rows(tmp_path):
    folder, _ = _folder(tmp_path / "in")
    run = CheckpointFolder(folder, Task(op="add", p=P))
    fig = loss_curves_figure(run.metrics)
    lines = {ln.get_gid(): ln for ln in fig.axes[0].get_lines() if ln.get_gid()}
    assert list(lines["train_loss"].get_xdata()) == [0, 10, 20]
    assert list(lines["test_loss"].get_xdata()) == [0, 20]  # the blank test value at step 10 is not a point

    # no metrics.csv (and a quadratic task, so the page is small): no curves, said so; landmarks at checkpoints
    bare, models = _folder(tmp_path / "bare", metrics=None)
    plain = CheckpointFolder(bare, Task(op="a2+b2", p=P))
    assert plain.metrics is None
    m = probes.measure_run(plain, progress=False)
    index = write_report(plain, tmp_path / "report", measures=m)
    parsed = _parse(index.read_text())
    assert sorted(parsed.imgs) == sorted(FIGURES[k] for k in ("progress", "measures", "attention_grid"))
    assert 'id="no-curves"' in index.read_text()
    assert "no metrics.csv in the folder, so no training curves are drawn" in " ".join(parsed.text)
    test_losses = {s: _loss(models[s], plain.task, "test") for s in STEPS}
    peak = max(test_losses, key=test_losses.get)
    assert parsed.rows["test-loss peak (at the checkpoints)"].endswith(f"at step {peak}")
    assert parsed.rows["test accuracy reaches 0.99 (at the checkpoints)"] == "never"


@pytest.mark.parametrize("argv, says", [
    (["report", "{folder}"], "does not say what its models learnt; pass --task OP"),
    (["measure", "{folder}", "--task", "add", "--split", "{folder}/config.json", "--seed", "1"],
     "--split lists the training pairs; --frac-train and --seed choose a seeded split"),
    (["measure", "{folder}", "--task", "mul", "--p", "29"], "--task mul: the model predicts d_vocab_out=23 classes but the task mul mod 29"),
    (["report", "{folder}", "--task", "pow"], "--task must be one of"),
    (["report", "{folder}", "--task", "add", "--frac-train", "1.5"], "--frac-train must be strictly between 0 and 1"),
    (["report", "{run}", "--task", "add"], "--task: for a folder of checkpoints trained elsewhere"),
])
def test_a_folder_given_wrongly_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch, argv, says):
    monkeypatch.chdir(tmp_path)
    folder, _ = _folder(tmp_path / "in")
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    argv = [a.format(folder=folder, run=run) for a in argv] + ["--out", str(tmp_path / "out")]
    rc, _, err = _run(argv, capsys)
    assert rc == 1 and says in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_a_folder_metrics_csv_out_of_order_is_refused_naming_the_line(tmp_path):
    folder, _ = _folder(tmp_path / "in", metrics=METRICS + "15,1.0,0.8,,\n")
    with pytest.raises(Exception, match=r"metrics.csv: line 5: step 15 follows step 20; steps must increase"):
        CheckpointFolder(folder, Task(op="add", p=P))


def test_a_quadratic_run_gets_the_report_that_has_meaning(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "quad"
    rc, _, err = _run(["train", "--preset", "tiny", "--set", "op=a2+ab+b2", "--steps", "40", "--save-every", "20",
                       "--out", run_dir, "--quiet"], capsys)
    assert rc == 0, err
    rc, _, err = _run(["report", run_dir, "--out", tmp_path / "report"], capsys)
    assert rc == 0, err  # before: refused ("report (Fourier spectra ...): not applicable to task")
    index = tmp_path / "report" / "index.html"
    parsed = _parse(index.read_text())
    assert sorted(parsed.imgs) == sorted(FIGURES[k] for k in ("progress", "curves", "measures", "attention_grid"))
    assert sorted(p.name for p in index.parent.iterdir() if p.suffix == ".png") == sorted(parsed.imgs)
    rows = parsed.rows
    assert rows["key frequencies"] == "not applicable" and rows["clustered neurons (final model)"] == "not applicable"
    assert not [k for k in rows if k.startswith("final ") and ("Gini" in k or "restricted" in k or "cos(" in k)]
    na = [(k, v) for k, v in rows.items() if "gini_W_E" in k]
    assert na and "'a2+ab+b2' has no group basis" in na[0][1]
    assert any(k.startswith("figures not drawn: Fourier spectra") for k in rows)
    from interp import Run

    run = Run(run_dir)
    assert float(rows["final train loss (step 40)"]) == pytest.approx(_loss(run.load(40), run.task, "train"),
                                                                      rel=1e-3)
    text = " ".join(parsed.text)
    assert "No circuit measures: task 'a2+ab+b2' computes (a^2 + a b + b^2) mod p" in text
    assert "Key frequencies, neuron clusters and the cos terms: not applicable" in text

    # the Gini panel says "not applicable", the loss panel draws train and test loss
    m = probes.measure_run(run, progress=False)
    fig = progress_figure(m.df, not_applicable=m.not_applicable)
    loss_ax, _, gini_ax, _ = fig.axes[:4]
    assert [t.get_gid() for t in gini_ax.texts] == ["not-applicable"]
    assert {ln.get_gid() for ln in loss_ax.get_lines()} >= {"train_loss", "test_loss"}
    assert not [t for t in loss_ax.texts if t.get_gid() == "not-applicable"]


def test_split_file_lists_training_pairs_by_a_times_p_plus_b(tmp_path):
    from interp.errors import RunFormatError
    from interp.folder import folder_task

    folder, _ = _folder(tmp_path / "in", metrics=None)
    pairs = [(1, 2), (5, 7), (22, 1), (0, 3)]
    (tmp_path / "split.json").write_text(json.dumps({"train": [a * P + b for a, b in pairs]}))
    task = folder_task(folder, "div", split=tmp_path / "split.json")  # div has no b = 0: pair index != a*p + b
    assert sorted(map(tuple, task.pairs()[task.train_idx].tolist())) == sorted(pairs)
    assert len(task.test_idx) == P * (P - 1) - len(pairs)
    (tmp_path / "bad.json").write_text(json.dumps({"train": [3 * P + 0]}))  # b = 0: not a pair of div
    with pytest.raises(RunFormatError, match=r"bad.json: 'train' must list distinct pair indices a \* p \+ b of div"):
        folder_task(folder, "div", split=tmp_path / "bad.json")
