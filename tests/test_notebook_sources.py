"""Every notebook is a jupytext pair: NN_name.py (the source) and NN_name.ipynb (with outputs).

An edit made on one side only (in an editor, or in Jupyter without jupytext) fails here until
`make notebooks` (or `jupytext --sync`) brings the pair back together.
"""

import jupytext
import pytest

from rlhf_edu import course, homework

NOTEBOOKS = course.find_notebooks(course.NOTEBOOKS_DIR)


def _cells(nb):
    return [(c.cell_type, c.source, c.metadata.get("slideshow", {}).get("slide_type", "-")) for c in nb.cells]


def test_every_notebook_has_its_source():
    assert len(NOTEBOOKS) == 8
    assert [p.with_suffix(".py").exists() for p in NOTEBOOKS] == [True] * 8


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_source_and_notebook_agree(path):
    from_py = jupytext.read(path.with_suffix(".py"))
    from_ipynb = jupytext.read(path)
    assert _cells(from_py) == _cells(from_ipynb), (
        f"{path.stem}.py and {path.name} differ: run `make notebooks` (or `jupytext --sync {path}`)")


def test_a_one_sided_edit_is_caught(tmp_path):
    """The comparison above can fail: change one cell of the .py and the pair no longer agrees."""
    path = NOTEBOOKS[0]
    edited = path.with_suffix(".py").read_text().replace("import inspect", "import inspect  # edited", 1)
    assert edited != path.with_suffix(".py").read_text()
    assert _cells(jupytext.reads(edited, fmt="py:percent")) != _cells(jupytext.read(path))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebooks_carry_no_volatile_metadata(path):
    nb = course.read_notebook(path)
    assert "widgets" not in nb.metadata
    for cell in nb.cells:
        assert "execution" not in cell.metadata
        if cell.cell_type == "code" and cell.source.strip():
            assert cell.execution_count is not None, f"{path.name}: unexecuted code cell"
            assert not any(course.WIDGET_VIEW in o.get("data", {}) for o in cell.outputs)
    assert homework.check_outputs(nb), "expected stored check outputs"


def test_clean_notebook_drops_only_volatile_parts():
    import nbformat

    nb = nbformat.v4.new_notebook(metadata={"widgets": {"state": {}}, "kernelspec": {"name": "python3", "display_name": "Python 3"}})
    cell = nbformat.v4.new_code_cell("print(1)", execution_count=3, metadata={"execution": {"iopub.status.busy": "2026-12-01T10:00:00Z"}, "slideshow": {}})
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n"),
                    nbformat.v4.new_output("display_data", data={course.WIDGET_VIEW: {"model_id": "x"},
                                                                  "text/plain": "50%|#####| 0.1s"})]
    nb.cells.append(cell)
    out = course.clean_notebook(nb)
    assert "widgets" not in out.metadata and out.metadata["kernelspec"]["name"] == "python3"
    assert out.cells[0].metadata == {"slideshow": {}} and out.cells[0].execution_count == 3
    assert [o.output_type for o in out.cells[0].outputs] == ["stream"]
