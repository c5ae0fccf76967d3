"""The decks open offline in a real browser: headless Chromium, networking off, from file://.

Checks that reveal.js ran (the title slide is the present slide), that MathJax typeset the
equations (its output elements exist and no raw $$ TeX is left on the equation slide), and that the
screenshots are real pictures. Skips where Debian's `chromium` is not installed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from rlhf_edu import course, slides

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed "
                                "(Debian: apt-get install -y chromium); the offline-deck browser test needs it")
SHOTS_DIR = os.environ.get("RLHF_EDU_SCREENSHOTS")  # set to keep the PNGs for a person to look at


def chromium(url: str, profile: Path, *args: str, budget_ms: int = 15000) -> subprocess.CompletedProcess:
    """Headless Chromium with networking off: every host is unresolvable and the proxy goes nowhere."""
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-default-apps", "--disable-extensions", f"--user-data-dir={profile}",
           "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND",
           "--hide-scrollbars", "--window-size=1280,800", f"--virtual-time-budget={budget_ms}", *args, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def present_section(dom: str) -> str:
    """HTML of the innermost slide reveal.js marked 'present' (a section without nested sections)."""
    for m in re.finditer(r"<section\b([^>]*)>", dom):
        if re.search(r'class="[^"]*\bpresent\b', m.group(1)):
            end = dom.find("</section>", m.end())
            body = dom[m.end():end]
            if "<section" not in body:
                return body
    raise AssertionError("no present slide in the DOM: reveal.js did not start")


def first_equation_hash(deck: str) -> str:
    """reveal.js URL hash (#/h/v) of the first slide with display math (nbconvert nests
    ``<section>`` stacks (h) holding ``<section>`` slides (v))."""
    h = v = -1
    depth = 0
    for m in re.finditer(r"<section\b[^>]*>|</section>|\$\$", deck):
        tok = m.group(0)
        if tok == "$$":
            if depth == 2:
                return f"#/{h}/{v}"
        elif tok.startswith("</"):
            depth -= 1
        else:
            depth += 1
            if depth == 1:
                h, v = h + 1, -1
            elif depth == 2:
                v += 1
    raise AssertionError("deck has no display equation")


def ink_fraction(png: Path) -> float:
    """Fraction of pixels that are clearly not white."""
    import matplotlib.image as mpimg

    img = mpimg.imread(png)[..., :3]
    return float((img.min(axis=-1) < 0.6).mean())


@pytest.fixture(scope="module")
def deck(tmp_path_factory) -> Path:
    """A committed real deck if there is one, else a fresh deck of the synthetic notebook."""
    real = sorted(slides.SLIDES_DIR.glob("[0-9][0-9]_*.slides.html"))
    for path in real:
        if "$$" in path.read_text():
            return path
    from test_course import synthetic_notebook

    d = tmp_path_factory.mktemp("deck")
    course.write_notebook(synthetic_notebook(), d / "nb" / "99_synth.ipynb")
    slides.build_slides(notebooks_dir=d / "nb", out_dir=d / "slides", stream=open(os.devnull, "w"))
    return d / "slides" / "99_synth.slides.html"


def test_deck_opens_offline_with_title_and_rendered_equation(deck, tmp_path):
    html = deck.read_text()
    title = re.search(r"<h1[^>]*>(.*?)<", html).group(1).strip()
    url = deck.resolve().as_uri()
    eq_hash = first_equation_hash(html)
    shots = Path(SHOTS_DIR) if SHOTS_DIR else tmp_path
    shots.mkdir(parents=True, exist_ok=True)

    # 1. the title slide: reveal.js started on it and it shows the notebook's title
    dom = chromium(url, tmp_path / "p1", "--dump-dom").stdout
    assert "reveal ready" in dom or 'class="reveal' in dom
    first = present_section(dom)
    assert title in first, f"title {title!r} not on the first present slide"
    title_png = shots / f"{deck.stem}.title.png"
    chromium(url, tmp_path / "p2", f"--screenshot={title_png}")
    assert title_png.exists() and ink_fraction(title_png) > 0.002, "title screenshot is blank"

    # 2. the first equation slide: MathJax replaced the TeX with its output elements
    dom = chromium(url + eq_hash, tmp_path / "p3", "--dump-dom").stdout
    slide = present_section(dom)
    assert re.search(r'class="MathJax(_Display|_CHTML|_SVG)?\b', slide), "MathJax produced no output element"
    assert 'type="math/tex; mode=display"' in slide  # the TeX source MathJax consumed
    assert "STIXMathJax_" in slide, "MathJax fell back to system fonts: vendored STIX-Web fonts not used"
    assert "$$" not in re.sub(r"<script.*?</script>", "", slide, flags=re.S), "raw TeX left on the slide"
    assert 'id="MathJax_Message" style="display: none;"' in dom or "MathJax_Message" not in dom
    assert "Math Processing Error" not in dom and "Math input error" not in dom
    eq_png = shots / f"{deck.stem}.equation.png"
    chromium(url + eq_hash, tmp_path / "p4", f"--screenshot={eq_png}")
    assert eq_png.exists() and ink_fraction(eq_png) > 0.002, "equation screenshot is blank"
