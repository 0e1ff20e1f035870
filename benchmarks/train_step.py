"""Training-step speed: the reference loop against ours, interleaved in one run.

(a) reference: the full HookedTransformer forward on all positions, ``model(tokens)[:, -1]``,
    as in the public grokking demo; (b) ours: the exact last-position forward that training uses
    (``interp.model.training_logits``, the fast path when no hook is attached).
Both use the float64 loss and AdamW of the `nanda2023` preset and start from the same init.
Steps alternate a/b so machine noise hits both alike. Prints both medians, the ratio, and the
largest loss difference over the steps (the two loops must train the same model).

    python benchmarks/train_step.py [--steps 20] [--preset nanda2023]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from interp.config import preset
from interp.model import build_model, float64_cross_entropy, training_logits
from interp.tasks import Task


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--preset", default="nanda2023")
    args = ap.parse_args()

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
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr,
                                betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)
        state[name] = (model, opt, [], [])

    for step in range(args.steps + 2):  # two warm-up steps are not timed
        for name, forward in loops.items():
            model, opt, times, losses = state[name]
            for g in opt.param_groups:
                g["lr"] = cfg.lr * min(step / cfg.warmup_steps, 1.0)
            t0 = time.perf_counter()
            loss = float64_cross_entropy(forward(model), labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            dt = time.perf_counter() - t0
            if step >= 2:
                times.append(dt)
            losses.append(loss.item())

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


if __name__ == "__main__":
    main()
