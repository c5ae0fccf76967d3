"""Course delivery: `rlhf-edu course`, `homework`, `check`, `slides` (rlhf_edu/course.py, cli.py).

Fast tests use a tiny synthetic notebook (kernel start is the main cost); the real notebooks are
checked statically (committed decks up to date). Homework has its own tests (tests/test_homework.py).
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from rlhf_edu import course, slides
from rlhf_edu.cli import main

REPO = Path(__file__).resolve().parent.parent
REAL_NOTEBOOKS = course.find_notebooks(course.NOTEBOOKS_DIR)


def _slide(cell, kind):
    cell.metadata["slideshow"] = {"slide_type": kind}
    return cell


def synthetic_notebook(extra_source: str = "y = 1"):
    """Template in miniature: title, equation, setup, one exercise + check cell, a trailing cell."""
    nb = new_notebook(cells=[
        _slide(new_markdown_cell("# 99 · Synthetic: a tiny test notebook\n\nLearning goals."), "slide"),
        _slide(new_markdown_cell("## Background\n\n$$D_{\\mathrm{KL}}(p\\,\\|\\,q) = \\sum_x p(x)"
                                 "\\log\\frac{p(x)}{q(x)} \\tag{3}$$"), "subslide"),
        _slide(new_code_cell("import math\nx = 3"), "skip"),
        _slide(new_code_cell('def square(v):\n    """v: float -> float."""\n    ### BEGIN SOLUTION\n'
                             "    return v * v\n    ### END SOLUTION"), "-"),
        _slide(new_code_cell("# NBVAL_CHECK_OUTPUT\nprint('Exercise 1 (square):', square(x) == 9)"), "-"),
        _slide(new_code_cell(extra_source), "-"),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


@pytest.fixture(scope="module")
def executed_synthetic(tmp_path_factory):
    """The synthetic solution notebook, executed (as the committed notebooks are)."""
    d = tmp_path_factory.mktemp("solution")
    course.write_notebook(synthetic_notebook(), d / "99_synth.ipynb")
    runs = course.run_course(notebooks_dir=d, out_dir=d / "out", scale="tiny", stream=open(os.devnull, "w"))
    assert [r.status for r in runs] == ["ok"], runs
    return d / "out" / "99_synth.ipynb"


# ---------------------------------------------------------------------------------------------

def test_parse_only_and_find(tmp_path):
    assert course.parse_only("03,7") == ["03", "07"]
    assert course.parse_only("03_bradley_terry") == ["03"]
    with pytest.raises(course.CourseError, match="--only"):
        course.parse_only("three")
    for name in ["02_b.ipynb", "01_a.ipynb", "notes.ipynb", "1_x.ipynb"]:
        (tmp_path / name).write_text("{}")
    assert [p.name for p in course.find_notebooks(tmp_path)] == ["01_a.ipynb", "02_b.ipynb"]
    assert [p.name for p in course.find_notebooks(tmp_path, "2")] == ["02_b.ipynb"]
    with pytest.raises(course.CourseError, match="no notebook numbered 05"):
        course.find_notebooks(tmp_path, "05")


def test_course_runs_in_order_stops_at_failure_and_keeps_partial_output(tmp_path, capsys):
    src = tmp_path / "nb"
    course.write_notebook(synthetic_notebook(), src / "01_ok.ipynb")
    course.write_notebook(synthetic_notebook("print('before'); raise ValueError('boom')"), src / "02_bad.ipynb")
    course.write_notebook(synthetic_notebook(), src / "03_after.ipynb")
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    out = tmp_path / "out"
    rc = main(["course", "--notebooks", str(src), "--out", str(out), "--scale", "tiny"])
    printed = capsys.readouterr().out
    assert rc == 1
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before  # never modified in place
    assert "02_bad: FAILED" in printed and "ValueError: boom" in printed and "at cell 5" in printed
    table = printed[printed.index("notebook  status"):]
    assert re.search(r"01_ok\s+ok\s+\d+\.\d", table) and re.search(r"02_bad\s+failed\s+\d+\.\d", table)
    assert re.search(r"03_after\s+not run\s+-", table) and "total wall time:" in printed
    partial = nbformat.read(out / "02_bad.ipynb", as_version=4)
    assert partial.cells[4].outputs[0]["text"] == "Exercise 1 (square): True\n"  # earlier cells ran
    assert [o["output_type"] for o in partial.cells[5].outputs] == ["stream", "error"]
    assert not (out / "03_after.ipynb").exists()
    html = (out / "01_ok.html").read_text()
    assert "Exercise 1 (square): True" in html
    # MathJax and require.js come from the vendored copies, not a CDN
    assert re.search(r'src="[^"]*slides/vendor/mathjax-2\.7/MathJax\.js', html), "MathJax not local"
    assert not re.search(r"https?://(cdnjs|unpkg|cdn\.)", html), "CDN link in the course HTML"


def test_course_sets_scale_for_the_kernel(tmp_path):
    src = tmp_path / "nb"
    course.write_notebook(synthetic_notebook("# NBVAL_CHECK_OUTPUT\nimport os; print(os.environ['RLHF_EDU_SCALE'],"
                                             " os.getcwd())"), src / "01_env.ipynb")
    course.run_course(notebooks_dir=src, out_dir=tmp_path / "out", scale="gpt2", stream=open(os.devnull, "w"))
    cell = nbformat.read(tmp_path / "out" / "01_env.ipynb", as_version=4).cells[5]
    assert cell.outputs[0]["text"].split() == ["gpt2", str(src.resolve())]


def test_check_rejects_missing_malformed_and_non_homework(tmp_path, capsys, executed_synthetic):
    (tmp_path / "broken.ipynb").write_text("{not json")
    (tmp_path / "notes.txt").write_text("hello")
    cases = {
        str(tmp_path / "missing.ipynb"): "notebook not found",
        str(tmp_path / "broken.ipynb"): "not a readable notebook",
        str(tmp_path / "notes.txt"): "expected a .ipynb notebook",
        str(executed_synthetic): "is not a homework notebook",
    }
    for path, message in cases.items():
        before = Path(path).read_bytes() if Path(path).exists() else None
        assert main(["check", path]) == 2
        assert message in capsys.readouterr().err
        assert (Path(path).read_bytes() if Path(path).exists() else None) == before


def test_slides_are_offline_and_reference_existing_vendor_files(tmp_path, capsys):
    src = tmp_path / "nb"
    course.write_notebook(synthetic_notebook(), src / "99_synth.ipynb")
    out = tmp_path / "slides"
    assert main(["slides", "--notebooks", str(src), "--out", str(out)]) == 0
    deck = (out / "99_synth.slides.html").read_text()
    _assert_offline_deck(deck, out)
    assert "99 · Synthetic" in deck and "import math" not in deck  # 'skip' cells are left out


def test_slides_hide_figure_code_and_long_code(tmp_path):
    nb = synthetic_notebook()
    fig = new_code_cell("plt.plot([1, 2])  # FIGURE_CODE")
    fig.outputs = [nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"})]
    long = new_code_cell("\n".join(f"v{i} = {i}  # LONG_CODE" for i in range(13)))
    short = new_code_cell("z = 2  # SHORT_CODE")
    nb.cells += [_slide(fig, "subslide"), _slide(long, "-"), _slide(short, "-")]
    course.write_notebook(nb, tmp_path / "nb" / "99_synth.ipynb")
    slides.build_slides(notebooks_dir=tmp_path / "nb", out_dir=tmp_path / "s", stream=open(os.devnull, "w"))
    deck = (tmp_path / "s" / "99_synth.slides.html").read_text()
    assert "FIGURE_CODE" not in deck and "iVBORw0KGgo=" in deck  # the figure without its code
    assert "LONG_CODE" not in deck and "SHORT_CODE" in deck
    assert nb.cells[-3].metadata.get("tags") is None  # the source notebook is not touched


def _assert_offline_deck(deck: str, folder: Path):
    links = re.findall(r"""(?:src|href)=["']([^"'#][^"']*)["']""", deck)
    links += re.findall(r'"(vendor/[^"]+\.js)"', deck)  # the require([...]) list
    assert links, "no asset links found"
    for link in links:
        if link.startswith("data:"):
            continue
        assert not re.match(r"^(https?:)?//", link), f"network link {link}"
        assert (folder / link.split("?")[0]).exists(), f"missing asset {link}"
    assert "mathjax-2.7/MathJax.js" in deck and "reveal.js-4.0.2/dist/reveal.js" in deck


