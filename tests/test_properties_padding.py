"""Padding invariance (issue 9, Reliability): extra pad positions never change a masked result.

Every masked function gets the same real entries twice: once as is, once with every mask-0 entry
replaced by garbage (huge values, +-inf, NaN) and with extra mask-0 columns of garbage appended
on the right. The results on the real entries must be identical (``0 * inf = NaN`` is the classic
way such garbage leaks, so this needs ``torch.where``, not multiplication by the mask).

The model-level check adds extra right padding (and, for left-padded prompts, extra left padding)
to a real batch for the shipped tiny model and compares sequence log-probs (atol 1e-5 and the
measured differences are far smaller: the padded positions are masked out of attention).

Settings as in ``tests/test_properties.py``: derandomised, no database, no deadline.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from rlhf_edu import divergences as dv
from rlhf_edu import dpo
from rlhf_edu import logprobs as lp
from rlhf_edu import ppo
from rlhf_edu import rewards as rw

PROPS = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
MODEL = settings(PROPS, max_examples=6)

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
dtypes = st.sampled_from(DTYPES)


def garbage_values(dtype):
    big = torch.finfo(dtype).max
    return st.sampled_from([big, -big, 1e4, -1e4, math.inf, -math.inf, math.nan])


@st.composite
def padded(draw, n_arrays: int, dtype, min_real: int = 1, bound: float = 50.0, lengths_prefix: bool = False):
    """(clean, dirty) pairs of (B, T) arrays plus (mask, dirty_mask).

    ``clean`` holds real values where mask is 1 and 0 elsewhere; ``dirty`` has the same real
    values, garbage where mask is 0, and 1-3 extra garbage columns (mask 0) on the right.
    ``lengths_prefix``: each row's mask is a prefix of ones (response layout); otherwise any
    pattern with at least ``min_real`` ones per row.
    """
    B, T = draw(st.integers(1, 3)), draw(st.integers(max(1, min_real), 6))
    if lengths_prefix:
        lengths = draw(st.lists(st.integers(min_real, T), min_size=B, max_size=B))
        mask = (torch.arange(T)[None] < torch.tensor(lengths)[:, None]).long()
    else:
        mask = torch.tensor(draw(hnp.arrays(np.int64, (B, T), elements=st.integers(0, 1))))
        for b in range(B):  # at least min_real ones per row
            mask[b, :min_real] = 1
    extra = draw(st.integers(1, 3))
    dirty_mask = torch.cat([mask, torch.zeros(B, extra, dtype=mask.dtype)], 1)
    garbage = garbage_values(dtype)
    clean, dirty = [], []
    for _ in range(n_arrays):
        x = torch.tensor(draw(hnp.arrays(np.float64, (B, T), elements=st.floats(-bound, bound))), dtype=dtype)
        g = torch.tensor(draw(hnp.arrays(np.float64, (B, T + extra), elements=garbage)), dtype=dtype)
        d = g.clone()
        d[:, :T] = torch.where(mask.bool(), x, g[:, :T])
        clean.append(torch.where(mask.bool(), x, torch.zeros_like(x)))
        dirty.append(d)
    return clean, dirty, mask, dirty_mask


def same(a, b, what):
    """a and b equal (NaN-free), b possibly with extra trailing columns that must be ignored."""
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    if b.dim() == 2 and a.dim() == 2:
        b = b[:, : a.shape[1]]
    assert not torch.isnan(b).any(), f"{what}: NaN leaked from padding: {b}"
    assert torch.equal(a, b) or torch.allclose(a.double(), b.double(), rtol=1e-6, atol=1e-6), \
        f"{what}: {a} != {b}"


# ------------------------------------------------------------------------------- logprobs.py
@PROPS
@given(dtype=dtypes, data=st.data())
def test_masked_reductions_ignore_padding(dtype, data):
    (x,), (xd,), m, md = data.draw(padded(1, dtype, min_real=2))
    same(lp.masked_sum(x, m), lp.masked_sum(xd, md), "masked_sum")
    same(lp.masked_sum(x, m, dim=-1), lp.masked_sum(xd, md, dim=-1), "masked_sum(dim)")
    same(lp.masked_mean(x, m), lp.masked_mean(xd, md), "masked_mean")
    same(lp.masked_mean(x, m, dim=-1), lp.masked_mean(xd, md, dim=-1), "masked_mean(dim)")
    same(lp.masked_var(x, m), lp.masked_var(xd, md), "masked_var")
    w, wd = lp.masked_whiten(x, m), lp.masked_whiten(xd, md)
    same(w[m.bool()], wd[:, : m.shape[1]][m.bool()], "masked_whiten")
    for red in ("sum", "mean"):
        same(lp.sequence_logprob(x, m, red), lp.sequence_logprob(xd, md, red), f"sequence_logprob {red}")
    same(dpo.token_mean_nll(x, m).loss, dpo.token_mean_nll(xd, md).loss, "token_mean_nll")
    # and the reductions agree with float64 arithmetic on the selected entries
    sel = x.double()[m.bool()]
    tol = 8 * torch.finfo(dtype).eps * (1 + sel.abs().sum())
    assert abs(float(lp.masked_mean(x, m)) - float(sel.mean())) <= tol
    assert abs(float(lp.masked_var(x, m)) - float(sel.var())) <= 64 * torch.finfo(dtype).eps * (1 + sel.abs().max()) ** 2


# ---------------------------------------------------------------------------- divergences.py
@PROPS
@given(dtype=dtypes, data=st.data())
def test_sequence_kl_estimates_ignore_padding(dtype, data):
    (a, b, e), (ad, bd, ed), m, md = data.draw(padded(3, dtype))
    clean = dv.sequence_kl_estimates(a, b, m, per_token_exact=e)
    dirty = dv.sequence_kl_estimates(ad, bd, md, per_token_exact=ed)
    for name in ("k1", "k2", "k3", "exact"):
        same(getattr(clean, name), getattr(dirty, name), f"sequence_kl_estimates.{name}")
    same(dv.sampled_log_ratio(a, b, m), dv.sampled_log_ratio(ad, bd, md), "sampled_log_ratio")


@PROPS
@given(dtype=dtypes, data=st.data())
def test_per_token_kl_and_kl_estimates_from_logits_ignore_padding(dtype, data):
    B, T, V = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 4)), data.draw(st.integers(2, 5))
    extra = data.draw(st.integers(1, 3))
    mask = torch.tensor(data.draw(hnp.arrays(np.int64, (B, T), elements=st.integers(0, 1))))
    zp = torch.tensor(data.draw(hnp.arrays(np.float64, (B, T, V), elements=st.floats(-30, 30))), dtype=dtype)
    zq = torch.tensor(data.draw(hnp.arrays(np.float64, (B, T, V), elements=st.floats(-30, 30))), dtype=dtype)
    tok = torch.tensor(data.draw(hnp.arrays(np.int64, (B, T), elements=st.integers(0, V - 1))))
    g = garbage_values(dtype)
    dirty = []
    for z in (zp, zq):
        junk = torch.tensor(data.draw(hnp.arrays(np.float64, (B, T + extra, V), elements=g)), dtype=dtype)
        junk[:, :T] = torch.where(mask.bool()[..., None], z, junk[:, :T])
        dirty.append(junk)
    tok_d = torch.cat([tok, torch.tensor(data.draw(hnp.arrays(np.int64, (B, extra), elements=st.integers(0, V - 1))))], 1)
    md = torch.cat([mask, torch.zeros(B, extra, dtype=mask.dtype)], 1)
    clean_kl = dv.per_token_kl(zp, zq, mask)
    dirty_kl = dv.per_token_kl(*dirty, md)
    same(clean_kl, dirty_kl, "per_token_kl")
    assert (dirty_kl[:, T:] == 0).all() and (dirty_kl[:, :T][~mask.bool()] == 0).all()
    ce, de = dv.kl_estimates_from_logits(zp, zq, tok, mask), dv.kl_estimates_from_logits(*dirty, tok_d, md)
    for name in ("k1", "k2", "k3", "exact"):
        same(getattr(ce, name), getattr(de, name), f"kl_estimates_from_logits.{name}")


# ------------------------------------------------------------------------- ppo.py, rewards.py
@PROPS
@given(dtype=dtypes, data=st.data(), gamma=st.floats(0, 1), lam=st.floats(0, 1))
def test_gae_ignores_padding(dtype, data, gamma, lam):
    (r, v), (rd, vd), m, md = data.draw(padded(2, dtype, lengths_prefix=True))
    adv, ret = ppo.gae(r, v, m, gamma, lam)
    adv_d, ret_d = ppo.gae(rd, vd, md, gamma, lam)
    same(adv, adv_d, "gae advantages")
    same(ret, ret_d, "gae returns")
    assert (adv_d[md == 0] == 0).all() and (ret_d[md == 0] == 0).all()


@PROPS
@given(dtype=dtypes, data=st.data(), clip=st.sampled_from([0.1, 0.2]))
def test_clipped_losses_ignore_padding(dtype, data, clip):
    (new, old, adv), (new_d, old_d, adv_d), m, md = data.draw(padded(3, dtype, lengths_prefix=True, bound=5.0))
    a, b = ppo.clipped_policy_loss(new, old, adv, m, clip), ppo.clipped_policy_loss(new_d, old_d, adv_d, md, clip)
    for name in ("loss", "clipfrac", "approx_kl"):
        same(getattr(a, name), getattr(b, name), f"clipped_policy_loss.{name}")
    same(a.per_token, b.per_token, "clipped_policy_loss.per_token")
    assert (b.per_token[md == 0] == 0).all()
    (vals, oldv, ret), (vals_d, oldv_d, ret_d), m2, md2 = data.draw(padded(3, dtype, lengths_prefix=True))
    a, b = ppo.clipped_value_loss(vals, oldv, ret, m2, clip), ppo.clipped_value_loss(vals_d, oldv_d, ret_d, md2, clip)
    for name in ("loss", "clipfrac"):
        same(getattr(a, name), getattr(b, name), f"clipped_value_loss.{name}")
    same(a.per_token, b.per_token, "clipped_value_loss.per_token")


@PROPS
@given(data=st.data(), big=st.sampled_from([1e4, -1e4, 3e38]))
def test_policy_loss_gradient_is_finite_with_huge_padding(data, big):
    """Finite but huge garbage log-probs in padding (e^1e4 = inf) give no NaN gradient on real tokens."""
    B, R = data.draw(st.integers(1, 3)), data.draw(st.integers(2, 5))
    new = torch.tensor(data.draw(hnp.arrays(np.float64, (B, R), elements=st.floats(-5, 0))), dtype=torch.float32)
    old = torch.tensor(data.draw(hnp.arrays(np.float64, (B, R), elements=st.floats(-5, 0))), dtype=torch.float32)
    adv = torch.tensor(data.draw(hnp.arrays(np.float64, (B, R), elements=st.floats(-5, 5))), dtype=torch.float32)
    mask = torch.ones(B, R)
    mask[:, -1] = 0
    new_d = new.clone()
    new_d[:, -1] = big
    new_d.requires_grad_(True)
    new.requires_grad_(True)
    ppo.clipped_policy_loss(new, old, adv, mask).loss.backward()
    ppo.clipped_policy_loss(new_d, old, adv, mask).loss.backward()
    assert torch.isfinite(new_d.grad).all()
    assert torch.allclose(new_d.grad, new.grad)


@PROPS
@given(dtype=dtypes, data=st.data(), beta=st.sampled_from([0.0, 0.1]), est=st.sampled_from(["k1", "k3"]))
def test_kl_shaped_rewards_and_token_scores_ignore_padding(dtype, data, beta, est):
    (s, a, b), (sd, ad, bd), m, md = data.draw(padded(3, dtype, lengths_prefix=True))
    clean, dirty = rw.kl_shaped_rewards(s, a, b, m, beta, est), rw.kl_shaped_rewards(sd, ad, bd, md, beta, est)
    for name in ("rewards", "kl", "scores"):
        same(getattr(clean, name), getattr(dirty, name), f"kl_shaped_rewards.{name}")
        assert (getattr(dirty, name)[md == 0] == 0).all()
    scores = torch.tensor(data.draw(hnp.arrays(np.float64, m.shape[0], elements=st.floats(-1e4, 1e4))), dtype=dtype)
    same(rw.sequence_to_token_scores(scores, m), rw.sequence_to_token_scores(scores, md), "sequence_to_token_scores")


# ------------------------------------------------------------------------ the tiny model
@pytest.fixture(scope="module")
def model(tiny_scale):
    from rlhf_edu.models import load_base_model

    return load_base_model(tiny_scale, device="cpu").eval()


PROMPTS = ["The movie", "A slow, thoughtful drama about two brothers", "It"]
RESPONSES = ["is a triumph.", "never quite works", "was fun, and the cast is great!"]


@MODEL
@given(extra=st.integers(1, 4), junk=st.lists(st.integers(0, 8000), min_size=4, max_size=4))
def test_batch_sequence_logprob_ignores_extra_right_padding(model, tiny_tokenizer, extra, junk):
    from rlhf_edu.data import tokenize_prompt_response

    batch = tokenize_prompt_response(tiny_tokenizer, PROMPTS, RESPONSES)
    B = batch["input_ids"].shape[0]
    ids = torch.tensor(junk[:extra]).repeat(B, 1) % len(tiny_tokenizer)  # garbage token ids, masked out
    padded_batch = {"input_ids": torch.cat([batch["input_ids"], ids], 1),
                    "attention_mask": torch.cat([batch["attention_mask"], torch.zeros(B, extra, dtype=torch.long)], 1),
                    "response_mask": torch.cat([batch["response_mask"], torch.zeros(B, extra, dtype=torch.long)], 1)}
    with torch.no_grad():
        for red in ("sum", "mean"):
            a = lp.batch_sequence_logprob(model, batch, red)
            b = lp.batch_sequence_logprob(model, padded_batch, red)
            assert torch.allclose(a, b, atol=1e-5, rtol=0), (red, (a - b).abs().max())


@MODEL
@given(left=st.integers(0, 4), right=st.integers(0, 3), junk=st.lists(st.integers(0, 8000), min_size=7, max_size=7))
def test_response_logprobs_ignore_extra_left_and_right_padding(model, tiny_tokenizer, left, right, junk):
    """Rollout layout: left-padded prompts (P columns), right-padded responses (R columns)."""
    pad = tiny_tokenizer.pad_token_id if tiny_tokenizer.pad_token_id is not None else tiny_tokenizer.eos_token_id
    p_ids = [tiny_tokenizer(p, add_special_tokens=False)["input_ids"] for p in PROMPTS]
    r_ids = [tiny_tokenizer(" " + r, add_special_tokens=False)["input_ids"] for r in RESPONSES]
    P, R = max(map(len, p_ids)), max(map(len, r_ids))
    rows, attn, rmask = [], [], []
    for p, r in zip(p_ids, r_ids):
        rows.append([pad] * (P - len(p)) + p + r + [pad] * (R - len(r)))
        attn.append([0] * (P - len(p)) + [1] * (len(p) + len(r)) + [0] * (R - len(r)))
        rmask.append([1] * len(r) + [0] * (R - len(r)))
    ids, attn, rmask = torch.tensor(rows), torch.tensor(attn), torch.tensor(rmask)
    B = ids.shape[0]
    vocab = len(tiny_tokenizer)
    lj = (torch.tensor(junk[:left], dtype=torch.long) % vocab).repeat(B, 1)
    rj = (torch.tensor(junk[left:left + right], dtype=torch.long) % vocab).repeat(B, 1)
    ids2 = torch.cat([lj, ids, rj], 1)
    attn2 = torch.cat([torch.zeros(B, left, dtype=torch.long), attn, torch.zeros(B, right, dtype=torch.long)], 1)
    with torch.no_grad():
        a = lp.response_logprobs(model, ids, attn, P)  # (B, R)
        b = lp.response_logprobs(model, ids2, attn2, P + left)[:, :R]  # (B, R)
    sa = lp.sequence_logprob(a, rmask, "sum")
    sb = lp.sequence_logprob(b, rmask, "sum")
    assert torch.allclose(sa, sb, atol=1e-5, rtol=0), (sa - sb).abs().max()
    assert torch.allclose(a[rmask.bool()], b[rmask.bool()], atol=1e-5, rtol=0)
