"""Checkpoints trained elsewhere: the folder another codebase leaves, and how interp reads it.

    python examples/from_elsewhere.py OUT_DIR [--run RUN_DIR] [--every N]

Writes into OUT_DIR what a training loop outside interp typically saves: plain TransformerLens state dicts
(``checkpoint_STEP.safetensors``), a ``config.json`` of HookedTransformerConfig fields, and a ``metrics.csv`` with
rows only at the checkpoints (test values at every other one). The models are every N-th checkpoint of RUN_DIR
and its final one (default: the shipped run, every 5th of its 50 checkpoints and the final one: 11), so the
numbers can be checked against the run's own.
Nothing in OUT_DIR says which task the models learnt; give it to interp:

    interp measure OUT_DIR --task add --p 113 --out OUT_DIR/measures
    interp report OUT_DIR --task add --p 113 --out report/elsewhere

(the seeded split, --frac-train 0.3 --seed 0, is the default and the one the shipped run trained on).
"""

import argparse
import csv
import json
from pathlib import Path

from interp import Run
from interp.files import save_tensors

ap = argparse.ArgumentParser()
ap.add_argument("out", help="folder to write (created; must not hold checkpoints already)")
ap.add_argument("--run", default="checkpoints/nanda2023-p113-seed0", help="run whose checkpoints to export")
ap.add_argument("--every", type=int, default=5, help="export every N-th checkpoint (default 5)")
args = ap.parse_args()

run = Run(args.run)
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
if list(out.glob("*.safetensors")):
    raise SystemExit(f"{out}: already holds checkpoints; choose an empty folder")
steps = run.steps[::max(1, args.every)]
if steps[-1] != run.final_step:
    steps.append(run.final_step)
kwargs = {k: v for k, v in run.hooked_config_kwargs.items() if k != "device"}
(out / "config.json").write_text(json.dumps(kwargs, indent=1) + "\n")
for step in steps:
    save_tensors(out / f"checkpoint_{step}.safetensors", run.state_dict(step))
metrics = run.metrics.set_index("step")
with open(out / "metrics.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["step", "train_loss", "train_acc", "test_loss", "test_acc"])
    for i, step in enumerate(steps):
        row = metrics.loc[step]
        test = [repr(float(row.test_loss)), repr(float(row.test_acc))] if i % 2 == 0 and row.notna().all() else ["", ""]
        w.writerow([step, repr(float(row.train_loss)), repr(float(row.train_acc)), *test])
print(f"{out}: config.json, metrics.csv and {len(steps)} state dicts (steps {steps[0]} to {steps[-1]}) of "
      f"{run.task.description}")
