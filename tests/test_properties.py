"""Property-based tests (hypothesis) for every loss and estimator of rlhf_edu (issue 9, Reliability).

Three kinds of property, each checked against something independent of the code under test
(scipy, mpmath, numpy float64 closed forms, brute-force loops):

* **finite outputs for finite inputs**, including extreme values (+-1e4 logits, log-probs and
  rewards) and every floating dtype (float16, bfloat16, float32, float64). A low-precision result
  is compared with the float64 reference evaluated on the *same* (already rounded) inputs, with a
  tolerance of a few units of the dtype's epsilon times the size of the numbers involved.
  Where the exact answer itself is larger than the output dtype can hold (e.g. k3 = e^x - 1 - x
  at x = 1e4), +-inf is the correct IEEE result; the test then asks for an infinity of the right
  sign, never a NaN (see :func:`check_finite_or_overflow`). That is not a weakened property: no
  finite number is a better answer.
* **invariances and identities**: shifting rewards leaves Bradley-Terry and DPO unchanged, logits
  are defined up to a constant, baselines are shift-equivariant, swap identities, ...
* **padding invariance** lives in ``tests/test_properties_padding.py``.

Every test uses :data:`PROPS`: derandomised (the same examples on every run, so CI is
reproducible), no example database, no deadline, a modest number of examples.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.special import log_softmax as np_log_softmax
from scipy.special import logsumexp as np_logsumexp

from rlhf_edu import bradley_terry as bt
from rlhf_edu import divergences as dv
from rlhf_edu import dpo
from rlhf_edu import fdpg
from rlhf_edu import logprobs as lp
from rlhf_edu import ppo
from rlhf_edu import reward_collapse as rc
from rlhf_edu import rewards as rw

PROPS = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
FEW = settings(PROPS, max_examples=10)

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
LOW = {torch.float16, torch.bfloat16}
BIG = 1e4
DIVS = ("forward_kl", "reverse_kl", "tv", "js")
dtypes = st.sampled_from(DTYPES)


def eps(dtype: torch.dtype) -> float:
    return torch.finfo(dtype).eps


def values(bound: float = BIG):
    """Finite floats in [-bound, bound], with the extremes and 0 drawn often."""
    return st.one_of(st.sampled_from([-bound, bound, 0.0]),
                     st.floats(-bound, bound, allow_nan=False, allow_infinity=False))


def vec(n=None, bound: float = BIG, lo: int = 1, hi: int = 6):
    """A float64 numpy vector of length n (or lo..hi)."""
    shape = n if n is not None else st.integers(lo, hi)
    return hnp.arrays(np.float64, shape, elements=values(bound))


def arr(shape, bound: float = BIG):
    return hnp.arrays(np.float64, shape, elements=values(bound))


def q(a, dtype):
    """``a`` as a tensor of ``dtype`` and the same (rounded) values in float64."""
    t = torch.as_tensor(np.asarray(a, dtype=np.float64)).to(dtype)
    return t, t.double()


def check_close(out, ref, dtype, scale, k: float = 16.0, what: str = ""):
    """|out - ref| <= k * eps(dtype) * scale, elementwise; out must be finite."""
    out = torch.as_tensor(out).double()
    ref = torch.as_tensor(ref, dtype=torch.float64)
    assert torch.isfinite(out).all(), f"{what}: non-finite output {out} (reference {ref})"
    # (plus the smallest normal number: results below it may underflow to 0 or a subnormal)
    tol = k * eps(dtype) * torch.as_tensor(scale, dtype=torch.float64) + torch.finfo(dtype).tiny
    err = (out - ref).abs()
    assert (err <= tol).all(), f"{what}: {dtype} error {err.max():.3g} > tol {tol.min():.3g}; out {out}, ref {ref}"


def check_finite_or_overflow(out, ref, what: str = ""):
    """Finite where the exact value fits the output dtype; +-inf (never NaN) where it does not."""
    out = torch.as_tensor(out)
    ref = torch.as_tensor(ref, dtype=torch.float64)
    assert not torch.isnan(out).any(), f"{what}: NaN output {out} for reference {ref}"
    fits = ref.abs() < 0.5 * torch.finfo(out.dtype).max
    assert torch.isfinite(out[fits]).all(), f"{what}: non-finite output {out} where the exact {ref} fits {out.dtype}"
    big = ~fits
    if big.any():
        o, e = out.double()[big], ref[big]
        same_sign = torch.sign(o) == torch.sign(e)
        ok = same_sign & (torch.isinf(o) | (o.abs() >= 0.25 * torch.finfo(out.dtype).max))
        assert ok.all(), f"{what}: expected an infinity of the exact value's sign, got {o} for {e}"


def f64(x) -> torch.Tensor:
    """A float64 tensor (``torch.tensor`` of Python floats would round to float32)."""
    return torch.tensor(x, dtype=torch.float64)


def log1pexp(x: np.ndarray) -> np.ndarray:
    """log(1 + e^x) in float64, overflow-free."""
    return np.logaddexp(0.0, x)


# ================================================================================================
# bradley_terry.py
# ================================================================================================
@PROPS
@given(dtype=dtypes, data=st.data())
def test_bt_family_finite_and_matches_float64(dtype, data):
    n = data.draw(st.integers(1, 6))
    rw_, rl_ = data.draw(vec(n)), data.draw(vec(n))
    m = data.draw(st.floats(-100, 100))
    (a, a64), (b, b64) = q(rw_, dtype), q(rl_, dtype)
    d = (a64 - b64).numpy()
    scale = 1 + a64.abs() + b64.abs()

    p = bt.preference_probability(a, b)
    check_close(p, 1 / (1 + np.exp(-np.clip(d, -700, 700))), dtype, 1.0, what="preference_probability")
    assert ((p >= 0) & (p <= 1)).all()

    _out = bt.bt_loss(a, b)

    losses, diag = _out.losses, _out.diagnostics
    check_close(losses, log1pexp(-d), dtype, scale, what="bt_loss")
    assert (losses >= 0).all()
    assert all(torch.isfinite(v).all() for v in diag.values())

    ml = bt.margin_loss(a, b, m).losses
    m_q = float(torch.tensor(m, dtype=dtype))
    check_close(ml, log1pexp(-(d - m_q)), dtype, scale + abs(m_q), what="margin_loss")

    coef = data.draw(st.sampled_from([0.0, 1e-3, 0.1, 1.0]))
    pen = bt.centring_penalty(a, b, coef).losses
    exact = coef * (a64 + b64) ** 2
    check_finite_or_overflow(pen, exact, "centring_penalty")
    fits = exact < 0.5 * torch.finfo(pen.dtype).max
    check_close(pen[fits], exact[fits], dtype, 4 * (exact[fits] + 1), what="centring_penalty")

    acc = bt.pairwise_accuracy(a, b)
    assert acc == pytest.approx(float(((d > 0) + 0.5 * (d == 0)).mean()))


@PROPS
@given(dtype=dtypes, r=vec(bound=BIG), c=values(BIG))
def test_normalise_rewards_finite_and_shift_equivariant(dtype, r, c):
    x, x64 = q(r, dtype)
    out, off = bt.normalise_rewards(x)
    assert torch.isfinite(out).all() and torch.isfinite(off)
    check_close(out, x64 - x64.mean(), dtype, 2 * (1 + x64.abs().max()), what="normalise_rewards")
    # shift-equivariance: r + c has the same normalised rewards and an offset moved by c
    y64 = x64 + c
    out2, off2 = bt.normalise_rewards(y64)
    out1, off1 = bt.normalise_rewards(x64)
    tol = 1e-12 * (1 + abs(c) + x64.abs().max())
    assert torch.allclose(out2, out1, atol=float(tol), rtol=0)
    assert float(off2 - off1) == pytest.approx(c, abs=float(tol))


@PROPS
@given(dtype=dtypes, data=st.data())
def test_bt_losses_invariant_to_shifting_both_rewards(dtype, data):
    n = data.draw(st.integers(1, 6))
    (a, _), (b, _) = q(data.draw(vec(n)), dtype), q(data.draw(vec(n)), dtype)
    c = data.draw(values(BIG))
    m = data.draw(st.floats(-10, 10))
    a2, b2 = a + c, b + c  # rounding of the shifted rewards is the only allowed change
    scale = 4 * (1 + a.double().abs() + b.double().abs() + abs(c))
    check_close(bt.bt_loss(a2, b2)[0], bt.bt_loss(a, b)[0].double(), dtype, scale, what="bt_loss shift")
    check_close(bt.margin_loss(a2, b2, m)[0], bt.margin_loss(a, b, m)[0].double(), dtype, scale, what="margin shift")
    check_close(bt.preference_probability(a2, b2), bt.preference_probability(a, b).double(), dtype, scale,
                what="preference_probability shift")


@PROPS
@given(r=hnp.arrays(np.int64, st.integers(1, 8), elements=st.integers(-1000, 1000)),
       s=hnp.arrays(np.int64, 8, elements=st.integers(-1000, 1000)), c=st.integers(-10**6, 10**6))
def test_accuracies_exactly_shift_invariant_and_swap_symmetric(r, s, c):
    # integer-valued float64 rewards: every shift is exact, so the discrete metrics must not move
    a = torch.tensor(r, dtype=torch.float64)
    b = torch.tensor(s[: len(r)], dtype=torch.float64)
    acc = bt.pairwise_accuracy(a, b)
    assert bt.pairwise_accuracy(a + c, b + c) == acc
    assert bt.pairwise_accuracy(b, a) == pytest.approx(1 - acc)
    ira = dpo.implicit_reward_accuracy(a, b)
    assert float(dpo.implicit_reward_accuracy(a + c, b + c)) == float(ira) == pytest.approx(acc)


@PROPS
@given(data=st.data())
def test_bt_swap_identities(data):
    n = data.draw(st.integers(1, 6))
    a = torch.tensor(data.draw(vec(n, bound=500)))
    b = torch.tensor(data.draw(vec(n, bound=500)))
    # -log s(d) + log s(-d) = -d;  s(d) + s(-d) = 1;  margin 0 is plain BT
    assert torch.allclose(bt.bt_loss(a, b)[0] - bt.bt_loss(b, a)[0], -(a - b), atol=1e-9, rtol=1e-12)
    assert torch.allclose(bt.preference_probability(a, b) + bt.preference_probability(b, a),
                          torch.ones_like(a), atol=1e-15)
    assert torch.equal(bt.margin_loss(a, b, 0.0)[0], bt.bt_loss(a, b)[0])


# ================================================================================================
# dpo.py
# ================================================================================================
def _dpo_inputs(data, dtype, bound=BIG):
    n = data.draw(st.integers(1, 5))
    return [q(data.draw(vec(n, bound=bound)), dtype) for _ in range(4)]


@PROPS
@given(dtype=dtypes, data=st.data(), beta=st.sampled_from([1e-3, 0.1, 1.0, 10.0]),
       alpha=st.sampled_from([0.0, 0.5, 2.0]))
def test_dpo_family_finite_and_matches_float64(dtype, data, beta, alpha):
    ins = _dpo_inputs(data, dtype)
    pc, pr, rcf, rr = (t for t, _ in ins)
    pc64, pr64, rc64, rr64 = (t64 for _, t64 in ins)
    h = ((pc64 - rc64) - (pr64 - rr64)).numpy()
    scale = 1 + beta * (pc64.abs() + pr64.abs() + rc64.abs() + rr64.abs())

    out = dpo.dpo_loss(pc, pr, rcf, rr, beta)
    check_close(out.losses, log1pexp(-beta * h), dtype, scale, what="dpo_loss")
    check_close(out.chosen_rewards, beta * (pc64 - rc64), dtype, scale, what="chosen_rewards")
    check_close(out.rejected_rewards, beta * (pr64 - rr64), dtype, scale, what="rejected_rewards")

    lengths = torch.tensor(data.draw(st.lists(st.integers(1, 50), min_size=len(h), max_size=len(h))))
    nll = dpo.length_normalised_nll(pc, lengths)
    check_close(nll, -pc64 / lengths, dtype, 1 + pc64.abs(), what="length_normalised_nll")
    out2 = dpo.dpo_nll_loss(pc, pr, rcf, rr, lengths, beta, alpha)
    check_close(out2.losses, log1pexp(-beta * h) - alpha * pc64.numpy() / lengths.numpy(), dtype,
                scale + alpha * pc64.abs(), what="dpo_nll_loss")

    ipo = dpo.ipo_loss(pc, pr, rcf, rr, beta)
    exact = (torch.tensor(h) - 1 / (2 * beta)) ** 2
    # the squared margin is up to (4e4 + 500)^2: it must not overflow a half-precision result
    check_close(ipo.losses, exact, dtype, 8 * (exact + 1) * (1 + 1 / (1 + exact.sqrt())) +
                8 * (exact.sqrt() + 1) * (pc64.abs() + pr64.abs() + rc64.abs() + rr64.abs()), what="ipo_loss")


@PROPS
@given(dtype=dtypes, data=st.data(), beta=st.sampled_from([1e-3, 0.1, 1.0, 10.0]), c=values(BIG))
def test_dpo_and_ipo_invariant_to_shifts(dtype, data, beta, c):
    """Adding c to both policy log-probs, to both reference log-probs, or to the policy and reference
    log-prob of the same response leaves the DPO and IPO losses unchanged (up to the rounding of
    the shifted inputs)."""
    ins = _dpo_inputs(data, dtype)
    pc, pr, rcf, rr = (t for t, _ in ins)
    mags = sum(t64.abs() for _, t64 in ins) + abs(c) + 1
    for loss_fn, k in ((dpo.dpo_loss, beta), (dpo.ipo_loss, None)):
        base = loss_fn(pc, pr, rcf, rr, beta).losses.double()
        for shifted in ((pc + c, pr + c, rcf, rr), (pc, pr, rcf + c, rr + c), (pc + c, pr, rcf + c, rr)):
            out = loss_fn(*shifted, beta).losses
            if k is not None:  # logistic loss: 1-Lipschitz in beta * h
                check_close(out, base, dtype, 8 * beta * mags, what=f"{loss_fn.__name__} shift")
            else:  # squared loss: Lipschitz constant 2 |h - 1/(2 beta)|
                check_close(out, base, dtype, 8 * mags * (2 * base.sqrt() + 8 * mags * eps(dtype) + 1),
                            what=f"{loss_fn.__name__} shift")


@PROPS
@given(data=st.data(), beta=st.floats(1e-3, 10.0))
def test_dpo_identities(data, beta):
    n = data.draw(st.integers(1, 5))
    pc, pr, rcf, rr = (torch.tensor(data.draw(vec(n, bound=1000))) for _ in range(4))
    out = dpo.dpo_loss(pc, pr, rcf, rr, beta)
    # DPO is the BT loss of the implicit rewards (Rafailov et al., eq. 7 from the BT model)
    assert torch.allclose(out.losses, bt.bt_loss(out.chosen_rewards, out.rejected_rewards)[0], rtol=1e-12, atol=1e-9)
    # swapping chosen and rejected: L(w, l) - L(l, w) = -beta h
    swapped = dpo.dpo_loss(pr, pc, rr, rcf, beta)
    h = (pc - rcf) - (pr - rr)
    assert torch.allclose(out.losses - swapped.losses, -beta * h, rtol=1e-9, atol=1e-7)
    # policy == reference: every loss is ln 2; IPO is 1/(4 beta^2)
    assert torch.allclose(dpo.dpo_loss(pc, pr, pc, pr, beta).losses, torch.full_like(pc, math.log(2)))
    assert torch.allclose(dpo.ipo_loss(pc, pr, pc, pr, beta).losses, torch.full_like(pc, 1 / (4 * beta**2)))
    assert torch.equal(dpo.dpo_nll_loss(pc, pr, rcf, rr, torch.ones(n), beta, 0.0).losses, out.losses)


# ================================================================================================
# divergences.py
# ================================================================================================
def _logits(data, V=None, bound=BIG, rows=None):
    V = V or data.draw(st.integers(2, 6))
    rows = rows or data.draw(st.integers(1, 3))
    return data.draw(arr((rows, V), bound)), V


def _kl_ref(zp: np.ndarray, zq: np.ndarray) -> np.ndarray:
    """Exact KL(softmax zp || softmax zq) per row, scipy float64."""
    lp_, lq_ = np_log_softmax(zp, -1), np_log_softmax(zq, -1)
    p = np.exp(lp_)
    return np.where(p > 0, p * (lp_ - lq_), 0.0).sum(-1)


@PROPS
@given(dtype=dtypes, data=st.data())
def test_kl_categorical_from_logits_finite_nonnegative_and_accurate(dtype, data):
    zp, V = _logits(data)
    zq, _ = _logits(data, V=V, rows=zp.shape[0])
    (a, a64), (b, b64) = q(zp, dtype), q(zq, dtype)
    out = dv.kl_categorical(p_logits=a, q_logits=b)
    ref = _kl_ref(a64.numpy(), b64.numpy())
    scale = V * (1 + a64.abs().amax(-1) + b64.abs().amax(-1))
    check_close(out, ref, dtype, scale, k=8, what="kl_categorical")
    assert (out.double() >= -8 * eps(dtype) * scale).all()


@PROPS
@given(data=st.data(), c=values(BIG), d=values(BIG))
def test_kl_categorical_invariant_to_logit_shift(data, c, d):
    zp, V = _logits(data, bound=100)
    zq, _ = _logits(data, V=V, rows=zp.shape[0], bound=100)
    a, b = torch.tensor(zp), torch.tensor(zq)
    base = dv.kl_categorical(p_logits=a, q_logits=b)
    shifted = dv.kl_categorical(p_logits=a + c, q_logits=b + d)
    tol = 64 * eps(torch.float64) * V * (abs(c) + abs(d) + 200)
    assert torch.allclose(shifted, base, atol=tol, rtol=0)
    # and the probability form agrees with the logit form
    assert torch.allclose(dv.kl_categorical(a.softmax(-1), b.softmax(-1)), base, atol=1e-9, rtol=1e-9)
    assert torch.equal(dv.kl_categorical(p_logits=a, q_logits=a), torch.zeros_like(base))


@PROPS
@given(dtype=dtypes, mu=st.tuples(values(BIG), values(BIG)),
       sig=st.tuples(st.floats(1e-2, 1e2), st.floats(1e-2, 1e2)))
def test_kl_gaussian_nonnegative_finite(dtype, mu, sig):
    (mp, mp64), (mq, mq64) = q([mu[0]], dtype), q([mu[1]], dtype)
    (sp, sp64), (sq, sq64) = q([sig[0]], dtype), q([sig[1]], dtype)
    out = dv.kl_gaussian(mp, sp, mq, sq)
    with mpmath.workdps(60):
        mpm = [mpmath.mpf(float(v)) for v in (mp64, sp64, mq64, sq64)]
        exact = float(mpmath.log(mpm[3] / mpm[1]) + (mpm[1] ** 2 + (mpm[0] - mpm[2]) ** 2) / (2 * mpm[3] ** 2) - 0.5)
    check_finite_or_overflow(out, [exact], "kl_gaussian")
    if abs(exact) < 0.5 * torch.finfo(out.dtype).max:
        check_close(out, [exact], dtype, 8 * (abs(exact) + 10), what="kl_gaussian")
    assert float(dv.kl_gaussian(mp, sp, mp, sp)) == 0.0


def _k3_exact(x: float) -> float:
    with mpmath.workdps(60):
        return float(mpmath.expm1(mpmath.mpf(x)) - mpmath.mpf(x))


@PROPS
@given(dtype=dtypes, x=vec(bound=BIG, hi=8), small=vec(bound=1.5, hi=8))
def test_k_estimators_never_nan_nonnegative_and_accurate(dtype, x, small):
    for raw in (x, small):
        t, t64 = q(raw, dtype)
        k1, k2, k3 = dv.k1(t), dv.k2(t), dv.k3(t)
        assert k1.dtype == k2.dtype == k3.dtype == dtype
        check_close(k1, -t64, dtype, 0.0 + 1e-300, what="k1")  # exact negation
        exact2 = 0.5 * t64**2
        check_finite_or_overflow(k2, exact2, "k2")
        exact3 = f64([_k3_exact(float(v)) for v in t64])
        check_finite_or_overflow(k3, exact3, "k3")
        assert (k2 >= 0).all() and (k3 >= 0).all(), "k2, k3 are never negative"
        fits = exact3 < 0.5 * torch.finfo(dtype).max
        # k3 is accurate to a few ulps *relative* to its value, even near 0 (the Taylor branch)
        check_close(k3[fits], exact3[fits], dtype, 8 * exact3[fits] + 1e-300, what="k3 relative")
        fits2 = exact2 < 0.5 * torch.finfo(dtype).max
        check_close(k2[fits2], exact2[fits2], dtype, 2 * exact2[fits2] + 1e-300, what="k2 relative")


@PROPS
@given(dtype=dtypes, data=st.data())
def test_per_token_kl_finite_nonnegative_matches_scipy(dtype, data):
    B, T, V = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 3)), data.draw(st.integers(2, 6))
    (a, a64), (b, b64) = q(data.draw(arr((B, T, V))), dtype), q(data.draw(arr((B, T, V))), dtype)
    out = dv.per_token_kl(a, b)
    # half inputs are upcast: the result is float32 (float64 for float64 input) and float32-accurate
    assert out.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    ref = _kl_ref(a64.numpy(), b64.numpy())
    scale = V * (1 + a64.abs().amax(-1) + b64.abs().amax(-1))
    check_close(out, ref, out.dtype, scale, k=8, what="per_token_kl")
    assert (out >= -8 * eps(out.dtype) * scale.to(out.dtype)).all()


@PROPS
@given(dtype=dtypes, data=st.data())
def test_kl_estimates_from_logits_dtype_and_unbiasedness(dtype, data):
    """Enumerating every token y with weight P(y) turns the sampled estimators into expectations:
    E_P[k1] = E_P[k3] = KL(P||Q) exactly (both unbiased), E_P[k2] >= 0."""
    V = data.draw(st.integers(2, 6))
    zp, zq = data.draw(arr((V,), bound=8.0)), data.draw(arr((V,), bound=8.0))
    (a, a64), (b, b64) = q(zp, dtype), q(zq, dtype)
    tokens = torch.arange(V)[:, None]  # (V, 1): one "sample" per token
    out = dv.kl_estimates_from_logits(a.expand(V, 1, V), b.expand(V, 1, V), tokens)
    want = torch.float64 if dtype == torch.float64 else torch.float32
    for name in ("k1", "k2", "k3", "exact"):
        assert getattr(out, name).dtype == want, f"{name}: {getattr(out, name).dtype}, expected {want}"
    kl = float(_kl_ref(a64.numpy()[None], b64.numpy()[None])[0])
    p = torch.softmax(a64, -1)
    check_close((p * out.k1.double()).sum(), kl, want, 64 * V, what="E_P[k1]")
    check_close((p * out.k3.double()).sum(), kl, want, 64 * V * math.exp(16), what="E_P[k3]")
    check_close(out.exact, torch.full((V,), kl, dtype=torch.float64), want, 64 * V, what="exact")
    assert (out.k2 >= 0).all() and (out.k3 >= 0).all()


def _probs(data, V, dtype, zero=True):
    z = torch.tensor(data.draw(arr((V,), bound=30.0)))
    if zero and data.draw(st.booleans()):
        z[data.draw(st.integers(0, V - 1))] = -math.inf  # an exact zero
    p = torch.softmax(z, -1).to(dtype)
    return p / p.sum()  # renormalised in the target dtype


@PROPS
@given(dtype=dtypes, data=st.data())
def test_f_divergences_never_nan_and_match_kl(dtype, data):
    V = data.draw(st.integers(2, 6))
    p, qq = _probs(data, V, dtype), _probs(data, V, dtype)
    p64, q64 = p.double(), qq.double()
    outs = {}
    for name in DIVS:
        out = dv.f_divergence(p, qq, name)
        assert not torch.isnan(out), name
        assert float(out) >= -1e-2 * (dtype in LOW) - 1e-6, name
        outs[name] = float(out)
    tv = 0.5 * float((p64 - q64).abs().sum())
    assert outs["tv"] == pytest.approx(tv, abs=32 * eps(dtype) * V)
    if dtype == torch.float64:
        assert outs["reverse_kl"] == pytest.approx(float(dv.kl_categorical(p, qq)), rel=1e-9, abs=1e-12)
        assert outs["forward_kl"] == pytest.approx(float(dv.kl_categorical(qq, p)), rel=1e-9, abs=1e-12)
        js = float(dv.f_divergence(qq, p, "js"))
        assert js == pytest.approx(outs["js"], rel=1e-9, abs=1e-12)  # symmetric
        assert outs["js"] <= 2 * math.log(2) + 1e-12


@PROPS
@given(data=st.data(), beta=st.sampled_from([1e-2, 0.1, 1.0, 10.0]), c=values(BIG))
def test_kl_regularized_optimum_finite_and_optimal(data, beta, c):
    V = data.draw(st.integers(2, 6))
    pi_ref = _probs(data, V, torch.float64, zero=False)
    r = torch.tensor(data.draw(arr((V,), bound=BIG)))
    opt = dv.kl_regularized_optimum(pi_ref, r, beta)
    assert torch.isfinite(opt).all() and float(opt.sum()) == pytest.approx(1.0, abs=1e-12)
    # a constant added to every reward leaves the optimum unchanged and shifts J by c
    assert torch.allclose(dv.kl_regularized_optimum(pi_ref, r + c, beta), opt, atol=1e-9)
    j = dv.kl_regularized_objective(opt, pi_ref, r, beta)
    assert torch.isfinite(j)
    assert float(dv.kl_regularized_objective(opt, pi_ref, r + c, beta)) == pytest.approx(float(j) + c, abs=1e-7 * (1 + abs(c) + abs(float(j))))
    # J(pi*) = beta log Z and J(pi) <= J(pi*) for any pi (modest rewards, so J is well conditioned)
    r_mod = r / BIG * 5
    opt = dv.kl_regularized_optimum(pi_ref, r_mod, beta)
    j_opt = float(dv.kl_regularized_objective(opt, pi_ref, r_mod, beta))
    assert j_opt == pytest.approx(beta * float(torch.logsumexp(pi_ref.log() + r_mod / beta, 0)), rel=1e-9, abs=1e-9)
    other = _probs(data, V, torch.float64)
    assert float(dv.kl_regularized_objective(other, pi_ref, r_mod, beta)) <= j_opt + 1e-9


# ================================================================================================
# rewards.py
# ================================================================================================
@PROPS
@given(dtype=dtypes, data=st.data(), beta=st.sampled_from([0.0, 0.05, 1.0]))
def test_rewards_sampled_token_kl_and_shaped_rewards(dtype, data, beta):
    B, T = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 5))
    (a, a64), (b, b64) = q(data.draw(arr((B, T))), dtype), q(data.draw(arr((B, T))), dtype)
    k1 = rw.sampled_token_kl(a, b, "k1")
    check_close(k1, a64 - b64, dtype, 2 * (a64.abs() + b64.abs()) + 1e-300, what="rewards k1")
    k3 = rw.sampled_token_kl(a, b, "k3")
    exact3 = f64([[_k3_exact(float(v)) for v in row] for row in (b64 - a64)])
    check_finite_or_overflow(k3, exact3, "rewards k3")
    assert (k3 >= 0).all()
    # holistic reward on the last token; with k1, sum_t r_t = R - beta (log pi(y) - log pi_ref(y))
    lengths = data.draw(st.lists(st.integers(1, T), min_size=B, max_size=B))
    mask = (torch.arange(T)[None] < torch.tensor(lengths)[:, None]).long()
    scores, s64 = q(data.draw(vec(B)), torch.float32)
    tok = rw.sequence_to_token_scores(scores, mask)
    assert torch.equal(tok.sum(-1), scores.float())
    assert torch.equal(tok[torch.arange(B), torch.tensor(lengths) - 1], scores.float())
    lp_, ref_ = a.float() / 100, b.float() / 100  # realistic log-probs: a few hundred nats at most
    sh = rw.kl_shaped_rewards(tok, lp_, ref_, mask, beta, "k1")
    want = s64 - beta * ((lp_.double() - ref_.double()) * mask).sum(-1)
    check_close(sh.rewards.sum(-1), want, torch.float32, 8 * T * (1 + s64.abs() + 100 * (1 + beta)), what="shaped sum")
    for est in ("k1", "k3"):
        sh = rw.kl_shaped_rewards(tok, a, b, mask, beta, est)
        assert not torch.isnan(sh.rewards).any() and not torch.isnan(sh.kl).any()


# ================================================================================================
# fdpg.py
# ================================================================================================
def _pseudo_exact(name: str, x: float) -> float:
    """-f'(t) at t = e^x, in mpmath (arbitrary precision)."""
    with mpmath.workdps(60):
        return _pseudo_exact_mp(name, mpmath.mpf(x))


