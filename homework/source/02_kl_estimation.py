# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Homework 02 · Monte Carlo KL estimation
#
# Companion to lecture notebook 02. Four exercises; each answer cell holds a stub
# (`raise NotImplementedError()`): replace the stub with your answer, then run the check cell under
# it, which prints one line, `Exercise N (...): PASS` or `FAIL - reason`. The checks you see test the
# form of your answer; the grader runs further tests you do not see. Do not edit the check cells
# (the grader runs its own copy of them). Exercise 1 must be your own code: a check fails if your
# function calls the library's estimators.
#
# Notation as in the lecture: samples $x \sim P$, `log_ratio` $= \log Q(x) - \log P(x)$, and
# $r = Q(x)/P(x)$. Eq. (4) of the Regularization chapter is
# $D_{\mathrm{KL}}(P\,\|\,Q) = \mathbb{E}_{x\sim P}[\log P(x) - \log Q(x)]$, whose one-sample
# estimate is $k_1 = -\log r$.

# %%
import numpy as np
import scipy
import torch
import torch.nn.functional as F

import rlhf_edu.divergences as dv
import rlhf_edu.rewards as rw
from rlhf_edu.homework import assert_no_library_calls, exercise

# %% [markdown]
# ## Exercise 1 · The k3 estimator, stable near zero (re-implementation)
#
# Write `k3_own(log_ratio)`: $k_3 = (r - 1) - \log r$ for a tensor of log-ratios (any shape, float64),
# same shape out. It must stay accurate when the log-ratio is tiny: at `log_ratio = 1e-8` the
# answer is about $5 \times 10^{-17}$, and `torch.exp(x) - 1 - x` returns 0 or a wrong sign there.
# Hint: `torch.expm1`, or a Taylor series for small $|x|$.

# %%
def k3_own(log_ratio):
    """log_ratio: float64 tensor, any shape -> k3, same shape."""
    ### BEGIN SOLUTION
    x = log_ratio
    small = x.abs() < 1e-3
    series = x**2 / 2 + x**3 / 6 + x**4 / 24 + x**5 / 120
    return torch.where(small, series, torch.expm1(x) - x)
    ### END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
with exercise(1, "k3, stable for tiny log-ratios"):
    assert k3_own(torch.zeros(2, 3, dtype=torch.float64)).shape == (2, 3), "keep the input's shape"
    ### BEGIN HIDDEN TESTS
    assert_no_library_calls(k3_own, dv.k1, dv.k2, dv.k3, dv.sequence_kl_estimates, dv.kl_estimates_from_logits,
                            dv.kl_categorical, rw.sampled_token_kl)
    _x = torch.tensor([1e-8, -1e-8, 1e-5, -3e-4])
    _series = _x**2 / 2 + _x**3 / 6 + _x**4 / 24  # closed form of e^x - 1 - x, to 1e-15 relative here
    assert torch.allclose(k3_own(_x.double()), _series.double(), rtol=1e-6, atol=0), "inaccurate for tiny log-ratios"
    _big = torch.tensor([-5.0, -1.0, 0.5, 3.0], dtype=torch.float64)
    assert torch.allclose(k3_own(_big), _big.exp() - 1 - _big, rtol=1e-12), "wrong for large log-ratios"
    _p = torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64)
    _q = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    _mean = float((_p * k3_own(_q.log() - _p.log())).sum())  # E_P[k3] by enumeration
    assert abs(_mean - scipy.stats.entropy(_p, _q)) < 1e-12, "E_P[k3] must equal KL(P || Q)"
    ### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 2 · The bias of k2, by enumeration (derivation)
#
# $k_2 = \frac12(\log r)^2$ is never negative and has low variance, but it is biased. Take three
# outcomes with $P = (0.5, 0.3, 0.2)$ and $Q = (0.2, 0.3, 0.5)$.
#
# Compute by hand or with a few lines of numpy (not with the library) the exact
# $D_{\mathrm{KL}}(P\,\|\,Q)$ and $\mathbb{E}_{x\sim P}[k_2]$, and assign them to `kl_true` and
# `expected_k2` (floats, 3 significant digits are enough). Which one is larger here?

# %%
### BEGIN SOLUTION
P, Q = np.array([0.5, 0.3, 0.2]), np.array([0.2, 0.3, 0.5])
kl_true = float(np.sum(P * np.log(P / Q)))
expected_k2 = float(np.sum(P * 0.5 * np.log(Q / P) ** 2))
### END SOLUTION

# %%
# NBVAL_CHECK_OUTPUT
with exercise(2, "exact KL and E[k2] on three outcomes"):
    assert isinstance(float(kl_true), float) and isinstance(float(expected_k2), float), "assign two numbers"
    ### BEGIN HIDDEN TESTS
    _P, _Q = np.array([0.5, 0.3, 0.2]), np.array([0.2, 0.3, 0.5])
    _kl = scipy.stats.entropy(_P, _Q)
    _k2 = sum(p * 0.5 * (np.log(q) - np.log(p)) ** 2 for p, q in zip(_P, _Q))  # E_P[k2], term by term
    assert abs(kl_true - _kl) < 5e-3 * _kl, "KL(P || Q) is off"
    assert abs(expected_k2 - _k2) < 5e-3 * _k2, "E_P[k2] is off"
    ### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 3 · A bug in a published sketch (find-the-bug)
