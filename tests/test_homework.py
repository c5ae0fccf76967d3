"""Homework (issue 19): student copies built from homework/source, graded by `rlhf-edu check`.

Every homework notebook is executed three times: with the reference solutions (every check
passes), as the committed student copy (every check fails, through the CLI, in under 2 minutes)
and with each re-implementation answered by a call to the library helper (those checks fail, the
others pass). The rest is static or runs no kernel.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time


import nbformat
import pytest

from rlhf_edu import course, homework
from rlhf_edu.cli import main

SOURCES = course.find_notebooks(homework.SOURCE_DIR, suffix=".py")
KINDS = ("re-implementation", "derivation", "predict-then-run", "find-the-bug", "interpret", "design")

# A re-implementation answered by the library helper, per notebook and exercise: each uses another
# way to reach it (module attribute, alias, import in the body, getattr, a default argument...).
CHEATS = {
    "01_kl_directions": {1: "from rlhf_edu.divergences import kl_categorical as _kl\n"
                            "def kl_exact(p, q):\n    return float(_kl(torch.as_tensor(p), torch.as_tensor(q)))"},
    "02_kl_estimation": {1: "def k3_own(log_ratio):\n    return getattr(dv, 'k3')(log_ratio)"},
    "04_reward_collapse": {1: "import rlhf_edu.reward_collapse as _rc\n"
                              "def objective(rewards, U):\n    return _rc.total_utility(rewards, _rc.Utility('power', 0.5))"},
    "05_f_dpg": {1: "def js_pseudo_reward(log_t):\n    import rlhf_edu.fdpg as f\n    return f.pseudo_reward(log_t, 'js')"},
    "06_fine_grained_rewards": {
        1: "def _make():\n    place = rw.segment_rewards_to_tokens\n"
           "    def fine_grained(ends, values, weights, kl, beta):\n        out = -beta * kl\n"
           "        for e, v, w in zip(ends, values, weights):\n"
           "            out = out + w * place([[rw.Segment(0, t, '') for t in e]], [v], len(kl))[0].double()\n"
           "        return out\n    return fine_grained\nfine_grained = _make()",
        3: "bug_line = 5\ndef sentence_ends_fixed(tokens):\n    return [s.end for s in rw.sentence_segments(tokens)]"},
    "07_ppo_ptx": {1: "def gae_own(rewards, values, gamma, lam):\n    from rlhf_edu.ppo import gae as g\n"
                      "    return g(rewards[None], values[None], torch.ones(1, len(rewards)), gamma, lam)[0][0].double()"},
    "08_dpo_nll": {1: "def dpo_nll(pc, pr, rc, rr, lengths, beta, alpha, *, _f=dpo.dpo_nll_loss):\n"
                      "    return _f(pc, pr, rc, rr, lengths, beta, alpha).losses.mean()"},
    "03_bradley_terry": {1: "def bt_nll(r_chosen, r_rejected, _loss=bt.bt_loss):\n"
                            "    return _loss(r_chosen, r_rejected).losses.mean()"},
}


def _answer_cells(stem):
    """(solution notebook, student copy, exercises) of a homework source."""
    solution = homework.solution_notebook(homework.SOURCE_DIR / f"{stem}.py")
    return solution, homework.make_homework(solution, f"{stem}.py"), homework.find_exercises(solution)


def _reimplementations(solution, exercises):
    return [ex.number for ex in exercises if "assert_no_library_calls" in solution.cells[ex.check_cell].source]


def _filled(stem, tmp_path, replace=None):
    """The student copy with the reference answers, some replaced by ``replace`` {exercise: source}."""
    solution, student, exercises = _answer_cells(stem)
    for ex in exercises:
        student.cells[ex.answer_cell].source = (replace or {}).get(ex.number, solution.cells[ex.answer_cell].source)
    path = tmp_path / f"{stem}.ipynb"
    course.write_notebook(student, path)
    return path


def _grade(path):
    return {r.number: r for r in homework.check_homework(path, progress=False)}


# ------------------------------------------------------------------ static: sources and student copies

def test_every_notebook_has_a_homework():
    assert [p.stem[:2] for p in SOURCES] == [f"{i:02d}" for i in range(1, 9)]
    assert set(CHEATS) <= {p.stem for p in SOURCES}


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_committed_student_copy_is_a_fresh_build(source, tmp_path):
    homework.build_homework(out_dir=tmp_path, only=source.stem[:2], stream=open("/dev/null", "w"))
    committed = homework.HOMEWORK_DIR / f"{source.stem}.ipynb"
    assert committed.read_bytes() == (tmp_path / committed.name).read_bytes(), \
        f"{committed} differs from a fresh build: run `rlhf-edu homework`"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_student_copy_reads_right(source):
    solution, student, exercises = _answer_cells(source.stem)
    assert 3 <= len(exercises) <= 5
    reimpl = _reimplementations(solution, exercises)
    assert len(exercises) - len(reimpl) >= 2, "at least two exercises that are not re-implementations"
    assert set(reimpl) == set(CHEATS.get(source.stem, {})), "every re-implementation needs a library-call answer"
    text = "\n".join(c.source for c in student.cells)
    for leak in ("BEGIN SOLUTION", "HIDDEN TESTS", "getsource", "solution marker"):
        assert leak not in text, f"{leak!r} in the student copy"
    intro = student.cells[0].source
    assert f"{len(exercises)} exercises" in intro.lower().replace("four", "4").replace("three", "3").replace("five", "5")
    for ex in homework.find_exercises(student):
        answer, check = student.cells[ex.answer_cell], student.cells[ex.check_cell]
        assert "raise NotImplementedError()" in answer.source and not answer.outputs
        assert homework._plain_output(check.outputs) == f"Exercise {ex.number} ({ex.title}): PASS"
        assert check.metadata["nbgrader"]["grade"] and answer.metadata["nbgrader"]["solution"]
        heading = next(c.source for c in reversed(student.cells[:ex.answer_cell]) if c.cell_type == "markdown")
        assert heading.startswith(f"## Exercise {ex.number} ·") and any(f"({k})" in heading.split("\n")[0] for k in KINDS)
        assert ("(re-implementation)" not in heading.split("\n")[0]) or ex.number in reimpl, "unguarded re-implementation"
    # the hidden tests are what the student does not see: each check has some
    for ex in exercises:
        assert "### BEGIN HIDDEN TESTS" in solution.cells[ex.check_cell].source


# ------------------------------------------------------------------ the library-call detector (no kernel)

def test_library_calls_sees_through_aliases():
    import rlhf_edu.divergences as dv

    env = {"dv": dv, "kl": dv.kl_gaussian, "np": __import__("numpy")}
    answers = {
        "attribute": "def f(a):\n    return dv.kl_gaussian(a, 1, 0, 1)",
        "alias": "def f(a):\n    return kl(a, 1, 0, 1)",
        "import in body": "def f(a):\n    from rlhf_edu.divergences import kl_gaussian as g\n    return g(a, 1, 0, 1)",
        "module import in body": "def f(a):\n    import rlhf_edu.divergences as d\n    return d.kl_gaussian(a, 1, 0, 1)",
        "getattr": "def f(a):\n    return getattr(dv, 'kl_gaussian')(a, 1, 0, 1)",
        "default": "def f(a, _g=dv.kl_gaussian):\n    return _g(a, 1, 0, 1)",
        "helper": "def _h(a):\n    return dv.kl_gaussian(a, 1, 0, 1)\ndef f(a):\n    return _h(a)",
        "lambda": "f = lambda a: (lambda: kl(a, 1, 0, 1))()",
        "closure": "def outer():\n    g = dv.kl_gaussian\n    def f(a):\n        return g(a, 1, 0, 1)\n    return f\nf = outer()",
    }
    for name, src in answers.items():
        ns = {"__name__": "__main__", **env}
        exec(compile(src, name, "exec"), ns)
        assert homework.library_calls(ns["f"], dv.kl_gaussian), f"missed: {name}"
        with pytest.raises(AssertionError, match="calls the library helper kl_gaussian"):
            homework.assert_no_library_calls(ns["f"], dv.kl_gaussian)
    own = {"__name__": "__main__", **env}
    exec("def f(a, b=1.0):\n    return np.log(b) + (a * a) / 2 - 0.5  # uses dv elsewhere? no\n", own)
    assert homework.library_calls(own["f"], dv.kl_gaussian) == []


def test_exercise_prints_one_line_and_reraises(capsys):
    with homework.exercise(3, "t"):
        pass
    with pytest.raises(NameError):
        with homework.exercise(4, "u"):
            undefined_name  # noqa: F821
    assert capsys.readouterr().out == ("Exercise 3 (t): PASS\n"
                                       "Exercise 4 (u): FAIL - NameError: name 'undefined_name' is not defined\n")


# ------------------------------------------------------------------ executing the homework (3 runs each)

@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_reference_solutions_pass_every_check(source, tmp_path):
    results = _grade(_filled(source.stem, tmp_path))
    assert results and all(r.passed for r in results.values()), homework.format_check(list(results.values()))


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_unfilled_copy_fails_every_check_quickly(source, capsys, tmp_path):
    path = homework.HOMEWORK_DIR / f"{source.stem}.ipynb"
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    t0 = time.perf_counter()
    rc = main(["check", str(path), "--keep", str(tmp_path)])
    seconds = time.perf_counter() - t0
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before  # a submission is never written
    assert "### BEGIN HIDDEN TESTS" in (tmp_path / path.name).read_text()  # --keep: the graded notebook
    out = capsys.readouterr().out
    rows = re.findall(r"^(\d+)\s+.*?\s(PASS|FAIL)\s", out, re.M)
    assert rc == 1 and rows and all(v == "FAIL" for _, v in rows), out
    assert f"0/{len(rows)} exercises pass" in out and seconds < 120


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_library_call_answers_fail_and_edited_checks_do_not_count(source, tmp_path):
    """Re-implementations answered with the helper fail; the rest keep the reference answers and pass,
    even though the student copy's check cells are replaced by prints of PASS (the grader runs its own)."""
    solution, _, exercises = _answer_cells(source.stem)
    path = _filled(source.stem, tmp_path, CHEATS.get(source.stem, {}))
    student = nbformat.read(path, as_version=4)
    for ex in homework.find_exercises(student):
        student.cells[ex.check_cell].source = f"# NBVAL_CHECK_OUTPUT\nprint('Exercise {ex.number} ({ex.title}): PASS')"
    nbformat.write(student, path)
    results = _grade(path)
    for ex in exercises:
        cheated = ex.number in CHEATS.get(source.stem, {})
        assert results[ex.number].passed is not cheated, homework.format_check(list(results.values()))
        if cheated:
            assert "calls the library helper" in results[ex.number].detail


