"""Zhong et al.'s model B (constant attention, the input [a, b]) trained small, and its clock / pizza diagnostics.

    python examples/pizza.py [OUT_DIR] [--p 31] [--steps 600] [--seed 0]
    python examples/pizza.py --run RUN_DIR        # the diagnostics of a run trained already (e.g. the full model B)

Trains the `small` preset at p = 31 on 80 % of the pairs with the settings of the paper's model B as its code trains
it: attention rate 0 with the positions summed (`constant_attention="sum"`), no '=' token (`eq_sign=False`: the
logits are read at b), weight decay 2. Then it prints, for every checkpoint, gradient symmetricity, distance
irrelevance, the accuracy on all pairs and the verdict of the rule in docs/groups.md. About 30 s on 2 CPU cores.
"""

import argparse
import tempfile
from pathlib import Path

from interp import Run, preset
from interp.probes import clock_pizza
from interp.train import train

ap = argparse.ArgumentParser()
ap.add_argument("out", nargs="?", help="folder for the run (default: a temporary one)")
ap.add_argument("--p", type=int, default=31)
ap.add_argument("--steps", type=int, default=600)
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--run", help="measure this run instead of training one")
args = ap.parse_args()

if args.run:
    run = Run(args.run)
else:
    out = Path(args.out or tempfile.mkdtemp(prefix="interp-pizza-"))
    cfg = preset("small", p=args.p, frac_train=0.8, weight_decay=2.0, attention_rate=0.0, constant_attention="sum",
                 eq_sign=False, n_steps=args.steps, save_every=max(args.steps // 12, 1), model_seed=args.seed,
                 data_seed=args.seed, name="modelB-small")
    run = train(cfg, out / f"modelB-p{args.p}-seed{args.seed}", progress=False)
c = run.config
print(f"{run.path}: {run.task.description}, input {run.task.input_format}, attention rate {c.attention_rate:g} "
      f"({c.constant_attention}), weight decay {c.weight_decay:g}")
df = clock_pizza.clock_pizza_series(run)
print("step  gradient_symmetricity  distance_irrelevance  accuracy  verdict")
for row in df.itertuples():
    print(f"{row.step:>5}  {row.gradient_symmetricity:>21.4f}  {row.distance_irrelevance:>20.4f}  {row.accuracy:>8.4f}  "
          f"{row.verdict}")
solved = df[df["accuracy"] >= clock_pizza.THRESHOLDS["accuracy_min"]]
if solved.empty:
    print("not solved at any checkpoint (accuracy on all pairs < 0.99): no algorithm to name yet")
else:
    first, last = solved.iloc[0], df.iloc[-1]
    print(f"first solved at step {int(first.step)}: {first.verdict}; final step {int(last.step)}: {last.verdict}")
