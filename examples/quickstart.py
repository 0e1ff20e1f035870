"""Quick start: open the shipped reference run, measure its final model, and print the paper's numbers.

    python examples/quickstart.py [RUN_DIR]

Runs in seconds on a laptop CPU. Everything printed is computed here from the checkpoints.
"""

import sys
from pathlib import Path

from interp import Run, probes

ROOT = Path(__file__).resolve().parent.parent
run = Run(sys.argv[1] if len(sys.argv) > 1 else ROOT / "checkpoints" / "nanda2023-p113-seed0")
task = run.task
print(f"{run.name}: p={run.config.p}, {len(run.steps)} checkpoints, steps {run.steps[0]}..{run.final_step}")

model = run.load(run.final_step)  # a transformer_lens.HookedTransformer
freqs = probes.key_frequencies(model, task)  # the paper's rule: MLP neurons, 0.85 of variance
clusters = probes.neuron_clusters(model, task)
print(f"key frequencies: {freqs}")
print(f"neurons explained >= 0.85 by one frequency: {clusters.clustered.mean():.0%} of {len(clusters)}")
print("cluster sizes:", clusters[clusters.clustered].frequency.value_counts().sort_index().to_dict())

train_loss, train_acc = probes.loss_and_accuracy(model, task, "train")
test_loss, test_acc = probes.loss_and_accuracy(model, task, "test")
print(f"train loss {train_loss:.3g} (acc {train_acc:.3f}), test loss {test_loss:.3g} (acc {test_acc:.3f})")
restricted, excluded = probes.restricted(model, task, freqs), probes.excluded(model, task, freqs)
print(f"restricted loss {restricted.loss:.3g} (acc {restricted.accuracy:.3f}), "
      f"excluded loss {excluded.loss:.3g} (acc {excluded.accuracy:.3f})")
gini = probes.fourier_gini(model)
print(f"Gini of Fourier norms: W_E {gini['W_E']:.3f}, W_L {gini['W_L']:.3f}")
cos = probes.cos_coefficients(model, task, freqs)
print(f"key cos(w(a+b-c)) terms explain {cos.explained_fraction:.1%} of the logits")
print(f"sum of squared weights {probes.sum_squared_weights(model):.1f}")
