"""The ground floor: files written atomically, safetensors read with clear errors, output directories checked.

Every file `interp` writes goes through :func:`atomic_write_bytes`: a temporary file in the same directory,
flushed, fsynced and renamed, so a reader (or a process killed mid-write) sees the old file or the complete
new one, never half of one. Tensors are only ever read from safetensors: nothing is unpickled.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load_bytes
from safetensors.torch import save as st_save_bytes

from .errors import CheckpointError, ConfigError

__all__ = ["atomic_write_bytes", "atomic_write_text", "save_tensors", "read_safetensors", "prepare_out_dir",
           "one_line"]

_UMASK = os.umask(0o022)
os.umask(_UMASK)


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers only ever see the old or the complete new file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; a run is meant to be shared like any file
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: Path | str, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_tensors(path: Path | str, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Atomically save tensors (made contiguous, on CPU) as safetensors."""
    clean = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    atomic_write_bytes(path, st_save_bytes(clean, metadata=metadata))


def read_safetensors(path: Path | str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file; any damage becomes a CheckpointError naming the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: file not found") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read ({e.strerror})") from None
    if len(data) < 8:
        raise CheckpointError(f"{path}: not a safetensors file ({len(data)} bytes; truncated or empty)")
    header_len = int.from_bytes(data[:8], "little")
    if header_len > len(data) - 8:
        raise CheckpointError(f"{path}: not a valid safetensors file (header claims {header_len} bytes, "
                              f"file has {len(data)}; truncated or corrupt)")
    try:
        header = json.loads(data[8:8 + header_len])
        metadata = header.get("__metadata__") or {}
        ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
        expected = 8 + header_len + max(ends, default=0)
        if len(data) < expected:
            raise CheckpointError(f"{path}: truncated or corrupt safetensors file ({len(data)} bytes, "
                                  f"its header needs {expected})")
        tensors = st_load_bytes(data)
    except (SafetensorError, ValueError, UnicodeDecodeError, AttributeError, KeyError, TypeError, IndexError) as e:
        raise CheckpointError(f"{path}: not a valid safetensors file ({one_line(e)})") from None
    return tensors, dict(metadata)


def one_line(e: BaseException) -> str:
    """An exception's message on one line, at most 200 characters (for error messages that quote it)."""
    return " ".join(str(e).split())[:200]


def prepare_out_dir(out: Path | str, what: str = "out_dir") -> Path:
    """Create ``out`` if needed and check it is a writable directory, before any work is done.

    ``what`` names the parameter in the error (the CLI passes its flag, e.g. ``--out``).
    """
    out = Path(out)

    def refuse(fault: str) -> ConfigError:  # field/detail let the CLI restate a library name with its flag
        return ConfigError(f"{what} {out}: {fault}", field=what, detail=f"{out}: {fault}")

    if out.exists() and not out.is_dir():
        raise refuse("exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise refuse(f"cannot create directory ({e.strerror})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise refuse("directory is not writable")
    return out
