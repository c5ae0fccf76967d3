"""Homework: student notebooks made from their own sources, and grading them.

A homework source is ``homework/source/NN_name.py`` (jupytext percent format). An exercise is an
answer cell holding a ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` region, followed by one
check cell whose first line is ``# NBVAL_CHECK_OUTPUT`` and which runs
``with exercise(N, "title"):``; its expected values sit between ``### BEGIN HIDDEN TESTS`` and
``### END HIDDEN TESTS``.

``rlhf-edu homework`` writes the student copies ``homework/NN_name.ipynb`` with nbgrader's own
preprocessors (solutions become stubs, hidden tests are removed); ``rlhf-edu check`` grades a
submission by running the *source* notebook, hidden tests included, with the student's answer
cells put in place of the solutions, and prints one pass/fail line per exercise.
"""

from __future__ import annotations

import builtins
import contextlib
import copy
import os
import re
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from nbformat.v4 import new_output

from .course import (CELL_TIMEOUT, CHECK_MARK, WORK_DIR, CourseError, _n_code_cells, execute_notebook,
                     find_notebooks, format_table, is_check_cell, read_notebook, write_notebook)

HOMEWORK_DIR = WORK_DIR / "homework"
SOURCE_DIR = HOMEWORK_DIR / "source"
HOMEWORK_KEY = "rlhf_edu"  # notebook metadata namespace of the student copies
_EXERCISE_RE = re.compile(r'^with (?:\w+\.)?exercise\((\d+), "([^"]+)"\):', re.M)
_LINE_RE = re.compile(r"^Exercise (\d+) \((.*?)\): (PASS|FAIL)(?: - (.*))?$", re.M)


# ---------------------------------------------------------------- used by the check cells (in the kernel)

@contextlib.contextmanager
def exercise(number: int, title: str):
    """``with exercise(1, "exact KL"): assert ...`` prints ``Exercise 1 (exact KL): PASS``, or
    ``FAIL - why`` and re-raises (nbgrader scores a test cell by whether it raises)."""
    try:
        yield
    except Exception as exc:
        print(f"Exercise {number} ({title}): FAIL - {type(exc).__name__}: {exc}".strip().rstrip(":"))
        raise
    print(f"Exercise {number} ({title}): PASS")


def library_calls(fn, *helpers) -> list[str]:
    """How ``fn`` reaches any of ``helpers``: the names (globals, closures, defaults, imports, attribute
    or ``getattr`` access on a module, functions of the notebook it uses in turn) that resolve to one."""
    wanted = {id(h): getattr(h, "__name__", type(h).__name__) for h in helpers}
    found, seen, todo = [], set(), [fn]
    while todo:
        f = todo.pop()
        seen.add(id(f))
        names, codes = set(), [f.__code__]
        while codes:
            code = codes.pop()
            names |= set(code.co_names) | {c for c in code.co_consts if isinstance(c, str)}
            codes += [c for c in code.co_consts if isinstance(c, types.CodeType)]
        objs = [f.__globals__.get(n, getattr(builtins, n, sys.modules.get(n))) for n in names]
        objs += [c.cell_contents for c in f.__closure__ or ()] + [*(f.__defaults__ or ()), *(f.__kwdefaults__ or {}).values()]
        objs += [getattr(m, n, None) for m in objs if isinstance(m, types.ModuleType) for n in names]
        found += [f"{wanted[id(o)]} (in {f.__name__})" for o in objs if id(o) in wanted]
        todo += [o for o in objs if isinstance(o, types.FunctionType) and o.__module__ == fn.__module__
                 and id(o) not in seen]
    return found


def assert_no_library_calls(fn, *helpers) -> None:
    calls = library_calls(fn, *helpers)
    assert not calls, f"your answer calls the library helper {', '.join(sorted(set(calls)))}; write it yourself"


# ---------------------------------------------------------------- building the notebooks

def has_solution(cell) -> bool:
    return cell.cell_type == "code" and "### BEGIN SOLUTION" in cell.source


@dataclass
class Exercise:
    number: int
    title: str
    answer_cell: int
    check_cell: int


