import math

import numpy as np
import pytest
import torch
from scipy import stats

from rlhf_edu import gold
from rlhf_edu.data import load_splits

NEUTRAL = "The movie is about a family that moves to a new town."


def test_gold_is_q_times_sentiment_minus_one_minus_q():
    texts = [NEUTRAL, "A wonderful, moving film with a fine cast.", "great great great great great"]
    q = torch.tensor([gold.readability(t) for t in texts])
    expected = q * gold.sentiment(texts) - (1 - q)
    torch.testing.assert_close(gold.gold_reward(texts), expected)
    assert ((gold.gold_reward(texts) >= -1) & (gold.gold_reward(texts) <= 1)).all()


def test_readability_factors_by_hand():
    assert gold.english_word_rate("the cat zzqxv") == pytest.approx(2 / 3)
    assert gold.english_word_rate("Titanic Jack") == 0.0  # names are not judged; nothing left
    assert gold.repeated_bigram_rate("a b a b a b") == pytest.approx(1 - 2 / 5)
    assert gold.repeated_bigram_rate("one") == 0.0
    assert gold.readability("the film") == pytest.approx(2 / 5)  # two words of the five a sentence needs


@pytest.mark.parametrize("degenerate", [
    "great great great great great great great great",
    "good good movie movie good good movie movie",
    "brilliant wonderful amazing brilliant wonderful amazing brilliant wonderful amazing",
    "Swadous lagm punchdong brilliant wonderful zorbly.",
    "!!!",
])
def test_degenerate_text_scores_below_a_plain_neutral_review(degenerate):
    g = gold.gold_reward([degenerate, NEUTRAL])
    assert g[0] < g[1]


def test_gold_prefers_fresh_to_rotten_critic_snippets_by_many_standard_errors():
    test = load_splits(0)["test"]
    fresh = gold.gold_reward([t for t, l in zip(test["text"], test["label"]) if l == "fresh"]).numpy()
    rotten = gold.gold_reward([t for t, l in zip(test["text"], test["label"]) if l == "rotten"]).numpy()
    t = stats.ttest_ind(fresh, rotten, equal_var=False).statistic
    assert t > 5


@pytest.mark.parametrize("temperature", [0.05, 0.1, 0.5])
def test_oracle_label_rate_matches_sigmoid_of_gold_gap_over_temperature(temperature):
    # 8 gold gaps, 4,000 labels each: every observed rate is within 4 binomial SE of sigma(gap / T)
    gaps = torch.linspace(-0.4, 0.4, 8)
    n = 4000
    ga = gaps.repeat_interleave(n)
    labels = gold.oracle_labels(ga, torch.zeros_like(ga), temperature, torch.Generator().manual_seed(1))
    rate = labels.view(8, n).float().mean(1)
    p = torch.sigmoid(gaps / temperature)
    z = (rate - p) / torch.sqrt(p * (1 - p) / n).clamp_min(1e-12)
    assert z.abs().max() < 4, z
    # and a chi-square test over all gaps at once
    chi2 = float(((rate - p) ** 2 / (p * (1 - p) / n).clamp_min(1e-12)).sum())
    assert stats.chi2.sf(chi2, df=8) > 1e-3


def test_gold_preference_pairs_are_deterministic_and_consistent():
    prompts = ["m:"] * 6
    a = [NEUTRAL, "A wonderful film.", "Dull and flat, a bad film.", "great great great", "A fine cast.", "It is bad."]
    b = a[::-1]
    p1 = gold.gold_preference_pairs(prompts, a, b, seed=3)
    p2 = gold.gold_preference_pairs(prompts, a, b, seed=3)
    assert p1.to_dict() == p2.to_dict()
    g = dict(zip(a, gold.gold_reward(a).tolist()))
    for row in p1:
        assert math.isclose(row["gold_chosen"], g[row["chosen"]], abs_tol=1e-6)
        expected = 1 / (1 + math.exp(-(row["gold_chosen"] - row["gold_rejected"]) / gold.TEMPERATURE))
        assert math.isclose(row["p_chosen"], expected, rel_tol=1e-4)
    with pytest.raises(ValueError, match="^temperature:"):
        gold.gold_preference_pairs(prompts, a, b, temperature=0)
    with pytest.raises(ValueError, match="^texts:"):
        gold.gold_reward("great")


def test_snippet_pairs_share_a_movie_and_mostly_follow_the_gold():
    pairs = gold.snippet_pairs(load_splits(0)["validation"], seed=0)
    assert len(pairs) > 100
    agree = np.mean(np.array(pairs["gold_chosen"]) > np.array(pairs["gold_rejected"]))
    expected = np.mean(np.maximum(pairs["p_chosen"], 1 - np.array(pairs["p_chosen"])))
    # the oracle's agreement with the gold order matches what its temperature predicts
    assert abs(agree - expected) < 4 * math.sqrt(expected * (1 - expected) / len(pairs))
