"""RLHF with PPO: rollouts, GAE, the clipped policy and value losses, KL control and PPO-ptx.

The pieces, in the order one iteration of :func:`train_ppo` uses them:

1. :func:`rlhf_edu.rollouts.make_rollout` samples responses with the safe sampler and scores every
   response token under the policy (old log-probs), the frozen reference and the value model.
2. A reward function gives task scores, either one per response (holistic, put on the last
   token) or dense per-token scores (:class:`rlhf_edu.rewards.FineGrainedReward`).
   :func:`rlhf_edu.rewards.kl_shaped_rewards` subtracts beta * KL on every token (eq. 2 of the
   Regularization chapter; Lecture 6's fine-grained reward).
3. :func:`gae` turns per-token rewards and values into advantages and returns.
4. :func:`ppo_update` runs a few epochs of minibatch steps on :func:`clipped_policy_loss` plus
   :func:`clipped_value_loss` plus gamma_ptx times the LM loss on pretraining text
   (:func:`ppo_ptx_loss`, eq. 6), stopping early if the approximate KL between the new and the
   old policy passes a target.
5. :class:`KLController` adapts beta (Ziegler et al. 2019) when asked to.

Shapes: B responses, P prompt tokens, R response tokens, V vocabulary, L tokens per ptx block.
Every loss here is a pure function of tensors and returns its value with detached diagnostics.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields, replace
from typing import NamedTuple

import torch
from torch import nn
from tqdm.auto import tqdm

from ._checks import check_instance, check_int, check_nonnegative, check_positive
from .data import pack_blocks
from .logprobs import (logprobs_of_labels, masked_mean, masked_whiten, model_token_logprobs, response_logits,
                       response_logprobs)
from .rewards import FineGrainedOutput, gold_reward, kl_shaped_rewards, sequence_to_token_scores
from .rollouts import (PPOBatch, _autocast, check_context, make_rollout, response_values,  # noqa: F401
                       reward_model_scores, score_samples)


@dataclass
class PPOConfig:
    """Settings of one PPO(-ptx) run. Presets: :meth:`tiny`, :meth:`gpt2`, :meth:`gpt2_t4`."""

    iterations: int = 20
    """Rollout + update rounds."""
    batch_size: int = 32
    """Prompts (= responses) per rollout."""
    max_new_tokens: int = 20
    """R: tokens sampled per response (fewer when every response has hit EOS)."""
    max_prompt_tokens: int = 16
    """Prompts are cut from the left to this many tokens."""
    lr: float = 1e-4
    """AdamW learning rate of the policy."""
    value_lr: float = 5e-4
    """AdamW learning rate of the value model."""
    ppo_epochs: int = 2
    """Passes over each rollout."""
    minibatch_size: int = 16
    """Responses per optimizer step."""
    micro_batch_size: int | None = None
    """Responses per forward/backward (gradient accumulation); None = the whole minibatch."""
    clip_eps: float = 0.2
    """epsilon of the clipped policy ratio."""
    value_clip_eps: float = 0.2
    """Clip range of the value update around the rollout's values."""
    vf_coef: float = 0.5
    """Weight of the value loss (the value model has its own parameters; this scales its gradient)."""
    gamma: float = 1.0
    """Discount of GAE; 1 is usual for text, where the episode is one response."""
    lam: float = 0.95
    """lambda of GAE: 0 gives one-step TD errors, 1 Monte Carlo returns minus the value."""
    beta: float = 0.05
    """KL coefficient beta of eq. 2 (the start value when ``adaptive_kl``)."""
    kl_estimator: str = "k1"
    """Per-token KL in the reward: ``"k1"`` (log ratio) or ``"k3"``."""
    adaptive_kl: bool = False
    """Adapt beta towards ``kl_target`` (Ziegler et al. 2019)."""
    kl_target: float = 6.0
    """Target sequence KL (nats) of the adaptive controller."""
    kl_horizon: int = 10_000
    """Horizon of the adaptive controller, in responses."""
    target_approx_kl: float | None = None
    """Stop the epochs of an iteration once the approximate KL(old || new) of a minibatch passes this."""
    ptx_coef: float = 0.0
    """gamma_ptx of eq. 6: weight of the LM loss on pretraining text; 0 is plain PPO."""
    ptx_batch_size: int = 16
    """Pretraining blocks per optimizer step."""
    whiten_advantages: bool = True
    """Normalise advantages to mean 0, std 1 over the rollout's real tokens."""
    max_grad_norm: float = 1.0
    """Gradient-norm clip per model."""
    eval_every: int = 5
    """Evaluate the held-out LM loss every this many iterations (and at the start and end)."""
    seed: int = 0
    """Seeds prompt order, sampling and ptx batches."""
    dtype: str = "float32"
    """Autocast dtype on CUDA (``bfloat16``); CPU runs stay in float32."""
    reuse_sampler_logprobs: bool = False
    """Take log pi_old from the sampler instead of re-scoring the rollout with a policy forward pass
    (TRL's PPO does the same): one forward pass less per iteration. The values agree with the
    re-scored ones up to float32 round-off (~1e-6), so the first ratio is 1 and an untrained
    policy's KL is 0 only up to round-off. Ignored under bf16 autocast or non-float32 weights."""

    def __post_init__(self):
        for name in ("iterations", "batch_size", "max_new_tokens", "ppo_epochs", "minibatch_size", "ptx_batch_size",
                     "eval_every", "kl_horizon") + tuple(k for k in ("max_prompt_tokens", "micro_batch_size")
                                                         if getattr(self, k) is not None):
            check_int(name, getattr(self, name))
        for name in ("lr", "value_lr", "max_grad_norm", "kl_target", "clip_eps", "value_clip_eps") + (
                ("target_approx_kl",) if self.target_approx_kl is not None else ()):
            check_positive(name, getattr(self, name))
        for name in ("beta", "vf_coef", "ptx_coef"):
            check_nonnegative(name, getattr(self, name))
        for name in ("gamma", "lam"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name}: expected a value in [0, 1], got {getattr(self, name)}")
        if self.kl_estimator not in ("k1", "k3"):
            raise ValueError(f"kl_estimator: expected 'k1' or 'k3', got {self.kl_estimator!r}")
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise ValueError(f"dtype: expected 'float32', 'bfloat16' or 'float16', got {self.dtype!r}")
        if self.batch_size % self.minibatch_size:
            raise ValueError(f"minibatch_size: expected a divisor of batch_size={self.batch_size}, "
                             f"got {self.minibatch_size}")
        if self.micro_batch_size is not None and self.minibatch_size % self.micro_batch_size:
            raise ValueError(f"micro_batch_size: expected a divisor of minibatch_size={self.minibatch_size}, "
                             f"got {self.micro_batch_size}")

    def with_(self, **kwargs) -> "PPOConfig":
        """A copy with some fields replaced (validated again)."""
        return replace(self, **kwargs)

    @classmethod
    def tiny(cls, **kw) -> "PPOConfig":
        """The 2-core CPU preset: about 1-2 s per iteration with the 5M-parameter tiny model."""
        return cls(**kw)

    @classmethod
    def gpt2(cls, **kw) -> "PPOConfig":
        """GPT-2 small on one 80 GB GPU (A100/H100): bf16 autocast, no gradient accumulation."""
        base = dict(iterations=200, batch_size=64, max_new_tokens=32, lr=1.4e-5, value_lr=1e-5,
                    ppo_epochs=4, minibatch_size=16, micro_batch_size=None, ptx_batch_size=16,
                    eval_every=20, dtype="bfloat16")
        return cls(**{**base, **kw})

    @classmethod
    def gpt2_t4(cls, **kw) -> "PPOConfig":
        """GPT-2 small on one 16 GB GPU (Colab T4): float32 (no bf16 on a T4), micro-batches of 4."""
        return cls.gpt2(**{**dict(dtype="float32", micro_batch_size=4), **kw})

    @classmethod
    def from_scale(cls, scale, **kw) -> "PPOConfig":
        """The preset matching a :class:`rlhf_edu.config.Scale` (``scale.extra`` may override fields;
        ``scale.n`` cuts the iterations in a plumbing test)."""
        names = {f.name for f in fields(cls)}
        extra = {k: v for k, v in scale.extra.items() if k in names}
        cfg = (cls.tiny if scale.name == "tiny" else cls.gpt2)(**{**extra, **kw})
        return replace(cfg, iterations=scale.n(cfg.iterations))



