"""The ``rlhf-edu`` command (also ``python -m rlhf_edu``)."""

from __future__ import annotations

import argparse
import json
import sys

from .course import COURSE_DIR, NOTEBOOKS_DIR, CourseError, copy_course, run_course
from .homework import HOMEWORK_DIR, SOURCE_DIR, build_homework, check_homework, format_check
from .pretrain import PretrainConfig, pretrain
from .sft import SFTConfig, sft
from .teacher_corpus import TeacherConfig, build_teacher_corpus, pack_shards
from .slides import SLIDES_DIR, build_slides


def cmd_pretrain(args: argparse.Namespace) -> int:
    cfg = PretrainConfig(seed=args.seed, steps=args.steps, teacher=not args.no_teacher, **({"out_dir": args.out} if args.out else {}))
    metrics = pretrain(cfg, write_card=args.card, compare_dir=args.compare)
    print(json.dumps({k: v for k, v in metrics.items() if k not in ("history", "eval", "baseline")}, indent=1))
    print(f"model written to {cfg.out_dir}; load it with RLHF_EDU_TINY_DIR={cfg.out_dir}", file=sys.stderr)
    return 0


def cmd_sft(args: argparse.Namespace) -> int:
    cfg = SFTConfig(steps=args.steps, **{k: v for k, v in (("source", args.source), ("out_dir", args.out)) if v})
    m = sft(cfg)
    print(f"SFT done in {m['train_seconds']:.0f} s: validation perplexity {m['val_ppl_before']:.1f} -> "
          f"{m['val_ppl_after']:.1f}; written to {cfg.out_dir}", file=sys.stderr)
    return 0


def cmd_teacher_corpus(args: argparse.Namespace) -> int:
    cfg = TeacherConfig(seed=args.seed, n_shards=args.shards, out_dir=args.shard_dir, kind=args.kind,
                        worker=args.worker, workers=args.workers, threads=1 if args.workers > 1 else 2)
    build_teacher_corpus(cfg)
    if args.pack:
        print(json.dumps(pack_shards(cfg.out_dir, args.pack)))
    return 0


def cmd_course(args: argparse.Namespace) -> int:
    if args.dest:
        copy_course(args.dest, notebooks_dir=args.notebooks)
        return 0
    runs = run_course(scale=args.scale, only=args.only, notebooks_dir=args.notebooks, out_dir=args.out,
                      keep_going=args.keep_going, timeout=args.timeout, in_place=args.in_place)
    return 0 if all(r.status == "ok" for r in runs) else 1


