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
# # 02 · Estimating KL from samples: k1, k2, k3, and why logged KL goes negative
#
# An RLHF trainer cannot sum over every possible response to compute $\mathrm{KL}(\pi\,\|\,\pi_{\text{ref}})$.
# It samples responses and averages a per-sample estimate. This notebook measures how good those
# estimates are, on Gaussians where the truth is known and on the course's tiny language model, and
# shows how a sampler that is not the policy makes the estimate go negative.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. Learning goals
#
# 1. Write the Monte Carlo KL (eq. 4 of the Regularization chapter) and three per-sample estimators
#    $k_1, k_2, k_3$; know which are unbiased, which are non-negative, and which have low variance.
# 2. Reproduce Schulman's bias/variance table with $10^6$+ samples.
# 3. On a language model, compare the sequence-level sampled estimate with the exact per-token sum
#    over the vocabulary, and see how the batch mean converges.
# 4. Explain, and quantify, why top-$k$ sampling and a forced minimum length bias the logged KL
#    (negative against a sharper reference, positive against a flatter one), and why the safe
#    sampler of `rlhf_edu.generation` does not.
# 5. Watch a policy learn to exploit a biased sampler: the logged KL falls while the true KL rises.
# 6. Read the `kl` number in a training log, tell noise from bias when it is negative, and know the
#    0–10 nats rule of thumb.

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
import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from rlhf_edu.config import get_scale, seed_everything
from rlhf_edu import divergences as dv
from rlhf_edu.data import load_splits, make_prompts
from rlhf_edu.generation import sample
from rlhf_edu.logprobs import response_logits
from rlhf_edu.models import load_policy

scale = get_scale()
gen = seed_everything(0, threads=2)
plt.rcParams.update({"figure.dpi": 90, "axes.grid": True, "grid.alpha": 0.3})

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. Background
#
# The KL divergence (eq. 3) is a sum over all outcomes. Writing it as an expectation under the first
# argument gives the Monte Carlo form the Regularization chapter uses in practice:
#
# $$\mathcal{D}_{\text{KL}}(P\,\|\,Q) = \mathbb{E}_{x\sim P}\big[\log P(x) - \log Q(x)\big]. \qquad (4)$$
#
# In RLHF, $P=\pi_{\text{RL}}$ generates the samples and $Q=\pi_{\text{ref}}$ only scores them.

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Three per-sample estimators** (J. Schulman, "Approximating KL divergence", 2020). Let
# $r = Q(x)/P(x)$ for $x\sim P$, and store $\log r$ (`log_ratio`).
#
# | estimator | formula | unbiased? | sign |
# |---|---|---|---|
# | $k_1$ | $-\log r$ | yes: this is eq. (4) | any sign; high variance |
# | $k_2$ | $\tfrac12(\log r)^2$ | no; right to second order when $P\approx Q$ | $\ge 0$ |
# | $k_3$ | $(r-1)-\log r$ | yes, because $\mathbb{E}_P[r] = \sum_x Q(x) = 1$ | $\ge 0$, since $\log r\le r-1$ |
#
# $k_3$ is $k_1$ plus the control variate $r-1$, which has mean zero and is strongly anti-correlated
# with $-\log r$ when $P\approx Q$. Near $\log r=0$, computing $e^{\log r}-1-\log r$ naively cancels
# catastrophically (the answer is about $(\log r)^2/2$); the library uses `expm1` and a Taylor series.

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Sequences.** For a response $y=(y_1,\dots,y_T)$ the log-probability is a sum over tokens, so the
# sequence-level $k_1$ is the sum of per-token $k_1$. By the chain rule of KL,
#
# $$\mathrm{KL}\big(\pi(y)\,\|\,\pi_{\text{ref}}(y)\big) = \mathbb{E}_{y\sim\pi}\Big[\sum_t \mathrm{KL}\big(\pi(\cdot\mid y_{<t})\,\|\,\pi_{\text{ref}}(\cdot\mid y_{<t})\big)\Big],$$
#
# so a third unbiased estimate is available for free: the **exact** per-token KL over the whole
# vocabulary, summed along the sampled prefix. It removes the noise of which token was drawn.
#
# **When the sampler is not the policy.** If responses come from a modified sampler $s$ (top-$k$,
# top-$p$, a forced minimum length), the logged $k_1$ averages to
#
# $$\mathbb{E}_{y\sim s}\big[\log\pi(y)-\log\pi_{\text{ref}}(y)\big] = \mathrm{KL}(s\,\|\,\pi_{\text{ref}}) - \mathrm{KL}(s\,\|\,\pi),$$
#
# a difference of two KLs, which is negative whenever the sampler is closer to the reference than to
# the policy (TRL's PPO notes describe the symptom).

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. Implementation
#
# The estimators are one-liners on `log_ratio = log Q(x) - log P(x)`; `k3` handles the cancellation.
# `per_token_kl` is the exact sum over the vocabulary, and `kl_estimates_from_logits` returns all
# sequence-level estimates for a batch of sampled responses.

