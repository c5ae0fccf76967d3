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
# distribution exactly, checks the lecture's Beta-limit theorems numerically, and then trains a
# reward model with shared parameters on rankings and watches the collapse on prompts it never saw,
# together with the prompt-aware fix.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. Learning goals
#
# After this notebook you can:
#
# 1. write reward-model training on rankings as maximising a sum of utilities $U(r_w - r_l)$, and
#    reduce it, in the over-parameterised limit, to one small concave programme (the lecture's (4));
# 2. solve that programme for hundreds of completions and certify the solution (KKT conditions);
# 3. explain in words why Theorems 1 and 2 give Beta limits, and measure how fast the optimal rewards
#    approach them with a distance that has no $1/n$ floor;
# 4. explain why the theorems need bounded rewards;
# 5. watch *reward collapse* in a reward model with shared parameters on held-out prompts, fix it
#    with a **prompt-aware** utility chosen from the prompt itself, and say what collapse costs the
#    policy that is later trained on the reward.

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
# **Bounded rewards are part of the theorem.** The lecture assumes $0 \le R \le 1$, and (4) is posed
# on that box. Notebook 03's reward model has no such bound: its head outputs any real number. Then
# for a correctly ordered set of rewards, multiplying all of them by $c > 1$ widens every gap, and
# since $U$ is increasing the objective rises: $\sum \log\mathrm{sigmoid}(c\,(r_i - r_j)) \to 0$ as
# $c \to \infty$ without ever reaching it. Unbounded rewards have **no finite optimum**, so the
# learned scale is set by early stopping, weight decay or a centring penalty, and the theorems say
# nothing about its shape. The experiments below use rewards squashed by a sigmoid into $(0, 1)$,
# as the lecture does (§4.5 prints the unbounded case).

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
# **Why Beta limits, in words.** Think of the $n$ rewards as particles on $[0, 1]$ and of (4) as
# the total "happiness" of all pairs, each pair wanting to be far apart. Two forces compete.
# *Long-range:* every pair gains from a wider gap, and an interior particle is pushed from both
# sides while an end particle is pushed from one side only, so mass drifts to the ends. *Short-range:*
# a pair that gets close loses $U(0^+)$, which is $-\infty$ for Class 2: this keeps neighbours
# apart and evens out the spacing. For $x^\gamma$ (Class 1) the short-range penalty is finite and the
# long-range push wins: densities $\propto (r(1-r))^{-(1+\gamma)/2}$ that pile up at the ends, more
# so as $\gamma \to 1$ ($U = x$ sends half the rewards to each end). For Class 2 the short-range
# penalty strengthens with $\gamma$: $\log x$ gives the arcsine law $\mathrm{Beta}(\frac12,\frac12)$
# (the equilibrium of charges with logarithmic repulsion) and $-1/x$, where near neighbours
# dominate, the uniform $\mathrm{Beta}(1,1)$. In density terms, $\mathrm{Beta}(a, a) \propto (r(1-r))^{a-1}$ with exponent
# $a - 1 = -\frac{1+\gamma}{2}$ in Class 1 (from $-\frac12$ towards $-1$: more piling at the ends) and
# $a - 1 = -\frac{1-\gamma}{2}$ in Class 2 (from $-\frac12$ up to $0$: flat). §4.3 draws this.
#
# **Prompt-aware utility.** Let $U$ depend on the prompt: $U_{\text{prom}}(x) = -1/x$ (even spread)
# for open-ended prompts and $U_{\text{prom}}(x) = x$ (polarised rewards) for closed-ended ones, as in
# the lecture's experiments. Each prompt's problem stays concave, and different kinds of prompts now
# get different reward distributions. The lecture leaves the choice of $U_{\text{prom}}$ to the
# practitioner; §4.6 derives it from the prompt.

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
# The core of each helper, without its input checks. `optimal_rewards` (not printed) solves (4) by
# Newton's method on the gaps under $\sum_k d_k = 1$, with a log barrier for the utilities whose
# optimum may touch the boundary ($U'(0)$ finite: `logsigmoid` and `x`), and stops when `kkt_gap`
# is below $10^{-10}$. `pp_distance` measures how far the optimal rewards are from the Beta
# quantiles (§4.4). The training experiment uses `SharedRewardNet`, one small network for all
# prompts, and the lecture's ranking loss.

# %% slideshow={"slide_type": "skip"}
import ast
import textwrap


