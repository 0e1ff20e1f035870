"""The front page (README.md) and the manual (docs/): their Python snippets run as written and say what they claim;
the Quick start's two commands are what CI runs; the answers table quotes the pages."""

import re
import tomllib
from pathlib import Path

import pytest
import torch

from tests import manual

ROOT = Path(__file__).resolve().parent.parent


def _snippets():
    return manual.blocks("python")


def test_every_python_snippet_runs(monkeypatch):
    monkeypatch.chdir(ROOT)
    blocks = _snippets()
    assert len(blocks) >= 2
    spaces, ns = [], {}
    for code in blocks:  # read top to bottom, as a newcomer would: later snippets use earlier names
        if "sweeps/" in code or "SWEEP_DIR" in code:  # needs a sweep you ran yourself; tested in tests/sweep
            continue
        exec(compile(code, "manual", "exec"), ns)
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
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(r.startswith("ray[client]") for r in extras["ray"])  # --address ray://HOST:10001 needs Ray Client
    assert any(r.split(">")[0].split("=")[0] in ("notebook", "jupyterlab") for r in extras["notebooks"])


def test_the_install_lines_work_on_any_machine():
    text = manual.page("getting-started.md")
    shell = [line for block in manual.blocks("bash", [ROOT / "README.md", ROOT / "docs" / "getting-started.md"])
             for line in block.splitlines()]
    assert not [line for line in shell if line.lstrip().startswith("sudo ")], "sudo is absent on many machines"
    installs = [line for line in shell if "apt-get install" in line]
    assert installs and all("apt-get update" in line.split("apt-get install")[0] for line in installs)
    torch_line = next(line for line in shell if line.startswith("pip install torch"))
    assert "--index-url https://download.pytorch.org/whl/cpu" in torch_line  # no local wheel: the CPU index
    assert "for reproducibility" in text and "not for correctness" in text


def _quick_start(name):
    block = next(b for b in manual.blocks("bash", [ROOT / name]) if "uv run" in b)
    return [line.split("#")[0].strip() for line in block.splitlines() if line.startswith("uv run")]


def test_the_quick_start_is_two_commands_and_ci_runs_the_test_command():
    commands = _quick_start("README.md")
    assert commands == ["uv run interp report", "uv run pytest"]
    assert _quick_start("docs/getting-started.md") == commands  # the manual says the same
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert "uv run pytest" in [line.strip() for line in ci]  # exactly the README's test command, alone on its line
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())
    # the tests the Quick start leaves out (marker ci) are run by CI after it, and the manual says how to run them
    pytest_ini = tool["tool"]["pytest"]["ini_options"]
    assert "-m 'not ci'" in pytest_ini["addopts"] and any(m.startswith("ci:") for m in pytest_ini["markers"])
    lines = [line.strip() for line in ci]
    assert "uv run pytest -m ci" in lines and lines.index("uv run pytest -m ci") > lines.index("uv run pytest")
    assert "uv run pytest -m ci" in manual.page("getting-started.md")
    assert tool["project"]["requires-python"] == ">=3.11"
    # what `uv run` installs: every extra the suite tests; on Linux torch from the index named "torch" (CPU)
    assert tool["dependency-groups"]["dev"] == ["interp[dev,ray,llc,docs]"]
    index = {i["name"]: i for i in tool["tool"]["uv"]["index"]}["torch"]
    assert index["url"].endswith("/whl/cpu") and index["explicit"]
    lock = (ROOT / "uv.lock").read_text()
    assert 'name = "lifelines"' not in lock and 'name = "statsmodels"' in lock


def test_the_answers_table_quotes_its_pages():
    """Every number in the front page's answers table is in the page its row links to (where the tests recompute
    it from the committed tables)."""
    table = manual.section("README.md", "## The answers")
    rows = [line for line in table.splitlines() if line.startswith("| ") and "](docs/" in line]
    assert len(rows) >= 5
    for row in rows:
        answer, link = row.split(" | ")[1:3]
        target = manual.page(re.search(r"\(docs/([\w.-]+\.md)\)", link).group(1)).replace("\n", " ")
        numbers = re.findall(r"\d[\d.,]*x?(?: \[[^]]+\])?", answer)
        assert numbers, row
        for number in numbers:
            assert number in target, (number, link)


def test_every_command_of_the_front_page_and_the_manual_parses():
    """Each `interp ...` line of a bash block (README and every manual page) names a real command with real flags:
    a renamed flag or command cannot leave the manual behind. (The tour's --set lines also train: test_knobs.)"""
    import shlex

    from interp.cli import build_parser

    lines = [line.strip() for block in manual.blocks("bash") for line in block.replace("\\\n", " ").splitlines()]
    commands = [part.strip() for line in lines for part in line.split(" #")[0].split("&&")]
    commands = [c.removeprefix("uv run ") for c in commands if c.removeprefix("uv run ").startswith("interp ")]
    assert len(commands) >= 30
    for command in commands:
        argv = shlex.split(command)[1:]
        if argv == ["--version"]:
            continue
        try:
            build_parser().parse_args(argv)
        except SystemExit as e:
            pytest.fail(f"{command!r} does not parse (exit {e.code})")
