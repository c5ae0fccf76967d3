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
# from. We sweep the KL coefficient (β = 0, 0.1, 0.3) and add pretraining gradients (PPO-ptx), three
# seeds each, on the tiny movie-review model, and judge every run by a gold reward it never sees:
# over-optimisation of the proxy (Gao et al. 2022), the KL that holds it back, and the alignment tax.

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
# 4. explain the **alignment tax** (held-out language-modelling loss rising during RLHF), and compare
#    PPO-ptx (eq. 6) with plain PPO at the same KL rather than at the same iteration;
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
import json
import math
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from tqdm.auto import tqdm

from rlhf_edu.config import get_scale, seed_everything
from rlhf_edu.data import lm_documents, load_splits, make_prompts, preference_pairs
from rlhf_edu.models import frozen_copy, load_policy, load_reward_model, n_parameters, scalar_head_from_lm
from rlhf_edu.bradley_terry import RewardModelConfig, score_texts, train_reward_model
from rlhf_edu import gold, ppo, rewards
from rlhf_edu.generation import sample
from rlhf_edu.logprobs import response_logprobs
from rlhf_edu.ppo import PPOConfig, heldout_lm_loss, ptx_blocks, train_ppo
from rlhf_edu.plotting import band, effect_verdict, mean_se, smooth, stack_histories

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
# * **Prompts:** a movie name and the first four words of a review.
# * **ptx data:** the critics' snippets of the validation movies. **Held-out LM loss:** the *plot
#   summaries* of the test movies, a different kind of text (neutral, descriptive) that ptx never
#   rehearses, so the tax is measured where ptx cannot pay it back by memorising.

# %% slideshow={"slide_type": "-"}
splits = load_splits()
policy0, tokenizer = load_policy(scale)
TINY = scale.name == "tiny"
prompts = list(make_prompts(splits["train"], n=4000, seed=0)["prompt"])
eval_prompts = list(make_prompts(splits["validation"], n=64, seed=1)["prompt"])  # 64 for the final verdicts
reviews_val = splits["validation"].filter(lambda r: r["label"] != "plot")  # critics' snippets only
plots_test = splits["test"].filter(lambda r: r["label"] == "plot")  # plot summaries: another kind of text
ptx_data = ptx_blocks(tokenizer, lm_documents(reviews_val), block_tokens=32)
heldout = ptx_blocks(tokenizer, lm_documents(plots_test), block_tokens=32, max_blocks=64)
# on a CPU: 16 prompts per iteration and a larger step, so that 12 runs fit in about 5 minutes
base_cfg = PPOConfig.from_scale(scale, eval_every=4, **(dict(
    iterations=22, batch_size=16, minibatch_size=8, lr=3e-4, ptx_batch_size=4, reuse_sampler_logprobs=True)
    if TINY else dict(iterations=40)))
print(f"policy: {n_parameters(policy0)/1e6:.1f}M parameters; {len(prompts)} prompts; "
      f"ptx blocks (critic reviews) {tuple(ptx_data.shape)}; held-out blocks (plot summaries) {tuple(heldout.shape)}")
print(f"PPO: {base_cfg.iterations} iterations x {base_cfg.batch_size} prompts x {base_cfg.max_new_tokens} tokens, "
      f"{base_cfg.ppo_epochs} epochs of minibatch {base_cfg.minibatch_size}, lr {base_cfg.lr}")

# %% slideshow={"slide_type": "-"}
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
@torch.no_grad()
def evaluate(policy, reference):
    """Sample the 64 evaluation prompts once (fixed sampler seed) and score the responses: mean gold,
    proxy, KL to the reference (k1 per response), share of repeated bigrams, and the first samples."""
    ro = sample(policy, tokenizer, eval_prompts, base_cfg.max_new_tokens, seed=1234, max_prompt_tokens=16)
    ref_lp = response_logprobs(reference, ro.input_ids, ro.attention_mask, ro.prompt_length)  # (B, R)
    return dict(gold=gold.gold_reward(ro.texts).mean().item(), proxy=proxy_reward(ro).mean().item(),
                kl=((ro.logprobs - ref_lp) * ro.response_mask).sum(-1).mean().item(),
                repeats=float(np.mean([gold.repeated_bigram_rate(t) for t in ro.texts])), texts=ro.texts[:3])


