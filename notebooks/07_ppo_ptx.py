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
# # 07 · RLHF with PPO: the KL penalty, reward hacking and PPO-ptx
#
# The last stage of classic RLHF: a policy samples answers, a learned reward model scores them, and
# PPO pushes the policy towards higher reward while a KL penalty holds it near the model it started
# from. We run it three ways on the tiny movie-review model and watch what each piece buys:
# no KL penalty (reward hacking), a KL penalty, and a KL penalty plus pretraining gradients (PPO-ptx).

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. Learning goals
#
# After this notebook you can:
#
# 1. write the KL-shaped per-token reward of eq. 2: the reward model's score on the last token and
#    $-\beta\,\mathrm{KL}$ on every token;
# 2. compute GAE advantages and the clipped PPO policy and value losses, and say what each logged
#    number (clip fraction, approximate KL, entropy, value loss) tells you;
# 3. recognise **reward hacking**: with $\beta = 0$ the proxy reward climbs while the text drifts
#    away from language and the gold reward stops following;
# 4. explain the **alignment tax** (held-out language-modelling loss rising during RLHF) and how the
#    PPO-ptx objective (eq. 6) pays part of it back;
# 5. estimate what the same run costs at GPT-2-small scale on one GPU.

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

import copy
import inspect
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from rlhf_edu.config import get_scale, seed_everything
from rlhf_edu.data import lm_documents, load_splits, make_prompts, preference_pairs
from rlhf_edu.models import frozen_copy, load_policy, load_reward_model, n_parameters, scalar_head_from_lm
from rlhf_edu.bradley_terry import RewardModelConfig, score_texts, train_reward_model
from rlhf_edu import ppo, rewards
from rlhf_edu.ppo import PPOConfig, evaluate_policy, heldout_lm_loss, ptx_blocks, train_ppo
from rlhf_edu.plotting import smooth  # centred moving average, edges padded

scale = get_scale()
gen = seed_everything(0, threads=2)
plt.rcParams.update({"figure.dpi": 90, "axes.grid": True, "grid.alpha": 0.3})
T0 = time.perf_counter()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. Background
#
# **The regularised reward.** The Regularization chapter writes the reward that RLHF actually
# maximises as the reward model's score minus a penalty (eq. 1), and the standard penalty is the KL
# divergence from the policy being trained to a frozen reference (eq. 2):
#
# $$r = r_\theta - \lambda_{\text{reg}}\, r_{\text{reg.}} \qquad (1)$$
#
# $$r = r_\theta - \lambda_{\text{KL}}\, \mathcal{D}_{\text{KL}}\!\left(\pi_{\text{RL}}(y\mid x)\,\|\,\pi_{\text{ref}}(y\mid x)\right) \qquad (2)$$
#
# The KL is estimated on the very sample being rewarded (eq. 4), $\mathcal{D}_{\text{KL}}(P\|Q) =
# \mathbb{E}_{x\sim P}[\log P(x) - \log Q(x)]$, and the log-probability of a response is a sum over its
# tokens. PPO wants a reward *per token*, so eq. 2 is spread over the response $y = (a_1,\dots,a_T)$:
#
# $$r_t = \mathbb{1}(t = T)\, r_\theta(x, y) \;-\; \beta\,\log\frac{\pi(a_t\mid s_t)}{\pi_{\text{ref}}(a_t\mid s_t)}$$
#
# Summed over $t$ this is exactly eq. 2 with the sampled (k1) KL estimate. We write $\beta$ for
# $\lambda_{\text{KL}}$.
#
# **One meaning per symbol.** The chapter writes $\lambda$ for the regulariser's weight and $\gamma$
# for the pretraining weight (eqs. 5-6), while GAE below uses $\gamma$ (discount) and $\lambda$
# (GAE's trace parameter). Here $\gamma$ and $\lambda$ are GAE's only; the chapter's weights are
# $\lambda_{\text{reg}}$ (= $\beta$ for the KL) and $\gamma_{\text{ptx}}$ (`ptx_coef`).

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Advantages (GAE).** A value model $V(s_t)$ predicts the future reward from each prefix. With
# TD errors $\delta_t = r_t + \gamma V(s_{t+1}) - V(s_t)$ (and $V = 0$ after the last token), the
# generalised advantage is
#
# $$\hat A_t = \sum_{l \ge 0} (\gamma\lambda)^l\, \delta_{t+l}, \qquad \hat R_t = \hat A_t + V(s_t).$$
#
# $\lambda = 0$ gives one-step TD errors (low variance, biased by $V$), $\lambda = 1$ the Monte-Carlo
# return minus $V$ (unbiased, noisy).
#
# **The clipped objective.** With $\rho_t = \pi_\theta(a_t\mid s_t) / \pi_{\text{old}}(a_t\mid s_t)$,
# PPO maximises $\min(\rho_t \hat A_t,\ \mathrm{clip}(\rho_t, 1-\epsilon, 1+\epsilon)\,\hat A_t)$, which
# removes the incentive to move a token's probability more than a factor $1\pm\epsilon$ per rollout.
# The value model is fitted to $\hat R_t$ with a similarly clipped squared error.