# ------------------------------------------------------------------------------------------
# Advantages and losses (pure functions of tensors)
# ------------------------------------------------------------------------------------------

def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0,
        lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016) over response tokens.

    delta_t = r_t + gamma V(s_{t+1}) - V(s_t), with V = 0 after the last real token;
    A_t = delta_t + gamma lambda A_{t+1}. Returns R_t = A_t + V(s_t) as the value target.

    rewards, values, mask: (B, R), mask 1 on a contiguous block of real tokens starting at 0.
    Returns ``(advantages, returns)``, both (B, R) and zero where mask is 0.
    """
    m = mask.float()
    keep, zero = mask != 0, torch.zeros_like(m)  # where, not * m: inf/NaN garbage in padding cannot leak
    r = torch.where(keep, rewards.float() * m, zero)  # (B, R)
    v = torch.where(keep, values.float().detach() * m, zero)  # (B, R)
    adv, last = torch.zeros_like(r), torch.zeros_like(r[:, 0])  # (B, R) A_t and (B,) A_{t+1}
    for t in reversed(range(r.shape[1])):
        next_v = v[:, t + 1] if t + 1 < r.shape[1] else torch.zeros_like(last)  # (B,) 0 after the end
        delta = r[:, t] + gamma * next_v - v[:, t]  # (B,) TD error delta_t
        last = (delta + gamma * lam * last) * m[:, t]  # (B,) A_t = delta_t + gamma lam A_{t+1}
        adv[:, t] = last
    return adv, (adv + v) * m  # (B, R) advantages, returns



class PolicyLoss(NamedTuple):
    """Output of :func:`clipped_policy_loss`."""

    loss: torch.Tensor
    """Scalar: masked mean of ``per_token`` (what is minimised)."""
    per_token: torch.Tensor
    """(B, R) -min(rho A, clip(rho, 1-eps, 1+eps) A), zero on padding."""
    clipfrac: torch.Tensor
    """Fraction of real tokens where the clipped branch was chosen (detached)."""
    approx_kl: torch.Tensor
    """k3 estimate of KL(old || new) over real tokens (detached); large means the step went far."""



def clipped_policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                        mask: torch.Tensor, clip_eps: float = 0.2) -> PolicyLoss:
    """PPO's clipped surrogate (Schulman et al. 2017), negated to be minimised.

    rho_t = pi(a_t|s_t) / pi_old(a_t|s_t); L_t = -min(rho_t A_t, clip(rho_t, 1-eps, 1+eps) A_t).
    logprobs: (B, R) under the policy being trained (with grad); old_logprobs, advantages: (B, R)
    from the rollout; mask: (B, R).
    """
    keep = mask != 0  # padding gets log rho 0 and advantage 0, so its garbage cannot reach loss or grads
    log_rho = torch.where(keep, logprobs - old_logprobs.detach(), torch.zeros_like(logprobs))  # (B, R)
    rho = log_rho.exp()  # (B, R) rho_t
    adv = torch.where(keep, advantages.detach(), torch.zeros_like(advantages))  # (B, R) A_t
    unclipped = torch.where(adv == 0, torch.zeros_like(rho), rho * adv)  # (B, R) rho A; not inf * 0 = NaN
    clipped = rho.clamp(1 - clip_eps, 1 + clip_eps) * adv  # (B, R) clip(rho) A
    per_token = -torch.minimum(unclipped, clipped) * mask  # (B, R) L_t = -min(rho A, clip(rho) A)
    with torch.no_grad():
        clipfrac = masked_mean((clipped < unclipped).float(), mask)
        approx_kl = masked_mean(torch.expm1(log_rho) - log_rho, mask)  # k3 of KL(old || new)
    return PolicyLoss(masked_mean(per_token, mask), per_token, clipfrac, approx_kl)


class ValueLoss(NamedTuple):
    """Output of :func:`clipped_value_loss`."""

    loss: torch.Tensor
    """Scalar: masked mean of ``per_token``."""
    per_token: torch.Tensor
    """(B, R) 0.5 max((V - R)^2, (V_clip - R)^2), zero on padding."""
    clipfrac: torch.Tensor
    """Fraction of real tokens where the clipped error was the larger one (detached)."""



def clipped_value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor,
                       mask: torch.Tensor, clip_eps: float = 0.2) -> ValueLoss:
    """The clipped value loss of PPO implementations (OpenAI baselines, TRL).

    V_clip = V_old + clip(V - V_old, -eps, eps); L = 0.5 max((V - R)^2, (V_clip - R)^2).
    values: (B, R) with grad; old_values, returns, mask: (B, R).
    """
    old, ret = old_values.detach(), returns.detach()
    if any(t.dtype in (torch.float16, torch.bfloat16) for t in (values, old, ret)):  # squares overflow float16
        values, old, ret = (t.to(torch.promote_types(t.dtype, torch.float32)) for t in (values, old, ret))
    v_clip = old + (values - old).clamp(-clip_eps, clip_eps)  # (B, R) V_clip
    err, err_clip = (values - ret) ** 2, (v_clip - ret) ** 2  # (B, R)
    per_token = torch.where(mask != 0, 0.5 * torch.maximum(err, err_clip) * mask,
                            torch.zeros_like(err))  # (B, R) 0.5 max(...), 0 on padding (even with inf garbage)
    with torch.no_grad():
        clipfrac = masked_mean((err_clip > err).float(), mask)
    return ValueLoss(masked_mean(per_token, mask), per_token, clipfrac)



def lm_loss(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean next-token NLL of ``input_ids`` (B, L) under ``model``: -E[log pi(x)] of eq. 6. Scalar."""
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    lp = model_token_logprobs(model, input_ids, attention_mask)  # (B, L-1)
    return -masked_mean(lp, attention_mask[:, 1:])


