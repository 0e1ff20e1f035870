"""Progress measures of a whole run: `probes.measure_run` against a naive per-measure loop.

(a) naive reference, as the public notebook does it: for every checkpoint and every measure, its own
    full ``model.run_with_cache`` on all p^2 pairs (every activation cached), then that measure alone:
    train and test loss/accuracy, restricted and excluded loss and accuracy (2-D Fourier transform of the
    logits, keep or drop the key (a+b) components, transform back), the excluded loss per key frequency
    (one forward each), the cos(w(a+b-c)) coefficients (a p^3 cube per frequency), the neuron clusters;
    Gini and the sum of squared weights from the weights.
(b) ours: ``probes.measure_run`` (one ``run_with_cache`` per checkpoint, every measure from it).

Each side runs in its own subprocess so that its peak memory (max RSS, torch included) is its own.
Prints both times, the ratio, seconds per checkpoint, peak memory, and the largest difference between
the two sides' values (they must agree).

    python benchmarks/probes.py [--run DIR] [--checkpoints 20] [--key-freqs 14,35,41,42,52]

Without --run it uses checkpoints/nanda2023-p113-seed0 when present, else trains a throwaway run of the
`nanda2023` preset (p=113, d_model 128, d_mlp 512) for a few steps in a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "checkpoints" / "nanda2023-p113-seed0"
PAPER_KEYS = [14, 35, 41, 42, 52]
COMPARED = ["train_loss", "test_loss", "train_acc", "test_acc", "restricted_loss", "restricted_acc", "excluded_loss",
            "excluded_acc", "gini_W_E", "gini_W_L", "sum_sq_weights", "cos_explained", "frac_neurons_key"]


# ---- (a) the naive reference ------------------------------------------------------------------------


def _forward(model, tokens):
    logits, cache = model.run_with_cache(tokens)  # everything cached, as in the notebook
    return logits[:, -1].double(), cache


def _ce(logits, labels):
    return float(torch.nn.functional.cross_entropy(logits.double(), labels))


def _acc(logits, labels):
    return float((logits.argmax(-1) == labels).double().mean())


def _basis(p):
    x = torch.arange(p, dtype=torch.float64)
    rows = [torch.ones(p, dtype=torch.float64)]
    for k in range(1, p // 2 + 1):
        rows += [torch.cos(2 * math.pi * k * x / p), torch.sin(2 * math.pi * k * x / p)]
    F = torch.stack(rows)
    return F / F.norm(dim=1, keepdim=True)


def _key_part(logits, F, p, keys):
    """The (a+b) components of the key frequencies of the logits, via the full 2-D Fourier transform."""
    X = torch.einsum("ia,jb,abn->ijn", F, F, logits.reshape(p, p, p))
    kept = torch.zeros_like(X)
    for k in keys:
        c, s = 2 * k - 1, 2 * k
        cos_part, sin_part = (X[c, c] - X[s, s]) / 2, (X[s, c] + X[c, s]) / 2
        kept[c, c] += cos_part
        kept[s, s] -= cos_part
        kept[s, c] += sin_part
        kept[c, s] += sin_part
    return torch.einsum("ia,jb,ijn->abn", F, F, kept).reshape(p * p, p)


def _gini(c):
    c = c.sort().values
    n = len(c)
    k = torch.arange(1, n + 1, dtype=torch.float64)
    return float(1 - 2 * ((c / c.sum()) * (n - k + 0.5) / n).sum())


def naive_measures(model, task, keys):
    p = task.p
    tokens, labels = task.tokens(), task.labels()
    tr, te = task.train_idx, task.test_idx
    F = _basis(p)
    out = {}
    with torch.no_grad():
        L, _ = _forward(model, tokens)
        out["train_loss"], out["train_acc"] = _ce(L[tr], labels[tr]), _acc(L[tr], labels[tr])
        L, _ = _forward(model, tokens)
        out["test_loss"], out["test_acc"] = _ce(L[te], labels[te]), _acc(L[te], labels[te])
        L, _ = _forward(model, tokens)
        R = _key_part(L, F, p, keys) + L.mean(0, keepdim=True)
        out["restricted_loss"], out["restricted_acc"] = _ce(R, labels), _acc(R, labels)
        L, _ = _forward(model, tokens)
        E = L - _key_part(L, F, p, keys)
        out["excluded_loss"], out["excluded_acc"] = _ce(E[tr], labels[tr]), _acc(E[tr], labels[tr])
        for k in keys:
            L, _ = _forward(model, tokens)
            out[f"excluded_loss_k{k}"] = _ce((L - _key_part(L, F, p, [k]))[tr], labels[tr])
        L, _ = _forward(model, tokens)
        centred = L - L.mean(1, keepdim=True)
        a, b = task.pairs().unbind(1)
        d = ((a + b)[:, None] - torch.arange(p)[None, :]).double()
        coefs = []
        for k in range(1, p // 2 + 1):
            u = torch.cos(2 * math.pi * k * d / p)  # the (p*p, p) cube for this frequency
            coefs.append(float((L * u).sum() / u.norm()))
        out["cos_explained"] = sum(coefs[k - 1] ** 2 for k in keys) / float(centred.square().sum())
        _, cache = _forward(model, tokens)
        post = cache["blocks.0.mlp.hook_post"][:, -1].double()
        post = post - post.mean(0)
        X = torch.einsum("ia,jb,abn->ijn", F, F, post.reshape(p, p, -1)).square()
        total = X.sum((0, 1))
        shares = torch.stack([X[[0, 2 * k - 1, 2 * k]][:, [0, 2 * k - 1, 2 * k]].sum((0, 1)) / total
                              for k in range(1, p // 2 + 1)], 1)
        best, arg = shares.max(1)
        out["frac_neurons_key"] = float(((best >= 0.85) & torch.isin(arg + 1, torch.tensor(keys))).double().mean())
        W_E = model.W_E[:p].double()
        W_L = (model.blocks[0].mlp.W_out @ model.W_U).double()
        out["gini_W_E"] = _gini((F @ W_E).norm(dim=1))
        out["gini_W_L"] = _gini((W_L @ F.T).norm(dim=0))
        out["sum_sq_weights"] = sum(float(q.double().square().sum()) for q in model.parameters() if q.requires_grad)
    return out


# ---- one side, in a subprocess ------------------------------------------------------------------------


def _child(mode: str, run_dir: str, steps: list[int], keys: list[int]) -> None:
    from interp import probes
    from interp.runs import Run

    run = Run(run_dir)
    torch.set_grad_enabled(False)
    t0 = time.perf_counter()
    if mode == "ours":
        rows = probes.measure_run(run, key_freqs=keys, steps=steps, progress=False).df.to_dict("records")
    else:
        rows = [{"step": s, **naive_measures(run.load(s), run.task, keys)} for s in steps]
    seconds = time.perf_counter() - t0
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    print(json.dumps({"seconds": seconds, "maxrss": maxrss, "rows": rows}))


def _side(mode, run_dir, steps, keys):
    cmd = [sys.executable, __file__, "--child", mode, "--run", str(run_dir),
           "--steps", ",".join(map(str, steps)), "--key-freqs", ",".join(map(str, keys))]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        sys.exit(f"{mode} side failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _throwaway_run(n_ckpt: int, tmp: Path):
    from interp.config import preset
    from interp.train import train

    every = 5
    cfg = preset("nanda2023", n_steps=every * (n_ckpt - 1), save_every=every, name="bench-nanda2023")
    print(f"training a throwaway nanda2023 run: {cfg.n_steps} steps, a checkpoint every {every} ...", flush=True)
    return train(cfg, tmp / "run", progress=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=None)
    ap.add_argument("--checkpoints", type=int, default=20)
    ap.add_argument("--key-freqs", default=None, help="comma-separated (default: the run's, else the paper's)")
    ap.add_argument("--child", choices=["ours", "naive"], help=argparse.SUPPRESS)
    ap.add_argument("--steps", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.child, str(args.run), [int(s) for s in args.steps.split(",")],
               [int(k) for k in args.key_freqs.split(",")])
        return

    from interp import probes
    from interp.runs import Run

    with tempfile.TemporaryDirectory(prefix="interp-bench-") as tmp:
        if args.run is not None:
            run = Run(args.run)
        elif SHIPPED.is_dir() and (SHIPPED / "run.json").exists():
            run = Run(SHIPPED)
        else:
            run = _throwaway_run(args.checkpoints, Path(tmp))
        all_steps = run.steps
        idx = [round(i * (len(all_steps) - 1) / max(args.checkpoints - 1, 1)) for i in range(args.checkpoints)]
        steps = sorted({all_steps[i] for i in idx})
        if args.key_freqs:
            keys = [int(k) for k in args.key_freqs.split(",")]
        else:
            keys = probes.key_frequencies(run.load(run.final_step), run.task) or PAPER_KEYS
        cfg = run.config
        print(f"run {run.path} (p={cfg.p}, d_model={cfg.d_model}, d_mlp={cfg.d_mlp}): {len(steps)} checkpoints, "
              f"key frequencies {keys}")

        naive = _side("naive", run.path, steps, keys)
        ours = _side("ours", run.path, steps, keys)

    n = len(steps)
    gib = 2 ** 30
    print(f"naive (one run_with_cache per measure): {naive['seconds']:7.2f} s  {naive['seconds'] / n:6.3f} s/ckpt  "
          f"peak RSS {naive['maxrss'] / gib:.2f} GiB")
    print(f"ours  (probes.measure_run):             {ours['seconds']:7.2f} s  {ours['seconds'] / n:6.3f} s/ckpt  "
          f"peak RSS {ours['maxrss'] / gib:.2f} GiB")
    print(f"speed-up: {naive['seconds'] / ours['seconds']:.1f}x")
    worst = 0.0
    for a, b in zip(naive["rows"], ours["rows"]):
        for col in COMPARED + [f"excluded_loss_k{k}" for k in keys]:
            worst = max(worst, abs(a[col] - b[col]) / max(1.0, abs(a[col])))
    print(f"largest difference between the two sides (relative above 1, absolute below): {worst:.2e}")


if __name__ == "__main__":
    main()