# %% [markdown] slideshow={"slide_type": "subslide"}
# **PPO-ptx.** InstructGPT found that RLHF made the model worse on ordinary NLP benchmarks, an
# *alignment tax*. The Regularization chapter writes the fix as one more term in the objective:
# alongside RL on prompts, keep maximising the likelihood of pretraining text,
#
# $$J(\theta) = \mathbb{E}_{(x,y)\sim \mathcal{D}_{\pi_{\text{RL},\theta}}}\!\left[r_\theta(y\mid x) - \lambda_{\text{reg}} r_{\text{reg.}}\right] \qquad (5)$$
#
# $$J(\theta) = \mathbb{E}_{(x,y)\sim \mathcal{D}_{\pi_{\text{RL},\theta}}}\!\left[r_\theta(y\mid x) - \lambda_{\text{reg}} r_{\text{reg.}}\right] + \gamma_{\text{ptx}}\, \mathbb{E}_{x\sim\mathcal{D}_{\text{pretrain}}}\!\left[\log \pi_{\text{RL},\theta}(x)\right] \qquad (6)$$
#
# As a loss: the PPO loss plus $\gamma_{\text{ptx}}$ times the language-modelling NLL of a pretraining batch
# (here: held-out review text, in 32-token blocks).
#
# **Adaptive KL (Ziegler et al. 2019).** Instead of a fixed $\beta$, aim for a target KL:
# $e = \mathrm{clip}(\mathrm{KL}/\mathrm{KL}_{\text{target}} - 1, -0.2, 0.2)$ and
# $\beta \leftarrow \beta\,(1 + e\, n / H)$ after $n$ samples, with horizon $H$
# (`PPOConfig(adaptive_kl=True)`).
#
# **Sampling must be honest.** TRL's PPO notes warn that top-k, top-p or a forced minimum length
# sample from a distribution other than $\pi$, and then the KL estimate can go negative, a bug the
# policy learns to exploit. Our sampler refuses those settings (notebook 02 shows why).

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. Implementation
#
# Everything lives in `rlhf_edu.rewards` (per-token rewards) and `rlhf_edu.ppo` (the algorithm). The
# losses are pure functions of tensors; the loop is one short function.

# %% slideshow={"slide_type": "skip"}
print(inspect.getsource(rewards.sequence_to_token_scores))
print(inspect.getsource(rewards.kl_shaped_rewards))

# %% slideshow={"slide_type": "skip"}
print(inspect.getsource(ppo.gae))
print(inspect.getsource(ppo.clipped_policy_loss))
print(inspect.getsource(ppo.clipped_value_loss))
print(inspect.getsource(ppo.ppo_ptx_loss))

# %% slideshow={"slide_type": "skip"}
print(inspect.getsource(ppo.train_ppo))

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. Experiments
#
# ### 4.1 The ingredients
#
# * **Policy and reference:** the tiny base model (or GPT-2 small at the `gpt2` scale); the
#   reference is a frozen copy.
# * **Proxy reward:** a Bradley–Terry reward model (notebook 03) trained on critic preference pairs,
#   *fresh* review over *rotten* review of the same movie. What it learns is mostly "sounds
#   positive", a sentiment-ish proxy.
# * **Gold reward:** the course's gold judge (`rlhf_edu.gold`): VADER sentiment times readability
#   (common English words, no repeated bigrams, at least five words), a scorer the policy never sees.
#   Degenerate text scores below a neutral review. When the proxy rises and the gold does not, the
#   policy is exploiting the reward model.
# * **Prompts:** a movie name and the first four words of a review. **ptx data:** review text from
#   the validation movies. **Held-out LM loss:** review text from the test movies.