#
# The Regularization chapter's code sketch ends with a full-vocabulary KL:
#
# ```python
# kl_full = F.kl_div(ref_logprobs, logprobs, reduction='batchmean')
# ```
#
# where `logprobs` and `ref_logprobs` are `(B, T, V)` log-softmax outputs of the policy and the
# reference, and the intended quantity is $D_{\mathrm{KL}}(\pi\,\|\,\pi_{\text{ref}})$ summed over the
# $T$ positions, averaged over the $B$ sequences. The next cell runs the line on random logits.
# Read the documentation of `torch.nn.functional.kl_div` (what does it assume about `input` and
# `target`?), then:
#
# - set `bug = "a"`, `"b"`, `"c"` or `"d"`:
#   - (a) the arguments are in the wrong order: swapping them gives $D_{\mathrm{KL}}(\pi\,\|\,\pi_{\text{ref}})$;
#   - (b) the order is right, but without `log_target=True` the second argument is read as
#     probabilities, and the log of a negative number appears;
#   - (c) `reduction='batchmean'` should be `reduction='mean'`;
#   - (d) nothing is wrong;
# - write `kl_full_fixed(logprobs, ref_logprobs)`, the corrected line (still one call of `F.kl_div`).

# %%
gen = torch.Generator().manual_seed(2)
logprobs = F.log_softmax(torch.randn(4, 5, 7, generator=gen, dtype=torch.float64), dim=-1)
ref_logprobs = F.log_softmax(torch.randn(4, 5, 7, generator=gen, dtype=torch.float64), dim=-1)
print("the sketch's line gives:", F.kl_div(ref_logprobs, logprobs, reduction="batchmean"))

# %%
### BEGIN SOLUTION
bug = "b"


def kl_full_fixed(logprobs, ref_logprobs):
    return F.kl_div(ref_logprobs, logprobs, reduction="batchmean", log_target=True)
### END SOLUTION

# %%
# NBVAL_CHECK_OUTPUT
with exercise(3, "the F.kl_div line of the chapter's sketch"):
    assert bug in ("a", "b", "c", "d") and callable(kl_full_fixed), 'set bug to "a".."d" and define kl_full_fixed'
    ### BEGIN HIDDEN TESTS
    _exact = float((logprobs.exp() * (logprobs - ref_logprobs)).sum() / logprobs.shape[0])  # eq. (3), enumerated
    _close = lambda v: abs(float(v) - _exact) < 1e-10  # noqa: E731
    _truth = {"a": _close(F.kl_div(logprobs, ref_logprobs, reduction="batchmean", log_target=True)),
              "b": bool(torch.isnan(F.kl_div(ref_logprobs, logprobs, reduction="batchmean")))
              and _close(F.kl_div(ref_logprobs, logprobs, reduction="batchmean", log_target=True)),
              "c": _close(F.kl_div(ref_logprobs, logprobs, reduction="mean", log_target=True)),
              "d": _close(F.kl_div(ref_logprobs, logprobs, reduction="batchmean"))}
    assert sum(_truth.values()) == 1, "exactly one statement should hold"
    assert _truth[bug], "that is not what goes wrong"
    assert _close(kl_full_fixed(logprobs, ref_logprobs)), "kl_full_fixed does not give the intended KL"
    assert "kl_div" in kl_full_fixed.__code__.co_names, "keep it one call of F.kl_div"
    ### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 4 · Which estimator is steadier? (predict-then-run)
#
# The next cells draw 20,000 tokens from a policy $P$ over 50 tokens that is close to the reference
# $Q$ (their true KL is about 0.008 nats) and compute $k_1$ and $k_3$ on each sample. **Before
# running them**, predict which of the two has the smaller standard deviation across samples: set
# `prediction = "k1"` or `prediction = "k3"`.

# %%
### BEGIN SOLUTION
prediction = "k3"
### END SOLUTION

# %%
gen = torch.Generator().manual_seed(4)
z = torch.randn(50, generator=gen, dtype=torch.float64)
log_q = F.log_softmax(z, dim=-1)
log_p = F.log_softmax(z + 0.1 * torch.randn(50, generator=gen, dtype=torch.float64), dim=-1)
x = torch.multinomial(log_p.exp(), 20_000, replacement=True, generator=gen)
lr = log_q[x] - log_p[x]
est = {"k1": -lr, "k3": torch.expm1(lr) - lr}
print(f"true KL(P || Q) = {float((log_p.exp() * (log_p - log_q)).sum()):.5f}")
for name, v in est.items():
    print(f"{name}: mean {float(v.mean()):.5f}, std {float(v.std()):.5f}")

# %%
# NBVAL_CHECK_OUTPUT
with exercise(4, "the lower-variance estimator"):
    assert prediction in ("k1", "k3"), 'prediction must be "k1" or "k3"'
    ### BEGIN HIDDEN TESTS
    _steadier = min(est, key=lambda k: float(est[k].std()))
    assert prediction == _steadier, "the experiment says otherwise"
    ### END HIDDEN TESTS
