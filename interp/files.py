"""The ground floor: files written atomically, safetensors read with clear errors, output directories checked.

Every file `interp` writes goes through :func:`atomic_write_bytes`: a temporary file in the same directory,
flushed, fsynced and renamed, so a reader (or a process killed mid-write) sees the old file or the complete
new one, never half of one. Tensors are only ever read from safetensors: nothing is unpickled.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any, Iterator

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load_bytes
from safetensors.torch import save as st_save_bytes

from .errors import CheckpointError, ConfigError, OutputError, RunFormatError

__all__ = ["atomic_write_bytes", "atomic_write_text", "save_tensors", "read_safetensors", "prepare_out_dir",
           "one_line", "read_limited", "read_json", "read_safetensors_header", "OutputLock", "staged_dir", "MAX_TEXT_BYTES", "MAX_TENSOR_BYTES"]

# Largest files read (checked with stat before opening, so /dev/zero, a FIFO or a huge file is refused at once):
MAX_TEXT_BYTES = 256 * 2**20     # run.json, split.json, metrics.csv, measures, sweep tables
MAX_TENSOR_BYTES = 8 * 2**30     # one checkpoint or resume file
MAX_JSON_DEPTH = 64              # nesting of any JSON file read (deeper is refused, not a RecursionError)

_UMASK = os.umask(0o022)
os.umask(_UMASK)


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers only ever see the old or the complete new file."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise _output_error(path, e) from None
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; a run is meant to be shared like any file
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError):
            raise _output_error(path, e) from None
        raise
    _fsync_dir(path.parent)


def _output_error(path: Path, e: OSError) -> OutputError:
    why = "no space left on device" if e.errno in (errno.ENOSPC, errno.EDQUOT) else (e.strerror or one_line(e))
    return OutputError(f"{path}: cannot write ({why})")


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
    """Atomically save tensors (made contiguous, on CPU) as safetensors, byte-reproducibly: the header's metadata
    is written with sorted keys (safetensors itself orders it differently in every process), so equal tensors and
    metadata always give equal bytes."""
    clean = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    atomic_write_bytes(path, _sorted_header(st_save_bytes(clean, metadata=metadata)))


def _sorted_header(data: bytes) -> bytes:
    """The same safetensors file with its ``__metadata__`` keys in sorted order (tensor entries, offsets and data
    unchanged; the header is padded with spaces to a multiple of 8 bytes, as safetensors does)."""
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", None)
    ordered = ({"__metadata__": dict(sorted(meta.items()))} if meta else {}) | header
    text = json.dumps(ordered, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + data[8 + n:]


MAX_HEADER_BYTES = 100 * 2**20  # a safetensors header (the JSON that names, shapes and places every tensor)


def read_safetensors_header(path: Path | str) -> tuple[dict[str, tuple[str, tuple[int, ...]]], dict[str, str]]:
    """``({name: (dtype, shape)}, metadata)`` of a safetensors file, from its header alone (no tensor is read), so
    a file can be checked against the model it should fit before anything is allocated. CheckpointError naming
    the file for anything that is not a well-formed header."""
    path = Path(path)
    read_limited_stat(path, MAX_TENSOR_BYTES, error=CheckpointError)
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise CheckpointError(f"{path}: not a safetensors file ({len(head)} bytes; truncated or empty)")
            n = int.from_bytes(head, "little")
            if n > MAX_HEADER_BYTES:
                raise CheckpointError(f"{path}: not a valid safetensors file (header claims {n:,} bytes)")
            raw = f.read(n)
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read ({e.strerror})") from None
    if len(raw) < n:
        raise CheckpointError(f"{path}: not a valid safetensors file (header claims {n} bytes, file is shorter; "
                              "truncated or corrupt)")
    try:
        header = json.loads(raw)
        meta = header.pop("__metadata__", None) or {}
        shapes = {str(k): (str(v["dtype"]), tuple(int(d) for d in v["shape"])) for k, v in header.items()}
        if not isinstance(meta, dict):
            raise TypeError("__metadata__ is not an object")
    except (ValueError, UnicodeDecodeError, AttributeError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: not a valid safetensors file ({one_line(e)})") from None
    return shapes, {str(k): str(v) for k, v in meta.items()}


def read_safetensors(path: Path | str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file; any damage becomes a CheckpointError naming the file."""
    path = Path(path)
    data = read_limited(path, MAX_TENSOR_BYTES, error=CheckpointError)
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


def read_limited(path: Path | str, max_bytes: int = MAX_TEXT_BYTES, *, error: type = RunFormatError) -> bytes:
    """The bytes of a regular file of at most ``max_bytes``; anything else is ``error`` naming the file.

    Checked with ``stat`` before the file is opened, so a FIFO (which would block), a device such as
    /dev/zero (endless), a directory or a file larger than the limit is refused at once.
    """
    path = Path(path)
    read_limited_stat(path, max_bytes, error=error)
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as e:
        raise error(f"{path}: cannot read ({e.strerror})") from None
    if len(data) > max_bytes:  # grew while being read
        raise error(f"{path}: more than {max_bytes:,} bytes; refused")
    return data