base_final = evaluate(policy0, policy0)  # the base model on the same prompts (its KL to itself is 0)
base_lm = heldout_lm_loss(policy0, heldout)
print(f"base model on 64 prompts: gold {base_final['gold']:+.3f}, proxy {base_final['proxy']:+.3f}, "
      f"held-out LM loss on plot summaries {base_lm:.3f}")
for p, y in zip(eval_prompts, base_final["texts"]):
    print(f"  {p!r} -> {y!r}")

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### 4.2 A β sweep over three seeds
#
# Three KL coefficients, β = 0 (no penalty), 0.1 and 0.3, and PPO-ptx at β = 0.1, each trained
# from the same base model with three seeds. A seed fixes the prompt order, the sampler and the
# value head's initialisation, so the four settings see the same prompts in the same order within
# a seed. Every figure below shows the mean over seeds with a ± 1 standard-error band.

# %% slideshow={"slide_type": "-"}
SEEDS, BETA_PTX, PTX_COEF = (0, 1, 2), 0.1, 0.5
RUNS = {"beta = 0": dict(beta=0.0), "beta = 0.1": dict(beta=0.1), "beta = 0.3": dict(beta=0.3),
        f"beta = {BETA_PTX} + ptx": dict(beta=BETA_PTX, ptx_coef=PTX_COEF)}
colors = dict(zip(RUNS, ["tab:red", "tab:blue", "tab:purple", "tab:green"]))


def run(name, seed):
    """One PPO run from the base model; returns its history plus ``final``, the final policy's
    scores on the 64 evaluation prompts (:func:`evaluate`)."""
    seed_everything(seed, threads=2)
    policy, reference, value = copy.deepcopy(policy0), frozen_copy(policy0), scalar_head_from_lm(policy0)
    cfg = base_cfg.with_(seed=seed, **RUNS[name])
    h = train_ppo(cfg, policy, reference, value, tokenizer, prompts, proxy_reward, ptx_data=ptx_data,
                  heldout=heldout, progress=False)
    h["final"] = evaluate(policy, reference)
    return h


t = time.perf_counter()
raw = {name: [] for name in RUNS}
with tqdm(total=len(RUNS) * len(SEEDS), desc="PPO runs", mininterval=5) as bar:
    for name in RUNS:
        for seed in SEEDS:
            raw[name].append(run(name, seed))
            bar.update()
H = {name: stack_histories(hs) for name, hs in raw.items()}  # {run: {key: (seeds, iterations) array}}
F = {name: {k: np.array([h["final"][k] for h in hs]) for k in ("gold", "proxy", "kl", "repeats")}
     for name, hs in raw.items()}  # {run: {key: (seeds,) array}}: the final policies on the evaluation prompts
# notebook 08 draws these runs beside DPO on one reward-KL plane
Path("results").mkdir(exist_ok=True)
Path(f"results/07_ppo_{scale.name}.json").write_text(json.dumps(
    {"prompts": eval_prompts, "max_new_tokens": base_cfg.max_new_tokens, "base": base_final,
     "runs": {n: {k: v.tolist() for k, v in f.items()} for n, f in F.items()}}, indent=1))
print(f"{len(RUNS)} settings x {len(SEEDS)} seeds in {time.perf_counter() - t:.0f} s; mean ± SE over seeds:")
for name, h in H.items():
    m = lambda x: "{:+.2f} ± {:.2f}".format(*mean_se(x))
    print(f"  {name:16s} proxy {m(h['reward'][:, -3:].mean(1))} | gold {m(h['gold'][:, -3:].mean(1))} | "
          f"KL {m(h['kl'][:, -3:].mean(1))} nats | length {m(h['response_length'][:, -3:].mean(1))} tokens "
          f"(last 3 iterations)")

