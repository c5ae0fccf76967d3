# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: slideshow,tags,-all
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown] slideshow={"slide_type": "slide"}
# # 04 · Reward collapse: why one ranking loss gives every prompt the same rewards
#
# A reward model is usually trained on *rankings*: a labeller orders $n$ completions of a prompt and
# the model is pushed to score them in that order. Lecture 6 (after Song et al., 2023) shows a
# surprising consequence: if the model is flexible enough, the rewards it learns for a prompt depend
# only on the ranking and the loss, not on the prompt. An open-ended question and a question with a
# right/wrong answer end up with the **same reward distribution**. This notebook computes that
# distribution exactly, checks the lecture's Beta-limit theorems numerically, and shows the collapse
# (and its prompt-aware fix) during training.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. Learning goals
#
# After this notebook you can:
#
# 1. write reward-model training on rankings as maximising a sum of utilities $U(r_w - r_l)$, and
#    reduce it, in the over-parameterised limit, to one small concave programme (the lecture's (4));
# 2. solve that programme for hundreds of completions and certify the solution (KKT conditions);
# 3. check Theorems 1 and 2 (Beta limits of the optimal rewards) with the Kolmogorov–Smirnov
#    distance, and see how fast each converges;
# 4. explain *reward collapse* and watch it happen while training, and how a **prompt-aware**
#    utility keeps open-ended and closed-ended prompts apart.

# %% slideshow={"slide_type": "skip"}
# Colab or a fresh Jupyter: install the course package only if it is missing (in a clone,
# `make setup` has installed it). Colab ships torch; on a CPU-only laptop install torch first
# (README: `pip install torch==2.13.0`) so pip does not fetch a multi-GB CUDA build.
import importlib.util
import subprocess
import sys

if importlib.util.find_spec("rlhf_edu") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "rlhf-edu @ git+https://github.com/rlhf-edu/rlhf-edu"], check=True)

import inspect

import matplotlib.pyplot as plt
import numpy as np
import torch
from scipy import stats

from rlhf_edu.config import get_scale, seed_everything
from rlhf_edu import reward_collapse as rc

scale = get_scale()
gen = seed_everything(0, threads=2)
plt.rcParams.update({"figure.dpi": 90, "axes.grid": True, "grid.alpha": 0.3})

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. Background
#
# A reward model $R_\theta(\text{prompt}, \text{completion}) \in [0, 1]$ is trained on a dataset
# $\Pi$ of rankings. Every ranking of $n$ completions gives $\binom n2$ ordered pairs
# (winner $w$, loser $l$), and training maximises an increasing, concave **utility** of the gaps:
#
# $$\max_\theta \sum_{(\text{prom}, w, l)\in\Pi} U\big(R_\theta(\text{prom}, w) - R_\theta(\text{prom}, l)\big).$$
#
# InstructGPT's reward-model loss is the case $U_\sigma(x) = \log \mathrm{sigmoid}(x/\sigma)$ (the
# Bradley–Terry likelihood of notebook 03).
#
# **Over-parameterised limit.** If the network can give every completion any reward, the sum splits
# into one independent problem per prompt. Since $U$ is increasing, the optimum respects the ranking,
# and each prompt's rewards solve
#
# $$\max_{1 \ge r_1 \ge r_2 \ge \cdots \ge r_n \ge 0}\; \sum_{1\le i<j\le n} U(r_i - r_j). \qquad (4)$$
#
# Nothing in (4) mentions the prompt. Every prompt with $n$ ranked completions receives **the same
# set of rewards** $r_1^\star, \dots, r_n^\star$: this is *reward collapse*.

