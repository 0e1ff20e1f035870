"""Train `tiny` with every training knob set, interrupt it, resume it, and check it is the uninterrupted run.

    python examples/training_knobs.py [OUT_DIR] [--steps N]

The knobs are RunConfig fields (the same as `interp train --preset tiny --set optimiser=adam ...`): Adam without
weight decay, a cosine learning-rate decay, minibatches of 64 pairs, LayerNorm and the Grokfast EMA gradient
filter. A few seconds on 2 CPU cores.
"""

import argparse
import tempfile
from pathlib import Path

from interp import preset
from interp.train import train

ap = argparse.ArgumentParser()
ap.add_argument("out", nargs="?", help="directory for the two runs (default: a temporary one)")
ap.add_argument("--steps", type=int, default=100)
args = ap.parse_args()
out = Path(args.out or tempfile.mkdtemp(prefix="interp-knobs-"))

cfg = preset("tiny", n_steps=args.steps, save_every=args.steps // 4, optimiser="adam", weight_decay=0.0,
             lr_schedule="cosine", batch_size=64, layer_norm=True, grad_filter="ema", grad_filter_alpha=0.98,
             grad_filter_lambda=2.0)
run = train(cfg, out / "uninterrupted", progress=False)
for key, line in run.meta["protocol"].items():
    print(f"{key}: {line}")
final = run.metrics.iloc[-1]
print(f"{run.path}: train loss {final.train_loss:.3g}, test loss {final.test_loss:.3g} at step {int(final.step)}")


class Stop(Exception):
    pass


def stop_at(step):
    def hook(t, row):
        if t == step:
            raise Stop
    return hook


try:  # stop it part-way, as a Ctrl-C or a killed job would
    train(cfg, out / "resumed", progress=False, on_step=stop_at(args.steps * 3 // 5))
except Stop:
    pass
resumed = train(None, out / "resumed", resume=True, progress=False)
same = all(resumed.checkpoint_path(s).read_bytes() == run.checkpoint_path(s).read_bytes() for s in run.steps)
print(f"resumed run identical to the uninterrupted one at all {len(run.steps)} checkpoints: {same}")
