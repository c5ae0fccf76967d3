"""Token and sequence log-probabilities, and masked reductions.

Shapes: B batch, T tokens, V vocabulary. Masks are 0/1 tensors of any dtype (bool, long, float).

The one sequence log-prob helper is :func:`sequence_logprob`, with an explicit
``reduction="sum" | "mean"``: DPO uses the *sum* over response tokens, the length-normalised NLL
of DPO+NLL uses the *mean*. Mixing the two up is a classic source of bugs.

The one LM-head fast path is :func:`_head_logits`: for a GPT-2-style model (``transformer`` and
``lm_head``) only the positions that are scored go through the LM head.
"""

from __future__ import annotations

import torch

from .models import position_ids_from_mask


def logprobs_of_labels(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[label] at each position, with no shift.

    logits: (B, T, V); labels: (B, T) long. Returns (B, T) float32. Equal to
    ``torch.gather(logits.log_softmax(-1), -1, labels[..., None])[..., 0]``.
    """
    if labels.shape != logits.shape[:-1]:
        raise ValueError(f"logits/labels: expected (..., V) and (...), got {tuple(logits.shape)} and {tuple(labels.shape)}")
    logits = logits.float()
    picked = logits.gather(-1, labels[..., None]).squeeze(-1)  # (B, T)
    return picked - torch.logsumexp(logits, dim=-1)  # (B, T) log p(label)


def token_logprobs(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """Next-token log-probs with the shift done right.

    Position t of the output is log p(input_ids[:, t+1] | input_ids[:, :t+1]), scored by
    ``logits[:, t]``. logits: (B, T, V); input_ids: (B, T). Returns (B, T-1); pair it with
    ``mask[:, 1:]``.
    """
    return logprobs_of_labels(logits[:, :-1], input_ids[:, 1:])  # (B, T-1)


def forward_logits(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """``model``'s logits (B, T, V) with position ids counted over real tokens (padding-safe)."""
    return model(input_ids=input_ids, attention_mask=attention_mask,
                 position_ids=position_ids_from_mask(attention_mask)).logits


def _head_logits(model, input_ids, attention_mask, pick) -> torch.Tensor:
    """Logits at the positions ``pick`` selects from the (B, T, ·) per-position states.

    A GPT-2-style model (``transformer`` + ``lm_head``) sends only the picked hidden states through
    the LM head, so the logits of prompt and pad positions are never built (with the tiny model's
    8k vocabulary the head is a large share of a step). The values are the same; in a backward pass
    the tied embedding's gradient sums fewer (all-zero) rows, so it can differ at round-off level.
    Any other model builds every logit and picks from them.
    """
    body, head = getattr(model, "transformer", None), getattr(model, "lm_head", None)
    if body is None or head is None:
        return pick(forward_logits(model, input_ids, attention_mask))
    hidden = body(input_ids=input_ids, attention_mask=attention_mask, use_cache=False,
                  position_ids=position_ids_from_mask(attention_mask)).last_hidden_state  # (B, T, H)
    return head(pick(hidden))


def model_token_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Shifted token log-probs (B, T-1) of ``input_ids`` (B, T) under ``model``."""
    return token_logprobs(forward_logits(model, input_ids, attention_mask), input_ids)


def masked_token_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                          score_mask: torch.Tensor) -> torch.Tensor:
    """Shifted token log-probs (B, T-1) like :func:`model_token_logprobs`, but only where
    ``score_mask`` is 1 (0 elsewhere); only those positions go through the LM head.

    input_ids, attention_mask: (B, T); score_mask: (B, T-1), 1 where the token ``input_ids[:, t+1]``
    is scored (e.g. ``response_mask[:, 1:]``). Returns (B, T-1) float32.
    """
    keep = score_mask.bool()  # (B, T-1)
    logits = _head_logits(model, input_ids, attention_mask, lambda h: h[:, :-1][keep])  # (N, V) scored only
    scored = logprobs_of_labels(logits, input_ids[:, 1:][keep])  # (N,)
    return scored.new_zeros(keep.shape).masked_scatter(keep, scored)  # (B, T-1)


def response_logits(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    prompt_length: int) -> torch.Tensor:
    """Logits (B, R, V) that score the response tokens ``input_ids[:, P:]`` (P = prompt_length)."""
    return _head_logits(model, input_ids, attention_mask, lambda h: h[:, prompt_length - 1:-1])  # (B, R, V)


def response_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                      prompt_length: int) -> torch.Tensor:
    """Log-probs (B, R) of the response tokens ``input_ids[:, P:]`` under ``model``.

    For a :class:`rlhf_edu.generation.Rollout` ``ro``, ``response_logprobs(model, ro.input_ids,
    ro.attention_mask, ro.prompt_length)`` re-scores the samples (e.g. under the reference).
    """
    logits = response_logits(model, input_ids, attention_mask, prompt_length)  # (B, R, V)
    return logprobs_of_labels(logits, input_ids[:, prompt_length:])  # (B, R)


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for float16/bfloat16 (whose sums and squares overflow or round badly), else ``dtype``."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _masked(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``x * mask`` where ``mask`` is nonzero and exactly 0 elsewhere: garbage in padding (inf or
    NaN, where ``x * 0`` would be NaN) cannot leak into a reduction."""
    if x.shape != mask.shape:
        raise ValueError(f"x / mask: expected equal shapes, got {tuple(x.shape)} and {tuple(mask.shape)}")
    return torch.where(mask != 0, x * mask.to(x.dtype), torch.zeros_like(x))


def masked_sum(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Sum of ``x`` where ``mask`` is 1 (over ``dim``, or everything). x, mask: same shape."""
    xm = _masked(x, mask)
    return xm.sum() if dim is None else xm.sum(dim)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of ``x`` over positions where ``mask`` is 1, over ``dim`` (or everything).

    x, mask: same shape. A slice whose mask selects nothing has mean 0 (not NaN).
    """
    out_dtype, x = x.dtype, x.to(_acc_dtype(x.dtype))  # half precision: sum and count in float32
    count = mask.to(x.dtype).sum(*(() if dim is None else (dim,))).clamp(min=1)  # empty slice: 0 / 1
    return (masked_sum(x, mask, dim) / count).to(out_dtype)


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance of the masked entries of ``x`` (scalar); Bessel-corrected when ``unbiased``."""
    out_dtype, x = x.dtype, x.to(_acc_dtype(x.dtype))  # (x - mean)^2 overflows float16 at |x| ~ 256
    var = masked_mean((x - masked_mean(x, mask)) ** 2, mask)
    if unbiased:
        n = mask.to(x.dtype).sum()
        var = var * n / (n - 1).clamp(min=1)
    return var.to(out_dtype)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """(x - mean) / std over the masked entries (mean kept when ``shift_mean=False``).

    Used for PPO advantages. Entries outside the mask are meaningless; keep multiplying by the
    mask downstream.
    """
    out_dtype, x = x.dtype, x.to(_acc_dtype(x.dtype))
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    out = (x - mean) * torch.rsqrt(var + eps)
    return (out if shift_mean else out + mean).to(out_dtype)


def sequence_logprob(token_logps: torch.Tensor, mask: torch.Tensor, reduction: str) -> torch.Tensor:
    """log P(y|x) of each sequence from its token log-probs.

    token_logps: (B, L) per-token log-probs; mask: (B, L), 1 on the tokens of y.
    ``reduction="sum"`` gives log P(y|x) = sum_t log p(y_t|...) (what DPO uses);
    ``reduction="mean"`` gives it divided by |y| (the length-normalised form of DPO+NLL, eq. 8).
    Returns (B,).
    """
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction: expected 'sum' or 'mean', got {reduction!r}")
    reduce = masked_sum if reduction == "sum" else masked_mean
    return reduce(token_logps, mask, dim=-1)  # (B,)


def batch_sequence_logprob(model, batch: dict, reduction: str = "sum") -> torch.Tensor:
    """log P(response | prompt) (B,) for a batch from :func:`rlhf_edu.data.tokenize_prompt_response`."""
    lp = model_token_logprobs(model, batch["input_ids"], batch["attention_mask"])  # (B, T-1)
    return sequence_logprob(lp, batch["response_mask"][:, 1:], reduction)  # (B,)