# %% slideshow={"slide_type": "-"}
splits = load_splits()
policy0, tokenizer = load_policy(scale)
prompts = list(make_prompts(splits["train"], n=4000, seed=0)["prompt"])
eval_prompts = list(make_prompts(splits["validation"], n=64, seed=1)["prompt"])  # 64 for the gold check
ptx_data = ptx_blocks(tokenizer, lm_documents(splits["validation"]), block_tokens=32)
heldout = ptx_blocks(tokenizer, lm_documents(splits["test"]), block_tokens=32, max_blocks=64)
base_cfg = PPOConfig.from_scale(scale)
print(f"policy: {n_parameters(policy0)/1e6:.1f}M parameters; {len(prompts)} prompts; "
      f"ptx blocks {tuple(ptx_data.shape)}; held-out blocks {tuple(heldout.shape)}")
print(f"PPO: {base_cfg.iterations} iterations x {base_cfg.batch_size} prompts x {base_cfg.max_new_tokens} tokens, "
      f"{base_cfg.ppo_epochs} epochs of minibatch {base_cfg.minibatch_size}")

# %% slideshow={"slide_type": "-"}
TINY = scale.name == "tiny"
reward_model = load_reward_model(scale)
# on a CPU: 100 steps on reviews cut to 40 tokens (about the length of the RL responses)
rm_cfg = RewardModelConfig.from_scale(scale, eval_every=10_000, **(dict(steps=100, max_len=40, lr=3e-4) if TINY else {}))
rm_pairs = preference_pairs(splits["train"], seed=0)
rm_eval = preference_pairs(splits["validation"], seed=0).select(range(128))
t = time.perf_counter()
rm_hist = train_reward_model(reward_model, tokenizer, rm_pairs, rm_eval, rm_cfg)
reward_model.eval()
for p in reward_model.parameters():
    p.requires_grad_(False)
print(f"reward model: {rm_cfg.steps} steps in {time.perf_counter() - t:.0f} s, held-out pair accuracy "
      f"{rm_hist['eval_accuracy'][0]:.2f} -> {rm_hist['eval_accuracy'][-1]:.2f}")


def proxy_reward(rollout):
    # the learned reward model scores prompt + response text: a (B,) holistic reward
    return score_texts(reward_model, tokenizer, rollout.prompts, rollout.texts, max_len=rm_cfg.max_len)


# %% slideshow={"slide_type": "-"}
base_eval = evaluate_policy(policy0, tokenizer, eval_prompts, base_cfg.max_new_tokens, reward_fn=proxy_reward)
base_lm = heldout_lm_loss(policy0, heldout)
print(f"base model on 64 prompts: gold {base_eval['gold'].mean():+.3f}, proxy {base_eval['proxy'].mean():+.3f}, "
      f"held-out LM loss {base_lm:.3f}")
for p, y in list(zip(eval_prompts, base_eval["texts"]))[:3]:
    print(f"  {p!r} -> {y!r}")

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### 4.2 Three runs at equal seeds and samples
#
# Each run starts from the same base model, sees the same prompts in the same order and uses the same
# sampler seed. Only the regulariser changes.

# %% slideshow={"slide_type": "-"}
BETA, PTX_COEF = 0.1, 0.5
RUNS = {
    "beta = 0 (no KL)": dict(beta=0.0),
    f"beta = {BETA}": dict(beta=BETA),
    f"beta = {BETA} + ptx": dict(beta=BETA, ptx_coef=PTX_COEF),
}
histories, finals = {}, {}


def run(name):
    seed_everything(0, threads=2)
    policy, reference, value = copy.deepcopy(policy0), frozen_copy(policy0), scalar_head_from_lm(policy0)
    cfg = base_cfg.with_(**RUNS[name])
    t = time.perf_counter()
    histories[name] = h = train_ppo(cfg, policy, reference, value, tokenizer, prompts, proxy_reward,
                                    ptx_data=ptx_data, heldout=heldout)
    finals[name] = evaluate_policy(policy, tokenizer, eval_prompts, cfg.max_new_tokens, reward_fn=proxy_reward)
    print(f"{name}: {time.perf_counter() - t:5.1f} s | proxy {h['reward'][0]:+.2f} -> {h['reward'][-1]:+.2f} | "
          f"gold {h['gold'][0]:+.2f} -> {h['gold'][-1]:+.2f} | KL {h['kl'][-1]:5.2f} nats | "
          f"held-out LM loss {h['heldout_lm_loss'][0]:.3f} -> {h['heldout_lm_loss'][-1]:.3f}")


