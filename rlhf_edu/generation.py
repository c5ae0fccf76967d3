"""Sampling for RL, with the settings that keep KL estimates honest.

A KL penalty estimated from samples, k1 = log pi(y) - log pi_ref(y), is only unbiased when y is
drawn from pi itself (TRL's PPO notes). Top-k / top-p truncation, a temperature other than 1 or a
forced minimum length all draw y from a *different* distribution, and the estimate can then go
negative. :func:`sample` therefore refuses such settings with a ``ValueError`` unless
``allow_biased=True`` is passed (notebook 02 does that on purpose, to show the effect).

The sampler is a short hand-written loop over a KV cache: it returns exactly the tensors RL needs
(tokens, masks, log-probs under the policy) and is faster on CPU than ``model.generate``.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch

from .models import position_ids_from_mask


@dataclass
class Rollout:
    """A batch of sampled responses. Shapes: B prompts, P prompt tokens (left-padded), R new tokens."""

    input_ids: torch.Tensor
    """(B, P+R) prompt (left-padded) followed by the response; after EOS the response is padded."""
    attention_mask: torch.Tensor
    """(B, P+R) 0 on left padding, 1 elsewhere."""
    response_mask: torch.Tensor
    """(B, R) 1 on response tokens up to and including the first EOS, 0 after it."""
    logprobs: torch.Tensor
    """(B, R) log pi(y_t | context) of each sampled token under the *unmodified* policy (temperature
    1, full vocabulary); 0 where ``response_mask`` is 0."""
    sampler_logprobs: torch.Tensor
    """(B, R) log-prob of each token under the distribution actually sampled from (after
    temperature / top-k / top-p / min-length); equal to ``logprobs`` under the safe settings."""
    prompt_length: int
    """P: the response starts at column P of ``input_ids``."""
    prompts: list
    """The prompts as given."""
    texts: list
    """Decoded responses (up to, not including, EOS)."""

    @property
    def response_ids(self) -> torch.Tensor:
        """(B, R) the sampled tokens."""
        return self.input_ids[:, self.prompt_length:]


def encode_prompts(tokenizer, prompts: list[str], max_prompt_tokens: int | None = None,
                   device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded prompt batch: ``input_ids`` (B, P) and ``attention_mask`` (B, P)."""
    if isinstance(prompts, (str, bytes)) or not len(prompts):
        raise ValueError(f"prompts: expected a non-empty list of strings (or token-id lists), got {prompts!r}")
    if max_prompt_tokens is not None and max_prompt_tokens < 1:  # ids[-0:] would keep the whole prompt
        raise ValueError(f"max_prompt_tokens: expected an int >= 1 or None, got {max_prompt_tokens!r}")
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    rows = []
    for p in prompts:
        ids = tokenizer(p, add_special_tokens=False)["input_ids"] if isinstance(p, str) else list(p)
        if max_prompt_tokens is not None:
            ids = ids[-max_prompt_tokens:]
        rows.append(ids or [eos])  # an empty prompt starts from the document separator
    P = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), P), pad, dtype=torch.long)  # (B, P)
    attention_mask = torch.zeros((len(rows), P), dtype=torch.long)  # (B, P)
    for i, r in enumerate(rows):
        input_ids[i, P - len(r):] = torch.tensor(r)
        attention_mask[i, P - len(r):] = 1
    return input_ids.to(device), attention_mask.to(device)


