"""Homework: student notebooks made from the solution notebooks, and grading them.

``rlhf-edu homework`` writes the student copies (nbgrader's ClearSolutions empties the solution
regions); ``rlhf-edu check`` runs a submission and prints one pass/fail line per exercise.
"""

from __future__ import annotations

import copy
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .course import (BEGIN_SOLUTION, CELL_TIMEOUT, CHECK_MARK, END_SOLUTION, NOTEBOOKS_DIR, WORK_DIR,
                     CourseError, _n_code_cells, execute_notebook,
                     find_notebooks, format_table, has_solution, is_check_cell, read_notebook,
                     write_notebook)

HOMEWORK_DIR = WORK_DIR / "homework"
HOMEWORK_KEY = "rlhf_edu"  # notebook/cell metadata namespace written by make_homework



@dataclass
class Exercise:
    number: int
    name: str  # the function (or first def) the student writes
    solution_cell: int
    check_cells: list[int]


_DEF_RE = re.compile(r"^\s*def\s+([A-Za-z_]\w*)\s*\(", re.M)


def find_exercises(nb) -> list[Exercise]:
    """Exercises in order: each solution cell with the check cells that follow it (up to the next one)."""
    exercises: list[Exercise] = []
    for idx, cell in enumerate(nb.cells):
        if has_solution(cell) or (cell.cell_type == "code" and cell.metadata.get(HOMEWORK_KEY, {}).get("exercise")):
            m = _DEF_RE.search(cell.source)
            exercises.append(Exercise(len(exercises) + 1, m.group(1) if m else f"cell {idx}", idx, []))
        elif is_check_cell(cell) and exercises:
            exercises[-1].check_cells.append(idx)
    return exercises


def _plain_output(outputs) -> str:
    """The text nbval compares: stdout streams and text/plain results, concatenated."""
    parts = []
    for out in outputs:
        if out.get("output_type") == "stream" and out.get("name") == "stdout":
            parts.append(out.get("text", ""))
        elif out.get("output_type") in ("execute_result", "display_data"):
            data = out.get("data", {})
            if "text/plain" in data and "image/png" not in data:
                parts.append(data["text/plain"] if isinstance(data["text/plain"], str) else "".join(data["text/plain"]))
    return "".join(parts).strip()


def check_outputs(nb) -> list[str]:
    """The text of every ``# NBVAL_CHECK_OUTPUT`` cell's outputs, in order (what nbval compares).

    Two executions of a deterministic notebook give equal lists (tests/test_determinism.py).
    """
    return [_plain_output(c.outputs) for c in nb.cells if is_check_cell(c)]


def make_homework(nb, source_name: str = "notebook"):
    """The student version of a solution notebook (a new notebook; ``nb`` is not modified).

    - Solution regions are replaced by ``# YOUR CODE HERE`` / ``raise NotImplementedError()``
      with nbgrader's own ClearSolutions preprocessor (nbgrader's ``code_stub`` for Python).
    - Check cells (``# NBVAL_CHECK_OUTPUT``) keep their reference outputs, so ``pytest --nbval``
      compares the student's results with them; the reference text is also stored in the cell
      metadata so ``rlhf-edu check`` still works after a student re-runs the notebook.
    - Every other output is cleared (no solution output leaks; smaller files).
    """
    from nbgrader.preprocessors import ClearSolutions

    exercises = find_exercises(nb)
    if not exercises:
        raise CourseError(f"{source_name} has no exercises (no '{BEGIN_SOLUTION}' cells)")
    for ex in exercises:
        if not ex.check_cells:
            raise CourseError(f"{source_name}: exercise {ex.number} ({ex.name}, cell {ex.solution_cell}) "
                              f"has no '{CHECK_MARK}' cell after it")
    unexecuted = [c for ex in exercises for c in ex.check_cells if not _plain_output(nb.cells[c].outputs)]
    if unexecuted:
        raise CourseError(f"{source_name}: check cell(s) {unexecuted} have no stored output to compare with; "
                          f"execute the solution notebook first")
    hw = copy.deepcopy(nb)
    pre = ClearSolutions(enforce_metadata=False, begin_solution_delimeter=BEGIN_SOLUTION,
                         end_solution_delimeter=END_SOLUTION)
    try:
        hw, _ = pre.preprocess(hw, {})
    except RuntimeError as exc:
        raise CourseError(f"{source_name}: malformed solution markers: {exc}") from None
    check_of = {c: ex for ex in exercises for c in ex.check_cells}
    for idx, cell in enumerate(hw.cells):
        cell.metadata.pop("execution", None)  # run timestamps: noise in a handout
        if cell.cell_type != "code":
            continue
        if idx in check_of:
            ex = check_of[idx]
            cell.metadata[HOMEWORK_KEY] = {"check_of": ex.number, "reference": _plain_output(cell.outputs)}
        else:
            cell.outputs = []
            cell.execution_count = None
            if idx in {ex.solution_cell for ex in exercises}:
                cell.metadata[HOMEWORK_KEY] = {"exercise": next(e.number for e in exercises if e.solution_cell == idx)}
    hw.metadata[HOMEWORK_KEY] = {"homework": True, "source": source_name,
                                 "exercises": [{"number": ex.number, "name": ex.name} for ex in exercises]}
    return hw


