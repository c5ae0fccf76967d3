"""Token and sequence log-probabilities, and masked reductions.

Shapes: B batch, T tokens, V vocabulary. Masks are 0/1 tensors of any dtype (bool, long, float).

The one sequence log-prob helper is :func:`sequence_logprob`, with an explicit
``reduction="sum" | "mean"``: DPO uses the *sum* over response tokens, the length-normalised NLL
of DPO+NLL uses the *mean*. Mixing the two up is a classic source of bugs.
"""

from __future__ import annotations

import torch

from ._checks import check_floating, check_int, check_token_ids
from .models import position_ids_from_mask

REDUCTIONS = ("sum", "mean")


def _check_same_shape(**tensors: torch.Tensor) -> None:
    for k, v in tensors.items():
        if not isinstance(v, torch.Tensor):
            raise ValueError(f"{k}: expected a torch.Tensor, got {type(v).__name__}")
    shapes = {k: tuple(v.shape) for k, v in tensors.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"{' / '.join(shapes)}: expected equal shapes, got {shapes}")


def logprobs_of_labels(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[label] at each position, with no shift.

    logits: (B, T, V); labels: (B, T) long. Returns (B, T) float32. Equal to
    ``torch.gather(logits.log_softmax(-1), -1, labels[..., None])[..., 0]``.
    """
    check_floating("logits", logits)
    check_token_ids("labels", labels)
    if logits.dim() != 3 or labels.shape != logits.shape[:2]:
        raise ValueError(f"logits/labels: expected (B, T, V) and (B, T), got {tuple(logits.shape)} "
                         f"and {tuple(labels.shape)}")
    logits = logits.float()
    picked = logits.gather(-1, labels[..., None]).squeeze(-1)  # (B, T)
    return picked - torch.logsumexp(logits, dim=-1)  # (B, T) log p(label)


def token_logprobs(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """Next-token log-probs with the shift done right.

    Position t of the output is log p(input_ids[:, t+1] | input_ids[:, :t+1]), scored by
    ``logits[:, t]``. logits: (B, T, V); input_ids: (B, T). Returns (B, T-1); pair it with
    ``mask[:, 1:]``.
    """
    check_floating("logits", logits)
    check_token_ids("input_ids", input_ids)
    if logits.dim() != 3 or input_ids.shape != logits.shape[:2]:
        raise ValueError(f"logits/input_ids: expected (B, T, V) and (B, T), got {tuple(logits.shape)} "
                         f"and {tuple(input_ids.shape)}")
    return logprobs_of_labels(logits[:, :-1], input_ids[:, 1:])  # (B, T-1)


def _check_ids_mask(input_ids, attention_mask) -> None:
    check_token_ids("input_ids", input_ids, 2, "(B, T)")
    if not isinstance(attention_mask, torch.Tensor) or attention_mask.shape != input_ids.shape:
        raise ValueError(f"attention_mask: expected shape {tuple(input_ids.shape)} like input_ids, got "
                         f"{tuple(getattr(attention_mask, 'shape', ())) or type(attention_mask).__name__}")


def forward_logits(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """``model``'s logits (B, T, V) with position ids counted over real tokens (padding-safe)."""
    _check_ids_mask(input_ids, attention_mask)
    return model(input_ids=input_ids, attention_mask=attention_mask,
                 position_ids=position_ids_from_mask(attention_mask)).logits


def model_token_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Shifted token log-probs (B, T-1) of ``input_ids`` (B, T) under ``model``."""
    return token_logprobs(forward_logits(model, input_ids, attention_mask), input_ids)


def masked_token_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                          score_mask: torch.Tensor) -> torch.Tensor:
    """Shifted token log-probs (B, T-1) like :func:`model_token_logprobs`, but only where
    ``score_mask`` is 1 (0 elsewhere).

    For a ``GPT2LMHeadModel`` only the scored positions go through the LM head: the logits of
    prompt and pad positions, which the caller would mask out anyway, are never built (with the
    tiny model's 8,192-token vocabulary the head is a large share of a DPO step). The scored
    values are the same as :func:`model_token_logprobs`'s, row by row (same backbone, same
    :func:`logprobs_of_labels` formula). Any other model falls back to
    ``model_token_logprobs(...) * score_mask``.

    input_ids, attention_mask: (B, T); score_mask: (B, T-1), 1 where the token ``input_ids[:, t+1]``
    is scored (e.g. ``response_mask[:, 1:]``). Returns (B, T-1) float32.
    """
    for name, t in (("input_ids", input_ids), ("attention_mask", attention_mask), ("score_mask", score_mask)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name}: expected a tensor, got {type(t).__name__}")
    if input_ids.is_floating_point() or input_ids.is_complex():
        raise ValueError(f"input_ids: expected an integer tensor of token ids, got {input_ids.dtype}")
    if input_ids.dim() != 2 or attention_mask.shape != input_ids.shape:
        raise ValueError(f"input_ids/attention_mask: expected equal (B, T) shapes, got "
                         f"{tuple(input_ids.shape)} and {tuple(attention_mask.shape)}")
    B, T = input_ids.shape
    if tuple(score_mask.shape) != (B, T - 1):
        raise ValueError(f"score_mask: expected shape (B, T-1) = {(B, T - 1)}, got {tuple(score_mask.shape)}")
    from transformers import GPT2LMHeadModel

    keep = score_mask.bool()  # (B, T-1)
    if not isinstance(model, GPT2LMHeadModel):
        token_logps = model_token_logprobs(model, input_ids, attention_mask)  # (B, T-1)
        return token_logps.masked_fill(~keep, 0.0)
    hidden = model.transformer(input_ids=input_ids, attention_mask=attention_mask, use_cache=False,
                               position_ids=position_ids_from_mask(attention_mask)).last_hidden_state  # (B, T, H)
    logits = model.lm_head(hidden[:, :-1][keep])  # (N, V) for the N scored positions only
    scored = logprobs_of_labels(logits[None], input_ids[:, 1:][keep][None])[0]  # (N,)
    return scored.new_zeros(keep.shape).masked_scatter(keep, scored)  # (B, T-1)


def response_logits(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    prompt_length: int) -> torch.Tensor:
    """Logits (B, R, V) that score the response tokens ``input_ids[:, P:]`` (P = prompt_length)."""
    _check_ids_mask(input_ids, attention_mask)
    check_int("prompt_length", prompt_length, 1)
    if prompt_length >= input_ids.shape[1]:
        raise ValueError(f"prompt_length: expected < {input_ids.shape[1]} (the columns of input_ids), "
                         f"got {prompt_length}")
    logits = forward_logits(model, input_ids, attention_mask)  # (B, P+R, V)
    return logits[:, prompt_length - 1 : -1]  # (B, R, V)


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
    """``x * mask`` where ``mask`` is nonzero and exactly 0 elsewhere.

    Garbage in padding (inf or NaN, where ``x * 0`` would be NaN) cannot leak into a reduction.
    """
    return torch.where(mask != 0, x * mask.to(x.dtype), torch.zeros_like(x))


def masked_sum(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Sum of ``x`` where ``mask`` is 1 (over ``dim``, or everything). x, mask: same shape."""
    _check_same_shape(x=x, mask=mask)
    xm = _masked(x, mask)
    return xm.sum() if dim is None else xm.sum(dim)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of ``x`` over positions where ``mask`` is 1, over ``dim`` (or everything).

    x, mask: same shape. Raises ``ValueError`` when the mask selects nothing (for ``dim``: when
    any slice selects nothing) instead of returning NaN.
    """
    check_floating("x", x)
    _check_same_shape(x=x, mask=mask)
    out_dtype, x = x.dtype, x.to(_acc_dtype(x.dtype))  # half precision: sum and count in float32
    m = mask.to(x.dtype)
    count = m.sum() if dim is None else m.sum(dim)
    if (count == 0).any():
        raise ValueError("mask: expected at least one nonzero entry per reduced slice, got none")
    xm = _masked(x, mask)
    return (xm.sum() / count if dim is None else xm.sum(dim) / count).to(out_dtype)


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance of the masked entries of ``x`` (scalar); Bessel-corrected when ``unbiased``."""
    check_floating("x", x)
    _check_same_shape(x=x, mask=mask)
    out_dtype, x = x.dtype, x.to(_acc_dtype(x.dtype))  # (x - mean)^2 overflows float16 at |x| ~ 256
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    if unbiased:
        n = mask.to(x.dtype).sum()
        if n < 2:
            raise ValueError("mask: an unbiased variance needs at least 2 selected entries")
        var = var * n / (n - 1)
    return var.to(out_dtype)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """(x - mean) / std over the masked entries (mean kept when ``shift_mean=False``).

    Used for PPO advantages. Entries outside the mask are returned unchanged in scale but are
    meaningless; keep multiplying by the mask downstream.
    """
    check_floating("x", x)
    _check_same_shape(x=x, mask=mask)
    if not (isinstance(eps, (int, float)) and eps >= 0):
        raise ValueError(f"eps: expected a number >= 0, got {eps!r}")
    out_dtype, x = x.dtype, x.to(_acc_dtype(x.dtype))
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    out = (x - mean) * torch.rsqrt(var + eps)
    return (out if shift_mean else out + mean).to(out_dtype)


def sequence_logprob(token_logps: torch.Tensor, mask: torch.Tensor, reduction: str) -> torch.Tensor:
    """log P(y|x) of each sequence from its token log-probs.

    token_logps: (B, L) per-token log-probs; mask: (B, L), 1 on the tokens of y.
    ``reduction="sum"`` gives log P(y|x) = sum_t log p(y_t|...) (what DPO uses);
    ``reduction="mean"`` gives it divided by |y| (the length-normalised form of DPO+NLL, eq. 8).
    Returns (B,). Rows whose mask is all zero raise ``ValueError``.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction: expected one of {REDUCTIONS}, got {reduction!r}")
    check_floating("token_logps", token_logps)
    if token_logps.dim() != 2:
        raise ValueError(f"token_logps: expected (B, L), got {tuple(token_logps.shape)}")
    _check_same_shape(token_logps=token_logps, mask=mask)
    if (mask.to(token_logps.dtype).sum(-1) == 0).any():
        raise ValueError("mask: every row needs at least one response token, got an all-zero row")
    if reduction == "sum":
        return masked_sum(token_logps, mask, dim=-1)  # (B,)
    return masked_mean(token_logps, mask, dim=-1)  # (B,)


def batch_sequence_logprob(model, batch: dict, reduction: str = "sum") -> torch.Tensor:
    """log P(response | prompt) (B,) for a batch from :func:`rlhf_edu.data.tokenize_prompt_response`."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction: expected one of {REDUCTIONS}, got {reduction!r}")
    if not all(k in batch for k in ("input_ids", "attention_mask", "response_mask")):
        raise ValueError(f"batch: expected input_ids, attention_mask and response_mask, got {sorted(batch)}")
    lp = model_token_logprobs(model, batch["input_ids"], batch["attention_mask"])  # (B, T-1)
    return sequence_logprob(lp, batch["response_mask"][:, 1:], reduction)  # (B,)