def _pseudo_exact_mp(name, x):
    if name == "forward_kl":
        return float(mpmath.exp(-x))  # -f'(t) = 1/t
    if name == "reverse_kl":
        return float(-(x + 1))  # -(log t + 1)
    if name == "tv":
        return -0.5 * float(mpmath.sign(x))
    return float(mpmath.log(1 + mpmath.exp(-x)) - mpmath.log(2))  # -log(2t/(t+1))


def _f_over_t_exact(name: str, x: float) -> float:
    """f(t)/t at t = e^x, in mpmath."""
    with mpmath.workdps(60):
        return _f_over_t_mp(name, mpmath.mpf(x))


def _f_over_t_mp(name, x):
    t = mpmath.exp(x)
    if name == "forward_kl":
        return float(-x / t)
    if name == "reverse_kl":
        return float(x)
    if name == "tv":
        return float(abs(1 - t) / (2 * t))
    return float(mpmath.log(2 * t / (t + 1)) + mpmath.log(2 / (t + 1)) / t)


@PROPS
@given(dtype=dtypes, x=vec(bound=BIG, hi=8), mid=vec(bound=30.0, hi=8), name=st.sampled_from(DIVS))
def test_pseudo_reward_finite_accurate_and_monotone(dtype, x, mid, name):
    for raw in (x, mid):
        t, t64 = q(np.sort(raw), dtype)
        out = fdpg.pseudo_reward(t, name)
        exact = f64([_pseudo_exact(name, float(v)) for v in t64])
        check_finite_or_overflow(out, exact, f"pseudo_reward {name}")
        fits = exact.abs() < 0.5 * torch.finfo(out.dtype).max
        check_close(out[fits], exact[fits], dtype, 8 * (exact[fits].abs() + 1) * (1 + t64[fits].abs()),
                    what=f"pseudo_reward {name}")
        o = out.double()
        assert (o[1:] <= o[:-1] + 8 * eps(dtype) * (o[:-1].abs() + 1)).all(), "R = -f'(t) is non-increasing in t"


