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
# # 08 · Reward-free alignment: DPO and DPO+NLL
#
# Notebook 07 aligned the policy the reward-based way: learn a reward model, then run PPO against
# it with a KL penalty. Here we skip both the reward model and the sampling loop. **Direct
# Preference Optimization** (DPO) turns the preference data straight into a classification loss on
# the policy. We train it on the critics' preference pairs, watch its best-known failure (the
# chosen responses become *less* likely even as the model ranks them better), and fix it with the
# length-normalised NLL term of the Regularization chapter.

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
import json
import math
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from tqdm.auto import tqdm

from rlhf_edu.config import get_scale, pick_device, seed_everything
from rlhf_edu.data import PairCollator, load_splits, make_prompts, preference_pairs
from rlhf_edu.dpo import (DPOConfig, dpo_loss, dpo_nll_loss, ipo_loss, length_normalised_nll,
                          pair_logprobs, reference_logprobs, train_dpo)
from rlhf_edu.generation import sample
from rlhf_edu.logprobs import response_logprobs, sequence_logprob
from rlhf_edu.models import frozen_copy, load_policy
from rlhf_edu.rewards import gold_reward
from rlhf_edu import gold
from rlhf_edu.dpo import evaluate_dpo
from rlhf_edu.plotting import band, effect_verdict, mean_se, smooth, stack_histories

scale = get_scale()
seed_everything(0, threads=2)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. Learning goals
#
# After this notebook you can
#
# - derive the DPO loss from the optimum of KL-regularised RLHF, $\pi^* \propto \pi_{\text{ref}}\exp(r/\beta)$,
#   and the Bradley–Terry model of notebook 03;
# - read DPO's logged metrics: implicit rewards, their margin and accuracy, and the absolute
#   log-probs of the chosen and rejected responses;
# - explain why plain DPO can lower the likelihood of the responses it prefers, and how the
#   length-normalised NLL term of DPO+NLL (Regularization chapter, eqs. 7–8) counters it;
# - see what $\beta$ controls, and why the reference log-probs need computing only once.
# - put DPO and notebook 07's PPO runs on one gold–KL plane, and say what that plane can and cannot
#   show at this scale.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. Background
#
# **The RLHF objective and its optimum.** KL-regularised RLHF (Regularization chapter, eqs. 1–2;
# notebook 07) maximises reward while staying close to a reference policy:
#
# $$\max_{\pi}\; \mathbb{E}_{x,\; y\sim\pi(\cdot|x)}\big[r(x,y)\big] \;-\; \beta\, \mathrm{KL}\big(\pi(\cdot|x)\,\|\,\pi_{\text{ref}}(\cdot|x)\big).$$
#
# Its maximiser has a closed form. The "Understanding RLHF" blog post reads it as Bayesian
# inference, a prior $\pi_{\text{ref}}$ reweighted by the evidence $\exp(r/\beta)$:
#
# $$\pi^*(y|x) = \frac{1}{Z(x)}\,\pi_{\text{ref}}(y|x)\,\exp\!\big(r(x,y)/\beta\big),\qquad Z(x)=\sum_y \pi_{\text{ref}}(y|x)\exp\!\big(r(x,y)/\beta\big).$$
#
# The KL here is the *reverse* KL of notebook 01, yet $\pi^*$ is **not** mode-seeking: it reweights
# every response of $\pi_{\text{ref}}$ by $\exp(r/\beta) > 0$ and drops none, so it keeps the full
# support of $\pi_{\text{ref}}$. Mode-seeking appears only when a *restricted* policy class is fitted
# to $\pi^*$ by reverse KL (notebook 01, section 4.3).

# %% [markdown] slideshow={"slide_type": "subslide"}
# **From reward to policy and back.** Take logs and solve for the reward:
# $r(x,y) = \beta \log\frac{\pi^*(y|x)}{\pi_{\text{ref}}(y|x)} + \beta\log Z(x)$. Any policy
# $\pi_\theta$ defines an **implicit reward** $\hat r_\theta(x,y)=\beta\log\frac{\pi_\theta(y|x)}{\pi_{\text{ref}}(y|x)}$,
# up to a term that depends on $x$ alone. The Bradley–Terry model of notebook 03 only looks at
# reward *differences* between two responses to the same prompt, $p(y_w \succ y_l|x)=\sigma(r(x,y_w)-r(x,y_l))$,
# so $Z(x)$ cancels. Maximising the BT likelihood of the human choices over $\theta$ gives the DPO
# loss (Rafailov et al. 2023, their eq. 7; not the Regularization chapter's eq. 7, which is DPO+NLL):
#
# $$\mathcal{L}_{\text{DPO}} = -\log\sigma\Big(\beta\log\frac{\pi_\theta(y_w|x)}{\pi_{\text{ref}}(y_w|x)} - \beta\log\frac{\pi_\theta(y_l|x)}{\pi_{\text{ref}}(y_l|x)}\Big). \qquad \text{(DPO)}$$
#
# The reward model is still there, hidden in the policy: no separate network, no sampling during
# training. The log-probs are **summed** over the response tokens. At the start
# $\pi_\theta=\pi_{\text{ref}}$, every margin is 0 and the loss is exactly $\ln 2$, not 0.

