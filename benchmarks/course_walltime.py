"""Wall time of every course notebook at tiny scale, and whether repeated runs agree.

Usage (from the repository root):

    .venv/bin/python benchmarks/course_walltime.py                 # all 8 notebooks, once
    .venv/bin/python benchmarks/course_walltime.py --repeats 2     # twice: also a determinism check
    .venv/bin/python benchmarks/course_walltime.py --only 01,04

Each notebook is executed from a fresh kernel (as ``rlhf-edu course`` and nbval do) with
``RLHF_EDU_SCALE`` set, on an in-memory copy: nothing in ``notebooks/`` is written. The time
includes the kernel start. For each notebook the table gives the seconds of every run, whether
the ``# NBVAL_CHECK_OUTPUT`` cells printed the same text in every run ("same in runs"), and
whether that text equals the committed outputs ("= committed", what nbval checks). Exits 1 if a
notebook fails or a repeat disagrees.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rlhf_edu import course, homework  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", default="tiny", help="tiny | gpt2 | auto (default tiny)")
    p.add_argument("--repeats", type=int, default=1, help="executions per notebook (>= 2 checks determinism)")
    p.add_argument("--only", default=None, help="comma-separated notebook numbers or names, e.g. 01,04")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats: expected >= 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    paths = course.find_notebooks(course.NOTEBOOKS_DIR, args.only)
    rows, ok, total = [], True, 0.0
    for path in paths:
        committed = course.read_notebook(path)
        times, outs, error = [], [], None
        for r in range(args.repeats):
            nb = copy.deepcopy(committed)
            t0 = time.perf_counter()
            error, cell = course.execute_notebook(nb, course.NOTEBOOKS_DIR, {"RLHF_EDU_SCALE": args.scale})
            times.append(time.perf_counter() - t0)
            print(f"{path.stem} run {r + 1}: {times[-1]:.1f} s" + (f" FAILED at cell {cell}" if error else ""),
                  file=sys.stderr, flush=True)
            if error:
                break
            outs.append(homework.check_outputs(nb))
        total += times[0]
        same = "-" if error or len(outs) < 2 else str(all(o == outs[0] for o in outs))
        matches = "-" if error else str(outs[0] == homework.check_outputs(committed))
        ok &= error is None and same != "False"
        rows.append([path.stem, "failed" if error else "ok", *[f"{t:.1f}" for t in times],
                     *([""] * (args.repeats - len(times))), f"{statistics.median(times):.1f}",
                     str(len(outs[0]) if outs else "-"), same, matches])
    header = ["notebook", "status", *[f"run {i + 1} (s)" for i in range(args.repeats)], "median (s)",
              "check cells", "same in runs", "= committed"]
    print(f"scale={args.scale}, torch threads per kernel as set by each notebook (2), repeats={args.repeats}")
    print(course.format_table(header, rows))
    print(f"whole series (first runs): {total:.1f} s = {total / 60:.1f} min")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
