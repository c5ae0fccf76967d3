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
#    chapter), including the $0\log 0$ and $P>0, Q=0$ cases, and show with numbers that KL is not a
#    metric;
# 2. explain why minimising the **forward** KL $\mathrm{KL}(p\,\|\,q)$ gives a *mass-covering* fit and
#    the **reverse** KL $\mathrm{KL}(q\,\|\,p)$ a *mode-seeking* one, and why the reverse fit depends
#    on where it starts;
# 3. derive and verify the optimum of the KL-regularised objective,
#    $\pi^*(y) \propto \pi_{\text{ref}}(y)\,e^{r(y)/\beta}$, and see that it keeps every response
#    $\pi_{\text{ref}}$ can produce;
# 4. locate mode-seeking in RLHF correctly: a policy class too small for $\pi^*$ is the
#    reverse-KL projection of $\pi^*$ onto that class, and it can lock onto one mode of $\pi^*$;
# 5. read the reward–KL frontier traced by $\beta$, and tell it apart from a single training run.

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

import ast
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
# **A regularised reward.** The Regularization chapter writes the reward that RLHF optimises as the
# reward model's score minus a penalty,
#
# $$r = r_\theta - \lambda\, r_{\text{reg.}} \qquad (1)$$
#
# where $r_{\text{reg.}}$ is any measure of how far the policy has moved (other choices appear in
# section 4.6), and its reference implementation uses the KL divergence from the trained policy to
# the reference policy:
#
# $$r = r_\theta - \lambda_{\text{KL}}\,\mathcal{D}_{\text{KL}}\big(\pi_{\text{RL}}(y\mid x)\,\|\,\pi_{\text{ref}}(y\mid x)\big). \qquad (2)$$
#
# **KL divergence** (eq. 3) of a distribution $P$ from $Q$ over a discrete set $\mathcal{X}$:
#
# $$\mathcal{D}_{\text{KL}}(P\,\|\,Q) = \sum_{x\in\mathcal{X}} P(x)\,\log\frac{P(x)}{Q(x)} \qquad (3)$$
#
# It is $\ge 0$, zero only when $P=Q$, and measured in nats (natural log). The sum is weighted by
# the *first* argument, so:
#
# * terms where $P(x)=0$ vanish ($0\log 0 = 0$): $P$ does not care what $Q$ does where $P$ is absent;
# * a term where $P(x)>0$ but $Q(x)=0$ is $+\infty$: $Q$ must cover everything $P$ does.
#
# **KL is not a metric.** The chapter calls it a "KL distance" only colloquially: it is not
# symmetric, and it breaks the triangle inequality (section 4.4 has the numbers). Near $Q=P$ it
# behaves like a *squared* distance, and squared distances break the triangle inequality too.

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Two directions, two behaviours.** Fit a model $q_\theta$ from a restricted family to a target $p$.
#
# * *Forward* KL, $\min_\theta \mathrm{KL}(p\,\|\,q_\theta)$: the expectation is under $p$; wherever $p$
#   has mass, $q_\theta$ must have mass, or pay $\log(p/q)\to\infty$. Result: **mass-covering**
#   (spread over every mode, even the valleys between them). This is maximum likelihood, behaviour
#   cloning and distillation.
# * *Reverse* KL, $\min_\theta \mathrm{KL}(q_\theta\,\|\,p)$: the expectation is under $q_\theta$; it is
#   punished for mass where $p$ is small but not for ignoring parts of $p$. Result: **mode-seeking**
#   (sit on one mode and fit it well). Which mode depends on where the fit starts.
#
# Both behaviours need a family that *cannot* represent $p$: if $q_\theta$ can equal $p$, both
# directions are minimised at $q_\theta=p$.
#
# **RLHF's penalty is in the reverse direction**: eq. (2) puts the trained policy first. So the
# penalty is large when $\pi_{\text{RL}}$ puts mass on responses that $\pi_{\text{ref}}$ finds unlikely.

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
#
# **Where mode-seeking enters RLHF.** $\pi^*$ reweights $\pi_{\text{ref}}$ by a factor
# $e^{r/\beta}/Z > 0$, so it keeps *every* response, and every mode, that $\pi_{\text{ref}}$ has
# (for finite $\beta$). The exact optimum drops nothing. But the identity above says that
# maximising $J$ over a *restricted* policy class $\Pi$ is
#
# $$\max_{\pi\in\Pi} J(\pi) \iff \min_{\pi\in\Pi}\ \mathrm{KL}(\pi\,\|\,\pi^*),$$
#
# the **reverse-KL projection of $\pi^*$** onto $\Pi$. When $\Pi$ is too small to hold $\pi^*$
# (a network of finite size, trained for finite steps), the policy is mode-seeking with respect to
# $\pi^*$: it can lock onto one mode of $\pi^*$ and drop the others (section 4.3).

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. Implementation
#
# The helpers live in `rlhf_edu.divergences`. Below is the core of each: the signature, the first
# line of the docstring, and the lines that compute (input conversion and shape checks are elided;
# `dv.kl_categorical??` shows everything). `kl_categorical` accepts probabilities or logits
# (`_log_probs` turns either into $(p, \log p)$) and applies both conventions above; `kl_gaussian`
# is the closed form for two univariate normals.

# %% slideshow={"slide_type": "skip"}
def show_core(fn, elide=()):
    """Print fn's signature, its docstring's first line, and its body without lines containing `elide`."""
    src = inspect.getsource(fn)
    node = ast.parse(src).body[0]
    lines = src.splitlines()
    header = lines[: node.body[0].lineno - 1]
    doc = ast.get_docstring(node)
    body = lines[node.body[1 if doc else 0].lineno - 1:]
    out, skipped = list(header) + ([f'    """{doc.splitlines()[0]} ..."""'] if doc else []), False
    for line in body:
        if any(e in line for e in elide):
            if not skipped:
                out.append("    # ... (input handling elided)")
            skipped = True
        else:
            out.append(line)
            skipped = False
    print("\n".join(out), end="\n\n")