def show_core(fn):
    """Print a function's source without its docstring and its input checks (check_*, raise ValueError)."""
    src = textwrap.dedent(inspect.getsource(fn))
    body = ast.parse(src).body[0].body
    doc = body[0] if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) else None
    lines = src.splitlines()
    drop = set(range(doc.lineno - 1, doc.end_lineno)) if doc else set()
    for node in body:
        text = "\n".join(lines[node.lineno - 1:node.end_lineno])
        only_raises = isinstance(node, ast.If) and not node.orelse and all(isinstance(b, ast.Raise) for b in node.body)
        if "check_" in text.split("\n")[0] or only_raises:
            drop |= set(range(node.lineno - 1, node.end_lineno))
    print("\n".join(l for k, l in enumerate(lines) if k not in drop) + "\n")


for fn in (rc.beta_limit, rc.gap_gradient_hessian, rc.kkt_gap, rc.pp_distance):
    show_core(fn)

# %% slideshow={"slide_type": "skip"}
for fn in (rc.ranking_utility_loss, rc.SharedRewardNet.forward, rc.train_shared_reward_model):
    show_core(fn)

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
# The optimal rewards for $n = 200$ completions under each class of the lecture (cf. Figs. 8–10),
# with the density of the theorem's Beta limit drawn over Classes 1 and 2 (Class 3 has no theorem).

# %% slideshow={"slide_type": "subslide"}
n_big = 200
families = {
    "Class 1: x^γ": [rc.power_utility(g) for g in (0.25, 0.5, 0.75)],
    "Class 2: -x^-γ (log x at γ=0)": [rc.inverse_power_utility(g) for g in (0.0, 0.5, 1.0)],
    "Class 3: log sigmoid(x/σ)": [rc.logsigmoid_utility(s) for s in (0.05, 0.2, 1.0)],
}
solutions = {u: rc.optimal_rewards(n_big, u) for us in families.values() for u in us}
fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharey=True)
bins = np.linspace(0, 1, 21)
x_in = np.linspace(0.005, 0.995, 300)
for ax, (title, us) in zip(axes, families.items()):
    for u, colour in zip(us, ("tab:blue", "tab:orange", "tab:green")):
        ax.hist(solutions[u].rewards, bins=bins, density=True, histtype="step", lw=2, color=colour,
                label=f"U = {u.name}")
        if u.kind != "logsigmoid":
            lim = rc.beta_limit(u)
            ax.plot(x_in, lim.pdf(x_in), ":", color=colour, lw=1.5, label=f"Beta({lim.args[0]:g}, {lim.args[1]:g})")
    ax.set(title=title, xlabel="optimal reward", ylim=(0, 4.5))
    ax.legend(fontsize=7, loc="upper center", ncol=2)
axes[0].set_ylabel("density")
plt.tight_layout(); plt.show()
print("largest KKT gap over these 9 solutions:", f"{max(s.kkt_gap for s in solutions.values()):.1e}")
for u, sol in solutions.items():
    print(f"U = {u.name:>17s}: share of rewards within 0.05 of an end: {np.mean((sol.rewards < 0.05) | (sol.rewards > 0.95)):.2f}")

# %% [markdown] slideshow={"slide_type": "slide"}
# Class 1 piles rewards near 0 and 1, more so as $\gamma \to 1$: the share within 0.05 of an end
# rises from 0.38 at $x^{0.25}$ to 0.71 at $x^{0.75}$. Class 2 spreads them: 0.29 at $\log x$ down
# to 0.13 at $U=-1/x$ (a uniform spread would give 0.10). The InstructGPT utility moves from an even
# spread at small $\sigma$ (0.19 at $\sigma = 0.05$) to a polarised one at large $\sigma$ (0.79 at
# $\sigma = 1$). The dotted Beta densities follow the histograms. The KKT gaps are at rounding level: these are the exact optima.
#
# ### 4.3 Why Beta: long-range push against short-range repulsion
#
# One figure for §2's intuition. Each row places the $n = 30$ optimal rewards of one utility on
# $[0, 1]$, ordered from the strongest long-range push (top) to the strongest short-range repulsion
# (bottom); the shading is the theorem's Beta density.

# %% slideshow={"slide_type": "subslide"}
intuition = [rc.power_utility(0.75), rc.power_utility(0.25), rc.log_utility(), rc.inverse_power_utility(0.5),
             rc.inverse_power_utility(1.0)]
