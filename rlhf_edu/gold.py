"""The gold judge: the course's stand-in for a human labeller, and the pairs it labels.

Every learned reward model in the course is a *proxy*; this module is the truth it is measured
against. The judge never sees a learned model, and it is documented here and only here.

    gold(y) = q(y) * s(y) - (1 - q(y))                                        in [-1, 1]

- ``s(y)`` in [-1, 1] is the VADER compound sentiment (offline lexicon, ``vaderSentiment``):
  positive reviews score high.
- ``q(y)`` in [0, 1] is *readability*, the product of three factors:
  - the English-word rate: the share of lowercase words among the 50,000 most frequent English
    words (``data/english_words_50k.txt.bz2``, see ``data/CORPUS.md``); capitalised words
    (names) are not judged;
  - (1 - repeated-bigram rate)^2, where that rate is the share of word bigrams that repeat an
    earlier one (squared, so that "good good movie movie good good" falls below a neutral review);
  - a length factor ``min(1, n_words / 5)``: a review is a sentence, not one word.

A readable neutral review scores about 0. Degenerate text loses both ways: repeating "great
great great" keeps s high but drives q down, and gold -> -(1 - q) < 0; nonsense words do the
same. So a policy that games a sentiment-loving proxy with repetition *lowers* the gold.

:func:`oracle_labels` turns gold scores into Bradley-Terry preference labels with a stated
temperature (label noise): P(a preferred to b) = sigma((gold(a) - gold(b)) / temperature).
:func:`gold_preference_pairs` builds deterministic gold-labelled pairs from two responses to
the same prompt.
"""

from __future__ import annotations

import bz2
import functools
import re

import torch

from .data import format_prompt
from .resources import DATA_DIR

WORDS_FILE = DATA_DIR / "english_words_50k.txt.bz2"
MIN_WORDS = 5
TEMPERATURE = 0.1
"""Default oracle temperature: a gold gap of 0.1 is labelled right 73% of the time, 0.3 95%."""

_LOWER = re.compile(r"(?<![A-Za-z'])[a-z]+(?![A-Za-z])")
_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")


@functools.lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    with bz2.open(WORDS_FILE, "rt") as f:
        return frozenset(f.read().split())


@functools.lru_cache(maxsize=1)
def _vader():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def _check_texts(texts) -> None:
    if isinstance(texts, str):  # it would be scored character by character
        raise ValueError("texts: expected a list of strings, got a single string")


def sentiment(texts: list[str]) -> torch.Tensor:
    """VADER compound sentiment s(y) of each text. Returns (B,) float32 in [-1, 1]."""
    _check_texts(texts)
    return torch.tensor([_vader().polarity_scores(t)["compound"] for t in texts], dtype=torch.float32)


def lowercase_words(text: str) -> list[str]:
    """The all-lowercase words of ``text``: the words the English-word rate judges (names are skipped)."""
    return _LOWER.findall(text)


def english_word_rate(text: str) -> float:
    """Share of the lowercase words of ``text`` that are common English words (0 if it has none)."""
    lower = lowercase_words(text)
    return sum(w in english_words() for w in lower) / len(lower) if lower else 0.0


def repeated_bigram_rate(text: str) -> float:
    """Share of word bigrams that repeat an earlier bigram of the same text (0 under 2 words)."""
    words = [w.lower() for w in _WORD.findall(text)]
    bigrams = list(zip(words, words[1:]))
    return 1 - len(set(bigrams)) / len(bigrams) if bigrams else 0.0


def readability(text: str) -> float:
    """q(y) = English-word rate x (1 - repeated-bigram rate)^2 x min(1, n_words / 5)."""
    n_words = len(_WORD.findall(text))
    return english_word_rate(text) * (1 - repeated_bigram_rate(text)) ** 2 * min(1.0, n_words / MIN_WORDS)


def gold_reward(texts: list[str]) -> torch.Tensor:
    """The gold judge, gold(y) = q(y) s(y) - (1 - q(y)). texts: B strings. Returns (B,) float32 in [-1, 1]."""
    _check_texts(texts)
    q = torch.tensor([readability(t) for t in texts], dtype=torch.float32)
    return q * sentiment(texts) - (1 - q)


def oracle_labels(gold_a: torch.Tensor, gold_b: torch.Tensor, temperature: float = TEMPERATURE,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Bradley-Terry oracle: True where a is preferred, with P = sigma((gold_a - gold_b) / temperature)."""
    p = torch.sigmoid((gold_a - gold_b) / temperature)
    return torch.rand(p.shape, generator=generator) < p


def gold_preference_pairs(prompts: list[str], responses_a: list[str], responses_b: list[str],
                          temperature: float = TEMPERATURE, seed: int = 0):
    """Gold-labelled preference pairs: two responses to each prompt, labelled by :func:`oracle_labels`.

    Returns a ``datasets.Dataset`` with ``prompt``, ``chosen``, ``rejected``, their gold scores
    ``gold_chosen`` and ``gold_rejected``, and ``p_chosen``, the oracle's probability of the label
    it gave. Deterministic under ``seed``.
    """
    from datasets import Dataset

    if not (len(prompts) == len(responses_a) == len(responses_b)):
        raise ValueError(f"responses_b: expected {len(prompts)} prompts and responses of each kind, got "
                         f"{len(prompts)}, {len(responses_a)}, {len(responses_b)}")
    if not temperature > 0:
        raise ValueError(f"temperature: expected > 0, got {temperature}")
    ga, gb = gold_reward(responses_a), gold_reward(responses_b)
    a_wins = oracle_labels(ga, gb, temperature, torch.Generator().manual_seed(seed)).tolist()
    p_a = torch.sigmoid((ga - gb) / temperature).tolist()
    rows = [(a, b, x, y, p) if win else (b, a, y, x, 1 - p)
            for a, b, x, y, p, win in zip(responses_a, responses_b, ga.tolist(), gb.tolist(), p_a, a_wins)]
    chosen, rejected, g_c, g_r, p_c = map(list, zip(*rows)) if rows else ([], [], [], [], [])
    return Dataset.from_dict(dict(prompt=list(prompts), chosen=chosen, rejected=rejected,
                                  gold_chosen=g_c, gold_rejected=g_r, p_chosen=p_c))


def snippet_pairs(ds, seed: int = 0, max_pairs_per_movie: int = 4, max_chars: int = 300):
    """Two critic snippets of the same movie (any label) per pair, labelled by the gold oracle.

    ``ds``: a split of :func:`rlhf_edu.data.load_splits` (``text``, ``movie``). The prompt is the
    movie (:func:`rlhf_edu.data.format_prompt`). Deterministic under ``seed``.
    """
    import random

    by_movie: dict[str, list[str]] = {}
    for text, movie in zip(ds["text"], ds["movie"]):
        if len(text) <= max_chars:
            by_movie.setdefault(movie, []).append(text)
    rng = random.Random(seed)
    prompts, a, b = [], [], []
    for movie in sorted(by_movie):
        texts = by_movie[movie][:]
        rng.shuffle(texts)
        for i in range(min(max_pairs_per_movie, len(texts) // 2)):
            prompts.append(format_prompt(movie))
            a.append(texts[2 * i])
            b.append(texts[2 * i + 1])
    return gold_preference_pairs(prompts, a, b, seed=seed)