# %% [markdown] slideshow={"slide_type": "subslide"}
# **The utility decides the shape.** The lecture studies three classes and, for the first two, the
# limit as $n\to\infty$ of the empirical distribution of $r_1^\star,\dots,r_n^\star$:
#
# | class | utility | limit of the optimal rewards |
# |---|---|---|
# | 1 | $U_\gamma(x) = x^\gamma$, $0<\gamma<1$ | **Theorem 1**: $\mathrm{Beta}\big(\tfrac{1-\gamma}{2}, \tfrac{1-\gamma}{2}\big)$ |
# | 2 | $U_\gamma(x) = -x^{-\gamma}$, $0<\gamma\le1$; $U_0 = \log x$ | **Theorem 2**: $\mathrm{Beta}\big(\tfrac{1+\gamma}{2}, \tfrac{1+\gamma}{2}\big)$ |
# | 3 | $U_\sigma(x) = \log\mathrm{sigmoid}(x/\sigma)$ | no closed form; more spread as $\sigma$ shrinks |
#
# Class 1 pushes rewards to the two ends (Beta parameters below 1/2), class 2 spreads them out, up to
# the uniform distribution $\mathrm{Beta}(1,1)$ at $U = -1/x$.
#
# **Prompt-aware utility.** Let $U$ depend on the prompt: $U_{\text{prom}}(x) = -1/x$ (even spread)
# for open-ended prompts and $U_{\text{prom}}(x) = x$ (polarised rewards) for closed-ended ones, as in
# the lecture's experiments. Each prompt's problem stays concave, and different kinds of prompts now
# get different reward distributions.

# %% [markdown] slideshow={"slide_type": "subslide"}
# **How we solve (4).** Write the rewards through their gaps $d_k = r_k - r_{k+1} \ge 0$. At the
# optimum $r_1 = 1$ and $r_n = 0$ (stretching the range only helps an increasing $U$), so
# $\sum_k d_k = 1$, and $r_i - r_j = d_i + \dots + d_{j-1}$ is linear in $d$. Problem (4) is a concave
# maximisation over the simplex. Its gradient is
# $\partial F/\partial d_k = \sum_{i \le k < j} U'(r_i - r_j)$, and the optimum is certified by the
# **KKT conditions**: this gradient is equal on every positive gap (and no larger on a zero gap).
# Equivalently, no feasible direction increases $F$ to first order (the *Frank–Wolfe gap*
# $\max_k g_k - g\cdot d$ is zero).

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. Implementation
#
# The utilities carry their value and first two derivatives. The solver runs Newton's method under
# the constraint $\sum_k d_k = 1$, with a log barrier for utilities whose optimum may touch the
# boundary ($U'(0)$ finite: `logsigmoid` and `x`).

# %% slideshow={"slide_type": "skip"}
print(inspect.getsource(rc.Utility.value))
print(inspect.getsource(rc.beta_limit))

# %% slideshow={"slide_type": "skip"}
print(inspect.getsource(rc.gap_gradient_hessian))
print(inspect.getsource(rc.kkt_gap))
print(inspect.getsource(rc.optimal_rewards))

# %% slideshow={"slide_type": "skip"}
print(inspect.getsource(rc.ranking_utility_loss))
print(inspect.getsource(rc.train_ranking_rewards))

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. Experiments
#
# ### 4.1 The collapse, in one picture
#
# Two prompts, twelve completions each. For the **open-ended** prompt the completions' true quality
# is spread over $[0, 1]$; for the **closed-ended** one they are either right (quality near 0.9) or
# wrong (near 0.1). A labeller ranks both sets perfectly. With one fixed utility, what rewards does a
# perfectly fitting reward model give?

# %% slideshow={"slide_type": "subslide"}
task2 = rc.make_ranking_task(n_prompts=2, n_completions=12, seed=3)
U_fixed = rc.logsigmoid_utility(0.1)
optimum = rc.optimal_rewards(12, U_fixed)  # the same for both prompts: (4) only sees the ranking
print("optimal rewards (best first):", np.round(optimum.rewards, 2))

fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
for ax, is_open, colour in [(axes[0], True, "tab:blue"), (axes[1], False, "tab:red")]:
    q = task2.quality[task2.open_ended == is_open][0].numpy()
    ax.scatter(np.arange(1, 13), q, color=colour, marker="o", label="true quality")
    ax.plot(np.arange(1, 13), optimum.rewards, "k--s", ms=4, label=f"optimal reward, U = {U_fixed.name}")
    ax.set(title=("open-ended" if is_open else "closed-ended") + " prompt", xlabel="rank (1 = best)")
    ax.legend(loc="lower left", fontsize=8)
