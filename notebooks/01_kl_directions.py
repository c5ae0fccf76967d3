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
# # 01 · KL directions: mode-seeking, mass-covering, and the RLHF optimum
#
# Every RLHF objective in this course keeps the trained policy $\pi$ close to a reference policy
# $\pi_{\text{ref}}$ with a KL divergence. KL is not symmetric, and the direction you pick decides
# what "close" means. This notebook makes that concrete on pictures you can compute exactly.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. Learning goals
#
# After this notebook you can:
#
# 1. compute the exact KL divergence of two categorical distributions (eq. 3 of the Regularization
#    chapter), including the $0\log 0$ and $P>0, Q=0$ cases;
# 2. explain why minimising the **forward** KL $\mathrm{KL}(p\,\|\,q)$ gives a *mass-covering* fit and
#    the **reverse** KL $\mathrm{KL}(q\,\|\,p)$ a *mode-seeking* one, and show it with gradient descent;
# 3. connect the reverse-KL penalty of RLHF to "do not put mass where $\pi_{\text{ref}}$ has little";
# 4. derive and verify the optimum of the KL-regularised objective,
#    $\pi^*(y) \propto \pi_{\text{ref}}(y)\,e^{r(y)/\beta}$, and watch it move as $\beta$ changes.

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
from rlhf_edu import divergences as dv

scale = get_scale()
gen = seed_everything(0, threads=2)
torch.set_default_dtype(torch.float64)  # everything here is exact arithmetic on small spaces
plt.rcParams.update({"figure.dpi": 90, "axes.grid": True, "grid.alpha": 0.3})

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. Background
#
# **KL divergence** (the Regularization chapter, eq. 3) of a distribution $P$ from $Q$ over a discrete
# set $\mathcal{X}$:
#
# $$\mathcal{D}_{\text{KL}}(P\,\|\,Q) = \sum_{x\in\mathcal{X}} P(x)\,\log\frac{P(x)}{Q(x)} \qquad (3)$$
#
# It is $\ge 0$, zero only when $P=Q$, measured in nats (natural log), and **not symmetric**. The
# sum runs over draws from the *first* argument, so:
#
# * terms where $P(x)=0$ vanish ($0\log 0 = 0$): $P$ does not care what $Q$ does where $P$ is absent;
# * a term where $P(x)>0$ but $Q(x)=0$ is $+\infty$: $Q$ must cover everything $P$ does.

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Two directions, two behaviours.** Fit a simple model $q_\theta$ to a complicated target $p$.
#
# * *Forward* KL, $\min_\theta \mathrm{KL}(p\,\|\,q_\theta)$: the expectation is under $p$; wherever $p$
#   has mass, $q_\theta$ must have mass, or pay $\log(p/q)\to\infty$. Result: **mass-covering**
#   (spread over every mode, even the valleys between them). This is maximum likelihood / behaviour
#   cloning / distillation.
# * *Reverse* KL, $\min_\theta \mathrm{KL}(q_\theta\,\|\,p)$: the expectation is under $q_\theta$; it is
#   punished for mass where $p$ is small but not for ignoring parts of $p$. Result: **mode-seeking**
#   (sit on one mode and fit it well).
#
# **RLHF uses the reverse direction.** The KL-shaped reward of the Regularization chapter,
#
# $$r = r_\theta - \lambda_{\text{KL}}\,\mathcal{D}_{\text{KL}}\big(\pi_{\text{RL}}(y\mid x)\,\|\,\pi_{\text{ref}}(y\mid x)\big), \qquad (2)$$
#
# puts the trained policy first. So the penalty is large when $\pi_{\text{RL}}$ puts mass on
# responses that $\pi_{\text{ref}}$ finds unlikely, and it does *not* force $\pi_{\text{RL}}$ to keep
# every behaviour of $\pi_{\text{ref}}$: the policy may drop modes.

