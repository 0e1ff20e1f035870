"""The in-process runners of tests/cli_helpers.py give what a new process gives: exit code, stdout and stderr."""

import subprocess
import sys

import pytest

from tests.cli_helpers import interp_cli, run_script

SCRIPT = """import sys, warnings
print("argv", sys.argv[1:])
warnings.warn("shown once per process")
if sys.argv[1:] == ["fail"]:
    sys.exit("bad thing")
"""


@pytest.mark.parametrize("args", [["presets"], ["no-such-command"], ["train", "--steps", "-1", "--out", "x"]])
def test_interp_cli_is_what_the_console_script_prints(args, tmp_path):
    here = interp_cli(*args, cwd=tmp_path)
    there = subprocess.run([sys.executable, "-m", "interp.cli", *args], capture_output=True, text=True, cwd=tmp_path)
    assert (here.returncode, here.stdout, here.stderr) == (there.returncode, there.stdout, there.stderr)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("args", [[], ["fail"]])
def test_run_script_is_what_python_prints(args, tmp_path):
    script = tmp_path / "s.py"
    script.write_text(SCRIPT)
    for _ in range(2):  # a warning shown by the first call is shown again, as in a new process
        here = run_script(script, *args, cwd=tmp_path)
        there = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, cwd=tmp_path)
        assert (here.returncode, here.stdout) == (there.returncode, there.stdout)
        assert here.stderr.splitlines()[-1] == there.stderr.splitlines()[-1]
        assert ("UserWarning: shown once per process" in here.stderr) and ("shown once" in there.stderr)
