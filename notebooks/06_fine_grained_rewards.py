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
# # 06 · Fine-grained rewards: dense, per-category rewards with a per-token KL
#
# A holistic reward model gives one number per response, on its last token. Fine-grained RLHF
# (Wu et al. 2023, presented in Lecture 6) splits the judgement into error categories, scores each
# category at its own density (per sentence, per span, per response) and puts every score on the
# token where its segment ends. This notebook gives the same policy one signal at two densities
# (once per response, or on every clause) and adds a second category, four seeds each, and judges
# every run with the course's gold judge.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. Learning goals
#
# After this notebook you can:
#
# 1. write Lecture 6's fine-grained per-token reward, with segmenters (sentences, fixed-size spans,
#    the whole response) and one scorer per error category;
# 2. see on a trained policy's response exactly which token receives which reward (a heat-map of $r_t$);
# 3. compare the same signal given densely and once per response at equal samples, over seeds, on
#    the gold judge, length and diversity, as Wu et al. do, and read a category-weight study;
# 4. count the price: reward-model queries per response grow with the density.

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
import re
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from tqdm.auto import tqdm

from rlhf_edu.config import get_scale, seed_everything
from rlhf_edu.data import lm_documents, load_splits, make_prompts
from rlhf_edu.models import frozen_copy, load_policy, scalar_head_from_lm
from rlhf_edu import rewards
from rlhf_edu.rewards import (FineGrainedReward, RewardCategory, fine_grained_scores, response_token_strings,
                              sentence_segments, sentence_sentiment, span_repetition, span_segments,
                              whole_response_segments)
from rlhf_edu.ppo import PPOConfig, heldout_lm_loss, make_rollout, ptx_blocks, score_samples, train_ppo
from rlhf_edu.plotting import band, effect_verdict, mean_se, stack_histories
from rlhf_edu import gold
from rlhf_edu.fdpg import distinct_n  # distinct-n diversity, as in notebook 05

scale = get_scale()
gen = seed_everything(0, threads=2)
plt.rcParams.update({"figure.dpi": 90, "axes.grid": True, "grid.alpha": 0.3})
T0 = time.perf_counter()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. Background
#
# **Holistic reward.** A reward model $R_\phi$ maps a prompt $x$ and a whole response $y$ to one
# scalar, given to the final token $a_T$ only (Lecture 6):
#
# $$r_t = \begin{cases} R_\phi(x, y) & t = T \\ 0 & \text{otherwise.}\end{cases}$$
#
# For long outputs this is a sparse signal, and one number cannot say *which* part was wrong.
#
# **Fine-grained reward.** Take $K$ error categories $C_k$, each with its own reward model
# $R_{\phi_k}$ and density. Category $k$ splits $y$ into segments
# $(y^k_1, \dots, y^k_{L_k})$, segment $j$ ending at token $T^k_j$, and scores each segment. The
# reward of token $a_t$ is (Lecture 6)
#
# $$r_t = \sum_{k=1}^{K} \sum_{j=1}^{L_k} \mathbb{1}(t = T^k_j)\, w_k\, R_{\phi_k}(x, y, j) \;-\; \beta \log\frac{P_\theta(a_t\mid s_t)}{P_{\theta_{\text{init}}}(a_t\mid s_t)}$$
#
# with a weight $w_k$ per category and the same per-token KL penalty as in notebook 07.
#
# **Result 2 of the lecture** (on toxicity): fine-grained RLHF lowers toxicity faster than holistic
# RLHF while keeping perplexity low, i.e. dense rewards are more sample-efficient. The cost: more
# reward-model queries per example.

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Our categories for movie reviews.** Wu et al. train a reward model per category from human span
# annotations. We have no such annotations, so each category gets a transparent rule-based scorer
# standing in for a learned detector:
#
# | category | density | scorer $R_{\phi_k}$ |
# |---|---|---|
# | sentiment | per clause, or the clauses' sum once per response | VADER compound of the clause |
# | repetition | per span of 4 tokens | minus the share of the span's bigrams seen earlier in the response |
#
# The **gold** reward is the course's gold judge (`rlhf_edu.gold`, as in notebook 07): VADER of the
# whole response times its readability, so a policy that loops praise words to please the
# sentiment category loses gold. No run trains on it.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. Implementation
#
# Segmenters turn a response's token strings into `Segment(start, end, text)`; a `RewardCategory`
# bundles a weight, a segmenter and a batch scorer; `fine_grained_scores` places
# $w_k R_{\phi_k}(x, y, j)$ on each $T^k_j$; `kl_shaped_rewards` (shared with notebook 07) subtracts
# the per-token KL.