class PtxLoss(NamedTuple):
    """Output of :func:`ppo_ptx_loss`."""

    loss: torch.Tensor
    """Scalar: L_PPO + gamma * NLL_pretrain (what is minimised)."""
    ppo_loss: torch.Tensor
    """Scalar: the PPO part (detached)."""
    ptx_nll: torch.Tensor
    """Scalar: the pretraining NLL, before the factor gamma (detached)."""


def ppo_ptx_loss(ppo_loss: torch.Tensor, ptx_nll: torch.Tensor, ptx_coef: float) -> PtxLoss:
    """The PPO-ptx objective (eq. 6 of the Regularization chapter, InstructGPT) as a loss.

    J = E[r - beta r_reg] + gamma E_pretrain[log pi(x)]; minimising ``ppo_loss + gamma * nll`` does
    gradient ascent on J. ptx_coef = gamma >= 0. With gamma = 0, ``loss`` is exactly ``ppo_loss``.
    Returns :class:`PtxLoss` (scalars).
    """
    loss = ppo_loss + ptx_coef * ptx_nll if ptx_coef else ppo_loss  # eq. 6: -J = L_PPO - gamma E[log pi(x)]
    return PtxLoss(loss, ppo_loss.detach(), ptx_nll.detach())


class KLController:
    """beta for the KL penalty: fixed, or adaptive as in Ziegler et al. 2019 (sec. 2.2).

    Adaptive: e = clip(KL / KL_target - 1, -0.2, 0.2); beta <- beta (1 + e n / horizon), where n is
    the number of responses since the last update. KL above target raises beta, below lowers it.
    """

    def __init__(self, beta: float, adaptive: bool = False, target: float = 6.0, horizon: int = 10_000):
        check_nonnegative("beta", beta)
        self.beta, self.adaptive, self.target, self.horizon = float(beta), adaptive, target, horizon

    def update(self, kl: float, n_steps: int) -> float:
        """Update beta from the last rollout's mean sequence KL; returns the new beta."""
        if self.adaptive:
            err = min(max(kl / self.target - 1.0, -0.2), 0.2)  # clipped proportional error
            self.beta *= 1.0 + err * n_steps / self.horizon
        return self.beta



