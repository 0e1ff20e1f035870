"""Measure a model you built with TransformerLens yourself, on TransformerLens 3.9 or 4.x.

On 3.9 that is a HookedTransformer; on 4.x (HookedTransformer removed) a TransformerBridge from
``TransformerBridge.boot_native``, with a HookedTransformer checkpoint converted by ``convert_tl_checkpoint``.
interp's probes take either (docs/transformerlens.md). Here: the shipped run's final checkpoint.

    python examples/your_own_model.py
"""

import json
from importlib.metadata import version
from pathlib import Path

from safetensors.torch import load_file

from interp import Task, probes

RUN = Path(__file__).resolve().parent.parent / "checkpoints" / "nanda2023-p113-seed0"
config = json.loads((RUN / "run.json").read_text())["hooked_transformer_config"]
state = load_file(RUN / "step_020000.safetensors")  # a HookedTransformer state dict

if version("transformer-lens").startswith("3."):
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    model = HookedTransformer(HookedTransformerConfig(**config))
    model.load_state_dict(state)
else:
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge
    from transformer_lens.utilities.tl_checkpoint_conversion import convert_tl_checkpoint

    cfg = TransformerBridgeConfig(**config)
    model = TransformerBridge.boot_native(cfg)  # not enable_compatibility_mode(): it centres W_U
    model.load_state_dict(convert_tl_checkpoint(state, cfg), strict=False)
model.eval()

task = Task(op="add", p=113, frac_train=0.3, seed=0)  # the run's task (its split does not matter below)
freqs = probes.key_frequencies(model, task)
gini = probes.fourier_gini(model, task)
print(f"TransformerLens {version('transformer-lens')}: {type(model).__name__}")
print(f"key frequencies: {freqs}")
print(f"restricted loss (all pairs): {probes.restricted(model, task, freqs).loss:.6g}")
print(f"Gini of W_L: {gini['W_L']:.9f}")
