"""Rewards: the sentiment score, and the per-token rewards of eq. 2 and of fine-grained RLHF.

``sentiment_reward`` is VADER's compound score in [-1, 1] (Hutto and Gilbert 2014; an offline
lexicon), the *task* reward of the sentiment experiments. The course's *gold judge*, the truth
every learned reward model is measured against, lives in :mod:`rlhf_edu.gold`: it multiplies
that sentiment by readability, so degenerate text scores low. ``gold_reward`` is re-exported here.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch

from .divergences import k1, k3
from .gold import gold_reward, sentiment  # noqa: F401 (gold_reward: re-exported, the judge lives in gold.py)
from .models import last_token_index


sentiment_reward = sentiment  # VADER compound of each text, (B,) in [-1, 1]


# ---------------------------------------------------------------------------------------------
# Per-token rewards: the KL-shaped reward of eq. 2 and the fine-grained reward of Lecture 6.
#
# Shapes: B responses, R response tokens. Every tensor below is laid out over the *response*
# tokens only (the layout of :class:`rlhf_edu.generation.Rollout`); a ``mask`` marks the real
# tokens (1) against padding (0). A mask laid out over prompt+response (as from
# :func:`rlhf_edu.data.tokenize_prompt_response`) works too: prompt and pad columns get nothing.
# ---------------------------------------------------------------------------------------------



def sampled_token_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str = "k1") -> torch.Tensor:
    """Per-token estimate of KL(pi || pi_ref) from tokens sampled from pi.

    logprobs, ref_logprobs: (B, R) log pi(a_t|s_t) and log pi_ref(a_t|s_t) of the sampled tokens.
    ``estimator="k1"``: log pi - log pi_ref, the Monte Carlo term of eq. 4 of the Regularization
    chapter (unbiased, can be negative per token). ``"k3"``: (rho - 1) - log rho with
    rho = pi_ref / pi (Schulman 2020; unbiased and never negative). Returns (B, R).
    """
    log_ratio = ref_logprobs - logprobs  # (B, R) log pi_ref/pi, the divergences module's convention
    return k1(log_ratio) if estimator == "k1" else k3(log_ratio)  # (B, R) eq. 4, or (rho - 1) - log rho




def sequence_to_token_scores(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Put a holistic sequence reward on each response's last token, zero elsewhere.

    scores: (B,) R_phi(x, y); mask: (B, T) 1 on response tokens. Returns (B, T) with
    r_t = R_phi(x, y) if t = T_last else 0 (Lecture 6, the holistic reward).
    """
    out = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device)  # (B, T)
    idx = last_token_index(mask)  # (B,)
    out[torch.arange(mask.shape[0], device=mask.device), idx] = scores.float()  # r_T = R(x, y)
    return out


class ShapedReward(NamedTuple):
    """Output of :func:`kl_shaped_rewards`; every tensor is (B, T) and zero where mask is 0."""

    rewards: torch.Tensor
    """r_t: the task score at its tokens minus beta * kl_t on every response token."""
    kl: torch.Tensor
    """The per-token KL estimate kl_t (detached)."""
    scores: torch.Tensor
    """The task-score part alone (sequence or fine-grained)."""


def kl_shaped_rewards(token_scores: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor,
                      mask: torch.Tensor, beta: float, estimator: str = "k1") -> ShapedReward:
    """Per-token RL reward: task scores minus a per-token KL penalty.

    With ``token_scores = sequence_to_token_scores(R, mask)`` this is eq. 2 of the Regularization
    chapter spread over tokens: r_t = 1(t = T) R(x, y) - beta * kl_t, whose sum over t is
    R - beta * KL(pi || pi_ref) with the KL estimated on the sample. With fine-grained scores
    (:func:`segment_rewards_to_tokens`) it is the combined reward of Lecture 6:
    r_t = sum_k sum_j 1(t = T_j^k) w_k R_k(x, y, j) - beta log(pi(a_t|s_t) / pi_init(a_t|s_t)).

    token_scores, logprobs, ref_logprobs, mask: (B, T); beta >= 0; estimator "k1" or "k3".
    """
    m = mask.float()
    keep, zero = mask != 0, torch.zeros_like(m)  # where, not * m: garbage (inf/NaN) in padding cannot leak
    lp_, ref_ = (torch.where(keep, t.float(), zero) for t in (logprobs, ref_logprobs))  # log ratio 0 on padding
    kl = torch.where(keep, sampled_token_kl(lp_, ref_, estimator).detach() * m, zero)  # (B, T)
    scores = torch.where(keep, token_scores.float() * m, zero)  # (B, T)
    rewards = scores if beta == 0 else scores - beta * kl  # beta = 0: no 0 * inf = NaN from an overflowed k3
    return ShapedReward(rewards=rewards, kl=kl, scores=scores)  # (B, T) r_t = score_t - beta kl_t