def score_batch(batch: PPOBatch, reward_out, beta: float, config: PPOConfig) -> PPOBatch:
    """Fill in rewards, KL, advantages and returns from a reward function's output.

    reward_out: a (B,) tensor of holistic scores (placed on the last token) or a
    :class:`rlhf_edu.rewards.FineGrainedOutput` with dense (B, R) scores.
    """
    m = batch.response_mask
    if isinstance(reward_out, FineGrainedOutput):
        token_scores = reward_out.token_scores.to(m.device)  # (B, R)
    elif getattr(reward_out, "shape", None) == (m.shape[0],):
        token_scores = sequence_to_token_scores(reward_out.to(m.device), m)  # (B, R)
    else:
        raise ValueError(f"reward_out: expected a ({m.shape[0]},) tensor or a FineGrainedOutput, "
                         f"got {getattr(reward_out, 'shape', type(reward_out).__name__)}")
    shaped = kl_shaped_rewards(token_scores, batch.logprobs, batch.ref_logprobs, m, beta, config.kl_estimator)
    adv, ret = gae(shaped.rewards, batch.values, m, config.gamma, config.lam)  # (B, R)
    if config.whiten_advantages:
        adv = masked_whiten(adv, m) * m  # (B, R)
    return replace(batch, rewards=shaped.rewards, scores=shaped.scores, kl=shaped.kl, advantages=adv,
                   returns=ret)



