"""Tests of the per-token and fine-grained rewards in rlhf_edu.rewards."""

import math
import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlhf_edu.rewards import (RewardCategory, Segment, fine_grained_scores, gold_reward, kl_shaped_rewards,
                              last_token_index, ngrams_repeated, sampled_token_kl, segment_rewards_to_tokens,
                              sentence_segments, sentence_sentiment, sequence_to_token_scores, span_repetition,
                              span_segments, text_scorer, whole_response_segments)


def prompt_response_layout():
    """(B, T) = (3, 8): prompt columns, response columns, right padding (as in tokenize_prompt_response)."""
    mask = torch.tensor([
        [0, 0, 1, 1, 1, 1, 0, 0],  # prompt 2, response 4, pad 2
        [0, 0, 0, 1, 1, 1, 1, 1],  # prompt 3, response 5
        [0, 1, 0, 0, 0, 0, 0, 0],  # prompt 1, response 1, pad 6
    ])
    g = torch.Generator().manual_seed(0)
    logp = -torch.rand(3, 8, generator=g) * 3
    ref = -torch.rand(3, 8, generator=g) * 3
    return mask, logp, ref


@pytest.mark.parametrize("estimator", ["k1", "k3"])
def test_kl_shaped_reward_shape(estimator):
    mask, logp, ref = prompt_response_layout()
    scores = torch.tensor([2.0, -1.0, 0.5])
    beta = 0.3
    out = kl_shaped_rewards(sequence_to_token_scores(scores, mask), logp, ref, mask, beta, estimator)
    last = [5, 7, 1]
    kl_ref = sampled_token_kl(logp, ref, estimator)
    for b in range(3):
        for t in range(8):
            if mask[b, t] == 0:  # prompt or pad: nothing at all
                assert out.rewards[b, t] == 0 and out.kl[b, t] == 0
                continue
            expected = -beta * kl_ref[b, t].item() + (scores[b].item() if t == last[b] else 0.0)
            assert math.isclose(out.rewards[b, t].item(), expected, rel_tol=1e-6, abs_tol=1e-7)
    # summed over tokens: eq. 2, R - beta * (log pi(y) - log pi_ref(y)) for k1
    if estimator == "k1":
        seq = scores - beta * ((logp - ref) * mask).sum(-1)
        assert torch.allclose(out.rewards.sum(-1), seq, atol=1e-6)


def test_k3_is_unbiased_and_non_negative_by_enumeration():
    g = torch.Generator().manual_seed(1)
    p = torch.softmax(torch.randn(7, generator=g), 0)
    q = torch.softmax(torch.randn(7, generator=g), 0)
    exact = (p * (p / q).log()).sum()
    k3 = sampled_token_kl(p.log()[None], q.log()[None], "k3")[0]  # one value per outcome
    k1 = sampled_token_kl(p.log()[None], q.log()[None], "k1")[0]
    assert (k3 >= 0).all()
    assert math.isclose((p * k3).sum().item(), exact.item(), rel_tol=1e-5)  # E_p[k3] = KL(p||q)
    assert math.isclose((p * k1).sum().item(), exact.item(), rel_tol=1e-5)


TOKENS = ["The", " film", " is", " bad", ".", " Great", " cast", "!", " and", " more"]


def test_segmenters_end_where_expected():
    assert [s.end for s in sentence_segments(TOKENS)] == [4, 7, 9]
    assert sentence_segments(TOKENS)[1].text == " Great cast!"
    clauses = sentence_segments([" dull", ",", " slow", ";", " fine"], end=re.compile("[,;:.!?]"))
    assert [(s.start, s.end) for s in clauses] == [(0, 1), (2, 3), (4, 4)]  # clause ends, then the last token
    assert [s.end for s in span_segments(TOKENS, 4)] == [3, 7, 9]
    assert [(s.start, s.end) for s in whole_response_segments(TOKENS)] == [(0, 9)]
    assert sentence_segments([]) == [] and span_segments([], 3) == []