# --------------------------------- segmenters ----------------------------------------------

class Segment(NamedTuple):
    """A span of response tokens ``start..end`` (inclusive); ``end`` is T_j^k of Lecture 6."""

    start: int
    end: int
    text: str


SENTENCE_END = re.compile(r"[.!?]")


def response_token_strings(tokenizer, response_ids: torch.Tensor, mask: torch.Tensor) -> list[list[str]]:
    """Decode each real response token on its own. response_ids, mask: (B, R). EOS decodes to ""."""
    eos = tokenizer.eos_token_id
    return [["" if i == eos else tokenizer.decode([i]) for i, keep in zip(ids, m) if keep]
            for ids, m in zip(response_ids.tolist(), mask.tolist())]


def _segments_from_ends(tokens: list[str], ends: list[int]) -> list[Segment]:
    segs, start = [], 0
    for end in ends:
        segs.append(Segment(start, end, "".join(tokens[start:end + 1])))
        start = end + 1
    return segs


def whole_response_segments(tokens: list[str]) -> list[Segment]:
    """One segment, the whole response, ending at its last token (the holistic density)."""
    return _segments_from_ends(tokens, [len(tokens) - 1] if tokens else [])


def sentence_segments(tokens: list[str], end: re.Pattern = SENTENCE_END) -> list[Segment]:
    """Sentences: a segment ends at every token holding '.', '!' or '?' (or a match of ``end``:
    ``re.compile("[,;:.!?]")`` gives clauses), and at the last token.

    tokens: the response's token strings (:func:`response_token_strings`). A response with no
    sentence end is one segment.
    """
    ends = [i for i, t in enumerate(tokens) if end.search(t)]
    if tokens and (not ends or ends[-1] != len(tokens) - 1):
        ends.append(len(tokens) - 1)
    return _segments_from_ends(tokens, ends)


def span_segments(tokens: list[str], size: int) -> list[Segment]:
    """Fixed-size spans of ``size`` tokens (the last may be shorter)."""
    ends = list(range(size - 1, len(tokens) - 1, size)) + ([len(tokens) - 1] if tokens else [])
    return _segments_from_ends(tokens, ends)


def segment_rewards_to_tokens(segments: list[list[Segment]], values: list[list[float]], R: int) -> torch.Tensor:
    """Place each segment's reward on its last token: 1(t = T_j) R(x, y, j) (Lecture 6).

    segments: B lists of :class:`Segment`; values: B lists of floats, one per segment; R: the
    number of response columns. Returns (B, R) float32.
    """
    out = torch.zeros(len(segments), R)  # (B, R)
    for b, (segs, vals) in enumerate(zip(segments, values)):
        for seg, v in zip(segs, vals, strict=True):
            out[b, seg.end] += float(v)  # 1(t = T_j^k) R_k(x, y, j)
    return out


# --------------------------------- per-category scorers ------------------------------------
# A scorer maps a batch (prompts: B strings, segments: B lists of Segment, tokens: B lists of
# token strings) to B lists of floats, one per segment: R_k(x, y, j) for every j.

def sentence_sentiment(prompts: list[str], segments: list[list[Segment]], tokens: list[list[str]],
                       negative_only: bool = True) -> list[list[float]]:
    """The negativity category: VADER compound of each segment's text.

    With ``negative_only`` only negative sentences are scored (min(c, 0)): a penalty on the
    segments that commit the error, as an error-category reward model would give. A rule-based
    stand-in for the learned per-category models of Lecture 6.
    """
    flat = [s.text for segs in segments for s in segs]
    scores = sentiment_reward(flat).tolist() if flat else []
    return _regroup([min(c, 0.0) for c in scores] if negative_only else scores, segments)


def _regroup(flat: list[float], segments: list[list[Segment]]) -> list[list[float]]:
    """Split a flat list of per-segment values back into one list per response."""
    ends = [0, *itertools.accumulate(len(segs) for segs in segments)]
    return [flat[a:b] for a, b in zip(ends, ends[1:])]


