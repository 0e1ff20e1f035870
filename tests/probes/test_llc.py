"""The local learning coefficient: ground truth on an exactly quadratic loss, and our HookedTransformers.

A strict minimum of L(w) = L0 + 1/2 w^T H w with rank(H) = r has LLC r/2. devinterp's SGLD samples
exp(-n_beta L - gamma/2 |w|^2) with step eps; on a quadratic the draws are exactly Gaussian with variance
1/(a (1 - eps a / 4)) along an eigenvalue h of H (a = n_beta h + gamma), so the expected estimate is known in closed
form and tends to r/2 as gamma / (n_beta h) and eps a go to 0.
"""

import math

import pandas as pd
import pytest
import torch

from interp import probes
from interp.config import preset
from interp.errors import ProbeError
from interp.model import build_model
from interp.probes.learning_coefficient import LLC_COLUMNS, answer_loss, estimate_llc, task_rows
from interp.tasks import Task
from tests.cli_helpers import run_script

pytest.importorskip("devinterp", reason="the extra interp[llc] is not installed")


class Quadratic(torch.nn.Module):
    """L(w) = 0.5 w^T H w, minimum at w* = 0, the same for every input row (no minibatch noise)."""

    def __init__(self, H: torch.Tensor):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(len(H)))
        self.register_buffer("H", H)


def quadratic_loss(model, input_ids):
    return (0.5 * model.w @ model.H @ model.w).expand(input_ids.shape[0], input_ids.shape[1] - 1)


def rotated_hessian(d: int, eigenvalues: torch.Tensor, seed: int = 0) -> torch.Tensor:
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(seed)))
    h = torch.zeros(d)
    h[:len(eigenvalues)] = eigenvalues
    return Q @ torch.diag(h) @ Q.T


QUAD = probes.LLCSettings(epsilon=3e-4, gamma=1.0, n_beta=100.0, chains=4, draws=500, burn_in=100, batch_size=4)


@pytest.mark.parametrize("rank", [2, 6])
def test_quadratic_minimum_of_rank_r_has_llc_r_over_2(rank):
    h = torch.linspace(3.0, 5.0, rank)
    model = Quadratic(rotated_hessian(8, h))
    r = estimate_llc(model, torch.zeros(4, 2, dtype=torch.long), quadratic_loss, QUAD)
    a = QUAD.n_beta * h.double() + QUAD.gamma
    exact = float((QUAD.n_beta * h.double() / (2 * a * (1 - QUAD.epsilon * a / 4))).sum())
    assert abs(exact - rank / 2) < 0.05 * rank / 2  # these settings sit close to the n_beta -> infinity limit
    assert abs(r.estimate - exact) <= 3 * r.stderr, (r.estimate, r.stderr, exact)
    assert abs(r.estimate - rank / 2) <= 3 * r.stderr + abs(exact - rank / 2)
    assert r.stderr < 0.1 * rank / 2  # the stated error is small enough to tell rank 2 from rank 3
    assert r.healthy and r.frac_negative == 0.0 and r.init_loss == 0.0
    assert model.w.abs().max().item() == 0.0  # the model itself was not moved


def test_estimate_equals_devinterps_own_llc_without_burn_in():
    """With no burn-in our estimator is devinterp's compute_llc on the same samples (it averages burn-in too)."""
    from devinterp.slt.llc import llc as devinterp_llc

    model = Quadratic(rotated_hessian(4, torch.tensor([4.0, 4.0])))
    s = probes.LLCSettings(epsilon=3e-4, gamma=1.0, n_beta=100.0, chains=2, draws=60, batch_size=4, seed=3)
    ours = estimate_llc(model, torch.zeros(4, 2, dtype=torch.long), quadratic_loss, s, warn=False)
    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory() as tmp:
        theirs = devinterp_llc(model, probes.learning_coefficient._Rows(torch.zeros(4, 2, dtype=torch.long)), {},
                               lr=s.epsilon, n_beta=s.n_beta, localization=s.gamma, num_chains=2, num_draws=60,
                               batch_size=4, init_seed=3, loss_fn=quadratic_loss, device="cpu",
                               output_path=Path(tmp) / "s.zarr").load()
    assert ours.per_chain == pytest.approx(theirs.llc_per_chain.values.tolist(), rel=1e-5)