axes[0].set_ylabel("value in [0, 1]")
fig.suptitle("Reward collapse: both prompts get the same rewards, whatever their true qualities")
plt.tight_layout(); plt.show()

# %% [markdown] slideshow={"slide_type": "slide"}
# The true qualities differ completely, yet the optimal rewards (black) are identical: they depend on
# the rank and on $U$ only. The closed-ended prompt's two clear groups are smeared over the whole
# range, and the open-ended prompt's rewards are not its qualities either.
#
# ### 4.2 The utility sets the shape
#
# The optimal rewards for $n = 200$ completions under each class of the lecture (cf. Figs. 8–10).

# %% slideshow={"slide_type": "subslide"}
n_big = 200
families = {
    "Class 1: x^γ": [rc.power_utility(g) for g in (0.25, 0.5, 0.75)],
    "Class 2: -x^-γ (log x at γ=0)": [rc.inverse_power_utility(g) for g in (0.0, 0.5, 1.0)],
    "Class 3: log sigmoid(x/σ)": [rc.logsigmoid_utility(s) for s in (0.05, 0.2, 1.0)],
}
solutions = {u: rc.optimal_rewards(n_big, u) for us in families.values() for u in us}
fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), sharey=True)
bins = np.linspace(0, 1, 21)
for ax, (title, us) in zip(axes, families.items()):
    for u in us:
        ax.hist(solutions[u].rewards, bins=bins, density=True, histtype="step", lw=2, label=f"U = {u.name}")
    ax.set(title=title, xlabel="optimal reward")
    ax.legend(fontsize=8, loc="upper center")
axes[0].set_ylabel("density")
plt.tight_layout(); plt.show()
print("largest KKT gap over these 9 solutions:", f"{max(s.kkt_gap for s in solutions.values()):.1e}")

# %% [markdown] slideshow={"slide_type": "slide"}
# Class 1 piles rewards near 0 and 1 (more so as $\gamma \to 1$: $U = x$ puts half of them at each
# end). Class 2 spreads them (uniform at $U=-1/x$). The InstructGPT utility moves from an even spread
# (small $\sigma$) to a polarised one (large $\sigma$). The KKT gaps are at rounding level: these are
# the exact optima.
#
# ### 4.3 Checking Theorems 1 and 2
#
# Do the optimal rewards really follow the theorems' Beta distributions? We compare their empirical
# CDF with the Beta CDF and measure the Kolmogorov–Smirnov (KS) distance, the largest vertical gap
# between the two curves (`scipy.stats.kstest`).

# %% slideshow={"slide_type": "subslide"}
checked = [rc.power_utility(0.5), rc.log_utility(), rc.inverse_power_utility(1.0)]
fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), sharey=True)
grid = np.linspace(0, 1, 400)
for ax, u in zip(axes, checked):
    r = rc.optimal_rewards(100, u).rewards
    lim = rc.beta_limit(u)
    ax.step(np.sort(r), np.arange(1, 101) / 100, where="post", lw=2, label="optimal rewards, n = 100")
    ax.plot(grid, lim.cdf(grid), "k--", label=f"Beta({lim.args[0]:g}, {lim.args[1]:g})")
    ax.set(title=f"U = {u.name}: KS = {rc.ks_distance(r, u):.3f}", xlabel="reward")
    ax.legend(fontsize=8, loc="upper left")
axes[0].set_ylabel("CDF")
plt.tight_layout(); plt.show()

# %% slideshow={"slide_type": "subslide"}
ns = [20, 50, 100, 200]
ks_utils = [rc.power_utility(g) for g in (0.25, 0.5, 0.75)] + [rc.inverse_power_utility(g) for g in (0.0, 0.5, 1.0)]
ks_table = {u: [rc.ks_distance(rc.optimal_rewards(n, u).rewards, u) for n in ns] for u in ks_utils}
print("KS distance to the theorem's Beta\n" + f"{'U':>8s}" + "".join(f"{'n=' + str(n):>9s}" for n in ns))
for u, row in ks_table.items():
    print(f"{u.name:>8s}" + "".join(f"{v:9.4f}" for v in row))

