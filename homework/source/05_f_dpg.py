# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Homework 05 · f-DPG
#
# Companion to lecture notebook 05. Four exercises; each answer cell holds a stub
# (`raise NotImplementedError()`): replace the stub with your answer, then run the check cell under
# it, which prints one line, `Exercise N (...): PASS` or `FAIL - reason`. The checks you see test the
# form of your answer; the grader runs further tests you do not see. Do not edit the check cells
# (the grader runs its own copy of them). Exercise 1 must be your own code: a check fails if your
# function calls the library's pseudo-reward or f-divergence helpers.
#
# Notation of Lecture 6 (f-DPG): a target $p(x) = P(x)/Z$ with $Z = \sum_x P(x)$, the policy
# $\pi_\theta$, $t(x) = \pi_\theta(x)/p(x)$, and the pseudo-reward $R(x) = -f'(t(x))$, so that
# $\nabla_\theta D_f(\pi_\theta\,\|\,p) = -\mathbb{E}_{x\sim\pi_\theta}[R(x)\,\nabla_\theta\log\pi_\theta(x)]$.

# %%
import math

import numpy as np
import torch

import rlhf_edu.divergences as dv
import rlhf_edu.fdpg as fd
from rlhf_edu.homework import assert_no_library_calls, exercise

# %% [markdown]
# ## Exercise 1 · The Jensen–Shannon pseudo-reward, in log space (re-implementation)
#
# For Jensen–Shannon, $f(t) = t\log\frac{2t}{t+1} + \log\frac{2}{t+1}$. Derive $f'(t)$, then write
# `js_pseudo_reward(log_t)` returning $R = -f'(t)$ for a float64 tensor of $\log t$ values (any
# shape). It must stay finite for $\log t$ from $-500$ to $500$, where $e^{\log t}$ overflows or
# underflows: write $R$ as a function of $\log t$ (`torch.nn.functional.softplus` is allowed).

# %%
def js_pseudo_reward(log_t):
    """log_t: float64 tensor, log(pi/p) -> R = -f'(t) for JS, same shape."""
    ### BEGIN SOLUTION
    return torch.nn.functional.softplus(-log_t) - math.log(2.0)  # log(1 + 1/t) - log 2
    ### END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
with exercise(1, "JS pseudo-reward in log space"):
    assert js_pseudo_reward(torch.zeros(3, dtype=torch.float64)).shape == (3,), "keep the input's shape"
    ### BEGIN HIDDEN TESTS
    assert_no_library_calls(js_pseudo_reward, fd.pseudo_reward, fd.estimate_f_divergence, dv.get_f_divergence,
                            dv.JENSEN_SHANNON, dv.F_DIVERGENCES, dv.f_divergence)
    _t = torch.tensor([0.05, 0.5, 1.0, 2.0, 30.0], dtype=torch.float64, requires_grad=True)
    _f = _t * torch.log(2 * _t / (_t + 1)) + torch.log(2 / (_t + 1))   # f(t) of the lecture's table
    (_fprime,) = torch.autograd.grad(_f.sum(), _t)                      # f'(t) by autograd
    assert torch.allclose(js_pseudo_reward(_t.detach().log()), -_fprime, atol=1e-12), "R differs from -f'(t)"
    _ext = js_pseudo_reward(torch.tensor([-500.0, 500.0], dtype=torch.float64))
    assert torch.isfinite(_ext).all(), "not finite at log t = +-500"
    assert abs(float(_ext[0]) - (500 - math.log(2))) < 1e-9 and abs(float(_ext[1]) + math.log(2)) < 1e-9, \
        "wrong limits: R -> -log t - log 2 as t -> 0 and R -> -log 2 as t -> inf"
    ### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 2 · The variance of the importance-sampling estimate of Z (derivation)
#
# f-DPG needs $Z$, estimated from samples $x \sim q$ as $\hat Z = P(x)/q(x)$ (one sample; average
# $K$ of them in practice). Three sequences have $P = (2, 1, 0.5)$ (unnormalised) and the proposal
# is $q = (0.5, 0.25, 0.25)$.
#
# (a) Show that $\mathbb{E}_q[\hat Z] = Z$.
# (b) Compute the variance of the one-sample estimate, $\mathrm{Var}_q[\hat Z] = \mathbb{E}_q[\hat Z^2] - Z^2$,
# and assign it to `var_z_hat` (a float).
# (c) Which proposal $q$ would make that variance zero? (Not graded; think about it.)

# %%
### BEGIN SOLUTION
P_un, q_prop = np.array([2.0, 1.0, 0.5]), np.array([0.5, 0.25, 0.25])
var_z_hat = float(np.sum(q_prop * (P_un / q_prop) ** 2) - P_un.sum() ** 2)
### END SOLUTION

