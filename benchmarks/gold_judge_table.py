"""The gold judge on known text: critic snippets, degenerate text and base-model samples.

    python benchmarks/gold_judge_table.py [--model DIR ...]

Prints mean gold, sentiment and readability (with standard errors) for: the test split's fresh,
rotten and plot snippets; hand-written neutral and degenerate texts; and 256 continuations of test
prompts from each base model given (default: the shipped tiny model). The judge is
``rlhf_edu.gold``; none of these texts were used to define it.
"""

from __future__ import annotations

import argparse
import math

import torch

from rlhf_edu import gold
from rlhf_edu.data import load_splits, make_prompts
from rlhf_edu.generation import sample
from rlhf_edu.resources import tiny_model_dir

HAND = {
    "neutral review": "The movie is about a family that moves to a new town.",
    "plain positive": "A warm and funny film with a great cast.",
    "plain negative": "The plot is dull and the acting is flat.",
    "one word repeated": "great great great great great great great great",
    "two words repeated": "good good movie movie good good movie movie",
    "praise words looped": "brilliant wonderful amazing brilliant wonderful amazing brilliant wonderful amazing",
    "nonsense words": "Swadous lagm punchdong brilliant wonderful zorbly.",
    "one word": "Great!",
}


def row(name: str, texts: list[str]) -> str:
    g = gold.gold_reward(texts)
    s = gold.sentiment(texts)
    q = torch.tensor([gold.readability(t) for t in texts])
    se = g.std().item() / math.sqrt(len(texts)) if len(texts) > 1 else float("nan")
    return f"| {name} | {len(texts)} | {g.mean():+.3f} | {se:.3f} | {s.mean():+.3f} | {q.mean():.3f} |"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", nargs="*", default=[str(tiny_model_dir())], help="base-model directories")
    args = ap.parse_args()
    torch.set_num_threads(2)
    test = load_splits(0)["test"]
    print("| texts | n | gold | SE | sentiment | readability |\n|---|---|---|---|---|---|")
    for label in ("fresh", "rotten", "plot"):
        print(row(f"test-split {label} snippets", [t for t, l in zip(test["text"], test["label"]) if l == label]))
    for name, text in HAND.items():
        print(row(f"{name}: `{text}`", [text]))
    from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast

    prompts = make_prompts(test, n=256, seed=0)["prompt"]
    for path in args.model:
        model = GPT2LMHeadModel.from_pretrained(path, dtype=torch.float32).eval()
        tok = PreTrainedTokenizerFast.from_pretrained(path)
        texts = sample(model, tok, prompts, max_new_tokens=32, seed=0).texts
        print(row(f"samples of {path} (256 test prompts, safe sampler)", texts))


if __name__ == "__main__":
    main()
