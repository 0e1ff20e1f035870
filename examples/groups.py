"""Group composition measured in the group's irreps, and clock vs pizza on the two shipped addition runs.

    python examples/groups.py [OUT_DIR] [--op S4] [--frac-train 0.9] [--lr 0.01] [--steps 8000]

Trains the `small` preset on a * b in a finite group (default the symmetric group S4, 576 pairs; docs/groups.md gives
this run's numbers: test accuracy 0.98, key irreps 2a and 3b), measures
every checkpoint in the group's real irreps (Chughtai et al. 2023: key irreps, restricted and excluded loss, the
share of the logits in the key characters, neurons per irrep, Gini of the irrep norms) and saves the measures. Then
it gives the clock / pizza diagnostics of Zhong et al. 2023 with the verdict (docs/groups.md) for the final checkpoint
of the shipped standard-attention run (a clock) and for two checkpoints of the shipped constant-attention run: step
200, where it first solves the task (a pizza), and the final step 1200 (neither: it drifted).
"""

import argparse
import tempfile
from pathlib import Path

from interp import Run, preset, probes
from interp.irreps import real_irreps
from interp.probes import clock_pizza
from interp.train import train

ROOT = Path(__file__).resolve().parent.parent
ap = argparse.ArgumentParser()
ap.add_argument("out", nargs="?", help="folder for the run (default: a temporary one)")
ap.add_argument("--op", default="S4", help="the group: C<n>, D<n> or S<n> (n <= 5)")
ap.add_argument("--frac-train", type=float, default=0.9)
ap.add_argument("--lr", type=float, default=0.01)
ap.add_argument("--steps", type=int, default=8000)
args = ap.parse_args()
out = Path(args.out or tempfile.mkdtemp(prefix="interp-groups-"))

cfg = preset("small", op=args.op, frac_train=args.frac_train, lr=args.lr, n_steps=args.steps,
             save_every=max(args.steps // 40, 1), name=f"small-{args.op}")
print(f"{args.op}: {cfg.p} elements, irreps " + ", ".join(f"{r.name} (dim {r.dim})" for r in real_irreps(args.op)))
run = train(cfg, out / args.op, progress=False)
m = probes.measure_run(run, progress=False)
probes.save_measures(m, out / args.op / "measures")
final = m.df.iloc[-1]
print(f"test accuracy {final.test_acc:.3f}; key irreps {m.key_irreps}")
print(f"irrep restricted loss {final.irrep_restricted_loss:.4g}, irrep excluded loss {final.irrep_excluded_loss:.4g}, "
      f"character share {final.char_explained:.3f}")
print(f"neurons in one irrep {final.frac_neurons_irrep:.3f} (in a key irrep {final.frac_neurons_key_irrep:.3f}); "
      f"Gini of irrep norms W_E {final.gini_irrep_W_E:.3f}, W_L {final.gini_irrep_W_L:.3f}")

for name, steps in (("nanda2023-p113-seed0", [20_000]), ("constant-attention-p59", [200, 1200])):
    shipped = Run(ROOT / "checkpoints" / name)
    for step in steps:
        r = clock_pizza.clock_or_pizza(shipped.load(step), shipped.task)
        print(f"{name} step {step} (attention rate {shipped.config.attention_rate:g}): gradient symmetricity "
              f"{r.gradient_symmetricity:.3f}, distance irrelevance {r.distance_irrelevance:.3f}: {r.verdict}")
print(f"run and measures in {out / args.op}")
