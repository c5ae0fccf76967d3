"""The ``rlhf-edu`` command (also ``python -m rlhf_edu``)."""

from __future__ import annotations

import argparse
import json
import sys


def cmd_pretrain(args: argparse.Namespace) -> int:
    from .pretrain import PretrainConfig, pretrain

    cfg = PretrainConfig(seed=args.seed, steps=args.steps)
    if args.out:
        cfg.out_dir = args.out
    metrics = pretrain(cfg, write_card=args.out is None)
    print(json.dumps({k: v for k, v in metrics.items() if k != "history"}, indent=1))
    return 0


def cmd_course(args: argparse.Namespace) -> int:
    from .course import run_course

    runs = run_course(scale=args.scale, only=args.only, notebooks_dir=args.notebooks, out_dir=args.out,
                      keep_going=args.keep_going, timeout=args.timeout)
    return 0 if all(r.status == "ok" for r in runs) else 1


def cmd_homework(args: argparse.Namespace) -> int:
    from .course import build_homework

    build_homework(notebooks_dir=args.notebooks, out_dir=args.out, only=args.only)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from .course import check_homework, format_check

    from .course import CourseError

    status = 0
    for path in args.notebook:
        try:
            results = check_homework(path, timeout=args.timeout, scale=args.scale)
        except CourseError as exc:
            print(f"rlhf-edu check: error: {exc}", file=sys.stderr)
            status = 2
            continue
        print(f"\n{path}\n{format_check(results)}")
        if not all(r.passed for r in results) and status == 0:
            status = 1
    return status


def cmd_slides(args: argparse.Namespace) -> int:
    from .course import build_slides

    build_slides(notebooks_dir=args.notebooks, out_dir=args.out, only=args.only)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .course import COURSE_DIR, HOMEWORK_DIR, NOTEBOOKS_DIR, SLIDES_DIR

    parser = argparse.ArgumentParser(prog="rlhf-edu", description="Run and deliver the rlhf-edu course.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("pretrain", help="rebuild the tiny base model and tokenizer in data/ from scratch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--out", default=None, help="write here instead of data/tiny (no model card)")
    p.set_defaults(func=cmd_pretrain)

    only_help = "comma-separated notebook numbers, e.g. 03,07 (default: all)"
    p = sub.add_parser("course", help="execute the notebooks in order into build/course/ (.ipynb + .html)")
    p.add_argument("--scale", choices=["tiny", "gpt2", "auto"], default=None,
                   help="RLHF_EDU_SCALE for the notebooks (default: $RLHF_EDU_SCALE, else auto)")
    p.add_argument("--only", default=None, help=only_help)
    p.add_argument("--keep-going", action="store_true", help="run the remaining notebooks after a failure")
    p.add_argument("--timeout", type=int, default=600, help="per-cell timeout in seconds (default 600)")
    p.add_argument("--notebooks", default=str(NOTEBOOKS_DIR), help=argparse.SUPPRESS)
    p.add_argument("--out", default=str(COURSE_DIR), help="output directory (default build/course)")
    p.set_defaults(func=cmd_course)

    p = sub.add_parser("homework", help="make student notebooks (solutions cleared, nbgrader-style)")
    p.add_argument("--out", default=str(HOMEWORK_DIR), help="output directory (default homework/)")
    p.add_argument("--only", default=None, help=only_help)
    p.add_argument("--notebooks", default=str(NOTEBOOKS_DIR), help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_homework)

    p = sub.add_parser("check", help="run a homework notebook and print a per-exercise pass/fail table")
    p.add_argument("notebook", nargs="+", help="the student's homework notebook(s); never modified")
    p.add_argument("--scale", choices=["tiny", "gpt2", "auto"], default=None,
                   help="RLHF_EDU_SCALE (default: $RLHF_EDU_SCALE, else tiny, the scale of the references)")
    p.add_argument("--timeout", type=int, default=600, help="per-cell timeout in seconds (default 600)")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("slides", help="build offline reveal.js decks into slides/NN_name.slides.html")
    p.add_argument("--out", default=str(SLIDES_DIR), help="output directory (default slides/)")
    p.add_argument("--only", default=None, help=only_help)
    p.add_argument("--notebooks", default=str(NOTEBOOKS_DIR), help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_slides)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .course import CourseError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CourseError as exc:
        print(f"rlhf-edu {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rlhf-edu {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
