"""Rewards: the gold sentiment reward (VADER).

VADER (Hutto and Gilbert 2014) is a lexicon-and-rules sentiment scorer that ships its lexicon in
the ``vaderSentiment`` wheel, so it works offline. Its compound score lies in [-1, 1]. It is
independent of any learned reward model, which lets notebooks show over-optimisation: the proxy
reward rises while the gold reward does not.
"""

from __future__ import annotations

import functools

import torch


@functools.lru_cache(maxsize=1)
def _vader():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def gold_reward(texts: list[str]) -> torch.Tensor:
    """VADER compound sentiment of each text. texts: list of B strings. Returns (B,) float32 in [-1, 1]."""
    if isinstance(texts, str):
        raise ValueError("texts: expected a list of strings, got a single string")
    analyzer = _vader()
    return torch.tensor([analyzer.polarity_scores(t)["compound"] for t in texts], dtype=torch.float32)
