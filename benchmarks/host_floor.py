"""The cross-host noise floor: how far retrained numbers move when the float rounding changes.

Training is deterministic on one machine at a fixed thread count (resume is bit-exact, and every number recomputed
from committed files is exact). Another machine rounds differently (other SIMD kernels, another BLAS path): the
difference is about 1e-9 after a few steps, and training amplifies it, so a retrained run's event steps and final
losses differ from the shipped ones by an amount this script measures.

It retrains shipped runs under several "hosts" and compares them with the shipped tables:

* ``this-host``: this machine as it is (the shipped sweeps' thread count, 1 per run);
* ``scalar-kernels``: ``ATEN_CPU_CAPABILITY=default``, torch's non-vectorised CPU kernels: another rounding of
  every reduction, as a machine with other SIMD units would have (it differs from the AVX2 kernels from step 0);
* ``2-threads``: two torch threads per run (another split of the reductions).

Workloads (each a few CPU-minutes at most):

* ``grokfast``: the 45 % cell of ``sweeps/grokfast-small`` (AdamW, AdamW + EMA, AdamW lr x3), seeds 0..S-1, to their
  stop rule: event steps t_mem, t90, t99 against the shipped ones;
* ``llc``: one run of ``sweeps/emergence-dense-llc`` (45 %, seed 0) to step 300 and its LLC at steps 0/100/200/300;
* ``small``: the ``small`` preset (3000 steps): test loss at the end, the first step with test accuracy >= 0.99.

    python benchmarks/host_floor.py OUT [--seeds 1] [--variants this-host,scalar-kernels] [--workloads ...]

Writes OUT/floor.csv (one row per variant x workload x quantity: shipped value, retrained value, difference) and
prints the table and the largest differences. ``docs/reliability.md`` quotes the measured floor; rerun this on a
new host to extend it (the host is recorded in each row).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = {
    "this-host": {"threads": 1, "env": {}},
    "scalar-kernels": {"threads": 1, "env": {"ATEN_CPU_CAPABILITY": "default"}},
    "2-threads": {"threads": 2, "env": {}},
}
WORKLOADS = ("grokfast", "llc", "small")
EVENTS = ("t_mem", "t90", "t99")


def host() -> str:
    cpu = ""
    try:
        cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                    if ln.startswith("model name")), "")
    except OSError:
        pass
    import torch

    return f"{platform.node()} | {cpu or platform.processor()} | torch {torch.__version__} " \
           f"{torch.backends.cpu.get_cpu_capability()}"


def grokfast_rows(out: Path, seeds: int, threads: int) -> list[dict]:
    from interp import sweep
    from interp.emergence.grokfast import compare

    sys.path.insert(0, str(ROOT / "examples"))
    from grokfast import spec  # the example's cell: the shipped sweep's 45 % settings

    sweep.run(spec(seeds, 6000), out, resume=(out / "sweep.json").exists(), workers=1, threads=threads,
              progress=False)
    ours = compare(out, n_boot=10).runs
    shipped = compare(ROOT / "sweeps" / "grokfast-small", n_boot=10).runs
    shipped = shipped[shipped["frac_train"] == 0.45]
    both = ours.merge(shipped, on=["arm", "seed"], suffixes=("", "_shipped"))
    return [{"workload": "grokfast", "quantity": f"{r['arm']} seed {r['seed']} {e}", "shipped": r[f"{e}_shipped"],
             "retrained": r[e]} for _, r in both.iterrows() for e in EVENTS]


def llc_rows(out: Path, threads: int) -> list[dict]:
    import pandas as pd

    from interp import sweep
    from interp.sweep.llc import sweep_llc

    spec = {"sweep": {"preset": "small", "n_steps": 300, "eval_every": 10, "save_every": 100,
                      "save_steps": "0-300:25,300-2000:50", "measures": "all", "top_k": 4},
            "base": {"d_mlp": 256}, "grid": {"frac_train": [0.45]}, "seeds": {"both": 1}}
    trained = out / "runs"
    sweep.run(spec, trained, resume=(trained / "sweep.json").exists(), workers=1, threads=threads, progress=False)
    tables = sweep_llc(trained, out / "llc", every=4, log=None)
    ours = tables.results.dropna(subset=["llc"]).set_index(["run", "step"])["llc"]
    ref = pd.read_csv(ROOT / "sweeps" / "emergence-dense-llc" / "results.csv").dropna(subset=["llc"])
    ref = ref.set_index(["run", "step"])["llc"]
    return [{"workload": "llc", "quantity": f"LLC at step {step}", "shipped": ref[(run, step)],
             "retrained": ours[(run, step)]} for run, step in ours.index.intersection(ref.index)]


def small_rows(out: Path, threads: int) -> list[dict]:
    import pandas as pd

    from interp.config import preset
    from interp.train import train

    cfg = preset("small")
    train(cfg, out, threads=threads, progress=False)
    m = pd.read_csv(out / "metrics.csv").dropna(subset=["test_loss"])
    reached = m[m["test_acc"] >= 0.99]["step"]
    # the README's row for `small`: test accuracy 0.99 at step ~1600, test loss 1.2e-6 at 3000 (its first host)
    return [{"workload": "small", "quantity": "first step test acc >= 0.99", "shipped": 1600,
             "retrained": int(reached.min()) if len(reached) else float("nan")},
            {"workload": "small", "quantity": "test loss at the last step", "shipped": 1.2e-6,
             "retrained": float(m["test_loss"].iloc[-1])}]


def child(variant: str, workload: str, out: Path, seeds: int) -> None:
    threads = VARIANTS[variant]["threads"]
    out.mkdir(parents=True, exist_ok=True)
    if workload == "grokfast":
        rows = grokfast_rows(out / "grokfast", seeds, threads)
    elif workload == "llc":
        rows = llc_rows(out / "llc", threads)
    else:
        rows = small_rows(out / "small", threads)
    h = host()
    for r in rows:
        r.update(variant=variant, host=h)
    (out / f"{workload}.json").write_text(json.dumps(rows, default=float))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--seeds", type=int, default=1, help="seeds of the Grokfast cell (default 1: 3 runs)")
    ap.add_argument("--variants", default="this-host,scalar-kernels")
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--child", nargs=2, metavar=("VARIANT", "WORKLOAD"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child, args.out, args.seeds)
        return
    variants, workloads = args.variants.split(","), args.workloads.split(",")
    for name in (*variants, *workloads):
        if name not in VARIANTS and name not in WORKLOADS:
            ap.error(f"unknown variant or workload {name!r} (variants {list(VARIANTS)}, workloads {list(WORKLOADS)})")
    import pandas as pd

    rows = []
    for v in variants:
        for w in workloads:
            where = args.out / v
            if not (where / f"{w}.json").is_file():  # resumable: a finished part is kept
                env = {**os.environ, **VARIANTS[v]["env"]}
                subprocess.run([sys.executable, __file__, str(where), "--seeds", str(args.seeds), "--child", v, w],
                               env=env, check=True)
            rows += json.loads((where / f"{w}.json").read_text())
    df = pd.DataFrame(rows)
    df["difference"] = df["retrained"] - df["shipped"]
    df["relative"] = df["difference"].abs() / df["shipped"].abs()
    df.to_csv(args.out / "floor.csv", index=False)
    with pd.option_context("display.width", 200, "display.max_rows", 500):
        print(df[["variant", "workload", "quantity", "shipped", "retrained", "difference"]].to_string(index=False))
        events = df[df["workload"] == "grokfast"]
        print("\nlargest |difference| of a Grokfast event step, per variant:",
              events.groupby("variant")["difference"].apply(lambda d: d.abs().max()).to_dict())
        print("largest relative LLC difference, per variant:",
              df[df["workload"] == "llc"].groupby("variant")["relative"].max().to_dict())


if __name__ == "__main__":
    main()
