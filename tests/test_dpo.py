"""Tests for rlhf_edu.dpo: closed forms, float64 formulas, gradcheck, HF cross-entropy, training."""

import math
import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlhf_edu.data import PairCollator
from rlhf_edu.dpo import (
    DPOConfig,
    dpo_loss,
    dpo_nll_loss,
    implicit_reward_accuracy,
    ipo_loss,
    length_normalised_nll,
    pair_logprobs,
    reference_logprobs,
    token_mean_nll,
    train_dpo,
)
from rlhf_edu.logprobs import batch_sequence_logprob, model_token_logprobs
from rlhf_edu.models import frozen_copy

finite = st.floats(-60, 0, allow_nan=False, allow_infinity=False)


def _logps(B, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return [-30 * torch.rand(B, generator=g, dtype=dtype) for _ in range(4)]


# ---------------------------------------------------------------- pure losses


@settings(max_examples=40, deadline=None)
@given(pc=finite, pr=finite, rc=finite, rr=finite, beta=st.floats(1e-3, 5.0))
def test_dpo_loss_matches_float64_formula(pc, pr, rc, rr, beta):
    out = dpo_loss(*(torch.tensor([v]) for v in (pc, pr, rc, rr)), beta=beta)
    z = beta * ((pc - rc) - (pr - rr))
    direct = math.log1p(math.exp(-z)) if z > -30 else -z + math.log1p(math.exp(z))  # -log sigma(z)
    assert out.losses.item() == pytest.approx(direct, rel=1e-5, abs=1e-5)
    assert out.chosen_rewards.item() == pytest.approx(beta * (pc - rc), rel=1e-5, abs=1e-4)
    assert out.rejected_rewards.item() == pytest.approx(beta * (pr - rr), rel=1e-5, abs=1e-4)


def test_dpo_loss_is_ln2_when_policy_equals_reference():
    pc, pr, _, _ = _logps(64)
    for beta in (0.01, 0.1, 3.0):
        out = dpo_loss(pc, pr, pc.clone(), pr.clone(), beta)
        torch.testing.assert_close(out.losses, torch.full((64,), math.log(2.0)))
        assert implicit_reward_accuracy(out.chosen_rewards, out.rejected_rewards).item() == 0.5


def test_dpo_and_ipo_and_nll_gradcheck():
    pc, pr, rc, rr = (t.requires_grad_() for t in _logps(5, dtype=torch.float64))
    lengths = torch.tensor([3, 1, 7, 2, 9])
    assert torch.autograd.gradcheck(lambda a, b: dpo_loss(a, b, rc.detach(), rr.detach(), 0.3).losses, (pc, pr))
    assert torch.autograd.gradcheck(lambda a, b: ipo_loss(a, b, rc.detach(), rr.detach(), 0.3).losses, (pc, pr))
    assert torch.autograd.gradcheck(
        lambda a, b: dpo_nll_loss(a, b, rc.detach(), rr.detach(), lengths, 0.3, 0.7).losses, (pc, pr))


def test_implicit_reward_signs_and_gradient_direction():
    ref_c, ref_r = torch.tensor([-10.0, -20.0]), torch.tensor([-12.0, -8.0])
    pol_c = (ref_c + 2.0).requires_grad_()  # chosen made more likely than under the reference
    pol_r = (ref_r - 1.0).requires_grad_()  # rejected made less likely
    out = dpo_loss(pol_c, pol_r, ref_c, ref_r, beta=0.5)
    assert (out.chosen_rewards > 0).all() and (out.rejected_rewards < 0).all()
    torch.testing.assert_close(out.chosen_rewards, torch.tensor([1.0, 1.0]))
    torch.testing.assert_close(out.rejected_rewards, torch.tensor([-0.5, -0.5]))
    assert (out.losses < math.log(2)).all()
    assert not out.chosen_rewards.requires_grad
    out.losses.sum().backward()
    assert (pol_c.grad < 0).all() and (pol_r.grad > 0).all()  # descent raises chosen, lowers rejected


def test_dpo_nll_with_alpha_zero_equals_dpo_and_adds_alpha_times_nll():
    pc, pr, rc, rr = _logps(32, seed=1)
    lengths = torch.randint(1, 20, (32,), generator=torch.Generator().manual_seed(1))
    plain = dpo_loss(pc, pr, rc, rr, 0.1)
    zero = dpo_nll_loss(pc, pr, rc, rr, lengths, 0.1, 0.0)
    torch.testing.assert_close(zero.losses, plain.losses, rtol=0, atol=0)
    one = dpo_nll_loss(pc, pr, rc, rr, lengths, 0.1, 0.5)
    torch.testing.assert_close(one.losses, plain.losses + 0.5 * (-pc / lengths))
    torch.testing.assert_close(one.nll, -pc / lengths)


def test_ipo_loss_closed_form():
    rc, rr = torch.tensor([-5.0, -7.0]), torch.tensor([-6.0, -3.0])
    beta = 0.25  # target margin h* = 1 / (2 beta) = 2
    at_target = ipo_loss(rc + 2.0, rr.clone(), rc, rr, beta)
    torch.testing.assert_close(at_target.losses, torch.zeros(2))
    at_zero = ipo_loss(rc.clone(), rr.clone(), rc, rr, beta)
    torch.testing.assert_close(at_zero.losses, torch.full((2,), 4.0))


def test_length_normalised_vs_token_mean_nll():
    token_logps = -torch.rand(3, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 0, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0]])
    seq = (token_logps * mask).sum(-1)  # (3,)
    lengths = mask.sum(-1)
    per_example = length_normalised_nll(seq, lengths)  # (3,)
    naive = torch.tensor([-sum(token_logps[i, t].item() for t in range(6) if mask[i, t]) / int(lengths[i])
                          for i in range(3)], dtype=torch.float64)
    torch.testing.assert_close(per_example, naive)
    # the SFT token mean weighs each example by its length: sum(len_i * nll_i) / sum(len_i)
    torch.testing.assert_close(token_mean_nll(token_logps, mask).loss, (lengths * per_example).sum() / lengths.sum())
    assert abs(token_mean_nll(token_logps, mask).loss - per_example.mean()) > 1e-3  # they differ here
    same_len = torch.ones(3, 6)
    torch.testing.assert_close(token_mean_nll(token_logps, same_len).loss,
                               length_normalised_nll((token_logps).sum(-1), torch.full((3,), 6)).mean())


