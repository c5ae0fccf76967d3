"""Executing a notebook twice at tiny scale gives identical checked outputs.

Two real notebooks run twice each from fresh kernels (the fastest two with training loops and
sampling are too slow for the unit suite; 01 and 04 cover seeded sampling, Monte Carlo and
optimisation). ``benchmarks/course_walltime.py --repeats 2`` checks all eight the same way.
"""

import copy

import nbformat
import pytest

from rlhf_edu import course, homework

TWICE = ["01_kl_directions", "04_reward_collapse"]


@pytest.mark.parametrize("stem", TWICE)
def test_two_fresh_executions_give_identical_check_outputs(stem):
    path = course.NOTEBOOKS_DIR / f"{stem}.ipynb"
    committed = nbformat.read(path, as_version=4)
    outputs = []
    for _ in range(2):
        nb = copy.deepcopy(committed)
        error, cell = course.execute_notebook(nb, course.NOTEBOOKS_DIR, {"RLHF_EDU_SCALE": "tiny"})
        assert error is None, f"{stem} failed at cell {cell}: {error}"
        outputs.append(homework.check_outputs(nb))
    assert len(outputs[0]) >= 3 and all(outputs[0]), "expected several non-empty check cells"
    assert outputs[0] == outputs[1]
    assert outputs[0] == homework.check_outputs(committed)


def test_check_outputs_reads_only_check_cells():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\nprint(1)", outputs=[
            nbformat.v4.new_output("stream", name="stdout", text="1\n"),
            nbformat.v4.new_output("stream", name="stderr", text="progress 50%\n")]),
        nbformat.v4.new_code_cell("print(2)", outputs=[nbformat.v4.new_output("stream", name="stdout", text="2\n")]),
        nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\n3", outputs=[
            nbformat.v4.new_output("execute_result", data={"text/plain": "3"}, execution_count=1)]),
    ])
    assert homework.check_outputs(nb) == ["1", "3"]