fig, ax = plt.subplots(figsize=(6.5, 4))
for u, row in ks_table.items():
    ax.loglog(ns, row, "o-", label=f"U = {u.name}")
ax.loglog(ns, 1 / np.array(ns), "k:", label="1/n (floor: the end points 0 and 1)")
ax.set(xlabel="number of completions n", ylabel="KS distance", title="Convergence to the Beta limits")
ax.legend(fontsize=8); plt.tight_layout(); plt.show()

# %% [markdown] slideshow={"slide_type": "slide"}
# **What the numbers say.** For $x^\gamma$, $\log x$ and $-x^{-1/2}$ the KS distance sits at (or
# next to) its floor $1/n$: the optimal rewards always include the two end points 0 and 1, and the
# Beta CDF is 0 and 1 there, so an $n$-point sample cannot get closer than $1/n$. In other words, the
# theorems' Beta parameters describe the empirical distribution of the optimal rewards already at
# small $n$. The uniform limit of $U = -1/x$ is reached much more slowly (KS about 0.07, 0.04,
# 0.03, 0.02): the objective there is dominated by near neighbours, and the spacing evens out only
# logarithmically. It is still within 0.05 from $n = 50$ on.
#
# ### 4.4 Collapse during training (cf. the lecture's Fig. 12)
#
# Now train a reward model on rankings for 32 prompts (16 open-ended, 16 closed-ended, 16 completions
# each). The model is over-parameterised on purpose, one free logit per completion,
# $R = \mathrm{sigmoid}(\theta_{p,i})$: the lecture's interpolating regime taken literally. Its logits
# *start* at the true qualities, i.e. at the rewards each prompt should get, so the plots show where
# the training objective moves them. We train once with the fixed InstructGPT utility
# $\log\mathrm{sigmoid}(x/0.1)$ and once with the prompt-aware one.

# %% slideshow={"slide_type": "skip"}
task = rc.make_ranking_task(n_prompts=32, n_completions=16, seed=0)
preset = rc.CollapseTrainConfig.gpt2 if scale.name == "gpt2" else rc.CollapseTrainConfig.tiny
cfg = preset(snapshot_every=10)
runs = {
    "fixed U = log sigmoid(x/0.1)": rc.train_ranking_rewards(task, lambda _: rc.logsigmoid_utility(0.1), cfg),
    "prompt-aware U (-1/x open, x closed)": rc.train_ranking_rewards(task, rc.prompt_aware_utility, cfg),
}

# %% slideshow={"slide_type": "subslide"}
snap_steps = runs[next(iter(runs))]["snapshot_step"]
show = [snap_steps.index(s) for s in (0, 10, 30)] + [len(snap_steps) - 1]
fig, axes = plt.subplots(2, len(show), figsize=(13, 5.6), sharex=True, sharey=True)
bins = np.linspace(0, 1, 11)
for row, (name, h) in enumerate(runs.items()):
    for col, k in enumerate(show):
        ax = axes[row, col]
        ax.hist(h["rewards_open"][k], bins=bins, density=True, alpha=0.55, color="tab:blue", label="open-ended")
        ax.hist(h["rewards_closed"][k], bins=bins, density=True, alpha=0.55, color="tab:red", label="closed-ended")
        ax.set_title(f"step {h['snapshot_step'][k]}", fontsize=10)
        if col == 0:
            ax.set_ylabel(name.split(" (")[0] + "\ndensity", fontsize=9)
        if row == 1:
            ax.set_xlabel("reward")
axes[0, 0].legend(fontsize=8)
fig.suptitle("Reward distributions of the two prompt types during training\n"
             "top: one fixed utility (they collapse onto one shape); bottom: prompt-aware utility (they stay apart)")
plt.tight_layout(); plt.show()

# %% slideshow={"slide_type": "subslide"}
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
for name, h in runs.items():
    w = [stats.wasserstein_distance(a, b) for a, b in zip(h["rewards_open"], h["rewards_closed"])]
    axes[0].plot(h["snapshot_step"], w, "o-", label=name)
    axes[1].plot(h["step"], np.array(h["loss"]) / h["loss"][0], label=name)
