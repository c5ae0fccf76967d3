"""Code lines per module of ``rlhf_edu/``, at a revision against the issue-14 baseline.

A *code line* holds at least one token that is not a comment and not part of a module, class
or function docstring; blank lines do not count. Files are read with ``git show REV:path``, so
the working tree is never consulted.

    python benchmarks/code_lines.py            # HEAD against 42e0bed
    python benchmarks/code_lines.py REV [--baseline REV]
"""

import argparse
import ast
import io
import subprocess
import tokenize

BASELINE = "42e0bed"
# Modules split out of baseline modules since the baseline (they count with their parents).
SPLIT_OUT = ("exact_world.py", "rollouts.py", "homework.py", "slides.py")
SKIP = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
        tokenize.ENCODING, tokenize.ENDMARKER}


def git(*args):
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout


def modules(rev):
    """Names of the top-level ``rlhf_edu/*.py`` files at ``rev``."""
    names = git("ls-tree", "--name-only", f"{rev}:rlhf_edu").split()
    return sorted(n for n in names if n.endswith(".py"))


def docstring_spans(tree):
    """(start, end) positions of every module, class and function docstring."""
    spans = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                d = body[0]
                spans.append(((d.lineno, d.col_offset), (d.end_lineno, d.end_col_offset)))
    return spans


def code_lines(source):
    """Number of lines of ``source`` holding a token that is code (see the module docstring)."""
    spans = docstring_spans(ast.parse(source))
    lines = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in SKIP or any(a <= tok.start and tok.end <= b for a, b in spans):
            continue
        lines.update(range(tok.start[0], tok.end[0] + 1))
    return len(lines)


def count(rev):
    return {m: code_lines(git("show", f"{rev}:rlhf_edu/{m}")) for m in modules(rev)}


def pct(before, after):
    return f"{100 * (after - before) / before:+.1f}%" if before else ""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", nargs="?", default="HEAD")
    parser.add_argument("--baseline", default=BASELINE)
    args = parser.parse_args()
    before, after = count(args.baseline), count(args.rev)

    print(f"code lines of rlhf_edu/*.py: {args.baseline} -> {args.rev}\n")
    print(f"{'module':<20} {'before':>7} {'after':>7} {'change':>7} {'%':>7}")
    for m in before:
        b, a = before[m], after.get(m, 0)
        print(f"{m:<20} {b:>7} {a:>7} {a - b:>+7} {pct(b, a):>7}")
    new = [m for m in after if m not in before]
    if new:
        print("\nnew since the baseline" + " (* split out of a baseline module)")
        for m in new:
            mark = "*" if m in SPLIT_OUT else " "
            print(f"{m:<19}{mark} {'':>7} {after[m]:>7}")

    total_before = sum(before.values())
    lineage = sum(a for m, a in after.items() if m in before or m in SPLIT_OUT)
    total_after = sum(after.values())
    print()
    for label, a in (("baseline modules + split-outs", lineage), ("all modules", total_after)):
        print(f"{label:<30} {total_before:>6} -> {a:>6}  ({a - total_before:+d}, "
              f"{pct(total_before, a)})")
    print(f"{'issue 14 target (-20%)':<30} {'':>6}    <= {int(0.8 * total_before)}")


if __name__ == "__main__":
    main()
