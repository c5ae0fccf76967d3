"""Benchmark one DPO(+NLL) training run: steps/s, tokens/s and peak memory, at any scale.

Usage (from the repository root):

    .venv/bin/python benchmarks/dpo_step.py                      # scale from RLHF_EDU_SCALE / auto
    .venv/bin/python benchmarks/dpo_step.py --scale gpt2         # GPT-2 small, bf16 autocast on GPU
    .venv/bin/python benchmarks/dpo_step.py --scale gpt2 --random-init   # no weights needed

The loop timed is :func:`rlhf_edu.dpo.train_dpo` itself, with the reference log-probs precomputed
beforehand (so only the policy is in memory), no evaluation and no progress bar. Peak memory is
``torch.cuda.max_memory_allocated`` on a GPU and the process's peak resident set size
(``resource.getrusage``) on the CPU. Steps/s and tokens/s come from the median step time after
``--warmup`` steps, over ``--repeats`` runs (tokens: non-pad tokens of chosen plus rejected).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys

import torch


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", default=None, help="tiny | gpt2 | auto (default: RLHF_EDU_SCALE or auto)")
    p.add_argument("--steps", type=int, default=20, help="timed optimizer steps per repeat")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats (median reported)")
    p.add_argument("--batch-size", type=int, default=None, help="pairs per step (default: preset)")
    p.add_argument("--max-len", type=int, default=None, help="tokens per sequence cap (default: preset)")
    p.add_argument("--alpha", type=float, default=0.2, help="NLL weight (0 = plain DPO)")
    p.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--random-init", action="store_true",
                   help="random weights of the scale's architecture (for when GPT-2 cannot be downloaded)")
    return p.parse_args(argv)


def load_model(scale, device, random_init: bool):
    from rlhf_edu.models import NO_DROPOUT, load_base_model, load_tokenizer

    if not random_init:
        return load_base_model(scale, device=device, dtype=torch.float32), load_tokenizer(scale)
    from transformers import GPT2Config, GPT2LMHeadModel

    from rlhf_edu.config import tiny

    tok = load_tokenizer(tiny())  # any tokenizer whose ids fit the vocabulary will do for timing
    if scale.name == "gpt2":
        cfg = GPT2Config(**NO_DROPOUT)  # GPT-2 small: 12 layers, width 768, 50,257 tokens, 124M
    else:
        cfg = GPT2Config.from_pretrained(scale.model_source, **NO_DROPOUT)
    torch.manual_seed(0)
    return GPT2LMHeadModel(cfg).to(device=device, dtype=torch.float32).train(), tok


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # Linux reports KiB


def main(argv=None) -> dict:
    from rlhf_edu.config import get_scale, pick_device, seed_everything
    from rlhf_edu.data import load_splits, preference_pairs
    from rlhf_edu.dpo import DPOConfig, reference_logprobs, train_dpo
    from rlhf_edu.models import n_parameters

    args = parse_args(argv)
    seed_everything(0, threads=args.threads)
    scale = get_scale(args.scale)
    device = pick_device(args.device)
    sizes = {k: v for k, v in dict(batch_size=args.batch_size, max_len=args.max_len).items() if v is not None}
    config = DPOConfig.from_scale(scale, alpha=args.alpha, **sizes)
    if device.type != "cuda":
        config = config.with_(amp_dtype=None)
    policy, tok = load_model(scale, device, args.random_init)
    steps = args.warmup + args.steps
    pairs = preference_pairs(load_splits(0)["train"], seed=0)
    pairs = pairs.select([i % len(pairs) for i in range(steps * config.batch_size)])
    # the reference is scored once, up front: training holds only the policy in memory
    reference = reference_logprobs(policy, tok, pairs, config.max_len, config.max_prompt_tokens,
                                   config.eval_batch_size)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    step_s, step_tokens = [], []
    for _ in range(args.repeats):
        hist = train_dpo(policy, tok, pairs, None, config.with_(steps=steps), reference=reference,
                         progress=False)
        step_s += hist["seconds"][args.warmup:]
        step_tokens += hist["tokens"][args.warmup:]
    sec = statistics.median(step_s)
    result = dict(scale=scale.name, device=str(device), random_init=args.random_init,
                  params_m=round(n_parameters(policy) / 1e6, 1), batch_size=config.batch_size,
                  max_len=config.max_len, amp_dtype=config.amp_dtype, threads=torch.get_num_threads(),
                  median_step_s=round(sec, 4), steps_per_s=round(1 / sec, 3),
                  tokens_per_s=round(statistics.median(step_tokens) / sec, 1),
                  peak_memory_mb=round(peak_memory_mb(device), 1))
    for k, v in result.items():
        print(f"{k:>15}: {v}")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
