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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlhf-edu", description="Run and deliver the rlhf-edu course.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("pretrain", help="rebuild the tiny base model and tokenizer in data/ from scratch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--out", default=None, help="write here instead of data/tiny (no model card)")
    p.set_defaults(func=cmd_pretrain)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