@PROPS
@given(dtype=dtypes, x=vec(bound=BIG, lo=2, hi=8), c=values(BIG), s=st.floats(0.1, 10.0))
def test_leave_one_out_baseline_finite_and_equivariant(dtype, x, c, s):
    t, t64 = q(x, dtype)
    b = fdpg.leave_one_out_baseline(t)
    n = len(x)
    brute = f64([float((t64.sum() - t64[i]) / (n - 1)) for i in range(n)])
    check_close(b, brute, dtype, 4 * n * (1 + t64.abs().max()), what="leave_one_out_baseline")
    x64 = torch.tensor(x)
    base = fdpg.leave_one_out_baseline(x64)
    tol = 1e-12 * n * (1 + abs(c) + x64.abs().max())
    assert torch.allclose(fdpg.leave_one_out_baseline(x64 + c), base + c, atol=float(tol), rtol=0)
    assert torch.allclose(fdpg.leave_one_out_baseline(s * x64), s * base, atol=float(tol) * s, rtol=1e-12)


@PROPS
@given(dtype=dtypes, data=st.data(), c=values(100.0))
def test_fdpg_loss_finite_and_baseline_shift(dtype, data, c):
    n = data.draw(st.integers(2, 6))
    (lpx, l64), (R, R64) = q(data.draw(vec(n)), dtype), q(data.draw(vec(n, bound=100.0)), dtype)
    base = data.draw(st.floats(-100, 100))
    _out = fdpg.fdpg_loss(lpx, R, base)
    loss, diag = _out.losses, {'pseudo_reward': float(_out.pseudo_reward), 'advantage_std': float(_out.advantage_std)}
    exact = -(R64 - float(torch.tensor(base, dtype=dtype))) * l64
    check_finite_or_overflow(loss, exact, "fdpg_loss")
    assert all(math.isfinite(v) for v in diag.values())
    r64 = torch.tensor(data.draw(vec(n, bound=100.0)))
    lx = torch.tensor(data.draw(vec(n, bound=1000.0)))
    a = fdpg.fdpg_loss(lx, r64, 3.0).losses
    b_ = fdpg.fdpg_loss(lx, r64 + c, 3.0 + c).losses  # R - b is all that matters
    assert torch.allclose(a, b_, rtol=1e-9, atol=1e-9 * (1 + abs(c)) * 1000)