# %% slideshow={"slide_type": "skip"}
print(inspect.getsource(rewards.sentence_segments))
print(inspect.getsource(rewards.span_segments))
print(inspect.getsource(rewards.segment_rewards_to_tokens))
print(inspect.getsource(rewards.fine_grained_scores))

# %% slideshow={"slide_type": "skip"}
print(inspect.getsource(rewards.sentence_sentiment))
print(inspect.getsource(rewards.ngrams_repeated))
print(inspect.getsource(rewards.kl_shaped_rewards))

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. Experiments
#
# ### 4.1 One signal at two densities, and a second category
#
# Wu et al.'s central comparison gives **the same judgement** either densely, on the token where each
# segment ends, or once, at the end of the response. Their segments are sentences of long answers.
# The tiny model was trained on one-sentence snippets: it writes one sentence and stops, so we
# segment at **clauses** instead: a segment ends at every token holding `, ; : . ! ?`, the
# sub-sentence density Wu et al. use for two of their three categories.
#
# | run | sentiment category | repetition category |
# |---|---|---|
# | **per response** | VADER of each clause, summed, on the last token | — |
# | **per clause** | VADER of each clause, on the clause's last token | — |
# | **per clause + repetition** | as above | minus the share of repeated bigrams in each 4-token span, on the span's last token ($w = 1$) |
#
# The first two give every response the same total task reward; only *where* it lands differs.
# The third is the category-weight study: the repetition weight at 1 instead of 0. Every run is
# judged by the course's **gold judge** (`rlhf_edu.gold`: sentiment times readability, with
# repeated bigrams and non-words penalised) on the whole response, which no run trains on.

# %% slideshow={"slide_type": "-"}
splits = load_splits()
policy0, tokenizer = load_policy(scale)
TINY = scale.name == "tiny"
prompts = list(make_prompts(splits["train"], n=4000, seed=0)["prompt"])
eval_prompts = list(make_prompts(splits["validation"], n=64, seed=1)["prompt"])
heldout = ptx_blocks(tokenizer, lm_documents(splits["test"].filter(lambda r: r["label"] == "plot")),
                     block_tokens=32, max_blocks=64)  # plot summaries, as in notebook 07
# on a CPU: 16 prompts per iteration and notebook 07's larger step, so that 9 runs fit the budget
base_cfg = PPOConfig.from_scale(scale, beta=0.05, eval_every=11, **(dict(
    iterations=22, batch_size=16, minibatch_size=8, lr=3e-4, reuse_sampler_logprobs=True) if TINY else dict(iterations=40)))
CLAUSE_END = re.compile(r"[,;:.!?]")


def clause_segments(tokens):
    """Clauses: a segment ends at every token holding , ; : . ! or ?, and at the last token."""
    return sentence_segments(tokens, end=CLAUSE_END)


def clause_sentiment(prompts, segments, tokens):  # R(x, y, j): VADER of clause j
    return sentence_sentiment(prompts, segments, tokens, negative_only=False)


def summed_clause_sentiment(prompts, segments, tokens):  # the same clause scores, summed into one
    return [[sum(v)] for v in clause_sentiment(prompts, [clause_segments(t) for t in tokens], tokens)]


sentiment_once = RewardCategory("sentiment (once)", 1.0, whole_response_segments, summed_clause_sentiment)
sentiment_dense = RewardCategory("sentiment per clause", 1.0, clause_segments, clause_sentiment)
repetition = RewardCategory("repetition per span", 1.0, lambda toks: span_segments(toks, 4), span_repetition)
RUNS = {"per response": [sentiment_once], "per clause": [sentiment_dense],
        "per clause + repetition": [sentiment_dense, repetition]}
reward_fns = {name: FineGrainedReward(cats, tokenizer) for name, cats in RUNS.items()}
colors = dict(zip(RUNS, ["tab:orange", "tab:purple", "tab:green"]))
print(f"PPO: {base_cfg.iterations} iterations x {base_cfg.batch_size} prompts x {base_cfg.max_new_tokens} tokens, "
      f"beta {base_cfg.beta}, lr {base_cfg.lr}")