# %% slideshow={"slide_type": "subslide"}
it = H["beta = 0"]["iteration"][0]
panels = [("reward", "proxy reward (reward model)", "reward-model score"),
          ("gold", "gold judge (never seen in training)", "sentiment x readability"),
          ("kl", "KL(pi || pi_ref) per response (k1)", "nats"),
          ("response_length", "response length", "tokens")]
fig, axes = plt.subplots(1, 4, figsize=(16, 3.8))
for ax, (key, title, ylabel) in zip(axes, panels):
    for name, h in H.items():
        band(ax, it, h[key], label=name, color=colors[name], k=3)
    ax.set(title=title, xlabel="PPO iteration", ylabel=ylabel)
axes[1].axhline(H["beta = 0"]["gold"][:, 0].mean(), color="gray", ls="--", lw=1, label="base model (iteration 0)")
axes[1].legend(fontsize=8)
fig.suptitle(f"Rollout means over {len(SEEDS)} seeds (± 1 SE bands, smoothed over 3 iterations); "
             "iteration 0 is the base model on the same prompts")
fig.tight_layout()
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Reading the curves** (mean ± SE over three seeds, numbers printed above).
#
# * **The proxy rises in every setting**, most without a KL penalty: over the last three iterations
#   +12.45 ± 0.44 at β = 0, +10.59 ± 0.57 at β = 0.1, +8.63 ± 1.32 at β = 0.3 and +6.56 ± 1.26 with
#   ptx, from about +1.6 at iteration 0.
# * **β prices the distance.** The KL ends at 58.0 ± 3.2 nats at β = 0, 29.3 ± 4.0 at β = 0.1 and
#   15.1 ± 2.0 at β = 0.3 (each step beyond 3 SE, section 6). In the figure it is still rising at
#   the last iteration in every run: none has levelled off within 22 iterations (not a checked effect).
# * **Length.** Without a penalty every response runs to the 20-token limit (20.00 ± 0.00): longer
#   answers hold more praise words for the reward model. With β = 0.3 the answers end at
#   8.9 ± 1.6 tokens, against about 15 at iteration 0 in the length panel; a plausible reading, not
#   tested here: the penalty is paid per token, so a short answer is a cheap answer.
# * **The gold judge** (second panel) is noisier: 16 responses per iteration, and seeds that take
#   off at different times. Over the last three iterations it reads −0.06 ± 0.12 at β = 0,
#   +0.25 ± 0.15 at β = 0.1, +0.15 ± 0.09 at β = 0.3 and +0.09 ± 0.20 with ptx, none beyond 3 SE
#   of the others. Its shape is the lesson: at β = 0 it rises with the proxy until about
#   iteration 8 and then turns down while the proxy keeps climbing; the next figure measures that turn.

# %% slideshow={"slide_type": "subslide"}
# Gao et al. (2022) plot gold and proxy against the distance travelled from the start, sqrt(KL)
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for name, h in H.items():
    x = np.sqrt(np.clip(smooth(h["kl"], 3).mean(0), 0, None))  # mean over seeds of the smoothed KL
    for ax, key in zip(axes, ("reward", "gold")):
        band(ax, x, h[key], label=name, color=colors[name], k=3)
for ax, title in zip(axes, ("proxy reward", "gold judge")):
    ax.set(title=f"{title} against the distance from the base model", xlabel="sqrt(KL) (sqrt nats)")
    ax.legend(fontsize=8)