@PROPS
@given(dtype=dtypes, x=vec(bound=BIG, hi=8), mid=vec(bound=30.0, hi=8), name=st.sampled_from(DIVS))
def test_estimate_f_divergence_finite_and_accurate(dtype, x, mid, name):
    for raw in (x, mid):
        t, t64 = q(raw, dtype)
        out = fdpg.estimate_f_divergence(t, name)
        per = f64([_f_over_t_exact(name, float(v)) for v in t64])
        exact = per.mean()
        check_finite_or_overflow(out, exact, f"estimate_f_divergence {name}")
        if abs(float(exact)) < 0.5 * torch.finfo(out.dtype).max:
            check_close(out, exact, dtype, 16 * (per.abs().max() + 1) * (1 + t64.abs().max()),
                        what=f"estimate_f_divergence {name}")


@PROPS
@given(dtype=dtypes, data=st.data(), c=values(BIG))
def test_estimate_log_z_finite_and_shift_equivariant(dtype, data, c):
    n = data.draw(st.integers(1, 8))
    (P, P64), (Q, Q64) = q(data.draw(vec(n)), dtype), q(data.draw(vec(n)), dtype)
    out = fdpg.estimate_log_z(P, Q)
    ref = np_logsumexp((P64 - Q64).numpy()) - math.log(n)
    check_close(out, ref, dtype, 8 * (1 + P64.abs().max() + Q64.abs().max()), what="estimate_log_z")
    p, qq = torch.tensor(data.draw(vec(n))), torch.tensor(data.draw(vec(n)))
    base = float(fdpg.estimate_log_z(p, qq))
    tol = 1e-12 * (1 + abs(c) + float(p.abs().max() + qq.abs().max()))
    assert float(fdpg.estimate_log_z(p + c, qq)) == pytest.approx(base + c, abs=tol)
    assert float(fdpg.estimate_log_z(p, qq + c)) == pytest.approx(base - c, abs=tol)


