"""The file helpers viz writes through (atomic writes, the output-directory check), from their one home.

They live in ``interp.files`` on main and in ``interp.checkpoints`` / ``interp.train`` on older trees; once
``interp.files`` is everywhere, the fallback below can go.
"""

try:
    from ..files import atomic_write_bytes, atomic_write_text, prepare_out_dir
except ImportError:  # an older tree
    from ..checkpoints import atomic_write_bytes, atomic_write_text
    from ..train import prepare_out_dir

__all__ = ["atomic_write_bytes", "atomic_write_text", "prepare_out_dir"]