fig, ax = plt.subplots(figsize=(10, 3.8))
for row, u in enumerate(intuition):
    y = len(intuition) - 1 - row
    lim = rc.beta_limit(u)
    dens = lim.pdf(x_in)
    ax.fill_between(x_in, y, y + 0.8 * np.minimum(dens, 4) / 4, color="0.85", lw=0)
    r30 = rc.optimal_rewards(30, u).rewards
    ax.plot(r30, np.full(30, y), "|", ms=18, mew=2, color="tab:blue")
    ratio = (r30[0] - r30[1]) / (r30[14] - r30[15])  # gap between the two best over the middle gap
    print(f"U = {u.name:>7s}: gap ratio end/middle = {ratio:.2f}")
    ax.text(1.02, y, f"U = {u.name}\nBeta({lim.args[0]:g}, {lim.args[1]:g}); gap ratio {ratio:.2f}", va="center", fontsize=8)
ax.set(yticks=[], xlim=(-0.01, 1.01), xlabel="optimal reward (n = 30)",
       title="top: long-range push wins (ends fill up); bottom: short-range repulsion wins (even spacing)")
plt.tight_layout(); plt.show()

# %% [markdown] slideshow={"slide_type": "slide"}
# The printed "gap ratio" compares the gap between the two best rewards with the gap in the middle of
# the ranking. It is 0.00 for $x^{0.75}$ and 0.02 for $x^{0.25}$ (the ends are crowded), 0.08 for
# $\log x$, 0.34 for $-x^{-1/2}$ and 0.62 for $-1/x$: the move from the long-range to the
# short-range regime. Even $-1/x$ is not evenly spaced at $n = 30$ (a ratio of 1 would be): its
# uniform limit is approached slowly, as §4.4 measures.
#
# ### 4.4 Checking Theorems 1 and 2
#
# Do the optimal rewards really follow the theorems' Beta distributions? First the CDFs at
# $n = 100$.

# %% slideshow={"slide_type": "subslide"}
checked = [rc.power_utility(0.5), rc.log_utility(), rc.inverse_power_utility(1.0)]
fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), sharey=True)
grid = np.linspace(0, 1, 400)
for ax, u in zip(axes, checked):
    r = rc.optimal_rewards(100, u).rewards
    lim = rc.beta_limit(u)
    ax.step(np.sort(r), np.arange(1, 101) / 100, where="post", lw=2, label="optimal rewards, n = 100")
    ax.plot(grid, lim.cdf(grid), "k--", label=f"Beta({lim.args[0]:g}, {lim.args[1]:g})")
    ax.set(title=f"U = {u.name}: P–P distance = {rc.pp_distance(r, u):.4f}", xlabel="reward")
    ax.legend(fontsize=8, loc="upper left")
axes[0].set_ylabel("CDF")
plt.tight_layout(); plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Measuring convergence.** The usual Kolmogorov–Smirnov (KS) distance compares the empirical CDF,
# which jumps by $1/n$ at each reward, with the Beta CDF. The optimal rewards always include 0 and 1,
# where the Beta CDF is 0 and 1, so the KS distance is at least $1/n$ even for a perfect fit: a
# KS curve mostly shows this floor. The optimal rewards are not a random sample but $n$ deterministic
# points, so we ask directly whether they sit at the Beta quantiles: the **P–P distance**
# $\max_k |F(r_{(k)}) - \tfrac{k-1}{n-1}|$ (the largest gap in a probability–probability plot) is 0
# exactly when they do, and has no floor.

# %% slideshow={"slide_type": "subslide"}
ns = [25, 50, 100, 200]
ks_utils = [rc.power_utility(g) for g in (0.25, 0.5, 0.75)] + [rc.inverse_power_utility(g) for g in (0.0, 0.5, 1.0)]
conv_rewards = {u: {n: rc.optimal_rewards(n, u).rewards for n in ns} for u in ks_utils}
pp_table = {u: [rc.pp_distance(conv_rewards[u][n], u) for n in ns] for u in ks_utils}
ks_table = {u: [rc.ks_distance(conv_rewards[u][n], u) for n in ns] for u in ks_utils}
slopes = {u: np.polyfit(np.log(ns), np.log(row), 1)[0] for u, row in pp_table.items()}
print(f"{'':>8s}{'P–P distance to the Beta limit':^36s}{'':>8s}  KS distance (floor 1/n)")
print(f"{'U':>8s}" + "".join(f"{'n=' + str(n):>9s}" for n in ns) + f"{'slope':>8s}  " + "".join(f"{'n=' + str(n):>8s}" for n in ns))
for u in ks_utils:
    print(f"{u.name:>8s}" + "".join(f"{v:9.4f}" for v in pp_table[u]) + f"{slopes[u]:8.2f}  "
          + "".join(f"{v:8.4f}" for v in ks_table[u]))