@PROPS
@given(dtype=dtypes, data=st.data(), beta=st.sampled_from([1e-2, 0.1, 1.0]))
def test_targets_finite(dtype, data, beta):
    n = data.draw(st.integers(1, 6))
    (a, a64), (r, r64) = q(data.draw(vec(n)), dtype), q(data.draw(vec(n)), dtype)
    out = fdpg.rlkl_log_target(a, r, beta)
    exact = a64 + r64 / beta
    check_finite_or_overflow(out, exact, "rlkl_log_target")
    b = torch.tensor(data.draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
    g = fdpg.gdc_binary_log_target(a, b)
    assert torch.equal(torch.isneginf(g), b == 0) and torch.isfinite(g[b == 1]).all()
    feats = torch.tensor(data.draw(arr((n, 2), bound=10.0)), dtype=dtype)
    lam = torch.tensor(data.draw(arr((2,), bound=10.0)), dtype=torch.float64)
    gd = fdpg.gdc_distributional_log_target(a, feats, lam)
    assert torch.isfinite(gd).all()


# ================================================================================================
# reward_collapse.py
# ================================================================================================
UTILITIES = [rc.power_utility(0.5), rc.inverse_power_utility(1.0), rc.log_utility(),
             rc.logsigmoid_utility(1.0), rc.logsigmoid_utility(0.1), rc.linear_utility()]


def _u_ref(u: rc.Utility, x: np.ndarray, eps_: float) -> np.ndarray:
    """U(x) from the numpy closed form above eps, the tangent line below (brute force)."""
    x = np.asarray(x, dtype=np.float64)
    if u.kind in ("logsigmoid", "linear"):
        return u.value(x)
    xs = np.maximum(x, eps_)
    return np.where(x >= eps_, u.value(xs), u.value(np.array(eps_)) + u.grad(np.array(eps_)) * (x - eps_))


@PROPS
@given(dtype=dtypes, data=st.data(), c=values(BIG))
def test_ranking_utility_loss_finite_accurate_shift_invariant(dtype, data, c):
    P, n = data.draw(st.integers(1, 3)), data.draw(st.integers(2, 5))
    r, r64 = q(data.draw(arr((P, n))), dtype)
    us = [data.draw(st.sampled_from(UTILITIES)) for _ in range(P)]
    out = rc.ranking_utility_loss(r, us).losses
    i, j = np.triu_indices(n, 1)
    ref = f64([-_u_ref(u, (r64[p, i] - r64[p, j]).numpy(), 0.05).mean() for p, u in enumerate(us)])
    check_finite_or_overflow(out, ref, "ranking_utility_loss")
    fits = ref.abs() < 0.5 * torch.finfo(out.dtype).max
    check_close(out[fits], ref[fits], dtype, 64 * (ref[fits].abs() + 1 + 20 * r64.abs().amax(-1)[fits]),
                what="ranking_utility_loss")
    # only differences of a prompt's rewards matter
    x = torch.tensor(data.draw(arr((P, n), bound=1.0)))
    base = rc.ranking_utility_loss(x, us).losses
    assert torch.allclose(rc.ranking_utility_loss(x + c, us).losses, base, rtol=1e-6, atol=1e-9 * (1 + abs(c)) * 1e3)


@PROPS
@given(r=hnp.arrays(np.float64, st.integers(2, 6), elements=st.floats(0.0, 1.0), unique=True),
       u=st.sampled_from(UTILITIES), frac=st.floats(0.0, 1.0))
def test_total_utility_brute_force_and_shift(r, u, frac):
    r = np.sort(r)[::-1].copy()
    brute = sum(float(u.value(np.array(r[a] - r[b]))) for a in range(len(r)) for b in range(a + 1, len(r)))
    assert rc.total_utility(r, u) == pytest.approx(brute, rel=1e-12, abs=1e-12)
    c = -r.min() + frac * (1 - r.max() + r.min())  # a shift that keeps the rewards in [0, 1]
    shifted = np.clip(r + c, 0.0, 1.0)
    if np.all(np.diff(shifted) < 0):
        assert rc.total_utility(shifted, u) == pytest.approx(rc.total_utility(r, u), rel=1e-9, abs=1e-9)


# ================================================================================================
# logprobs.py (pure parts) and ppo.py (pure parts)
# ================================================================================================
@PROPS
@given(dtype=dtypes, data=st.data(), c=values(BIG))
def test_logprobs_of_labels_finite_accurate_and_shift_invariant(dtype, data, c):
    B, T, V = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 4)), data.draw(st.integers(2, 7))
    z, z64 = q(data.draw(arr((B, T, V))), dtype)
    labels = torch.tensor(data.draw(hnp.arrays(np.int64, (B, T), elements=st.integers(0, V - 1))))
    out = lp.logprobs_of_labels(z, labels)
    assert out.dtype == torch.float32  # documented: float32 whatever the logits' dtype
    ref = np.take_along_axis(np_log_softmax(z64.numpy(), -1), labels.numpy()[..., None], -1)[..., 0]
    scale = 4 * V * (1 + z64.abs().amax(-1))
    check_close(out, ref, torch.float32, scale, what="logprobs_of_labels")
    assert (out <= 0).all()
    # every label's probability sums to 1; a constant added to a position's logits changes nothing
    # (float32 accuracy: picked - logsumexp loses eps32 * |z|, ~1e-3 at |z| = 1e4; fine for real logits)
    allv = torch.stack([lp.logprobs_of_labels(z64, torch.full_like(labels, v)) for v in range(V)], -1)
    tol = 4 * V * eps(torch.float32) * (1 + z64.abs().amax(-1))
    assert ((allv.double().exp().sum(-1) - 1).abs() <= tol).all()
    shifted = lp.logprobs_of_labels(z64 + c, labels)
    assert torch.allclose(shifted.double(), lp.logprobs_of_labels(z64, labels).double(),
                          atol=float(1e-6 * (1 + abs(c) + z64.abs().max())) * V)
    # token_logprobs is the shifted version, position by position
    ids = torch.tensor(data.draw(hnp.arrays(np.int64, (B, T + 1), elements=st.integers(0, V - 1))))
    zz = torch.tensor(data.draw(arr((B, T + 1, V), bound=50.0)))
    tl = lp.token_logprobs(zz, ids)
    brute = f64([[float(torch.log_softmax(zz[b_, t], -1)[ids[b_, t + 1]]) for t in range(T)] for b_ in range(B)])
    assert torch.allclose(tl.double(), brute, atol=1e-4)


