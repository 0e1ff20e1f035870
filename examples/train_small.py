"""Train the `small` preset (p = 53) until it groks, then measure every checkpoint and find the phases.

    python examples/train_small.py [OUT_DIR] [--steps N]

It stops 200 steps after test accuracy first reaches 0.99 (near step 1,500-1,600; the step moves by up to ~20 %
from one machine to another, as float rounding does), or at --steps (default 3000). About a minute on 2 CPU cores. The same as `interp train --preset small --out OUT_DIR` followed by
`interp measure OUT_DIR`, written out so you can change it.
"""

import argparse
import tempfile

from interp import preset, probes
from interp.train import train

ap = argparse.ArgumentParser()
ap.add_argument("out", nargs="?", help="run directory (default: a temporary one)")
ap.add_argument("--steps", type=int, default=3000, help="at most this many steps (default 3000)")
args = ap.parse_args()
out = args.out or tempfile.mkdtemp(prefix="interp-small-")

cfg = preset("small", n_steps=args.steps, save_every=100, stop_test_acc=0.99, stop_after_steps=200)
run = train(cfg, out, progress=True)
final = run.metrics.dropna().iloc[-1]
print(f"{run.path}: test accuracy {final.test_acc:.3f}, test loss {final.test_loss:.2e} at step {int(final.step)}")

measures = probes.measure_run(run, progress=False)
df = measures.df
print(f"key frequencies (from the final checkpoint): {measures.key_frequencies}")
print(df[["step", "train_loss", "test_loss", "restricted_loss", "excluded_loss", "gini_W_E", "sum_sq_weights"]]
      .iloc[:: max(1, len(df) // 8)].to_string(index=False, float_format=lambda x: f"{x:.3g}"))
print(probes.phases(df))