toks = [" great", " cast", ",", " dull", " plot", "."]
for name, fn in reward_fns.items():  # one hand-made response: where each run's reward lands
    out = fine_grained_scores(RUNS[name], ["p"], [toks], R=len(toks))
    print(f"{name:24s} r_t = {[round(v, 3) for v in out.token_scores[0].tolist()]}  (sum {out.token_scores.sum():+.3f})")

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### 4.2 Three runs, four seeds each
#
# Same base model, β, prompts and number of samples; a seed fixes the prompt order, the sampler and
# the value head, so within a seed the runs see the same prompts. The final policies are judged on
# 64 evaluation prompts: gold, length, the share of repeated bigrams within a response, and
# **distinct-2**, the share of distinct word bigrams over all 64 responses (diversity across answers).

# %% slideshow={"slide_type": "-"}
SEEDS = tuple(range(scale.n(4)))  # 0-3


def final_scores(policy):
    ev = score_samples(policy, tokenizer, eval_prompts, base_cfg.max_new_tokens)  # one sample per prompt, seed 1234
    return dict(gold=ev["gold"].mean().item(), distinct_2=distinct_n(ev["texts"], 2),
                repeats=float(np.mean([gold.repeated_bigram_rate(t) for t in ev["texts"]])),
                words=float(np.mean([len(t.split()) for t in ev["texts"]])), texts=ev["texts"])


def run(name, seed):
    seed_everything(seed, threads=2)
    policy, reference, value = copy.deepcopy(policy0), frozen_copy(policy0), scalar_head_from_lm(policy0)
    h = train_ppo(base_cfg.with_(seed=seed), policy, reference, value, tokenizer, prompts, reward_fns[name],
                  heldout=heldout, progress=False)
    h["final"] = final_scores(policy)
    if seed == SEEDS[0]:
        trained[name] = (policy, reference)
    return h


t, raw, trained = time.perf_counter(), {name: [] for name in RUNS}, {}
with tqdm(total=len(RUNS) * len(SEEDS), desc="PPO runs", mininterval=5) as bar:
    for name in RUNS:
        for seed in SEEDS:
            raw[name].append(run(name, seed))
            bar.update()
H = {name: stack_histories(hs) for name, hs in raw.items()}  # {run: {key: (seeds, iterations)}}
F = {name: {k: np.array([h["final"][k] for h in hs]) for k in ("gold", "distinct_2", "repeats", "words")}
     for name, hs in raw.items()}
base = final_scores(policy0)
print(f"{len(RUNS)} runs x {len(SEEDS)} seeds in {time.perf_counter() - t:.0f} s. Final policies on 64 evaluation "
      f"prompts, mean ± SE over seeds (base model: gold {base['gold']:+.3f}, distinct-2 {base['distinct_2']:.3f}, "
      f"repeated bigrams {base['repeats']:.3f}, {base['words']:.1f} words):")
for name, f in F.items():
    m = {k: mean_se(v) for k, v in f.items()}
    print(f"  {name:24s} gold {m['gold'][0]:+.3f} ± {m['gold'][1]:.3f} | distinct-2 {m['distinct_2'][0]:.3f} ± "
          f"{m['distinct_2'][1]:.3f} | repeated bigrams {m['repeats'][0]:.3f} ± {m['repeats'][1]:.3f} | "
          f"{m['words'][0]:.1f} ± {m['words'][1]:.1f} words | RM queries {H[name]['rm_queries'][:, -1].mean():,.0f}")
    task = mean_se(H[name]["reward"][:, -3:].mean(1))
    print(f"  {'':24s} task reward of the rollouts, last 3 iterations {task[0]:+.3f} ± {task[1]:.3f} "
          f"(iteration 0: {H[name]['reward'][:, 0].mean():+.3f})")

# %% slideshow={"slide_type": "subslide"}
it = H["per response"]["iteration"][0]
fig, axes = plt.subplots(1, 4, figsize=(16, 3.8))
for name, h in H.items():
    band(axes[0], it, h["gold"], label=name, color=colors[name], k=3)
    band(axes[1], it, h["kl"], label=name, color=colors[name], k=3)
    band(axes[2], it, h["response_length"], label=name, color=colors[name], k=3)
    band(axes[3], it, h["rm_queries"], label=name, color=colors[name])
axes[0].axhline(H["per response"]["gold"][:, 0].mean(), color="gray", ls="--", lw=1, label="base model (iteration 0)")
for ax, (title, ylabel) in zip(axes, [("gold judge of the rollouts (never trained on)", "sentiment x readability"),
                                      ("KL(pi || pi_ref) per response", "nats"), ("response length", "tokens"),
                                      ("cost: cumulative reward-model queries", "segments scored")]):
    ax.set(title=title, xlabel="PPO iteration", ylabel=ylabel)
