"""The shipped S5 run: which of the symmetric group's irreps a trained model composes elements through.

    python examples/s5.py

`checkpoints/s5-seed0` is the `small` preset trained on a * b in S5 (120 elements, 14,400 pairs, half of them for
training, lr 1e-2, stopped at test loss < 0.01: step 3,300; docs/groups.md gives the command). This script lists S5's
real irreps with their characters, reads the run's saved measures (probes/s5-seed0, every checkpoint), then measures
the final checkpoint again now, in a few seconds, and prints its key irreps (Chughtai et al. 2023's neuron rule), the
irrep norms of W_E and W_L, the logits' character coefficients and the excluded loss with each key irrep removed.
"""

from pathlib import Path

from interp import Run, probes
from interp.irreps import character_table, real_irreps
from interp.probes import irreps

ROOT = Path(__file__).resolve().parent.parent
run = Run(ROOT / "checkpoints" / "s5-seed0")
task, final = run.task, run.final_step
group = task.finite_group

# S5's irreps, computed from its multiplication table, with their characters on one element of each class
_, classes = character_table(group)
print(f"{group.name}: {group.order} elements, {task.n_pairs} pairs, {len(task.train_idx)} training pairs")
print("classes (one element each, as images of 0..4): " + ", ".join(group.labels[c[0]] for c in classes))
for r in real_irreps(group):
    print(f"  {r.name:>7} (dim {r.dim}): characters " + " ".join(f"{round(float(r.character[c[0]])):+d}" for c in classes))

# the whole run, as measured and saved with `interp measure checkpoints/s5-seed0 --out probes/s5-seed0`
saved = probes.find_measures(run)
print(f"saved measures: key irreps {saved.key_irreps} ({saved.protocol['irreps']['key_irreps_source']})")
print("step  test_acc  test_loss  irrep_restricted_loss  irrep_excluded_loss  char_explained  frac_neurons_key_irrep")
for _, row in saved.df.iterrows():
    print(f"{int(row.step):5d}  {row.test_acc:.4f}  {row.test_loss:9.4g}  {row.irrep_restricted_loss:21.3g}  "
          f"{row.irrep_excluded_loss:19.4g}  {row.char_explained:14.3f}  {row.frac_neurons_key_irrep:.3f}")

# the final checkpoint measured now, on its own
m = probes.measure_run(run, steps=[final], progress=False)
row = m.df.iloc[-1]
print(f"final step {final}: train acc {row.train_acc:.4f}, test acc {row.test_acc:.4f}, train loss "
      f"{row.train_loss:.4g}, test loss {row.test_loss:.4g}")
basis = irreps.irrep_basis_of(task)
print(f"key irreps {m.key_irreps} (dims {[basis.irreps[basis.index(k)].dim for k in m.key_irreps]})")
model = run.load(final)
names = basis.names
for mat, norms in irreps.irrep_norms(model, task).items():
    print(f"irrep norms of {mat}: " + ", ".join(f"{n} {float(v):.2f}" for n, v in zip(names, norms)))
coef, _ = irreps.character_coefficients(model, task)
print("character coefficients of the logits: " + ", ".join(f"{n} {v:.0f}" for n, v in coef.items()))
print(f"irrep excluded loss (training pairs): all key irreps removed {row.irrep_excluded_loss:.4g}; "
      + "; ".join(f"{k} alone removed {row[f'irrep_excluded_loss_{k}']:.4g}" for k in m.key_irreps))
print(f"character share {row.char_explained:.3f}; neurons in one irrep {row.frac_neurons_irrep:.3f}, in a key irrep "
      f"{row.frac_neurons_key_irrep:.3f}; Gini of irrep norms W_E {row.gini_irrep_W_E:.3f}, W_L {row.gini_irrep_W_L:.3f}")
same = saved.df.set_index("step").loc[final, "irrep_excluded_loss"]
print(f"the same as the saved measures: key irreps {m.key_irreps == saved.key_irreps}, irrep excluded loss "
      f"{abs(same - row.irrep_excluded_loss) <= 1e-6 * abs(same)}")