# %% [markdown] slideshow={"slide_type": "subslide"}
# **The failure mode.** The DPO loss depends only on the *difference* of the two log-ratios. The loss
# falls just as well when $\log\pi_\theta(y_w|x)$ drops by 5 nats and $\log\pi_\theta(y_l|x)$ drops
# by 15 as when the chosen response gains. On offline data that the policy did not generate, the
# easiest direction is often down for both, so the probability mass goes to responses that appear
# in neither column.
#
# **DPO+NLL** (Pang et al. 2024; the Regularization chapter's eq. 7, written out as its eq. 8) adds a
# negative log-likelihood on the chosen response, normalised by its length:
#
# $$\mathcal{L}_{\text{DPO+NLL}} = \mathcal{L}_{\text{DPO}}(x, y_w, y_l) \;-\; \alpha\,\frac{\log P_\theta(y_w|x)}{|y_w|}. \qquad (8)$$
#
# (In the chapter $y_w$ comes with a reasoning trace $c_w$ and the length is $|c_w|+|y_w|$; our
# responses have no trace.) Each pair is divided by *its own* length, which is not the same as
# the usual SFT loss, a mean over all chosen tokens in the batch, where long responses count more.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. Implementation
#
# The losses are pure functions of four `(B,)` tensors of summed log-probs (plus the chosen
# lengths for DPO+NLL). They return per-example losses and the detached implicit rewards.

# %% slideshow={"slide_type": "skip"}
print(inspect.getsource(dpo_loss))
print(inspect.getsource(dpo_nll_loss))

# %% [markdown] slideshow={"slide_type": "subslide"}
# The reference log-probs depend only on the data, never on $\theta$. So we score every pair
# under $\pi_{\text{ref}}$ **once**, before training, and keep two numbers per pair instead of a
# second model in memory: with GPT-2 on one small GPU this halves the model memory.
# `train_dpo` does this itself unless it is handed the tensors (or a `reference_model` to score on
# the fly, which gives the same losses; section 6 checks it).

# %% slideshow={"slide_type": "skip"}
print(inspect.getsource(reference_logprobs))
print(inspect.getsource(train_dpo))

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. Experiments
#
# **Data with a known truth.** Notebook 03's gold-labelled pairs: two critic snippets about the same
# movie, labelled by the Bradley–Terry oracle over the gold judge (`rlhf_edu.gold`, temperature 0.1),
# so every held-out label has a known probability of being right and the best possible accuracy (the
# oracle's ceiling) is known. Splits are by movie. To see what DPO does once it *fits* its data, we
# train on a small set for several epochs (6 at the tiny scale), until the training accuracy of the
# implicit reward passes 0.9.

# %% slideshow={"slide_type": "-"}
device = pick_device()
base, tokenizer = load_policy(scale, device=device, dtype=torch.float32)  # float32 master weights
cfg = DPOConfig.from_scale(scale)
if scale.name == "tiny":
    cfg = cfg.with_(steps=120, eval_every=20)