# ------------------------------------------------------------------------------------------
# Pretraining (ptx) data and evaluation
# ------------------------------------------------------------------------------------------

def ptx_blocks(tokenizer, texts: list[str], block_tokens: int = 32, max_blocks: int | None = None) -> torch.Tensor:
    """Pack documents, each followed by EOS, into blocks of ``block_tokens`` tokens. Returns (N, L)."""
    blocks = pack_blocks(tokenizer, texts, check_int("block_tokens", block_tokens, 2))[:max_blocks]  # (N, L)
    if len(blocks) == 0:
        raise ValueError(f"texts: expected at least {block_tokens} tokens of text")
    return blocks



@torch.no_grad()
def heldout_lm_loss(model: nn.Module, blocks: torch.Tensor, batch_size: int = 32) -> float:
    """Mean next-token NLL (nats) of ``model`` on held-out blocks (N, L)."""
    device = next(model.parameters()).device
    total = 0.0
    for i in range(0, len(blocks), batch_size):
        b = blocks[i:i + batch_size].to(device)  # (b, L)
        total += lm_loss(model, b).item() * b.shape[0]
    return total / len(blocks)



def response_logprobs_masked(model, input_ids, attention_mask, prompt_length, mask) -> torch.Tensor:
    """Deprecated (0.1): ``rlhf_edu.logprobs.response_logprobs(...) * mask``."""
    return response_logprobs(model, input_ids, attention_mask, prompt_length) * mask




# ------------------------------------------------------------------------------------------
# The update and the loop
# ------------------------------------------------------------------------------------------

def _minibatch_losses(policy, value_model, batch: PPOBatch, idx: torch.Tensor, config: PPOConfig):
    """Policy loss, value loss and mean entropy on the responses ``idx`` of ``batch``."""
    ids, attn, m, P = batch.input_ids[idx], batch.attention_mask[idx], batch.response_mask[idx], batch.prompt_length
    logits = response_logits(policy, ids, attn, P).float()  # (b, R, V)
    logp = logprobs_of_labels(logits, ids[:, P:])  # (b, R)
    pl = clipped_policy_loss(logp, batch.logprobs[idx], batch.advantages[idx], m, config.clip_eps)
    values = response_values(value_model, ids, attn, P).float()  # (b, R)
    vl = clipped_value_loss(values, batch.values[idx], batch.returns[idx], m, config.value_clip_eps)
    with torch.no_grad():
        logp_all = logits.log_softmax(-1)  # (b, R, V)
        entropy = masked_mean(-(logp_all.exp() * logp_all).sum(-1), m)  # mean token entropy (nats)
    return pl, vl, entropy



