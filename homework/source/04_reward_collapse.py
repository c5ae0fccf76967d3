# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Homework 04 · Reward collapse
#
# Companion to lecture notebook 04. Four exercises; each answer cell holds a stub
# (`raise NotImplementedError()`): replace the stub with your answer, then run the check cell under
# it, which prints one line, `Exercise N (...): PASS` or `FAIL - reason`. The checks you see test the
# form of your answer; the grader runs further tests you do not see. Do not edit the check cells
# (the grader runs its own copy of them). Exercise 1 must be your own code: a check fails if your
# function calls the library's objective helpers.
#
# Lecture 6, reward collapse: a reward model that fits every prompt's ranking of $n$ completions
# perfectly gives each prompt the rewards that solve
#
# $$\max \sum_{1 \le i < j \le n} U(r_i - r_j) \quad\text{over}\quad 1 \ge r_1 \ge r_2 \ge \dots \ge r_n \ge 0, \tag{4}$$
#
# for an increasing concave utility $U$; the prompt does not appear, so every prompt gets the same
# rewards.

# %%
import numpy as np
import scipy

import rlhf_edu.reward_collapse as rc
from rlhf_edu.homework import assert_no_library_calls, exercise

# %% [markdown]
# ## Exercise 1 · The objective of (4) (re-implementation)
#
# Write `objective(rewards, U)`: the sum over all pairs $i < j$ of `U(rewards[i] - rewards[j])`,
# for a 1-D numpy array `rewards` sorted best first and a vectorised numpy function `U`
# (e.g. `np.sqrt`). Return a Python float. Vectorise it (no Python loop over pairs): `np.triu_indices`
# helps.

# %%
def objective(rewards, U):
    """rewards: (n,) sorted best first; U: numpy ufunc-like -> float, sum_{i<j} U(r_i - r_j)."""
    ### BEGIN SOLUTION
    r = np.asarray(rewards, dtype=float)
    i, j = np.triu_indices(r.size, 1)
    return float(np.sum(U(r[i] - r[j])))
    ### END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
with exercise(1, "the objective of (4)"):
    assert isinstance(objective(np.array([1.0, 0.0]), np.sqrt), float), "return a Python float"
    ### BEGIN HIDDEN TESTS
    assert_no_library_calls(objective, rc.total_utility, rc._pair_diffs, rc.gap_gradient_hessian, rc.kkt_gap)
    _rng = np.random.default_rng(4)
    for _n in (2, 5, 17):
        _r = np.sort(_rng.uniform(size=_n))[::-1]
        for _U in (np.sqrt, np.log1p, lambda x: -1 / (x + 0.1)):
            _loop = sum(_U(_r[i] - _r[j]) for i in range(_n) for j in range(i + 1, _n))  # the double loop
            assert abs(objective(_r, _U) - _loop) < 1e-9 * max(1, abs(_loop)), "differs from the double loop"
    ### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 2 · Four completions under $U = \log$ (derivation)
#
# Take $n = 4$ and $U(x) = \log x$. Since $U$ is increasing, the optimum uses the whole range:
# $r_1 = 1$ and $r_4 = 0$. Use the symmetry $r \mapsto 1 - r$ to set $r_3 = 1 - r_2$, write (4) as a
# function of $r_2$ alone, set its derivative to zero and solve the quadratic. Assign the optimal
# $r_2$ to `r2_star` (a float; the closed form has a $\sqrt 5$ in it).

# %%
### BEGIN SOLUTION
r2_star = (5 + np.sqrt(5)) / 10
### END SOLUTION

# %%
# NBVAL_CHECK_OUTPUT
with exercise(2, "optimal r_2 for n = 4, U = log"):
    assert 0 < float(r2_star) < 1, "r_2 lies in (0, 1)"
    ### BEGIN HIDDEN TESTS
    _neg = lambda ab: -np.sum(np.log([1 - ab[0], 1 - ab[1], 1.0, ab[0] - ab[1], ab[0], ab[1]]))  # noqa: E731
    _opt = scipy.optimize.minimize(_neg, x0=[0.6, 0.3], method="Nelder-Mead",
                                   options={"xatol": 1e-10, "fatol": 1e-14, "maxiter": 10_000}).x  # no symmetry assumed
    assert abs(r2_star - _opt[0]) < 1e-5, "not the maximiser of (4)"
    ### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 3 · The shape of collapse (predict-then-run)