@settings(max_examples=50, deadline=None)
@given(tokens=st.lists(st.sampled_from(["a", " b", ".", "c!", " ?", "x"]), max_size=15),
       size=st.integers(1, 6))
def test_segments_partition_the_response(tokens, size):
    for segs in (sentence_segments(tokens), span_segments(tokens, size)):
        covered = [i for s in segs for i in range(s.start, s.end + 1)]
        assert covered == list(range(len(tokens)))  # contiguous, in order, no overlap
        assert "".join(s.text for s in segs) == "".join(tokens)


def test_fine_grained_rewards_land_on_each_segments_last_token():
    tokens = [TOKENS, TOKENS[:6]]  # second response: "The film is bad. Great"
    R = 12

    def const(value):
        return lambda prompts, segs, toks: [[value * (j + 1) for j in range(len(s))] for s in segs]

    cats = [RewardCategory("sent", 2.0, sentence_segments, const(1.0)),
            RewardCategory("span", -1.0, lambda t: span_segments(t, 3), const(10.0)),
            RewardCategory("whole", 0.5, whole_response_segments, const(4.0))]
    out = fine_grained_scores(cats, ["p", "q"], tokens, R)
    expected = torch.zeros(2, R)
    # response 0: sentences end at 4, 7, 9; spans at 2, 5, 8, 9; whole at 9
    for j, e in enumerate([4, 7, 9]):
        expected[0, e] += 2.0 * (j + 1)
    for j, e in enumerate([2, 5, 8, 9]):
        expected[0, e] += -1.0 * 10.0 * (j + 1)
    expected[0, 9] += 0.5 * 4.0
    # response 1 (6 tokens): sentences end at 4, 5; spans at 2, 5; whole at 5
    for j, e in enumerate([4, 5]):
        expected[1, e] += 2.0 * (j + 1)
    for j, e in enumerate([2, 5]):
        expected[1, e] += -1.0 * 10.0 * (j + 1)
    expected[1, 5] += 0.5 * 4.0
    assert torch.allclose(out.token_scores, expected)
    assert out.queries == {"sent": 5, "span": 6, "whole": 2}
    assert torch.allclose(sum(out.per_category.values()), out.token_scores)


def test_segment_rewards_reject_mismatches():
    segs = [[Segment(0, 1, "ab")]]


def brute_repeated(tokens, start, end, n):
    norm = [t.strip().lower() for t in tokens]
    grams = [tuple(norm[i - n + 1:i + 1]) for i in range(n - 1, len(norm))]
    hits = total = 0
    for i in range(max(start, n - 1), end + 1):
        g = tuple(norm[i - n + 1:i + 1])
        total += 1
        hits += g in grams[:i - n + 1]
    return hits / total if total else 0.0


@settings(max_examples=50, deadline=None)
@given(tokens=st.lists(st.sampled_from(["a", " a", "b", "C", " c"]), min_size=1, max_size=12),
       n=st.integers(1, 3), data=st.data())
def test_ngram_repetition_matches_brute_force(tokens, n, data):
    start = data.draw(st.integers(0, len(tokens) - 1))
    end = data.draw(st.integers(start, len(tokens) - 1))
    assert math.isclose(ngrams_repeated(tokens, start, end, n), brute_repeated(tokens, start, end, n))


def test_category_scorers():
    tokens = [" good", " good", " good", " good", ".", " awful", " film", "."]
    sents = sentence_segments(tokens)
    neg = sentence_sentiment(["p"], [sents], [tokens])[0]
    assert neg[0] == 0.0 and neg[1] < 0  # only the negative sentence is penalised
    both = sentence_sentiment(["p"], [sents], [tokens], negative_only=False)[0]
    assert both[0] > 0
    rep = span_repetition(["p"], [span_segments(tokens, 4)], [tokens], n=1)[0]
    assert rep == [-0.75, -0.25]  # three repeated " good" in the first span; the second "." after
    whole = text_scorer(lambda ps, ys: gold_reward(ys))(["p"], [whole_response_segments(tokens)], [tokens])
    assert math.isclose(whole[0][0], gold_reward(["".join(tokens)]).item(), rel_tol=1e-6)
