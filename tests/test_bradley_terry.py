"""Tests of rlhf_edu.bradley_terry against closed forms, float64 formulas, gradcheck and scipy."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import spearmanr

from rlhf_edu import bradley_terry as bt

floats = st.floats(min_value=-30, max_value=30, allow_nan=False)


# ---------------------------------------------------------------- losses -------------------------
def test_bt_loss_matches_float64_direct_formula():
    g = torch.Generator().manual_seed(0)
    rc = 3 * torch.randn(200, generator=g, dtype=torch.float64)
    rr = 3 * torch.randn(200, generator=g, dtype=torch.float64)
    _out = bt.bt_loss(rc.float(), rr.float())
    losses, diag = _out.losses, _out.diagnostics
    direct = -torch.log(torch.exp(rc) / (torch.exp(rc) + torch.exp(rr)))  # -log p_BT, float64
    torch.testing.assert_close(losses.double(), direct, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(diag["prob_chosen"].double(), torch.exp(-direct), rtol=1e-5, atol=1e-6)


def test_bt_loss_is_ln2_at_ties_and_stable_at_extremes():
    r = torch.tensor([-5.0, 0.0, 7.5], dtype=torch.float64)
    _out = bt.bt_loss(r, r.clone())
    losses, diag = _out.losses, _out.diagnostics
    assert torch.all(losses == math.log(2.0))
    assert torch.all(diag["correct"] == 0.5)
    # a hopeless pair costs its margin (no overflow to inf), a sure pair costs ~0
    losses = bt.bt_loss(torch.tensor([-100.0, 100.0]), torch.tensor([100.0, -100.0])).losses
    assert torch.isfinite(losses).all()
    assert losses[0].item() == pytest.approx(200.0, rel=1e-6)
    assert losses[1].item() == pytest.approx(0.0, abs=1e-30)


def test_gradcheck_losses():
    g = torch.Generator().manual_seed(1)
    rc = torch.randn(6, generator=g, dtype=torch.float64, requires_grad=True)
    rr = torch.randn(6, generator=g, dtype=torch.float64, requires_grad=True)
    m = torch.rand(6, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: bt.bt_loss(a, b)[0], (rc, rr))
    assert torch.autograd.gradcheck(lambda a, b, c: bt.margin_loss(a, b, c)[0], (rc, rr, m))
    assert torch.autograd.gradcheck(lambda a, b: bt.centring_penalty(a, b, 0.3).losses, (rc, rr))
    assert torch.autograd.gradcheck(bt.preference_probability, (rc, rr))


def test_bt_gradient_closed_form():
    """d/dr_w of -log sigma(r_w - r_l) is -(1 - sigma(r_w - r_l))."""
    rc = torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64, requires_grad=True)
    rr = torch.tensor([0.0, 1.0, -2.0], dtype=torch.float64)
    bt.bt_loss(rc, rr)[0].sum().backward()
    torch.testing.assert_close(rc.grad, -(1 - torch.sigmoid(rc.detach() - rr)))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(floats, floats, floats), min_size=1, max_size=8))
def test_margin_loss_reduces_to_bt_and_shifts(rows):
    rc, rr, m = (torch.tensor(c, dtype=torch.float64) for c in zip(*rows))
    torch.testing.assert_close(bt.margin_loss(rc, rr, 0.0)[0], bt.bt_loss(rc, rr)[0])
    torch.testing.assert_close(bt.margin_loss(rc, rr, torch.zeros_like(rc))[0], bt.bt_loss(rc, rr)[0])
    # eq. 9 is the BT loss of a chosen reward lowered by the margin
    torch.testing.assert_close(bt.margin_loss(rc, rr, m)[0], bt.bt_loss(rc - m, rr)[0])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(floats, floats), min_size=1, max_size=8), floats)
def test_preference_probability_formula_and_shift_invariance(rows, c):
    rc, rr = (torch.tensor(x, dtype=torch.float64) for x in zip(*rows))
    p = bt.preference_probability(rc, rr)
    direct = 1.0 / (1.0 + torch.exp(rr - rc))
    torch.testing.assert_close(p, direct)
    torch.testing.assert_close(bt.preference_probability(rc + c, rr + c), p, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(bt.preference_probability(rr, rc), 1 - p, rtol=1e-9, atol=1e-9)


def test_centring_penalty_and_normalisation():
    rc = torch.tensor([1.0, 2.0, -0.5], dtype=torch.float64)
    rr = torch.tensor([0.5, -1.0, -0.5], dtype=torch.float64)
    pen = bt.centring_penalty(rc, rr, 0.1).losses
    torch.testing.assert_close(pen, 0.1 * torch.tensor([1.5**2, 1.0, 1.0], dtype=torch.float64))
    rewards = torch.tensor([3.0, 4.0, 8.0])
    shifted, off = bt.normalise_rewards(rewards)
    assert off.item() == pytest.approx(5.0)
    assert shifted.mean().item() == pytest.approx(0.0, abs=1e-6)
    again, off2 = bt.normalise_rewards(torch.tensor([5.0]), offset=off)
    assert again.item() == 0.0 and off2.item() == 5.0
    # normalising does not change any BT probability
    torch.testing.assert_close(bt.preference_probability(shifted[:2], shifted[1:]),
                               bt.preference_probability(rewards[:2], rewards[1:]))


# ---------------------------------------------------------------- metrics ------------------------
def test_pairwise_accuracy_counts_ties_half():
    rc = torch.tensor([1.0, 0.0, 2.0, -1.0])
    rr = torch.tensor([0.0, 0.0, 3.0, -2.0])
    assert bt.pairwise_accuracy(rc, rr) == pytest.approx((1 + 0.5 + 0 + 1) / 4)


def test_calibration_against_manual_bins_and_a_calibrated_sample():
    p = np.array([0.05, 0.15, 0.12, 0.95, 1.0])
    y = np.array([0, 1, 0, 1, 1])
    tab = bt.calibration(p, y, n_bins=10)
    np.testing.assert_allclose(tab["mean_pred"], [0.05, 0.135, 0.975])
    np.testing.assert_allclose(tab["observed"], [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(tab["count"], [1, 2, 2])
    expected_ece = (1 * 0.05 + 2 * abs(0.5 - 0.135) + 2 * 0.025) / 5
    assert tab["ece"] == pytest.approx(expected_ece)
    # outcomes drawn with the predicted probabilities: small calibration error
    rng = np.random.default_rng(0)
    p = rng.random(20_000)
    tab = bt.calibration(p, (rng.random(p.size) < p).astype(float), n_bins=10)
    assert tab["ece"] < 0.02
    # the symmetrised pair table is symmetric about one half
    tab = bt.pair_calibration(torch.tensor([1.0, 2.0, -0.3]), torch.tensor([0.0, 0.0, 0.0]), n_bins=4)
    np.testing.assert_allclose(tab["mean_pred"] + tab["mean_pred"][::-1], 1.0)


# ---------------------------------------------------------------- synthetic MLE ------------------
def test_fit_bt_mle_two_items_closed_form():
    """Two items, a beats b k times out of N: the MLE gap is log(k / (N - k))."""
    winners = np.array([0] * 7 + [1] * 3)
    losers = np.array([1] * 7 + [0] * 3)
    r = bt.fit_bt_mle(2, winners, losers, l2=0.0)
    assert r[0] - r[1] == pytest.approx(math.log(7 / 3), abs=1e-6)
    assert r.sum() == pytest.approx(0.0, abs=1e-9)


def test_fit_bt_mle_recovers_latent_rewards_up_to_a_constant():
    rng = np.random.default_rng(0)
    r_star = rng.normal(0, 1.5, size=20) + 4.0  # an arbitrary offset: only differences matter
    winners, losers = bt.sample_bt_comparisons(r_star, 4000, seed=1)
    r_hat = bt.fit_bt_mle(20, winners, losers)
    assert spearmanr(r_hat, r_star).statistic > 0.9
    assert np.abs((r_hat - r_hat.mean()) - (r_star - r_star.mean())).max() < 0.5
    # more comparisons: smaller error
    w2, l2 = bt.sample_bt_comparisons(r_star, 200, seed=1)
    err_small = np.abs(bt.fit_bt_mle(20, w2, l2) - (r_star - r_star.mean())).mean()
    err_large = np.abs(r_hat - (r_star - r_star.mean())).mean()
    assert err_large < err_small


def test_sample_bt_comparisons_win_rate_matches_sigma():
    winners, losers = bt.sample_bt_comparisons([0.0, 1.0], 20_000, seed=3)
    assert np.all(winners != losers)
    rate = np.mean(winners == 1)
    assert rate == pytest.approx(1 / (1 + math.exp(-1.0)), abs=0.01)


# ---------------------------------------------------------------- reward model -------------------
def test_config_presets_read_the_scale(tiny_scale):
    cfg = bt.RewardModelConfig.tiny(tiny_scale)
    assert (cfg.steps, cfg.batch_size, cfg.max_len) == (
        tiny_scale.pref_steps, tiny_scale.pref_batch_size, tiny_scale.max_pair_tokens)
    cfg = bt.RewardModelConfig.from_scale(tiny_scale.with_(extra={"reward_model": {"steps": 7}}), lr=3e-4)
    assert cfg.steps == 7 and cfg.lr == 3e-4
    assert bt.RewardModelConfig.gpt2().batch_size == 32


def _pairs(n):
    from datasets import Dataset

    return Dataset.from_dict({
        "prompt": ["Alien:"] * n,
        "chosen": [f"a wonderful, gripping film number {i}" for i in range(n)],
        "rejected": [f"a dull and tedious mess {i}" for i in range(n)],
    })


def test_score_texts_is_padding_invariant(tiny_model, tiny_tokenizer):
    from rlhf_edu.models import scalar_head_from_lm

    rm = scalar_head_from_lm(tiny_model)
    prompts = ["Alien:", "The Godfather, Part II:", "Up:"]
    responses = ["great", "a long and meandering but ultimately moving saga of family", "meh."]
    batched = bt.score_texts(rm, tiny_tokenizer, prompts, responses, max_len=64, batch_size=3)
    single = torch.cat([bt.score_texts(rm, tiny_tokenizer, [p], [r], max_len=64)
                        for p, r in zip(prompts, responses)])
    assert batched.shape == (3,)
    torch.testing.assert_close(batched, single, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="prompts/responses"):
        bt.score_texts(rm, tiny_tokenizer, prompts, responses[:2])


def test_train_reward_model_learns_and_is_deterministic(tiny_model, tiny_tokenizer):
    from rlhf_edu.models import scalar_head_from_lm

    train, held_out = _pairs(16), _pairs(4)
    cfg = bt.RewardModelConfig(steps=6, batch_size=4, max_len=16, eval_every=3, freeze_layers=2,
                               lr=1e-3, head_lr=1e-2, show_progress=False)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)  # the scalar head is initialised from the global generator
        rm = scalar_head_from_lm(tiny_model)
        frozen_before = rm.backbone.h[0].attn.c_attn.weight.detach().clone()
        hist = bt.train_reward_model(rm, tiny_tokenizer, train, held_out, cfg,
                                     margins=np.ones(len(train)))
        runs.append(hist)
        assert torch.equal(rm.backbone.h[0].attn.c_attn.weight, frozen_before)  # frozen layers stay
    hist = runs[0]
    assert len(hist["loss"]) == 6 and hist["eval_step"] == [0, 3, 6]
    assert hist["eval_loss"][0] == pytest.approx(hist["eval_loss"][0])  # finite
    assert hist["eval_loss"][-1] < hist["eval_loss"][0]  # an easy, lexical task: the loss falls
    assert hist["eval_accuracy"][-1] == 1.0
    assert runs[0]["loss"] == pytest.approx(runs[1]["loss"], rel=1e-4)