show_core(dv.kl_categorical, elide=("_same_shape", "promote_types", ".to(dtype)"))
show_core(dv.kl_gaussian, elide=("mp, sp, mq, sq =", "for v in", "dtype", "kl_gaussian(mp.float()"))
show_core(dv.kl_regularized_objective, elide=("pi = _float(pi)",))
show_core(dv.kl_regularized_optimum, elide=("pi_ref = _float(pi_ref)",))

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. Experiments
#
# ### 4.1 One Gaussian against a two-mode target, from many starting points
#
# The target $p$ is an equal mixture of $\mathcal{N}(-3, 0.7^2)$ and $\mathcal{N}(3, 0.7^2)$. The model
# $q_\theta=\mathcal{N}(\mu,\sigma^2)$ has two parameters. We evaluate both KLs on a fine grid: putting
# the log-densities on the grid into `kl_categorical` as logits normalises them, so the result is a
# Riemann sum of the integral, and autograd gives exact gradients of it. Adam does the rest. The fit
# depends on where it starts, so we run it from 11 starting means $\mu_0\in[-5,5]$ (all with
# $\sigma_0=1$) in one batch: each start has its own parameters, and Adam treats them independently.

# %% slideshow={"slide_type": "-"}
x = torch.linspace(-12, 12, 2001)  # (G,) quadrature grid


def log_normal(x, mu, sigma):
    return -0.5 * ((x - mu) / sigma) ** 2 - torch.log(sigma * (2 * torch.pi) ** 0.5)


modes, width = torch.tensor([-3.0, 3.0]), torch.tensor(0.7)
log_p = torch.logsumexp(np.log(0.5) + log_normal(x[None], modes[:, None], width), dim=0)  # (G,)


def fit_gaussians(direction, mu0, sigma0=1.0, steps=600, lr=0.1):
    """Fit N(mu, sigma^2) to p from each start in mu0 (S,), minimising KL(p||q) or KL(q||p)."""
    mu = torch.tensor(mu0).clone().requires_grad_(True)  # (S,)
    log_sigma = torch.full_like(mu, float(np.log(sigma0))).requires_grad_(True)  # (S,)
    opt = torch.optim.Adam([mu, log_sigma], lr=lr)
    lp = log_p.expand(len(mu), -1)  # (S, G)
    for _ in range(steps):
        log_q = log_normal(x, mu[:, None], log_sigma.exp()[:, None])  # (S, G)
        kl = (dv.kl_categorical(p_logits=lp, q_logits=log_q) if direction == "forward"
              else dv.kl_categorical(p_logits=log_q, q_logits=lp))  # (S,)
        opt.zero_grad()
        kl.sum().backward()  # the starts do not interact: each loss depends on its own parameters
        opt.step()
    return mu.detach(), log_sigma.exp().detach(), kl.detach()


starts = np.linspace(-5, 5, 11)  # (S,) starting means
runs = {d: fit_gaussians(d, starts) for d in ("forward", "reverse")}
print(" start mu0 | forward: mu  sigma   KL   | reverse: mu  sigma   KL")
for k, m0 in enumerate(starts):
    (mf, sf, kf), (mr, sr, kr) = [[t[k].item() for t in runs[d]] for d in ("forward", "reverse")]
    print(f"  {m0:+5.1f}    |       {mf:+5.2f}  {sf:5.2f}  {kf:.3f} |      {mr:+5.2f}  {sr:5.2f}  {kr:.3f}")

# %% slideshow={"slide_type": "subslide"}
fig, axes = plt.subplots(1, 3, figsize=(15, 4))
ax = axes[0]
ax.fill_between(x, log_p.exp(), color="0.8", label="target p (two modes)")
show_fits = [("forward", 1.0, "C0", "-"), ("reverse", 1.0, "C3", "-"), ("reverse", -1.0, "C1", "--"),
             ("reverse", 0.0, "C4", ":")]
for d, m0, c, ls in show_fits:
    k = int(np.argmin(np.abs(starts - m0)))
    mu, sigma = runs[d][0][k], runs[d][1][k]
    ax.plot(x, log_normal(x, mu, sigma).exp(), ls, color=c, lw=2,
            label=f"{d} from mu0={m0:+.0f}: N({mu.item():+.1f}, {sigma.item():.2f}²)")
ax.set(xlim=(-8, 8), xlabel="x", ylabel="density", title="Forward KL covers, reverse KL picks a mode")
ax.legend(fontsize=8, loc="upper left")

ax = axes[1]
mus = torch.linspace(-6, 6, 241)
one = torch.tensor(1.0)
fwd = [dv.kl_categorical(p_logits=log_p, q_logits=log_normal(x, m, one)).item() for m in mus]
rev = [dv.kl_categorical(p_logits=log_normal(x, m, one), q_logits=log_p).item() for m in mus]
ax.plot(mus, fwd, color="C0", label="forward KL(p || N(mu, 1))")
ax.plot(mus, rev, color="C3", label="reverse KL(N(mu, 1) || p)")
ax.set(xlabel="mu of the model (sigma fixed at 1)", ylabel="KL (nats)", ylim=(0, 8),
       title="Landscapes at sigma = 1: one minimum vs one per mode")
ax.legend(fontsize=8)

ax = axes[2]
ax.plot(starts, runs["forward"][0], "o", color="C0", ms=9, mfc="none", label="forward KL: final mu")
ax.plot(starts, runs["reverse"][0], "s", color="C3", ms=5, label="reverse KL: final mu")
for m in (-3, 0, 3):
    ax.axhline(m, color="0.6", lw=0.8, ls=":")
ax.set(xlabel="starting mean mu0", ylabel="final mean mu", yticks=[-3, 0, 3],
       title="Where each fit ends, by starting point")
ax.legend(fontsize=8, loc="upper left")
plt.tight_layout()
plt.show()

# %% [markdown] slideshow={"slide_type": "-"}
# Every forward fit, from every start, ends at the **moment-matching** solution: for a Gaussian
# family, minimising $\mathrm{KL}(p\,\|\,q)$ sets $\mu=\mathbb{E}_p[x]=0$ and
# $\sigma^2=\mathrm{Var}_p[x]=0.7^2+3^2$, so $\sigma=3.08$, with its peak where $p$ has almost
# nothing. The reverse fits depend on the start. From every $\mu_0<0$ they end on the mode at $-3$,
# from every $\mu_0>0$ on the mode at $+3$, with $\sigma=0.70$ (the mode's own width) and KL
# $=0.693=\log 2$: ignoring half of $p$ costs only the log of the missing fraction, a bounded cost.
# The landscape at $\sigma=1$ (middle) shows why: one minimum per mode and a hump between them.
# With $\sigma$ free there is a third local minimum, which the start $\mu_0=0$ finds: a broad
# Gaussian ($\sigma=2.58$) straddling both modes, with KL $2.24$ nats, more than three times the
# mode solutions. It is a true local minimum, not a slow saddle: the Hessian there is positive
# definite (checked below). So "reverse KL picks a mode" is a statement about the good local
# minima, and which one you get is decided by the start.