# %% [markdown] slideshow={"slide_type": "subslide"}
# **The optimum of the KL-regularised objective.** For one prompt and a finite set of responses,
#
# $$J(\pi) = \mathbb{E}_{y\sim\pi}[r(y)] - \beta\,\mathrm{KL}(\pi\,\|\,\pi_{\text{ref}})
# = -\beta\,\mathrm{KL}\big(\pi\,\|\,\pi^*\big) + \beta\log Z,
# \qquad \pi^*(y) = \frac{\pi_{\text{ref}}(y)\,e^{r(y)/\beta}}{Z}.$$
#
# (Expand $\log\pi^*$ to check the identity.) KL is minimised, and $J$ maximised, exactly at
# $\pi=\pi^*$, with $J(\pi^*)=\beta\log Z$. The "Understanding RLHF" blog post reads the same
# formula as Bayesian inference: $\pi_{\text{ref}}$ is the prior, $e^{r/\beta}$ the likelihood of
# "this response is satisfactory"; Lecture 6 calls it the RLKL target of f-DPG. Large $\beta$ keeps
# $\pi^*\approx\pi_{\text{ref}}$; as $\beta\to0$, $\pi^*$ collapses onto $\arg\max r$.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. Implementation
#
# The helpers live in `rlhf_edu.divergences`. `kl_categorical` accepts probabilities or logits and
# applies both conventions above; `kl_gaussian` is the closed form for two univariate normals.

# %% slideshow={"slide_type": "skip"}
print(inspect.getsource(dv.kl_categorical))
print(inspect.getsource(dv.kl_gaussian))

# %% slideshow={"slide_type": "skip"}
print(inspect.getsource(dv.kl_regularized_objective))
print(inspect.getsource(dv.kl_regularized_optimum))

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. Experiments
#
# ### 4.1 One Gaussian against a two-mode target
#
# The target $p$ is an equal mixture of $\mathcal{N}(-3, 0.7^2)$ and $\mathcal{N}(3, 0.7^2)$. The model
# $q_\theta=\mathcal{N}(\mu,\sigma^2)$ has two parameters. We evaluate both KLs on a fine grid: putting
# the log-densities on the grid into `kl_categorical` as logits normalises them, so the result is a
# Riemann sum of the integral, and autograd gives exact gradients of it. Adam does the rest.

# %% slideshow={"slide_type": "-"}
x = torch.linspace(-12, 12, 4001)  # (G,) quadrature grid


def log_normal(x, mu, sigma):
    return -0.5 * ((x - mu) / sigma) ** 2 - torch.log(sigma * (2 * torch.pi) ** 0.5)


modes, width = torch.tensor([-3.0, 3.0]), torch.tensor(0.7)
log_p = torch.logsumexp(np.log(0.5) + log_normal(x[None], modes[:, None], width), dim=0)  # (G,)


def fit_gaussian(direction, mu0, sigma0=1.0, steps=500, lr=0.05):
    # Fit N(mu, sigma^2) to p by minimising KL(p||q) ("forward") or KL(q||p) ("reverse").
    mu = torch.tensor(mu0, requires_grad=True)
    log_sigma = torch.tensor(float(np.log(sigma0)), requires_grad=True)
    opt = torch.optim.Adam([mu, log_sigma], lr=lr)
    for _ in range(steps):
        log_q = log_normal(x, mu, log_sigma.exp())  # (G,)
        if direction == "forward":
            loss = dv.kl_categorical(p_logits=log_p, q_logits=log_q)
        else:
            loss = dv.kl_categorical(p_logits=log_q, q_logits=log_p)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return mu.item(), log_sigma.exp().item(), loss.item()


fits = {
    "forward KL(p||q)": fit_gaussian("forward", mu0=1.0),
    "reverse KL(q||p), start mu=+1": fit_gaussian("reverse", mu0=1.0),
    "reverse KL(q||p), start mu=-1": fit_gaussian("reverse", mu0=-1.0),
}
for name, (mu, sigma, kl) in fits.items():
    print(f"{name:32s} mu = {mu:+.3f}  sigma = {sigma:.3f}  KL = {kl:.4f}")

# %% [markdown] slideshow={"slide_type": "-"}
# The landscape explains the fits. With $\sigma$ fixed at $1$, the forward KL as a function of $\mu$
# has one minimum, between the modes; the reverse KL has one minimum **per mode** and a hump in the
# middle, so gradient descent ends in the mode nearest to where it starts.