axes[0].set(xlabel="step", ylabel="Wasserstein-1 distance",
            title="open-ended vs closed-ended reward distributions")
axes[1].set(xlabel="step", ylabel="loss / loss at step 0", title="training loss, -mean U(r_w - r_l)")
for ax in axes:
    ax.legend(fontsize=8)
plt.tight_layout(); plt.show()

# %% [markdown] slideshow={"slide_type": "-"}
# With one utility the two prompt types start far apart (their true qualities) and end with the same
# distribution: the open-ended prompts lose their even spread at the edges and the closed-ended ones
# lose their two groups. The distance between them falls to almost zero. With the prompt-aware
# utility, the open-ended rewards spread evenly ($-1/x$) and the closed-ended ones are pushed to 0 and
# 1 ($x$). Note one limit of the fix: $U = x$ splits each ranking at its **middle** rank, whatever the
# true number of right answers, because a ranking alone does not say where the right answers end.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. What the logged metrics mean
#
# * **KKT gap** (`CollapseSolution.kkt_gap`): the largest first-order gain of any feasible move,
#   relative to the gradient's size. Zero at the optimum. The solver stops once it is below
#   $10^{-10}$, a hundred times inside the check's $10^{-8}$; moving a single reward by $10^{-5}$
#   raises it above $10^{-8}$, so the check does catch a wrong solution.
# * **KS distance**: the largest gap between the empirical CDF of the optimal rewards and the
#   theorem's Beta CDF. Its floor is $1/n$ because the rewards include 0 and 1.
# * **Training loss**: $-\text{mean}_{i<j}\,U_{\text{prom}}(r_i - r_j)$, averaged over prompts. Its
#   scale depends on $U$ ($-1/x$ is large for close pairs), so compare curves of the same utility only.
# * **Wasserstein distance** between the open- and closed-ended reward distributions: how far apart
#   the two kinds of prompts are. Near zero means collapse.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. Checks
#
# Deterministic summaries that `pytest --nbval-lax` compares with the stored outputs.

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
fekete = rc.optimal_rewards(4, rc.log_utility()).rewards
s5 = 1 / np.sqrt(5)
print("log x, n=4: rewards are (1, (1+1/sqrt5)/2, (1-1/sqrt5)/2, 0):",
      np.allclose(fekete, [1, (1 + s5) / 2, (1 - s5) / 2, 0], atol=1e-9))
print("all 9 solutions at n=200 ordered with KKT gap < 1e-8:",
      all(np.all(np.diff(s.rewards) <= 0) and s.kkt_gap < 1e-8 for s in solutions.values()))
moved = {u: s.rewards.copy() for u, s in solutions.items()}
for r in moved.values():
    r[100] += min(1e-5, (r[99] - r[100]) / 2)  # one reward moved by at most 1e-5: a wrong solution
print("each with one reward moved by 1e-5 fails the same test:", all(rc.kkt_gap(r, u) >= 1e-8 for u, r in moved.items()))
print("U = x puts half the rewards at each end:",
      np.allclose(rc.optimal_rewards(10, rc.linear_utility()).rewards, [1] * 5 + [0] * 5, atol=1e-6))

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
for u in checked:
    ks = rc.ks_distance(rc.optimal_rewards(100, u).rewards, u)
    print(f"KS at n=100 for U = {u.name}: {ks:.2f} (< 0.05: {ks < 0.05})")
print("KS shrinks with n for every utility:", all(row[-1] < row[0] for row in ks_table.values()))

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
w_end = {name: stats.wasserstein_distance(h["rewards_open"][-1], h["rewards_closed"][-1]) for name, h in runs.items()}
w_start = stats.wasserstein_distance(runs[next(iter(runs))]["rewards_open"][0], runs[next(iter(runs))]["rewards_closed"][0])
print("prompt types start apart (W1 > 0.1):", w_start > 0.1)
print("fixed U: distributions collapse (W1 < 0.02):", w_end["fixed U = log sigmoid(x/0.1)"] < 0.02)
print("prompt-aware U: distributions stay apart (W1 > 0.15):", w_end["prompt-aware U (-1/x open, x closed)"] > 0.15)