# %% slideshow={"slide_type": "subslide"}
# NBVAL_CHECK_OUTPUT
def reverse_kl_at(params):
    mu, log_sigma = params
    return dv.kl_categorical(p_logits=log_normal(x, mu, log_sigma.exp()), q_logits=log_p)


mu_r, sigma_r, kl_r = runs["reverse"]
ends = {"mode -3": mu_r < -2.9, "broad, at 0": mu_r.abs() < 0.1, "mode +3": mu_r > 2.9}
print("reverse fits from 11 starts end at:", {k: int(v.sum()) for k, v in ends.items()})
k0 = int(np.argmin(np.abs(starts)))
hess = torch.autograd.functional.hessian(reverse_kl_at, torch.stack([mu_r[k0], sigma_r[k0].log()]))
print(f"broad solution: sigma {sigma_r[k0].item():.2f}, KL {kl_r[k0].item():.2f} nats; "
      f"Hessian eigenvalues (mu, log sigma) all > 0: {bool((torch.linalg.eigvalsh(hess) > 0).all())}")
print(f"mode solutions: KL {kl_r[0].item():.3f} nats = log 2 = {np.log(2):.3f}")
mu_f, sigma_f, _ = runs["forward"]
print("forward fits: every start ends at mu = 0.00:", bool((mu_f.abs() < 0.005).all()))

# %% [markdown] slideshow={"slide_type": "slide"}
# ### 4.2 The same on a token-like categorical distribution
#
# Now a "next-token" distribution over 16 tokens with two groups of likely tokens: a taller group
# around token 3 (weight 0.55, width 1) and a wider one around token 11 (weight 0.45, width 1.3).
# The model family can only make one bump: $q_{\mu,\sigma}(i)\propto \exp(-(i-\mu)^2/2\sigma^2)$,
# a stand-in for a policy that is too simple, or too constrained, to represent every mode of its
# target. Each direction is fitted from five starting points $\mu_0$.

# %% slideshow={"slide_type": "subslide"}
V = 16
tokens = torch.arange(V, dtype=torch.float64)  # (V,)
p_tok = 0.55 * torch.exp(-0.5 * ((tokens - 3) / 1.0) ** 2) + 0.45 * torch.exp(-0.5 * ((tokens - 11) / 1.3) ** 2)
p_tok = p_tok / p_tok.sum()  # (V,)


def bump_logits(mu, sigma, support=tokens):
    return -0.5 * ((support - mu[..., None]) / sigma[..., None]) ** 2  # (S, V) logits of the one-bump family


def fit_bumps(direction, mu0, steps=1500, lr=0.2):
    """One-bump fits to p_tok from each start in mu0 (S,); returns (mu, sigma, KL, q) with q (S, V)."""
    mu = torch.tensor(mu0).clone().requires_grad_(True)  # (S,)
    log_sigma = torch.zeros_like(mu).requires_grad_(True)  # (S,)
    opt = torch.optim.Adam([mu, log_sigma], lr=lr)
    p = p_tok.expand(len(mu), -1)  # (S, V)
    for _ in range(steps):
        z = bump_logits(mu, log_sigma.exp())  # (S, V)
        loss = (dv.kl_categorical(p, q_logits=z) if direction == "forward"
                else dv.kl_categorical(p_logits=z, q=p))  # (S,)
        opt.zero_grad()
        loss.sum().backward()
        opt.step()
    q = torch.softmax(bump_logits(mu, log_sigma.exp()), -1).detach()  # (S, V)
    return mu.detach(), log_sigma.exp().detach(), loss.detach(), q


tok_starts = [2.0, 4.0, 7.0, 10.0, 12.0]
tok_fits = {d: fit_bumps(d, tok_starts) for d in ("forward", "reverse")}
for d, (mu, sigma, kl, _) in tok_fits.items():
    print(f"{d} KL fits:")
    for m0, m, s, k in zip(tok_starts, mu, sigma, kl):
        print(f"  start mu0 = {m0:4.1f} -> mu = {m.item():5.2f}, sigma = {s.item():5.2f}, KL = {k.item():.3f}")
q_fwd = tok_fits["forward"][3][tok_starts.index(7.0)]  # (V,)
q_rev = tok_fits["reverse"][3][tok_starts.index(4.0)]  # (V,) start next to the mode at 3
q_rev10 = tok_fits["reverse"][3][tok_starts.index(10.0)]  # (V,) start next to the mode at 11

# %% slideshow={"slide_type": "subslide"}
fig, axes = plt.subplots(1, 3, figsize=(14, 3.6), sharey=True)
panels = [(q_fwd, "forward-KL fit (every start)", "C0"), (q_rev, "reverse-KL fit from mu0 = 4", "C3"),
          (q_rev10, "reverse-KL fit from mu0 = 10", "C1")]
for ax, (q, name, c) in zip(axes, panels):
    ax.bar(tokens, p_tok, color="0.85", label="target p")
    ax.bar(tokens, q, width=0.5, color=c, label=name)
    ax.set(xlabel="token id", title=f"{name}\nKL(p||q) = {dv.kl_categorical(p_tok, q).item():.2f}, "
                                    f"KL(q||p) = {dv.kl_categorical(q, p_tok).item():.2f}")
    ax.legend(fontsize=8, loc="upper right")
axes[0].set_ylabel("probability")
plt.suptitle("One-bump model fitted to a two-group next-token distribution", y=1.02)
plt.tight_layout()
plt.show()

# %% slideshow={"slide_type": "subslide"}
# NBVAL_CHECK_OUTPUT
valley = (tokens >= 6) & (tokens <= 8)  # tokens that p makes unlikely
print(f"p mass on the valley tokens 6-8:           {p_tok[valley].sum().item():.3f}")
print(f"forward-KL fit mass on the valley tokens:  {q_fwd[valley].sum().item():.2f}")
print(f"reverse-KL fit mass on the valley tokens:  {q_rev[valley].sum().item():.2f} (from 4), "
      f"{q_rev10[valley].sum().item():.2f} (from 10)")
print("fit                  KL(p||q)   KL(q||p)")
for name, q in [("forward", q_fwd), ("reverse from 4", q_rev), ("reverse from 10", q_rev10)]:
    print(f"{name:18s}  {dv.kl_categorical(p_tok, q).item():8.2f}   {dv.kl_categorical(q, p_tok).item():8.2f}")

