"""Does the local learning coefficient announce the transition before test accuracy? One cell of the shipped
emergence sweep retrained, the LLC on its checkpoints (`interp sweep-llc`), the lead analysis with llc beside
restricted loss and the controls, and our LLC beside the shipped one (sweeps/emergence-dense-llc).

    pip install 'interp[llc]'
    python examples/llc_emergence.py [OUT_DIR] [--seeds 3] [--steps 2500]

Trains `small` (a + b mod 53, d_mlp 256) at 45 % of the pairs with the shipped sweep's settings (checkpoints every 25
steps to 300, every 50 to 2,000, then every 100), for --seeds seeds and --steps steps; estimates the LLC at every
fourth checkpoint at the default settings (as the shipped table does) into OUT_DIR/llc; prints each measure's
median lead over t90 (test accuracy first >= 0.9) with its 95 % seed-bootstrap interval beside the controls (train
loss, test loss, the clock). Training is deterministic on one machine, so on the machine that made the shipped table
each LLC equals it at the same run and step; on another, within the cross-host floor (benchmarks/host_floor.py:
9e-8 relative at step 0, up to 5e-3 once trained). About 6 minutes on 2 cores at the defaults.
"""

import argparse
import math
from pathlib import Path

import pandas as pd

from interp import sweep
from interp.emergence.leads import lead_analysis
from interp.sweep.llc import sweep_llc

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "sweeps" / "emergence-dense-llc" / "results.csv"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", type=Path, default=Path("sweeps") / "llc-example")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=2500)
    args = ap.parse_args()
    spec = {"sweep": {"preset": "small", "n_steps": args.steps, "eval_every": 10, "save_every": 100,
                      "save_steps": "0-300:25,300-2000:50", "measures": "all", "top_k": 4},
            "base": {"d_mlp": 256},
            "grid": {"frac_train": [0.45]},
            "seeds": {"both": args.seeds}}
    trained = args.out / "runs"
    s = sweep.run(None, trained, resume=True, progress=False) if (trained / "sweep.json").is_file() else \
        sweep.run(spec, trained, progress=False)
    print(f"{trained}: {len(s.statuses)} runs, {len(s.results)} checkpoint rows")
    tables = sweep_llc(trained, args.out / "llc", every=4)
    leads = lead_analysis(tables, measures=["llc", "restricted_loss"], n_boot=500)
    print(f"\nleads over t90 at q = {leads.q} ({leads.counts['runs']} runs; "
          f"{leads.counts['censored (event not reached)']} did not reach t90)")
    for _, row in leads.summary.iterrows():
        lo, hi = row["ci_low"], row["ci_high"]
        ci = f"[{lo:.0f}, {hi:.0f}]" if math.isfinite(lo) and math.isfinite(hi) else "[-]"
        print(f"  {row['metric']:16} ({row['role']}): median lead {row['median_lead']:.0f} steps {ci}: "
              f"{row['verdict']}")
    if SHIPPED.is_file():
        ours = tables.results.dropna(subset=["llc"]).set_index(["run", "step"])["llc"]
        shipped = pd.read_csv(SHIPPED).dropna(subset=["llc"]).set_index(["run", "step"])["llc"]
        both = ours.index.intersection(shipped.index)
        if len(both):
            worst = float(((ours[both] - shipped[both]).abs() / shipped[both].abs()).max())
            print(f"\nLLC here and in {SHIPPED.relative_to(ROOT)}: {len(both)} run x step pairs in common, largest "
                  f"relative difference {worst:.1e}")


if __name__ == "__main__":
    main()
