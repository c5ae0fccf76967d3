"""Tests of rlhf_edu.ppo: GAE, the clipped losses, PPO-ptx, KL control and the training loop.

The loop tests use the session's randomly initialised 11-token GPT-2 (``random_lm``) and a toy
character tokenizer, so they need no pretrained model and run in a few seconds.
"""

import copy
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlhf_edu.models import frozen_copy, scalar_head_from_lm
from rlhf_edu.ppo import (KLController, PPOConfig, clipped_policy_loss, clipped_value_loss, gae, lm_loss,
                          make_rollout, ppo_ptx_loss, ppo_update, ptx_blocks, score_batch, train_ppo)



@pytest.fixture(autouse=True)
def one_thread():
    """The toy models are so small that a second thread only adds contention."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class ToyTokenizer:
    """Characters 'a'..'i' and '.' as ids 1..10; id 0 is EOS = pad."""

    chars = "abcdefghi."
    eos_token_id = pad_token_id = 0

    def __call__(self, text, add_special_tokens=False):  # one string or a list of strings, as HF tokenizers
        ids = lambda t: [1 + self.chars.index(c) for c in t if c in self.chars]  # noqa: E731
        return {"input_ids": [ids(t) for t in text] if isinstance(text, list) else ids(text)}

    def decode(self, ids):
        return "".join(self.chars[i - 1] for i in ids if i > 0)


def naive_gae(r, v, gamma, lam):
    """GAE of one sequence (python lists) by the textbook reverse loop."""
    T, adv, last = len(r), [0.0] * len(r), 0.0
    for t in reversed(range(T)):
        nv = v[t + 1] if t + 1 < T else 0.0
        delta = r[t] + gamma * nv - v[t]
        last = delta + gamma * lam * last
        adv[t] = last
    return adv


def random_batch(seed, B=5, R=7):
    g = torch.Generator().manual_seed(seed)
    r, v = torch.randn(B, R, generator=g), torch.randn(B, R, generator=g)
    lengths = torch.randint(1, R + 1, (B,), generator=g)
    mask = (torch.arange(R)[None] < lengths[:, None]).long()  # contiguous real tokens
    return r, v, mask, lengths


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), gamma=st.floats(0, 1), lam=st.floats(0, 1))
def test_gae_matches_naive_reverse_loop(seed, gamma, lam):
    r, v, mask, lengths = random_batch(seed)
    adv, ret = gae(r, v, mask, gamma, lam)
    for b, L in enumerate(lengths.tolist()):
        expected = naive_gae(r[b, :L].tolist(), v[b, :L].tolist(), gamma, lam)
        assert torch.allclose(adv[b, :L], torch.tensor(expected), atol=1e-5)
        assert torch.allclose(ret[b, :L], adv[b, :L] + v[b, :L], atol=1e-6)
        assert (adv[b, L:] == 0).all() and (ret[b, L:] == 0).all()


def test_gae_lambda_one_is_discounted_return_minus_value():
    r, v, mask, lengths = random_batch(1)
    gamma = 0.9
    adv, ret = gae(r, v, mask, gamma, lam=1.0)
    for b, L in enumerate(lengths.tolist()):
        for t in range(L):
            G = sum(gamma ** k * r[b, t + k].item() for k in range(L - t))  # closed-form return
            assert math.isclose(adv[b, t].item(), G - v[b, t].item(), abs_tol=1e-5)
            assert math.isclose(ret[b, t].item(), G, abs_tol=1e-5)


def test_gae_lambda_zero_is_td_error():
    r, v, mask, lengths = random_batch(2)
    gamma = 0.8
    adv, _ = gae(r, v, mask, gamma, lam=0.0)
    for b, L in enumerate(lengths.tolist()):
        for t in range(L):
            nv = v[b, t + 1].item() if t + 1 < L else 0.0  # terminal after the last real token
            assert math.isclose(adv[b, t].item(), r[b, t].item() + gamma * nv - v[b, t].item(), abs_tol=1e-6)


@pytest.mark.parametrize("bad", [dict(gamma=-0.1), dict(gamma=1.1), dict(lam=-0.5), dict(lam=2.0)])
def test_gae_rejects_out_of_range(bad):
    r, v, mask, _ = random_batch(0)
    with pytest.raises(ValueError, match="gamma|lam"):
        PPOConfig(**bad)


# one token per branch: (ratio, advantage) -> expected loss -min(rA, clip(r)A) with eps = 0.2
CASES = [
    (1.5, 2.0, -1.2 * 2.0, True),     # A > 0, ratio above 1+eps: clipped at 1.2
    (0.5, 2.0, -0.5 * 2.0, False),    # A > 0, ratio below 1-eps: unclipped (the smaller) is used
    (0.5, -1.0, -(0.8 * -1.0), True),  # A < 0, ratio below 1-eps: clipped at 0.8
    (1.5, -1.0, -(1.5 * -1.0), False),  # A < 0, ratio above 1+eps: unclipped (pessimistic)
    (1.1, 3.0, -1.1 * 3.0, False),    # inside the trust region
]


@pytest.mark.parametrize("ratio,adv,expected,clipped", CASES)
def test_clipped_policy_loss_hand_cases(ratio, adv, expected, clipped):
    old = torch.tensor([[-1.0]])
    new = (old + math.log(ratio)).requires_grad_(True)
    out = clipped_policy_loss(new, old, torch.tensor([[adv]]), torch.ones(1, 1), clip_eps=0.2)
    assert math.isclose(out.loss.item(), expected, rel_tol=1e-5)
    assert out.clipfrac.item() == float(clipped)
    out.loss.backward()
    # the clipped branch is flat: no gradient; otherwise d/dlogp (-rA) = -rA
    expected_grad = 0.0 if clipped else -ratio * adv
    assert math.isclose(new.grad.item(), expected_grad, abs_tol=1e-5)


def test_clipped_policy_loss_masks_padding():
    old = torch.zeros(2, 3)
    new = torch.tensor([[0.1, 0.2, 5.0], [0.0, 9.0, 9.0]])
    adv = torch.ones(2, 3)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    out = clipped_policy_loss(new, old, adv, mask)
    assert (out.per_token[mask == 0] == 0).all()
    expected = -(math.exp(0.1) + min(math.exp(0.2), 1.2) + 1.0) / 3
    assert math.isclose(out.loss.item(), expected, rel_tol=1e-6)


def test_clipped_value_loss_hand_cases():
    old = torch.tensor([[0.0, 0.0, 0.0]])
    new = torch.tensor([[1.0, 0.1, -1.0]])
    ret = torch.tensor([[0.0, 1.0, -2.0]])
    out = clipped_value_loss(new, old, ret, torch.ones(1, 3), clip_eps=0.2)
    # token 0: unclipped err 1.0, clipped (0.2-0)^2 = 0.04 -> max 1.0 (unclipped)
    # token 1: inside the clip range: (0.1-1)^2 = 0.81 both
    # token 2: unclipped (-1+2)^2 = 1, clipped (-0.2+2)^2 = 3.24 -> 3.24 (clipped)
    expected = 0.5 * torch.tensor([1.0, 0.81, 3.24])
    assert torch.allclose(out.per_token[0], expected, atol=1e-6)
    assert math.isclose(out.clipfrac.item(), 1 / 3, rel_tol=1e-6)


def test_ptx_zero_is_exactly_ppo_loss_and_positive_adds_lm_loss(random_lm):
    ppo = torch.tensor(0.123456789)
    blocks = torch.randint(1, 11, (3, 8), generator=torch.Generator().manual_seed(0))
    nll = lm_loss(random_lm, blocks)
    assert torch.equal(ppo_ptx_loss(ppo, nll, 0.0).loss, ppo)
    assert math.isclose(ppo_ptx_loss(ppo, nll, 0.5).loss.item(), ppo.item() + 0.5 * nll.item(), rel_tol=1e-6)
    # lm_loss is the mean NLL that HF's own loss computes
    hf = random_lm(input_ids=blocks, labels=blocks).loss
    assert math.isclose(nll.item(), hf.item(), rel_tol=1e-5)


def test_kl_controller_fixed_and_adaptive():
    fixed = KLController(0.1)
    assert fixed.update(100.0, 64) == 0.1
    ctl = KLController(0.1, adaptive=True, target=6.0, horizon=100)
    assert math.isclose(ctl.update(12.0, 10), 0.1 * (1 + 0.2 * 10 / 100))  # error clipped at +0.2
    assert math.isclose(ctl.update(5.7, 10), 0.1 * 1.02 * (1 - 0.05 * 0.1))  # below target: falls
    with pytest.raises(ValueError, match="beta"):
        KLController(-0.1)
    with pytest.raises(ValueError, match="beta"):
        PPOConfig(beta=-0.01)


# ------------------------------- the loop on a toy problem ----------------------------------

def toy_setup(random_lm):
    torch.manual_seed(0)
    policy = copy.deepcopy(random_lm).train()
    reference = frozen_copy(random_lm)
    value = scalar_head_from_lm(random_lm)
    prompts = [[1 + (i % 9), 1 + ((3 * i) % 9)] for i in range(16)]  # token-id prompts
    return policy, reference, value, ToyTokenizer(), prompts


def reward_token_3(rollout):
    """Toy task: 1 if the first response token is 'c' (id 3)."""
    return (rollout.response_ids[:, 0] == 3).float()


@torch.no_grad()
def prob_token_3(model, prompts):
    """Exact mean probability of id 3 as the first response token, over the prompts."""
    ids = torch.tensor(prompts)
    return model(input_ids=ids).logits[:, -1].softmax(-1)[:, 3].mean().item()


def test_ppo_raises_objective_and_only_the_policy_changes(random_lm):
    policy, reference, value, tok, prompts = toy_setup(random_lm)
    ref_state = {k: v.clone() for k, v in reference.state_dict().items()}
    pol_state = {k: v.clone() for k, v in policy.state_dict().items()}
    before = prob_token_3(policy, prompts)
    cfg = PPOConfig(iterations=6, batch_size=16, minibatch_size=8, max_new_tokens=3, max_prompt_tokens=None,
                    lr=3e-2, value_lr=1e-2, beta=0.0, ppo_epochs=2)
    hist = train_ppo(cfg, policy, reference, value, tok, prompts, reward_token_3, progress=False)
    after = prob_token_3(policy, prompts)
    assert after > before + 0.2, (before, after)  # the exact expected reward rose
    assert all(torch.equal(v, ref_state[k]) for k, v in reference.state_dict().items())
    assert any(not torch.equal(v, pol_state[k]) for k, v in policy.state_dict().items())
    for key in ("reward", "gold", "kl", "entropy", "clipfrac", "value_loss", "ptx_loss", "approx_kl"):
        assert len(hist[key]) == cfg.iterations and all(math.isfinite(x) for x in hist[key])
    assert hist["rm_queries"][-1] == cfg.iterations * cfg.batch_size


def scored_batch(policy, reference, value, tok, prompts, cfg):
    batch = make_rollout(policy, reference, value, tok, prompts, cfg, torch.Generator().manual_seed(0))
    return score_batch(batch, reward_token_3(batch.rollout), cfg.beta, cfg)


def surrogate(policy, batch):
    from rlhf_edu.ppo import response_logprobs_masked
    with torch.no_grad():
        lp = response_logprobs_masked(policy, batch.input_ids, batch.attention_mask, batch.prompt_length,
                                      batch.response_mask)
        return -clipped_policy_loss(lp, batch.logprobs, batch.advantages, batch.response_mask).loss.item()


def test_one_ppo_step_raises_the_surrogate_objective(random_lm):
    policy, reference, value, tok, prompts = toy_setup(random_lm)
    cfg = PPOConfig(batch_size=16, minibatch_size=16, ppo_epochs=1, max_new_tokens=3, max_prompt_tokens=None,
                    lr=1e-2, beta=0.1)
    batch = scored_batch(policy, reference, value, tok, prompts, cfg)
    before = surrogate(policy, batch)
    assert abs(before) < 1e-5  # ratio 1 and whitened advantages: the surrogate starts at 0
    opt = torch.optim.SGD(list(policy.parameters()) + list(value.parameters()), lr=1e-2)
    ppo_update(policy, value, opt, batch, cfg, generator=torch.Generator().manual_seed(0))
    assert surrogate(policy, batch) > before + 1e-4


def test_micro_batches_give_the_same_update(random_lm):
    policy, reference, value, tok, prompts = toy_setup(random_lm)
    cfg = PPOConfig(batch_size=16, minibatch_size=8, ppo_epochs=1, max_new_tokens=3, max_prompt_tokens=None)
    batch = scored_batch(policy, reference, value, tok, prompts, cfg)
    results = []
    for micro in (None, 2):
        p, v = copy.deepcopy(policy), copy.deepcopy(value)
        opt = torch.optim.SGD(list(p.parameters()) + list(v.parameters()), lr=0.1)
        ppo_update(p, v, opt, batch, cfg.with_(micro_batch_size=micro, max_grad_norm=1e9),
                   generator=torch.Generator().manual_seed(0))
        results.append(torch.cat([x.flatten() for x in p.parameters()]))
    assert torch.allclose(results[0], results[1], atol=1e-6)


def test_ptx_term_lowers_lm_loss(random_lm):
    policy, reference, value, tok, prompts = toy_setup(random_lm)
    blocks = ptx_blocks(tok, ["abcabcabc.", "abcabc."] * 20, block_tokens=8)
    assert blocks.shape[1] == 8 and (blocks[:, 0] > 0).any()
    before = lm_loss(policy, blocks).item()
    cfg = PPOConfig(iterations=3, batch_size=16, minibatch_size=8, max_new_tokens=3, max_prompt_tokens=None,
                    lr=1e-2, ptx_coef=5.0, ptx_batch_size=8)
    hist = train_ppo(cfg, policy, reference, value, tok, prompts, reward_token_3, ptx_data=blocks,
                     heldout=blocks, progress=False)
    assert lm_loss(policy, blocks).item() < before - 0.1
    assert hist["eval_iteration"] == [0, 3] and hist["heldout_lm_loss"][-1] < hist["heldout_lm_loss"][0]
    with pytest.raises(ValueError, match="ptx_data"):
        train_ppo(cfg, policy, reference, value, tok, prompts, reward_token_3, progress=False)


def test_bad_reward_shape_and_long_prompt_raise(random_lm):
    policy, reference, value, tok, prompts = toy_setup(random_lm)
    cfg = PPOConfig(batch_size=16, minibatch_size=8, max_new_tokens=3, max_prompt_tokens=None)
    batch = make_rollout(policy, reference, value, tok, prompts, cfg)
    with pytest.raises(ValueError, match="reward"):
        score_batch(batch, torch.zeros(16, 2), 0.1, cfg)
    with pytest.raises(ValueError, match="reward"):
        score_batch(batch, torch.zeros(15), 0.1, cfg)
    long_prompts = [[1] * 31] * 16  # 31 + 3 > n_positions = 32
    with pytest.raises(ValueError, match="context"):
        make_rollout(policy, reference, value, tok, long_prompts, cfg)


def test_reused_sampler_logprobs_match_the_rescored_ones(random_lm):
    policy, reference, value, tok, prompts = toy_setup(random_lm)
    cfg = PPOConfig(batch_size=16, minibatch_size=8, max_new_tokens=4, max_prompt_tokens=None)
    rescored = make_rollout(policy, reference, value, tok, prompts, cfg, torch.Generator().manual_seed(0))
    reused = make_rollout(policy, reference, value, tok, prompts, cfg.with_(reuse_sampler_logprobs=True),
                          torch.Generator().manual_seed(0))
    assert torch.equal(rescored.input_ids, reused.input_ids)  # same samples
    assert torch.equal(reused.logprobs, reused.rollout.logprobs * reused.response_mask)  # no second pass
    assert torch.allclose(reused.logprobs, rescored.logprobs, atol=1e-5)  # a full forward pass agrees