# %% [markdown] slideshow={"slide_type": "-"}
# The forward fit is the same from all five starts ($\mu=6.57$, $\sigma=6.56$, KL $0.503$), and it
# puts 0.23 of its mass on the valley tokens 6–8, where $p$ has 0.015. The reverse fit depends on
# the start, and the start in the first version of this notebook, $\mu_0=4$, sits next to the mode
# at 3:
#
# * from $\mu_0=2$ or $4$ it locks onto the taller group at token 3 (KL $0.724$);
# * from $\mu_0=10$ or $12$ it locks onto the wider group at token 11 (KL $0.662$): the better of
#   the two, although that group has less mass (0.45), because its shape is easier for one bump
#   to match;
# * from $\mu_0=7$, between the groups, it ends in a broad compromise ($\sigma=6.96$, KL $0.921$),
#   the worst of the three local minima.
#
# Each fit wins on its own criterion and loses on the other: the forward fit has the smaller
# $\mathrm{KL}(p\|q)$ (0.50 against 15.68 and 8.40), the reverse fits the smaller $\mathrm{KL}(q\|p)$
# (0.72 and 0.66 against 0.92). Read $q$ as a policy: a reverse-KL fit puts almost nothing
# (0.00 and 0.03) on the tokens that its target rarely emits.

# %% [markdown] slideshow={"slide_type": "slide"}
# ### 4.3 Mode-seeking in RLHF: a restricted policy projects $\pi^*$, not $\pi_{\text{ref}}$
#
# Now the RLHF setting itself. One prompt has 40 candidate responses $y=0,\dots,39$, laid out on a
# line so that neighbours are similar. The reference policy has **two modes** (two styles of
# answer, around $y=10$ and $y=28$, equal weight), and the reward rises slowly along the line,
# $r(y)=y/39$. With $\beta=0.3$ the optimum $\pi^*\propto\pi_{\text{ref}}e^{r/\beta}$ is computed
# exactly. Then we maximise the RLHF objective $J$ itself (no KL to $\pi^*$ appears in the code)
# over two policy classes:
#
# * **softmax**: one free logit per response, rich enough to equal $\pi^*$;
# * **one bump**: $\pi_{\mu,\sigma}(y)\propto e^{-(y-\mu)^2/2\sigma^2}$, too small for a two-mode $\pi^*$.
#
# The one-bump ascent starts from two points: the bump closest to $\pi_{\text{ref}}$ (its mean and
# standard deviation, i.e. the forward-KL projection of $\pi_{\text{ref}}$) and a bump on the
# left mode. For contrast, the forward-KL fit $\min\mathrm{KL}(\pi^*\,\|\,\pi_{\mu,\sigma})$ over
# the same class.

# %% slideshow={"slide_type": "subslide"}
ys = torch.arange(40, dtype=torch.float64)  # (Y,) responses on a line
ref2 = torch.exp(-0.5 * ((ys - 10) / 2) ** 2) + torch.exp(-0.5 * ((ys - 28) / 2) ** 2)
ref2 = ref2 / ref2.sum()  # (Y,) two-mode reference
r2, beta2 = ys / 39, 0.3  # (Y,) reward, and the KL coefficient
star2 = dv.kl_regularized_optimum(ref2, r2, beta2)  # (Y,) exact optimum
J_star2 = beta2 * torch.logsumexp(torch.log(ref2) + r2 / beta2, 0).item()  # J(pi*) = beta log Z
left = ys < 19  # (Y,) the left mode's responses


def ascend_J(params, policy, steps=1000, lr=0.2):
    """Gradient ascent on J(pi) = E_pi[r2] - beta2 KL(pi || ref2) for pi = policy(*params) (S, Y)."""
    params = [p.clone().requires_grad_(True) for p in params]
    opt = torch.optim.Adam(params, lr=lr)
    for _ in range(steps):
        loss = -dv.kl_regularized_objective(policy(*params), ref2, r2, beta2)  # (S,)
        opt.zero_grad()
        loss.sum().backward()
        opt.step()
    return [p.detach() for p in params], policy(*params).detach()


def bump_policy(mu, log_sigma):
    return torch.softmax(bump_logits(mu, log_sigma.exp(), support=ys), -1)  # (S, Y)


mm_mu = (ref2 * ys).sum()  # mean of pi_ref
mm_sigma = (ref2 * (ys - mm_mu) ** 2).sum().sqrt()  # its standard deviation
_, pi_softmax = ascend_J([torch.log(ref2)[None]], lambda z: torch.softmax(z, -1))  # (1, Y) starts at pi_ref
(mu_b, log_sigma_b), pi_bump = ascend_J([torch.stack([mm_mu, torch.tensor(10.0)]),
                                         torch.stack([mm_sigma.log(), torch.tensor(np.log(2.0))])], bump_policy)

# forward-KL fit of one bump to pi*, for contrast
mu_f2 = mm_mu.clone().requires_grad_(True)
ls_f2 = mm_sigma.log().clone().requires_grad_(True)
opt = torch.optim.Adam([mu_f2, ls_f2], lr=0.2)
for _ in range(1000):
    loss = dv.kl_categorical(star2, bump_policy(mu_f2[None], ls_f2[None])[0])
    opt.zero_grad()
    loss.backward()
    opt.step()
pi_fwd2 = bump_policy(mu_f2[None], ls_f2[None])[0].detach()  # (Y,)

policies2 = {
    "pi_ref": ref2, "pi* (exact)": star2, "softmax, ascent on J": pi_softmax[0],
    f"bump, ascent on J from mu0={mm_mu.item():.0f}": pi_bump[0], "bump, ascent on J from mu0=10": pi_bump[1],
    "bump, forward-KL fit to pi*": pi_fwd2,
}
print(f"pi* / pi_ref ranges from {(star2 / ref2).min().item():.3f} to {(star2 / ref2).max().item():.2f}: "
      "pi* keeps every response of pi_ref")
print(f"{'policy':34s} {'left-mode mass':>14s} {'E[r]':>6s} {'KL(pi||ref)':>11s} {'J(pi)':>7s} "
      f"{'beta(log Z - KL(pi||pi*))':>25s}")
