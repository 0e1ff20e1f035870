"""A 2 x 2 sweep of the `tiny` preset in seconds: two data fractions x two seeds, trained, measured, tabulated.

    python examples/sweep_small.py [OUT_DIR]        # default: sweeps/example (rerun: resumes, trains nothing)

The same sweep from the command line: write the spec below to a TOML file (see examples/sweeps/small_grid.toml)
and run `interp sweep SPEC --out DIR`.
"""

import sys
from pathlib import Path

from interp import sweep

SPEC = {
    "sweep": {"preset": "tiny", "n_steps": 100, "save_every": 50},
    "grid": {"frac_train": [0.5, 0.7]},
    "seeds": {"both": 2},  # data_seed = model_seed = 0, 1
}


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("sweeps") / "example"
    resume = (out / "sweep.json").exists()
    s = sweep.run(SPEC, out, resume=resume, workers=2, progress=False)  # worker processes: keep the __main__ guard
    print(s)
    print(f"results.csv: {len(s.results)} rows (run x checkpoint), columns {list(s.results.columns[:6])} ...")
    final = s.results[s.results["step"] == s.results["step"].max()]
    for frac, group in final.groupby("frac_train"):
        print(f"frac_train {frac}: final test loss {group['test_loss'].mean():.3f} (mean of {len(group)} seeds), "
              f"test accuracy {group['test_acc'].mean():.3f}")
    print(s.summary[["run", "status", "grokked", "key_frequencies"]].to_string(index=False))


if __name__ == "__main__":
    main()
