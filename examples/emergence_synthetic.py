"""The emergence protocol on synthetic sweeps whose answer is known, in seconds and without training.

    python examples/emergence_synthetic.py [OUT_DIR]

1. A sweep shaped like ``sweeps/emergence-dense`` (data fraction x 6 seeds, events in summary.csv, causal
   restricted/excluded loss), where by construction restricted loss moves half-way to t90 after
   memorisation (it truly predicts) and the fraction of neurons clustered moves only after the event. The
   protocol (docs/emergence-protocol.md) should say: restricted loss leads the controls and forecasts t90
   better than the config baseline; the clustered fraction does neither.
2. Protocol v2's information test and predictability claims on a sweep where ``anticipating`` moves 500 steps
   before each run's t90, ``clock_like`` moves at step ~1500 in every run, and ``test_loss_copy`` is test loss
   again: the first is "informative", the second "not informative", and the copy "adds nothing within the margin".
3. Two scale sweeps: a true mirage (a smooth log-probability pushed through a threshold: accuracy jumps,
   the model does not) and a real jump (both jump together). The metric question should tell them apart.

With OUT_DIR, the first sweep is written there as a sweep directory with its report (OUT_DIR/report/index.html).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from interp import emergence
from interp.emergence.synthetic import information_sweep, protocol_sweep, scale_sweep, write_sweep

N_BOOT = 300  # the protocol's 2000 gives the same verdicts; fewer keeps the example fast

tables, truth = protocol_sweep(frac_train=(0.3, 0.31, 0.32, 0.33, 0.35), seeds=range(6))
la = emergence.lead_analysis(tables, n_boot=N_BOOT)
print("Leads over t90 at q = 0.25 (steps), beside the controls:")
cols = ["metric", "role", "median_lead", "ci_low", "ci_high", "verdict"]
with pd.option_context("display.width", 200, "display.max_colwidth", 70):
    print(la.summary[cols].to_string(index=False, float_format=lambda v: f"{v:.0f}"))

fc = emergence.forecasts(tables, n_boot=N_BOOT)
print("\nForecasting t90 from the past (leave one seed out; MAE ratio to the config baseline):")
print(fc.verdicts[["measure", "verdict", "n_evaluated", "ratio", "ratio_low", "ratio_high"]].to_string(
    index=False, float_format=lambda v: f"{v:.2f}"))

info_tables, _ = information_sweep(seeds=range(15))
measures = ["anticipating", "clock_like", "test_loss_copy"]
info = emergence.information(info_tables, measures=measures, n_boot=N_BOOT, n_perm=N_BOOT)
print("\nInformation about t90 (v2): within-cell rank correlation, Cox LR beyond config + clocks:")
print(info.table[["measure", "rho", "rho_low", "rho_high", "p_perm", "p_lr", "verdict"]].to_string(
    index=False, float_format=lambda v: f"{v:.3g}"))
pred = emergence.predictability(info_tables, look_times=(500, 1000), measures=measures, n_boot=N_BOOT)
b = pred.table[pred.table["claim"] == "b"]
print("\n(b) Does a measure add to test loss + clock? (MAE ratio, margin 0.15)")
print(b[["T", "forecaster", "ratio", "ratio_low", "ratio_high", "verdict"]].to_string(
    index=False, float_format=lambda v: f"{v:.2f}"))

print("\nThe metric question across frac_train at step 6000:")
for kind in ("mirage", "real"):
    a = emergence.metric_question(scale_sweep(kind), "frac_train", 6000, n_boot=N_BOOT)
    acc, logp = a.fits["test_acc"], a.fits["test_logp"]
    print(f"  built-in {kind}: verdict {a.verdict!r}: accuracy width {acc.width:.3f}, log-prob width "
          f"{logp.width:.3f}, R = {a.ratio:.2f} [{a.ratio_low:.2f}, {a.ratio_high:.2f}]")

if len(sys.argv) > 1:
    from interp.viz.sweep_report import write_sweep_report

    out = Path(sys.argv[1])
    write_sweep(tables, out)
    print(write_sweep_report(out, out / "report", n_boot=N_BOOT))