#
# Theorem 1 says that for $U(x) = x^\gamma$ with $0 < \gamma < 1$ the optimal rewards are
# distributed, as $n \to \infty$, like $\mathrm{Beta}\big(\frac{1-\gamma}{2}, \frac{1-\gamma}{2}\big)$.
# The next cell solves (4) for $n = 60$ and $U(x) = \sqrt{x}$ and prints the share of rewards near
# the ends ($r < 0.1$ or $r > 0.9$) and near the middle ($|r - 0.5| < 0.1$). **Before running it**,
# predict from the Beta parameters where the rewards pile up: set `prediction` to `"ends"`,
# `"middle"` or `"flat"` (spread evenly).

# %%
### BEGIN SOLUTION
prediction = "ends"
### END SOLUTION

# %%
sol = rc.optimal_rewards(60, rc.power_utility(0.5))
share_ends = float(np.mean((sol.rewards < 0.1) | (sol.rewards > 0.9)))
share_middle = float(np.mean(np.abs(sol.rewards - 0.5) < 0.1))
print(f"share near the ends: {share_ends:.2f}, near the middle: {share_middle:.2f} (flat would give 0.20 and 0.20)")

# %%
# NBVAL_CHECK_OUTPUT
with exercise(3, "where the sqrt-utility rewards pile up"):
    assert prediction in ("ends", "middle", "flat"), 'prediction must be "ends", "middle" or "flat"'
    ### BEGIN HIDDEN TESTS
    _observed = "ends" if share_ends > 0.3 else "middle" if share_middle > 0.3 else "flat"
    assert prediction == _observed, "the experiment says otherwise"
    ### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 4 · A utility for open-ended prompts, on a budget (design)
#
# The prompt-aware fix of Lecture 6 gives open-ended prompts a utility whose optimal rewards spread
# **evenly** over $[0, 1]$. Your budget is **three solves** of (4) with $n = 50$. Choose up to three
# utilities from Class 1, $U(x) = x^\gamma$ with $0 < \gamma < 1$ (`("power", gamma)`), or Class 2,
# $U(x) = -x^{-\gamma}$ with $0 < \gamma \le 1$ (`("inverse_power", gamma)`), list them in `tries` in the
# order you would run them, and set `chosen` to the one you keep. The next cell solves exactly your
# tries; the grader checks that `chosen`'s optimal rewards are within a Kolmogorov–Smirnov distance
# of 0.05 of $\mathrm{Uniform}(0, 1)$. Use Theorems 1 and 2 to spend as few solves as you can.

# %%
### BEGIN SOLUTION
tries = [("inverse_power", 1.0)]
chosen = ("inverse_power", 1.0)
### END SOLUTION

# %%
design = {(kind, float(g)): rc.optimal_rewards(50, rc.Utility(kind, float(g))).rewards for kind, g in list(tries)[:3]}
for (kind, g), r in design.items():
    print(f"{kind}, gamma = {g:g}: rewards from {r.min():.2f} to {r.max():.2f}, median {np.median(r):.2f}")

# %%
# NBVAL_CHECK_OUTPUT
with exercise(4, "an even-spread utility within three solves"):
    assert 1 <= len(tries) <= 3 and tuple(chosen) in [tuple(t) for t in tries], \
        "at most three tries, and chosen must be one of them"
    ### BEGIN HIDDEN TESTS
    _r = design[(chosen[0], float(chosen[1]))]
    _ks = scipy.stats.kstest(_r, "uniform").statistic  # against Uniform(0, 1), not the library's Beta
    assert _ks <= 0.05, f"{chosen}: KS distance to Uniform(0, 1) is {_ks:.3f}"
    ### END HIDDEN TESTS