def ppo_update(policy, value_model, optimizer, batch: PPOBatch, config: PPOConfig,
               ptx_data: torch.Tensor | None = None, generator: torch.Generator | None = None) -> dict:
    """PPO epochs over one scored rollout; returns the mean diagnostics of the steps taken."""
    B, device = batch.input_ids.shape[0], batch.input_ids.device
    micro = config.micro_batch_size or config.minibatch_size
    stats = {k: [] for k in ("policy_loss", "value_loss", "ptx_loss", "clipfrac", "value_clipfrac",
                             "approx_kl", "entropy")}
    stop = False
    for epoch in range(config.ppo_epochs):
        perm = torch.randperm(B, generator=generator).to(device)
        for start in range(0, B, config.minibatch_size):
            mb = perm[start:start + config.minibatch_size]
            n_tok = batch.response_mask[mb].sum()
            optimizer.zero_grad(set_to_none=True)
            for ms in range(0, len(mb), micro):
                idx = mb[ms:ms + micro]
                w = batch.response_mask[idx].sum() / n_tok  # token share of this micro-batch
                with _autocast(config, device):
                    pl, vl, ent = _minibatch_losses(policy, value_model, batch, idx, config)
                    loss = pl.loss + config.vf_coef * vl.loss
                    ptx = torch.zeros(())
                    if config.ptx_coef > 0 and ptx_data is not None:
                        rows = torch.randint(len(ptx_data), (max(1, config.ptx_batch_size * len(idx) // len(mb)),),
                                             generator=generator)
                        ptx = lm_loss(policy, ptx_data[rows].to(device))
                    loss = ppo_ptx_loss(loss, ptx, config.ptx_coef).loss  # eq. 6
                (loss * w).backward()
                for k, v in (("policy_loss", pl.loss), ("value_loss", vl.loss), ("ptx_loss", ptx),
                             ("clipfrac", pl.clipfrac), ("value_clipfrac", vl.clipfrac),
                             ("approx_kl", pl.approx_kl), ("entropy", ent)):
                    stats[k].append(float(v.detach()))
            nn.utils.clip_grad_norm_(policy.parameters(), config.max_grad_norm)
            nn.utils.clip_grad_norm_(value_model.parameters(), config.max_grad_norm)
            optimizer.step()
            if config.target_approx_kl is not None and stats["approx_kl"][-1] > config.target_approx_kl:
                stop = True
                break
        if stop:
            break
    out = {k: sum(v) / len(v) for k, v in stats.items()}
    out["epochs"] = epoch + 1
    return out



def _fused_adamw_ok(*models: nn.Module) -> bool:
    """Whether torch's fused AdamW kernel (one pass per parameter, what TRL's trainers use by default)
    can update these models: floating-point parameters on CPU or CUDA. It computes the same update
    as the default for-each AdamW up to float round-off."""
    params = [p for m in models for p in m.parameters()]
    return bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params) \
        and len({p.device for p in params}) == 1


HISTORY_KEYS = ("iteration", "reward", "gold", "kl", "beta", "entropy", "clipfrac", "approx_kl",
                "value_loss", "policy_loss", "ptx_loss", "value_clipfrac", "epochs", "response_length",
                "rm_queries", "seconds")


def train_ppo(config: PPOConfig, policy, reference, value_model, tokenizer, prompts: list[str], reward_fn,
              ptx_data: torch.Tensor | None = None, heldout: torch.Tensor | None = None,
              progress: bool = True, gold_fn=gold_reward) -> dict:
    """RLHF with PPO(-ptx): ``config.iterations`` rounds of rollout, reward, GAE and PPO epochs.

    policy: the LM being trained (its parameters change); reference: the frozen pi_ref (never
    changes); value_model: a :class:`rlhf_edu.models.ScalarHeadModel`; prompts: the prompt pool
    (cycled in a seeded order); reward_fn(rollout) -> (B,) holistic scores or a
    :class:`rlhf_edu.rewards.FineGrainedOutput`; ptx_data: (N, L) pretraining blocks for the ptx
    term; heldout: (N, L) blocks for the held-out LM loss; gold_fn(texts) -> (B,): the evaluation
    reward logged as ``gold`` (default: the gold judge, :mod:`rlhf_edu.gold`), never seen by the policy.

    Returns a history (dict of lists, one entry per iteration, keys :data:`HISTORY_KEYS`), plus
    ``eval_iteration``/``heldout_lm_loss`` (every ``eval_every`` iterations) and ``samples`` (the
    first 4 responses of each iteration).
    """
    check_instance("config", config, PPOConfig)
    for name, fn in (("reward_fn", reward_fn), ("gold_fn", gold_fn)):
        if not callable(fn):
            raise ValueError(f"{name}: expected a callable, got {fn!r}")
    if len(prompts) < config.batch_size:
        raise ValueError(f"prompts: expected at least batch_size={config.batch_size}, got {len(prompts)}")
    if config.ptx_coef > 0 and ptx_data is None:
        raise ValueError("ptx_data: expected (N, L) pretraining blocks when ptx_coef > 0, got None")
    gen = torch.Generator().manual_seed(config.seed)
    sample_gen = torch.Generator(device=next(policy.parameters()).device).manual_seed(config.seed)
    optimizer = torch.optim.AdamW([{"params": policy.parameters(), "lr": config.lr},
                                   {"params": value_model.parameters(), "lr": config.value_lr}], weight_decay=0.0,
                                  fused=_fused_adamw_ok(policy, value_model))
    kl_ctl = KLController(config.beta, config.adaptive_kl, config.kl_target, config.kl_horizon)
    hist = {k: [] for k in HISTORY_KEYS + ("eval_iteration", "heldout_lm_loss", "samples")}
    order, queries = torch.randperm(len(prompts), generator=gen).tolist(), 0
    for it in tqdm(range(config.iterations), desc="ppo", disable=not progress):
        t0 = time.perf_counter()
        if heldout is not None and it % config.eval_every == 0:
            hist["eval_iteration"].append(it)
            hist["heldout_lm_loss"].append(heldout_lm_loss(policy, heldout))
        if len(order) < config.batch_size:
            order += torch.randperm(len(prompts), generator=gen).tolist()
        batch_prompts = [prompts[i] for i in order[:config.batch_size]]
        order = order[config.batch_size:]
        batch = make_rollout(policy, reference, value_model, tokenizer, batch_prompts, config, sample_gen)
        out = reward_fn(batch.rollout)
        queries += sum(out.queries.values()) if isinstance(out, FineGrainedOutput) else len(batch.texts)
        batch = score_batch(batch, out, kl_ctl.beta, config)
        stats = ppo_update(policy, value_model, optimizer, batch, config, ptx_data, gen)
        seq_kl = (batch.kl.sum(-1)).mean().item()  # mean over responses of the summed KL
        row = dict(iteration=it, reward=batch.scores.sum(-1).mean().item(),
                   gold=gold_fn(batch.texts).mean().item(), kl=seq_kl, beta=kl_ctl.beta,
                   response_length=batch.response_mask.sum(-1).float().mean().item(), rm_queries=queries, **stats)
        kl_ctl.update(seq_kl, config.batch_size)
        row["seconds"] = time.perf_counter() - t0
        for k in HISTORY_KEYS:
            hist[k].append(row[k])
        hist["samples"].append(batch.texts[:4])
    if heldout is not None:
        hist["eval_iteration"].append(config.iterations)
        hist["heldout_lm_loss"].append(heldout_lm_loss(policy, heldout))
    return hist
