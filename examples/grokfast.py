"""One cell of the shipped Grokfast sweep, reproduced: `small` at 45 % of the pairs, the three arms that decide the
question (AdamW baseline, AdamW + Grokfast EMA lambda 2, AdamW with lr x3 = 1 + lambda, no filter) on the same
seeds, then the comparison of docs/grokfast-protocol.md and the shipped table's event steps beside ours.

    python examples/grokfast.py [OUT_DIR] [--seeds N] [--steps N]   # default: sweeps/grokfast-example, 2 seeds

A run stops 1,000 steps after test accuracy first reaches 0.99 (else at 6,000 steps, or at --steps). Training is
deterministic on one machine, so on the machine that made sweeps/grokfast-small each run's events equal the
shipped ones (a run cut short by --steps still matches on the events it reached). Another machine rounds floats
differently and training amplifies it: measured (benchmarks/host_floor.py), t_mem moves by at most 2 steps but
t90 and t99 by up to 550 steps, which is why the answer rests on many seeds. 2 seeds take about 3 minutes on 2
cores.
"""

import argparse
from pathlib import Path

import pandas as pd

from interp import sweep
from interp.emergence.grokfast import compare

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "sweeps" / "grokfast-small"
EVENTS = ["t_mem", "t90", "t99"]


def spec(seeds: int, steps: int) -> dict:
    return {
        "sweep": {"preset": "small", "n_steps": steps, "eval_every": 10, "save_every": 100, "measures": "none"},
        "base": {"d_mlp": 256, "frac_train": 0.45, "stop_test_acc": 0.99, "stop_after_steps": 1000},
        "zip": [{"lr": [0.003, 0.003, 0.009], "grad_filter": ["none", "ema", "none"],
                 "grad_filter_lambda": [2.0, 2.0, 2.0]}],
        "seeds": {"both": seeds},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", type=Path, default=Path("sweeps") / "grokfast-example")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=6000)
    args = ap.parse_args()
    resume = (args.out / "sweep.json").exists()
    sweep.run(spec(args.seeds, args.steps), args.out, resume=resume, workers=2, progress=False)
    c = compare(args.out, n_boot=500)
    print(c.medians[c.medians["event"] == "t99"][["arm", "n_runs", "n_reached", "median", "ci_low", "ci_high"]]
          .to_string(index=False))
    for line in c.answer_lines():
        print(line)
    if SHIPPED.is_dir():  # the same runs in the shipped sweep: their events, side by side
        shipped = compare(SHIPPED, n_boot=100).runs
        shipped = shipped[shipped["frac_train"] == 0.45]
        ours = c.runs[["arm", "seed", *EVENTS]]
        both = ours.merge(shipped[["arm", "seed", *EVENTS]], on=["arm", "seed"], suffixes=("", "_shipped"))
        with pd.option_context("display.width", 200):
            print("events here and in sweeps/grokfast-small:")
            print(both.to_string(index=False))


if __name__ == "__main__":
    main()
