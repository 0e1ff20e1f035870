"""Training-step speed: the reference loop against ours, thread counts, and `interp train` against its bare step.

1. (a) reference: the full HookedTransformer forward on all positions, ``model(tokens)[:, -1]``,
   as in the public grokking demo; (b) ours: the exact last-position forward that training uses
   (``interp.model.training_logits``, the fast path when no hook is attached).
   Both use the float64 loss and AdamW of the `nanda2023` preset and start from the same init, at the
   default thread count (:func:`interp.threads.default_threads`). Steps alternate a/b so machine noise hits
   both alike. Prints both medians, the ratio, and the largest loss difference over the steps.
2. Our step at every thread count from 1 to the physical cores (and the default's), in interleaved blocks:
   the ratio of the default's time to the best one's, and of one thread's (the old default) to the best.
3. `interp train` (the CLI's own main, in this process, default threads) for ``--train-steps`` steps: its
   wall time against that many bare steps at the same thread count (target: within 1.1x).

    python benchmarks/train_step.py [--steps 20] [--preset nanda2023] [--train-steps 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from interp import threads
from interp.cli import main as cli_main
from interp.config import preset
from interp.model import build_model, float64_cross_entropy, training_logits
from interp.tasks import Task

BLOCK = 5  # steps in a row at one thread count (switching the OpenMP team every step would be timed too)


def _optimiser(model, cfg):
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr,
                             betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)


def _step(model, opt, forward, labels, cfg, step: int) -> tuple[float, float]:
    """One full-batch training step as interp.train takes it; (seconds, loss)."""
    for g in opt.param_groups:
        g["lr"] = cfg.lr * min(step / cfg.warmup_steps, 1.0)
    t0 = time.perf_counter()
    loss = float64_cross_entropy(forward(model), labels)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return time.perf_counter() - t0, loss.item()


def thread_counts(steps: int, cfg, tokens, labels, counts: list[int]) -> dict[int, float]:
    """Median seconds per step of our training step at each thread count, in interleaved blocks."""
    state = {n: (build_model(cfg), []) for n in counts}
    state = {n: (m, _optimiser(m, cfg), t) for n, (m, t) in state.items()}
    n_blocks = -(-steps // BLOCK) + 1  # the first block of each count is warm-up
    for block in range(n_blocks):
        for n in counts:
            model, opt, times = state[n]
            torch.set_num_threads(n)
            for i in range(BLOCK):
                dt, _ = _step(model, opt, lambda m: training_logits(m, tokens), labels, cfg, block * BLOCK + i)
                if block:
                    times.append(dt)
    return {n: statistics.median(t) for n, (_, _, t) in state.items()}


def interp_train_seconds(preset_name: str, n_steps: int) -> float:
    """Wall time of `interp train --preset P --steps N --quiet` (default threads), run through the CLI's main."""
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        assert cli_main(["train", "--preset", preset_name, "--steps", str(n_steps), "--quiet",
                         "--out", str(Path(tmp) / "run")]) == 0
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--preset", default="nanda2023")
    ap.add_argument("--train-steps", type=int, default=200, help="steps of the `interp train` timing (0: skip)")
    args = ap.parse_args()
    default = threads.default_threads()
    print(f"load average {os.getloadavg()[0]:.2f} on {threads.physical_cores()} physical cores; "
          f"default threads {default} (interp.threads.default_threads)")
    torch.set_num_threads(default)

    cfg = preset(args.preset)
    task = Task.from_config(cfg)
    tokens, labels = task.tokens()[task.train_idx], task.labels()[task.train_idx]
    loops = {
        "reference (model(tokens)[:, -1])": lambda m: m(tokens)[:, -1],
        "ours (training_logits)": lambda m: training_logits(m, tokens),
    }
    state = {}
    for name in loops:
        model = build_model(cfg)
        state[name] = (model, _optimiser(model, cfg), [], [])

    for step in range(args.steps + 2):  # two warm-up steps are not timed
        for name, forward in loops.items():
            model, opt, times, losses = state[name]
            dt, loss = _step(model, opt, forward, labels, cfg, step)
            if step >= 2:
                times.append(dt)
            losses.append(loss)

    (ref_name, ours_name) = loops
    ref_t, ours_t = statistics.median(state[ref_name][2]), statistics.median(state[ours_name][2])
    max_diff = max(abs(a - b) for a, b in zip(state[ref_name][3], state[ours_name][3]))
    print(f"preset {args.preset}, {len(tokens)} training pairs, {args.steps} timed steps each, "
          f"{torch.get_num_threads()} threads")
    print(f"{ref_name:<36} median {ref_t * 1000:8.1f} ms/step")
    print(f"{ours_name:<36} median {ours_t * 1000:8.1f} ms/step")
    print(f"speed-up (reference / ours): {ref_t / ours_t:.2f}x")
    print(f"final losses: {state[ref_name][3][-1]:.8f} vs {state[ours_name][3][-1]:.8f}; "
          f"max |difference| over all steps {max_diff:.2e} (target < 1e-5)")

    counts = sorted(set(range(1, threads.physical_cores() + 1)) | {default})
    per = thread_counts(args.steps, cfg, tokens, labels, counts)
    best = min(per, key=per.get)
    print("\nour step by torch threads (interleaved blocks of %d): " % BLOCK
          + ", ".join(f"{n}: {t * 1000:.1f} ms" for n, t in per.items()))
    print(f"default ({default} threads) / best ({best} threads): {per[default] / per[best]:.2f}x; "
          f"1 thread / best: {per[1] / per[best]:.2f}x")

    if args.train_steps:
        torch.set_num_threads(default)
        wall = interp_train_seconds(args.preset, args.train_steps)
        bare = per[default] * args.train_steps
        print(f"\n`interp train --steps {args.train_steps}` (default threads, in-process): {wall:.2f} s; "
              f"{args.train_steps} bare steps at {default} threads: {bare:.2f} s; ratio {wall / bare:.2f}x "
              f"(target <= 1.1x); load average now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