EPOCHS = 6
splits = load_splits(seed=0)
train_pairs = gold.snippet_pairs(splits["train"], seed=0)
train_pairs = train_pairs.select(range(min(len(train_pairs), max(cfg.batch_size, cfg.steps * cfg.batch_size // EPOCHS))))
eval_pairs = gold.snippet_pairs(splits["test"], seed=1)
eval_pairs = eval_pairs.select(range(min(len(eval_pairs), max(cfg.n_eval_pairs, 256))))
true_gap = np.array(eval_pairs["gold_chosen"]) - np.array(eval_pairs["gold_rejected"])
ceiling = float(np.mean(1 / (1 + np.exp(-np.abs(true_gap) / gold.TEMPERATURE))))
print(cfg)
print(f"{len(train_pairs)} training pairs ({EPOCHS} epochs), {len(eval_pairs)} held-out pairs; "
      f"oracle's ceiling on the held-out labels {ceiling:.3f}")
ex = train_pairs[0]
print(f"prompt:   {ex['prompt']}\nchosen:   {ex['chosen']}\nrejected: {ex['rejected']}")

# %% [markdown] slideshow={"slide_type": "-"}
# **The reference, scored once.** `base` is both the starting policy and the reference. After
# this cell training never needs a reference model.

# %% slideshow={"slide_type": "-"}
t0 = time.perf_counter()
ref_train = reference_logprobs(base, tokenizer, train_pairs, cfg.max_len, cfg.max_prompt_tokens, cfg.eval_batch_size)
ref_eval = reference_logprobs(base, tokenizer, eval_pairs, cfg.max_len, cfg.max_prompt_tokens, cfg.eval_batch_size)
print(f"scored {2 * (len(train_pairs) + len(eval_pairs))} responses in {time.perf_counter() - t0:.1f} s")
print(f"mean log pi_ref of the chosen responses: training {ref_train.chosen.mean():.1f}, held-out "
      f"{ref_eval.chosen.mean():.1f} nats; mean chosen length {ref_eval.chosen_lengths.float().mean():.1f} tokens")

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### 4.1 Plain DPO against DPO+NLL, three seeds
#
# Plain DPO ($\alpha=0$) and DPO+NLL with $\alpha=1$, both with $\beta=0.1$, each from the same
# starting point with three seeds. The seed sets the order of the batches (the model and data are
# the same), so the bands show how much of each curve is the luck of the order.

# %% slideshow={"slide_type": "-"}
SEEDS = (0, 1, 2)
alphas = {"DPO": 0.0, "DPO+NLL α=1.0": 1.0}
policies, histories, seed_runs, train_end, seed_policies = {}, {}, {}, {}, {}
bar = tqdm(total=len(alphas) * len(SEEDS), desc="DPO runs", mininterval=5)  # one bar for the six runs
for name, alpha in alphas.items():
    runs_, ends = [], []
    for seed in SEEDS:
        policy = copy.deepcopy(base)
        run_cfg = cfg.with_(alpha=alpha, seed=seed)
        h = train_dpo(policy, tokenizer, train_pairs, eval_pairs, run_cfg, reference=ref_train, eval_reference=ref_eval,
                      progress=False)
        bar.update()
        runs_.append(h)
        ends.append(evaluate_dpo(policy.eval(), tokenizer, train_pairs, ref_train, run_cfg))  # the whole training set
        seed_policies.setdefault(name, []).append(policy)  # kept for the reward-KL plane (section 4.4)
        if seed == SEEDS[0]:
            policies[name], histories[name] = policy, h
    seed_runs[name], train_end[name] = stack_histories(runs_), ends
    acc = np.array([e["accuracy"] for e in ends])
    chosen = np.array([e["chosen_logp"] for e in ends])
    held = seed_runs[name]["eval_chosen_logp"][:, -1]
    print(f"{name:14s} training accuracy {acc.mean():.3f} (min {acc.min():.3f}); training chosen log-prob "
          f"{ref_train.chosen.mean():.1f} -> {chosen.mean():.1f} ± {mean_se(chosen)[1]:.1f}; held-out chosen "
          f"{ref_eval.chosen.mean():.1f} -> {held.mean():.1f} ± {mean_se(held)[1]:.1f}; held-out accuracy "
          f"{seed_runs[name]['eval_accuracy'][:, -1].mean():.3f} (mean ± SE over {len(SEEDS)} seeds)")
bar.close()

# %% slideshow={"slide_type": "subslide"}
colors = {"DPO": "tab:red", "DPO+NLL α=1.0": "tab:blue"}
fig, axes = plt.subplots(2, 2, figsize=(12, 7.5))
for name, r in seed_runs.items():
    c, steps = colors[name], r["step"][0]
    band(axes[0, 0], steps, r["accuracy"], k=15, color=c, label=name)
    band(axes[0, 1], steps, r["chosen_reward"] / cfg.beta, k=15, color=c, label=f"{name}: chosen $y_w$")
    band(axes[0, 1], steps, r["rejected_reward"] / cfg.beta, k=15, color=c, ls="--", label=f"{name}: rejected $y_l$")
    es = r["eval_step"][0]
    band(axes[1, 0], es, r["eval_chosen_logp"], color=c, marker="o", ms=3, label=f"{name}: chosen $y_w$")
    band(axes[1, 0], es, r["eval_rejected_logp"], color=c, ls="--", label=f"{name}: rejected $y_l$")
    band(axes[1, 1], es, r["eval_accuracy"], color=c, marker="o", ms=3, label=name)
axes[0, 0].axhline(0.9, color="gray", lw=0.8, ls="--")
axes[0, 0].set(title="training batches: implicit-reward accuracy", xlabel="step", ylabel="fraction r̂(y_w) > r̂(y_l)")
axes[0, 1].axhline(0, color="gray", lw=0.8)
axes[0, 1].set(title="training batches: log π_θ/π_ref of each response", xlabel="step", ylabel="nats")
axes[1, 0].set(title="held-out log-probs (summed over the response)", xlabel="step", ylabel="log π_θ(y|x)  [nats]")
axes[1, 1].axhline(ceiling, color="tab:gray", ls="--", label="oracle's ceiling")
axes[1, 1].axhline(0.5, color="k", lw=0.8, ls=":")
axes[1, 1].set(title="held-out accuracy against the gold oracle's labels", xlabel="step", ylabel="fraction r̂(y_w) > r̂(y_l)")
for ax in axes.flat:
    ax.legend(fontsize=7)
fig.suptitle(f"DPO vs DPO+NLL, β={cfg.beta}, {scale.name} model: mean ± SE over {len(SEEDS)} seeds "
             "(training curves smoothed over 15 steps)")
fig.tight_layout()
plt.show()

# %% slideshow={"slide_type": "-"}
r = seed_runs["DPO"]
cr_mean, cr_se = mean_se(smooth(r["chosen_reward"] / cfg.beta, 15))  # (steps,) chosen log-ratio, training batches
acc_mean = mean_se(smooth(r["accuracy"], 15))[0]
t_min = int(cr_mean.argmin())
print(f"plain DPO, training batches (smoothed over 15 steps, mean ± SE over seeds): the chosen log-ratio is lowest "
      f"at step {int(r['step'][0][t_min])}, {cr_mean[t_min]:.1f} ± {cr_se[t_min]:.1f} nats, while the batch accuracy "
      f"rises {acc_mean[0]:.2f} -> {acc_mean[t_min]:.2f} -> {acc_mean[-1]:.2f}; it ends at {cr_mean[-1]:.1f} ± {cr_se[-1]:.1f}")
rej = mean_se(smooth(r["rejected_reward"] / cfg.beta, 15))
print(f"the rejected log-ratio ends at {rej[0][-1]:.1f} ± {rej[1][-1]:.1f} nats")

# %% [markdown] slideshow={"slide_type": "-"}
# **What the three seeds show.** Both runs fit their 160 training pairs: the implicit-reward accuracy
# passes 0.9 by about step 25 and ends at 1.000 in every seed (top left). How plain DPO gets there
# (top right, red): in the first steps, before the accuracy climbs, the log-ratio of the **chosen**
# responses falls with that of the rejected ones, to $-16.2 \pm 1.2$ nats at step 12. The loss only
# sees the difference, so it then separates them mostly by pushing the rejected responses down
# ($-88.3 \pm 3.9$ nats at the end) while the chosen return to about their start ($+0.7 \pm 0.8$
# nats; on the whole training set $-111.4 \to -107.7 \pm 1.5$). On held-out pairs nothing is
# learnt: the accuracy against the gold oracle's labels stays at chance ($0.477$, within 3 SE of 0.5
# on the 216 pairs, section 6; the ceiling is $0.920$; bottom right), and **both** held-out log-probs
# fall, the chosen from $-111.2$ to $-144.9 \pm 3.0$ nats (bottom left). So at this scale the fall of
# the chosen likelihood is a held-out effect: the policy moves mass away from all review text it was
# not trained on.
#
# The NLL term ($\alpha = 1$, blue) changes both pictures: the chosen training responses become far
# more likely ($-31.4 \pm 0.1$: memorised), and the held-out chosen log-prob falls less
# ($-134.2 \pm 0.1$ against $-144.9 \pm 3.0$). It does not stop the fall, and it does not help
# held-out accuracy ($0.495$). Section 4.3 shows what the two do to generated text.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### 4.2 What β controls
#
# $\beta$ prices the (implicit) KL to the reference. A small $\beta$ lets a large log-ratio margin
# cost little loss, so the policy can drift far; a large $\beta$ saturates the sigmoid after a small
# move. Two more plain-DPO runs ($\beta=0.02$ and $\beta=1$, same steps and batches) join the
# $\beta=0.1$ run above. We report the held-out margin in log-ratio units (nats, the margin divided
# by $\beta$) and in reward units, and the KL to the reference measured on samples (section 4.3).

# %% slideshow={"slide_type": "-"}
betas = [0.02, 0.1, 1.0]
beta_policies, beta_histories = {0.1: policies["DPO"]}, {0.1: histories["DPO"]}
for beta in betas:
    if beta in beta_policies:
        continue
    policy = copy.deepcopy(base)
    beta_histories[beta] = train_dpo(policy, tokenizer, train_pairs, eval_pairs, cfg.with_(beta=beta, alpha=0.0),
                                     reference=ref_train, eval_reference=ref_eval)
    beta_policies[beta] = policy.eval()

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### 4.3 Sampling from the trained policies
#
# We sample responses to held-out prompts (movie titles from the test split, the DPO prompt format)
# with the safe sampler of notebook 02, score them with the gold judge (`rlhf_edu.gold`: sentiment times readability; it never saw the
# preference labels), and estimate the sequence-level KL to the reference with the k1 estimator,
# $\mathrm{KL} \approx \frac1N\sum_i \big[\log\pi_\theta(y_i|x_i) - \log\pi_{\text{ref}}(y_i|x_i)\big]$,
# $y_i\sim\pi_\theta$.

# %% slideshow={"slide_type": "-"}
prompts = make_prompts(splits["test"], n=2 * scale.rl_batch_size, n_words=0, seed=0)["prompt"]
reference = frozen_copy(base)


@torch.no_grad()
def sample_and_score(policy, seed=0):
    ro = sample(policy, tokenizer, prompts, max_new_tokens=scale.max_response_tokens, seed=seed,
                max_prompt_tokens=cfg.max_prompt_tokens)
    ref_lp = response_logprobs(reference, ro.input_ids, ro.attention_mask, ro.prompt_length)  # (B, R)
    log_ratio = ((ro.logprobs - ref_lp) * ro.response_mask).sum(-1)  # (B,) k1 per sequence
    return {"gold": gold_reward(ro.texts), "kl": log_ratio, "texts": ro.texts}


runs = {"reference": base, **policies, **{f"DPO β={b}": p for b, p in beta_policies.items() if b != 0.1}}
results = {name: sample_and_score(p) for name, p in runs.items()}
print(f"{'policy':16s} {'gold reward':>12s} {'KL to ref':>10s}")
for name, r in results.items():
    print(f"{name:16s} {r['gold'].mean():12.3f} {r['kl'].mean():10.2f}")

# %% slideshow={"slide_type": "subslide"}
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
names = list(alphas)
x = np.arange(len(names) + 1)
for ax, key, label in ((axes[0], "gold", "gold judge (mean)"), (axes[1], "kl", "KL to reference [nats]")):
    vals = [results[n][key] for n in ["reference", *names]]
    means = [v.mean().item() for v in vals]
    sems = [v.std().item() / math.sqrt(len(v)) for v in vals]
    ax.bar(x, means, yerr=sems, color=["gray", *[colors[n] for n in names]], capsize=3)
    ax.set_xticks(x, ["reference", *names], fontsize=8)
    ax.set(ylabel=label, title=label + " of samples on held-out prompts")
fig.tight_layout()
plt.show()

# %% slideshow={"slide_type": "subslide"}
fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
bs = sorted(beta_histories)
final_margin = [beta_histories[b]["eval_margin"][-1] for b in bs]
axes[0].plot(bs, [m / b for m, b in zip(final_margin, bs)], "-o", color="tab:purple")
axes[0].set(xscale="log", title="held-out log-ratio margin (margin / β)", xlabel="β", ylabel="nats")
axes[1].plot(bs, final_margin, "-o", color="tab:green")
axes[1].set(xscale="log", title="held-out implicit-reward margin", xlabel="β", ylabel="r̂(y_w) − r̂(y_l)")
kl = [results["DPO" if b == 0.1 else f"DPO β={b}"]["kl"] for b in bs]
axes[2].errorbar(bs, [k.mean() for k in kl], yerr=[k.std() / math.sqrt(len(k)) for k in kl], fmt="-o", color="tab:red", capsize=3)
axes[2].set(xscale="log", title="KL(π_θ ‖ π_ref) on samples", xlabel="β", ylabel="nats per response")
fig.suptitle(f"plain DPO after {cfg.steps} steps, for three values of β (seed 0)")
fig.tight_layout()
plt.show()
for b_, m_, k_ in zip(bs, final_margin, kl):
    print(f"β = {b_}: held-out log-ratio margin {m_ / b_:+.2f} nats, KL on samples {k_.mean():.1f} ± {k_.std() / math.sqrt(len(k_)):.1f} nats")

# %% [markdown] slideshow={"slide_type": "-"}
# The KL to the reference on samples orders with $\beta$, beyond its error bars: $265.5 \pm 6.9$ nats
# at $\beta = 0.02$, $26.5 \pm 1.0$ at $0.1$ and $20.9 \pm 1.0$ at $1$; the big step lies between
# $0.02$ and $0.1$. The held-out log-ratio margins ($+1.5$, $-1.2$ and $-1.3$ nats) come from one seed
# on pairs where no run beats chance, so they carry no lesson here.
# In reward units (middle panel) the margin is multiplied by $\beta$, so compare runs in nats.

# %% slideshow={"slide_type": "-"}
for name in ["reference", *alphas]:
    print(f"--- {name}")
    for p, t in list(zip(prompts, results[name]["texts"]))[:3]:
        print(f"  {p} {t}")

# %% [markdown] slideshow={"slide_type": "-"}
# At $\beta = 0.1$, six epochs of plain DPO do not wreck this model's sampler: the seed-0 policy's
# samples (above) stay made of words, about as garbled as the reference's, and its gold score
# ($-0.055$) does not differ from the reference's ($0.027$) or DPO+NLL's ($-0.024$) beyond the error
# bars (left panel). Its KL to the reference is $26.5 \pm 1.0$ nats, DPO+NLL's a little lower at
# $20.63$ (right panel). The damage appears at $\beta = 0.02$: a KL of $265.5 \pm 6.9$ nats and a gold
# score of $-0.880$ (table above). The error bars are over the 64 samples of one trained policy per
# setting (seed 0); section 4.1 gives the spread over seeds of the training curves. With
# `RLHF_EDU_SCALE=gpt2` the same cells run GPT-2 small.
#
# **Reward-based against reward-free.** Notebook 07 reached its sentiment gains with PPO, which
# samples from the current policy, scores the samples with a learned reward model and pays an
# explicit, measured KL penalty. DPO never samples during training: it only reshapes the
# likelihood of a fixed, offline set of critic snippets, and its KL to the reference is a side
# effect that we can only measure afterwards, as above. That is what makes it cheap (one model,
# no generation loop, reference scored once) and also what lets it push probability onto text it
# never saw, including the drop in the chosen likelihood. The "Reward-based vs reward-free"
# article summarises the comparison the same way: no clear winner, with PPO often ahead when the
# preference data are out of distribution for the policy, and both methods in use at large labs.
# Section 4.4 puts the two on one plane.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### 4.4 DPO against PPO on one reward–KL plane
#
# The DPO paper's IMDb experiment (its Figure 2) plots each policy's reward against its KL to the
# reference, so that a method is judged by the reward it buys per nat of drift: the upper-left
# frontier wins. We draw the same plane with the gold judge as the reward. The PPO points are
# notebook 07's final policies (β = 0, 0.1, 0.3 and β = 0.1 + ptx, three seeds each), read from
# the file that notebook writes (`results/07_ppo_<scale>.json`); run notebook 07 first. The DPO
# points are this notebook's policies (plain DPO and DPO+NLL at β = 0.1, three seeds each; β = 0.02
# and 1, seed 0), sampled on **notebook 07's 64 evaluation prompts with its response length and
# sampler seed**, and the KL is estimated the same way (k1, summed over the response). The two
# methods do not learn from the same data: PPO's reward model was fitted to critic (fresh over
# rotten) pairs and PPO samples its own responses, while DPO fits 160 gold-labelled pairs offline.
# The plane compares the methods as this course runs them, not at equal data.

# %% slideshow={"slide_type": "-"}
ppo_file = Path(f"results/07_ppo_{scale.name}.json")
ppo = json.loads(ppo_file.read_text()) if ppo_file.exists() else None
if ppo is None:
    print(f"{ppo_file} not found: run notebook 07 first; drawing the DPO side only")
plane_prompts = ppo["prompts"] if ppo else list(make_prompts(splits["validation"], n=64, seed=1)["prompt"])
plane_tokens = ppo["max_new_tokens"] if ppo else 20


@torch.no_grad()
def gold_and_kl(policy):  # notebook 07's evaluation: one sample per prompt, sampler seed 1234
    ro = sample(policy, tokenizer, plane_prompts, max_new_tokens=plane_tokens, seed=1234, max_prompt_tokens=16)
    ref_lp = response_logprobs(reference, ro.input_ids, ro.attention_mask, ro.prompt_length)  # (B, R)
    return gold_reward(ro.texts).mean().item(), ((ro.logprobs - ref_lp) * ro.response_mask).sum(-1).mean().item()


dpo_points = {f"{name} β=0.1": np.array([gold_and_kl(p) for p in ps]) for name, ps in seed_policies.items()}
dpo_points.update({f"DPO β={b}": np.array([gold_and_kl(beta_policies[b])]) for b in betas if b != 0.1})
fig, ax = plt.subplots(figsize=(7.5, 4.8))
if ppo:
    ax.scatter([0], [ppo["base"]["gold"]], color="gray", s=60, marker="*", label="base model", zorder=3)
    for (name, r), c in zip(ppo["runs"].items(), ["#d62728", "#1f77b4", "#9467bd", "#2ca02c"]):
        k, g = np.array(r["kl"]), np.array(r["gold"])
        ax.scatter(k, g, color=c, s=14, alpha=0.5)
        ax.errorbar(k.mean(), g.mean(), xerr=mean_se(k)[1], yerr=mean_se(g)[1], fmt="o", color=c, capsize=3,
                    label=f"PPO {name}")
for (name, pts), c in zip(dpo_points.items(), ["tab:orange", "tab:brown", "gold", "black"]):
    ax.scatter(pts[:, 1], pts[:, 0], color=c, s=14, alpha=0.5, marker="s")
    ax.errorbar(pts[:, 1].mean(), pts[:, 0].mean(), xerr=mean_se(pts[:, 1])[1], yerr=mean_se(pts[:, 0])[1],
                fmt="s", color=c, capsize=3, label=name)
ax.set(xscale="symlog", xlabel="KL(π ‖ π_ref) on the 64 prompts (nats per response, k1)",
       ylabel="gold judge (mean over the 64 prompts)", title="Gold reward against KL: PPO (circles) and DPO (squares)")
ax.legend(fontsize=7, ncol=2)
plt.show()
print("mean over seeds (small markers: one seed each; error bars: SE over seeds)")
if ppo:
    print(f"  {'base model':20s} gold {ppo['base']['gold']:+.3f}   KL   0.0")
    for name, r in ppo["runs"].items():
        print(f"  PPO {name:16s} gold {np.mean(r['gold']):+.3f} ± {mean_se(r['gold'])[1]:.3f}   KL {np.mean(r['kl']):5.1f} ± {mean_se(r['kl'])[1]:.1f}")
for name, pts in dpo_points.items():
    se = mean_se(pts)[1] if len(pts) > 1 else np.zeros(2)
    print(f"  {name:20s} gold {pts[:, 0].mean():+.3f} ± {se[0]:.3f}   KL {pts[:, 1].mean():5.1f} ± {se[1]:.1f}"
          f"   ({len(pts)} seed{'s' if len(pts) > 1 else ''})")

# %% [markdown] slideshow={"slide_type": "-"}
# **Reading the plane.** The DPO paper found DPO's frontier above PPO's. At our scale the plane does
# not show that, and it does not show the reverse either. Every DPO policy moves far from the
# reference (KL 16.7 to 31.6 nats at β = 0.1 and 1; 202.8 at β = 0.02) without buying gold: plain
# DPO at β = 0.1 ends at −0.093 ± 0.079, within 3 SE of the base model's −0.048, DPO+NLL at
# −0.045 ± 0.022, and β = 0.02 wrecks the text (−0.823). That matches section 4.1: the held-out
# accuracy stays at chance, so there is no preference for the samples to express. PPO at
# β = 0.1 and 0.3 sits higher in the mean at a similar KL (+0.229 ± 0.186 at 27.7 nats,
# +0.164 ± 0.160 at 15.4), but its seeds spread widely and neither gap to plain DPO reaches 3 SE
# (1.6 and 1.4 SE; section 6). PPO at β = 0 shows the other end of the plane: the most KL of any
# PPO run (59.8 nats) and the lowest PPO gold (−0.240), the over-optimisation of notebook 07.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. What the logged metrics mean
#
# | key in the history | meaning | healthy sign |
# |---|---|---|
# | `loss` | mean of the DPO loss (+ α × NLL: the chapter's eqs. 7–8) over the batch | starts at ln 2 ≈ 0.693 (+ α·NLL), falls |
# | `chosen_reward`, `rejected_reward` | implicit rewards $\beta\log\pi_\theta/\pi_{\text{ref}}$ of $y_w$ and $y_l$ | chosen above rejected; both falling is the failure of §4.1 |
# | `margin` | chosen minus rejected implicit reward | grows; a margin that keeps growing fast with flat held-out accuracy is over-fitting |
# | `accuracy` | fraction of pairs with chosen reward above rejected (ties count ½) | 0.5 at step 0, then up |
# | `chosen_logp`, `rejected_logp` | absolute summed log-probs $\log\pi_\theta(y|x)$ | the chosen one should not collapse |
# | `nll` | $-\log P_\theta(y_w|x)/\lvert y_w\rvert$, nats per chosen token | flat or falling with α > 0 |
# | `tokens`, `seconds` | non-pad tokens in the batch and wall time of the step | for throughput (see `benchmarks/dpo_step.py`) |
# | `eval_*` | the same on the held-out pairs, every `eval_every` steps | what the plots show |

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. Checks
#
# Exact values for closed forms; threshold verdicts for training results.

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
g = torch.Generator().manual_seed(0)
lp = -20 * torch.rand(4, 8, generator=g, dtype=torch.float64)
lengths = torch.tensor([5, 9, 1, 12, 3, 7, 2, 4])
at_init = dpo_loss(lp[0], lp[1], lp[0], lp[1], beta=0.1).losses
print("DPO loss when the policy equals the reference:", round(at_init.mean().item(), 6), "= ln 2:", round(math.log(2), 6))
same = torch.equal(dpo_nll_loss(*lp, lengths, 0.1, 0.0).losses, dpo_loss(*lp, 0.1).losses)
print("DPO+NLL with alpha = 0 equals DPO:", same)
print("IPO loss at the target margin 1/(2 beta):", round(ipo_loss(lp[1] + 5.0, lp[1], lp[1], lp[1], beta=0.1).losses.abs().max().item(), 9))

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
batch = PairCollator(tokenizer, max_len=cfg.max_len, max_prompt_tokens=cfg.max_prompt_tokens)(
    [eval_pairs[i] for i in range(8)])
with torch.no_grad():
    pol = pair_logprobs(policies["DPO"], batch)
    live = pair_logprobs(reference, batch)  # on the fly, with a frozen reference model
diff = (dpo_loss(pol.chosen, pol.rejected, ref_eval.chosen[:8].to(device), ref_eval.rejected[:8].to(device), cfg.beta).losses
        - dpo_loss(pol.chosen, pol.rejected, live.chosen, live.rejected, cfg.beta).losses).abs().max().item()
print("precomputed and on-the-fly reference give the same losses (max diff < 1e-4):", diff < 1e-4)

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
acc_dpo = np.array([e["accuracy"] for e in train_end["DPO"]])
chosen = {n: np.array([e["chosen_logp"] for e in ends]) for n, ends in train_end.items()}
drop, drop_se = mean_se(ref_train.chosen.mean().item() - chosen["DPO"])
gap, gap_se = mean_se(chosen["DPO+NLL α=1.0"] - chosen["DPO"])
held = seed_runs["DPO"]["eval_accuracy"][:, -1]
n_eval = len(ref_eval.chosen)
print("plain DPO: training accuracy >= 0.9 in every seed:", bool((acc_dpo >= 0.9).all()))
held_drop, held_drop_se = mean_se(ref_eval.chosen.mean().item() - seed_runs["DPO"]["eval_chosen_logp"][:, -1])
print("plain DPO: training chosen log-ratio dipped below zero beyond 3 SE before the accuracy passed 0.9:",
      cr_mean[t_min] + 3 * cr_se[t_min] < 0 and acc_mean[t_min] < 0.9)
print("plain DPO: held-out chosen log-prob fell, beyond 3 SE over seeds:", held_drop > 3 * held_drop_se)
print("DPO+NLL α=1: training chosen log-prob above plain DPO's, beyond 3 SE over seeds:", gap > 3 * gap_se and gap > 0)
print(f"plain DPO: held-out accuracy within 3 SE of chance ({n_eval} pairs; no gain shown at this scale):",
      abs(held.mean() - 0.5) < 3 * math.sqrt(0.25 / n_eval))

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
kl_small, kl_large = results["DPO β=0.02"]["kl"].mean().item(), results["DPO β=1.0"]["kl"].mean().item()
print("smaller beta moved further from the reference (KL at 0.02 > KL at 1.0 + 2 nats):", kl_small > kl_large + 2.0)
print("every KL estimate finite and >= -0.5 nats:", all(math.isfinite(r["kl"].mean().item()) and r["kl"].mean().item() > -0.5 for r in results.values()))

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
# the reward-KL plane (section 4.4); needs notebook 07's results file
g_dpo = dpo_points["DPO β=0.1"][:, 0]
if ppo is None:
    print(f"{ppo_file} not found: run notebook 07 first")
else:
    print("plain DPO β=0.1: gold within 3 SE (over seeds) of the base model's (no gain shown):",
          abs(g_dpo.mean() - ppo["base"]["gold"]) < 3 * mean_se(g_dpo)[1])
    for name in ("beta = 0.1", "beta = 0.3"):
        d, se, shown = effect_verdict(ppo["runs"][name]["gold"], g_dpo)
        print(f"PPO {name}: gold above plain DPO β=0.1's beyond 3 SE over seeds:", shown and d > 0)


# %% [markdown] slideshow={"slide_type": "slide"}
# ## 7. References
#
# - Rafailov, Sharma, Mitchell, Ermon, Manning, Finn (2023). *Direct Preference Optimization: Your
#   Language Model is Secretly a Reward Model.* Their eq. 7: the DPO loss.
# - Pang, Yuan, Cho, He, Sukhbaatar, Weston (2024). *Iterative Reasoning Preference Optimization.*
#   DPO+NLL, the chapter's reference for eqs. 7–8.
# - The RLHF book, *Regularization* chapter: eqs. 1–2 (KL-regularised reward), eqs. 7–8 (DPO+NLL
#   with a length-normalised NLL).
# - "Understanding RLHF" (blog post, 2023): the optimum $\pi^*\propto\pi_0\exp(r/\beta)$ read as
#   Bayesian inference.
# - "LLM Alignment: Reward-Based vs Reward-Free" (2024): PPO-based RLHF against DPO.
# - Azar et al. (2023). *A General Theoretical Paradigm to Understand Learning from Human
#   Preferences* (IPO, eq. 17).
# - Notebooks 01 (reverse KL), 03 (Bradley–Terry), 07 (PPO with a KL-shaped reward).
