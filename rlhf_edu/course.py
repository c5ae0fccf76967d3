"""Running the course: find, read, execute and clean notebooks (``rlhf-edu course``).

Homework lives in :mod:`rlhf_edu.homework` and the slides in :mod:`rlhf_edu.slides`; both build
on the notebook helpers here. The solution notebooks are only read, except by
``rlhf-edu course --in-place`` (the maintainers' re-execution, ``make notebooks``). Outputs go to
``build/course/`` (executed notebooks and HTML); ``--dest DIR`` copies the notebooks to a
working folder (how a pip-installed course is started).

The notebook conventions this module relies on (see DESIGN.md):

- notebooks are ``notebooks/NN_name.ipynb``;
- a check cell's first line is ``# NBVAL_CHECK_OUTPUT`` (nbval compares its output);
- homework has its own sources (``homework/source``, see :mod:`rlhf_edu.homework`);
- cells carry ``metadata.slideshow.slide_type`` for the decks.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import nbformat

from .resources import NOTEBOOKS_DIR, VENDOR_DIR, WORK_DIR

COURSE_DIR = WORK_DIR / "build" / "course"

NOTEBOOK_RE = re.compile(r"^(\d\d)_[A-Za-z0-9_]+$")
CHECK_MARK = "# NBVAL_CHECK_OUTPUT"
CELL_TIMEOUT = 600

# Offline assets inside slides/vendor/ (see slides/vendor/VERSIONS.md for where they come from).
REVEAL_DIR = "reveal.js-4.0.2"
MATHJAX_DIR = "mathjax-2.7"
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe,local/rlhf_edu"
REQUIRE_JS = "require-2.3.7.js"
JQUERY_JS = "jquery-3.7.1.min.js"
# nbconvert's templates import mermaid (an ES module) from a CDN; the course has no mermaid diagrams,
# so an inline stub module keeps the pages offline.
MERMAID_STUB = "data:text/javascript,export default {initialize(){}}"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


class CourseError(ValueError):
    """A problem the user can fix (bad path, malformed notebook...): printed without traceback.

    A ``ValueError``, so that bad input anywhere in rlhf_edu raises one kind of error.
    """


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
        m = re.match(r"^(\d{1,2})(_.*)?$", item.removesuffix(".ipynb").removesuffix(".py"))
        if not m:
            raise CourseError(f"--only: expected notebook numbers like 03,07, got {item!r}")
        out.append(f"{int(m.group(1)):02d}")
    if not out:
        raise CourseError("--only: no notebook numbers given")
    return out


def find_notebooks(notebooks_dir: Path | str = NOTEBOOKS_DIR, only: str | Sequence[str] | None = None,
                   suffix: str = ".ipynb") -> list[Path]:
    """The files ``NN_name.ipynb`` (or another ``suffix``) in ``notebooks_dir``, in order; ``only``
    filters by number."""
    notebooks_dir = Path(notebooks_dir)
    if not notebooks_dir.is_dir():
        raise CourseError(f"notebooks directory not found: {notebooks_dir}")
    found = sorted(p for p in notebooks_dir.iterdir() if p.suffix == suffix and NOTEBOOK_RE.match(p.stem))
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
    if not path.is_file():
        raise CourseError(f"notebook not found: {path}")
    try:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
    except Exception as exc:  # invalid JSON, not a notebook, schema errors...
        raise CourseError(f"{path} is not a readable notebook ({type(exc).__name__}: {exc})") from None
    return nb


def write_notebook(nb: nbformat.NotebookNode, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))


def is_check_cell(cell) -> bool:
    return cell.cell_type == "code" and cell.source.lstrip().startswith(CHECK_MARK)


# --------------------------------------------------------------------------------------------
# Executing notebooks (rlhf-edu course)
# --------------------------------------------------------------------------------------------

@dataclass
class NotebookRun:
    name: str
    status: str = "not run"  # ok | failed | not run
    seconds: float = 0.0
    outputs: list[Path] = field(default_factory=list)


def execute_notebook(nb, cwd: Path, env: dict | None = None, *, allow_errors: bool = False,
                     progress=None, timeout: int = CELL_TIMEOUT):
    """Execute ``nb`` in place with a fresh ``python3`` kernel started in ``cwd``.

    Returns ``(error, failed_cell_index)``; ``(None, None)`` on success. The notebook keeps the
    outputs of every cell that ran, including the failing one.
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    failed: list[int] = []
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", allow_errors=allow_errors,
        resources={"metadata": {"path": str(cwd)}},
        on_cell_executed=lambda **_: progress is not None and progress.update(1),
        on_cell_error=lambda cell_index, **_: failed.append(cell_index),
    )
    try:
        client.execute(env={**os.environ, **(env or {})})
    except CellExecutionError as exc:
        return str(exc), failed[0] if failed else None
    except (CellTimeoutError, DeadKernelError) as exc:
        return f"{type(exc).__name__}: {exc}", failed[0] if failed else None
    return None, None


def _n_code_cells(nb) -> int:
    return sum(1 for c in nb.cells if c.cell_type == "code" and c.source.strip())


def offline_assets(exp, vendor_rel: str):
    """Point an nbconvert exporter's MathJax, require.js and jQuery at the vendored copies under
    ``vendor_rel`` (a relative URL), and mermaid at an inline stub: no CDN. Returns ``exp``."""
    exp.mathjax_url = f"{vendor_rel}/{MATHJAX_DIR}/MathJax.js?config={MATHJAX_CONFIG}"
    exp.require_js_url = f"{vendor_rel}/{REQUIRE_JS}"
    exp.jquery_url = f"{vendor_rel}/{JQUERY_JS}"
    exp.mermaid_js_url = MERMAID_STUB  # the course has no mermaid diagrams
    exp.mermaid_layout_elk_js_url = ""
    return exp