# %% slideshow={"slide_type": "skip"}
for fn in (dv.k1, dv.k2, dv.k3):
    print(inspect.getsource(fn))

# %% slideshow={"slide_type": "skip"}
print(inspect.getsource(dv.per_token_kl))
print(inspect.getsource(dv.kl_estimates_from_logits))

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. Experiments
#
# ### 4.1 Schulman's table
#
# Samples come from $P=\mathcal{N}(0,1)$ and are scored by $Q=\mathcal{N}(0.1,1)$ or $\mathcal{N}(1,1)$
# (Schulman's $q$ and $p$). The true KL is $\mu^2/2$: $0.005$ and $0.5$ nats. With unit variances the
# log-ratio is linear in $x$: $\log r = \mu x - \mu^2/2$. We draw $4\times10^6$ samples per setting
# (seeded, vectorised) and report the bias and the standard deviation of one sample's estimate,
# both divided by the true KL, with the standard error of the bias.

# %% slideshow={"slide_type": "-"}
n_mc = 4_000_000
g = torch.Generator().manual_seed(0)
x = torch.randn(n_mc, generator=g, dtype=torch.float64)  # (K,) samples from P = N(0, 1)
reference = {  # Schulman (2020): (bias/KL, stdev/KL)
    ("k1", 0.1): (0.0, 20.0), ("k2", 0.1): (0.002, 1.42), ("k3", 0.1): (0.0, 1.42),
    ("k1", 1.0): (0.0, 2.0), ("k2", 1.0): (0.25, 1.73), ("k3", 1.0): (0.0, 1.7),
}
estimators = {"k1": dv.k1, "k2": dv.k2, "k3": dv.k3}
table, samples = {}, {}
for mu in (0.1, 1.0):
    log_ratio = mu * x - mu**2 / 2  # (K,) log Q(x) - log P(x) for Q = N(mu, 1)
    true_kl = dv.kl_gaussian(0.0, 1.0, mu, 1.0).item()
    for name, est in estimators.items():
        v = est(log_ratio)  # (K,)
        bias, sd = (v.mean().item() - true_kl) / true_kl, v.std().item() / true_kl
        table[name, mu] = (bias, sd, sd / math.sqrt(n_mc))
        samples[name, mu] = v[:200_000]