# %%
# NBVAL_CHECK_OUTPUT
with exercise(2, "variance of the IS estimate of Z"):
    assert float(var_z_hat) >= 0, "a variance is not negative"
    ### BEGIN HIDDEN TESTS
    _P, _q = [2.0, 1.0, 0.5], [0.5, 0.25, 0.25]
    _Z = sum(_P)
    _var = sum(qi * (Pi / qi - _Z) ** 2 for Pi, qi in zip(_P, _q))  # E_q[(Z_hat - Z)^2], enumerated
    assert abs(var_z_hat - _var) < 1e-3 * _var, "Var_q[Z_hat] is off"
    ### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 3 · Which pseudo-reward is bounded? (interpret)
#
# The figure draws $R = -f'(t)$ against $\log t$ for the four divergences of the lecture's table.
# A bounded pseudo-reward keeps the REINFORCE gradient's variance in check. Which statement is
# true? Set `answer_3` to `"a"`, `"b"`, `"c"` or `"d"`.
#
# - (a) Only the forward-KL pseudo-reward is bounded above and below.
# - (b) Only the reverse-KL pseudo-reward is bounded above and below.
# - (c) Only the total-variation pseudo-reward is bounded above and below.
# - (d) Only the Jensen–Shannon pseudo-reward is bounded above and below.

# %%
import matplotlib.pyplot as plt

grid = torch.linspace(-4, 4, 401, dtype=torch.float64)
curves = {name: fd.pseudo_reward(grid, name) for name in ("forward_kl", "reverse_kl", "tv", "js")}
fig, ax = plt.subplots(figsize=(5, 3))
for name, R in curves.items():
    ax.plot(grid, R, label=name)
ax.set(xlabel=r"$\log t = \log \pi/p$", ylabel=r"$R = -f'(t)$", ylim=(-6, 6))
ax.legend()
plt.show()

# %%
### BEGIN SOLUTION
answer_3 = "c"
### END SOLUTION

# %%
# NBVAL_CHECK_OUTPUT
with exercise(3, "the bounded pseudo-reward"):
    assert answer_3 in ("a", "b", "c", "d"), 'answer "a", "b", "c" or "d"'
    ### BEGIN HIDDEN TESTS
    _wide = torch.linspace(-200, 200, 4001, dtype=torch.float64)  # far beyond the plotted range
    _bounded = {n: bool(fd.pseudo_reward(_wide, n).abs().max() < 10) for n in curves}
    _truth = dict(zip("abcd", _bounded.values()))
    assert sum(_truth.values()) == 1 and _truth[answer_3], "look at both ends of each curve"
    ### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 4 · Is the estimate of log Z biased? (predict-then-run)
#
# $\hat Z$ (the mean of $K$ importance weights) is unbiased for $Z$. f-DPG uses $\log \hat Z$. The
# next cell repeats the estimate 4,000 times with $K = 4$ samples on a 50-sequence toy space and
# compares the mean of $\log\hat Z$ with the true $\log Z$. **Before running it**, predict: on average
# is $\log \hat Z$ `"below"`, `"above"` or `"equal"` to $\log Z$ (beyond the Monte Carlo noise)? Set
# `prediction`.

# %%
### BEGIN SOLUTION
prediction = "below"
### END SOLUTION

# %%
gen = torch.Generator().manual_seed(5)
log_P = torch.randn(50, generator=gen, dtype=torch.float64) * 1.5
log_q = torch.log_softmax(torch.randn(50, generator=gen, dtype=torch.float64), 0)
draws = torch.multinomial(log_q.exp(), 4 * 4000, replacement=True, generator=gen).view(4000, 4)
log_w = log_P[draws] - log_q[draws]                             # (4000, 4) log importance weights
log_z_hat = torch.logsumexp(log_w, 1) - math.log(4)             # (4000,)
true_log_z = float(torch.logsumexp(log_P, 0))
sem = float(log_z_hat.std() / math.sqrt(4000))
print(f"true log Z = {true_log_z:.3f}; mean log Z_hat = {float(log_z_hat.mean()):.3f} +- {sem:.3f}")

# %%
# NBVAL_CHECK_OUTPUT
with exercise(4, "the sign of the bias of log Z_hat"):
    assert prediction in ("below", "above", "equal"), 'prediction must be "below", "above" or "equal"'
    ### BEGIN HIDDEN TESTS
    _gap = float(log_z_hat.mean()) - true_log_z
    _observed = "below" if _gap < -3 * sem else "above" if _gap > 3 * sem else "equal"
    assert prediction == _observed, "the experiment says otherwise (think of Jensen's inequality)"
    ### END HIDDEN TESTS
