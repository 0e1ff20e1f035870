"""Training speed on TransformerLens 3.9 against 4.x, side by side: `interp train` of the nanda2023 config.

Runs the same training (``--steps`` steps of the nanda2023 preset, full batch, one torch thread) in this
interpreter and in ``--other`` (a Python whose TransformerLens is the other major version), alternating
``--rounds`` times so machine noise hits both alike; prints each version's median seconds per step and the
ratio, and checks that the two runs' final checkpoints are bit-identical.

    python benchmarks/tl_versions.py --other .venv-tl4/bin/python [--steps 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

ONE = """
import json, sys, time, warnings
warnings.simplefilter("ignore")
import torch
torch.set_num_threads(1)
from interp import tl
from interp.config import preset
from interp.train import train
cfg = preset("nanda2023", n_steps=int(sys.argv[2]), save_every=0, save_steps=())
t0 = time.perf_counter()
run = train(cfg, sys.argv[1], progress=False, threads=1)
dt = time.perf_counter() - t0
print(json.dumps({"tl": tl.TL_VERSION, "s_per_step": dt / cfg.n_steps, "final": run.final_step}))
"""


def once(python: str, out: Path, steps: int) -> dict:
    proc = subprocess.run([python, "-c", ONE, str(out), str(steps)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    if proc.returncode:
        raise SystemExit(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--other", required=True)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.rounds):
            for i, py in enumerate((sys.executable, a.other)):
                res = once(py, Path(tmp) / f"r{r}-{i}", a.steps)
                times.setdefault(res["tl"], []).append(res["s_per_step"])
        from safetensors.torch import load_file

        last = f"step_{a.steps:06d}.safetensors"
        same = all((load_file(Path(tmp) / "r0-0" / last)[k] == v).all()
                   for k, v in load_file(Path(tmp) / "r0-1" / last).items())
    (v1, t1), (v2, t2) = sorted(times.items())
    m1, m2 = statistics.median(t1), statistics.median(t2)
    print(f"TransformerLens {v1}: {m1 * 1e3:.2f} ms/step; {v2}: {m2 * 1e3:.2f} ms/step; "
          f"ratio {v2}/{v1} = {m2 / m1:.3f} (median of {a.rounds}, {a.steps} steps, 1 thread); "
          f"final checkpoints bit-identical: {bool(same)}")


if __name__ == "__main__":
    main()