def read_limited_stat(path: Path, max_bytes: int, *, error: type = RunFormatError) -> os.stat_result:
    """The checks :func:`read_limited` makes before opening: a regular file of at most ``max_bytes``."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except OSError as e:
        raise error(f"{path}: cannot read ({e.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise error(f"{path}: is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{path}: not a regular file (a device, FIFO or socket); refused")
    if st.st_size > max_bytes:
        raise error(f"{path}: {st.st_size:,} bytes, more than the {max_bytes:,} this file may have; refused")
    return st


def read_json(path: Path | str, *, error: type = RunFormatError, max_bytes: int = MAX_TEXT_BYTES) -> Any:
    """A JSON file parsed, bounded in size and nesting; every fault one ``error`` naming the file."""
    path = Path(path)
    data = read_limited(path, max_bytes, error=error)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(f"{path}: not UTF-8 text ({one_line(e)[:100]})") from None
    check_nesting(text, path, error=error)
    try:
        return json.loads(text)
    except RecursionError:
        raise error(f"{path}: nested too deeply") from None
    except ValueError as e:  # JSONDecodeError, and integers over Python's digit limit
        raise error(f"{path}: malformed JSON ({one_line(e)[:120]})") from None


def check_nesting(text: str, path: Path | str, *, error: type = RunFormatError, limit: int = MAX_JSON_DEPTH,
                  openers: str = "[{", closers: str = "]}") -> None:
    """Refuse text whose brackets nest deeper than ``limit`` (before a recursive parser sees it).

    Brackets inside strings are counted too, which can only make the check stricter than the structure."""
    depth = 0
    for ch in text:
        if ch in openers:
            depth += 1
            if depth > limit:
                raise error(f"{path}: nested more than {limit} levels deep; refused")
        elif ch in closers:
            depth -= 1


@contextlib.contextmanager
def staged_dir(out: Path | str) -> Iterator[Path]:
    """Build a directory's new content in a hidden sibling, then move it into place as a whole.

    Yields the temporary directory to write into. On success the old ``out`` (if any) is moved aside and the new
    one renamed into its place, then the old one is deleted, so a reader (or a kill at any moment) finds the
    old complete directory, the new complete one, or none, never a mix. On error the temporary is removed.
    Leftovers of a killed earlier call (``.NAME.*.staged``/``.old``) are removed first.
    """
    out = Path(out)
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        for leftover in parent.glob(f".{out.name}.*.staged"):
            shutil.rmtree(leftover, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".staged", dir=parent))
    except OSError as e:
        raise _output_error(out, e) from None
    os.chmod(tmp, 0o777 & ~_UMASK)
    try:
        yield tmp
        from .killpoints import kill_point

        old = None
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".staged", dir=parent))
            os.rmdir(old)
            os.rename(out, old)
            kill_point("staged.between_renames")
        os.rename(tmp, out)
        _fsync_dir(parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError) and not isinstance(e, FileNotFoundError):
            raise _output_error(out, e) from None
        raise


class OutputLock:
    """An exclusive ``flock`` held on an output directory for the whole of one command, so two commands never write
    one ``--out`` at once (the second is refused at once, naming the holder).

    The same kernel lock as a run directory's (:class:`interp.runs.RunLock`: dropped when the holder dies, so a killed
    command never leaves it locked), taken on a hidden sibling file ``.NAME.lock`` rather than the directory itself,
    because a report replaces its directory as a whole. The file records the holder's pid, for messages, and is
    removed when the lock is released."""

    def __init__(self, out: Path | str, flag: str = "--out"):
        self.out = Path(out)
        full = Path(os.path.abspath(self.out))
        self.path = full.parent / f".{full.name}.lock"
        self.flag = flag
        self._fd: int | None = None

    def acquire(self) -> "OutputLock":
        from .errors import RunLockedError

        prepare_out_dir(self.path.parent, self.flag)  # a parent that is a file, or not writable: one line
        for _ in range(100):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666 & ~_UMASK)
            except OSError as e:
                raise _output_error(self.path, e) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                try:
                    holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
                finally:
                    os.close(fd)
                raise RunLockedError(f"{self.flag} {self.out}: in use by another interp command ({holder}); wait "
                                     f"for it to finish or choose another {self.flag} (nothing was written)") from None
            if self._same_file(fd):
                break
            os.close(fd)  # the holder removed the file as it let go: take the lock on the path's new file
        else:
            raise RunLockedError(f"{self.flag} {self.out}: its lock file {self.path} keeps changing; try again")
        self._fd = fd
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
        except OSError:
            pass  # only for messages
        return self

    def _same_file(self, fd: int) -> bool:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        own = os.fstat(fd)
        return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)

    def release(self) -> None:
        """Remove the lock file while still holding it, then let go (a waiter that opened it first sees it gone and
        takes the lock on a new file), so no lock file is left beside the output."""
        if self._fd is not None:
            try:
                os.unlink(self.path)
            except OSError:
                pass
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


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