print(f"{'1/n':>8s}" + " " * 45 + "".join(f"{1 / n:8.4f}" for n in ns))

fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
for u in ks_utils:
    axes[0].loglog(ns, pp_table[u], "o-", label=f"U = {u.name} (slope {slopes[u]:.2f})")
    axes[1].loglog(ns, ks_table[u], "o-", label=f"U = {u.name}")
for ax in axes:
    ax.loglog(ns, 1 / np.array(ns), "k:", label="1/n")
axes[0].set(xlabel="number of completions n", ylabel="distance to the Beta limit",
            title="P–P distance (no floor): the real convergence")
axes[1].set(xlabel="number of completions n", title="KS distance: mostly its floor 1/n")
axes[0].legend(fontsize=7); axes[1].legend(fontsize=7)
plt.tight_layout(); plt.show()

# %% [markdown] slideshow={"slide_type": "slide"}
# **What the numbers say.** The KS column equals $1/n$ to four digits for four of the six utilities:
# it measures its floor, not the fit. The P–P distance separates two behaviours. For the Class 1
# utilities and $\log x$ it falls as about $n^{-0.9}$ (slopes $-0.90$ to $-0.94$): the rewards sit at the
# Beta quantiles up to an error of order $1/n$. For $-x^{-1/2}$ and $-1/x$ the slopes are only $-0.17$
# and $-0.15$: from $n = 25$ to $n = 200$ the distance of $-1/x$ falls from 0.022 to 0.016. Over this
# range of $n$ such a slow decay cannot be told apart from a logarithmic one, even at $n$ in the
# hundreds the even spread of Theorem 2 is reached only approximately (InstructGPT's labellers
# ranked 4 to 9 completions per prompt). The KS table hid this: its apparent $n^{-0.5}$ for $-1/x$ mixes the $1/n$ floor
# with the slow true decay.
#
# ### 4.5 Unbounded rewards have no optimum
#
# §2's boundedness argument in numbers: take the optimal bounded rewards of $\log\mathrm{sigmoid}(x/0.1)$
# at $n = 12$ and multiply them by $c$, as an unbounded reward model may.

# %% slideshow={"slide_type": "subslide"}
for c in (1, 3, 10, 30, 100):
    print(f"rewards x {c:>3d}: objective of (4) with U = {U_fixed.name}: {rc.total_utility(c * optimum.rewards, U_fixed):10.5f}")

# %% [markdown] slideshow={"slide_type": "-"}
# The objective keeps rising towards 0 as the scale grows: without the bound there is no optimum to
# collapse to, and the shape theorems do not apply. Bounding the reward (a sigmoid, as below) restores
# them.

# %% [markdown] slideshow={"slide_type": "slide"}
# ### 4.6 Collapse in a reward model with shared parameters, on held-out prompts
#
# The theorem is about a model that fits every prompt exactly. A real reward model shares its
# parameters across prompts and is judged on prompts it never saw (the lecture's Fig. 11 is on a
# test set). So we build the smallest such setting:
#
# * every prompt has 4 features $x$ and every completion 4 features $z$; labellers rank completions
#   by a hidden score $s = a \cdot z \sim N(0, 1)$;
# * a prompt is **open-ended** when $x_0 + 0.3\,\epsilon > 0$: its completions' qualities are
#   $\Phi(s)$, uniform on $[0, 1]$; a **closed-ended** prompt has a right/wrong threshold
#   $t = 0.6\,x_1$: answers with $s > t$ are right (quality near 0.9), the others wrong (near 0.1);
# * the reward model is one MLP for all prompts, $R = \mathrm{sigmoid}(\mathrm{MLP}([x, z]))$, with
#   64 training prompts and 64 **held-out** prompts of 16 completions each.
#
# The rankings are the same kind of object for both prompt types; only the qualities, which the model
# never sees in the ranking loss, differ. To start from a model that knows the two shapes, we first
# fit $R$ to the true qualities (a warm start, standing in for a reward model that already scores
# well), then train on the rankings alone, and watch where the ranking loss moves the rewards (cf.
# the lecture's Fig. 12).
#
# **Choosing the prompt-aware utility from the prompt.** The lecture's fix needs to know which
# prompts are open-ended, and no oracle flag exists in practice. So we label only 16 of the 64
# training prompts by hand and classify the rest by their features (nearest class mean). In practice
# the same choice can come from a prompt classifier, from task metadata (maths and code against
# creative writing), or from the labellers, who can mark a prompt as having a right answer. We train
# three reward models per seed: a fixed $U = \log\mathrm{sigmoid}(x/0.1)$, the prompt-aware $U$ from
# the oracle flag, and the prompt-aware $U$ from the classifier.

