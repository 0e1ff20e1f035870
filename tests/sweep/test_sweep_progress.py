"""The progress display: counts of runs and the running runs' current losses."""

import io

from interp.sweep.progress import Display


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_terminal_line_shows_counts_and_current_losses(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # the line is cut at the terminal's width (80 where none is known)
    out = _Tty()
    d = Display(total=8, stream=out)
    counts = {"complete": 3, "running": 2, "failed": 1, "pending": 2}
    d.latest["frac_train=0.3,seed=0"] = {"step": 700, "n_steps": 1500, "train_loss": 1.25e-6, "test_loss": 3.5}
    d.update(counts, force=True)
    line = out.getvalue().split("\r")[-1]
    assert "3/8 complete, 2 running, 1 failed, 2 pending" in line
    assert "frac_train=0.3,seed=0 700/1500 train 1.25e-06 test 3.50e+00" in line
    d.event(counts, "frac_train=0.3,seed=1", "FAILED: training diverged at step 11")
    assert "frac_train=0.3,seed=1: FAILED: training diverged at step 11\n" in out.getvalue()
    d.close()


def test_log_gets_one_line_per_event_and_quiet_gets_nothing():
    counts = {"complete": 1, "running": 0, "failed": 1, "pending": 0}
    log = io.StringIO()
    d = Display(total=2, stream=log)
    d.update(counts, force=True)  # no redrawn line in a log
    d.event(counts, "a", "complete in 1.0 s")
    assert log.getvalue() == "[2/2] a: complete in 1.0 s\n"
    quiet = io.StringIO()
    Display(total=2, enabled=False, stream=quiet).event(counts, "a", "x")
    assert quiet.getvalue() == ""