for name, pi in policies2.items():
    J = dv.kl_regularized_objective(pi, ref2, r2, beta2).item()
    print(f"{name:34s} {pi[left].sum().item():14.3f} {(pi * r2).sum().item():6.3f} "
          f"{dv.kl_categorical(pi, ref2).item():11.3f} {J:7.3f} {J_star2 - beta2 * dv.kl_categorical(pi, star2).item():25.3f}")
print(f"one-bump ascent ends: mu = {np.round(mu_b.numpy(), 2)}, sigma = {np.round(log_sigma_b.exp().numpy(), 2)}")

# %% slideshow={"slide_type": "subslide"}
fig, axes = plt.subplots(1, 2, figsize=(14, 4), sharey=True)
ax = axes[0]
ax.fill_between(ys, ref2, step="mid", color="0.8", label="pi_ref (two modes)")
ax.step(ys, star2, where="mid", color="k", lw=2, label="pi* = pi_ref exp(r/beta) / Z")
ax.plot(ys, pi_softmax[0], "o", color="C2", ms=4, label="softmax policy after ascent on J")
ax2 = ax.twinx()
ax2.plot(ys, r2, color="C7", ls="--", lw=1)
ax2.set_ylabel("reward r(y) (dashed)", color="C7")
ax2.grid(False)
ax.set(xlabel="response y", ylabel="probability", title="The exact optimum keeps both modes of pi_ref")
ax.legend(fontsize=8, loc="upper left")
ax = axes[1]
ax.fill_between(ys, star2, step="mid", color="0.8", label="pi* (target of the projection)")
ax.plot(ys, pi_bump[0], color="C3", lw=2, label=f"one bump, ascent on J from mu0={mm_mu.item():.0f}")
ax.plot(ys, pi_bump[1], color="C1", lw=2, ls="--", label="one bump, ascent on J from mu0=10")
ax.plot(ys, pi_fwd2, color="C0", lw=2, ls=":", label="one bump, forward-KL fit to pi*")
ax.set(xlabel="response y", title="A one-bump policy: reverse-KL projection of pi* picks a mode")
ax.legend(fontsize=8, loc="upper left")
plt.tight_layout()
plt.show()

# %% [markdown] slideshow={"slide_type": "-"}
# What the numbers say:
#
# * **The exact optimum drops no mode of $\pi_{\text{ref}}$.** $\pi^*/\pi_{\text{ref}}$ lies between
#   0.148 and 4.15 on every response, so the left mode keeps 0.177 of the mass (from 0.500). The
#   softmax policy, rich enough to represent $\pi^*$, reaches it by ascent on $J$ ($J=0.573=\beta\log Z$).
# * **The restricted policy does drop a mode.** Started from the bump closest to $\pi_{\text{ref}}$
#   ($\mu_0=19$), ascent on $J$ ends on the right mode of $\pi^*$ ($\mu=28.3$, $\sigma=2$) with 0.000
#   mass on the left mode. That is the reverse-KL projection of $\pi^*$: the last column,
#   $\beta(\log Z-\mathrm{KL}(\pi\|\pi^*))$, equals $J$ for every policy.
# * **The start decides the mode.** From $\mu_0=10$ the same ascent locks onto the left mode
#   instead ($J=0.053$, below even $\pi_{\text{ref}}$'s $0.487$): a local optimum.
# * **The forward-KL fit covers both modes** (left mass 0.181, close to $\pi^*$'s 0.177) with one
#   broad bump, which puts mass in the valley that $\pi_{\text{ref}}$ never visits: its
#   $\mathrm{KL}(\pi\|\pi_{\text{ref}})=2.48$ makes its $J$ negative ($-0.100$).
#
# So when an RLHF policy loses a behaviour that the reference had, the culprit is not the KL
# penalty, whose optimum keeps it, but a policy class or an optimiser that cannot reach $\pi^*$,
# combined with the reverse direction of the projection. This toy does not show that a real
# language model is too small for its $\pi^*$; it shows what happens when it is.

# %% slideshow={"slide_type": "subslide"}
# NBVAL_CHECK_OUTPUT
print(f"pi* keeps the left mode: mass {star2[left].sum().item():.2f} (pi_ref {ref2[left].sum().item():.2f})")
print("softmax ascent reaches pi* (max abs diff < 1e-4):", (pi_softmax[0] - star2).abs().max().item() < 1e-4)
print(f"one bump from pi_ref's moments: left-mode mass {pi_bump[0][left].sum().item():.2f}, "
      f"mean {mu_b[0].item():.1f}")
gap = [J_star2 - dv.kl_regularized_objective(pi, ref2, r2, beta2).item() - beta2 * dv.kl_categorical(pi, star2).item()
       for pi in (pi_bump[0], pi_bump[1], pi_fwd2)]
print("J(pi) = beta log Z - beta KL(pi || pi*) for the restricted policies (to 1e-10):", max(map(abs, gap)) < 1e-10)

# %% [markdown] slideshow={"slide_type": "slide"}
# ### 4.4 The asymmetry in numbers, and the broken triangle inequality
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

# %% [markdown] slideshow={"slide_type": "-"}
# **The triangle inequality fails.** A metric $d$ satisfies $d(A,C)\le d(A,B)+d(B,C)$. Take three
# coins, $A=\text{Bernoulli}(0.9)$, $B=\text{Bernoulli}(0.5)$, $C=\text{Bernoulli}(0.1)$, and compare
# with a squared distance on the same three points.

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
coin = {name: torch.tensor([h, 1 - h]) for name, h in [("A", 0.9), ("B", 0.5), ("C", 0.1)]}
KL = lambda a, b: dv.kl_categorical(coin[a], coin[b]).item()  # noqa: E731
print(f"KL(A||C) = {KL('A', 'C'):.3f}  >  KL(A||B) + KL(B||C) = {KL('A', 'B'):.3f} + {KL('B', 'C'):.3f} "
      f"= {KL('A', 'B') + KL('B', 'C'):.3f}")
print(f"ratio {KL('A', 'C') / (KL('A', 'B') + KL('B', 'C')):.2f}; squared distance on heads-probabilities: "
      f"0.8^2 = {0.8**2:.2f} > 0.4^2 + 0.4^2 = {2 * 0.4**2:.2f} (ratio {0.8**2 / (2 * 0.4**2):.2f})")
print(f"scipy agrees: {np.isclose(KL('A', 'C'), stats.entropy([0.9, 0.1], [0.1, 0.9]), rtol=1e-12)}")