# ---- our HookedTransformers ------------------------------------------------------------------------

FAST = probes.LLCSettings(epsilon=1e-4, n_beta=20.0, chains=2, draws=40, batch_size=256)  # the mechanics, not the calibration


def test_memorised_model_has_larger_llc_than_init_and_is_repeatable(probe_run):
    task = probe_run.task
    init, memorised = probe_run.load(0), probe_run.load(probe_run.final_step)
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a = probes.llc(memorised, task, FAST, warn=False)
    after = torch.rand(3)
    assert torch.equal(before, after)  # the caller's random stream is left where it was
    b = probes.llc(memorised, task, FAST, warn=False)
    # seeded: repeatable up to float rounding (on this model's sizes torch's CPU kernels have rounded differently
    # from one call to the next, moving the estimate in its 8th digit), far below what another seed changes
    assert b.estimate == pytest.approx(a.estimate, rel=1e-6)
    assert b.per_chain == pytest.approx(a.per_chain, rel=1e-6)
    c = probes.llc(memorised, task, FAST, seed=1, warn=False)
    assert abs(c.estimate - a.estimate) > 1e-3 * abs(a.estimate)
    z = probes.llc(init, task, FAST, warn=False)
    assert math.isfinite(a.estimate) and a.estimate > 0
    assert a.estimate > 3 * z.estimate, (a.estimate, z.estimate)  # memorisation raises the effective complexity
    assert a.trace.shape == (2, 40) and a.batch_size == 256


def test_llc_runs_the_models_own_forward_so_hooks_are_seen():
    task = Task(p=23, frac_train=0.6, seed=0)
    model = build_model(preset("tiny"))
    s = probes.LLCSettings(chains=2, draws=3, batch_size=task.n_train)  # one full batch: init loss = train loss
    model.add_hook("blocks.0.mlp.hook_post", lambda act, hook: act * 0)
    hooked = probes.llc(model, task, s, warn=False).init_loss
    with torch.no_grad():
        logits = model(task.tokens()[task.train_idx])[:, -1]
    expected = torch.nn.functional.cross_entropy(logits.double(), task.labels()[task.train_idx]).item()
    model.reset_hooks()
    plain = probes.llc(model, task, s, warn=False).init_loss
    assert hooked == pytest.approx(expected, rel=1e-5)
    assert abs(hooked - plain) > 1e-4


def test_rows_end_with_the_answer_and_loss_is_the_answers_cross_entropy():
    task = Task(p=23, frac_train=0.6, seed=0)
    rows = task_rows(task, "test")
    assert rows.shape == (task.n_pairs - task.n_train, 4)
    assert torch.equal(rows[:, 3], task.labels()[task.test_idx]) and (rows[:, 2] == task.p).all()
    model = build_model(preset("tiny"))
    loss = answer_loss(model, rows)
    assert loss.shape == (len(rows), 3) and torch.equal(loss[:, 0], loss[:, 2])


def test_mismatch_and_bad_settings_are_refused_in_one_line():
    model = build_model(preset("tiny"))  # p = 23
    with pytest.raises(ProbeError, match=r"mod 53") as e:
        probes.llc(model, Task(p=53, frac_train=0.4))
    assert "\n" not in str(e.value)
    for bad, what in [(dict(epsilon=0), "epsilon"), (dict(chains=1), "chains"), (dict(split="val"), "split"),
                      (dict(gamma=-1.0), "gamma"), (dict(draws=2.5), "draws")]:
        with pytest.raises(ProbeError, match=what):
            probes.LLCSettings(**bad)
    with pytest.raises(ProbeError, match="unknown setting"):
        probes.llc(model, Task(p=23, frac_train=0.6), stepsize=1e-3)