# %% slideshow={"slide_type": "-"}
run("beta = 0 (no KL)")

# %% slideshow={"slide_type": "-"}
run(f"beta = {BETA}")

# %% slideshow={"slide_type": "-"}
run(f"beta = {BETA} + ptx")


# %% slideshow={"slide_type": "subslide"}
colors = dict(zip(RUNS, ["tab:red", "tab:blue", "tab:green"]))
fig, axes = plt.subplots(2, 2, figsize=(11, 7))
for name, h in histories.items():
    it = h["iteration"]
    axes[0, 0].plot(it, smooth(h["reward"]), color=colors[name], label=name)
    axes[0, 1].plot(it, smooth(h["gold"]), color=colors[name], label=name)
    axes[1, 0].plot(it, h["kl"], color=colors[name], label=name)
    axes[1, 1].plot(h["eval_iteration"], h["heldout_lm_loss"], "o-", color=colors[name], label=name)
axes[1, 1].axhline(base_lm, color="gray", ls="--", label="base model")  # same held-out blocks as the curves
titles = ["proxy reward (reward model), rollout mean", "gold judge, rollout mean (iteration 0 = base model)",
          "KL(pi || pi_ref) per response (nats, k1)", "held-out LM loss on review text (nats/token)"]
for ax, title in zip(axes.flat, titles):
    ax.set_title(title)
    ax.set_xlabel("PPO iteration")
    ax.legend(fontsize=8)
axes[0, 0].set_ylabel("reward-model score")
axes[0, 1].set_ylabel("gold (sentiment x readability)")
axes[1, 0].set_ylabel("nats")
axes[1, 1].set_ylabel("nats per token")
fig.suptitle("Sentiment RLHF three ways (curves smoothed over 3 iterations)")
fig.tight_layout()
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Reading the curves.**
#
# One seed per setting: the bullets describe this run, and only the verdicts in section 6 are
# checked. Differences between runs are not tested across seeds here. In the curves, iteration 0 is
# the base model on the same prompts as the rest of each curve (every run sees the same prompts in
# the same order); the bar chart below compares the final policies with the base model on one set
# of 64 evaluation prompts.
#
# * **β = 0** ends with the most proxy reward (1.6 to 12.2), and nothing holds it back: its KL
#   from the reference reaches 34.3 nats and the held-out LM loss rises the most (5.57 to 6.79
#   nats/token), i.e. the model is forgetting how reviews are written.
# * **β = 0.1** ends with less proxy reward (10.7) and about half the KL (17.4 nats). Its KL is still
#   rising at the last iteration: it has not levelled off within this budget.
# * **β = 0.1 + ptx** ends with the least proxy reward (6.5), the least KL (8.7 nats) and no LM-loss
#   rise at all (5.57 to 5.56). Its run sits earlier on the same reward-KL path, so part of its
#   smaller tax is *less optimisation*; but when the β = 0.1 run passed a similar proxy reward
#   (iterations 10-15 in the figure) its held-out loss was already well above the base model's, so
#   in this run ptx also looks like a lower tax at similar reward. One seed cannot separate the two.
#   On the 64 evaluation prompts its gold (+0.126 ± 0.064) is 2.0 SE above the base model's: not shown.
# * **Gold judge:** in this run the β = 0 policy shows the reward-hacking pattern. Its rollout gold
#   rises with the proxy until about iteration 15, then falls while the proxy keeps climbing, and
#   ends below where it started (gold +0.01 to -0.14, proxy +1.57 to +12.22). Its samples below have
#   collapsed into one praise word on a loop ("a ominous tale, gritty, gritty, gritty, gritty and
#   gritty."), which the reward model loves and the judge's repeated-bigram term punishes. On the 64
#   evaluation prompts (printed under the bar chart) it has the highest proxy (+12.75 ± 0.35) and a
#   gold of -0.181 ± 0.056, below the base model's -0.048 ± 0.057 but by only 1.7 SE. The β = 0.1
#   policy, which the KL penalty held nearer the reference, reaches a gold of +0.470 ± 0.059, above the
#   base model by 6.3 SE and above the β = 0 policy by 8 SE (SE over prompts). Both are one training
#   seed: these gaps are over prompts, not over seeds, so over-optimisation is seen here, not yet shown.

# %% slideshow={"slide_type": "-"}
for name in RUNS:
    print(f"--- {name} (final policy, first 4 evaluation prompts)")
    for p, y in list(zip(eval_prompts, finals[name]["texts"]))[:4]:
        print(f"  {p!r} -> {y!r}")