# --------------------------- the real notebooks and committed artefacts ----------------------

def test_vendor_assets_present():
    slides.check_vendor()
    assert (course.VENDOR_DIR / "VERSIONS.md").exists()


@pytest.mark.skipif(not REAL_NOTEBOOKS, reason="no notebooks/NN_*.ipynb yet")
@pytest.mark.parametrize("path", REAL_NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_deck_is_current(path, tmp_path):
    committed = slides.SLIDES_DIR / f"{path.stem}.slides.html"
    assert committed.exists(), f"{committed} missing: run `rlhf-edu slides`"
    slides.build_slides(out_dir=tmp_path, only=path.name[:2], stream=open(os.devnull, "w"))
    fresh = (tmp_path / committed.name).read_text()
    assert committed.read_text() == fresh, f"{committed.name} is stale: run `rlhf-edu slides`"
    _assert_offline_deck(fresh, slides.SLIDES_DIR)


def test_copy_course_copies_the_pairs_and_assets_and_keeps_student_files(tmp_path):
    dest = tmp_path / "my-course"
    dest.mkdir()
    (dest / "01_kl_directions.ipynb").write_text("my edits")  # a student's work is never overwritten
    copied = course.copy_course(dest, stream=io.StringIO())
    names = sorted(p.name for p in dest.iterdir() if p.is_file())
    assert len(names) == 16 and all(n[:2].isdigit() for n in names)  # 8 notebooks + their .py sources
    assert (dest / "01_kl_directions.ipynb").read_text() == "my edits"
    assert dest / "01_kl_directions.ipynb" not in copied and len(copied) == 15
    assert (dest / "slides" / "vendor" / "VERSIONS.md").exists()


def test_in_place_run_writes_back_a_clean_executed_notebook(tmp_path):
    src = tmp_path / "nbs"
    src.mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(6 * 7)")])
    course.write_notebook(nb, src / "01_tiny.ipynb")
    runs = course.run_course(scale="tiny", notebooks_dir=src, out_dir=src, in_place=True, stream=io.StringIO())
    assert [r.status for r in runs] == ["ok"]
    done = course.read_notebook(src / "01_tiny.ipynb")
    assert done.cells[0].execution_count == 1 and done.cells[0].outputs[0]["text"] == "42\n"
    assert "execution" not in done.cells[0].metadata
    assert not (src / "summary.json").exists()


def test_cache_and_tiny_model_locations_follow_the_environment(monkeypatch, tmp_path):
    from rlhf_edu import config, resources

    monkeypatch.setenv("RLHF_EDU_CACHE", str(tmp_path / "c"))
    assert resources.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("RLHF_EDU_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert resources.cache_dir() == tmp_path / "x" / "rlhf-edu"
    monkeypatch.delenv("RLHF_EDU_TINY_DIR", raising=False)
    assert config.tiny().model_source == str(resources.SHIPPED_TINY_DIR)
    assert (resources.SHIPPED_TINY_DIR / "model.safetensors").is_file()
    monkeypatch.setenv("RLHF_EDU_TINY_DIR", str(tmp_path / "rebuilt"))
    assert config.tiny().model_source == str(tmp_path / "rebuilt")
