import pytest
import torch

from rlhf_edu.rewards import sentiment_reward as gold_reward  # VADER, the sentiment part of the gold judge


def test_vader_orders_obvious_sentiment():
    r = gold_reward(["A wonderful, moving and brilliant film.", "The plot is a film.",
                     "Awful, boring and painfully bad."])
    assert r.shape == (3,) and r.dtype == torch.float32
    assert r[0] > 0.5 and abs(r[1]) < 0.1 and r[2] < -0.5
    assert ((r >= -1) & (r <= 1)).all()


def test_negation_flips_sentiment():
    good, not_good = gold_reward(["The movie is good.", "The movie is not good."])
    assert good > 0 > not_good


def test_single_string_is_rejected():
    with pytest.raises(ValueError, match="texts"):
        gold_reward("great")