# %% [markdown] slideshow={"slide_type": "slide"}
# ### 4.5 The optimum of reward minus KL, and the frontier that $\beta$ traces
#
# Six candidate responses to one prompt. The reference model prefers the first ones; the reward
# prefers the last, which the reference finds rare. We compute $\pi^*=\pi_{\text{ref}}e^{r/\beta}/Z$ with
# `kl_regularized_optimum` and check it two independent ways: by maximising $J(\pi)$ directly with
# gradient ascent on softmax logits, and by evaluating 200,000 random policies.

# %% slideshow={"slide_type": "-"}
pi_ref = torch.tensor([0.35, 0.25, 0.18, 0.12, 0.07, 0.03])  # (Y,) reference probabilities
reward = torch.tensor([0.10, 0.30, 0.00, 0.60, 0.20, 1.00])  # (Y,) r(y)
beta = 0.2

pi_star = dv.kl_regularized_optimum(pi_ref, reward, beta)  # (Y,)


def train_fixed_beta(b, steps=2000, lr=0.05):
    """One 'training run': gradient ascent on J at a fixed beta from pi_ref; returns pi and its path."""
    logits = torch.log(pi_ref).clone().requires_grad_(True)  # (Y,) the run starts at the reference
    opt = torch.optim.Adam([logits], lr=lr)
    path = []  # (KL(pi||pi_ref), E_pi[r]) after each step
    for _ in range(steps):
        pi = torch.softmax(logits, -1)
        path.append((dv.kl_categorical(pi, pi_ref).item(), (pi * reward).sum().item()))
        loss = -dv.kl_regularized_objective(pi, pi_ref, reward, b)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return torch.softmax(logits, -1).detach(), np.array(path)


pi_ascent, _ = train_fixed_beta(beta)

# enumeration: J of 200k random policies (Dirichlet) and of pi*, computed exactly
candidates = torch.distributions.Dirichlet(torch.full((6,), 0.7)).sample((200_000,))  # (N, Y)
J_candidates = dv.kl_regularized_objective(candidates, pi_ref, reward, beta)  # (N,)
J_star = dv.kl_regularized_objective(pi_star, pi_ref, reward, beta).item()
log_Z = torch.logsumexp(torch.log(pi_ref) + reward / beta, 0).item()
print("pi_ref  :", np.round(pi_ref.numpy(), 3))
print("pi*     :", np.round(pi_star.numpy(), 3))
print("ascent  :", np.round(pi_ascent.numpy(), 3))
print(f"J(pi*) = {J_star:.4f}, beta*log Z = {beta * log_Z:.4f}, best random policy J = {J_candidates.max().item():.4f}")

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Sweeping $\beta$ is not training.** A training run has *one* $\beta$: it starts at
# $\pi_{\text{ref}}$ (KL 0) and, if the policy class is rich enough and the optimiser succeeds, ends
# at the single point $\pi^*_\beta$. Sweeping $\beta$ and computing $\pi^*_\beta$ exactly traces the
# **frontier**: the largest expected reward any policy can have at a given
# $\mathrm{KL}(\pi\,\|\,\pi_{\text{ref}})$. (Maximising $\mathbb{E}_\pi[r]$ subject to a KL budget has
# the Lagrangian $J$, so each $\pi^*_\beta$ is optimal for its own KL, and the frontier's slope there
# is $d\,\mathbb{E}[r]/d\,\mathrm{KL}=\beta$.) Later notebooks plot reward against KL; this is the
# curve they are compared with. Below: $\pi^*_\beta$ for several $\beta$, expected reward and KL
# against $\beta$ on separate axes, and the frontier with two training runs and the random policies.

# %% slideshow={"slide_type": "subslide"}
betas = torch.logspace(1, -2, 601)  # from weak to strong reward pressure
stars = dv.kl_regularized_optimum(pi_ref, reward[None], betas[:, None])  # (nB, Y)
exp_r = (stars * reward).sum(-1)  # (nB,) E_{pi*_beta}[r]
kls = dv.kl_categorical(stars, pi_ref.expand_as(stars))  # (nB,) KL(pi*_beta || pi_ref)
run_betas = [0.3, 0.1]
runs_beta = {b: train_fixed_beta(b) for b in run_betas}
cand_kl = dv.kl_categorical(candidates, pi_ref.expand_as(candidates))  # (N,)
cand_r = (candidates * reward).sum(-1)  # (N,)

fig, axes = plt.subplots(2, 2, figsize=(13, 8))
ax = axes[0, 0]
show = [10.0, 1.0, 0.3, 0.1, 0.03]
w = 0.8 / (len(show) + 1)
ax.bar(np.arange(6) - 0.4 + w / 2, pi_ref, width=w, color="0.6", label="pi_ref")
for k, b in enumerate(show):
    ax.bar(np.arange(6) - 0.4 + w * (k + 1.5), dv.kl_regularized_optimum(pi_ref, reward, b), width=w,
           color=plt.cm.viridis(k / len(show)), label=f"pi*, beta={b}")
ax.set(xticks=range(6), xticklabels=[f"y{i + 1}\nr={v:.1f}" for i, v in enumerate(reward.tolist())],
       ylabel="probability", title="pi* moves from pi_ref to argmax r as beta falls")
ax.legend(fontsize=8, loc="upper center")

ax = axes[0, 1]
ax.semilogx(betas, exp_r, color="C2", label="E_pi*[r]")
ax.axhline(reward.max(), color="C2", ls=":", label=f"max r = {reward.max().item():.1f}")
ax.axhline((pi_ref * reward).sum(), color="0.5", ls=":", label=f"E_pi_ref[r] = {(pi_ref * reward).sum().item():.3f}")
ax.set(xlabel="beta (log scale; reward pressure grows to the right)", ylabel="expected reward",
       title="Expected reward of pi*_beta")
ax.invert_xaxis()
ax.legend(fontsize=8, loc="center left")

ax = axes[1, 0]
ax.semilogx(betas, kls, color="C3", label="KL(pi*_beta || pi_ref)")
ax.axhline(-np.log(pi_ref[-1].item()), color="C3", ls=":",
           label=f"-log pi_ref(argmax r) = {-np.log(pi_ref[-1].item()):.2f}")
ax.set(xlabel="beta (log scale; reward pressure grows to the right)", ylabel="KL (nats)",
       title="KL of pi*_beta from the reference")
ax.invert_xaxis()
ax.legend(fontsize=8, loc="upper left")