# %% slideshow={"slide_type": "subslide"}
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
ax = axes[0]
ax.fill_between(x, log_p.exp(), color="0.8", label="target p (two modes)")
colors = {"forward KL(p||q)": "C0", "reverse KL(q||p), start mu=+1": "C3", "reverse KL(q||p), start mu=-1": "C1"}
for name, (mu, sigma, _) in fits.items():
    ls = "--" if "-1" in name else "-"
    ax.plot(x, log_normal(x, torch.tensor(mu), torch.tensor(sigma)).exp(), ls, color=colors[name], lw=2,
            label=f"{name}: N({mu:.1f}, {sigma:.2f}²)")
ax.set(xlim=(-8, 8), xlabel="x", ylabel="density", title="Forward KL covers, reverse KL picks a mode")
ax.legend(fontsize=8, loc="upper left")

ax = axes[1]
mus = torch.linspace(-6, 6, 241)
one = torch.tensor(1.0)
fwd = [dv.kl_categorical(p_logits=log_p, q_logits=log_normal(x, m, one)).item() for m in mus]
rev = [dv.kl_categorical(p_logits=log_normal(x, m, one), q_logits=log_p).item() for m in mus]
ax.plot(mus, fwd, color="C0", label="forward KL(p || N(mu, 1))")
ax.plot(mus, rev, color="C3", label="reverse KL(N(mu, 1) || p)")
ax.set(xlabel="mu of the model (sigma = 1)", ylabel="KL (nats)", ylim=(0, 8),
       title="Loss landscapes: one minimum vs one per mode")
ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown] slideshow={"slide_type": "-"}
# Forward KL ends at the **moment-matching** solution: for a Gaussian family, minimising
# $\mathrm{KL}(p\,\|\,q)$ sets $\mu=\mathbb{E}_p[x]=0$ and $\sigma^2=\mathrm{Var}_p[x]=0.7^2+3^2$. It
# puts its peak exactly where $p$ has almost nothing. Reverse KL ends on one mode with nearly its
# width, and its value is close to $\log 2\approx0.693$: the price of ignoring the other half of $p$
# is only the log of the missing fraction, a bounded cost.

# %% [markdown] slideshow={"slide_type": "slide"}
# ### 4.2 The same on a token-like categorical distribution
#
# Now a "next-token" distribution over 16 tokens with two groups of likely tokens. The model family
# can only make one bump: $q_{\mu,\sigma}(i)\propto \exp(-(i-\mu)^2/2\sigma^2)$. This is a stand-in
# for a policy that is too simple, or too constrained, to represent every mode of its target.

# %% slideshow={"slide_type": "subslide"}
V = 16
tokens = torch.arange(V, dtype=torch.float64)  # (V,)
p_tok = 0.55 * torch.exp(-0.5 * ((tokens - 3) / 1.0) ** 2) + 0.45 * torch.exp(-0.5 * ((tokens - 11) / 1.3) ** 2)
p_tok = p_tok / p_tok.sum()  # (V,)


def bump_logits(mu, sigma):
    return -0.5 * ((tokens - mu) / sigma) ** 2  # (V,) logits of the one-bump family


def fit_bump(direction, mu0, steps=600, lr=0.05):
    mu = torch.tensor(mu0, requires_grad=True)
    log_sigma = torch.tensor(0.0, requires_grad=True)
    opt = torch.optim.Adam([mu, log_sigma], lr=lr)
    for _ in range(steps):
        z = bump_logits(mu, log_sigma.exp())
        loss = (dv.kl_categorical(p_tok, q_logits=z) if direction == "forward"
                else dv.kl_categorical(p_logits=z, q=p_tok))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return torch.softmax(bump_logits(mu, log_sigma.exp()), -1).detach()  # (V,)


q_fwd = fit_bump("forward", mu0=7.0)
q_rev = fit_bump("reverse", mu0=4.0)

