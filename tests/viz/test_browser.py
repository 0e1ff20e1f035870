"""The report and an attention page, opened in a real headless Chromium with the network cut off.

Proves what static checks cannot: circuitsvis' React components really rendered from the inlined
bundle (their <canvas> heatmaps and head selector exist only after the JavaScript ran), every
figure loaded, and the page neither threw nor tried to load anything from outside.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from interp.config import preset
from interp.train import train
from interp.viz import attention, write_report
from interp.viz.page import html_page
from interp.viz.report import FIGURES

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.ci,
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium or chromium-browser binary on PATH (apt install chromium)"),
]

HOSTILE = "<script>alert(1)</script>"


def _dump_dom(page: Path, profile: Path, width: int | None = None) -> tuple[str, str]:
    """(DOM after scripts ran, Chromium's log with the page's console messages); ``width``: the window's width in
    CSS pixels (Chromium's default otherwise)."""
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-extensions", "--mute-audio",
           "--host-resolver-rules=MAP * ~NOTFOUND",  # no name resolves: a CDN reference could not load
           "--enable-logging=stderr", "--v=0",  # console messages (errors, CSP violations) go to stderr
           f"--user-data-dir={profile}", "--virtual-time-budget=5000",
           *([f"--window-size={width},1000"] if width else []),
           "--dump-dom", page.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)  # a hung browser, not a slow one
    assert proc.returncode == 0, f"chromium exited {proc.returncode}: {proc.stderr[-2000:]}"
    return proc.stdout, proc.stderr


class _Views(HTMLParser):
    """Per circuitsvis container (div.interp-attention): the elements React created inside it."""

    def __init__(self):
        super().__init__()
        self.views: dict[str, dict[str, int]] = {}
        self.h3_text: dict[str, list[str]] = {}
        self.body: dict[str, str] = {}
        self._stack: list[tuple[str, str | None]] = []  # (tag, view id it opened, if any)
        self._in_h3 = False

    _VOID = {"img", "br", "hr", "meta", "link", "input", "source", "col", "area", "base", "wbr"}

    def _current(self) -> str | None:
        return next((v for _, v in reversed(self._stack) if v), None)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body":
            self.body = {k: v or "" for k, v in a.items()}
        view = a.get("id") if "interp-attention" in (a.get("class") or "").split() else None
        current = self._current()
        if current is not None:
            counts = self.views[current]
            counts[tag] = counts.get(tag, 0) + 1
        if view:
            self.views[view], self.h3_text[view] = {}, []
        if tag not in self._VOID:
            self._stack.append((tag, view))
        self._in_h3 = tag == "h3" and current is not None

    def handle_endtag(self, tag):
        for i in range(len(self._stack) - 1, -1, -1):
            if self._stack[i][0] == tag:
                del self._stack[i:]
                break
        self._in_h3 = False

    def handle_data(self, data):
        if self._in_h3 and (view := self._current()):
            self.h3_text[view].append(data)


def _views(html_text: str) -> _Views:
    parser = _Views()
    parser.feed(html_text)
    return parser


def _assert_clean_console(log: str) -> None:
    console = [line for line in log.splitlines() if ":CONSOLE" in line]
    bad = [line for line in console if re.search(r"Uncaught|Content Security Policy|Failed to load|ERR_", line)]
    assert bad == [], "the page logged errors:\n" + "\n".join(bad)


def _assert_rendered(static: str, dom: str, n_views: int, component_h3: str | None) -> None:
    before, after = _views(static), _views(dom)
    assert len(before.views) == n_views and all(v == {} for v in before.views.values()), \
        "the static page should hold only empty containers"
    assert set(after.views) == set(before.views)
    for vid, tags in after.views.items():
        assert tags.get("canvas", 0) >= 1, f"{vid}: circuitsvis drew no <canvas> heatmap ({tags})"
        if component_h3:
            assert any(component_h3 in t for t in after.h3_text[vid]), f"{vid}: no '{component_h3}' heading"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("browser") / "tiny run"
    return train(preset("tiny").replace(n_steps=100, save_every=50, name=HOSTILE), out, progress=False)


def test_report_renders_in_chromium(tiny_run, tmp_path):
    index = write_report(tiny_run, tmp_path / "report")
    static = index.read_text()
    dom, log = _dump_dom(index, tmp_path / "profile")
    _assert_clean_console(log)
    # Every figure, the mechanism's included, finished loading with real pixels (the page's own load handler).
    parsed = _views(dom)
    srcs = re.findall(r'<img\b[^>]*\bsrc="([^"]+)"', static)
    assert sorted(srcs) == sorted(FIGURES.values())
    assert parsed.body.get("data-images-loaded") == f"{len(srcs)}/{len(srcs)}"
    # One compact circuitsvis view (the final model on a few inputs), and it drew.
    assert static.count("CircuitsVis.render(") == 1
    _assert_rendered(static, dom, n_views=1, component_h3="Head Selector")
    assert "<script>alert" not in re.sub(r"<script>/\* interp: circuitsvis bundle[\s\S]*?</script>", "", dom)