def find_exercises(nb) -> list[Exercise]:
    """Each answer cell with the check cell that follows it; the check's number and title come from
    its ``with exercise(N, "title"):`` line."""
    out, answer = [], None
    for idx, cell in enumerate(nb.cells):
        if has_solution(cell) or cell.metadata.get("nbgrader", {}).get("solution"):
            answer = idx
        elif is_check_cell(cell) and answer is not None and (m := _EXERCISE_RE.search(cell.source)):
            out.append(Exercise(int(m.group(1)), m.group(2), answer, idx))
            answer = None
    return out


def solution_notebook(path: Path | str):
    """The instructor's notebook from a homework source: nbgrader metadata on the answer and check
    cells (so ``nbgrader generate_assignment`` takes it as it is) and each check's expected output."""
    import jupytext

    if not Path(path).is_file():
        raise CourseError(f"homework source not found: {path}")
    nb = jupytext.read(path)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i}"  # stable ids: a rebuild is byte-identical
    exercises, n = find_exercises(nb), sum(map(has_solution, nb.cells))
    if not n or [e.number for e in exercises] != list(range(1, n + 1)) or sum(map(is_check_cell, nb.cells)) != n:
        raise CourseError(f"{Path(path).name}: expected exercises 1, 2, ... each an answer cell then one "
                          f"'{CHECK_MARK}' cell with 'with exercise(N, \"title\"):'")
    for ex in exercises:
        answer, check, ids = nb.cells[ex.answer_cell], nb.cells[ex.check_cell], {"schema_version": 3}
        answer.metadata["nbgrader"] = {**ids, "grade_id": f"answer_{ex.number}", "solution": True, "grade": False,
                                       "locked": False}
        check.metadata["nbgrader"] = {**ids, "grade_id": f"check_{ex.number}", "points": 1, "solution": False,
                                      "grade": True, "locked": True}
        check.outputs = [new_output("stream", name="stdout", text=f"Exercise {ex.number} ({ex.title}): PASS\n")]
        check.execution_count = ex.number  # nbval compares only outputs of cells that ran
    return nb


def make_homework(nb, source_name: str):
    """The student copy of a solution notebook (a new notebook): nbgrader's ClearSolutions and
    ClearHiddenTests, no outputs but the checks' expected ``PASS`` lines (what nbval compares)."""
    from nbgrader.preprocessors import ClearHiddenTests, ClearSolutions

    hw = copy.deepcopy(nb)
    try:
        for pre in (ClearSolutions(), ClearHiddenTests()):
            hw, _ = pre.preprocess(hw, {})
    except RuntimeError as exc:
        raise CourseError(f"{source_name}: malformed solution or hidden-test markers: {exc}") from None
    for cell in hw.cells:
        if cell.cell_type == "code" and not is_check_cell(cell):
            cell.outputs, cell.execution_count = [], None
    hw.metadata[HOMEWORK_KEY] = {"homework": True, "source": source_name}
    return hw


def build_homework(*, notebooks_dir: Path | str = SOURCE_DIR, out_dir: Path | str = HOMEWORK_DIR,
                   only=None, solutions_dir: Path | str | None = None, stream=None) -> list[Path]:
    """Write ``out_dir/NN_name.ipynb`` for every source ``notebooks_dir/NN_name.py`` (and, with
    ``solutions_dir``, the instructor's notebook there, for nbgrader's ``source/`` folder)."""
    written = []
    for path in find_notebooks(notebooks_dir, only, suffix=".py"):
        nb, target = solution_notebook(path), Path(out_dir) / f"{path.stem}.ipynb"
        write_notebook(make_homework(nb, path.name), target)
        if solutions_dir is not None:
            write_notebook(nb, Path(solutions_dir) / target.name)
        print(f"{path.name}: {len(find_exercises(nb))} exercises -> {target}", file=stream or sys.stdout)
        written.append(target)
    return written


# ---------------------------------------------------------------- grading

@dataclass
class ExerciseResult:
    number: int
    title: str
    passed: bool
    detail: str