# %% slideshow={"slide_type": "skip"}
n_seeds = scale.n(5 if scale.name == "tiny" else 10)
shared_cfg = dict(steps=600, warm_steps=400, lr=0.03, snapshot_every=50)
configs = ("fixed U", "prompt-aware U (oracle flag)", "prompt-aware U (classified prompt)")
tasks, runs, accuracy = [], {k: [] for k in configs}, []
for seed in range(n_seeds):
    train = rc.make_feature_ranking_task(64, 16, seed=100 + seed)
    test = rc.make_feature_ranking_task(64, 16, seed=200 + seed)
    tasks.append((train, test))
    x, is_open = train.prompt_x.numpy(), train.open_ended.numpy()  # (64, 4), (64,)
    labelled = np.arange(16)  # hand-labelled prompts
    centre_open, centre_closed = x[labelled][is_open[labelled]].mean(0), x[labelled][~is_open[labelled]].mean(0)
    predicted = np.linalg.norm(x - centre_open, axis=1) < np.linalg.norm(x - centre_closed, axis=1)  # (64,)
    accuracy.append(np.mean(predicted == is_open))
    choices = {"fixed U": [U_fixed] * 64,
               "prompt-aware U (oracle flag)": [rc.prompt_aware_utility(bool(o)) for o in is_open],
               "prompt-aware U (classified prompt)": [rc.prompt_aware_utility(bool(o)) for o in predicted]}
    for name, utilities in choices.items():
        runs[name].append(rc.train_shared_reward_model(train, test, utilities, rc.SharedTrainConfig(seed=seed, **shared_cfg)))
print(f"{n_seeds} seeds; prompt-type classifier accuracy on the 64 training prompts: "
      f"{np.mean(accuracy):.2f} ± {np.std(accuracy, ddof=1) / np.sqrt(n_seeds):.2f}")

# %% slideshow={"slide_type": "subslide"}
from rlhf_edu.plotting import band, effect_verdict, mean_se


def split_w1(rewards, task):
    """W1 distance between the rewards of open-ended and closed-ended prompts."""
    o = task.open_ended.numpy()
    return stats.wasserstein_distance(rewards[o].ravel(), rewards[~o].ravel())


steps = np.array(runs["fixed U"][0]["snapshot_step"])
w_test = {k: np.array([[split_w1(r, te) for r in h["test_rewards"]] for h, (tr, te) in zip(hs, tasks)]) for k, hs in runs.items()}
w_train = {k: np.array([[split_w1(r, tr) for r in h["train_rewards"]] for h, (tr, te) in zip(hs, tasks)]) for k, hs in runs.items()}
w_truth = np.array([split_w1(te.quality.numpy(), te) for tr, te in tasks])

show_steps = [0, 100, steps[-1]]
pick = ["fixed U", "prompt-aware U (classified prompt)"]
fig, axes = plt.subplots(2, 3, figsize=(13, 5.8), sharex=True, sharey=True)
hist_bins = np.linspace(0, 1, 11)
for row, name in enumerate(pick):
    for col, st in enumerate(show_steps):
        k = list(steps).index(st)
        ax = axes[row, col]
        for is_open, colour, label in [(True, "tab:blue", "open-ended"), (False, "tab:red", "closed-ended")]:
            pooled = np.concatenate([h["test_rewards"][k][te.open_ended.numpy() == is_open].ravel()
                                     for h, (tr, te) in zip(runs[name], tasks)])
            ax.hist(pooled, bins=hist_bins, density=True, alpha=0.5, color=colour, label=label)
        ax.set_title(("warm start (step 0)" if st == 0 else f"ranking step {st}")
                     + f": W1 = {w_test[name][:, k].mean():.3f}", fontsize=10)
        if col == 0:
            ax.set_ylabel(name + "\ndensity", fontsize=9)
        if row == 1:
            ax.set_xlabel("reward on held-out prompts")
