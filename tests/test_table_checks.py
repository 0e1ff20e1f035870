"""Tables read back exactly as written, under pandas 2 (which needs float_precision="round_trip") and pandas 3
(exact by default, the argument deprecated)."""

import numpy as np
import pandas as pd

from interp.table_checks import read_csv_checked


def test_floats_read_back_bit_for_bit(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random(5000) * 10.0 ** rng.integers(-12, 12, 5000)  # pandas 2's default parser misreads ~30 % of these
    path = tmp_path / "metrics.csv"
    pd.DataFrame({"step": np.arange(5000), "test_loss": x}).to_csv(path, index=False)
    assert np.array_equal(read_csv_checked(path)["test_loss"].to_numpy(), x)
