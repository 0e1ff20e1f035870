"""Protocol v2 §1's pilot decisions: what the confirmatory emergence sweeps will cost, and whether they change.

    python examples/pilot_plan.py [PILOT_DIR] [MAX_CPU_HOURS]

PILOT_DIR defaults to sweeps/emergence-v2-pilot (made by
``interp sweep examples/sweeps/emergence-v2-pilot.toml --out sweeps/emergence-v2-pilot``). Prints, per
confirmatory sweep (examples/sweeps/emergence-v2-dense.toml and -width.toml) and cell, the CPU-seconds a run costs
in the pilot and the CPU-hours of the cell; then the protocol's two decisions, fixed before the pilot ran: above
MAX_CPU_HOURS (default 8) the dense sweep's seeds are cut to what fits; if the widest width's pilot runs end
below test accuracy 0.9, twice that width joins the width axis.
"""

from __future__ import annotations

import sys
from pathlib import Path

from interp.emergence.power import PILOT_MAX_CPU_HOURS, pilot_plan

HERE = Path(__file__).resolve().parent
SPECS = {"dense": HERE / "sweeps" / "emergence-v2-dense.toml", "width": HERE / "sweeps" / "emergence-v2-width.toml"}


def main(pilot: str = "sweeps/emergence-v2-pilot", max_cpu_hours: float = PILOT_MAX_CPU_HOURS) -> None:
    cells, d = pilot_plan(pilot, SPECS, max_cpu_hours=max_cpu_hours)
    print(cells.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print(f"\ntotal {d['total_cpu_hours']:.2f} CPU-hours against the protocol's cap of {max_cpu_hours:g}: "
          + (f"cut the dense sweep to {d['seeds']['dense']} seeds per cell" if d["cut"] else "no cut")
          + f"; seeds per cell {d['seeds']}")
    for name, (width, acc) in d["widest"].items():
        extra = d["add_width"][name]
        print(f"{name}: widest d_mlp {width} ends at test accuracy {acc:.3f} (lowest pilot run): "
              + (f"below 0.9, add d_mlp {extra}" if extra else "at least 0.9, the axis stays"))


if __name__ == "__main__":
    main(*(sys.argv[1:2] or ["sweeps/emergence-v2-pilot"]), *(float(x) for x in sys.argv[2:3]))