def _error_of(cell) -> str | None:
    return next((f"{o.ename}: {o.evalue}".strip().rstrip(":") for o in cell.outputs if o.output_type == "error"), None)


def graded_notebook(student, source_dir: Path | str = SOURCE_DIR, name: str = "notebook"):
    """The solution notebook with the student's answer cells (matched by nbgrader ``grade_id``) in
    place of the solutions: every other cell, the hidden tests included, comes from the source."""
    if not (meta := student.metadata.get(HOMEWORK_KEY, {})).get("homework"):
        raise CourseError(f"{name} is not a homework notebook (no '{HOMEWORK_KEY}.homework' metadata); "
                          f"generate one with `rlhf-edu homework`")
    graded = solution_notebook(Path(source_dir) / meta["source"])
    answers = {c.metadata.get("nbgrader", {}).get("grade_id"): c.source for c in student.cells}
    for ex in find_exercises(graded):
        graded.cells[ex.answer_cell].source = answers.get(f"answer_{ex.number}", "")
    return graded


def check_homework(path: Path | str, *, source_dir: Path | str = SOURCE_DIR, timeout: int = CELL_TIMEOUT,
                   scale: str | None = None, progress: bool = True, keep: Path | str | None = None
                   ) -> list[ExerciseResult]:
    """Grade a student's homework notebook (never written): run :func:`graded_notebook` and read
    each check's line. ``keep``: also write the graded notebook into that folder, unexecuted (for nbval)."""
    from tqdm.auto import tqdm

    path = Path(path)
    if path.suffix != ".ipynb":
        raise CourseError(f"{path}: expected a .ipynb notebook")
    work = graded_notebook(read_notebook(path), source_dir, str(path))
    if keep is not None:
        write_notebook(work, Path(keep) / path.name)
    env = {"RLHF_EDU_SCALE": scale or os.environ.get("RLHF_EDU_SCALE") or "tiny"}
    with tqdm(total=_n_code_cells(work), desc=f"checking {path.name}", unit="cell", file=sys.stderr,
              disable=not progress) as bar:
        error, _ = execute_notebook(work, path.resolve().parent, env, allow_errors=True, progress=bar,
                                    timeout=timeout)
    if error is not None:  # only timeouts / dead kernels get here with allow_errors=True
        raise CourseError(f"{path}: execution stopped: {error}")
    results = []
    for ex in find_exercises(work):
        check, answer_error = work.cells[ex.check_cell], _error_of(work.cells[ex.answer_cell])
        line = next((m for m in _LINE_RE.finditer(_plain_output(check.outputs)) if int(m.group(1)) == ex.number), None)
        passed = line is not None and line.group(3) == "PASS" and _error_of(check) is None
        detail = "" if passed else (line and line.group(4)) or _error_of(check) or "no result line"
        detail = f"answer cell: {answer_error}; {detail}" if answer_error and not passed else detail
        results.append(ExerciseResult(ex.number, ex.title, passed, detail))
    return results


def format_check(results: Sequence[ExerciseResult]) -> str:
    rows = [[str(r.number), r.title, "PASS" if r.passed else "FAIL", r.detail[:100]] for r in results]
    n_pass = sum(r.passed for r in results)
    return format_table(["#", "exercise", "result", "detail"], rows) + f"\n{n_pass}/{len(results)} exercises pass"


def _plain_output(outputs) -> str:
    """The text nbval compares: stdout streams and text/plain results, concatenated."""
    parts = [out.get("text", "") if out.get("output_type") == "stream" and out.get("name") == "stdout"
             else out.get("data", {}).get("text/plain", "") if "image/png" not in out.get("data", {}) else ""
             for out in outputs]
    return "".join("".join(p) for p in parts).strip()


def check_outputs(nb) -> list[str]:
    """The text of every ``# NBVAL_CHECK_OUTPUT`` cell's outputs, in order (what nbval compares).

    Two executions of a deterministic notebook give equal lists (tests/test_determinism.py).
    """
    return [_plain_output(c.outputs) for c in nb.cells if is_check_cell(c)]