def test_unhealthy_estimate_warns_and_says_why():
    """w* is not a minimum (the quadratic's minimum is elsewhere): SGLD walks downhill, the draws' loss falls below
    L(w*), and the estimate says so."""
    class Shifted(Quadratic):
        pass

    def shifted_loss(model, input_ids):
        d = model.w - 1.0
        return (0.5 * d @ model.H @ d).expand(input_ids.shape[0], input_ids.shape[1] - 1)

    model = Shifted(torch.eye(4) * 4.0)
    s = probes.LLCSettings(epsilon=3e-4, gamma=0.0, n_beta=100.0, chains=2, draws=60, batch_size=4)
    with pytest.warns(probes.LLCWarning, match="health check"):
        r = estimate_llc(model, torch.zeros(4, 2, dtype=torch.long), shifted_loss, s)
    assert not r.healthy and r.frac_negative > 0.9 and r.estimate < 0
    assert any("below the loss at the checkpoint" in p for p in r.problems)


def test_a_diverging_chain_is_an_error_not_a_number():
    task = Task(p=23, frac_train=0.6, seed=0)
    with pytest.raises(ProbeError, match="diverged.*lower epsilon") as e:
        probes.llc(build_model(preset("tiny")), task,
                   probes.LLCSettings(epsilon=1e-2, gamma=0.0, chains=2, draws=20, batch_size=64))
    assert "\n" not in str(e.value)


def test_missing_devinterp_is_one_line(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "devinterp.slt.llc", None)
    with pytest.raises(ProbeError, match=r"interp\[llc\]"):
        probes.llc(build_model(preset("tiny")), Task(p=23, frac_train=0.6))


# ---- whole runs ------------------------------------------------------------------------------------

def test_measure_run_adds_llc_columns_and_records_settings(probe_run, tmp_path):
    steps = [0, probe_run.final_step]
    base = probes.measure_run(probe_run, steps=steps, progress=False)
    with_llc = probes.measure_run(probe_run, steps=steps, progress=False, llc=FAST)
    assert list(with_llc.df.columns) == list(base.df.columns) + list(LLC_COLUMNS)
    # the other columns are untouched (to float rounding: two computations of the same forward)
    pd.testing.assert_frame_equal(with_llc.df[list(base.df.columns)], base.df, rtol=1e-9, atol=0)
    assert with_llc.protocol["llc"]["settings"] == FAST.to_dict()
    assert "llc" not in base.protocol and "llc" not in base.df.columns
    direct = probes.llc(probe_run.load(steps[-1]), probe_run.task, FAST, warn=False)
    assert with_llc.df["llc"].iloc[-1] == pytest.approx(direct.estimate, rel=1e-6)
    back = probes.load_measures(probes.save_measures(with_llc, tmp_path / "m"))
    assert back.protocol["llc"]["settings"]["epsilon"] == FAST.epsilon
    with pytest.raises(ProbeError, match="llc must be"):
        probes.measure_run(probe_run, steps=steps, progress=False, llc="yes")


def test_measure_series_adds_llc_to_checkpoints_trained_anywhere_even_without_a_group_basis():
    """Models passed in memory get the same llc columns as a run; a task with no group basis (a^2 + b^2) has no
    circuit measures, but its LLC is defined (it reads only the loss) and is kept."""
    s = probes.LLCSettings(chains=2, draws=4, batch_size=64)
    task = Task(op="a2+b2", p=23, frac_train=0.6, seed=0)
    models = [(0, build_model(preset("tiny"))), (10, build_model(preset("tiny", model_seed=5)))]
    with pytest.warns(probes.LLCWarning, match="measure_series: the LLC of 2 checkpoint"):
        m = probes.measure_series(models, task, llc=s)  # untrained models are no minimum: both fail a check
    assert set(LLC_COLUMNS) <= set(m.df.columns) and not set(LLC_COLUMNS) & set(m.not_applicable)
    assert "restricted_loss" in m.not_applicable  # the circuit columns are not applicable, the LLC is
    for (step, model), got in zip(models, m.df["llc"]):
        assert got == pytest.approx(probes.llc(model, task, s, warn=False).estimate, rel=1e-6), step
    assert m.df["llc"].iloc[0] != pytest.approx(m.df["llc"].iloc[1], rel=1e-3)  # each row is its own model's
    assert m.protocol["llc"]["settings"] == s.to_dict()
    assert "llc" not in probes.measure_series(models, task).protocol
    with pytest.raises(ProbeError, match=r"measure_series: llc must be") as e:
        probes.measure_series(models, task, llc=1)
    assert "\n" not in str(e.value)