fig.tight_layout()
plt.show()
g0 = smooth(H["beta = 0"]["gold"], 5)  # (seeds, iterations): 5-iteration moving average per seed
r0 = smooth(H["beta = 0"]["reward"], 5)
peak = g0.mean(0).argmax()  # the iteration where the seed-mean gold peaks
drop_gold, rise_proxy = g0[:, peak] - g0[:, -1], r0[:, -1] - r0[:, peak]  # per seed
print(f"beta = 0: seed-mean gold peaks at iteration {it[peak]} (KL {H['beta = 0']['kl'][:, peak].mean():.1f} nats); "
      f"from there to the end, gold falls by {mean_se(drop_gold)[0]:+.2f} ± {mean_se(drop_gold)[1]:.2f} "
      f"while the proxy rises by {mean_se(rise_proxy)[0]:+.2f} ± {mean_se(rise_proxy)[1]:.2f} (mean ± SE over seeds)")

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Over-optimisation (Gao et al. 2022).** Plotted against the distance from the base model, the
# proxy rises monotonically in every run (left), but the gold does not (right). At β = 0 the
# seed-mean gold peaks at iteration 8, at a KL of 19.4 nats, and from there to the end it falls by
# 0.19 ± 0.09 while the proxy rises by another 5.85 ± 1.78 (mean ± SE over seeds, each curve
# smoothed over 5 iterations). The fall is 2.1 SE: it passes the 2-SE criterion for "the gold
# stops following the proxy" but not the course's 3-SE bar for a shown effect, and the peak is
# picked from the same curves, which flatters it. The β > 0 runs stop at smaller KL, where the gold
# is still rising: the KL penalty keeps them on the good side of the peak.
#
# What the gold punishes is visible in the samples below: the β = 0 policies of all three seeds
# loop a handful of praise words ("entertaining and entertaining and entertaining experience
# entertaining and entertaining ..."), which the reward model scores highly and the judge's
# repeated-bigram term does not. On the evaluation prompts, 32.0% ± 4.2% of the β = 0 policies'
# word bigrams repeat an earlier one, against 13.1% ± 3.1% at β = 0.1, 4.5% ± 2.5% at β = 0.3 and
# 0.1% for the base model (both gaps beyond 3 SE, section 6).

# %% slideshow={"slide_type": "-"}
for name in RUNS:
    print(f"--- {name}: final policy of each seed, first evaluation prompt")
    for seed, h in zip(SEEDS, raw[name]):
        print(f"  seed {seed}: {eval_prompts[0]!r} -> {h['final']['texts'][0]!r}")

# %% slideshow={"slide_type": "subslide"}
fig, axes = plt.subplots(1, 3, figsize=(15, 3.6))
labels = ["base model"] + list(RUNS)
x = np.arange(len(labels))
for ax, key, title in [(axes[0], "gold", "gold judge"), (axes[1], "proxy", "proxy reward (reward model)"),
                       (axes[2], "repeats", "share of repeated word bigrams")]:
    means = [base_final[key]] + [mean_se(F[n][key])[0] for n in RUNS]
    ses = [0.0] + [mean_se(F[n][key])[1] for n in RUNS]
    ax.bar(x, means, yerr=ses, capsize=4, color=["gray"] + [colors[n] for n in RUNS])
    ax.set_xticks(x, labels, rotation=15, fontsize=8)
    ax.set(title=f"{title}: final policies", ylabel="mean ± SE over seeds")
fig.suptitle("The final policies on the 64 evaluation prompts (the base model on the same prompts, one sample each)")
fig.tight_layout()
plt.show()
print(f"{'base model':16s} gold {base_final['gold']:+.3f}           proxy {base_final['proxy']:+.2f}          "
      f"repeated bigrams {base_final['repeats']:.3f}")
for name, f in F.items():
    (g, gs), (pr, ps), (rb, rs), (k, ks) = (mean_se(f[key]) for key in ("gold", "proxy", "repeats", "kl"))
    print(f"{name:16s} gold {g:+.3f} ± {gs:.3f}   proxy {pr:+.2f} ± {ps:.2f}   repeated bigrams {rb:.3f} ± {rs:.3f}"
          f"   KL {k:5.1f} ± {ks:.1f} nats   (SE over {len(SEEDS)} seeds)")