axes[0].legend(fontsize=8)
fig.suptitle(f"Mean ± SE over {len(SEEDS)} seeds (smoothed over 3 iterations); iteration 0 is the base model")
fig.tight_layout()
plt.show()

# %% slideshow={"slide_type": "-"}
for name in RUNS:
    print(f"--- {name}: final policy of seed 0, first 3 evaluation prompts")
    for p, y in list(zip(eval_prompts, raw[name][0]["final"]["texts"]))[:3]:
        print(f"  {p!r} -> {y!r}")

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Reading the runs** (mean ± SE over four seeds; the verdicts are in section 6).
#
# * **Where the same signal lands changes what is learnt.** Both runs receive the same sum for the
#   same text, yet the per-clause runs lift their task reward from +0.11 to +2.67 ± 1.19 (last three
#   iterations; 2.2 SE above its start), the per-response runs only to +0.25 ± 0.08. The dense signal says *which* clause
#   paid, and the policy finds what pays most: cutting the answer into one-word praise clauses
#   ("good good. good. good. good."). The gap between the two task rewards is 2.0 SE: large in the
#   mean, not shown.
# * **Length** is the one effect beyond 3 SE. The per-response runs shorten their final answers to
#   3.4 ± 0.9 words (the base model writes 10.6), the per-clause runs keep 9.8 ± 1.3 (about 4 SE apart).
#   When the only task signal comes once, at the end, the per-token KL penalty is the steadiest
#   signal the policy gets, and every token pays it; the same pressure shortened notebook 07's
#   β = 0.3 answers. That reading is ours: we did not test it.
# * **Gold.** The per-response runs' short answers fail the judge's readability (it wants five words
#   or more): in the first panel their rollout gold drifts from about −0.15 to about −0.4 (a figure
#   reading, not a checked effect), and their final gold is −0.405 ± 0.175, against −0.039 ± 0.239
#   per clause and +0.170 ± 0.359 with the repetition category. None of these gaps reaches 3 SE
#   (per clause against per response: 1.2 SE), so at this scale we do not confirm Wu et al.'s
#   finding that the dense reward ends with a better policy; the seeds of the dense runs differ too
#   much (some loop, some do not), and the per-clause rollout gold climbs to about +0.2 and falls
#   back in the last iterations (a figure reading; the loops are our guess at why, not tested).
# * **The category weight.** With the repetition category on ($w = 1$ instead of 0), the share of
#   repeated bigrams falls from 0.265 ± 0.145 to 0.013 ± 0.005 and distinct-2, the diversity across
#   answers, rises from 0.481 ± 0.121 to 0.804 ± 0.064 (the base model: 0.939); 1.7 and 2.4 SE, not
#   shown with four seeds. Section 4.3 shows the mechanism on one response.
# * **Cost.** Scoring every clause took 1,119 reward-model queries per run against 352 for one per
#   response (3.2 times); the span category doubles it again (2,270).

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### 4.3 Where each reward lands, on a trained policy
#
# The seed-0 policy trained on sentiment per clause alone, scored by the two-category reward, on
# the evaluation response with the most clauses: the sentiment of each clause on its last token,
# the repetition penalty of each 4-token span on its last token, and the KL term on every token
# (nonzero now that the policy has moved).

# %% slideshow={"slide_type": "subslide"}
policy, reference = trained["per clause"]
demo = make_rollout(policy, reference, scalar_head_from_lm(policy0), tokenizer, eval_prompts[:32], base_cfg,
                    torch.Generator().manual_seed(3))