axes[0, 0].legend(fontsize=8)
fig.suptitle(f"Held-out rewards of the two prompt types ({n_seeds} seeds pooled)\n"
             "top: one fixed utility (the shapes converge); bottom: prompt-aware utility (they stay apart)")
plt.tight_layout(); plt.show()

# %% slideshow={"slide_type": "subslide"}
fig, ax = plt.subplots(figsize=(11, 4))
for name, colour in zip(configs, ("tab:gray", "tab:green", "tab:purple")):
    band(ax, steps, w_test[name], label=name + ", held-out", color=colour)
    band(ax, steps, w_train[name], color=colour, ls="--", lw=1)
ax.axhline(w_truth.mean(), color="k", ls=":", label="true qualities")
ax.set(xlabel="ranking-loss step (after the warm start)", ylabel="W1(open-ended, closed-ended)",
       title=f"Distance between the two prompt types' rewards, mean ± SE over {n_seeds} seeds\n(solid: held-out prompts, dashed: training prompts)")
ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1)); plt.tight_layout(); plt.show()

print(f"{'':38s}{'held-out start':>16s}{'held-out end':>16s}{'train end':>16s}")
for name in configs:
    cells = [mean_se(w_test[name][:, 0]), mean_se(w_test[name][:, -1]), mean_se(w_train[name][:, -1])]
    print(f"{name:38s}" + "".join(f"{m:9.3f} ± {se:.3f}" for m, se in cells))
print(f"{'true qualities (held-out)':38s}{w_truth.mean():9.3f} ± {mean_se(w_truth)[1]:.3f}")
drop = effect_verdict(w_test["fixed U"][:, 0], w_test["fixed U"][:, -1])
gap = effect_verdict(w_test["prompt-aware U (classified prompt)"][:, -1], w_test["fixed U"][:, -1])
print(f"fixed U: held-out W1 fell by {drop[0]:.3f} ± {drop[1]:.3f} (> 3 SE: {drop[2]})")
print(f"prompt-aware (classified) minus fixed, held-out W1 at the end: {gap[0]:.3f} ± {gap[1]:.3f} (> 3 SE: {gap[2]})")

# %% [markdown] slideshow={"slide_type": "slide"}
# **What the shared model does.** After the warm start the two prompt types have different held-out
# reward distributions (W1 = 0.103 ± 0.007; the true qualities are 0.179 apart, so the warm start
# has learnt part of the two shapes). Training on rankings with the fixed $U$ erases most of the
# difference within 50 steps: held-out W1 ends at 0.037 ± 0.010, a fall of 0.066 ± 0.012 (more than
# 3 SE). On the training prompts, which the model nearly interpolates, it ends at 0.004 ± 0.001: the
# theorem's collapse. The histograms show the mechanism: closed-ended prompts lose their two groups
# and open-ended prompts gain peaks at 0 and 1 until the shapes match. Collapse is a property of the
# fit, so it reaches new prompts as far as the model generalises, here not quite completely.
#
# With the prompt-aware $U$ chosen by the classifier (81% ± 3% accurate from 16 labelled prompts),
# held-out W1 stays at 0.100 ± 0.007, 0.063 ± 0.012 above the fixed $U$ (more than 3 SE); with the
# oracle flag it is 0.112 ± 0.004. The classifier's errors cost more on the training prompts (0.121
# against 0.181), where each misclassified prompt is trained towards the other shape. Neither
# reaches the true 0.179 on held-out prompts: the shared network carries part of the closed-ended
# shape over to open-ended prompts (their histogram keeps peaks at 0 and 1).