def test_example_script_prints_a_larger_llc_after_memorising():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    r = run_script(root / "examples" / "llc.py", "--steps", "300", cwd=root)
    assert r.returncode == 0, r.stderr[-2000:]
    llc = [float(x) for x in re.findall(r"LLC (-?[\d.]+) \+-", r.stdout)]
    assert len(llc) == 2 and llc[1] > llc[0], r.stdout


def test_cli_measure_llc_writes_the_column_and_its_protocol(tmp_path, capsys):
    import json

    from interp.cli import main
    from interp.train import train

    run = train(preset("tiny", n_steps=100, save_every=50), tmp_path / "run", progress=False)
    out = ["--quiet", "--out", str(tmp_path / "m")]
    assert main(["measure", str(run.path), *out]) == 0
    assert "llc" not in probes.load_measures(tmp_path / "m").df.columns
    capsys.readouterr()
    # measures already there without the LLC are not "up to date" for --llc: they are computed again, with it
    assert main(["measure", str(run.path), "--llc", *out]) == 0
    assert "already there" not in capsys.readouterr().out
    m = probes.load_measures(tmp_path / "m")
    assert m.df["llc"].notna().all() and len(m.df) == 3
    meta = json.loads((tmp_path / "m" / "measures.json").read_text())
    assert meta["protocol"]["llc"]["settings"] == probes.LLCSettings().to_dict()
    # the same request again keeps them; other LLC settings would not
    assert main(["measure", str(run.path), "--llc", *out]) == 0
    assert "already there" in capsys.readouterr().out
    # a request without the LLC is served by measures that hold it (nothing computed is thrown away)
    assert m.same_measurement(run, llc=True) and m.same_measurement(run)
    assert main(["measure", str(run.path), *out]) == 0
    assert "already there" in capsys.readouterr().out
    assert probes.load_measures(tmp_path / "m").df["llc"].notna().all()
    assert not m.same_measurement(run, llc=probes.LLCSettings(seed=1))
    assert "Traceback" not in capsys.readouterr().err


def test_the_calibration_grid_records_a_diverging_setting_and_goes_on():
    task = Task(p=23, frac_train=0.6, seed=0)
    base = probes.LLCSettings(gamma=0.0, chains=2, draws=20, batch_size=64)
    grid = probes.llc_sweep(build_model(preset("tiny")), task, [1e-5, 1e-2], [20.0], base)
    assert list(grid.epsilon) == [1e-5, 1e-2] and list(grid.diverged) == [False, True]
    ok, bad = grid.iloc[0], grid.iloc[1]
    assert math.isfinite(ok.estimate) and math.isfinite(ok.trace_ratio) and math.isnan(bad.estimate)
    assert not bad.healthy