def _gae_brute(r, v, n, gamma, lam):
    """A_t = sum_l (gamma lam)^l delta_{t+l}, with V = 0 after the last real token (pure Python)."""
    adv = []
    for t in range(n):
        total = 0.0
        for k in range(t, n):
            nv = v[k + 1] if k + 1 < n else 0.0
            delta = r[k] + gamma * nv - v[k]
            total += (gamma * lam) ** (k - t) * delta
        adv.append(total)
    return adv


@PROPS
@given(data=st.data(), gamma=st.floats(0.0, 1.0), lam=st.floats(0.0, 1.0))
def test_gae_equals_brute_force_discounted_sum(data, gamma, lam):
    B, R = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 6))
    r = torch.tensor(data.draw(arr((B, R), bound=100.0)), dtype=torch.float32)
    v = torch.tensor(data.draw(arr((B, R), bound=100.0)), dtype=torch.float32)
    lengths = data.draw(st.lists(st.integers(1, R), min_size=B, max_size=B))
    mask = (torch.arange(R)[None] < torch.tensor(lengths)[:, None]).long()
    adv, ret = ppo.gae(r, v, mask, gamma, lam)
    for b in range(B):
        n = lengths[b]
        want = _gae_brute(r[b].double().tolist(), v[b].double().tolist(), n, gamma, lam)
        assert torch.allclose(adv[b, :n].double(), f64(want), atol=1e-3, rtol=1e-5)
        assert torch.allclose(ret[b, :n], adv[b, :n] + v[b, :n], atol=1e-4)
        assert (adv[b, n:] == 0).all() and (ret[b, n:] == 0).all()