def test_nbval_on_the_student_copy_and_on_the_graded_notebook(tmp_path):
    """nbval: the unfilled copy fails; the filled copy passes, and so does its graded notebook (the one
    `check --keep` writes, hidden tests back in)."""
    stem = SOURCES[0].stem
    filled = _filled(stem, tmp_path / "in")
    graded = tmp_path / "graded" / f"{stem}.ipynb"  # what `check --keep` writes
    course.write_notebook(homework.graded_notebook(nbformat.read(filled, as_version=4)), graded)
    student = tmp_path / "student.ipynb"
    student.write_bytes((homework.HOMEWORK_DIR / f"{stem}.ipynb").read_bytes())
    proc = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "-q", "-rA", "-p", "no:cacheprovider",
                           "--rootdir", str(tmp_path), str(student), str(graded), str(filled)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    out = proc.stdout
    assert re.search(r"^FAILED \S*student\.ipynb", out, re.M), out[-2000:]
    for ok in (f"graded/{stem}", f"in/{stem}"):  # with the hidden tests, and the filled copy's visible ones
        assert not re.search(rf"^FAILED \S*{ok}", out, re.M) and re.search(rf"^PASSED \S*{ok}", out, re.M), out[-2000:]


def test_nbgrader_releases_the_same_copy_and_autogrades_with_the_hidden_tests(tmp_path):
    """nbgrader's own pipeline on the instructor notebook (`rlhf-edu homework --solutions`): the
    released copy has the student copy's cells, and autograde restores the hidden tests (a
    library-call answer loses its point, the reference answers get theirs)."""
    import os

    stem = SOURCES[0].stem
    (tmp_path / "nbgrader_config.py").write_text('c = get_config()\nc.CourseDirectory.course_id = "rlhf-edu"\n')
    assert main(["homework", "--only", stem[:2], "--out", str(tmp_path / "scratch"),
                 "--solutions", str(tmp_path / "source" / "hw")]) == 0
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}  # nbgrader runs alembic
    run = lambda *args: subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=tmp_path, env=env,  # noqa: E731
                                       capture_output=True, text=True, timeout=600)
    assert run("generate_assignment", "hw", "--force").returncode == 0
    released = nbformat.read(tmp_path / "release" / "hw" / f"{stem}.ipynb", as_version=4)
    committed = nbformat.read(homework.HOMEWORK_DIR / f"{stem}.ipynb", as_version=4)
    assert [c.source for c in released.cells] == [c.source for c in committed.cells]
    solution, _, exercises = _answer_cells(stem)
    for ex in exercises:
        released.cells[ex.answer_cell].source = CHEATS[stem].get(ex.number, solution.cells[ex.answer_cell].source)
    (tmp_path / "submitted" / "alice" / "hw").mkdir(parents=True)
    nbformat.write(released, tmp_path / "submitted" / "alice" / "hw" / f"{stem}.ipynb")
    assert run("autograde", "hw", "--force").returncode == 0
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{tmp_path / 'gradebook.db'}") as gb:
        sub = gb.find_submission("hw", "alice")
        assert (sub.score, sub.max_score) == (len(exercises) - len(CHEATS[stem]), len(exercises))