fig, axes = plt.subplots(1, 3, figsize=(13, 3.4), sharey=True)
for ax, q, name, c in [(axes[0], p_tok, "target p", "0.5"), (axes[1], q_fwd, "forward-KL fit", "C0"),
                       (axes[2], q_rev, "reverse-KL fit", "C3")]:
    if q is not p_tok:
        ax.bar(tokens, p_tok, color="0.85", label="target p")
    ax.bar(tokens, q, width=0.5, color=c, label=name)
    ax.set(xlabel="token id", title=name)
    ax.legend(fontsize=8)
axes[0].set_ylabel("probability")
plt.suptitle("One-bump model fitted to a two-group next-token distribution")
plt.tight_layout()
plt.show()

# %% slideshow={"slide_type": "subslide"}
# NBVAL_CHECK_OUTPUT
valley = (tokens >= 6) & (tokens <= 8)  # tokens that p makes unlikely
print(f"p mass on the valley tokens 6-8:           {p_tok[valley].sum().item():.3f}")
print(f"forward-KL fit mass on the valley tokens:  {q_fwd[valley].sum().item():.2f}")
print(f"reverse-KL fit mass on the valley tokens:  {q_rev[valley].sum().item():.2f}")
print("fit            KL(p||q)   KL(q||p)")
for name, q in [("forward fit", q_fwd), ("reverse fit", q_rev)]:
    print(f"{name:12s}  {dv.kl_categorical(p_tok, q).item():8.2f}   {dv.kl_categorical(q, p_tok).item():8.2f}")

# %% [markdown] slideshow={"slide_type": "-"}
# Each fit wins on its own criterion and loses on the other. The forward fit puts a lot of mass on
# the valley tokens that $p$ rarely emits: exactly what a **reverse-KL penalty to a reference**
# forbids. In RLHF terms, read $p$ as $\pi_{\text{ref}}$: a policy that starts generating tokens the
# reference finds unlikely pays $\log(\pi/\pi_{\text{ref}})$ per token, which is large where
# $\pi_{\text{ref}}$ is small. Dropping some of the reference's behaviours (a mode) is cheap.

# %% [markdown] slideshow={"slide_type": "slide"}
# ### 4.3 The asymmetry in numbers
#
# Three pairs of distributions. The last pair differs in support: $P$ gives a token zero probability
# that $Q$ uses, so one direction is finite and the other infinite. The numbers are compared with
# `scipy.stats.entropy`, which computes the same sum independently. The f-divergence generators of
# Lecture 6 (f-DPG) name these two directions too: with $D_f(P\|Q)=\mathbb{E}_{Q}[f(P/Q)]$,
# $f(t)=t\log t$ gives $\mathrm{KL}(P\|Q)$ ("reverse KL" when $P$ is the model) and $f(t)=-\log t$ gives
# $\mathrm{KL}(Q\|P)$ ("forward KL").

# %% slideshow={"slide_type": "subslide"}
# NBVAL_CHECK_OUTPUT
pairs = {
    "peaked vs flat": ([0.80, 0.15, 0.05], [0.40, 0.40, 0.20]),
    "shifted": ([0.70, 0.25, 0.05], [0.10, 0.30, 0.60]),
    "P misses a token": ([0.50, 0.50, 0.00], [0.25, 0.25, 0.50]),
}
print(f"{'pair':18s} {'KL(P||Q)':>9s} {'KL(Q||P)':>9s}  scipy agrees  f-DPG reverse/forward agree")
for name, (P, Q) in pairs.items():
    P, Q = torch.tensor(P), torch.tensor(Q)
    pq, qp = dv.kl_categorical(P, Q).item(), dv.kl_categorical(Q, P).item()
    ok_scipy = np.allclose([pq, qp], [stats.entropy(P, Q), stats.entropy(Q, P)], rtol=1e-12)
    ok_f = np.allclose([pq, qp], [dv.f_divergence(P, Q, dv.REVERSE_KL).item(),
                                  dv.f_divergence(P, Q, dv.FORWARD_KL).item()], rtol=1e-12)
    print(f"{name:18s} {pq:9.4f} {qp:9.4f}  {ok_scipy!s:12s}  {ok_f}")