def test_attention_page_renders_in_chromium(tiny_run, tmp_path):
    model = tiny_run.load()
    all_heads = attention(model, [(1, 2), (3, 4), (22, 0)], title=HOSTILE).save(tmp_path / "heads.html")
    dom, log = _dump_dom(all_heads, tmp_path / "profile")
    _assert_clean_console(log)
    _assert_rendered(all_heads.read_text(), dom, n_views=1, component_h3="Head Selector")
    one_head = attention(model, [(5, 6)], head=1).save(tmp_path / "head1.html")
    dom, log = _dump_dom(one_head, tmp_path / "profile")
    _assert_clean_console(log)
    _assert_rendered(one_head.read_text(), dom, n_views=1, component_h3=None)


def test_a_view_without_the_bundle_explains_instead_of_throwing(tiny_run, tmp_path):
    """A notebook output whose bundle was cleared: the fragment says what to do and logs no error."""
    page = tmp_path / "fragment.html"
    view = attention(tiny_run.load(), [(1, 2)])
    page.write_text(html_page("fragment only", view.fragment("lonely"), bundle=False))
    dom, log = _dump_dom(page, tmp_path / "profile")
    _assert_clean_console(log)
    assert "reset_bundle()" in re.search(r'<div id="lonely"[^>]*>([^<]*)</div>', dom).group(1)


def test_sweep_report_renders_in_chromium(tmp_path):
    """The emergence report of a sweep directory (written by hand, one hostile run name): every figure
    loads, the console is clean, and the hostile name stays text."""
    import pandas as pd

    from interp.emergence.synthetic import synthetic_sweep
    from interp.viz.sweep_report import write_sweep_report

    results, _ = synthetic_sweep(frac_train=(0.1, 0.3, 0.5), seeds=(0, 1), n_steps=6000, every=200)
    results["run"] = results["run"].replace({"frac0.3-seed1": HOSTILE})
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    results.to_csv(sweep / "results.csv", index=False)
    pd.DataFrame({"run": results["run"].unique(), "status": "done"}).to_csv(sweep / "summary.csv", index=False)
    (sweep / "sweep.json").write_text('{"axes": ["frac_train", "data_seed"]}')
    index = write_sweep_report(sweep, tmp_path / "report", n_boot=200)
    static = index.read_text()
    dom, log = _dump_dom(index, tmp_path / "profile")
    _assert_clean_console(log)
    n_imgs = len(re.findall(r"<img\b", static))
    assert n_imgs >= 4
    assert _views(dom).body.get("data-images-loaded") == f"{n_imgs}/{n_imgs}"
    assert "<script>alert" not in dom and "&lt;script&gt;alert(1)&lt;/script&gt;" in dom


# measures, after layout, where the answer table's verdict column ends and whether the page scrolls sideways
_LAYOUT_PROBE = """<script>
window.addEventListener("load", function () {
  var t = document.getElementById("verdicts"), heads = t.rows[0].cells, right = 0, col = -1;
  for (var i = 0; i < heads.length; i++) { if (heads[i].textContent === "verdict") { col = i; } }
  for (var r = 0; r < t.rows.length; r++) { right = Math.max(right, t.rows[r].cells[col].getBoundingClientRect().right); }
  var b = document.body;
  b.setAttribute("data-verdict-right", Math.ceil(right));
  b.setAttribute("data-viewport", document.documentElement.clientWidth);
  b.setAttribute("data-page-width", document.documentElement.scrollWidth);
  b.setAttribute("data-table-scrolls", t.parentElement.scrollWidth > t.parentElement.clientWidth ? "yes" : "no");
});
</script>"""


def test_shipped_sweep_report_renders_in_chromium(tmp_path):
    """The report of the shipped sweep (sweeps/emergence-small): every figure loads and the console is clean; at a
    1,280 px window the answer table's verdict column lies inside the window, with no sideways scrolling."""
    from interp.viz.sweep_report import write_sweep_report

    index = write_sweep_report(Path(__file__).resolve().parents[2] / "sweeps" / "emergence-small", tmp_path / "r",
                               n_boot=200)
    static = index.read_text()
    dom, log = _dump_dom(index, tmp_path / "profile")
    _assert_clean_console(log)
    n_imgs = len(re.findall(r"<img\b", static))
    assert n_imgs >= 4 and _views(dom).body.get("data-images-loaded") == f"{n_imgs}/{n_imgs}"
    probe = index.with_name("layout.html")  # beside index.html: the same stylesheet and figures
    probe.write_text(static.replace("</body>", _LAYOUT_PROBE + "</body>"))
    body = _views(_dump_dom(probe, tmp_path / "profile-1280", width=1280)[0]).body
    viewport = int(body["data-viewport"])  # 1,280 less the vertical scroll bar
    assert 1200 <= viewport <= 1280, body
    assert int(body["data-verdict-right"]) <= viewport, body  # the verdict column ends inside the window
    assert int(body["data-page-width"]) == viewport and body["data-table-scrolls"] == "no", body