def ngrams_repeated(tokens: list[str], start: int, end: int, n: int = 2) -> float:
    """Fraction of the n-grams ending inside tokens[start..end] that already occurred earlier.

    Tokens are compared case-insensitively with surrounding spaces stripped. 0 when the span
    holds no n-gram.
    """
    norm = [t.strip().lower() for t in tokens]
    seen, hits, total = set(), 0, 0
    for i in range(n - 1, end + 1):
        gram = tuple(norm[i - n + 1:i + 1])
        if i >= start:
            total += 1
            hits += gram in seen
        seen.add(gram)
    return hits / total if total else 0.0


def span_repetition(prompts: list[str], segments: list[list[Segment]], tokens: list[list[str]],
                    n: int = 2) -> list[list[float]]:
    """The repetition category: minus the repeated-n-gram fraction of each span (0 is best)."""
    return [[-ngrams_repeated(tok, s.start, s.end, n) for s in segs] for segs, tok in zip(segments, tokens)]


def text_scorer(score_texts: Callable[[list[str], list[str]], torch.Tensor]):
    """Turn a holistic scorer ``f(prompts, responses) -> (B,)`` into a per-segment scorer.

    Each segment is scored as the text from the start of the response up to its end, so with
    :func:`whole_response_segments` this is the usual holistic reward R_phi(x, y).
    """
    def scorer(prompts, segments, tokens):
        ps = [p for p, segs in zip(prompts, segments) for _ in segs]
        ys = ["".join(tok[:s.end + 1]) for segs, tok in zip(segments, tokens) for s in segs]
        return _regroup(score_texts(ps, ys).tolist() if ys else [], segments)
    return scorer


@dataclass
class RewardCategory:
    """One error category C_k of Lecture 6: its weight w_k, density (segmenter) and scorer R_k."""

    name: str
    """Label used in metrics and plots."""
    weight: float
    """w_k: multiplies every reward of this category."""
    segmenter: Callable[[list[str]], list[Segment]]
    """Splits a response's token strings into segments (sentence, span, whole response)."""
    scorer: Callable
    """(prompts, segments, tokens) -> B lists of per-segment rewards R_k(x, y, j)."""

    def __post_init__(self):
        if not (isinstance(self.weight, (int, float)) and math.isfinite(self.weight)):
            raise ValueError(f"weight: expected a finite number, got {self.weight!r}")


class FineGrainedOutput(NamedTuple):
    """Dense task scores of a batch. Tensors are (B, R)."""

    token_scores: torch.Tensor
    """sum_k sum_j 1(t = T_j^k) w_k R_k(x, y, j) at each response token."""
    per_category: dict
    """name -> (B, R) the weighted scores of one category."""
    queries: dict
    """name -> number of reward-model queries (segments scored) in this batch."""
    segments: dict
    """name -> B lists of :class:`Segment`."""


def fine_grained_scores(categories: list[RewardCategory], prompts: list[str], tokens: list[list[str]],
                        R: int) -> FineGrainedOutput:
    """Lecture 6's fine-grained task reward, before the KL term (add it with :func:`kl_shaped_rewards`).

    r_t = sum_k sum_j 1(t = T_j^k) w_k R_k(x, y, j): every category segments each response at its
    own density, scores every segment, and puts w_k times the score on the segment's last token.
    prompts: B strings; tokens: B lists of response token strings; R: response columns.
    """
    per_cat, queries, segs_out = {}, {}, {}
    total = torch.zeros(len(tokens), R)  # (B, R)
    for cat in categories:
        segs = [cat.segmenter(tok) for tok in tokens]
        vals = cat.scorer(prompts, segs, tokens)
        dense = cat.weight * segment_rewards_to_tokens(segs, vals, R)  # (B, R) w_k R_k on T_j^k
        per_cat[cat.name], segs_out[cat.name] = dense, segs
        queries[cat.name] = sum(len(s) for s in segs)
        total = total + dense
    return FineGrainedOutput(total, per_cat, queries, segs_out)


class FineGrainedReward:
    """A reward function for :func:`rlhf_edu.ppo.train_ppo`: rollout -> :class:`FineGrainedOutput`."""

    def __init__(self, categories: list[RewardCategory], tokenizer):
        self.categories, self.tokenizer = list(categories), tokenizer

    def __call__(self, rollout) -> FineGrainedOutput:
        tokens = response_token_strings(self.tokenizer, rollout.response_ids, rollout.response_mask)
        return fine_grained_scores(self.categories, list(rollout.prompts), tokens,
                                   rollout.response_mask.shape[1])