# %% [markdown] slideshow={"slide_type": "slide"}
# ### 4.4 The optimum of reward minus KL
#
# Six candidate responses to one prompt. The reference model prefers the first ones; the reward
# prefers the last, which the reference finds rare. We compute $\pi^*=\pi_{\text{ref}}e^{r/\beta}/Z$ with
# `kl_regularized_optimum` and check it two independent ways: by maximising $J(\pi)$ directly with
# gradient ascent on softmax logits, and by enumerating many candidate policies.

# %% slideshow={"slide_type": "-"}
pi_ref = torch.tensor([0.35, 0.25, 0.18, 0.12, 0.07, 0.03])  # (Y,) reference probabilities
reward = torch.tensor([0.10, 0.30, 0.00, 0.60, 0.20, 1.00])  # (Y,) r(y)
beta = 0.2

pi_star = dv.kl_regularized_optimum(pi_ref, reward, beta)  # (Y,)

# (a) gradient ascent on J over softmax-parameterised policies, started from pi_ref
logits = torch.log(pi_ref).clone().requires_grad_(True)
opt = torch.optim.Adam([logits], lr=0.05)
for _ in range(2000):
    loss = -dv.kl_regularized_objective(torch.softmax(logits, -1), pi_ref, reward, beta)
    opt.zero_grad()
    loss.backward()
    opt.step()
pi_ascent = torch.softmax(logits, -1).detach()

# (b) enumeration: J of 200k random policies (Dirichlet) and of pi*, computed exactly
candidates = torch.distributions.Dirichlet(torch.full((6,), 0.7)).sample((200_000,))  # (N, Y)
J_candidates = dv.kl_regularized_objective(candidates, pi_ref, reward, beta)  # (N,)
J_star = dv.kl_regularized_objective(pi_star, pi_ref, reward, beta).item()
log_Z = torch.logsumexp(torch.log(pi_ref) + reward / beta, 0).item()
print("pi_ref  :", np.round(pi_ref.numpy(), 3))
print("pi*     :", np.round(pi_star.numpy(), 3))
print("ascent  :", np.round(pi_ascent.numpy(), 3))
print(f"J(pi*) = {J_star:.4f}, beta*log Z = {beta * log_Z:.4f}, best random policy J = {J_candidates.max().item():.4f}")

# %% slideshow={"slide_type": "subslide"}
betas = torch.logspace(1, -2, 61)  # from weak to strong reward pressure
stars = torch.stack([dv.kl_regularized_optimum(pi_ref, reward, b.item()) for b in betas])  # (nB, Y)
exp_r = (stars * reward).sum(-1)  # (nB,)
kls = dv.kl_categorical(stars, pi_ref.expand_as(stars))  # (nB,)

fig, axes = plt.subplots(1, 2, figsize=(13, 4))
ax = axes[0]
show = [10.0, 1.0, 0.3, 0.1, 0.03]
w = 0.8 / (len(show) + 1)
ax.bar(np.arange(6) - 0.4 + w / 2, pi_ref, width=w, color="0.6", label="pi_ref")
for k, b in enumerate(show):
    ax.bar(np.arange(6) - 0.4 + w * (k + 1.5), dv.kl_regularized_optimum(pi_ref, reward, b), width=w,
           color=plt.cm.viridis(k / len(show)), label=f"pi*, beta={b}")
ax2 = ax.twinx()
ax2.plot(np.arange(6), reward, "k*--", label="reward r(y)")
ax2.set_ylabel("reward r(y)")
ax2.grid(False)
ax.set(xticks=range(6), xticklabels=[f"y{i + 1}" for i in range(6)], xlabel="response", ylabel="probability",
       title="pi* moves from pi_ref to argmax r as beta falls")
ax.legend(fontsize=8, loc="upper left")
ax2.legend(fontsize=8, loc="upper center")

