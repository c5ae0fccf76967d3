"""The exact toy world of f-DPG: a small enumerable space of token sequences.

With V tokens and length L there are only V**L sequences, so every distribution over them (the
base a, a target p, the policy π_θ) can be listed, and every divergence and gradient computed
exactly. :class:`TabularPolicy` is fully expressive there, so f-DPG (:mod:`rlhf_edu.fdpg`) can
reach p exactly, which notebook 05 shows before moving to a language model.

Shapes: N sequences of the enumerated space, L sequence length, V vocabulary, B samples.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import nn


def enumerate_sequences(vocab_size: int, length: int) -> torch.Tensor:
    """Every sequence of ``length`` tokens over ``vocab_size`` tokens, (V**L, L) long, in
    lexicographic order (so row index = Σ_t x_t V^(L-1-t))."""
    if vocab_size**length > 200_000:
        raise ValueError(f"vocab_size**length: expected <= 200000 sequences, got {vocab_size**length}")
    return torch.tensor(list(itertools.product(range(vocab_size), repeat=length)), dtype=torch.long)


class TabularPolicy(nn.Module):
    """An autoregressive policy with one free logit vector per prefix: π(x) = Π_t π(x_t | x_<t).

    Fully expressive on V**L sequences, so f-DPG can reach p exactly. ``tables[t]`` has shape
    (V**t, V): row = the prefix's index. Initialise from ``logits`` (list of such tensors).
    """

    def __init__(self, vocab_size: int, length: int, logits: list[torch.Tensor] | None = None):
        super().__init__()
        self.vocab_size, self.length = vocab_size, length
        if logits is None:
            logits = [torch.zeros(vocab_size**t, vocab_size, dtype=torch.float64) for t in range(length)]
        self.tables = nn.ParameterList([nn.Parameter(lg.clone().double()) for lg in logits])

    @classmethod
    def random(cls, vocab_size: int, length: int, scale: float = 1.0, seed: int = 0) -> "TabularPolicy":
        """Random N(0, scale²) logits."""
        g = torch.Generator().manual_seed(seed)
        return cls(vocab_size, length, [scale * torch.randn(vocab_size**t, vocab_size, generator=g,
                                                            dtype=torch.float64) for t in range(length)])

    def log_prob(self, seqs: torch.Tensor) -> torch.Tensor:
        """log π(x) for seqs (B, L) long. Returns (B,) float64 (with grad)."""
        prefix = torch.zeros(seqs.shape[0], dtype=torch.long)  # (B,)
        out = torch.zeros(seqs.shape[0], dtype=torch.float64)
        for t, table in enumerate(self.tables):
            logp = table[prefix].log_softmax(-1)  # (B, V)
            out = out + logp.gather(1, seqs[:, t:t + 1]).squeeze(1)  # (B,) += log π(x_t | x_<t)
            prefix = prefix * self.vocab_size + seqs[:, t]
        return out

    def log_prob_all(self) -> torch.Tensor:
        """log π over :func:`enumerate_sequences` order, (V**L,)."""
        logp = torch.zeros(1, dtype=torch.float64)
        for table in self.tables:
            logp = (logp[:, None] + table.log_softmax(-1)).reshape(-1)  # (V**(t+1),)
        return logp

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n sequences x ~ π, (n, L) long."""
        prefix = torch.zeros(n, dtype=torch.long)
        cols = []
        for table in self.tables:
            x = torch.multinomial(table[prefix].softmax(-1), 1, generator=generator).squeeze(1)  # (n,)
            cols.append(x)
            prefix = prefix * self.vocab_size + x
        return torch.stack(cols, 1)

    def index(self, seqs: torch.Tensor) -> torch.Tensor:
        """Row of each sequence in :func:`enumerate_sequences` order. (B, L) -> (B,)."""
        powers = self.vocab_size ** torch.arange(self.length - 1, -1, -1)  # (L,)
        return (seqs * powers).sum(1)


@dataclass
class ExactWorld:
    """A small enumerable world: every sequence, the base a, a reward and a binary constraint."""

    tokens: list
    """Names of the V tokens."""
    sequences: torch.Tensor
    """(N, L) every sequence."""
    base: TabularPolicy
    """The base model a (a random autoregressive table)."""
    log_a: torch.Tensor
    """(N,) log a(x)."""
    reward: torch.Tensor
    """(N,) r(x) = (#"good" - #"bad") / L, in [-1, 1]."""
    constraint: torch.Tensor
    """(N,) b(x) = 1 if x contains "good"."""
    beta: float
    """KL coefficient of the RLKL target."""

    def rlkl_log_target(self) -> torch.Tensor:
        """(N,) log P = log a + r/β for RLKL (eq. 3; :func:`rlhf_edu.fdpg.rlkl_log_target`)."""
        return self.log_a + self.reward / self.beta

    def gdc_log_target(self) -> torch.Tensor:
        """(N,) log P = log a + log b for GDC binary (eq. 1; :func:`rlhf_edu.fdpg.gdc_binary_log_target`)."""
        return self.log_a + torch.log(self.constraint)

    def text(self, i: int) -> str:
        return " ".join(self.tokens[j] for j in self.sequences[i].tolist())


def make_exact_world(vocab_size: int = 6, length: int = 3, beta: float = 0.5, seed: int = 0,
                     base_scale: float = 1.5, good_bias: float = -1.5) -> ExactWorld:
    """An enumerable world of V**L sequences. Token 0 is "good", token 1 "bad".

    The base a is a random autoregressive table (logits N(0, base_scale²)) with ``good_bias`` added
    to the logit of "good", so that the constraint "contains good" is rare-ish under a.
    """
    names = ["good", "bad", "film", "plot", "the", "."] + [f"w{i}" for i in range(6, vocab_size)]
    seqs = enumerate_sequences(vocab_size, length)  # (N, L)
    base = TabularPolicy.random(vocab_size, length, scale=base_scale, seed=seed)
    with torch.no_grad():
        for table in base.tables:
            table[:, 0] += good_bias
    base.requires_grad_(False)
    log_a = base.log_prob_all()  # (N,)
    reward = ((seqs == 0).sum(1) - (seqs == 1).sum(1)).double() / length  # (N,)
    b = (seqs == 0).any(1).double()  # (N,)
    return ExactWorld(names[:vocab_size], seqs, base, log_a, reward, b, beta)


def kl_from_logs(log_p: torch.Tensor, log_q: torch.Tensor) -> float:
    """KL(p||q) = Σ_{p>0} p (log p - log q) from log-probabilities (N,)."""
    support = torch.isfinite(log_p)
    lp = torch.where(support, log_p, torch.zeros_like(log_p))
    return float(torch.where(support, lp.exp() * (lp - log_q), torch.zeros_like(lp)).sum())
