"""Offline HTML pages: one stylesheet, a Content-Security-Policy that forbids every network load, the
circuitsvis bundle inlined from the installed wheel, and JSON that is safe inside ``<script>``.

The report and every saved attention view are built with :func:`html_page`, so they look alike and
both work without a network.
"""

from __future__ import annotations

import html
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import InterpError

__all__ = ["CSP", "CSS", "IMAGE_CHECK", "BUNDLE_MARKER", "script_json", "bundle_path", "bundle_script", "html_page"]

# Marks the one inlined bundle of a page (tests count it; a page must hold exactly one).
BUNDLE_MARKER = "interp: circuitsvis bundle"

# A page that loads nothing from anywhere: inline scripts and styles, images from beside the page.
CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
       "img-src 'self' file: data: blob:; font-src data:")

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1150px; margin: 1.5em auto;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; overflow-wrap: anywhere; }
h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; } h3 { margin-bottom: 0.3em; }
table.numbers { border-collapse: collapse; margin: 0.8em 0; max-width: 100%; }
table.numbers th, table.numbers td { border: 1px solid #ddd; padding: 0.25em 0.7em; text-align: left;
       vertical-align: top; }
table.numbers th { background: #f5f5f5; font-weight: 600; white-space: nowrap; }
table.numbers td { overflow-wrap: anywhere; }
div.wide { overflow-x: auto; max-width: 100%; }
table.sweep td { overflow-wrap: normal; white-space: nowrap; }
table.sweep th { white-space: normal; }  /* headers wrap between words, so a wide table fits 1400 px */
table.sweep td.run { white-space: normal; }  /* run names break after their commas (<wbr>), never inside a field */
table.answer { width: 100%; } table.answer td { overflow-wrap: break-word; }  /* sentences wrap between words */
figure { margin: 1em 0; } img.figure { max-width: 100%; height: auto; border: 1px solid #eee; }
.note, figcaption { color: #555; font-size: 0.92em; }
.banner { background: #fff4d6; border: 2px solid #e0a800; border-radius: 6px; padding: 0.7em 1em; margin: 1em 0;
          font-weight: 600; }
.story { display: grid; grid-template-columns: repeat(auto-fit, minmax(380px, 1fr)); gap: 0.8em; }
.story section { border: 1px solid #e4e4e4; border-left: 5px solid var(--phase, #999); border-radius: 4px;
                 padding: 0.2em 0.9em 0.6em; }
.story h3 { font-size: 1.02em; } .story p { margin: 0.35em 0; font-size: 0.93em; }
.story .differs { color: #8a4b00; }
.interp-attention-view { margin: 0.8em 0; }
.interp-attention { min-height: 2em; }
/* circuitsvis AttentionHeads: the head thumbnails take 1/12 of the width on wide screens, so the view keeps the
   page width; only its zoomed pattern (the second row) is kept compact. */
.interp-attention > div > div:nth-of-type(2) { max-width: 600px; }
pre { background: #f7f7f7; padding: 0.6em; overflow-x: auto; font-size: 0.85em; white-space: pre-wrap; }
@media (max-width: 700px) { body { padding: 0 0.5em; } table.numbers th { white-space: normal; }
  table.numbers th, table.numbers td { padding: 0.2em 0.4em; } }
"""


def script_json(value: Any) -> str:
    """JSON for a ``<script>``: ``<``, ``>``, ``&``, U+2028 and U+2029 become ``\\uXXXX`` escapes.

    Those characters only occur inside JSON strings, where the escapes mean the same thing, so
    ``json.loads(script_json(x)) == x``, and no string can close the script or open a comment.
    """
    text = json.dumps(value, allow_nan=False, separators=(",", ":"))
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def bundle_path() -> Path:
    """The circuitsvis browser bundle shipped inside the installed wheel."""
    import circuitsvis

    return Path(circuitsvis.__file__).parent / "dist" / "cdn" / "iife.js"


@lru_cache(maxsize=1)
def _bundle_source() -> str:
    path = bundle_path()
    try:
        js = path.read_text(encoding="utf-8")
    except OSError as e:
        raise InterpError(f"{path}: cannot read the circuitsvis bundle ({e.strerror}); "
                          "reinstall circuitsvis (pip install --force-reinstall circuitsvis)") from None
    if "var CircuitsVis" not in js:
        raise InterpError(f"{path}: does not define CircuitsVis; this circuitsvis version is not supported")
    # The source map lives beside the wheel's file, not beside our page; browsers would ask for it.
    js = re.sub(r"^//# sourceMappingURL=.*$", "", js, flags=re.MULTILINE)
    # Inside a script element only "</script" (any case) and "<!--" are special. In the bundle they
    # occur inside string literals, where "<\/" and "<\!" mean the same characters.
    js = re.sub(r"</(script)", r"<\\/\1", js, flags=re.IGNORECASE)
    return js.replace("<!--", "<\\!--")


def bundle_script() -> str:
    """``<script>`` defining ``window.CircuitsVis`` from the wheel's bundle (put exactly one per page)."""
    return f"<script>/* {BUNDLE_MARKER} */\n{_bundle_source()}\n</script>"


def html_page(title: str, body: str, *, bundle: bool = True, head: str = "") -> str:
    """A standalone HTML document with the shared stylesheet: ``title`` is escaped, ``body`` and
    ``head`` are inserted as they are. The Content-Security-Policy forbids any network load."""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{html.escape(CSP)}\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n{head}"
        f"{bundle_script() if bundle else ''}\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


# Records on <body> whether every figure really loaded (read by tests in a headless browser).
IMAGE_CHECK = """<script>
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute("data-images-loaded", ok + "/" + imgs.length);
});
</script>"""