ax = axes[1]
ax.semilogx(betas, exp_r, color="C2", label="E_pi*[r]")
ax.axhline(reward.max(), color="C2", ls=":", label="max r")
ax.set(xlabel="beta (log scale)", ylabel="expected reward", title="Reward and KL of the optimum vs beta")
ax.invert_xaxis()
axk = ax.twinx()
axk.semilogx(betas, kls, color="C3", label="KL(pi* || pi_ref)")
axk.axhline(-np.log(pi_ref[-1].item()), color="C3", ls=":", label="-log pi_ref(argmax r)")
axk.set_ylabel("KL (nats)")
axk.grid(False)
ax.legend(loc="center left", fontsize=8)
axk.legend(loc="lower right", fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown] slideshow={"slide_type": "-"}
# Reading right to left in the second panel: as $\beta$ falls, expected reward climbs to $\max r$
# and the KL climbs to $-\log\pi_{\text{ref}}(\arg\max r)$, the cost of putting all mass on a
# response the reference gives 3%. At large $\beta$ nothing moves. Every RLHF run is a walk along a
# curve like this: $\beta$ (or a KL target) picks the point.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. What the logged metrics mean
#
# * **`kl` in a training log** is (an estimate of) $\mathrm{KL}(\pi_\theta\,\|\,\pi_{\text{ref}})$ in nats,
#   the reverse direction, summed over response tokens. It is 0 at the start, when the policy is the
#   reference. Notebook 02 shows how it is estimated from samples and how it can go wrong.
# * **Its size**: $\log 2\approx0.69$ nats is what dropping half of a distribution costs (section 4.1);
#   committing to a response the reference gives probability $\rho$ costs $-\log\rho$ (3.5 nats for 3%).
# * **`reward - beta * kl`** is the objective $J$; at the optimum it equals $\beta\log Z$, and the
#   policy is $\pi_{\text{ref}}e^{r/\beta}/Z$. A run whose KL keeps growing while the reward flattens is
#   walking up the right side of the curve above: more divergence, little gain.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. Checks
#
# Deterministic summaries that `pytest --nbval-lax` compares with the stored outputs.

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
mu_f, sigma_f, _ = fits["forward KL(p||q)"]
mm_sigma = float(np.sqrt(0.7**2 + 3.0**2))  # moment matching: Var_p = within-mode + between-mode variance
print(f"forward fit = moment matching: mu {round(mu_f, 2) + 0.0:+.2f} vs +0.00, sigma {sigma_f:.2f} vs {mm_sigma:.2f}:",
      abs(mu_f) < 0.01 and abs(sigma_f - mm_sigma) < 0.01)
for name in ["reverse KL(q||p), start mu=+1", "reverse KL(q||p), start mu=-1"]:
    mu_r, sigma_r, kl_r = fits[name]
    print(f"{name}: mode {mu_r:+.1f}, sigma {sigma_r:.1f}, KL within 0.01 of log 2: {abs(kl_r - np.log(2)) < 0.01}")
print("Gaussian KL closed form = grid KL:",
      abs(dv.kl_gaussian(0.0, 1.0, 1.0, 2.0).item()
          - dv.kl_categorical(p_logits=log_normal(x, torch.tensor(0.0), torch.tensor(1.0)),
                              q_logits=log_normal(x, torch.tensor(1.0), torch.tensor(2.0))).item()) < 1e-6)

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
print("pi* matches gradient ascent (max abs diff < 1e-4):", (pi_star - pi_ascent).abs().max().item() < 1e-4)
print("J(pi*) = beta log Z:", abs(J_star - beta * log_Z) < 1e-12)
print("no random policy beats pi*:", bool((J_candidates <= J_star + 1e-12).all()))
print("beta -> 0: pi* -> argmax r:", int(stars[-1].argmax()) == int(reward.argmax()), f"(mass {stars[-1].max().item():.2f})")
print("beta large: KL(pi*||pi_ref) < 0.01:", kls[0].item() < 0.01)


# %% [markdown] slideshow={"slide_type": "slide"}
# ## 7. Exercises
#
# Fill in the bodies between the solution markers; the cell after each exercise checks your function
# against the library.