def build_homework(*, notebooks_dir: Path | str = NOTEBOOKS_DIR, out_dir: Path | str = HOMEWORK_DIR,
                   only=None, stream=None) -> list[Path]:
    """Write ``out_dir/NN_name.ipynb`` for every solution notebook that has exercises."""
    stream = stream or sys.stdout
    notebooks_dir = Path(notebooks_dir).resolve()
    out_dir = Path(out_dir).resolve()
    if out_dir == notebooks_dir:
        raise CourseError("--out must not be the notebooks directory (solution notebooks are never overwritten)")
    written, errors = [], []
    for path in find_notebooks(notebooks_dir, only):
        nb = read_notebook(path)
        if not find_exercises(nb):
            print(f"{path.name}: no exercises, skipped", file=stream)
            continue
        try:
            hw = make_homework(nb, source_name=f"notebooks/{path.name}")
        except CourseError as exc:  # one broken notebook does not block the others
            print(f"{path.name}: NOT written: {exc}", file=stream)
            errors.append(str(exc))
            continue
        target = out_dir / path.name
        write_notebook(hw, target)
        n = len(hw.metadata[HOMEWORK_KEY]["exercises"])
        print(f"{path.name}: {n} exercise(s) -> {target}", file=stream)
        written.append(target)
    if errors:
        raise CourseError(f"{len(errors)} homework notebook(s) not written:\n  " + "\n  ".join(errors))
    if not written:
        print(f"no notebooks with exercises in {notebooks_dir}", file=stream)
    return written


@dataclass
class ExerciseResult:
    number: int
    name: str
    passed: bool
    detail: str


def _error_of(cell) -> str | None:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return f"{out.get('ename')}: {out.get('evalue')}".strip().rstrip(":")
    return None


def check_homework(path: Path | str, *, timeout: int = CELL_TIMEOUT, scale: str | None = None,
                   progress: bool = True) -> list[ExerciseResult]:
    """Run a student's homework notebook (an in-memory copy; the file is never written) and grade it.

    An exercise passes when its solution cell runs without error and each of its check cells
    runs without error and prints the reference output recorded when the homework was made.
    """
    from tqdm.auto import tqdm

    path = Path(path)
    if path.suffix != ".ipynb":
        raise CourseError(f"{path}: expected a .ipynb notebook")
    nb = read_notebook(path)
    meta = nb.metadata.get(HOMEWORK_KEY, {})
    if not meta.get("homework"):
        raise CourseError(f"{path} is not a homework notebook (no '{HOMEWORK_KEY}.homework' metadata); "
                          f"generate one with `rlhf-edu homework`")
    exercises = find_exercises(nb)
    references = {i: c.metadata.get(HOMEWORK_KEY, {}).get("reference") for i, c in enumerate(nb.cells)}
    if not exercises or any(references[c] is None for ex in exercises for c in ex.check_cells):
        raise CourseError(f"{path}: homework metadata is damaged (exercise or reference output missing); "
                          f"regenerate it with `rlhf-edu homework`")
    work = copy.deepcopy(nb)
    env = {"RLHF_EDU_SCALE": scale or os.environ.get("RLHF_EDU_SCALE") or "tiny"}
    bar = tqdm(total=_n_code_cells(work), desc=f"checking {path.name}", unit="cell", file=sys.stderr,
               disable=not progress)
    with bar:
        error, _ = execute_notebook(work, path.resolve().parent, env, allow_errors=True, progress=bar,
                                    timeout=timeout)
    if error is not None:  # only timeouts / dead kernels get here with allow_errors=True
        raise CourseError(f"{path}: execution stopped: {error}")
    results = []
    for ex in exercises:
        problems = []
        err = _error_of(work.cells[ex.solution_cell])
        if err:
            problems.append(f"solution cell: {err}")
        for c in ex.check_cells:
            err = _error_of(work.cells[c])
            got = _plain_output(work.cells[c].outputs)
            if err:
                problems.append(err)
            elif got != references[c]:
                first = next((a for a, b in zip(got.splitlines() + [""] * 99, references[c].splitlines())
                              if a != b), got[:60])
                problems.append(f"output differs from reference (got {first!r})")
        detail = "; ".join(problems) if problems else (references[ex.check_cells[-1]].splitlines() or [""])[-1]
        results.append(ExerciseResult(ex.number, ex.name, not problems, detail))
    return results


def format_check(results: Sequence[ExerciseResult]) -> str:
    rows = [[str(r.number), r.name, "PASS" if r.passed else "FAIL", r.detail[:100]] for r in results]
    n_pass = sum(r.passed for r in results)
    return format_table(["#", "exercise", "result", "detail"], rows) + f"\n{n_pass}/{len(results)} exercises pass"


