"""Rollouts for RL: sample responses and score every response token under the policy, the frozen
reference and the value model; score samples with an evaluation (gold) reward.

:func:`make_rollout` is step 1 of every PPO iteration (:func:`rlhf_edu.ppo.train_ppo`): it uses the
safe sampler (:func:`rlhf_edu.generation.sample`) and :func:`rlhf_edu.logprobs.response_logprobs`.

Shapes: B responses, P prompt tokens, R response tokens, V vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .config import autocast
from .generation import Rollout, encode_prompts, sample
from .logprobs import response_logprobs
from .rewards import FineGrainedOutput, gold_reward


def _autocast(config, device) -> torch.autocast:
    """bf16 autocast on CUDA when ``config.dtype == "bfloat16"`` (a PPOConfig); disabled otherwise."""
    return autocast(device, "bfloat16" if config.dtype == "bfloat16" else None)



@dataclass
class PPOBatch:
    """One scored rollout. Shapes: B responses, P prompt tokens, R response tokens."""

    input_ids: torch.Tensor
    """(B, P+R) left-padded prompt followed by the response."""
    attention_mask: torch.Tensor
    """(B, P+R)."""
    response_mask: torch.Tensor
    """(B, R) 1 on real response tokens (through EOS)."""
    prompt_length: int
    """P."""
    logprobs: torch.Tensor
    """(B, R) log pi_old(a_t|s_t), re-scored with the training forward pass (or the sampler's own,
    with ``PPOConfig.reuse_sampler_logprobs``)."""
    ref_logprobs: torch.Tensor
    """(B, R) log pi_ref(a_t|s_t)."""
    values: torch.Tensor
    """(B, R) V_old(s_t), the value of the state before token t."""
    texts: list
    """B decoded responses."""
    prompts: list
    """B prompts."""
    rewards: torch.Tensor | None = None
    """(B, R) per-token rewards (task scores minus beta KL)."""
    scores: torch.Tensor | None = None
    """(B, R) the task-score part of the rewards."""
    kl: torch.Tensor | None = None
    """(B, R) per-token KL estimate."""
    advantages: torch.Tensor | None = None
    """(B, R)."""
    returns: torch.Tensor | None = None
    """(B, R) value targets."""
    rollout: Rollout | None = None
    """The sampler's output (what reward functions read)."""



def response_values(value_model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    prompt_length: int) -> torch.Tensor:
    """V(s_t) for each response token t: the value head at the position just before it. Returns (B, R)."""
    v = value_model(input_ids, attention_mask)  # (B, P+R)
    return v[:, prompt_length - 1:-1]  # (B, R)



@torch.no_grad()
def reward_model_scores(reward_model, rollout: Rollout) -> torch.Tensor:
    """R_phi(x, y) (B,) of a rollout's token ids directly (no re-tokenisation): the scalar head at
    each response's last real token. Use when the reward model shares the policy's tokenizer and
    was trained on the same layout; otherwise score decoded texts (e.g. ``bradley_terry.score_texts``).
    """
    P = rollout.prompt_length
    mask = torch.cat([rollout.attention_mask[:, :P], rollout.response_mask], 1)  # (B, P+R)
    return reward_model.score(rollout.input_ids, mask).float()  # (B,)



def check_context(model: nn.Module, prompt_length: int, max_new_tokens: int) -> None:
    """Raise ``ValueError`` when prompt + response cannot fit the model's context window."""
    n_ctx = getattr(model.config, "n_positions", None)
    if n_ctx is not None and prompt_length + max_new_tokens > n_ctx:
        raise ValueError(f"prompts: {prompt_length} prompt tokens + {max_new_tokens} new tokens exceed the "
                         f"model's context of {n_ctx}; shorten the prompts or set max_prompt_tokens")


@torch.no_grad()
def make_rollout(policy, reference, value_model, tokenizer, prompts: list[str], config,
                 generator: torch.Generator | None = None) -> PPOBatch:
    """Sample one response per prompt with the safe sampler and score it under all three models.

    config: a :class:`rlhf_edu.ppo.PPOConfig` (``max_new_tokens``, ``max_prompt_tokens``, ``dtype``,
    ``reuse_sampler_logprobs``).
    """
    ids, _ = encode_prompts(tokenizer, prompts, config.max_prompt_tokens)
    check_context(policy, ids.shape[1], config.max_new_tokens)
    ro: Rollout = sample(policy, tokenizer, prompts, config.max_new_tokens, generator=generator,
                         max_prompt_tokens=config.max_prompt_tokens)
    P, m = ro.prompt_length, ro.response_mask
    with _autocast(config, ro.input_ids.device):
        if config.reuse_sampler_logprobs and not torch.is_autocast_enabled(ro.input_ids.device.type) \
                and next(policy.parameters()).dtype == torch.float32:
            old = ro.logprobs * m  # (B, R) the sampler's own log-probs: no second policy pass
        else:  # re-score with the training forward pass: the first ratio is exactly 1
            old = response_logprobs(policy, ro.input_ids, ro.attention_mask, P) * m  # (B, R)
        ref = response_logprobs(reference, ro.input_ids, ro.attention_mask, P) * m  # (B, R)
        values = response_values(value_model, ro.input_ids, ro.attention_mask, P).float() * m  # (B, R)
    return PPOBatch(ro.input_ids, ro.attention_mask, m, P, old, ref, values, ro.texts, list(prompts), rollout=ro)


@torch.no_grad()
def score_samples(policy, tokenizer, prompts: list[str], max_new_tokens: int, seed: int = 1234,
                  max_prompt_tokens: int | None = 16, reward_fn=None, gold_fn=gold_reward) -> dict:
    """Sample one response per prompt (fixed seed) and score it: ``gold_fn(texts)`` (default: the
    gold judge, :mod:`rlhf_edu.gold`) and, if given, the proxy ``reward_fn(rollout)``.

    Returns ``{"gold": (B,) tensor, "proxy": (B,) tensor or None, "texts": list}``.
    """
    ro = sample(policy, tokenizer, prompts, max_new_tokens, seed=seed, max_prompt_tokens=max_prompt_tokens)
    proxy = reward_fn(ro) if reward_fn is not None else None
    if isinstance(proxy, FineGrainedOutput):
        proxy = proxy.token_scores.sum(-1)
    return {"gold": gold_fn(ro.texts), "proxy": proxy, "texts": ro.texts}