def _calibration_module():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "llc_calibration.py"
    spec = importlib.util.spec_from_file_location("llc_calibration", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_calibration_rule_picks_the_smallest_converged_step_with_a_margin():
    """A constructed grid: 1e-4 still climbs, 3e-4 has flattened, 1e-3 too, 3e-3 diverges at one step; at n_beta 50
    3e-4 has flattened but 1e-3 diverges (no margin)."""
    mod = _calibration_module()
    rows = []
    for step in (100, 200):
        for nb in (20.0, 50.0):
            for eps, est, ratio in ((1e-4, 10.0, 2.0), (3e-4, 20.0, 1.1), (1e-3, 22.0, 1.0), (3e-3, 50.0, 1.0)):
                div = (eps == 3e-3 and step == 200) or (nb == 50.0 and eps >= 1e-3)
                rows.append({"step": step, "epsilon": eps, "n_beta": nb, "estimate": math.nan if div else est,
                             "trace_ratio": math.nan if div else ratio, "healthy": not div, "diverged": div})
    table = pd.DataFrame(rows)
    best, why = mod.select(table)
    assert best == (3e-4, 20.0)
    assert "still climbs" in why[(1e-4, 20.0)][0] and "diverges at step(s) [200]" in why[(3e-3, 20.0)][0]
    assert "3e-3 diverges" not in why[(1e-3, 20.0)][0] and "0.003 diverges (no margin)" in why[(1e-3, 20.0)][0]
    assert "no margin" in why[(3e-4, 50.0)][0] and why[(3e-4, 20.0)] == []
    change = mod.change_to_next(table)
    assert change[(table.epsilon == 3e-4) & (table.n_beta == 20.0)].tolist() == pytest.approx([0.1, 0.1])
    # a health check failing anywhere rules the setting out
    table.loc[(table.epsilon == 3e-4) & (table.n_beta == 20.0) & (table.step == 200), "healthy"] = False
    best, why = mod.select(table)
    assert best is None and "health check fails at step(s) [200]" in why[(3e-4, 20.0)][0]


def test_the_calibration_example_writes_its_grid_and_names_a_choice(tmp_path):
    from pathlib import Path

    from interp.train import train

    root = Path(__file__).resolve().parents[2]
    run = train(preset("tiny", n_steps=100, save_every=50), tmp_path / "run", progress=False)
    out = tmp_path / "calib.csv"
    r = run_script(root / "examples" / "llc_calibration.py", run.path, "--steps", "50", "100", "--epsilons", "1e-4",
                   "1e-3", "--n-betas", "20", "--draws", "12", "--out", out, cwd=root)
    assert r.returncode == 0, r.stderr
    grid = pd.read_csv(out)
    assert len(grid) == 4 and set(grid.step) == {50, 100} and set(grid.epsilon) == {1e-4, 1e-3}
    assert "selected:" in r.stdout and "epsilon 0.0001, n_beta 20:" in r.stdout
    assert "change_to_next" in grid.columns and grid.change_to_next.isna().sum() == 2  # none above the largest
    again = run_script(root / "examples" / "llc_calibration.py", out, "--rule-only", cwd=root)
    assert again.returncode == 0, again.stderr
    assert again.stdout.rstrip().splitlines()[-3:] == r.stdout.rstrip().splitlines()[-3:]  # same rule, same choice


def test_the_committed_calibration_grids_select_the_default_settings():
    """The calibration of docs/science.md 3.9, from the committed grids: each run's choice, the joint one is the
    default, and the numbers quoted at it."""
    from pathlib import Path

    select = _calibration_module().select
    d = Path(__file__).resolve().parents[2] / "probes" / "llc-calibration"
    small = pd.read_csv(d / "small-frac_train=0.4,seed=0.csv")
    nanda = pd.read_csv(d / "nanda2023-p113-seed0.csv")
    passes = lambda grid: sorted(k for k, why in select(grid)[1].items() if not why)  # noqa: E731
    assert passes(small) == [(1e-3, 10.0), (1e-3, 20.0)] and passes(nanda) == [(1e-3, 10.0)]
    joint = pd.concat([small, nanda.assign(step=nanda.step + 10**6)], ignore_index=True)
    default = probes.LLCSettings()
    assert select(joint)[0] == (default.epsilon, default.n_beta) == (1e-3, 10.0)
    assert (default.gamma, default.chains, default.draws, default.burn_in) == (100.0, 2, 100, 0)
    at = nanda[(nanda.epsilon == 1e-3) & (nanda.n_beta == 10.0)].set_index("step").estimate
    assert [round(at[s], 1) for s in (1200, 7000, 20000)] == [288.7, 138.6, 64.4]
    at = small[(small.epsilon == 1e-3) & (small.n_beta == 10.0)].set_index("step").estimate
    assert [round(at[s], 1) for s in (300, 1500, 6000)] == [78.1, 24.3, 17.4]
