"""Offline reveal.js decks made from the executed notebooks (``rlhf-edu slides``)."""

from __future__ import annotations

import copy
import re
import shutil
import sys
from pathlib import Path

from .course import (JQUERY_JS, MATHJAX_DIR, NOTEBOOKS_DIR, REQUIRE_JS, REVEAL_DIR, VENDOR_DIR, WIDGET_VIEW,
                     WORK_DIR, CourseError, find_notebooks, offline_assets, read_notebook)

SLIDES_DIR = WORK_DIR / "slides"



def check_vendor(vendor_dir: Path = VENDOR_DIR) -> None:
    needed = [f"{REVEAL_DIR}/dist/reveal.js", f"{REVEAL_DIR}/dist/reveal.css", f"{REVEAL_DIR}/dist/theme/white.css",
              f"{REVEAL_DIR}/plugin/notes/notes.js", f"{MATHJAX_DIR}/MathJax.js", REQUIRE_JS, JQUERY_JS]
    missing = [n for n in needed if not (vendor_dir / n).exists()]
    if missing:
        raise CourseError(f"offline slide assets missing in {vendor_dir}: {', '.join(missing)} "
                          f"(see {vendor_dir / 'VERSIONS.md'})")


HIDE_INPUT_TAG = "rlhf_edu_slides_hide_input"
MAX_SLIDE_CODE_LINES = 12


def prepare_for_slides(nb):
    """A copy of ``nb`` marked for the deck: a code cell that draws a figure shows only the figure,
    and code longer than ``MAX_SLIDE_CODE_LINES`` lines is hidden (its output stays). Progress-bar
    widget outputs are dropped so that a rebuild gives byte-identical decks.

    Cells the notebook marks ``skip`` are left out by reveal.js itself.
    """
    nb = copy.deepcopy(nb)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        # progress-bar widgets mean nothing on a slide, and nbconvert renders each with a fresh
        # random element id, which would make the decks differ from build to build
        cell.outputs = [o for o in cell.outputs if WIDGET_VIEW not in o.get("data", {})]
        has_figure = any("image/png" in o.get("data", {}) or "image/svg+xml" in o.get("data", {})
                         for o in cell.outputs)
        if has_figure or len(cell.source.splitlines()) > MAX_SLIDE_CODE_LINES:
            tags = list(cell.metadata.get("tags", []))
            cell.metadata["tags"] = tags + [HIDE_INPUT_TAG]
    return nb


def slides_exporter(vendor_rel: str = "vendor"):
    """nbconvert's SlidesExporter with every asset pointed at local copies (no CDN)."""
    from nbconvert import SlidesExporter
    from traitlets.config import Config

    cfg = Config()
    cfg.TagRemovePreprocessor.enabled = True
    cfg.TagRemovePreprocessor.remove_input_tags = {HIDE_INPUT_TAG}
    exp = SlidesExporter(config=cfg)
    exp.reveal_url_prefix = f"{vendor_rel}/{REVEAL_DIR}"
    exp.reveal_theme = "white"
    exp.reveal_transition = "none"  # instant slide changes; also keeps screenshots deterministic
    exp.exclude_input_prompt = True
    exp.exclude_output_prompt = True
    return offline_assets(exp, vendor_rel)


_CDN_RE = re.compile(r"""(?:src|href)=["'](?:https?:)?//""")


def build_slides(*, notebooks_dir: Path | str = NOTEBOOKS_DIR, out_dir: Path | str = SLIDES_DIR,
                 only=None, stream=None) -> list[Path]:
    """Write ``out_dir/NN_name.slides.html`` for every notebook, loading assets from ``out_dir/vendor``."""
    stream = stream or sys.stdout
    out_dir = Path(out_dir).resolve()
    vendor = out_dir / "vendor"
    if out_dir != SLIDES_DIR.resolve():  # decks elsewhere get their own copy of the assets
        check_vendor(VENDOR_DIR)
        shutil.copytree(VENDOR_DIR, vendor, dirs_exist_ok=True)
    check_vendor(vendor)
    exporter = slides_exporter("vendor")
    written = []
    for path in find_notebooks(notebooks_dir, only):
        nb = read_notebook(path)
        body, _ = exporter.from_notebook_node(prepare_for_slides(nb), resources={"metadata": {"name": path.stem}})
        bad = _CDN_RE.findall(body)
        if bad:
            raise CourseError(f"{path.name}: the deck still links to the network ({bad[:3]})")
        target = out_dir / f"{path.stem}.slides.html"
        target.write_text(body, encoding="utf-8")
        n = sum(1 for c in nb.cells if c.metadata.get("slideshow", {}).get("slide_type") in ("slide", "subslide"))
        print(f"{path.name}: {n} slides -> {target}", file=stream)
        written.append(target)
    if not written:
        print(f"no notebooks found in {notebooks_dir}", file=stream)
    return written
