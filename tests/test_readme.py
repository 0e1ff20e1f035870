"""The README's Python snippets run as written, and say what they claim."""

import re
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


def _snippets():
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def test_every_python_snippet_runs(monkeypatch):
    monkeypatch.chdir(ROOT)
    blocks = _snippets()
    assert len(blocks) >= 2
    spaces, ns = [], {}
    for code in blocks:  # read top to bottom, as a newcomer would: later snippets use earlier names
        if "sweeps/" in code or "SWEEP_DIR" in code:  # needs a sweep you ran yourself; tested in tests/sweep
            continue
        exec(compile(code, "README.md", "exec"), ns)
        spaces.append(dict(ns))
    first = next(ns for ns in spaces if "freqs" in ns)
    assert first["freqs"] == [1, 21, 49]
    assert first["cache"]["blocks.0.mlp.hook_post"].shape == (12769, 3, 512)
    assert len(first["m"].df) == len(first["run"].steps) and first["m"].key_frequencies == [1, 21, 49]
    plain = next(ns for ns in spaces if "meta" in ns)
    assert type(plain["model"]).__name__ == "HookedTransformer"
    tokens = first["run"].task.tokens()[:500]
    with torch.no_grad():  # the plain TransformerLens model is the same model
        assert torch.equal(plain["model"](tokens), first["model"](tokens))


def test_the_readme_ablation_claim(monkeypatch):
    from interp import Run, probes

    run = Run(ROOT / "checkpoints" / "nanda2023-p113-seed0")
    model = run.load()
    clean = probes.loss_and_accuracy(model, run.task, "test").loss
    with model.hooks(fwd_hooks=[("blocks.0.mlp.hook_post", lambda act, hook: act * 0)]):
        ablated = probes.loss_and_accuracy(model, run.task, "test").loss
    assert clean < 1e-6 and ablated == pytest.approx(4, abs=0.5)


def test_the_extras_install_what_the_readme_needs():
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(r.startswith("ray[client]") for r in extras["ray"])  # --address ray://HOST:10001 needs Ray Client
    assert any(r.split(">")[0].split("=")[0] in ("notebook", "jupyterlab") for r in extras["notebooks"])


def test_the_install_lines_work_on_any_machine():
    text = (ROOT / "README.md").read_text()
    shell = [line for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S) for line in block.splitlines()]
    assert not [line for line in shell if line.lstrip().startswith("sudo ")], "sudo is absent on many machines"
    installs = [line for line in shell if "apt-get install" in line]
    assert installs and all("apt-get update" in line.split("apt-get install")[0] for line in installs)
    torch_line = next(line for line in shell if line.startswith("pip install torch"))
    assert "--index-url https://download.pytorch.org/whl/cpu" in torch_line  # no local wheel: the CPU index
    assert "for reproducibility" in text and "not for correctness" in text
