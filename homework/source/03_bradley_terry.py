# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Homework 03 · The Bradley–Terry reward model
#
# Companion to lecture notebook 03. Four exercises; each answer cell holds a stub
# (`raise NotImplementedError()`): replace the stub with your answer, then run the check cell under
# it, which prints one line, `Exercise N (...): PASS` or `FAIL - reason`. The checks you see test the
# form of your answer; the grader runs further tests you do not see. Do not edit the check cells
# (the grader runs its own copy of them). Exercise 1 must be your own code: a check fails if your
# function calls the library's loss helpers.
#
# The BT model (Lecture 6): $p(y_w \succ y_l) = \sigma(r_w - r_l)$, and the reward-model loss is
# $-\log\sigma(r_w - r_l)$. The Llama-2 margin loss is eq. (9) of the Regularization chapter,
# $-\log\sigma(r_c - r_r - m)$.

# %%
import numpy as np
import scipy
import torch

import rlhf_edu.bradley_terry as bt
from rlhf_edu.homework import assert_no_library_calls, exercise

# %% [markdown]
# ## Exercise 1 · A BT loss that never overflows (re-implementation)
#
# Write `bt_nll(r_chosen, r_rejected)`: the mean over the batch of $-\log\sigma(r_w - r_l)$ for two
# `(B,)` float64 tensors, returned as a 0-dim tensor that autograd can differentiate. It must stay
# finite and accurate for margins as large as $\pm 1000$ (`torch.log(torch.sigmoid(d))` does not).
# Use the identity $-\log\sigma(d) = \log(1 + e^{-d})$ and write it in a form that cannot overflow.

# %%
def bt_nll(r_chosen, r_rejected):
    """r_chosen, r_rejected: (B,) float64 -> 0-dim tensor, mean of -log sigma(r_chosen - r_rejected)."""
    ### BEGIN SOLUTION
    d = r_chosen - r_rejected
    return (torch.clamp(-d, min=0) + torch.log1p(torch.exp(-d.abs()))).mean()
    ### END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
with exercise(1, "stable BT negative log-likelihood"):
    assert bt_nll(torch.zeros(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)).dim() == 0, \
        "return a 0-dim tensor (the batch mean)"
    ### BEGIN HIDDEN TESTS
    assert_no_library_calls(bt_nll, bt.bt_loss, bt.margin_loss, bt.preference_probability, bt.fit_bt_mle)
    _rc = torch.tensor([1000.0, -1000.0, 0.3, 2.0, -0.7], dtype=torch.float64, requires_grad=True)
    _rr = torch.tensor([0.0, 0.0, 0.0, -1.0, 0.4], dtype=torch.float64)
    _d = (_rc - _rr).detach().numpy()
    _want = np.mean(np.logaddexp(0.0, -_d))          # closed form, numpy
    _got = bt_nll(_rc, _rr)
    assert torch.isfinite(_got) and abs(float(_got) - _want) < 1e-10, "value differs from log(1 + e^-d)"
    _got.backward()
    _grad = -scipy.special.expit(-_d) / len(_d)       # d/dr_w of the mean loss, closed form
    assert np.allclose(_rc.grad.numpy(), _grad, atol=1e-12), "gradient differs (is it differentiable?)"
    ### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 2 · The two-item MLE in closed form (derivation)
#
# Response A was preferred to response B in 30 of 40 comparisons. Under the BT model, derive the
# maximum-likelihood reward gap $\hat r_A - \hat r_B$ (set the derivative of the log-likelihood to
# zero; the answer is a logarithm). Assign its numeric value to `mle_gap` (a float).

# %%
### BEGIN SOLUTION
mle_gap = float(np.log(30 / 10))
### END SOLUTION

# %%
# NBVAL_CHECK_OUTPUT
with exercise(2, "two-item MLE reward gap"):
    assert isinstance(float(mle_gap), float), "assign a number"
    ### BEGIN HIDDEN TESTS
    _nll = lambda g: -(30 * np.log(scipy.special.expit(g)) + 10 * np.log(scipy.special.expit(-g)))  # noqa: E731
    _best = scipy.optimize.minimize_scalar(_nll, bounds=(-10, 10), method="bounded", options={"xatol": 1e-10}).x
    assert abs(mle_gap - _best) < 1e-3, "not the maximiser of the likelihood"
    ### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 3 · The loss at the margin (derivation)
#
# Under the margin loss of eq. (9), what is the loss of a pair whose reward gap $r_c - r_r$ equals
# its margin $m > 0$ exactly? Set `answer_3` to `"a"`, `"b"`, `"c"` or `"d"`.
#
# - (a) $0$: the pair is won by its margin.
# - (b) $\log 2$, whatever $m$ is.
# - (c) $m$.
# - (d) $\log(1 + e^{m})$.

# %%
### BEGIN SOLUTION
answer_3 = "b"
### END SOLUTION

# %%
# NBVAL_CHECK_OUTPUT
with exercise(3, "the margin loss at a gap equal to the margin"):
    assert answer_3 in ("a", "b", "c", "d"), 'answer "a", "b", "c" or "d"'
    ### BEGIN HIDDEN TESTS
    _m = np.array([0.5, 1.0, 3.0])
    _loss = -np.log(scipy.special.expit(_m - _m))  # eq. (9) at r_c - r_r = m
    _truth = {"a": np.allclose(_loss, 0), "b": np.allclose(_loss, np.log(2)), "c": np.allclose(_loss, _m),
              "d": np.allclose(_loss, np.log1p(np.exp(_m)))}
    assert sum(_truth.values()) == 1 and _truth[answer_3], "evaluate eq. (9) at r_c - r_r = m"
    ### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 4 · A response that always wins (predict-then-run)
#
# Three responses; response 0 wins every one of its 20 comparisons against 1 and 2, and 1 and 2 split
# their 20 comparisons evenly. The next cell fits the BT rewards by plain gradient descent on the
# negative log-likelihood (no regularisation) and prints the gap $r_0 - r_1$ after 100, 1,000 and
# 10,000 steps. **Before running it**, predict: does the gap settle at a finite value
# (`prediction = "converges"`) or keep growing (`prediction = "grows"`)?

# %%
### BEGIN SOLUTION
prediction = "grows"
### END SOLUTION

# %%
winners = np.array([0] * 20 + [1] * 10 + [2] * 10)
losers = np.array([1] * 10 + [2] * 10 + [2] * 10 + [1] * 10)
r_fit, gaps = np.zeros(3), {}
for step in range(1, 10_001):
    g_d = -scipy.special.expit(-(r_fit[winners] - r_fit[losers]))  # d(-log sigma(d))/dd
    r_fit -= 0.05 * (np.bincount(winners, g_d, 3) - np.bincount(losers, g_d, 3))
    if step in (100, 1_000, 10_000):
        gaps[step] = r_fit[0] - r_fit[1]
print("gap r0 - r1 after 100, 1000, 10000 steps:", [round(g, 2) for g in gaps.values()])

# %%
# NBVAL_CHECK_OUTPUT
with exercise(4, "does the MLE gap converge under perfect separation"):
    assert prediction in ("converges", "grows"), 'prediction must be "converges" or "grows"'
    ### BEGIN HIDDEN TESTS
    _growth = [gaps[1_000] - gaps[100], gaps[10_000] - gaps[1_000]]
    _observed = "grows" if min(_growth) > 0.5 else "converges"
    assert prediction == _observed, "the experiment says otherwise"
    ### END HIDDEN TESTS