@PROPS
@given(dtype=dtypes, data=st.data(), clip=st.sampled_from([0.1, 0.2, 0.5]))
def test_clipped_losses_never_nan_and_finite_when_exact_fits(dtype, data, clip):
    B, R = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 5))
    new, new64 = q(-np.abs(data.draw(arr((B, R)))), dtype)  # log-probs in [-1e4, 0]
    old, old64 = q(-np.abs(data.draw(arr((B, R)))), dtype)
    adv, adv64 = q(data.draw(arr((B, R), bound=100.0)), dtype)
    mask = torch.ones(B, R)
    out = ppo.clipped_policy_loss(new, old, adv, mask, clip)
    for name in ("loss", "per_token", "clipfrac", "approx_kl"):
        assert not torch.isnan(getattr(out, name)).any(), f"clipped_policy_loss.{name} is NaN"
    assert 0 <= float(out.clipfrac) <= 1
    lr_ = new64 - old64
    ratio = lr_.exp()
    exact = -torch.minimum(ratio * adv64, ratio.clamp(1 - clip, 1 + clip) * adv64)
    fits = (lr_ < 30).all()  # e^30 * 100 fits every dtype but float16 ...
    if fits and dtype != torch.float16:
        check_close(out.per_token, exact, dtype, 8 * (exact.abs() + 1), what="clipped_policy_loss")
    vals, v64 = q(data.draw(arr((B, R))), dtype)
    oldv, o64 = q(data.draw(arr((B, R))), dtype)
    ret, r64 = q(data.draw(arr((B, R))), dtype)
    vl = ppo.clipped_value_loss(vals, oldv, ret, mask, clip)
    vclip = o64 + (v64 - o64).clamp(-clip, clip)
    exact_v = 0.5 * torch.maximum((v64 - r64) ** 2, (vclip - r64) ** 2)
    check_finite_or_overflow(vl.per_token, exact_v, "clipped_value_loss")
    assert not torch.isnan(vl.loss) and 0 <= float(vl.clipfrac) <= 1
    # PPO-ptx: gamma = 0 is PPO itself, and the loss is linear in gamma
    nll = torch.tensor(data.draw(st.floats(0, 50)))
    assert ppo.ppo_ptx_loss(out.loss, nll, 0.0).loss is out.loss
    g = data.draw(st.floats(0, 10))
    got = ppo.ppo_ptx_loss(torch.tensor(1.5), nll, g).loss
    assert float(got) == pytest.approx(1.5 + g * float(nll))
