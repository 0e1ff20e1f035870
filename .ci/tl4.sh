#!/usr/bin/env bash
# CI, second part: the tests marked tl_other (train, resume, the shipped measures, hooks, LLC, users' models) under
# TransformerLens 4.3 (TransformerBridge), in a venv of its own beside the main run's TransformerLens 3.9.
# Cross-version tests (a run trained on one version resumed on the other, the LLC on both) use the main
# interpreter as the other version. Run after .ci/run (it needs that interpreter's installed interp deps).
set -euo pipefail
cd "$(dirname "$0")/.."
export MPLBACKEND=Agg

# the main run's interpreter: uv's .venv (the Quick start's environment) when there is one
if [ -x .venv/bin/python ]; then MAIN_PY="$PWD/.venv/bin/python"; else MAIN_PY="$(python3 -c 'import sys; print(sys.executable)')"; fi
VENV="${TL4_VENV:-.venv-tl4}"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
# torch first, pinned: the CPU wheel on this machine's disk; an unpinned torch would pull a CUDA build.
"$VENV/bin/python" -m pip install -q torch==2.13.0
"$VENV/bin/python" -m pip install -q "transformer-lens==4.3.*"
"$VENV/bin/python" -m pip install -q -e ".[dev,llc]"
"$VENV/bin/python" -c 'import transformer_lens, importlib.metadata as m; v = m.version("transformer-lens"); assert v.startswith("4.3"), v'

set +e
INTERP_OTHER_TL_PYTHON="$MAIN_PY" "$VENV/bin/python" -m pytest -m tl_other -n 0
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "CI: no tl_other tests collected" >&2
    exit 1
fi
exit "$status"
