"""The local learning coefficient (LLC) of a model before and after it memorises, with its health checks.

    pip install 'interp[llc]'
    python examples/llc.py [--steps 400]

Trains the `small` preset (p = 53) for --steps steps into a temporary directory (seconds), then estimates the LLC
of the initial and the final checkpoint with devinterp's SGLD sampler at the default settings.
"""

import argparse
import tempfile

from interp import preset, probes
from interp.train import train

ap = argparse.ArgumentParser()
ap.add_argument("--steps", type=int, default=400)
args = ap.parse_args()

run = train(preset("small", n_steps=args.steps, save_every=args.steps), tempfile.mkdtemp(prefix="interp-llc-"),
            progress=False)
for step in (0, run.final_step):
    r = probes.llc(run.load(step), run.task, warn=False)
    checks = "healthy" if r.healthy else "; ".join(r.problems)
    print(f"step {step}: LLC {r.estimate:.2f} +- {r.std:.2f} across {len(r.per_chain)} chains, "
          f"{r.frac_negative:.0%} of draws below L(w*), {r.seconds:.1f} s: {checks}")
print("settings:", probes.LLCSettings().to_dict())