ax = axes[1, 1]
sub = torch.randperm(len(candidates), generator=torch.Generator().manual_seed(0))[:4000]
ax.plot(cand_kl[sub], cand_r[sub], ".", color="0.75", ms=2, label="random policies (4,000 of 200k)")
ax.plot(kls, exp_r, color="k", lw=2, label="frontier: pi*_beta, beta swept")
for b, c in zip(run_betas, ["C0", "C1"]):
    _, path = runs_beta[b]
    ax.plot(path[:, 0], path[:, 1], color=c, lw=1.5, label=f"one training run, beta = {b}")
    kb = int(torch.argmin((betas - b).abs()))
    ax.plot(kls[kb], exp_r[kb], "*", color=c, ms=14, mec="k")
ax.set(xlabel="KL(pi || pi_ref) (nats)", ylabel="expected reward E_pi[r]", xlim=(0, 3.8),
       title="Reward-KL frontier (black) vs two runs at fixed beta (stars: pi*_beta)")
ax.legend(fontsize=8, loc="lower right")
plt.tight_layout()
plt.show()

# %% slideshow={"slide_type": "subslide"}
# NBVAL_CHECK_OUTPUT
for b in run_betas:
    pi_end, path = runs_beta[b]
    kb = int(torch.argmin((betas - b).abs()))
    print(f"run at beta={b}: ends at KL {path[-1, 0]:.3f}, E[r] {path[-1, 1]:.3f}; "
          f"pi*_beta has KL {kls[kb].item():.3f}, E[r] {exp_r[kb].item():.3f}")
frontier_at = np.interp(cand_kl.numpy(), kls.numpy(), exp_r.numpy())  # (N,) frontier at each KL
inside = cand_kl < kls.max()  # candidates within the swept KL range
print(f"random policies above the frontier: {int((cand_r.numpy() - frontier_at > 1e-6)[inside.numpy()].sum())} "
      f"of {int(inside.sum())}")
h = 1e-4
s_lo, s_hi = (dv.kl_regularized_optimum(pi_ref, reward, b) for b in (beta - h, beta + h))
slope = (((s_hi - s_lo) * reward).sum() / (dv.kl_categorical(s_hi, pi_ref) - dv.kl_categorical(s_lo, pi_ref))).item()
print(f"frontier slope dE[r]/dKL at beta = {beta}: {slope:.4f}")

# %% [markdown] slideshow={"slide_type": "-"}
# Reading the panels:
#
# * **Top left:** as $\beta$ falls, $\pi^*$ moves its mass from the responses $\pi_{\text{ref}}$ likes
#   to $y_6$ (reward 1.0, reference probability 0.03), and at every $\beta$ it keeps some mass on
#   every response.
# * **Top right and bottom left** (one quantity per panel, so the two limits no longer share a
#   pixel row): as $\beta$ falls, the expected reward climbs from $\mathbb{E}_{\pi_{\text{ref}}}[r]=0.226$
#   to $\max r=1$, and the KL climbs from 0 to $-\log\pi_{\text{ref}}(y_6)=3.51$ nats, the cost of
#   putting all mass on a response the reference gives 3%.
# * **Bottom right:** the frontier is the upper edge of everything reachable. None of the 200,000
#   random policies lies above it, and its slope at $\beta=0.2$ is $0.2000=\beta$. Each training
#   run (fixed $\beta$) starts at $(0, 0.226)$ and ends on the frontier at its own $\pi^*_\beta$: the
#   run at $\beta=0.3$ at KL $0.548$ against $0.555$ for $\pi^*_{0.3}$, the run at $\beta=0.1$ at
#   $3.086$ against $3.087$. The path between is set by the optimiser (here Adam on logits); no
#   policy can rise above the frontier, so a path runs at or below it. A run at one $\beta$
#   heads for one point; changing $\beta$ moves that end point along the frontier.

# %% [markdown] slideshow={"slide_type": "slide"}
# ### 4.6 Another regulariser in eq. (1): the forward KL
#
# Eq. (1) allows any $r_{\text{reg.}}$. Swap the direction: $r_{\text{reg.}}=\mathrm{KL}(\pi_{\text{ref}}\,\|\,\pi)$.
# Setting the gradient of $\mathbb{E}_\pi[r]-\beta\,\mathrm{KL}(\pi_{\text{ref}}\|\pi)$ plus a
# Lagrange multiplier $\lambda$ for $\sum\pi=1$ to zero gives
#
# $$\pi_{\text{fwd}}(y) = \frac{\beta\,\pi_{\text{ref}}(y)}{\lambda - r(y)},\qquad \lambda > \max_y r(y)
# \text{ chosen so that } \textstyle\sum_y\pi_{\text{fwd}}(y)=1 .$$
#
# The reweighting is hyperbolic in $r$ instead of exponential. We find $\lambda$ by bisection,
# check it against gradient ascent, and trace both regularisers' curves as $\beta$ sweeps, measuring
# the policy with *each* KL direction.

# %% slideshow={"slide_type": "subslide"}
def forward_reg_optimum(b, iters=200):
    """argmax_pi E_pi[reward] - b KL(pi_ref || pi), by bisection on the multiplier lambda."""
    lo, hi = reward.max().item() + 1e-12, reward.max().item() + b + 1.0  # sum(pi) falls from +inf to < 1
    for _ in range(iters):
        lam = 0.5 * (lo + hi)
        lo, hi = (lam, hi) if (b * pi_ref / (lam - reward)).sum() > 1 else (lo, lam)
    return b * pi_ref / (0.5 * (lo + hi) - reward)  # (Y,)


logits = torch.log(pi_ref).clone().requires_grad_(True)
opt = torch.optim.Adam([logits], lr=0.05)
for _ in range(3000):
    pi = torch.softmax(logits, -1)
    loss = -((pi * reward).sum() - beta * dv.kl_categorical(pi_ref, pi))
    opt.zero_grad()
    loss.backward()
    opt.step()
pi_fwd_reg = forward_reg_optimum(beta)
print(f"beta = {beta}")
print("pi_ref                          :", np.round(pi_ref.numpy(), 3))
print("reverse-KL regulariser (pi*)    :", np.round(pi_star.numpy(), 3))
print("forward-KL regulariser, bisection:", np.round(pi_fwd_reg.numpy(), 3))
print("forward-KL regulariser, ascent   :", np.round(torch.softmax(logits, -1).detach().numpy(), 3))

