"""Course delivery: run the notebooks, make homework, check homework, build offline slides.

Everything here works on copies: the solution notebooks in ``notebooks/`` and a student's
notebook are only ever read. Outputs go to ``build/course/`` (executed notebooks and HTML),
``homework/`` (student notebooks) and ``slides/`` (reveal.js decks that open offline).

The notebook conventions this module relies on (see DESIGN.md):

- notebooks are ``notebooks/NN_name.ipynb``;
- an exercise is a code cell holding a ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` region,
  followed by one or more check cells whose first line is ``# NBVAL_CHECK_OUTPUT``;
- cells carry ``metadata.slideshow.slide_type`` for the decks.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import nbformat

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
COURSE_DIR = REPO_ROOT / "build" / "course"
HOMEWORK_DIR = REPO_ROOT / "homework"
SLIDES_DIR = REPO_ROOT / "slides"
VENDOR_DIR = SLIDES_DIR / "vendor"

NOTEBOOK_RE = re.compile(r"^(\d\d)_[A-Za-z0-9_]+\.ipynb$")
CHECK_MARK = "# NBVAL_CHECK_OUTPUT"
BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
KERNEL_NAME = "python3"
CELL_TIMEOUT = 600
HOMEWORK_KEY = "rlhf_edu"  # notebook/cell metadata namespace written by make_homework

# Offline assets inside slides/vendor/ (see slides/vendor/VERSIONS.md for where they come from).
REVEAL_DIR = "reveal.js-4.0.2"
MATHJAX_DIR = "mathjax-2.7"
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe,local/rlhf_edu"
REQUIRE_JS = "require-2.3.7.js"
JQUERY_JS = "jquery-3.7.1.min.js"
# nbconvert's templates import mermaid (an ES module) from a CDN; the course has no mermaid diagrams,
# so an inline stub module keeps the pages offline.
MERMAID_STUB = "data:text/javascript,export default {initialize(){}}"


class CourseError(ValueError):
    """A problem the user can fix (bad path, malformed notebook...): printed without traceback.

    A ``ValueError``, so that bad input anywhere in rlhf_edu raises one kind of error.
    """


def _check_nb(nb) -> None:
    if not hasattr(nb, "cells"):
        raise CourseError(f"nb: expected a notebook (nbformat.NotebookNode), got {type(nb).__name__}")


def _check_timeout(timeout) -> None:
    if timeout is not None and (not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 1):
        raise CourseError(f"--timeout (timeout): expected whole seconds >= 1, got {timeout!r}")


# --------------------------------------------------------------------------------------------
# Finding and reading notebooks
# --------------------------------------------------------------------------------------------

def parse_only(only: str | Sequence[str] | None) -> list[str] | None:
    """``"03,7"`` -> ``["03", "07"]``; also accepts full names (``03_bradley_terry``)."""
    if only is None:
        return None
    items = only.split(",") if isinstance(only, str) else list(only)
    out = []
    for item in items:
        item = item.strip()
        if not item:
            continue
        m = re.match(r"^(\d{1,2})(_.*)?$", item.removesuffix(".ipynb"))
        if not m:
            raise CourseError(f"--only: expected notebook numbers like 03,07, got {item!r}")
        out.append(f"{int(m.group(1)):02d}")
    if not out:
        raise CourseError("--only: no notebook numbers given")
    return out


def find_notebooks(notebooks_dir: Path | str = NOTEBOOKS_DIR, only: str | Sequence[str] | None = None) -> list[Path]:
    """The course notebooks ``NN_name.ipynb`` in ``notebooks_dir``, in order; ``only`` filters by number."""
    notebooks_dir = Path(notebooks_dir)
    if not notebooks_dir.is_dir():
        raise CourseError(f"notebooks directory not found: {notebooks_dir}")
    found = sorted(p for p in notebooks_dir.iterdir() if NOTEBOOK_RE.match(p.name))
    wanted = parse_only(only)
    if wanted is not None:
        have = {p.name[:2] for p in found}
        missing = [n for n in wanted if n not in have]
        if missing:
            raise CourseError(f"--only: no notebook numbered {', '.join(missing)} in {notebooks_dir} "
                              f"(have: {', '.join(sorted(have)) or 'none'})")
        found = [p for p in found if p.name[:2] in wanted]
    return found


def read_notebook(path: Path | str) -> nbformat.NotebookNode:
    """Read and validate a notebook, turning every failure into a one-line CourseError."""
    path = Path(path)
    if not path.exists():
        raise CourseError(f"notebook not found: {path}")
    if not path.is_file():
        raise CourseError(f"not a file: {path}")
    try:
        nb = nbformat.read(path, as_version=4)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CourseError(f"{path} is not a readable notebook (invalid JSON: {exc})") from None
    except Exception as exc:  # nbformat raises several kinds for malformed files
        raise CourseError(f"{path} is not a readable notebook ({type(exc).__name__}: {exc})") from None
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as exc:
        raise CourseError(f"{path} is malformed: {exc.message}") from None
    return nb


def write_notebook(nb: nbformat.NotebookNode, path: Path) -> None:
    _check_nb(nb)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))


def _check_cell(cell) -> None:
    if not (hasattr(cell, "cell_type") and hasattr(cell, "source")):
        raise CourseError(f"cell: expected a notebook cell, got {type(cell).__name__}")


def is_check_cell(cell) -> bool:
    _check_cell(cell)
    return cell.cell_type == "code" and cell.source.lstrip().startswith(CHECK_MARK)


def has_solution(cell) -> bool:
    _check_cell(cell)
    return cell.cell_type == "code" and BEGIN_SOLUTION in cell.source


# --------------------------------------------------------------------------------------------
# Executing notebooks (rlhf-edu course)
# --------------------------------------------------------------------------------------------

@dataclass
class NotebookRun:
    name: str
    status: str = "not run"  # ok | failed | not run
    seconds: float = 0.0
    error: str | None = None
    failed_cell: int | None = None
    outputs: list[Path] = field(default_factory=list)


def _make_client(nb, cwd: Path, env: dict, *, allow_errors: bool = False, progress=None,
                 timeout: int = CELL_TIMEOUT):
    from nbclient import NotebookClient

    state: dict = {"failed_cell": None}

    def on_cell_executed(cell, cell_index, execute_reply=None, **_):
        if progress is not None:
            progress.update(1)

    def on_cell_error(cell, cell_index, execute_reply=None, **_):
        if state["failed_cell"] is None:
            state["failed_cell"] = cell_index

    client = NotebookClient(
        nb, timeout=timeout, kernel_name=KERNEL_NAME, allow_errors=allow_errors,
        resources={"metadata": {"path": str(cwd)}},
        on_cell_executed=on_cell_executed, on_cell_error=on_cell_error,
    )
    client._rlhf_state = state  # type: ignore[attr-defined]
    client._rlhf_env = env  # type: ignore[attr-defined]
    return client


def execute_notebook(nb, cwd: Path, env: dict | None = None, *, allow_errors: bool = False,
                     progress=None, timeout: int = CELL_TIMEOUT):
    """Execute ``nb`` in place with a fresh ``python3`` kernel started in ``cwd``.

    Returns ``(error, failed_cell_index)``; ``(None, None)`` on success. The notebook keeps the
    outputs of every cell that ran, including the failing one.
    """
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    _check_nb(nb)
    _check_timeout(timeout)
    kernel_env = dict(os.environ)
    kernel_env.update(env or {})
    client = _make_client(nb, cwd, kernel_env, allow_errors=allow_errors, progress=progress,
                          timeout=timeout)
    try:
        client.execute(env=kernel_env)
    except CellExecutionError as exc:
        return str(exc), client._rlhf_state["failed_cell"]
    except (CellTimeoutError, DeadKernelError) as exc:
        return f"{type(exc).__name__}: {exc}", client._rlhf_state["failed_cell"]
    return None, None


def _n_code_cells(nb) -> int:
    return sum(1 for c in nb.cells if c.cell_type == "code" and c.source.strip())


def html_exporter(out_dir: Path):
    """An nbconvert HTMLExporter whose MathJax/require.js point at the vendored copies in slides/vendor.

    The executed notebooks already embed their figures, so the HTML opens offline as long as it
    stays inside this repository (the asset links are relative paths to ``slides/vendor``).
    """
    from nbconvert import HTMLExporter

    if not isinstance(out_dir, (str, os.PathLike)):
        raise CourseError(f"out_dir: expected a directory path, got {type(out_dir).__name__}")
    exp = HTMLExporter()
    rel = Path(os.path.relpath(VENDOR_DIR, out_dir)).as_posix()
    if (VENDOR_DIR / MATHJAX_DIR / "MathJax.js").exists():
        exp.mathjax_url = f"{rel}/{MATHJAX_DIR}/MathJax.js?config={MATHJAX_CONFIG}"
    if (VENDOR_DIR / REQUIRE_JS).exists():
        exp.require_js_url = f"{rel}/{REQUIRE_JS}"
    if (VENDOR_DIR / JQUERY_JS).exists():
        exp.jquery_url = f"{rel}/{JQUERY_JS}"
    exp.mermaid_js_url = MERMAID_STUB  # the course has no mermaid diagrams: no CDN import
    exp.mermaid_layout_elk_js_url = ""
    return exp


def _write_course_outputs(nb, path: Path, out_dir: Path) -> list[Path]:
    ipynb = out_dir / path.name
    write_notebook(nb, ipynb)
    html = out_dir / (path.stem + ".html")
    body, _ = html_exporter(out_dir).from_notebook_node(nb, resources={"metadata": {"name": path.stem}})
    html.write_text(body, encoding="utf-8")
    return [ipynb, html]


_ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")


def strip_ansi(text: str) -> str:
    if not isinstance(text, str):
        raise CourseError(f"text: expected a str, got {type(text).__name__}")
    return _ANSI_RE.sub("", text)


def run_course(*, scale: str | None = None, only=None, notebooks_dir: Path | str = NOTEBOOKS_DIR,
               out_dir: Path | str = COURSE_DIR, keep_going: bool = False, timeout: int = CELL_TIMEOUT,
               stream=None) -> list[NotebookRun]:
    """Execute the course notebooks in order into ``out_dir`` (.ipynb + .html); print a summary.

    ``scale`` sets ``RLHF_EDU_SCALE`` for the kernels (default: the current environment's, else
    ``auto``). Stops at the first failing notebook (unless ``keep_going``), printing the cell and
    the error; its partially executed notebook and HTML are still written. ``notebooks_dir`` is
    never written to.
    """
    from tqdm.auto import tqdm

    stream = stream or sys.stdout
    _check_timeout(timeout)
    notebooks_dir = Path(notebooks_dir).resolve()
    out_dir = Path(out_dir).resolve()
    if out_dir == notebooks_dir:
        raise CourseError("--out must not be the notebooks directory (notebooks are never modified in place)")
    paths = find_notebooks(notebooks_dir, only)
    if not paths:
        raise CourseError(f"no notebooks NN_name.ipynb found in {notebooks_dir}")
    scale = scale or os.environ.get("RLHF_EDU_SCALE") or "auto"
    if scale not in ("tiny", "gpt2", "auto"):
        raise CourseError(f"--scale: expected tiny, gpt2 or auto, got {scale!r}")
    env = {"RLHF_EDU_SCALE": scale}
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"rlhf-edu course: {len(paths)} notebook(s), RLHF_EDU_SCALE={scale}, output in {out_dir}",
          file=stream, flush=True)

    runs = [NotebookRun(p.stem) for p in paths]
    t_total = time.perf_counter()
    for i, (path, run) in enumerate(zip(paths, runs), 1):
        nb = read_notebook(path)
        t0 = time.perf_counter()
        with tqdm(total=_n_code_cells(nb), desc=f"[{i}/{len(paths)}] {path.stem}", unit="cell",
                  file=sys.stderr, dynamic_ncols=True) as bar:
            error, failed = execute_notebook(nb, notebooks_dir, env, progress=bar, timeout=timeout)
        run.seconds = time.perf_counter() - t0
        run.outputs = _write_course_outputs(nb, path, out_dir)
        if error is None:
            run.status = "ok"
            print(f"{path.stem}: ok in {run.seconds:.1f} s", file=stream, flush=True)
            continue
        run.status, run.error, run.failed_cell = "failed", error, failed
        shown = error if getattr(stream, "isatty", lambda: False)() else strip_ansi(error)
        where = f"cell {failed}" if failed is not None else "kernel"
        print(f"\n{path.stem}: FAILED after {run.seconds:.1f} s at {where}\n{shown}\n"
              f"(partial output kept in {run.outputs[0]} and {run.outputs[1]})", file=stream, flush=True)
        if not keep_going:
            break
    total = time.perf_counter() - t_total
    print("\n" + format_table(["notebook", "status", "seconds"],
                              [[r.name, r.status, f"{r.seconds:.1f}" if r.status != "not run" else "-"]
                               for r in runs]), file=stream)
    print(f"total wall time: {total:.1f} s ({total / 60:.1f} min)", file=stream, flush=True)
    summary = {"scale": scale, "total_seconds": round(total, 2),
               "notebooks": [{"name": r.name, "status": r.status, "seconds": round(r.seconds, 2)} for r in runs]}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return runs


def format_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    rows = [list(map(str, r)) for r in rows]
    bad = [r for r in rows if len(r) != len(header)]
    if bad:
        raise CourseError(f"rows: expected {len(header)} columns per row (one per header), got {bad[0]!r}")
    widths = [max(len(str(h)), *(len(r[j]) for r in rows)) if rows else len(str(h)) for j, h in enumerate(header)]
    line = "  ".join("-" * w for w in widths)
    fmt = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([fmt(header), line, *(fmt(r) for r in rows)])


# --------------------------------------------------------------------------------------------
# Homework (rlhf-edu homework / check)
# --------------------------------------------------------------------------------------------

@dataclass
class Exercise:
    number: int
    name: str  # the function (or first def) the student writes
    solution_cell: int
    check_cells: list[int]


_DEF_RE = re.compile(r"^\s*def\s+([A-Za-z_]\w*)\s*\(", re.M)


def find_exercises(nb) -> list[Exercise]:
    """Exercises in order: each solution cell with the check cells that follow it (up to the next one)."""
    _check_nb(nb)
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
    if not hasattr(nb, "cells"):
        raise ValueError(f"nb: expected a notebook (nbformat.NotebookNode), got {type(nb).__name__}")
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
    hw.metadata[HOMEWORK_KEY] = {
        "homework": True,
        "source": source_name,
        "exercises": [{"number": ex.number, "name": ex.name} for ex in exercises],
    }
    return hw


def homework_name(path: Path) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise CourseError(f"path: expected a notebook path, got {type(path).__name__}")
    return Path(path).name


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
        target = out_dir / homework_name(path)
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

    _check_timeout(timeout)
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
        detail = "; ".join(problems) if problems else _last_line(references[ex.check_cells[-1]])
        results.append(ExerciseResult(ex.number, ex.name, not problems, detail))
    return results


def _last_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def format_check(results: Sequence[ExerciseResult]) -> str:
    if not all(isinstance(r, ExerciseResult) for r in results):
        raise CourseError("results: expected ExerciseResult items (from check_homework)")
    rows = [[str(r.number), r.name, "PASS" if r.passed else "FAIL", r.detail[:100]] for r in results]
    n_pass = sum(r.passed for r in results)
    return format_table(["#", "exercise", "result", "detail"], rows) + f"\n{n_pass}/{len(results)} exercises pass"


# --------------------------------------------------------------------------------------------
# Slides (rlhf-edu slides)
# --------------------------------------------------------------------------------------------

def check_vendor(vendor_dir: Path = VENDOR_DIR) -> None:
    needed = [f"{REVEAL_DIR}/dist/reveal.js", f"{REVEAL_DIR}/dist/reveal.css", f"{REVEAL_DIR}/dist/theme/white.css",
              f"{REVEAL_DIR}/plugin/notes/notes.js", f"{MATHJAX_DIR}/MathJax.js", REQUIRE_JS, JQUERY_JS]
    missing = [n for n in needed if not (vendor_dir / n).exists()]
    if missing:
        raise CourseError(f"offline slide assets missing in {vendor_dir}: {', '.join(missing)} "
                          f"(see {vendor_dir / 'VERSIONS.md'})")


HIDE_INPUT_TAG = "rlhf_edu_slides_hide_input"
MAX_SLIDE_CODE_LINES = 12
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def prepare_for_slides(nb):
    """A copy of ``nb`` marked for the deck: a code cell that draws a figure shows only the figure,
    and code longer than ``MAX_SLIDE_CODE_LINES`` lines is hidden (its output stays). Progress-bar
    widget outputs are dropped so that a rebuild gives byte-identical decks.

    Cells the notebook marks ``skip`` are left out by reveal.js itself.
    """
    _check_nb(nb)
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

    if not isinstance(vendor_rel, str):
        raise CourseError(f"vendor_rel: expected a relative URL prefix (str), got {type(vendor_rel).__name__}")
    cfg = Config()
    cfg.TagRemovePreprocessor.enabled = True
    cfg.TagRemovePreprocessor.remove_input_tags = {HIDE_INPUT_TAG}
    exp = SlidesExporter(config=cfg)
    exp.reveal_url_prefix = f"{vendor_rel}/{REVEAL_DIR}"
    exp.reveal_theme = "white"
    exp.reveal_transition = "none"  # instant slide changes; also keeps screenshots deterministic
    exp.mathjax_url = f"{vendor_rel}/{MATHJAX_DIR}/MathJax.js?config={MATHJAX_CONFIG}"
    exp.require_js_url = f"{vendor_rel}/{REQUIRE_JS}"
    exp.jquery_url = f"{vendor_rel}/{JQUERY_JS}"
    exp.mermaid_js_url = MERMAID_STUB  # imported eagerly by the reveal template; no CDN
    exp.mermaid_layout_elk_js_url = ""
    exp.exclude_input_prompt = True
    exp.exclude_output_prompt = True
    return exp


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