# %% slideshow={"slide_type": "subslide"}
labels = ["base model"] + list(RUNS)
golds = [base_eval["gold"]] + [finals[n]["gold"] for n in RUNS]
proxies = [base_eval["proxy"]] + [finals[n]["proxy"] for n in RUNS]
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
x = np.arange(len(labels))
for ax, vals, title in [(axes[0], golds, "gold judge"), (axes[1], proxies, "proxy reward (reward model)")]:
    means = [v.mean().item() for v in vals]
    sems = [v.std().item() / np.sqrt(len(v)) for v in vals]
    ax.bar(x, means, yerr=sems, capsize=4, color=["gray"] + [colors[n] for n in RUNS])
    ax.set_xticks(x, labels, rotation=15, fontsize=8)
    ax.set_title(f"{title}: final policies, 64 evaluation prompts")
    ax.set_ylabel("mean +- s.e.m.")
fig.tight_layout()
plt.show()
for label, g, pr in zip(labels, golds, proxies):
    print(f"{label:18s} gold {g.mean().item():+.3f} ± {g.std().item() / math.sqrt(len(g)):.3f}   "
          f"proxy {pr.mean().item():+.2f} ± {pr.std().item() / math.sqrt(len(pr)):.2f}")

# %% slideshow={"slide_type": "subslide"}
tax = {n: h["heldout_lm_loss"][-1] - h["heldout_lm_loss"][0] for n, h in histories.items()}
fig, ax = plt.subplots(figsize=(6, 4))
for n, h in histories.items():
    ax.scatter(finals[n]["proxy"].mean(), tax[n], s=80, color=colors[n], label=n)
ax.set_xlabel("final proxy reward (64 evaluation prompts)")
ax.set_ylabel("rise of held-out LM loss (nats/token)")
ax.set_title("The alignment tax: LM-loss rise against reward reached")
ax.legend(fontsize=8)
plt.show()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. What the logged metrics mean
#
# `train_ppo` returns one entry per iteration for each key; TRL's PPO notes advise watching the
# mean reward and the KL first.
#
# | key | meaning | healthy |
# |---|---|---|
# | `reward` | mean task score of the rollout (the proxy: the reward model's score) | rises |
# | `gold` | mean gold-judge score of the same responses (never used for training) | rises with `reward`; if it stalls while `reward` climbs, the policy is hacking the proxy |
# | `kl` | mean over responses of $\sum_t \log\pi(a_t\mid s_t) - \log\pi_{\text{ref}}(a_t\mid s_t)$ | grows slowly; TRL suggests staying within 0–10 nats; negative means a sampling bug |
# | `beta` | the KL coefficient (changes only with `adaptive_kl=True`) | |
# | `entropy` | mean per-token entropy of the policy on its own samples | falls slowly; a collapse to ~0 means the policy repeats one answer |
# | `clipfrac` | share of tokens where the clipped branch of the surrogate was active | small (≲ 0.2); large means the steps are too big for $\epsilon$ |
# | `approx_kl` | k3 estimate of KL(old ‖ new) within an iteration's epochs | ≪ 0.1 nats; `target_approx_kl` stops the epochs early when it passes |
# | `value_loss`, `value_clipfrac` | clipped squared error of the value model and its clip share | falls as $V$ learns |
# | `policy_loss` | the clipped surrogate loss; hovers near 0 with whitened advantages | not a progress measure |
# | `ptx_loss` | language-modelling NLL on the ptx batch (0 when $\gamma_{\text{ptx}} = 0$) | stays near the base model's |
# | `heldout_lm_loss` | NLL on held-out review text, every `eval_every` iterations | its rise is the alignment tax |
# | `response_length` | mean number of response tokens (through EOS) | watch for collapse to very short or always-maximal answers |
# | `rm_queries` | cumulative reward-model calls | the cost side (notebook 06) |
# | `epochs` | PPO epochs run this iteration (fewer after an early stop) | |

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. Checks
#
# Rounded, threshold-style summaries that should survive another CPU or a newer torch.

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
h0, hk, hp = (histories[n] for n in RUNS)
n0, nk, np_ = list(RUNS)
print("reward model beats chance on held-out pairs (accuracy > 0.6):", rm_hist["eval_accuracy"][-1] > 0.6)
print("beta=0: proxy reward rose by > 0.3:", h0["reward"][-1] - h0["reward"][0] > 0.3)
print("beta=0 drifts further from the reference than beta>0 (final KL):", h0["kl"][-1] > hk["kl"][-1])
print("beta=0 has the largest held-out LM-loss rise:", tax[n0] > max(tax[nk], tax[np_]))
print("ptx run has a smaller held-out LM-loss rise than beta>0 alone:", tax[np_] < tax[nk])
gold_0 = base_eval["gold"]
for n in RUNS:  # final policy against the base model on the same 64 evaluation prompts (one training seed)
    g = finals[n]["gold"]
    d = g.mean().item() - gold_0.mean().item()
    se_gap = math.sqrt(g.var().item() / len(g) + gold_0.var().item() / len(gold_0))
    print(f"{n}: final gold {'above' if d > 0 else 'below'} the base model's by > 3 SE over prompts:",
          abs(d) > 3 * se_gap)

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
# the per-token reward of eq. 2, checked by hand on one toy response
mask = torch.tensor([[1, 1, 1, 0]])
logp, ref = torch.tensor([[-1.0, -2.0, -0.5, 0.0]]), torch.tensor([[-1.5, -1.0, -0.5, 0.0]])
out = rewards.kl_shaped_rewards(rewards.sequence_to_token_scores(torch.tensor([2.0]), mask), logp, ref, mask, beta=0.1)
print("r_t =", [round(v, 3) for v in out.rewards[0].tolist()])
print("sum r_t = R - beta * (log pi(y) - log pi_ref(y)):", round(out.rewards.sum().item(), 3), "=", round(2.0 - 0.1 * (-3.5 + 3.0), 3))