def test_bad_inputs_raise_value_error():
    for bad in (dict(beta=0.0), dict(alpha=-1.0), dict(steps=0)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            DPOConfig(**bad)


# ---------------------------------------------------------------- with the tiny model

PAIRS = [
    {"prompt": "Alien:", "chosen": "A tense, brilliant thriller.", "rejected": "Dull and far too long, sadly."},
    {"prompt": "Heat:", "chosen": "Great fun", "rejected": "A mess."},
    {"prompt": "The Matrix Reloaded:", "chosen": "Smart and wonderfully acted, with real heart.",
     "rejected": "Boring."},
]


def test_nll_term_equals_hf_mean_token_cross_entropy(tiny_model, tiny_tokenizer):
    batch = PairCollator(tiny_tokenizer, max_len=48)(PAIRS)
    logps = pair_logprobs(tiny_model, batch)
    nll = length_normalised_nll(logps.chosen, logps.chosen_lengths)  # (B,)
    c = batch["chosen"]
    for i in range(len(PAIRS)):  # one example at a time, unpadded, through HF's own loss
        n = int(c["attention_mask"][i].sum())
        ids = c["input_ids"][i : i + 1, :n]
        labels = ids.masked_fill(c["response_mask"][i : i + 1, :n] == 0, -100)
        with torch.no_grad():
            hf = tiny_model(input_ids=ids, labels=labels).loss
        assert nll[i].item() == pytest.approx(hf.item(), rel=1e-5)
    # the batch-token mean equals HF's loss on the padded batch (it averages over all labelled tokens)
    labels = c["input_ids"].masked_fill(c["response_mask"] == 0, -100)
    with torch.no_grad():
        hf_batch = tiny_model(input_ids=c["input_ids"], attention_mask=c["attention_mask"], labels=labels).loss
        lp = model_token_logprobs(tiny_model, c["input_ids"], c["attention_mask"])
    assert token_mean_nll(lp, c["response_mask"][:, 1:]).loss.item() == pytest.approx(hf_batch.item(), rel=1e-5)


def test_pair_logprobs_equals_separate_sequence_logprobs(tiny_model, tiny_tokenizer):
    batch = PairCollator(tiny_tokenizer, max_len=48)(PAIRS)
    with torch.no_grad():
        joint = pair_logprobs(tiny_model, batch)
        chosen = batch_sequence_logprob(tiny_model, batch["chosen"], reduction="sum")
        rejected = batch_sequence_logprob(tiny_model, batch["rejected"], reduction="sum")
    torch.testing.assert_close(joint.chosen, chosen, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(joint.rejected, rejected, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(joint.chosen_lengths, batch["chosen"]["response_mask"].sum(-1))


def _synthetic_pairs(n, seed):
    """Chosen responses praise, rejected ones pan; prompts (titles) and nouns vary."""
    rng = random.Random(seed)
    good = ["great", "wonderful", "brilliant", "moving", "funny", "beautiful"]
    bad = ["awful", "boring", "dull", "terrible", "lazy", "ugly"]
    nouns = ["film", "movie", "story", "script", "drama", "comedy", "thriller", "ending"]
    titles = ["Heat", "Alien", "Fargo", "Jaws", "Rocky", "Psycho", "Vertigo", "Amelie", "Gravity", "Up"]
    rows = []
    for _ in range(n):
        noun = rng.choice(nouns)
        rows.append({"prompt": f"{rng.choice(titles)} {rng.randint(1, 99)}:",
                     "chosen": f"A {rng.choice(good)} {noun}.", "rejected": f"A {rng.choice(bad)} {noun}."})
    return rows


def test_dpo_raises_heldout_accuracy_above_half(tiny_model, tiny_tokenizer):
    cfg = DPOConfig.tiny(steps=15, batch_size=8, max_len=16, eval_every=15, lr=3e-4)
    hist = train_dpo(tiny_model, tiny_tokenizer, _synthetic_pairs(120, 0), _synthetic_pairs(48, 1), cfg,
                     progress=False)
    assert hist["eval_step"] == [0, 15]
    assert hist["eval_accuracy"][0] == 0.5  # policy = reference: every margin is exactly 0
    assert hist["eval_accuracy"][-1] > 0.5
    assert hist["eval_margin"][-1] > 0
    assert len(hist["loss"]) == 15


def test_precomputed_and_on_the_fly_reference_give_identical_losses(tiny_scale, tiny_tokenizer):
    from rlhf_edu.models import load_base_model

    pairs = _synthetic_pairs(24, 2)
    cfg = DPOConfig.tiny(steps=3, batch_size=8, max_len=16, alpha=0.5)
    # loss level: one batch
    model = load_base_model(tiny_scale, device="cpu")
    ref_model = frozen_copy(model)
    pre = reference_logprobs(model, tiny_tokenizer, pairs, cfg.max_len)
    batch = PairCollator(tiny_tokenizer, max_len=cfg.max_len)(pairs[:8])
    with torch.no_grad():
        pol, live = pair_logprobs(model, batch), pair_logprobs(ref_model, batch)
    a = dpo_loss(pol.chosen, pol.rejected, pre.chosen[:8], pre.rejected[:8], cfg.beta).losses
    b = dpo_loss(pol.chosen, pol.rejected, live.chosen, live.rejected, cfg.beta).losses
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    # training level: the same 3 steps with a precomputed reference and with a frozen reference model
    h_pre = train_dpo(model, tiny_tokenizer, pairs, None, cfg, progress=False)
    other = load_base_model(tiny_scale, device="cpu")
    h_live = train_dpo(other, tiny_tokenizer, pairs, None, cfg, reference_model=frozen_copy(other), progress=False)
    for key in ("loss", "margin", "chosen_logp", "nll"):
        torch.testing.assert_close(torch.tensor(h_pre[key]), torch.tensor(h_live[key]), rtol=0, atol=1e-4)