def cmd_build(args: argparse.Namespace) -> int:
    """``homework`` and ``slides``: one output file per notebook."""
    extra = {"solutions_dir": args.solutions} if args.solutions else {}  # homework only
    args.build(notebooks_dir=args.notebooks, out_dir=args.out, only=args.only, **extra)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    status = 0
    for path in args.notebook:
        try:
            results = check_homework(path, timeout=args.timeout, scale=args.scale, keep=args.keep)
        except CourseError as exc:
            print(f"rlhf-edu check: error: {exc}", file=sys.stderr)
            status = 2
            continue
        print(f"\n{path}\n{format_check(results)}")
        if not all(r.passed for r in results) and status == 0:
            status = 1
    return status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlhf-edu", description="Run and deliver the rlhf-edu course.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("pretrain", help="rebuild the tiny base model and tokenizer from scratch (into the user cache)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=PretrainConfig.steps)
    p.add_argument("--out", default=None,
                   help="output directory (default: $RLHF_EDU_CACHE/tiny, i.e. ~/.cache/rlhf-edu/tiny); "
                        "maintainers: rlhf_edu/data/tiny (make pretrain)")
    p.add_argument("--card", action="store_true", help="also write the model card README.md beside --out")
    p.add_argument("--compare", default=None, metavar="DIR", help="a previous model to evaluate beside the new one in the card")
    p.add_argument("--no-teacher", action="store_true", help="critic snippets only (v1's data), without the teacher reviews")
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser("sft", help="fine-tune raw GPT-2 small on the course text once (the gpt2 scale starts from it)")
    p.add_argument("--scale", choices=["gpt2"], required=True, help="only gpt2: the tiny model is pretrained on the course text")
    p.add_argument("--steps", type=int, default=SFTConfig.steps)
    p.add_argument("--source", default=None, help="raw GPT-2 directory or hub id (default: $RLHF_EDU_GPT2_PATH, else the hub)")
    p.add_argument("--out", default=None, help="output directory (default: $RLHF_EDU_GPT2_SFT_DIR, else <cache>/gpt2-sft)")
    p.set_defaults(func=cmd_sft)

    p = sub.add_parser("teacher-corpus", help="maintainers: generate the teacher reviews with SmolLM2 (resumable shards)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shards", type=int, default=TeacherConfig.n_shards, help="number of 96-review shards")
    p.add_argument("--kind", choices=("review", "continue"), default="review", help="what the teacher writes (see TEACHER.md)")
    p.add_argument("--shard-dir", default=None, help="where the shards go (default build/teacher_corpus or build/teacher_continuations)")
    p.add_argument("--workers", type=int, default=1, help="run this many processes in parallel, one thread each")
    p.add_argument("--worker", type=int, default=0, help="this process's index among --workers")
    p.add_argument("--pack", default=None, metavar="FILE", help="then write the kept rows to FILE (.jsonl.bz2)")
    p.set_defaults(func=cmd_teacher_corpus)

    only_help = "comma-separated notebook numbers, e.g. 03,07 (default: all)"
    p = sub.add_parser("course", help="execute the notebooks in order into build/course/ (.ipynb + .html), "
                                      "or copy them to a working folder (--dest)")
    p.add_argument("--dest", default=None, metavar="DIR",
                   help="copy the notebooks (and the offline slide assets) to DIR and stop; files already there are kept")
    p.add_argument("--in-place", action="store_true",
                   help="maintainers: execute the source notebooks and write them back, cleaned (make notebooks)")
    p.add_argument("--scale", choices=["tiny", "gpt2", "auto"], default=None,
                   help="RLHF_EDU_SCALE for the notebooks (default: $RLHF_EDU_SCALE, else auto)")
    p.add_argument("--only", default=None, help=only_help)
    p.add_argument("--keep-going", action="store_true", help="run the remaining notebooks after a failure")
    p.add_argument("--timeout", type=int, default=600, help="per-cell timeout in seconds (default 600)")
    p.add_argument("--notebooks", default=str(NOTEBOOKS_DIR), help=argparse.SUPPRESS)
    p.add_argument("--out", default=str(COURSE_DIR), help="output directory (default build/course)")
    p.set_defaults(func=cmd_course)

    p = sub.add_parser("check", help="run a homework notebook and print a per-exercise pass/fail table")
    p.add_argument("notebook", nargs="+", help="the student's homework notebook(s); never modified")
    p.add_argument("--scale", choices=["tiny", "gpt2", "auto"], default=None,
                   help="RLHF_EDU_SCALE (default: $RLHF_EDU_SCALE, else tiny, the scale of the references)")
    p.add_argument("--timeout", type=int, default=600, help="per-cell timeout in seconds (default 600)")
    p.add_argument("--keep", default=None, metavar="DIR",
                   help="also write each graded notebook (hidden tests restored, unexecuted) to DIR, e.g. for nbval")
    p.set_defaults(func=cmd_check)

    for name, build, out, help_ in (
            ("homework", build_homework, HOMEWORK_DIR, "make the student notebooks from homework/source (nbgrader)"),
            ("slides", build_slides, SLIDES_DIR, "build offline reveal.js decks into slides/NN_name.slides.html")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--out", default=str(out), help=f"output directory (default {out.name}/)")
        p.add_argument("--only", default=None, help=only_help)
        p.add_argument("--notebooks", default=str(SOURCE_DIR if build is build_homework else NOTEBOOKS_DIR),
                       help=argparse.SUPPRESS)
        p.add_argument("--solutions", default=None, metavar="DIR", help=argparse.SUPPRESS if name == "slides" else
                       "also write the instructor notebooks (nbgrader metadata, hidden tests) to DIR")
        p.set_defaults(func=cmd_build, build=build)
    return parser


def main(argv: list[str] | None = None) -> int:
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