# %% [markdown] slideshow={"slide_type": "-"}
# **The final policies** (one sample per evaluation prompt, mean ± SE over seeds). The proxy orders
# the runs by how little they are held back: +12.90 ± 0.38 at β = 0, down to +4.76 ± 0.74 with ptx,
# against +1.23 for the base model. The gold does not follow: β = 0 ends lowest (−0.240 ± 0.065,
# below the base model's −0.048), and β = 0.1 highest (+0.229 ± 0.186). That gap is 2.4 SE and
# β = 0.3's (+0.164 ± 0.160) is 2.3 SE: with three seeds, the final-policy gold does not separate
# the settings beyond 3 SE (section 6), because the β > 0 seeds differ a lot among themselves. The
# repeated-bigram share (right) does separate them, and it is what the judge punishes.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### 4.3 The alignment tax at matched KL
#
# The tax is the rise of the language-modelling loss on **plot summaries** from the test movies,
# text of a different kind than the critic snippets used as ptx data, so that ptx cannot pay it
# back by rehearsing the very text it is measured on. A run that optimises less also pays less, so
# the fair comparison is at the same distance from the base model: for each seed we read the plain
# β = 0.1 run's tax at the KL that the ptx run ended with (linear interpolation between the
# plain run's evaluation points).

# %% slideshow={"slide_type": "-"}
ev = H["beta = 0"]["eval_iteration"][0].astype(int)  # evaluation points: every 4 iterations and the end


def tax_curve(h):  # (seeds, evals) KL of the rollout at each evaluation point, and the LM-loss rise there
    kl = np.concatenate([h["kl"], h["kl"][:, -1:]], axis=1)[:, ev]  # the end reuses the last rollout's KL
    return kl, h["heldout_lm_loss"] - h["heldout_lm_loss"][:, :1]


fig, ax = plt.subplots(figsize=(6.5, 4.2))
for name, h in H.items():
    kl, rise = tax_curve(h)
    band(ax, kl.mean(0), rise, label=name, color=colors[name], marker="o", ms=3)
ax.set(xlabel="KL(pi || pi_ref) of the rollout (nats)", ylabel="rise of held-out LM loss (nats/token)",
       title="Alignment tax on plot summaries against KL")
ax.set_xscale("symlog", linthresh=1.0)
ax.legend(fontsize=8)
plt.show()
kl_ptx, rise_ptx = tax_curve(H[f"beta = {BETA_PTX} + ptx"])
kl_pl, rise_pl = tax_curve(H[f"beta = {BETA_PTX}"])
matched = np.array([np.interp(kl_ptx[i, -1], np.maximum.accumulate(kl_pl[i]), rise_pl[i]) for i in range(len(SEEDS))])
print(f"ptx run at the end: KL {mean_se(kl_ptx[:, -1])[0]:.1f} ± {mean_se(kl_ptx[:, -1])[1]:.1f} nats, "
      f"tax {mean_se(rise_ptx[:, -1])[0]:+.3f} ± {mean_se(rise_ptx[:, -1])[1]:.3f} nats/token")
