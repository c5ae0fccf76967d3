# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Homework 01 · KL directions
#
# Companion to lecture notebook 01. Four exercises; each answer cell holds a stub
# (`raise NotImplementedError()`): replace the stub with your answer, then run the check cell under
# it, which prints one line, `Exercise N (...): PASS` or `FAIL - reason`. The checks you see test the
# form of your answer; the grader runs further tests you do not see. Do not edit the check cells
# (the grader runs its own copy of them). Exercise 1 must be your own code: a check fails if your
# function calls the library's KL helpers (or scipy's or torch's).
#
# Equation numbers refer to the Regularization chapter: eq. (3) is
# $D_{\mathrm{KL}}(P\,\|\,Q) = \sum_x P(x)\log\frac{P(x)}{Q(x)}$.

# %%
import numpy as np
import scipy
import torch

import rlhf_edu.divergences as dv
from rlhf_edu.homework import assert_no_library_calls, exercise

# %% [markdown]
# ## Exercise 1 · Exact KL with its conventions (re-implementation)
#
# Write `kl_exact(p, q)`: eq. (3) for two probability vectors (1-D numpy arrays of the same length),
# returned as a Python float. Use the conventions $0 \log \frac{0}{q} = 0$ (including $q = 0$) and
# $p \log \frac{p}{0} = +\infty$ for $p > 0$. Use numpy only.

# %%
def kl_exact(p, q):
    """p, q: (K,) arrays of probabilities -> float, KL(p || q) in nats."""
    ### BEGIN SOLUTION
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    support = p > 0
    if np.any(q[support] == 0):
        return float("inf")
    return float(np.sum(p[support] * (np.log(p[support]) - np.log(q[support]))))
    ### END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
with exercise(1, "exact KL with the 0 log 0 and Q = 0 conventions"):
    assert isinstance(kl_exact(np.array([0.5, 0.5]), np.array([0.5, 0.5])), float), "return a Python float"
    ### BEGIN HIDDEN TESTS
    assert_no_library_calls(kl_exact, dv.kl_categorical, dv.f_divergence,
                            scipy.stats.entropy, scipy.special.rel_entr, scipy.special.kl_div,
                            torch.nn.functional.kl_div)
    rng = np.random.default_rng(19)
    for _ in range(20):  # scipy.stats.entropy(p, q) is KL(p || q), computed independently
        p, q = rng.dirichlet(np.ones(6)), rng.dirichlet(np.ones(6))
        assert abs(kl_exact(p, q) - scipy.stats.entropy(p, q)) < 1e-10, "differs from eq. (3) on random pairs"
    p, q = np.array([0.5, 0.5, 0.0]), np.array([0.25, 0.25, 0.5])
    assert abs(kl_exact(p, q) - np.log(2)) < 1e-12, "0 log 0 must count as 0"
    assert kl_exact(q, p) == float("inf"), "P > 0 where Q = 0 must give +inf"
    assert abs(kl_exact(np.array([1.0, 0.0]), np.array([1.0, 0.0]))) < 1e-15, "KL(p || p) must be 0"
    ### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 2 · The optimum and its KL, by hand (derivation)
#
# The KL-regularised objective $\mathbb{E}_\pi[r] - \beta\,D_{\mathrm{KL}}(\pi\,\|\,\pi_{\text{ref}})$ is
# maximised by $\pi^*(y) = \pi_{\text{ref}}(y)\,e^{r(y)/\beta} / Z$ with
# $Z = \sum_y \pi_{\text{ref}}(y)\,e^{r(y)/\beta}$.
#
# (a) Show on paper that $D_{\mathrm{KL}}(\pi^*\,\|\,\pi_{\text{ref}}) = \mathbb{E}_{\pi^*}[r]/\beta - \log Z$.
#
# (b) Four responses have $\pi_{\text{ref}} = (0.4, 0.3, 0.2, 0.1)$ and rewards $r = (0, 1, 2, 3)$;
# take $\beta = 0.5$. Compute $\log Z$ and then $D_{\mathrm{KL}}(\pi^*\,\|\,\pi_{\text{ref}})$ from
# (a), with a calculator or a few lines of numpy, and assign them to `log_z` and `kl_star` (floats,
# 3 significant digits are enough).

# %%
### BEGIN SOLUTION
pi_ref, r, beta = np.array([0.4, 0.3, 0.2, 0.1]), np.array([0.0, 1.0, 2.0, 3.0]), 0.5
log_z = float(np.log(np.sum(pi_ref * np.exp(r / beta))))
pi_star = pi_ref * np.exp(r / beta - log_z)
kl_star = float(np.sum(pi_star * r) / beta - log_z)
### END SOLUTION

# %%
# NBVAL_CHECK_OUTPUT
with exercise(2, "log Z and KL(pi* || pi_ref) at beta = 0.5"):
    assert isinstance(float(log_z), float) and isinstance(float(kl_star), float), "assign two numbers"
    ### BEGIN HIDDEN TESTS
    _ref, _r = np.array([0.4, 0.3, 0.2, 0.1]), np.array([0.0, 1.0, 2.0, 3.0])
    _w = _ref * np.exp(_r / 0.5)                  # unnormalised pi*, by enumeration
    _star = _w / _w.sum()
    assert abs(log_z - np.log(_w.sum())) < 5e-3 * abs(np.log(_w.sum())), "log Z is off"
    assert abs(kl_star - scipy.stats.entropy(_star, _ref)) < 5e-3 * scipy.stats.entropy(_star, _ref), \
        "KL(pi* || pi_ref) is off"
    ### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 3 · Fit one Gaussian to two modes (predict-then-run)
