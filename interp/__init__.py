"""interp: grokking progress measures on TransformerLens models.

Train a model (``interp.train``), open the run (``interp.Run``), measure it
(``from interp import probes``), and show it (``interp.viz``).
"""

from .config import RunConfig, preset, preset_names
from .errors import CheckpointError, ConfigError, InterpError, ProbeError, RunFormatError, RunLockedError
from .tasks import Task

__version__ = "0.1.0"


def __getattr__(name):  # heavy submodules (torch, transformer_lens) load on first use
    if name in ("Run", "CheckpointSeries"):
        from . import checkpoints

        return getattr(checkpoints, name)
    if name in ("probes", "viz", "fourier", "model"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'interp' has no attribute {name!r}")


__all__ = ["RunConfig", "Task", "Run", "CheckpointSeries", "preset", "preset_names", "InterpError",
           "ConfigError", "RunFormatError", "CheckpointError", "RunLockedError", "ProbeError", "probes", "viz"]