# %% [markdown] slideshow={"slide_type": "slide"}
# ## 7. At GPT-2 scale, and what it costs
#
# Set `RLHF_EDU_SCALE=gpt2` and the same cells run GPT-2 small with `PPOConfig.gpt2()` (64 prompts
# x 32 tokens per iteration, 4 epochs of minibatch 16, bf16 autocast, 200 iterations) or, on a 16 GB
# Colab T4, `PPOConfig.gpt2_t4()` (float32 because a T4 has no bf16, micro-batches of 4 with
# gradient accumulation). `benchmarks/ppo_step.py` measures tokens/s, seconds per iteration and peak
# memory at any scale.
#
# **Memory.** Four GPT-2-small-sized networks are resident: policy, reference, value and reward
# (4 x 124M x 4 bytes = 2 GB in fp32), plus gradients and AdamW state for the two that train
# (2 x 124M x 12 bytes = 3 GB). The largest activation is the logits tensor, minibatch x length x
# 50,257 (16 x 48 x 50,257 x 4 bytes = 150 MB, a few copies during the log-softmax). About 6-8 GB in
# all: a T4 fits, an 80 GB card is mostly idle and could run larger batches.
#
# **Time.** One iteration is about 64 x 48 tokens of rollout; the 4 epochs run a forward and backward
# of policy and value on them (6 x 124M FLOPs per token each), about 2 x 10^13 FLOPs, plus the ptx
# batches. At batches this small a GPU is limited by kernel launches and the 32 sequential sampling
# steps rather than by FLOPs: expect on the order of 1-2 s per iteration on an A100/H100 (a few
# minutes for 200 iterations) and several seconds per iteration on a T4 in fp32 (15-30 minutes).
# These are estimates from the FLOP count and the tiny-scale timings, not measurements: run the
# benchmark on your GPU to replace them. On the 2-core CPU of this course, one such iteration with a
# randomly initialised 124M model takes minutes (`tests/test_ppo_gpt2_smoke.py`).

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 8. References
#
# * The Regularization chapter (RLHF book): eqs. 1–2 (KL-regularised reward), 4 (Monte Carlo KL),
#   5–6 (PPO-ptx).
# * TRL's PPO training notes: which metrics to watch, the 0–10 nats guideline, safe sampling.
# * Lecture 6 (PKU, 2023): the three stages of RLHF and the per-token reward.
# * The blog post "Understanding RLHF": the KL-regularised objective and its optimum.
# * Ouyang et al. 2022 (InstructGPT): PPO-ptx and the alignment tax. Ziegler et al. 2019: the
#   adaptive KL controller. Schulman et al. 2016 (GAE), 2017 (PPO).

# %% slideshow={"slide_type": "skip"}
print(f"notebook compute time: {time.perf_counter() - T0:.0f} s")