def html_exporter(out_dir: Path):
    """An nbconvert HTMLExporter whose assets are the vendored copies in slides/vendor.

    The executed notebooks already embed their figures, so the HTML opens offline as long as it
    stays inside this repository (the asset links are relative paths to ``slides/vendor``).
    """
    from nbconvert import HTMLExporter

    return offline_assets(HTMLExporter(), Path(os.path.relpath(VENDOR_DIR, out_dir)).as_posix())


def clean_notebook(nb) -> nbformat.NotebookNode:
    """Drop what changes from run to run while the results do not, so a re-execution diffs clean.

    Removes the widget state (``metadata.widgets``), per-cell execution timestamps
    (``metadata.execution``) and progress-bar widget outputs, whose text carries timings and
    whose ids are random. Everything else (code, figures, printed results, execution counts) is
    kept. nbstripout can drop the two metadata keys but not the widget outputs, hence this.
    """
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if WIDGET_VIEW not in o.get("data", {})]
    return nb


def copy_course(dest: Path | str, *, notebooks_dir: Path | str = NOTEBOOKS_DIR, slides: bool = True,
                stream=None) -> list[Path]:
    """Copy the notebooks (``.ipynb`` with their paired ``.py``) to ``dest``, and the offline slide
    assets to ``dest/slides/vendor`` (``slides``), so the course can be opened and rebuilt there.

    Existing files in ``dest`` are never overwritten (a student's edits are safe).
    """
    stream = stream or sys.stdout
    dest = Path(dest).expanduser().resolve()
    dest.mkdir(parents=True, exist_ok=True)
    copied, kept = [], []
    for path in find_notebooks(notebooks_dir):
        for src in (path, path.with_suffix(".py")):
            if src.is_file():
                target = dest / src.name
                (kept if target.exists() else copied).append(target)
                if not target.exists():
                    shutil.copy2(src, target)
    if slides:
        shutil.copytree(VENDOR_DIR, dest / "slides" / "vendor", dirs_exist_ok=True)
    print(f"rlhf-edu course: copied {len(copied)} file(s) to {dest}"
          + (f" ({len(kept)} already there, left as they were)" if kept else "")
          + (", slide assets in slides/vendor" if slides else "")
          + f"\nopen them with:  jupyter lab {dest}", file=stream)
    return copied


def run_course(*, scale: str | None = None, only=None, notebooks_dir: Path | str = NOTEBOOKS_DIR,
               out_dir: Path | str = COURSE_DIR, keep_going: bool = False, timeout: int = CELL_TIMEOUT,
               in_place: bool = False, stream=None) -> list[NotebookRun]:
    """Execute the course notebooks in order into ``out_dir`` (.ipynb + .html); print a summary.

    ``scale`` sets ``RLHF_EDU_SCALE`` for the kernels (default: the current environment's, else
    ``auto``). Stops at the first failing notebook (unless ``keep_going``), printing the cell and
    the error; its partially executed notebook and HTML are still written. ``notebooks_dir`` is
    never written to, except with ``in_place`` (maintainers: ``make notebooks``), which writes
    each notebook that ran without error back, cleaned by :func:`clean_notebook`, and no HTML.
    """
    from tqdm.auto import tqdm

    stream = stream or sys.stdout
    notebooks_dir = Path(notebooks_dir).resolve()
    out_dir = Path(out_dir).resolve()
    if out_dir == notebooks_dir and not in_place:
        raise CourseError("--out must not be the notebooks directory (use --in-place to re-execute the sources)")
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
        if in_place and error is None:
            write_notebook(clean_notebook(nb), path)
            run.outputs = [path]
        elif not in_place:
            run.outputs = [out_dir / path.name, out_dir / f"{path.stem}.html"]
            write_notebook(nb, run.outputs[0])
            body, _ = html_exporter(out_dir).from_notebook_node(nb, resources={"metadata": {"name": path.stem}})
            run.outputs[1].write_text(body, encoding="utf-8")
        if error is None:
            run.status = "ok"
            print(f"{path.stem}: ok in {run.seconds:.1f} s", file=stream, flush=True)
            continue
        run.status = "failed"
        shown = error if getattr(stream, "isatty", lambda: False)() else re.sub(r"\x1b\[[0-9;]*m", "", error)
        where = f"cell {failed}" if failed is not None else "kernel"
        kept = f"(partial output kept in {run.outputs[0]} and {run.outputs[1]})" if run.outputs else "(not written)"
        print(f"\n{path.stem}: FAILED after {run.seconds:.1f} s at {where}\n{shown}\n{kept}", file=stream, flush=True)
        if not keep_going:
            break
    total = time.perf_counter() - t_total
    print("\n" + format_table(["notebook", "status", "seconds"],
                              [[r.name, r.status, f"{r.seconds:.1f}" if r.status != "not run" else "-"]
                               for r in runs]), file=stream)
    print(f"total wall time: {total:.1f} s ({total / 60:.1f} min)", file=stream, flush=True)
    return runs


def format_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    rows = [list(map(str, r)) for r in rows]
    widths = [max(len(str(h)), *(len(r[j]) for r in rows)) if rows else len(str(h)) for j, h in enumerate(header)]
    line = "  ".join("-" * w for w in widths)
    fmt = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([fmt(header), line, *(fmt(r) for r in rows)])