def _warp(logits: torch.Tensor, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    """Apply temperature, top-k and top-p to logits (B, V); removed tokens get -inf."""
    logits = logits / temperature
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, idx = torch.sort(logits, descending=True, dim=-1)  # (B, V)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        remove = cum - sorted_logits.softmax(-1) >= top_p  # keep the smallest set reaching top_p
        remove = remove.scatter(1, idx, remove)
        logits = logits.masked_fill(remove, float("-inf"))
    return logits


@torch.no_grad()
def sample(model, tokenizer, prompts: list, max_new_tokens: int = 24, *, temperature: float = 1.0,
           top_k: int = 0, top_p: float = 1.0, min_new_tokens: int = 0, allow_biased: bool = False,
           seed: int | None = None, generator: torch.Generator | None = None,
           max_prompt_tokens: int | None = None) -> Rollout:
    """Sample ``max_new_tokens`` tokens per prompt from ``model`` with a KV cache.

    Safe settings (the defaults): temperature 1, top_k 0, top_p 1, no minimum length, pad = EOS.
    Anything else raises ``ValueError`` unless ``allow_biased=True``.

    prompts: list of B strings (or token-id lists). Returns a :class:`Rollout`.
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens: expected >= 1, got {max_new_tokens}")
    if temperature <= 0 or top_k < 0 or not 0 < top_p <= 1 or min_new_tokens < 0:
        raise ValueError(f"temperature/top_k/top_p/min_new_tokens: expected > 0, >= 0, (0, 1], >= 0; got "
                         f"{temperature}, {top_k}, {top_p}, {min_new_tokens}")
    biased = {k: v for k, v in dict(temperature=temperature != 1.0, top_k=top_k > 0,
                                    top_p=top_p < 1.0, min_new_tokens=min_new_tokens > 0).items() if v}
    if biased and not allow_biased:
        raise ValueError(f"{', '.join(biased)}: these settings sample from a distribution other than the "
                         "policy, which biases KL estimates (they can go negative). Use temperature=1, top_k=0, "
                         "top_p=1, min_new_tokens=0, or pass allow_biased=True to do it on purpose.")
    device = next(model.parameters()).device
    if generator is None:
        generator = torch.Generator(device=device)
        generator.manual_seed(0 if seed is None else seed)
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    ids, attn = encode_prompts(tokenizer, prompts, max_prompt_tokens, device)  # (B, P)
    B, P = ids.shape
    prompt_attn = attn
    was_training = model.training
    model.eval()
    last_only = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}
    out = model(input_ids=ids, attention_mask=attn, position_ids=position_ids_from_mask(attn), use_cache=True,
                **last_only)  # the LM head only at the last prompt position when the model allows it
    past, logits = out.past_key_values, out.logits[:, -1].float()  # (B, V)
    pos = attn.sum(-1, keepdim=True)  # (B, 1) next position id
    finished = torch.zeros(B, dtype=torch.bool, device=device)
    toks, lps, slps, masks = [], [], [], []
    for t in range(max_new_tokens):
        logp_full = logits.log_softmax(-1)  # (B, V) the policy itself
        if biased or t < min_new_tokens:
            warped = _warp(logits, temperature, top_k, top_p)
            if t < min_new_tokens:
                warped[:, eos] = float("-inf")
            logp_warp = warped.log_softmax(-1)  # (B, V) what is sampled from
        else:  # safe settings: the sampled distribution is the policy (same tensor, no second softmax)
            logp_warp = logp_full
        tok = torch.multinomial(logp_warp.exp(), 1, generator=generator).squeeze(1)  # (B,)
        alive = ~finished
        tok = torch.where(alive, tok, torch.full_like(tok, pad))
        toks.append(tok)
        masks.append(alive.long())
        lps.append(torch.where(alive, logp_full.gather(1, tok[:, None]).squeeze(1), 0.0))
        slps.append(torch.where(alive, logp_warp.gather(1, tok[:, None]).squeeze(1), 0.0))
        finished = finished | (tok == eos)
        if t + 1 == max_new_tokens or bool(finished.all()):
            break
        attn = torch.cat([attn, torch.ones_like(attn[:, :1])], dim=1)
        out = model(input_ids=tok[:, None], attention_mask=attn, position_ids=pos,
                    past_key_values=past, use_cache=True)
        past, logits, pos = out.past_key_values, out.logits[:, -1].float(), pos + 1
    model.train(was_training)
    response = torch.stack(toks, 1)  # (B, R)
    response_mask = torch.stack(masks, 1)  # (B, R)
    full_attn = torch.cat([prompt_attn, torch.ones_like(response)], 1)  # (B, P+R)
    texts = [tokenizer.decode([i for i, m in zip(r.tolist(), mk.tolist()) if m and i != eos])
             for r, mk in zip(response, response_mask)]
    return Rollout(input_ids=torch.cat([ids, response], 1), attention_mask=full_attn, response_mask=response_mask,
                   logprobs=torch.stack(lps, 1), sampler_logprobs=torch.stack(slps, 1), prompt_length=P,
                   prompts=list(prompts), texts=texts)