#
# The target $p$ is an equal mixture of $\mathcal{N}(-2, 0.6^2)$ and $\mathcal{N}(2, 0.6^2)$. The next
# cells fit a single Gaussian $q = \mathcal{N}(\mu, \sigma^2)$ to it twice, by a grid search over
# $(\mu, \sigma)$: once minimising the forward KL $D_{\mathrm{KL}}(p\,\|\,q)$, once the reverse KL
# $D_{\mathrm{KL}}(q\,\|\,p)$.
#
# **Before running them**, predict which fit puts its mean on one of the two modes
# ($|\mu| > 1$) and the other between them: set `prediction = "forward"` or `prediction = "reverse"`.

# %%
### BEGIN SOLUTION
prediction = "reverse"
### END SOLUTION

# %%
x = np.linspace(-8, 8, 1601)
dx = x[1] - x[0]
normal = lambda x, m, s: np.exp(-0.5 * ((x - m) / s) ** 2) / (s * np.sqrt(2 * np.pi))  # noqa: E731
p_mix = 0.5 * normal(x, -2, 0.6) + 0.5 * normal(x, 2, 0.6)
mus, sigmas = np.linspace(-3, 3, 61), np.linspace(0.3, 3.0, 28)
fwd, rev = np.zeros((61, 28)), np.zeros((61, 28))
for i, m in enumerate(mus):
    for j, s in enumerate(sigmas):
        q = normal(x, m, s) + 1e-300
        fwd[i, j] = np.sum(p_mix * np.log((p_mix + 1e-300) / q)) * dx
        rev[i, j] = np.sum(q * np.log(q / (p_mix + 1e-300))) * dx
(i_f, j_f), (i_r, j_r) = np.unravel_index(fwd.argmin(), fwd.shape), np.unravel_index(rev.argmin(), rev.shape)
mu_fwd, sigma_fwd, mu_rev, sigma_rev = mus[i_f], sigmas[j_f], mus[i_r], sigmas[j_r]
print(f"forward-KL fit: mu = {mu_fwd:+.1f}, sigma = {sigma_fwd:.1f}")
print(f"reverse-KL fit: mu = {mu_rev:+.1f}, sigma = {sigma_rev:.1f}")

# %%
# NBVAL_CHECK_OUTPUT
with exercise(3, "which KL direction seeks a mode"):
    assert prediction in ("forward", "reverse"), 'prediction must be "forward" or "reverse"'
    ### BEGIN HIDDEN TESTS
    _on_mode = {"forward": abs(mu_fwd) > 1, "reverse": abs(mu_rev) > 1}
    assert sum(_on_mode.values()) == 1, "the experiment should separate the two directions"
    assert _on_mode[prediction], "the other direction sits on a mode"
    ### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 4 · Read the figure (interpret)
#
# Fix $p = \mathrm{Bernoulli}(0.1)$ and move $q = \mathrm{Bernoulli}(\theta)$. The figure draws both
# directions of KL against $\theta$. Which statement is true? Set `answer_4` to `"a"`, `"b"`, `"c"`
# or `"d"`.
#
# - (a) The two curves coincide: for two outcomes KL is symmetric.
# - (b) $D_{\mathrm{KL}}(p\,\|\,q)$ grows without bound as $\theta \to 1$, while $D_{\mathrm{KL}}(q\,\|\,p)$
#   stays below $\log 10 \approx 2.30$.
# - (c) $D_{\mathrm{KL}}(q\,\|\,p)$ grows without bound as $\theta \to 1$, while $D_{\mathrm{KL}}(p\,\|\,q)$
#   stays bounded.
# - (d) Both curves stay below $2.5$ on the whole range.

# %%
import matplotlib.pyplot as plt

theta = np.linspace(0.001, 0.999, 999)
bern_kl = lambda a, b: a * np.log(a / b) + (1 - a) * np.log((1 - a) / (1 - b))  # noqa: E731
kl_p_q, kl_q_p = bern_kl(0.1, theta), bern_kl(theta, 0.1)
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(theta, kl_p_q, label=r"$D_{KL}(p\,\|\,q_\theta)$")
ax.plot(theta, kl_q_p, label=r"$D_{KL}(q_\theta\,\|\,p)$")
ax.set(xlabel=r"$\theta$", ylabel="nats", ylim=(0, 6))
ax.legend()
plt.show()

# %%
### BEGIN SOLUTION
answer_4 = "b"
### END SOLUTION

# %%
# NBVAL_CHECK_OUTPUT
with exercise(4, "reading the two KL curves"):
    assert answer_4 in ("a", "b", "c", "d"), 'answer "a", "b", "c" or "d"'
    ### BEGIN HIDDEN TESTS
    _edge = np.array([1 - 1e-9])  # the limit theta -> 1, evaluated from the formula of the figure
    _truth = {"a": np.allclose(kl_p_q, kl_q_p),
              "b": bern_kl(0.1, _edge)[0] > 10 and kl_q_p.max() < np.log(10),
              "c": bern_kl(_edge, 0.1)[0] > 10 and kl_p_q.max() < 10,
              "d": max(kl_p_q.max(), kl_q_p.max()) < 2.5}
    assert sum(_truth.values()) == 1, "exactly one statement should hold"
    assert _truth[answer_4], "that statement does not match the curves"
    ### END HIDDEN TESTS