# %% [markdown] slideshow={"slide_type": "slide"}
# ### 4.7 Why collapse hurts the policy
#
# The reward model is trained to be used: the RLHF policy maximises $\mathbb E[R] - \beta\,\mathrm{KL}$,
# whose optimum is $\pi^\star \propto \pi_{\text{ref}}\,e^{R/\beta}$ (notebook 01). On a closed-ended
# prompt all right answers are equally good, so the ideal reward is flat over them and the policy
# should spread its probability over all of them. A collapsed reward instead grades the right answers
# against each other (by rank), so the policy spends KL on preferring some right answers to others. We
# measure it on the held-out closed-ended prompts: $\pi_{\text{ref}}$ uniform over the 16 completions,
# $\pi^\star \propto e^{R/\beta}$ for a sweep of $\beta$, and the probability of a right answer
# against $\mathrm{KL}(\pi^\star \| \pi_{\text{ref}})$: the frontier of notebook 01, for each
# trained reward and for the true quality.

# %% slideshow={"slide_type": "subslide"}
betas = np.logspace(-3, 1, 80)
kl_grid = np.linspace(0.05, 2.0, 40)


def right_vs_kl(R, right):
    """P(right answer) under pi* ∝ exp(R/beta) on a KL grid; R, right: (P, n) for closed-ended prompts."""
    logits = R[None] / betas[:, None, None]  # (B, P, n)
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    kl = (p * np.log(np.clip(p * R.shape[1], 1e-300, None))).sum(-1).mean(-1)  # (B,) KL to uniform
    p_right = (p * right).sum(-1).mean(-1)  # (B,)
    return np.interp(kl_grid, kl[::-1], p_right[::-1])


frontiers = {"true quality": np.array([right_vs_kl(te.quality.numpy()[~te.open_ended.numpy()], te.right.numpy()[~te.open_ended.numpy()])
                                       for tr, te in tasks])}
for name in configs:
    frontiers[name] = np.array([right_vs_kl(h["test_rewards"][-1][~te.open_ended.numpy()], te.right.numpy()[~te.open_ended.numpy()])
                                for h, (tr, te) in zip(runs[name], tasks)])
fig, ax = plt.subplots(figsize=(7.5, 4))
for (name, f), colour in zip(frontiers.items(), ("k", "tab:gray", "tab:green", "tab:purple")):
    band(ax, kl_grid, f, label=name, color=colour)
ax.set(xlabel="KL(π* || π_ref) on held-out closed-ended prompts (nats)", ylabel="P(right answer)",
       title=f"What each reward buys the policy, mean ± SE over {n_seeds} seeds")
ax.legend(fontsize=8); plt.tight_layout(); plt.show()
k05 = int(np.argmin(np.abs(kl_grid - 0.5)))
for name, f in frontiers.items():
    m, se = mean_se(f[:, k05])
    print(f"P(right) at KL = 0.5 nats, {name:38s}: {m:.3f} ± {se:.3f}")
loss_truth = effect_verdict(frontiers["true quality"][:, k05], frontiers["fixed U"][:, k05])
aware_vs_fixed = effect_verdict(frontiers["prompt-aware U (classified prompt)"][:, k05], frontiers["fixed U"][:, k05])
print(f"true quality minus fixed U: {loss_truth[0]:.3f} ± {loss_truth[1]:.3f} (> 3 SE: {loss_truth[2]})")
print(f"prompt-aware (classified) minus fixed U: {aware_vs_fixed[0]:.3f} ± {aware_vs_fixed[1]:.3f} (> 3 SE: {aware_vs_fixed[2]})")
for name in ("fixed U", "prompt-aware U (classified prompt)"):
    spread = [np.mean([np.ptp(r[p][rt[p]]) for p in range(len(r)) if rt[p].sum() > 1])
              for h, (tr, te) in zip(runs[name], tasks)
              for r, rt in [(h["test_rewards"][-1][~te.open_ended.numpy()], te.right.numpy()[~te.open_ended.numpy()])]]
    print(f"{name:38s}: reward range among a prompt's right answers {np.mean(spread):.2f} ± {mean_se(spread)[1]:.2f}")