# %% slideshow={"slide_type": "subslide"}
def kl_from_scratch(p, q):
    """Exact KL(P||Q) (eq. 3) for 1-D probability tensors p, q of shape (V,).

    Use 0 * log 0 = 0, and return +inf when some p > 0 has q == 0. Returns a 0-d tensor.
    """
    ### BEGIN SOLUTION
    terms = torch.where(p > 0, p * (torch.log(p) - torch.log(q)), torch.zeros_like(p))
    return terms.sum()
    ### END SOLUTION


# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
cases = [(p_tok, q_fwd), (q_rev, p_tok)] + [(torch.tensor(P), torch.tensor(Q)) for P, Q in pairs.values()]
cases += [(Q_, P_) for P_, Q_ in cases]
ok = all(np.isclose(float(kl_from_scratch(P_, Q_)), dv.kl_categorical(P_, Q_).item(), rtol=1e-9)
         or (np.isinf(float(kl_from_scratch(P_, Q_))) and np.isinf(dv.kl_categorical(P_, Q_).item()))
         for P_, Q_ in cases)
print("Exercise 1 (exact KL with the 0 log 0 and Q=0 conventions):", ok)


# %% slideshow={"slide_type": "subslide"}
def optimal_policy_by_ascent(pi_ref, reward, beta, steps=3000, lr=0.05):
    """Maximise J(pi) = E_pi[r] - beta * KL(pi || pi_ref) numerically.

    pi_ref: (Y,) probabilities; reward: (Y,); beta > 0. Parameterise pi = softmax(logits), run
    gradient ascent on J (you may use dv.kl_regularized_objective or write J yourself), and
    return the final pi as a detached (Y,) tensor.
    """
    ### BEGIN SOLUTION
    logits = torch.zeros_like(pi_ref, requires_grad=True)
    opt = torch.optim.Adam([logits], lr=lr)
    for _ in range(steps):
        pi = torch.softmax(logits, -1)
        J = (pi * reward).sum() - beta * dv.kl_categorical(pi, pi_ref)
        opt.zero_grad()
        (-J).backward()
        opt.step()
    return torch.softmax(logits, -1).detach()
    ### END SOLUTION


# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
ok = all((optimal_policy_by_ascent(pi_ref, reward, b) - dv.kl_regularized_optimum(pi_ref, reward, b)).abs().max() < 1e-3
         for b in (1.0, 0.2))
print("Exercise 2 (pi* found numerically matches pi_ref * exp(r / beta) / Z):", ok)


# %% slideshow={"slide_type": "subslide"}
def gaussian_kl(mu_p, sigma_p, mu_q, sigma_q):
    """Closed-form KL(N(mu_p, sigma_p^2) || N(mu_q, sigma_q^2)) for Python floats; return a float."""
    ### BEGIN SOLUTION
    return float(np.log(sigma_q / sigma_p) + (sigma_p**2 + (mu_p - mu_q) ** 2) / (2 * sigma_q**2) - 0.5)
    ### END SOLUTION


# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
args = [(0.0, 1.0, 1.0, 1.0), (0.3, 0.5, -1.0, 2.0), (2.0, 3.0, 0.0, 0.7)]
ok = all(np.isclose(gaussian_kl(*a), dv.kl_gaussian(*a).item(), rtol=1e-10) for a in args)
ok = ok and not np.isclose(gaussian_kl(0.0, 1.0, 0.0, 2.0), gaussian_kl(0.0, 2.0, 0.0, 1.0))
print("Exercise 3 (Gaussian KL closed form, and it is asymmetric):", ok)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 8. References
#
# * N. Lambert, *RLHF book*, chapter "Regularization": eqs. (1)–(4), the KL penalty and its direction.
# * Y. Yang, Lecture 6 "RLHF in Language Models" (PKU, 2023): the f-divergence table of f-DPG.
# * "Understanding RLHF" (blog post, 2023): RLHF as Bayesian inference, $\pi^*\propto\pi_0 e^{r/\beta}$.
# * D. Go et al., "Aligning language models with preferences through f-divergence minimization", 2023.
# * T. Korbak, E. Perez, C. Buckley, "RL with KL penalties is better viewed as Bayesian inference", 2022.
# * C. Bishop, *Pattern Recognition and Machine Learning*, §10.1.2 (the two KL directions).
