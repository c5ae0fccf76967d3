"""Benchmark a few PPO-ptx iterations at any scale: tokens/s, seconds per iteration, peak memory.

    python benchmarks/ppo_step.py --scale tiny
    python benchmarks/ppo_step.py --scale gpt2 --preset gpt2       # one 80 GB GPU (bf16)
    python benchmarks/ppo_step.py --scale gpt2 --preset gpt2_t4    # one 16 GB GPU (fp32, micro-batches)
    python benchmarks/ppo_step.py --scale random124m --iterations 1 --batch-size 8   # CPU smoke check

``random124m`` is a randomly initialised GPT-2 small config (124M parameters, 50,257-token
vocabulary) with a stand-in tokenizer; it needs no download. Every scale builds the four models of
RLHF: the policy, the frozen reference, the value model and the reward model (an untrained scalar
head: speed does not depend on what the reward model has learnt).

Tokens/s counts the sampled response tokens per second of a whole iteration (sampling, scoring,
reward, PPO epochs and the ptx term). The first iteration is reported separately (warm-up).

Expected cost of a full GPT-2-small run (``PPOConfig.gpt2()``: 200 iterations of 64 prompts x 32
tokens, 4 epochs of minibatch 16), an estimate to be replaced by this script's numbers on your GPU:

* memory: four 124M networks resident (policy, reference, value, reward: 2 GB in fp32) plus grads
  and AdamW state of policy and value (3 GB) plus logits of minibatch x length x 50,257 (150 MB per
  copy): about 6-8 GB, so a 16 GB T4 fits (``gpt2_t4``: fp32, micro-batches of 4);
* compute: about 2e13 FLOPs per iteration (6 x 124M x ~3k tokens x 4 epochs x 2 trained models,
  plus ptx), but at these batch sizes the 32 sequential sampling steps and kernel launches dominate:
  roughly 1-2 s per iteration on an A100/H100 (minutes per run), several seconds on a T4 in fp32
  (15-30 minutes per run).
* measured on the course's 2-core CPU (load ~7-11 from other jobs): one PPO-ptx iteration with the
  random 124M config, 8 prompts x 16 tokens, took 444 s wall / 68 s CPU in the smoke test.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rlhf_edu.config import get_scale, pick_device, seed_everything  # noqa: E402
from rlhf_edu.models import frozen_copy, scalar_head_from_lm  # noqa: E402
from rlhf_edu.ppo import PPOConfig, reward_model_scores, train_ppo  # noqa: E402


class IdTokenizer:
    """A stand-in tokenizer for random-weight models: text is a list of space-separated ids."""

    eos_token_id = pad_token_id = 50256

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [int(t) % 50256 for t in text.split()]}

    def decode(self, ids):
        return " ".join(str(i) for i in ids)


def build(scale_name: str, device: torch.device, seed: int = 0):
    """(policy, reference, value, reward_model, tokenizer, prompts, ptx_texts) at ``scale_name``."""
    seed_everything(seed)
    if scale_name == "random124m":
        from transformers import GPT2Config, GPT2LMHeadModel

        cfg = GPT2Config(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)  # GPT-2 small: 124M
        policy = GPT2LMHeadModel(cfg).to(device).train()
        tok = IdTokenizer()
        g = torch.Generator().manual_seed(seed)
        prompts = [" ".join(map(str, torch.randint(0, 50256, (12,), generator=g).tolist())) for _ in range(256)]
        ptx_texts = [" ".join(map(str, torch.randint(0, 50256, (64,), generator=g).tolist())) for _ in range(64)]
    else:
        from rlhf_edu.data import lm_documents, load_splits, make_prompts
        from rlhf_edu.models import load_policy

        scale = get_scale(scale_name)
        policy, tok = load_policy(scale, device=device, dtype=torch.float32)
        splits = load_splits()
        prompts = make_prompts(splits["train"], n=512, seed=seed)["prompt"]
        ptx_texts = lm_documents(splits["validation"])[:400]
    reference = frozen_copy(policy)
    value = scalar_head_from_lm(policy)
    reward_model = frozen_copy(scalar_head_from_lm(policy))
    return policy, reference, value, reward_model, tok, list(prompts), ptx_texts


def peak_memory_mb(device: torch.device) -> float:
    """Peak GPU memory allocated (CUDA) or peak resident memory of the process (CPU), in MiB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run(scale_name: str = "tiny", preset: str | None = None, iterations: int = 3, device=None,
        threads: int | None = 2, progress: bool = True, **overrides) -> dict:
    """Run ``iterations`` PPO-ptx iterations; returns timings and peak memory."""
    from rlhf_edu.ppo import ptx_blocks

    device = pick_device(device)
    if threads:
        torch.set_num_threads(threads)
    policy, reference, value, rm, tok, prompts, ptx_texts = build(scale_name, device)
    preset = preset or ("tiny" if scale_name == "tiny" else "gpt2")
    config = getattr(PPOConfig, preset)(**{"iterations": iterations, "ptx_coef": 0.5, **overrides})
    blocks = ptx_blocks(tok, ptx_texts, block_tokens=32)
    t0 = time.perf_counter()
    hist = train_ppo(config, policy, reference, value, tok, prompts, lambda ro: reward_model_scores(rm, ro),
                     ptx_data=blocks, heldout=None, progress=progress)
    wall = time.perf_counter() - t0
    secs = hist["seconds"]
    steady = secs[1:] or secs
    tokens = [length * config.batch_size for length in hist["response_length"]]
    return {
        "scale": scale_name, "preset": preset, "device": str(device), "iterations": iterations,
        "batch_size": config.batch_size, "max_new_tokens": config.max_new_tokens,
        "ppo_epochs": config.ppo_epochs, "minibatch_size": config.minibatch_size,
        "micro_batch_size": config.micro_batch_size, "dtype": config.dtype,
        "first_iteration_s": round(secs[0], 3),
        "s_per_iteration": round(statistics.median(steady), 3),
        "tokens_per_s": round(sum(tokens[1:] or tokens) / sum(steady), 1),
        "peak_memory_mb": round(peak_memory_mb(device), 1),
        "wall_s": round(wall, 2), "threads": torch.get_num_threads(),
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", default="tiny", choices=["tiny", "gpt2", "random124m"])
    ap.add_argument("--preset", default=None, choices=["tiny", "gpt2", "gpt2_t4"])
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--minibatch-size", type=int, default=None)
    ap.add_argument("--max-new-tokens", type=int, default=None)
    ap.add_argument("--ppo-epochs", type=int, default=None)
    ap.add_argument("--device", default=None)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    overrides = {k: v for k, v in dict(batch_size=args.batch_size, minibatch_size=args.minibatch_size,
                                       max_new_tokens=args.max_new_tokens, ppo_epochs=args.ppo_epochs).items()
                 if v is not None}
    if "batch_size" in overrides and "minibatch_size" not in overrides:
        overrides["minibatch_size"] = min(overrides["batch_size"], 16)
    print(json.dumps(run(args.scale, args.preset, args.iterations, args.device, args.threads, **overrides), indent=1))


if __name__ == "__main__":
    main()