demo_out = reward_fns["per clause + repetition"](demo.rollout)
n_clauses = [sum(any(c.isalpha() for c in seg.text) for seg in segs) for segs in demo_out.segments["sentiment per clause"]]
i = max(range(32), key=lambda b: n_clauses[b])
toks = response_token_strings(tokenizer, demo.rollout.response_ids, demo.response_mask)[i]
n = len(toks)
rows = {k: v[i, :n] for k, v in demo_out.per_category.items()}
rows["-beta KL"] = -base_cfg.beta * rewards.sampled_token_kl(demo.logprobs, demo.ref_logprobs)[i, :n]
rows["total r_t"] = sum(rows.values())
M = torch.stack(list(rows.values())).numpy()
fig, ax = plt.subplots(figsize=(max(8, 0.6 * n), 3.4))
lim = np.abs(M).max()
im = ax.imshow(M, cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
ax.set_yticks(range(len(rows)), list(rows))
ax.set_xticks(range(n), [repr(t)[1:-1] for t in toks], rotation=60, fontsize=9)
for r in range(M.shape[0]):
    for c in range(n):
        if abs(M[r, c]) > 0.005:
            ax.text(c, r, f"{M[r, c]:+.2f}", ha="center", va="center", fontsize=7)
ax.set(title=f"r_t per token: the per-clause policy (seed 0) under both categories; prompt {eval_prompts[i]!r}",
       xlabel="response token")
fig.colorbar(im, ax=ax, fraction=0.02)
ax.grid(False)
plt.show()
print(f"response: {demo.texts[i]!r}; {n_clauses[i]} clauses with words, "
      f"{len(demo_out.segments['repetition per span'][i])} spans")

# %% [markdown] slideshow={"slide_type": "-"}
# The exploit, token by token: the per-clause policy answers "good good. good. good. ...", and each
# period closes a clause that earns its sentiment (+0.44 for a lone "good."). The repetition
# category, which this policy never trained on, charges −1.00 to each 4-token span that only
# repeats earlier bigrams. The KL row is negative on almost every token: the policy now puts far
# more probability on "good" and "." than the reference does. This is the trade the category-weight
# study makes: with $w = 1$ on repetition, the loop stops paying.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. What the logged metrics mean
#
# The history keys are those of notebook 07 (see its table). Here the key ones are:
#
# * `reward`: the summed task score per response, $\sum_t \sum_k \sum_j \mathbb{1}(t=T^k_j) w_k R_k$,
#   equal for the per-response and per-clause runs by construction; the repetition run adds its penalties;
# * `gold`: the gold judge of the whole response, the comparable measure;
# * `heldout_lm_loss`: NLL on held-out plot summaries (logged at the start, middle and end; not plotted here);
# * `rm_queries`: cumulative segments scored, summed over categories (one query per segment).

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. Checks

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
# verdicts over seeds: an effect is shown when it exceeds 3 SE
def verdict(claim, a, b):
    d, se, shown = effect_verdict(a, b)
    print(f"{claim} (> 3 SE over seeds):", shown and d > 0)


q = {n: H[n]["rm_queries"][:, -1] for n in RUNS}
print("per-response run: one reward-model query per response:",
      bool((q["per response"] == base_cfg.iterations * base_cfg.batch_size).all()))
print("per-clause run costs more queries than the per-response run:", bool((q["per clause"] > q["per response"]).all()))
verdict("final answers: per clause longer than per response (words)", F["per clause"]["words"], F["per response"]["words"])
late = {n: H[n]["gold"][:, -3:].mean(1) for n in RUNS}  # rollout gold, last 3 iterations
verdict("rollout gold, last 3 iterations: per clause above per response", late["per clause"], late["per response"])
verdict("final gold: per clause above per response", F["per clause"]["gold"], F["per response"]["gold"])
verdict("final gold: per response above per clause", F["per response"]["gold"], F["per clause"]["gold"])
verdict("repetition weight 1 lowers the repeated-bigram share", F["per clause"]["repeats"], F["per clause + repetition"]["repeats"])
verdict("repetition weight 1 raises distinct-2", F["per clause + repetition"]["distinct_2"], F["per clause"]["distinct_2"])
verdict("repetition weight 1 raises the final gold", F["per clause + repetition"]["gold"], F["per clause"]["gold"])

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
# the fine-grained placement on a hand-made response: each sentence's score on its last token
toks = [" a", " dull", " mess", ".", " great", " cast", "!"]
cats = [RewardCategory("negativity", 1.0, sentence_segments, sentence_sentiment)]
out = rewards.fine_grained_scores(cats, ["p"], [toks], R=8)
print("sentence ends:", [s.end for s in sentence_segments(toks)])
print("r_t:", [round(v, 3) for v in out.token_scores[0].tolist()])


# %% [markdown] slideshow={"slide_type": "slide"}
# ## 7. References
#
# * Lecture 6 (PKU, 2023), "Fine-Grained Reward Model": the holistic and fine-grained per-token
#   rewards, Fig. 13–14, Results 1–2.
# * Wu et al. 2023, *Fine-grained human feedback gives better rewards for language model training*.
# * The Regularization chapter (RLHF book): the per-token KL penalty (eqs. 2, 4).
# * Hutto and Gilbert 2014: VADER.

# %% slideshow={"slide_type": "skip"}
print(f"notebook compute time: {time.perf_counter() - T0:.0f} s")
