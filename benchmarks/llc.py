"""Cost of the local learning coefficient per checkpoint, beside the rest of the measures of that checkpoint.

For each model (the `small` preset, p = 53, and `nanda2023`, p = 113) and a few checkpoints: seconds of
``probes.measure_model`` (every other measure, one forward) and of ``probes.llc`` at the default settings, and
their ratio. The import of devinterp (it loads transformers) is timed once, apart.

    python benchmarks/llc.py [--checkpoints 3] [--small-steps 400] [--threads 1]

nanda2023 uses checkpoints/nanda2023-p113-seed0 (the shipped run); `small` is trained for --small-steps steps into
a temporary directory (about a minute on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "checkpoints" / "nanda2023-p113-seed0"


def _time(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def bench(run, n: int, settings) -> list[tuple[int, float, float, float]]:
    from interp import probes

    keys = probes.key_frequencies(run.load(), run.task) or probes.top_frequencies(run.load(), run.task, 3)
    steps = run.steps[:: max(1, len(run.steps) // n)][:n]
    rows = []
    for step in steps:
        model = run.load(step)
        t_rest, _ = _time(lambda m=model: probes.measure_model(m, run.task, keys))
        t_llc, r = _time(lambda m=model: probes.llc(m, run.task, settings, warn=False))
        rows.append((step, t_rest, t_llc, r.estimate))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoints", type=int, default=3)
    ap.add_argument("--small-steps", type=int, default=400)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from interp import Run, probes
    from interp.config import preset
    from interp.train import train

    t_import, _ = _time(probes.learning_coefficient.devinterp_modules)
    settings = probes.LLCSettings()
    print(f"import devinterp (and transformers): {t_import:.1f} s, once per process")
    print(f"LLC settings: {settings.to_dict()}; torch threads {args.threads}")
    with tempfile.TemporaryDirectory() as tmp:
        runs = [("small", train(preset("small", n_steps=args.small_steps, save_every=50), Path(tmp) / "small",
                                progress=False))]
        if SHIPPED.is_dir():
            runs.append(("nanda2023", Run(SHIPPED)))
        print(f"{'model':10} {'step':>6} {'other measures s':>17} {'llc s':>8} {'llc / other':>12} {'llc':>8}")
        for name, run in runs:
            for step, t_rest, t_llc, est in bench(run, args.checkpoints, settings):
                print(f"{name:10} {step:6d} {t_rest:17.3f} {t_llc:8.2f} {t_llc / t_rest:12.0f} {est:8.2f}")


if __name__ == "__main__":
    main()