# %% [markdown] slideshow={"slide_type": "-"}
# **Collapse costs the policy.** At a budget of 0.5 nats the policy tilted by the fixed-$U$ reward
# gives a right answer with probability 0.798 ± 0.021, against 0.899 ± 0.014 for the true quality:
# a loss of 0.101 ± 0.025 (more than 3 SE). The collapsed reward spreads a prompt's right answers over
# a reward range of 0.49 ± 0.03, so the policy spends its KL on ranking equally right answers against
# each other instead of moving mass from wrong to right.
#
# The prompt-aware fix does **not** recover this at this scale: its P(right) differs from the fixed
# $U$'s by 0.009 ± 0.031, within the noise. The reason is a limit of $U = x$: it polarises each
# ranking at its **middle** rank, whatever the true number of right answers, because a ranking alone
# does not say where the right answers end. Right answers below the middle still get low rewards
# (their range is still 0.36 ± 0.03). Restoring the *shape* of the reward distribution (§4.6) is not
# the same as restoring the right/wrong boundary; for that the labels must carry more than a ranking,
# for example a right/wrong mark or ties.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. What the logged metrics mean
#
# * **KKT gap** (`CollapseSolution.kkt_gap`): the largest first-order gain of any feasible move,
#   relative to the gradient's size. Zero at the optimum. The solver stops once it is below
#   $10^{-10}$, a hundred times inside the check's $10^{-8}$; moving a single reward by $10^{-5}$
#   raises it above $10^{-8}$, so the check does catch a wrong solution.
# * **P–P distance** (`pp_distance`): the largest gap between the Beta CDF at the sorted optimal
#   rewards and the evenly spaced levels $(k-1)/(n-1)$. Zero when the rewards are the Beta quantiles;
#   its decay with $n$ is the convergence rate of Theorems 1 and 2.
# * **KS distance** (`ks_distance`): the same comparison against the empirical CDF's steps. Its floor
#   is $1/n$ because the rewards include 0 and 1, so it cannot show convergence faster than $1/n$.
# * **Training loss**: $-\text{mean}_{i<j}\,U_{\text{prom}}(r_i - r_j)$, averaged over prompts. Its
#   scale depends on $U$ ($-1/x$ is large for close pairs), so compare curves of the same utility only.
# * **W1(open-ended, closed-ended)**: the Wasserstein-1 distance between the rewards of the two kinds
#   of prompts, on held-out prompts (training prompts dashed). Near zero means collapse; the true
#   qualities give the level a reward that kept the two shapes would reach.
# * **P(right) at a KL budget**: how much the policy $\pi^\star \propto \pi_{\text{ref}} e^{R/\beta}$
#   gains in right answers on closed-ended prompts for a given KL from the reference.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. Checks
#
# Deterministic summaries that `pytest --nbval-lax` compares with the stored outputs. Exact
# computations print exact facts; training results print verdicts against 3 standard errors.

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
fast, slow = ks_utils[:4], ks_utils[4:]
print("KS distance equals its floor 1/n (to 1e-4) at n=200 for", sum(abs(row[-1] - 1 / 200) < 1e-4 for row in ks_table.values()), "of 6 utilities")
print("P-P distance at n=200 below 0.003 for x^γ and log x:", all(pp_table[u][-1] < 0.003 for u in fast))
print("P-P slope steeper than -0.8 for x^γ and log x:", all(slopes[u] < -0.8 for u in fast))
print("P-P slope flatter than -0.4 for -x^-0.5 and -1/x:", all(slopes[u] > -0.4 for u in slow))
print("unbounded rewards: the objective rises with every scale-up:",
      bool(np.all(np.diff([rc.total_utility(c * optimum.rewards, U_fixed) for c in (1, 3, 10, 30, 100)]) > 0)))

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
print("fixed U, held-out W1 falls from the warm start by > 3 SE:", drop[2])
print("prompt-aware U (classified) keeps held-out W1 above fixed U by > 3 SE:", gap[2])
print("fixed U, training prompts: W1 at the end < 0.02:", bool(w_train["fixed U"][:, -1].mean() < 0.02))
print("policy on the fixed-U reward: P(right) at KL 0.5 below the true quality's by > 3 SE:", loss_truth[2])
print("prompt-aware U changes that P(right) by > 3 SE:", aware_vs_fixed[2])

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 7. References
#
# * Y. Yang, Lecture 6 "RLHF in Language Models" (PKU, 2023), section "Reward collapse in alignment":
#   the utility objective, problem (4), Theorems 1–2, the prompt-aware utility, Figs. 7–12.
# * Z. Song, T. Cai, J. D. Lee, W. J. Su, "Reward collapse in aligning large language models", 2023
#   (arXiv:2305.17608).
# * L. Ouyang et al., "Training language models to follow instructions with human feedback"
#   (InstructGPT), 2022: the log-sigmoid ranking loss.
# * S. Boyd and L. Vandenberghe, *Convex Optimization*, §10.2 (equality-constrained Newton) and §11.2
#   (barrier method).
