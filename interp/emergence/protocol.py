"""The registered protocol's fixed choices (``docs/emergence-protocol.md``), in one place.

Every number here is the protocol's; the analysis reads them from this module and nowhere else, so the
headline cannot be moved by a default somewhere. Alternatives (other q, space, event) appear only in the
robustness table.
"""

from __future__ import annotations

__all__ = ["MEM_LEVEL", "EVENTS", "PRIMARY_EVENT", "QS", "HEADLINE_Q", "LOSS_SPACES", "LOOK_TIMES",
           "SLOPE_WINDOW", "REMAINING_SHARE", "MIN_EVALUATED", "SCALE_BUDGETS", "N_BOOT", "BOOT_SEED", "CI",
           "WIDTH_RATIO_LIMIT", "MIN_RANGE", "AXIS_SCALE", "TOP_K", "CANDIDATES", "CONTROLS", "SMOOTH_WINDOW",
           "NOISE_FACTOR", "MIN_LOG_CHANGE", "MIN_LINEAR_SHARE", "CAUSAL", "HEADLINE_BUDGET"]

MEM_LEVEL = 0.99  # t_mem: first step with train accuracy >= this
EVENTS = {"t50": 0.5, "t90": 0.9, "t99": 0.99}  # test accuracy levels
PRIMARY_EVENT = "t90"

QS = (0.10, 0.25, 0.50)  # transition at q of the change from t_mem to the end
HEADLINE_Q = 0.25
LOSS_SPACES = ("log10", "linear")  # losses; every other metric is linear (its protocol space)
SMOOTH_WINDOW = 5  # running median over this many checkpoints
NOISE_FACTOR = 4.0  # a change must exceed this many noise standard deviations
MIN_LOG_CHANGE = 0.1  # decades
MIN_LINEAR_SHARE = 0.05  # of the metric's largest absolute value

CONTROLS = ("train_loss", "test_loss", "clock")
# progress measures that enter the lead and forecast analyses (any present; causal columns used for forecasts)
CANDIDATES = ("restricted_loss", "excluded_loss", "gini_W_E", "gini_W_E_freq", "gini_W_L", "gini_W_L_freq",
              "sum_sq_weights", "frac_neurons_clustered", "cos_explained", "llc")
CAUSAL = {"restricted_loss": "restricted_loss_causal", "excluded_loss": "excluded_loss_causal"}
TOP_K = 4  # the top-k key-frequency rule of the causal columns

LOOK_TIMES = (500, 1000, 2000, 3000, 4000)
SLOPE_WINDOW = 500  # steps: the slope feature is fitted over [T - this, T]
REMAINING_SHARE = 0.25  # evaluated only when t90 - T >= this share of t90 - t_mem
MIN_EVALUATED = 8  # runs evaluated at a look time for a verdict

SCALE_BUDGETS = (1000, 2000, 4000, 6000)
HEADLINE_BUDGET = 6000
MIN_RANGE = {"test_acc": 0.05, "test_brier": 0.05, "test_logp": 0.1}  # span of the cell medians to fit
WIDTH_RATIO_LIMIT = 2.0  # R = width(log-prob) / width(accuracy): below -> real, above -> artefact
AXIS_SCALE = {"d_mlp": "log2", "d_model": "log2", "d_head": "log2", "n_heads": "log2"}  # else linear

N_BOOT = 2000
BOOT_SEED = 0
CI = 0.95