betas_f = torch.logspace(1, -2, 121)
fwd_curve = torch.stack([forward_reg_optimum(b.item()) for b in betas_f])  # (nB, Y)
rev_curve = dv.kl_regularized_optimum(pi_ref, reward[None], betas_f[:, None])  # (nB, Y)
curves = {"r_reg = KL(pi || pi_ref) (eq. 2)": rev_curve, "r_reg = KL(pi_ref || pi)": fwd_curve}
fig, axes = plt.subplots(1, 2, figsize=(13, 4), sharey=True)
for ax, measure, label in [(axes[0], lambda P: dv.kl_categorical(P, pi_ref.expand_as(P)), "KL(pi || pi_ref)"),
                           (axes[1], lambda P: dv.kl_categorical(pi_ref.expand_as(P), P), "KL(pi_ref || pi)")]:
    for (name, P), ls in zip(curves.items(), ["-", "--"]):
        ax.plot(measure(P), (P * reward).sum(-1), ls, lw=2, label=name)
    ax.set(xlabel=f"{label} (nats)", xlim=(0, 4), title=f"Optimal policies, measured by {label}")
    ax.legend(fontsize=8, loc="lower right")
axes[0].set_ylabel("expected reward E_pi[r]")
plt.tight_layout()
plt.show()

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
print("bisection = gradient ascent (max abs diff < 1e-4):",
      (pi_fwd_reg - torch.softmax(logits, -1).detach()).abs().max().item() < 1e-4)
for name, P in [("reverse-KL reg", pi_star), ("forward-KL reg", pi_fwd_reg)]:
    print(f"{name}: E[r] {(P * reward).sum().item():.3f}, KL(pi||ref) {dv.kl_categorical(P, pi_ref).item():.3f}, "
          f"KL(ref||pi) {dv.kl_categorical(pi_ref, P).item():.3f}, min pi/pi_ref {(P / pi_ref).min().item():.3f}")

# %% [markdown] slideshow={"slide_type": "-"}
# Both regularisers keep every response (the smallest $\pi/\pi_{\text{ref}}$ is 0.112 for the
# reverse KL and 0.198 for the forward KL, at $\beta=0.2$), and the bisection solution matches
# gradient ascent. They spend the budget differently: at the same $\beta$ the forward-KL solution
# puts 0.74 on $y_6$ (against 0.50) and gets more reward (0.808 against 0.709), with a larger
# reverse KL (2.04 against 1.36 nats). Which is "better" depends on the yardstick. Measured by
# $\mathrm{KL}(\pi\|\pi_{\text{ref}})$ (left), the reverse-KL regulariser's curve lies on top, since it
# *is* the frontier of section 4.5; measured by $\mathrm{KL}(\pi_{\text{ref}}\|\pi)$ (right), the
# forward-KL regulariser's curve does. A regulariser in eq. (1) is a choice of what "staying close"
# means, and each is optimal for its own choice.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. What the logged metrics mean
#
# * **`kl` in a training log** is (an estimate of) $\mathrm{KL}(\pi_\theta\,\|\,\pi_{\text{ref}})$ in nats,
#   the reverse direction, summed over response tokens. It is 0 at the start, when the policy is the
#   reference. Notebook 02 shows how it is estimated from samples and how it can go wrong.
# * **Its size**: $\log 2\approx0.69$ nats is what sitting on one of two equal modes costs (section
#   4.1); committing to a response the reference gives probability $\rho$ costs $-\log\rho$ (3.51 nats
#   for 3%, section 4.5).
# * **`reward - beta * kl`** is the objective $J$; at the optimum it equals $\beta\log Z$, and the
#   policy is $\pi_{\text{ref}}e^{r/\beta}/Z$. A run with a fixed $\beta$ heads for one point of the
#   reward–KL frontier; to compare runs or methods, plot their end points against the frontier
#   traced by sweeping $\beta$ (section 4.5).
# * **A policy that lost a behaviour of the reference** did not lose it to the KL penalty, whose
#   optimum keeps every mode; look at the policy class and the optimiser (section 4.3).

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. Checks
#
# Deterministic summaries that `pytest --nbval-lax` compares with the stored outputs.

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
mm_sigma1 = float(np.sqrt(0.7**2 + 3.0**2))  # moment matching: Var_p = within-mode + between-mode variance
k1_ = int(np.argmin(np.abs(starts - 1.0)))
mu_f1, sigma_f1 = runs["forward"][0][k1_].item(), runs["forward"][1][k1_].item()
print(f"forward fit = moment matching: mu {round(mu_f1, 2) + 0.0:+.2f} vs +0.00, sigma {sigma_f1:.2f} vs {mm_sigma1:.2f}:",
      abs(mu_f1) < 0.01 and abs(sigma_f1 - mm_sigma1) < 0.01)
print("Gaussian KL closed form = grid KL:",
      abs(dv.kl_gaussian(0.0, 1.0, 1.0, 2.0).item()
          - dv.kl_categorical(p_logits=log_normal(x, torch.tensor(0.0), torch.tensor(1.0)),
                              q_logits=log_normal(x, torch.tensor(1.0), torch.tensor(2.0))).item()) < 1e-6)

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
print("pi* matches gradient ascent (max abs diff < 1e-4):", (pi_star - pi_ascent).abs().max().item() < 1e-4)
print("J(pi*) = beta log Z:", abs(J_star - beta * log_Z) < 1e-12)
print("no random policy beats pi*:", bool((J_candidates <= J_star + 1e-12).all()))
print("frontier slope equals beta (to 1e-4):", abs(slope - beta) < 1e-4)
print("beta -> 0: pi* -> argmax r:", int(stars[-1].argmax()) == int(reward.argmax()), f"(mass {stars[-1].max().item():.2f})")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 7. References
#
# * N. Lambert, *RLHF book*, chapter "Regularization": eqs. (1)–(4), the KL penalty and its direction.
# * Y. Yang, Lecture 6 "RLHF in Language Models" (PKU, 2023): the f-divergence table of f-DPG.
# * "Understanding RLHF" (blog post, 2023): RLHF as Bayesian inference, $\pi^*\propto\pi_0 e^{r/\beta}$.
# * D. Go et al., "Aligning language models with preferences through f-divergence minimization", 2023.
# * T. Korbak, E. Perez, C. Buckley, "RL with KL penalties is better viewed as Bayesian inference", 2022.
# * C. Bishop, *Pattern Recognition and Machine Learning*, §10.1.2 (the two KL directions).