# %% [markdown] slideshow={"slide_type": "slide"}
# ## 7. Exercises
#
# Fill in the bodies between the solution markers; the cell after each exercise checks your function
# against the library.

# %% slideshow={"slide_type": "subslide"}
def beta_limit_parameters(kind, gamma):
    """The (a, b) parameters of the limiting Beta distribution of the optimal rewards.

    kind: "power" for U(x) = x^gamma (Theorem 1), "inverse_power" for U(x) = -x^-gamma, with
    log x at gamma = 0 (Theorem 2). gamma: a float in the theorem's range. Returns a tuple (a, b).
    """
    ### BEGIN SOLUTION
    a = (1 - gamma) / 2 if kind == "power" else (1 + gamma) / 2
    return (a, a)
    ### END SOLUTION


# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
cases = [("power", g, rc.power_utility(g)) for g in (0.1, 0.5, 0.9)]
cases += [("inverse_power", g, rc.inverse_power_utility(g)) for g in (0.0, 0.3, 1.0)]
ok = all(np.allclose(beta_limit_parameters(k, g), rc.beta_limit(u).args) for k, g, u in cases)
print("Exercise 1 (Beta parameters of Theorems 1 and 2):", ok)


# %% slideshow={"slide_type": "subslide"}
def total_utility_loop(rewards, U):
    """sum_{i<j} U(r_i - r_j) with a double loop (the objective of (4)).

    rewards: (n,) numpy array sorted best first, values in [0, 1]; U: a function of a float.
    Returns a float.
    """
    ### BEGIN SOLUTION
    n = len(rewards)
    return float(sum(U(rewards[i] - rewards[j]) for i in range(n) for j in range(i + 1, n)))
    ### END SOLUTION


# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
ok = True
for u in [rc.power_utility(0.5), rc.log_utility(), rc.logsigmoid_utility(0.2)]:
    r = rc.optimal_rewards(9, u).rewards
    ok = ok and np.isclose(total_utility_loop(r, lambda x: float(u.value(np.array(x)))), rc.total_utility(r, u))
print("Exercise 2 (the objective of (4) by a double loop):", ok)


# %% slideshow={"slide_type": "subslide"}
def ks_statistic(sample, cdf):
    """Kolmogorov-Smirnov distance sup_x |F_n(x) - F(x)| between a sample and a continuous CDF.

    sample: (n,) numpy array; cdf: a vectorised function. The supremum is reached at a sample
    point, just before or just after the empirical CDF's jump there. Returns a float.
    """
    ### BEGIN SOLUTION
    x = np.sort(sample)
    n = len(x)
    F = cdf(x)
    after = np.arange(1, n + 1) / n - F  # F_n(x_k) - F(x_k)
    before = F - np.arange(0, n) / n  # F(x_k) - F_n(x_k^-)
    return float(max(after.max(), before.max()))
    ### END SOLUTION


# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
r = rc.optimal_rewards(50, rc.inverse_power_utility(0.5)).rewards
lim = rc.beta_limit(rc.inverse_power_utility(0.5))
ok = np.isclose(ks_statistic(r, lim.cdf), stats.kstest(r, lim.cdf).statistic)
ok = ok and np.isclose(ks_statistic(r[::2], stats.uniform.cdf), stats.kstest(r[::2], "uniform").statistic)
print("Exercise 3 (KS distance matches scipy.stats.kstest):", bool(ok))

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 8. References
#
# * Y. Yang, Lecture 6 "RLHF in Language Models" (PKU, 2023), section "Reward collapse in alignment":
#   the utility objective, problem (4), Theorems 1–2, the prompt-aware utility, Figs. 7–12.
# * Z. Song, T. Cai, J. D. Lee, W. J. Su, "Reward collapse in aligning large language models", 2023
#   (arXiv:2305.17608).
# * L. Ouyang et al., "Training language models to follow instructions with human feedback"
#   (InstructGPT), 2022: the log-sigmoid ranking loss.
# * S. Boyd and L. Vandenberghe, *Convex Optimization*, §10.2 (equality-constrained Newton) and §11.2
#   (barrier method).