# %% slideshow={"slide_type": "subslide"}
# NBVAL_CHECK_OUTPUT
print("Q = N(mu, 1), P = N(0, 1); 4e6 samples; bias and stdev divided by the true KL")
print(f"{'est':4s} {'mu':>4s} | {'bias/KL':>8s} {'(+-SE)':>7s} {'ref':>6s} | {'stdev/KL':>8s} {'ref':>6s}")
for (name, mu), (bias, sd, se) in sorted(table.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    rb, rs = reference[name, mu]
    print(f"{name:4s} {mu:4.1f} | {round(bias, 2) + 0.0:8.2f} {f'({se:.2f})':>7s} {rb:6.3g} | {sd:8.1f} {rs:6.3g}")

# %% [markdown] slideshow={"slide_type": "-"}
# The table matches Schulman's. $k_1$ is unbiased but its standard deviation is **20 times** the
# KL it estimates when the distributions are close: you would need about $400\cdot 10^4$ samples
# to pin the KL to 1%. $k_3$ is just as unbiased with 14× less spread. $k_2$ is as quiet as $k_3$
# and nearly unbiased when $P\approx Q$, but at $\mu=1$ it overshoots by 25%.

# %% slideshow={"slide_type": "subslide"}
mus = np.linspace(0.05, 2.0, 40)
x_small = x[:200_000]
sweep = {name: [] for name in estimators}
for mu in mus:
    lr = mu * x_small - mu**2 / 2
    for name, est in estimators.items():
        v = est(lr)
        sweep[name].append((v.mean().item() / (mu**2 / 2) - 1, v.std().item() / (mu**2 / 2)))

fig, axes = plt.subplots(1, 3, figsize=(15, 4))
colors = {"k1": "C0", "k2": "C1", "k3": "C2"}
for ax, mu in zip(axes[:2], (0.1, 1.0)):
    true_kl = mu**2 / 2
    lo, hi = np.quantile(samples["k1", mu].numpy(), [0.005, 0.995])
    bins = np.linspace(lo, hi, 120)
    for name in estimators:
        ax.hist(samples[name, mu].numpy(), bins=bins, density=True, histtype="step", lw=1.8, color=colors[name],
                label=f"{name}: mean {samples[name, mu].mean():.3g}")
    ax.axvline(true_kl, color="k", ls="--", label=f"true KL = {true_kl:g}")
    ax.set(xlabel="per-sample estimate (nats)", ylabel="density (log scale)", yscale="log",
           title=f"Q = N({mu}, 1): distribution of each estimator")
    ax.legend(fontsize=8)
ax = axes[2]
for name in estimators:
    ax.plot(mus, [s for _, s in sweep[name]], color=colors[name], label=f"{name}: stdev / KL")
    ax.plot(mus, [abs(b) for b, _ in sweep[name]], color=colors[name], ls=":", label=f"{name}: |bias| / KL")
ax.set(xscale="log", yscale="log", xlabel="mu (distance between P and Q)", ylabel="relative to the true KL",
       title="Variance and bias vs distance", ylim=(1e-3, 100))
ax.legend(fontsize=7, ncol=2)
plt.tight_layout()
plt.show()

# %% [markdown] slideshow={"slide_type": "-"}
# Left and middle: $k_1$ (blue) is spread on both sides of zero, $k_2$ and $k_3$ are never negative.
# Right: the relative spread of $k_1$ grows like $2/\mu$ as the distributions get closer, while $k_3$
# and $k_2$ stay near $\sqrt2$; the bias of $k_2$ grows with the distance, the dotted lines of
# $k_1$ and $k_3$ are Monte Carlo noise.

# %% [markdown] slideshow={"slide_type": "slide"}
# ### 4.2 On the tiny language model
#
# $\pi$ is the course's base model at this scale, and we need a reference $\pi_{\text{ref}}$ at a
# known, moderate distance. Training one takes minutes, so we use a **logit-space perturbation** of
# the same network:
#
# $$\pi_{\text{ref}}(v\mid c) \propto \exp\big(1.1\,z_v(c) - 4\,[v=\text{EOS}]\big),$$
#
# where $z(c)$ are $\pi$'s logits. The reference is slightly more confident (logits scaled by 1.1)
# and ends responses later (EOS logit lowered by 4). Read in reverse, $\pi$ is a policy that has
# drifted from its reference in two common ways: it spreads mass over more tokens, and it stops
# earlier. We still *sample* $\pi$ at temperature 1; only the reference is perturbed, and one
# forward pass scores both. Section 4.3 uses exactly these two drifts.

# %% slideshow={"slide_type": "skip"}
model, tokenizer = load_policy(scale)
model.eval()
EOS = tokenizer.eos_token_id
R = scale.max_response_tokens
n_conv = 8 * scale.rl_batch_size  # responses for the convergence study
n_setting = 4 * scale.rl_batch_size  # responses per sampler setting in 4.3
prompt = make_prompts(load_splits(seed=0)["validation"], n=1, seed=0)["prompt"][0]
print(f"prompt: {prompt!r}; {R} new tokens; {n_conv} samples")


def reference_logits(z):
    # pi_ref's logits from pi's logits z (..., V): sharpen by 1.1 and lower EOS by 4.
    z_ref = 1.1 * z
    z_ref[..., EOS] -= 4.0
    return z_ref


@torch.no_grad()
def kl_of_rollout(rollout, reference_logits=reference_logits, chunk=64):
    # SequenceKL (k1, k2, k3, exact), each (B,), for a rollout sampled from pi, against pi_ref.
    parts = []
    for i in range(0, rollout.input_ids.shape[0], chunk):
        rows = slice(i, i + chunk)
        z = response_logits(model, rollout.input_ids[rows], rollout.attention_mask[rows],
                            rollout.prompt_length).float()  # (b, R, V)
        parts.append(dv.kl_estimates_from_logits(z, reference_logits(z), rollout.response_ids[rows],
                                                 rollout.response_mask[rows]))
    return dv.SequenceKL(*(torch.cat([getattr(p, f) for p in parts]) for f in dv.SequenceKL._fields))


safe = sample(model, tokenizer, [prompt] * n_conv, R, seed=1)  # safe settings: pi itself
est_safe = kl_of_rollout(safe)
for t in safe.texts[:3]:
    print("  ->", repr(t))

# %% slideshow={"slide_type": "subslide"}
n = torch.arange(1, n_conv + 1)
fig, axes = plt.subplots(1, 2, figsize=(13, 4))
ax = axes[0]
for name, c in [("k1", "C0"), ("k3", "C2"), ("exact", "C3")]:
    v = getattr(est_safe, name).double()  # (K,)
    mean = v.cumsum(0) / n
    var = ((v**2).cumsum(0) / n - mean**2).clamp_min(0) * n / (n - 1).clamp_min(1)
    se = (var / n).sqrt()
    ax.plot(n, mean, color=c, label=f"sum of per-token {name}" if name != "exact" else "exact per-token sum")
    ax.fill_between(n[1:], (mean - 2 * se)[1:], (mean + 2 * se)[1:], color=c, alpha=0.15)
ax.axhline(est_safe.exact.mean().item(), color="k", ls=":", lw=1, label="final mean of the exact sum")
ax.set(xscale="log", xlabel="number of sampled responses", ylabel="batch-mean KL estimate (nats)",
       title="Convergence of the batch mean (bands: ±2 SE)")
ax.set_ylim(est_safe.exact.mean().item() - 2.5, est_safe.exact.mean().item() + 2.5)
ax.legend(fontsize=8)
ax = axes[1]
bins = np.linspace(-6, 10, 65)
for name, c in [("k1", "C0"), ("k3", "C2"), ("exact", "C3")]:
    v = getattr(est_safe, name)
    ax.hist(v.numpy(), bins=bins, histtype="step", lw=1.8, color=c, label=f"{name}: sd {v.std():.2f} nats")
ax.set(xlabel="per-response estimate of KL(pi || pi_ref) (nats)", ylabel="responses",
       title="Spread of one response's estimate")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
means = {f: getattr(est_safe, f).mean().item() for f in ("k1", "k3", "exact")}
sds = {f: getattr(est_safe, f).std().item() for f in ("k1", "k3", "exact")}
print("the exact per-token sum has the smallest spread:", sds["exact"] < min(sds["k1"], sds["k3"]))
se = sds["k1"] / math.sqrt(n_conv)
print("k1 and k3 batch means agree with the exact sum within 3 SE:",
      all(abs(means[f] - means["exact"]) < 3 * se for f in ("k1", "k3")))

# %% [markdown] slideshow={"slide_type": "-"}
# All three estimators agree on the sequence KL; they differ in how many responses they need.
# The exact per-token sum is by far the quietest, because only the randomness of the *prefix* is
# left. Note that the $k_3$ sum is **not** quieter than the $k_1$ sum here, unlike in Schulman's
# table: $k_3$'s advantage needs log-ratios near 0, and a language model has tokens where
# $\pi_{\text{ref}}/\pi$ is large, where $r-1$ explodes (the long right tail of the green histogram).
# RLHF implementations usually log (and penalise with) the $k_1$ sum because it needs only the
# sampled tokens' log-probs, not the full vocabulary.

# %% [markdown] slideshow={"slide_type": "slide"}
# ### 4.3 Negative KL from biased sampling
#
# Same prompt, same $\pi$ and $\pi_{\text{ref}}$, but the responses now come from a sampler $s$ that
# is not $\pi$: top-$k$ truncation, or EOS forbidden until the maximum length (`min_new_tokens`).
# The `Rollout` returned by `sample` records both `logprobs` ($\log\pi$, what a trainer computes when
# it re-scores the samples) and `sampler_logprobs` ($\log s$). The logged $k_1$ is
# $\log\pi-\log\pi_{\text{ref}}$; it splits into $(\log s - \log\pi_{\text{ref}}) - (\log s - \log\pi)$,
# whose means estimate $\mathrm{KL}(s\|\pi_{\text{ref}})$ and $\mathrm{KL}(s\|\pi)$.

# %% slideshow={"slide_type": "skip"}
try:
    sample(model, tokenizer, [prompt], R, top_k=10)
except ValueError as err:
    print("sample() refuses by default:", str(err)[:110], "...")

settings = {"top_k=50": dict(top_k=50), "top_k=10": dict(top_k=10), f"min_new_tokens={R}": dict(min_new_tokens=R)}
rollouts = {"safe (top_k=0, top_p=1)": safe}
for name, kw in settings.items():
    rollouts[name] = sample(model, tokenizer, [prompt] * n_setting, R, seed=2, allow_biased=True, **kw)

rows = {}
for name, ro in rollouts.items():
    est = est_safe if ro is safe else kl_of_rollout(ro)
    mask = ro.response_mask
    # log s(y) - log pi(y) per response: how far the sampler is from the policy
    s_vs_pi = dv.k1(dv.sampled_log_ratio(ro.sampler_logprobs, ro.logprobs, mask)).sum(-1)  # (B,)
    rows[name] = dict(k1=est.k1, k3=est.k3, exact=est.exact, s_vs_pi=s_vs_pi,
                      s_vs_ref=est.k1 + s_vs_pi, length=mask.sum(1).float())

# %% slideshow={"slide_type": "subslide"}
print(f"{'sampler':24s} {'k1 (logged)':>14s} {'k1<0':>5s} | {'KL(s||ref)':>10s} {'KL(s||pi)':>9s} | "
      f"{'k3':>5s} {'exact':>5s} {'len':>4s}")
for name, r in rows.items():
    k1v = r["k1"]
    se = k1v.std().item() / math.sqrt(len(k1v))
    print(f"{name:24s} {k1v.mean().item():7.1f} ± {se:3.1f}  {(k1v < 0).float().mean().item():5.2f} | "
          f"{r['s_vs_ref'].mean().item():10.1f} {r['s_vs_pi'].mean().item():9.1f} | "
          f"{r['k3'].mean().item():5.1f} {r['exact'].mean().item():5.1f} {r['length'].mean().item():4.0f}")

# %% slideshow={"slide_type": "subslide"}
fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
names = list(rows)
ax = axes[0]
pos = np.arange(len(names))
for j, (key, c, lab) in enumerate([("k1", "C0", "logged k1 = log pi - log pi_ref"),
                                   ("s_vs_ref", "C2", "KL(s || pi_ref) part"),
                                   ("s_vs_pi", "C3", "KL(s || pi) part (subtracted)")]):
    m = [rows[k][key].mean().item() for k in names]
    e = [2 * rows[k][key].std().item() / math.sqrt(len(rows[k][key])) for k in names]
    ax.bar(pos + (j - 1) * 0.27, m, width=0.27, yerr=e, color=c, label=lab, capsize=3)
ax.axhline(0, color="k", lw=0.8)
ax.set(xticks=pos, xticklabels=names, ylabel="mean over responses (nats)",
       title="Logged KL = KL(s||pi_ref) - KL(s||pi): pulled down when s is not pi")
ax.legend(fontsize=8)
ax.tick_params(axis="x", labelsize=8)
ax = axes[1]
ax.boxplot([rows[k]["k1"].numpy() for k in names], showfliers=False)
ax.axhline(0, color="k", lw=0.8)
ax.set_xticks(range(1, len(names) + 1), names, fontsize=8)
ax.set(ylabel="per-response k1 (nats)", title="Per-response logged KL under each sampler")
plt.tight_layout()
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Why it goes down, and below zero.** The subtracted part $\mathrm{KL}(s\|\pi)$ is positive for
# every biased sampler, so the logged $k_1$ always falls below the true KL (0.9 nats here, the safe
# sampler's estimate). Whether it also crosses zero depends on how far it falls; with this model all
# three biased samplers take it below zero, by many standard errors: top-$k$ to $-1.1$ ($k$=50) and
# $-1.8$ nats ($k$=10), the forced length to $-1.5$ nats (its $\mathrm{KL}(s\|\pi)$ is 4.3, more
# than its $\mathrm{KL}(s\|\pi_{\text{ref}})$ of 2.8; the table's last row). Noise alone makes single
# responses negative even under the safe sampler (27% of them, the `k1<0` column): a negative
# value is not by itself proof of a biased sampler, a negative *mean* beyond its noise is.
#
# * *Top-$k$* throws away the tail of $\pi$, so $s$ is a sharper version of $\pi$ on its head.
#   Our $\pi_{\text{ref}}$ is also sharper than $\pi$, so $s$ resembles the reference more than the
#   policy: the subtracted term $\mathrm{KL}(s\|\pi) = -\mathbb{E}_s\log(\text{top-}k\text{ mass})$ wins.
#   Per token, the sampled tokens are ones where $\pi_{\text{ref}} > \pi$.
# * *Forced length* removes EOS while $\pi$ would have stopped. $\pi$ gives EOS more probability
#   than the reference, so the non-EOS tokens it is forced to emit are ones the reference likes
#   more than the policy does, which lowers $\log\pi - \log\pi_{\text{ref}}$ on the sampled tokens.
#
# During training this is worse than a wrong number. The reward is $r - \beta\,\mathrm{KL}$, so a
# negative KL estimate is a bonus, and the policy can earn it by moving mass to tokens the sampler
# never shows (the tail under top-$k$, EOS under a forced length), which costs nothing in the
# estimate. $k_3$ and the exact per-token sum stay non-negative, but they are biased too: they
# measure distances along the wrong sampler's responses. The fix is the sampler:
# `rlhf_edu.generation.sample` refuses these settings unless `allow_biased=True`, and with its safe
# defaults `sampler_logprobs == logprobs`, the subtracted term is exactly zero, and $k_1$ is unbiased.

# %% [markdown] slideshow={"slide_type": "subslide"}
# **The sign depends on the reference.** Our $\pi_{\text{ref}}$ is sharper than $\pi$. Drift can go
# the other way: after fine-tuning, the *policy* is usually the sharper one, and the reference is
# flatter. Here are both, as pure temperature changes of the same logits (no EOS change), scored on the
# same safe and top-$k$=10 responses as above.

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
directions = {"sharper reference (z x 1.1)": 1.1, "flatter reference (z x 0.9)": 0.9}
top10 = rollouts["top_k=10"]
bias = {}
for dname, tau in directions.items():
    k_safe = kl_of_rollout(safe, lambda z, tau=tau: tau * z).k1
    k_top = kl_of_rollout(top10, lambda z, tau=tau: tau * z).k1
    diff = (k_top.mean() - k_safe.mean()).item()
    se = math.hypot(k_top.std().item() / math.sqrt(len(k_top)), k_safe.std().item() / math.sqrt(len(k_safe)))
    bias[dname] = (diff, se)
    print(f"{dname}: true KL (safe k1) {k_safe.mean().item():5.2f} nats; logged k1 under top_k=10 "
          f"{k_top.mean().item():5.2f}; bias {diff:+.2f} ± {se:.2f} ({abs(diff) / se:.0f} SE)")

# %% [markdown] slideshow={"slide_type": "-"}
# With the sharper reference, top-$k$ pulls the logged KL **down** (below zero here); with the flatter
# reference it pushes it **up**, and the log over-reports the distance. In both cases the bias is many
# standard errors. Top-$k$ keeps the head of $\pi$, and on the head a sharper reference assigns *more*
# probability than $\pi$, a flatter one *less*. So "top-$k$ makes the KL negative" is only half the
# rule; the general statement is that a biased sampler makes the logged KL wrong, in a direction that
# depends on how the reference differs from the policy.

# %% [markdown] slideshow={"slide_type": "subslide"}
# **A policy that learns the exploit.** TRL's notes warn that a policy "can learn how to drive
# KL-divergence negative" when generation is biased, and so collect a bonus. The smallest loop that
# shows it: a one-step policy $\pi_\theta=\mathrm{softmax}(\theta)$ over the whole vocabulary,
# started at the tiny model's next-token distribution after the prompt, $\pi_{\text{ref}}$ = that
# same distribution. Its only objective is the **logged** penalty
# $\mathbb{E}_{y\sim s}[\log\pi_\theta(y)-\log\pi_{\text{ref}}(y)]$, computed exactly over the
# vocabulary (no sampling noise), with the sampler $s$ treated as data, as a trainer treats its
# rollouts. The penalty enters the loss and is differentiated (the "KL in the loss" variant); under a
# safe sampler its gradient $\sum_y\pi(y)\nabla\log\pi(y)$ is exactly zero, so nothing should move.

# %% slideshow={"slide_type": "-"}
with torch.no_grad():
    enc = tokenizer(prompt, return_tensors="pt")
    z0 = model(**enc).logits[0, -1].float()  # (V,) next-token logits after the prompt
logp_ref = torch.log_softmax(z0, -1)


def sampler_of(p, kind):
    # The sampler's distribution s (V,) given the policy's p (V,): safe, top-k=10, or EOS forbidden.
    if kind == "safe":
        return p
    q = p.clone()
    if kind == "top_k=10":
        q[q.argsort(descending=True)[10:]] = 0
    else:  # min_new_tokens: EOS cannot be sampled yet
        q[EOS] = 0
    return q / q.sum()


loop_steps = 300
exploit = {}
for kind in ("safe", "top_k=10", "EOS forbidden"):
    theta = z0.clone().requires_grad_(True)
    opt = torch.optim.Adam([theta], lr=0.02)
    hist = {"logged": [], "true": [], "unseen": []}
    for step in range(loop_steps + 1):
        logp = torch.log_softmax(theta, -1)
        s = sampler_of(logp.detach().exp(), kind)
        logged = (s * (logp - logp_ref)).sum()  # E_s[k1]: what the trainer logs and penalises
        with torch.no_grad():
            hist["logged"].append(logged.item())
            hist["true"].append((logp.exp() * (logp - logp_ref)).sum().item())  # KL(pi_theta || pi_ref)
            hist["unseen"].append(logp.exp()[s == 0].sum().item())  # mass the sampler never shows
        if step < loop_steps:
            opt.zero_grad()
            logged.backward()
            opt.step()
    exploit[kind] = hist

fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
for kind, c in [("safe", "C0"), ("top_k=10", "C1"), ("EOS forbidden", "C3")]:
    for ax, key in zip(axes, ("logged", "true", "unseen")):
        ax.plot(exploit[kind][key], color=c, label=kind)
axes[0].axhline(0, color="k", lw=0.8)
axes[0].set(xlabel="optimizer step", ylabel="nats", title="Logged KL, E_s[log pi - log pi_ref] (minimised)")
axes[1].set(xlabel="optimizer step", ylabel="nats", title="True KL(pi_theta || pi_ref)")
axes[2].set(xlabel="optimizer step", ylabel="probability", title="Policy mass the sampler never shows")
axes[0].legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
for kind, h in exploit.items():
    print(f"{kind:14s} after {loop_steps} steps: logged KL {h['logged'][-1]:7.2f}, true KL {h['true'][-1]:5.2f}, "
          f"unseen mass {h['unseen'][-1]:.2f}")
print(f"EOS probability: {logp_ref[EOS].exp().item():.1e} at the start, "
      f"{exploit['EOS forbidden']['unseen'][-1]:.2f} at the end of the EOS-forbidden run")
print("safe sampler: the policy stays at the reference (true KL < 0.01):", exploit["safe"]["true"][-1] < 0.01)
for k in ("top_k=10", "EOS forbidden"):
    h = exploit[k]
    print(f"{k}: logged KL went below -1 nat (min {min(h['logged']):.2f}): {min(h['logged']) < -1}; "
          f"true KL above 1 nat at the end: {h['true'][-1] > 1}")

# %% [markdown] slideshow={"slide_type": "-"}
# With the safe sampler the policy stays at $\pi_{\text{ref}}$ (true KL 0.00 after 300 steps). With
# either biased sampler, minimising the *logged* KL drives the *true* KL up: the penalty no longer
# holds the policy to its reference.
#
# * **EOS forbidden.** The policy moves its mass onto EOS, the one token the sampler cannot show (its
#   probability goes from $2\cdot10^{-5}$ to 1.00). Every token that can still be sampled becomes
#   less likely under $\pi_\theta$ than under $\pi_{\text{ref}}$, so the logged KL falls without
#   bound (below $-11$ nats at step 300, still falling) while the true KL saturates at 10.8 nats. This
#   is the learnt version of section 4.3's mechanism, and it is the reverse of seed 004's wording
#   ("a very low log prob to the EOS token"): lowering EOS would *raise* the logged KL.
# * **Top-$k$=10.** The policy moves mass out of its own top 10 into the tokens the sampler never
#   shows (their share grows to 0.99 by step 300: it flattens), and the logged KL falls below zero (to
#   $-1.3$ nats, noisy because the top 10 keep changing). Once the top 10 hold almost no mass, the log
#   turns positive again, but the policy keeps drifting (true KL 3.7 nats at step 300). A log that
#   looks sane does not mean the penalty worked.
#
# This loop differentiates the penalty (the "KL in the loss" variant). TRL's PPO puts
# $-\beta\,\mathrm{KL}$ in the *reward* instead, where the policy can only find the bonus through the
# score function; the incentive is the same, and we do not run that variant here.

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Two readings of `min_length`.** TRL's PPO notes (seed 004) say that under `min_length` "the model
# can assign a very low log prob to the EOS token and very high probs to all others". That describes
# a *policy* that has learnt to avoid EOS. What this notebook measures is a different mechanism:
# `sample(..., min_new_tokens=R)` removes EOS from the *sampler* $s$ while $\pi$ is unchanged, and
# the logged $k_1$ drops at once because $s \ne \pi$. Both lower the logged KL; the first is learnt
# over training, the second needs no training at all.
#
# ### 4.4 Find the bug: a full-vocabulary KL in a published sketch
#
# The Regularization chapter's code sketch (seed 000) computes the full KL as
# `F.kl_div(ref_logprobs, logprobs, reduction='batchmean')`. PyTorch's `kl_div(input, target)`
# returns $\mathrm{KL}(\text{target}\,\|\,\text{input})$ with `input` as log-probabilities, so the
# argument *order* is right for $\mathrm{KL}(\pi\|\pi_{\text{ref}})$. The bug is the missing
# `log_target=True`: without it, `target` is read as probabilities, and log-probabilities are
# negative.

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
import torch.nn.functional as F

g = torch.Generator().manual_seed(0)
lp = torch.log_softmax(torch.randn(2, 3, 5, generator=g), -1)  # policy log-probs (B, T, V)
lr = torch.log_softmax(torch.randn(2, 3, 5, generator=g), -1)  # reference log-probs
exact = (lp.exp() * (lp - lr)).sum((-2, -1)).mean()  # KL(pi || pi_ref) per sequence, batch mean
print(f"exact KL(pi||pi_ref): {exact.item():.4f}")
print(f"the sketch's call: {F.kl_div(lr, lp, reduction='batchmean').item()}")
print(f"with log_target=True: {F.kl_div(lr, lp, reduction='batchmean', log_target=True).item():.4f}")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. What the logged metrics mean
#
# * **`kl`** (TRL: `objective/kl`) is the batch mean of the *sequence-level* $k_1$: the sum over response
#   tokens of $\log\pi-\log\pi_{\text{ref}}$, in nats. It starts at 0 (policy = reference) and should
#   rise slowly. TRL's PPO notes suggest keeping it **between 0 and 10 nats**: at 10 nats a typical
#   response is $e^{10}\approx 2\cdot10^4$ times more likely under the policy than under the reference.
# * **Noise.** One batch's $k_1$ is noisy (section 4.2: one response's $k_1$ has a standard deviation as
#   large as the KL itself), so read a smoothed curve, or log $k_3$ / the exact per-token KL next to it.
# * **A negative `kl`** has two causes; tell them apart by its standard error.
#   * *Noise.* The true KL is never negative, but when it is small its $k_1$ estimate often is: 27%
#     of single responses in section 4.3 are below zero under the safe sampler, and so is a batch
#     mean at the start of training, when policy and reference are equal. A mean within about two
#     standard errors of zero is not evidence of anything.
#   * *A biased sampler* (top-$k$, top-$p$, temperature, min length, a stale policy) or misaligned
#     per-token terms. Then the mean is off by many standard errors ($-1.8 \pm 0.1$ nats under
#     top-$k$=10 in 4.3), in either direction (a flatter reference biases it upward), and a policy
#     trained on it can learn to exploit it (the loop in 4.3). Fix the sampler before tuning $\beta$.
# * **Sequence vs per-token.** The sequence KL grows with response length; per-token averages
#   (`kl / len`) compare runs with different lengths.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. Checks

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
ok_unbiased = all(abs(table[k, mu][0]) < 3 * table[k, mu][2] for k in ("k1", "k3") for mu in (0.1, 1.0))
print("k1 and k3 unbiased on both Gaussians (|bias| < 3 SE):", ok_unbiased)
print("stdev/KL within 0.1 of Schulman's reference (rounded to 1 decimal) for all six cells:",
      all(abs(round(table[key][1], 1) - reference[key][1]) <= 0.1 for key in reference))
print("k2 bias/KL at mu=1 is 0.25 to 2 decimals:", round(table["k2", 1.0][0], 2) == 0.25)
print("k3 >= 0 on every sample:", all(bool((samples["k3", mu] >= 0).all()) for mu in (0.1, 1.0)))

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
print("safe sampler: sampler log-probs equal policy log-probs:", torch.equal(safe.sampler_logprobs, safe.logprobs))
true_kl, se_true = rows["safe (top_k=0, top_p=1)"]["k1"].mean().item(), rows["safe (top_k=0, top_p=1)"]["k1"].std().item() / math.sqrt(n_setting)
for name, r in rows.items():
    se = r["k1"].std().item() / math.sqrt(len(r["k1"]))
    if name.startswith("safe"):
        print(f"{name:24s} logged k1 > 0 beyond its noise: {r['k1'].mean().item() > 3 * se}")
    else:  # biased: below the unbiased estimate of the true KL by more than 3 SE of the difference
        gap = true_kl - r["k1"].mean().item()
        print(f"{name:24s} logged k1 below the true KL beyond its noise: {gap > 3 * math.hypot(se, se_true)}, "
              f"below 0: {r['k1'].mean().item() < -2 * se}")
print("KL(s||pi) part > 0 for every biased sampler:",
      all(r["s_vs_pi"].mean().item() > 0 for k, r in rows.items() if not k.startswith("safe")))


# %% [markdown] slideshow={"slide_type": "slide"}
# ## 7. References
#
# * N. Lambert, *RLHF book*, chapter "Regularization": eqs. (2)–(4) and the sampled-KL code sketch
#   (its full-KL line lacks `log_target=True`; section 4.4).
# * J. Schulman, "Approximating KL divergence", blog post, 2020: $k_1$, $k_2$, $k_3$ and the table.
# * Hugging Face TRL, PPO training notes: the 0–10 nats guideline, negative KL, safe generation settings.
# * Y. Yang, Lecture 6 "RLHF in Language Models" (PKU, 2023): the KL-penalised RLHF objective.