print(f"plain beta = {BETA_PTX} at the same KL (per seed): tax {mean_se(matched)[0]:+.3f} ± {mean_se(matched)[1]:.3f}; "
      f"at its own end (KL {mean_se(kl_pl[:, -1])[0]:.1f}): {mean_se(rise_pl[:, -1])[0]:+.3f} ± {mean_se(rise_pl[:, -1])[1]:.3f}")

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Reading the tax.** Every run pays a tax on plot summaries, and it grows with the KL. Plain
# β = 0.1 ends at +1.321 ± 0.138 nats/token (KL 30.0), the ptx run at +0.384 ± 0.015 (KL 12.8). At
# the KL where the ptx run ended, the plain β = 0.1 run had already paid +0.604 ± 0.063: at **equal
# distance** from the base model, ptx pays less, beyond 3 SE paired by seed (section 6), although
# its ptx text (critic snippets) is not the text the tax is measured on. Part of what ptx buys is
# still *less optimisation*: at the end its proxy is +4.76 ± 0.74 against +9.85 ± 0.85 for plain
# β = 0.1 (the bar chart above), so the two are not at equal reward. In the figure, β = 0.3's curve
# (purple) climbs most steeply with KL while its answers shrink to about 9 tokens; we did not test
# why, and no check covers it.

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
# | `heldout_lm_loss` | NLL on held-out text (here plot summaries), every `eval_every` iterations | its rise is the alignment tax |
# | `response_length` | mean number of response tokens (through EOS) | watch for collapse to very short or always-maximal answers |
# | `rm_queries` | cumulative reward-model calls | the cost side (notebook 06) |
# | `epochs` | PPO epochs run this iteration (fewer after an early stop) | |

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. Checks
#
# Rounded, threshold-style summaries that should survive another CPU or a newer torch.

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
# every verdict compares per-seed results: an effect is shown when it exceeds 3 SE over the seeds
# (the over-optimisation criterion asks for 2 SE, and the drop is also checked at 3)
def verdict(claim, diff, se, n_se=3.0):
    print(f"{claim} (> {n_se:g} SE over seeds):", diff > n_se * se)


print("reward model beats chance on held-out pairs (accuracy > 0.6):", rm_hist["eval_accuracy"][-1] > 0.6)
kl_end = {n: h["kl"][:, -3:].mean(1) for n, h in H.items()}
verdict("beta = 0 ends further from the reference than beta = 0.1", *effect_verdict(kl_end["beta = 0"], kl_end["beta = 0.1"])[:2])
verdict("beta = 0.1 ends further from the reference than beta = 0.3", *effect_verdict(kl_end["beta = 0.1"], kl_end["beta = 0.3"])[:2])
verdict("beta = 0: the proxy keeps rising after the gold's peak", *mean_se(rise_proxy), n_se=2)
verdict("beta = 0: the gold falls below its own peak", *mean_se(drop_gold), n_se=2)
verdict("beta = 0: the gold falls below its own peak", *mean_se(drop_gold))
verdict("final gold on the evaluation prompts: beta = 0.1 above beta = 0", *effect_verdict(F["beta = 0.1"]["gold"], F["beta = 0"]["gold"])[:2])
verdict("final gold on the evaluation prompts: beta = 0.3 above beta = 0", *effect_verdict(F["beta = 0.3"]["gold"], F["beta = 0"]["gold"])[:2])
verdict("beta = 0 repeats more word bigrams than beta = 0.1", *effect_verdict(F["beta = 0"]["repeats"], F["beta = 0.1"]["repeats"])[:2])
verdict("beta = 0 repeats more word bigrams than beta = 0.3", *effect_verdict(F["beta = 0"]["repeats"], F["beta = 0.3"]["repeats"])[:2])
verdict("ptx pays a smaller tax than plain beta = 0.1 at the same KL (paired by seed)", *mean_se(matched - rise_ptx[:, -1]))
verdict("ptx pays a smaller tax than plain beta = 0.1 at the end of training", *effect_verdict(rise_pl[:, -1], rise_ptx[:, -1])[:2])

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
# Set `RLHF_EDU_SCALE=gpt2` and the same cells run GPT-2 small (after `rlhf-edu sft`) with
# `PPOConfig.gpt2()` (64 prompts x 32 tokens per iteration, 4 epochs of minibatch 16, bf16 autocast),
# cut to 40 iterations per run here so that the 12 runs of section 4 fit in about 20 minutes at the
# estimated 2 s per iteration below (an estimate: no GPU has run this notebook yet), or, on a 16 GB
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
# minutes per 100 iterations) and several seconds per iteration on a T4 in fp32.
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
