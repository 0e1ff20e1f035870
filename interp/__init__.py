"""interp: grokking progress measures on TransformerLens models.

Train a model (``from interp import train; train(cfg, out_dir)``, or ``interp train``), open the run (``interp.Run``), measure it
(``from interp import probes``), and show it (``interp.viz``).
"""

from importlib import metadata as _metadata

from .config import RunConfig, preset, preset_names
from .errors import (CheckpointError, ConfigError, FigureError, InterpError, ProbeError, RunFormatError,
                     RunLockedError, TrainingError)

try:
    __version__ = _metadata.version("interp")  # one source of truth: pyproject.toml
except _metadata.PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

_SUBMODULES = ("probes", "viz", "fourier", "model", "train", "runs", "files")


def __getattr__(name):  # heavy submodules (torch, transformer_lens, pandas) load on first use
    import importlib

    if name == "Run":
        return importlib.import_module(".runs", __name__).Run
    if name == "Task":
        return importlib.import_module(".tasks", __name__).Task
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'interp' has no attribute {name!r}")


__all__ = ["RunConfig", "Task", "Run", "preset", "preset_names", "InterpError", "ConfigError", "RunFormatError",
           "CheckpointError", "RunLockedError", "ProbeError", "TrainingError", "FigureError", "probes", "viz",
           "train"]
