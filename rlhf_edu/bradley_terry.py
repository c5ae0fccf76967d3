"""The Bradley-Terry preference model and reward-model training.

Sources:
- Lecture 6 ("Reward model in RLHF"): the BT model
  p*(y1 > y2 | x) = exp r*(x, y1) / (exp r*(x, y1) + exp r*(x, y2)) = sigma(r*(x, y1) - r*(x, y2)),
  the reward-model negative log-likelihood L_R = -E log sigma(r(x, y_w) - r(x, y_l)), and the
  normalisation E_{x,y}[r(x, y)] = 0 of the trained rewards.
- The Regularization chapter, eq. (9): the Llama-2 margin loss
  L = -log sigma(r(y_c | x) - r(y_r | x) - m(y_c, y_r)).
- Reward centring (an auxiliary penalty coef * (r_w + r_l)^2 that pulls the rewards of every pair
  towards zero), the training-time counterpart of the lecture's post-hoc normalisation.

Shapes: B is the number of preference pairs. ``r_chosen`` and ``r_rejected`` are the rewards of
the preferred (w, "chosen") and dispreferred (l, "rejected") responses, each (B,).

Every loss is a pure function of reward tensors returning a :class:`PairLoss` NamedTuple: per-pair
losses (B,) and detached diagnostics; average the losses yourself.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ._checks import check_instance, check_int, check_nonnegative, check_positive
from .config import Scale, get_scale
from .config import gpt2 as gpt2_scale
from .data import tokenize_prompt_response



class PairLoss(NamedTuple):
    """Output of :func:`bt_loss` and :func:`margin_loss`: per-pair losses and detached diagnostics, all (B,)."""

    losses: torch.Tensor
    """(B,) the per-pair loss (differentiable); average it for a batch loss."""
    margin: torch.Tensor
    """(B,) r_w - r_l."""
    prob_chosen: torch.Tensor
    """(B,) BT probability of the observed label, sigma(r_w - r_l)."""
    correct: torch.Tensor
    """(B,) 1 if r_w > r_l, 0.5 at a tie, else 0."""
    reward_chosen: torch.Tensor
    """(B,) r_w."""
    reward_rejected: torch.Tensor
    """(B,) r_l."""
    target_margin: torch.Tensor | None = None
    """(B,) the margin m of :func:`margin_loss` (None for :func:`bt_loss`)."""

    @property
    def diagnostics(self) -> dict:
        """The detached diagnostics as a dict (the pre-0.1 second return value)."""
        return {k: v for k, v in self._asdict().items() if k != "losses" and v is not None}


def _pair_loss(losses, r_chosen, r_rejected, target_margin=None) -> PairLoss:
    d = (r_chosen - r_rejected).detach()  # (B,) r_w - r_l
    return PairLoss(losses, d, torch.sigmoid(d), (d > 0).float() + 0.5 * (d == 0).float(),
                    r_chosen.detach(), r_rejected.detach(), target_margin)


# ----------------------------------------------------------------------------------------------
# The BT model and the reward-model losses
# ----------------------------------------------------------------------------------------------
def preference_probability(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
    """BT probability that the first response is preferred (Lecture 6, the BT model).

    p(y_w > y_l | x) = exp r_w / (exp r_w + exp r_l) = sigma(r_w - r_l).

    r_chosen, r_rejected: (B,) rewards. Returns (B,) probabilities in (0, 1). Adding the same
    constant to both rewards leaves it unchanged (shift invariance).
    """
    return torch.sigmoid(r_chosen - r_rejected)  # (B,) sigma(r_w - r_l)


def bt_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> PairLoss:
    """The reward-model negative log-likelihood (Lecture 6, RM loss L_R).

    loss_i = -log sigma(r_w,i - r_l,i), computed with ``logsigmoid`` so that large negative
    margins do not underflow. It equals ln 2 when the rewards tie (an untrained reward model).

    r_chosen, r_rejected: (B,) rewards of the chosen and rejected responses.
    Returns :class:`PairLoss`: ``losses`` (B,) and the detached ``margin``, ``prob_chosen``,
    ``correct`` (1 if r_w > r_l, 0.5 at a tie), ``reward_chosen`` and ``reward_rejected``, each (B,).
    """
    losses = -F.logsigmoid(r_chosen - r_rejected)  # (B,) L_R = -log sigma(r_w - r_l)
    return _pair_loss(losses, r_chosen, r_rejected)


def margin_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor, margin: torch.Tensor | float) -> PairLoss:
    """The Llama-2 margin loss (the Regularization chapter, eq. 9).

    loss_i = -log sigma(r_w,i - r_l,i - m_i). The pair must be won by at least the margin m_i
    before the loss gets small, so pairs with a large rating gap are pushed further apart. With
    m = 0 it is exactly :func:`bt_loss`.

    r_chosen, r_rejected: (B,) rewards. margin: a float or a (B,) tensor of margins m(y_c, y_r).
    Returns :class:`PairLoss` as :func:`bt_loss`, with ``target_margin`` (B,).
    """
    m = torch.as_tensor(margin, dtype=r_chosen.dtype, device=r_chosen.device).expand_as(r_chosen)  # (B,)
    losses = -F.logsigmoid(r_chosen - r_rejected - m)  # (B,) eq. 9: -log sigma(r_c - r_r - m)
    return _pair_loss(losses, r_chosen, r_rejected, m.detach())


class CentringPenalty(NamedTuple):
    """Output of :func:`centring_penalty`."""

    losses: torch.Tensor
    """(B,) coef * (r_w + r_l)^2 (differentiable); average it for a batch penalty."""
    reward_sum: torch.Tensor
    """(B,) r_w + r_l (detached): how far each pair's reward level sits from zero."""


def centring_penalty(r_chosen: torch.Tensor, r_rejected: torch.Tensor, coef: float) -> CentringPenalty:
    """Reward-centring penalty, per pair: coef * (r_w + r_l)^2.

    The BT likelihood only sees differences r_w - r_l, so the overall level of the rewards is free
    and can drift during training. This penalty pins it near zero; its mean over the batch is the
    usual coef * mean((r_w + r_l)^2). It is the training-time version of Lecture 6's
    normalisation E[r(x, y)] = 0 (see :func:`normalise_rewards` for the post-hoc version).

    r_chosen, r_rejected: (B,). coef: >= 0. Returns :class:`CentringPenalty` (``losses`` (B,)).
    """
    half = r_chosen.dtype in (torch.float16, torch.bfloat16)  # the square overflows float16 at |r| ~ 256
    s = r_chosen.float() + r_rejected.float() if half else r_chosen + r_rejected  # (B,) r_w + r_l
    losses = coef * s**2  # (B,) coef * (r_w + r_l)^2
    return CentringPenalty(losses.to(r_chosen.dtype), s.detach().to(r_chosen.dtype))


def normalise_rewards(rewards: torch.Tensor, offset: torch.Tensor | float | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Shift rewards to zero mean over a prompt set (Lecture 6: E_{x,y}[r(x, y)] = 0).

    rewards: (B,) rewards of responses to a reference set of prompts. offset: the shift to
    subtract; by default the mean of ``rewards``. Compute the offset once on a reference set and
    pass it when scoring new responses, so that every later reward is on the same scale.
    Returns ``(rewards - offset (B,), offset (scalar tensor))``. BT probabilities are unchanged.
    """
    off = rewards.mean() if offset is None else torch.as_tensor(offset, dtype=rewards.dtype)
    return rewards - off, off.detach()  # (B,) r - E[r]


# ----------------------------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------------------------
def pairwise_accuracy(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> float:
    """Fraction of pairs ranked right, r_w > r_l (ties count one half). r_chosen, r_rejected: (B,)."""
    d = (r_chosen - r_rejected).detach()  # (B,)
    return float(((d > 0).float() + 0.5 * (d == 0).float()).mean())


def calibration(p_pred, outcomes, n_bins: int = 10) -> dict[str, np.ndarray | float]:
    """Binned reliability table: predicted probability against observed frequency.

    p_pred: (B,) predicted probabilities that an event happens (here: that the first response of a
    pair is preferred). outcomes: (B,) 0/1, whether it happened. The interval [0, 1] is split
    into ``n_bins`` equal bins. Returns a dict of arrays over the non-empty bins:
    ``mean_pred`` (average prediction in the bin), ``observed`` (frequency of the event),
    ``count``, ``bin_lo``, ``bin_hi``; and ``ece``, the count-weighted mean |observed - mean_pred|
    (expected calibration error). A calibrated model has observed == mean_pred.
    """
    p = np.asarray(torch.as_tensor(p_pred).detach().cpu(), dtype=np.float64).reshape(-1)
    y = np.asarray(torch.as_tensor(outcomes).detach().cpu(), dtype=np.float64).reshape(-1)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, n_bins - 1)  # (B,) bin of each prediction
    count = np.bincount(idx, minlength=n_bins)
    keep = count > 0
    mean_pred = np.bincount(idx, weights=p, minlength=n_bins)[keep] / count[keep]
    observed = np.bincount(idx, weights=y, minlength=n_bins)[keep] / count[keep]
    ece = float(np.sum(count[keep] * np.abs(observed - mean_pred)) / p.size)
    return {"mean_pred": mean_pred, "observed": observed, "count": count[keep],
            "bin_lo": edges[:-1][keep], "bin_hi": edges[1:][keep], "ece": ece}


def pair_calibration(r_chosen: torch.Tensor, r_rejected: torch.Tensor, n_bins: int = 10) -> dict:
    """:func:`calibration` of a reward model on labelled pairs, in both orders.

    Every held-out pair's label is "chosen wins", so each pair is entered twice: as (chosen,
    rejected) with prediction sigma(r_w - r_l) and outcome 1, and as (rejected, chosen) with
    prediction sigma(r_l - r_w) and outcome 0. The table is then symmetric about 0.5.
    r_chosen, r_rejected: (B,).
    """
    p = preference_probability(r_chosen.detach().double(), r_rejected.detach().double())  # (B,)
    p_both = torch.cat([p, 1 - p])  # (2B,)
    y_both = torch.cat([torch.ones_like(p), torch.zeros_like(p)])  # (2B,)
    return calibration(p_both, y_both, n_bins)


# ----------------------------------------------------------------------------------------------
# Synthetic warm-up: maximum-likelihood BT scores from sampled comparisons
# ----------------------------------------------------------------------------------------------
def sample_bt_comparisons(r_star, n_comparisons: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Comparisons drawn from the BT model with latent rewards ``r_star`` (K items).

    Each comparison picks two distinct items uniformly; the first wins with probability
    sigma(r*_a - r*_b). Returns ``(winners, losers)``, each (N,) int arrays of item indices.
    """
    r = np.asarray(r_star, dtype=np.float64)
    rng = np.random.default_rng(seed)
    a = rng.integers(0, r.size, n_comparisons)
    b = (a + rng.integers(1, r.size, n_comparisons)) % r.size  # a different item
    p_a = 1.0 / (1.0 + np.exp(-(r[a] - r[b])))  # (N,) sigma(r_a - r_b)
    a_wins = rng.random(n_comparisons) < p_a
    return np.where(a_wins, a, b), np.where(a_wins, b, a)


def fit_bt_mle(n_items: int, winners, losers, l2: float = 1e-3) -> np.ndarray:
    """Maximum-likelihood BT rewards from comparisons (scipy L-BFGS with the analytic gradient).

    Minimises sum_n -log sigma(r[winners_n] - r[losers_n]) + (l2 / 2) ||r||^2 over r (K,).
    The likelihood only sees differences, so r is identified only up to a constant; the tiny
    ridge ``l2`` picks the zero-mean solution and keeps it finite when an item never wins or
    never loses (set ``l2=0`` for the plain MLE, which is then centred after fitting).

    winners, losers: (N,) integer item indices in [0, n_items). Returns (K,) float64, mean zero.
    """
    from scipy.optimize import minimize

    w = np.asarray(winners)
    lo = np.asarray(losers)

    def nll_and_grad(r: np.ndarray) -> tuple[float, np.ndarray]:
        d = r[w] - r[lo]  # (N,) r_w - r_l
        nll = np.sum(np.logaddexp(0.0, -d)) + 0.5 * l2 * r @ r  # -log sigma(d) = log(1 + e^-d)
        g_d = -1.0 / (1.0 + np.exp(d))  # (N,) d/dd of -log sigma(d) = -sigma(-d)
        grad = np.bincount(w, g_d, n_items) - np.bincount(lo, g_d, n_items) + l2 * r
        return float(nll), grad

    res = minimize(nll_and_grad, np.zeros(n_items), jac=True, method="L-BFGS-B",
                   options={"maxiter": 10_000, "gtol": 1e-10, "ftol": 1e-15})
    return res.x - res.x.mean()


# ----------------------------------------------------------------------------------------------
# Reward model: configuration, scoring and training
# ----------------------------------------------------------------------------------------------
@dataclass
class RewardModelConfig:
    """Hyper-parameters of :func:`train_reward_model`."""

    lr: float = 1e-4
    """AdamW learning rate (backbone and head)."""
    head_lr: float = 1e-3
    """Learning rate of the freshly initialised scalar head (it starts from scratch)."""
    steps: int = 120
    """Optimizer steps."""
    batch_size: int = 16
    """Preference pairs per step."""
    max_len: int = 64
    """Prompt+response token cap per sequence."""
    max_prompt_tokens: int = 16
    """Prompt tokens kept (from the left)."""
    seed: int = 0
    """Seeds the order of the training pairs."""
    freeze_layers: int = 0
    """Number of lower transformer blocks (plus the embeddings) frozen; 0 trains everything."""
    centring_coef: float = 0.0
    """Weight of :func:`centring_penalty` (0 switches it off)."""
    margin_scale: float = 1.0
    """Margins passed to :func:`train_reward_model` are multiplied by this (eq. 9's m)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    grad_clip: float = 1.0
    """Gradient-norm clipping threshold."""
    eval_every: int = 20
    """Evaluate on the held-out pairs every this many steps (and at the start and the end)."""
    eval_batch_size: int = 64
    """Pairs per forward pass when scoring held-out pairs."""
    show_progress: bool = True
    """Show a tqdm progress bar."""

    def __post_init__(self):
        for name in ("lr", "head_lr", "grad_clip"):
            check_positive(name, getattr(self, name))
        for name in ("centring_coef", "weight_decay", "margin_scale"):
            check_nonnegative(name, getattr(self, name))
        for name in ("steps", "batch_size", "max_prompt_tokens", "eval_every", "eval_batch_size"):
            check_int(name, getattr(self, name), 1)
        check_int("max_len", self.max_len, 2)
        check_int("freeze_layers", self.freeze_layers, 0)

    @classmethod
    def tiny(cls, scale: Scale | None = None, **overrides) -> "RewardModelConfig":
        """CPU preset: sizes from the tiny :class:`~rlhf_edu.config.Scale` (about 30 s on 2 cores)."""
        return cls.from_scale(scale or get_scale("tiny", verbose=False), **overrides)

    @classmethod
    def gpt2(cls, scale: Scale | None = None, **overrides) -> "RewardModelConfig":
        """One-GPU preset: sizes from the gpt2 :class:`~rlhf_edu.config.Scale`, lr 2e-5."""
        return cls.from_scale(scale or gpt2_scale(), **{"lr": 2e-5, **overrides})

    @classmethod
    def from_scale(cls, scale: Scale, **overrides) -> "RewardModelConfig":
        """Sizes from ``scale`` (and ``scale.extra["reward_model"]``); lr 2e-5 at the gpt2 scale; ``scale.n``
        cuts the steps in a plumbing test."""
        lr = {"lr": 2e-5} if scale.name == "gpt2" else {}
        cfg = cls(**{"steps": scale.pref_steps, "batch_size": scale.pref_batch_size, "max_len": scale.max_pair_tokens,
                     "max_prompt_tokens": scale.max_prompt_tokens, **scale.extra.get("reward_model", {}), **lr,
                     **overrides})
        return replace(cfg, steps=scale.n(cfg.steps))


def _check_pairs(pairs, name: str) -> None:
    try:
        n = {k: len(pairs[k]) for k in ("prompt", "chosen", "rejected")}
    except (KeyError, TypeError, IndexError):
        raise ValueError(f"{name}: expected a Dataset or dict with columns prompt, chosen, rejected") from None
    if len(set(n.values())) != 1 or n["prompt"] == 0:
        raise ValueError(f"{name}: expected equally long, non-empty prompt/chosen/rejected, got {n}")


def _score_batch(reward_model, tokenizer, prompts: list[str], responses: list[str],
                 max_len: int, max_prompt_tokens: int) -> torch.Tensor:
    """Rewards (B,) of prompt+response texts, with gradients (one padded forward pass)."""
    batch = tokenize_prompt_response(tokenizer, prompts, responses, max_len=max_len,
                                     max_prompt_tokens=max_prompt_tokens)
    dev = next(reward_model.parameters()).device
    return reward_model.score(batch["input_ids"].to(dev), batch["attention_mask"].to(dev))  # (B,)


@torch.no_grad()
def score_texts(reward_model, tokenizer, prompts: list[str], responses: list[str],
                max_len: int = 64, batch_size: int = 64, max_prompt_tokens: int = 16) -> torch.Tensor:
    """Reward of each (prompt, response) pair: the scalar head at the last real token.

    prompts, responses: lists of B strings. Returns (B,) float32 on the CPU. The model is put in
    eval mode for scoring and restored to its previous mode afterwards.
    """
    was_training = reward_model.training
    reward_model.eval()
    out = [_score_batch(reward_model, tokenizer, list(prompts[i:i + batch_size]), list(responses[i:i + batch_size]),
                        max_len, max_prompt_tokens).float().cpu() for i in range(0, len(prompts), batch_size)]
    reward_model.train(was_training)
    return torch.cat(out)  # (B,)


def pair_rewards(reward_model, tokenizer, pairs: dict, config: RewardModelConfig
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Rewards (B,) of the chosen and rejected responses of a batch of pairs, with gradients.

    pairs: a dict with lists ``prompt``, ``chosen``, ``rejected`` (a Dataset slice). Chosen and
    rejected go through one forward pass of 2B sequences.
    """
    prompts = list(pairs["prompt"])
    r = _score_batch(reward_model, tokenizer, prompts + prompts,
                     list(pairs["chosen"]) + list(pairs["rejected"]),
                     config.max_len, config.max_prompt_tokens)  # (2B,)
    return r[: len(prompts)], r[len(prompts):]  # (B,), (B,)


def evaluate_reward_model(reward_model, tokenizer, pairs, config: RewardModelConfig) -> dict:
    """Held-out BT loss, pairwise accuracy and mean reward gap; also the rewards themselves.

    pairs: a Dataset (or dict of lists) with ``prompt``, ``chosen``, ``rejected``.
    Returns floats ``loss``, ``accuracy``, ``margin`` and tensors ``r_chosen``, ``r_rejected`` (B,).
    """
    kw = dict(max_len=config.max_len, batch_size=config.eval_batch_size,
              max_prompt_tokens=config.max_prompt_tokens)
    r_c = score_texts(reward_model, tokenizer, list(pairs["prompt"]), list(pairs["chosen"]), **kw)
    r_r = score_texts(reward_model, tokenizer, list(pairs["prompt"]), list(pairs["rejected"]), **kw)
    out = bt_loss(r_c, r_r)
    return {"loss": float(out.losses.mean()), "accuracy": pairwise_accuracy(r_c, r_r),
            "margin": float(out.margin.mean()), "r_chosen": r_c, "r_rejected": r_r}


def freeze_lower_layers(reward_model, n_layers: int) -> None:
    """Switch off gradients of the embeddings and the lowest ``n_layers`` transformer blocks."""
    backbone = reward_model.backbone
    for module in [backbone.wte, backbone.wpe, *backbone.h[:n_layers]] if n_layers else []:
        for p in module.parameters():
            p.requires_grad_(False)


def _optimizer(reward_model, config: RewardModelConfig) -> torch.optim.Optimizer:
    head = [p for p in reward_model.head.parameters() if p.requires_grad]
    body = [p for p in reward_model.backbone.parameters() if p.requires_grad]
    groups = [{"params": head, "lr": config.head_lr}]
    if body:
        groups.append({"params": body, "lr": config.lr})
    return torch.optim.AdamW(groups, weight_decay=config.weight_decay)


def _append(history: dict, **values) -> None:
    for k, v in values.items():
        history.setdefault(k, []).append(v)


def train_reward_model(reward_model, tokenizer, train_pairs, eval_pairs,
                       config: RewardModelConfig, margins=None) -> dict[str, list]:
    """Fit a reward model to preference pairs with the BT loss (or eq. 9's margin loss).

    reward_model: a :class:`~rlhf_edu.models.ScalarHeadModel` (trained in place).
    train_pairs, eval_pairs: Datasets from :func:`rlhf_edu.data.preference_pairs`.
    margins: optional (N,) margins, one per training pair (e.g. a rating difference); when given,
    each step uses :func:`margin_loss` with m = ``config.margin_scale`` * margin, otherwise
    :func:`bt_loss`. ``config.centring_coef`` > 0 adds :func:`centring_penalty`.

    Returns a history of lists: per step ``step``, ``loss`` (BT or margin loss), ``accuracy``
    and ``margin`` (mean r_w - r_l) on the training batch, ``reward_mean`` (mean of r_w and r_l);
    per evaluation ``eval_step``, ``eval_loss``, ``eval_accuracy``, ``eval_margin``.
    """
    check_instance("config", config, RewardModelConfig)
    _check_pairs(train_pairs, "train_pairs"), _check_pairs(eval_pairs, "eval_pairs")
    n = len(train_pairs)
    if margins is not None:
        margins = torch.as_tensor(np.asarray(margins, dtype=np.float32))  # (N,)
        if margins.shape != (n,):
            raise ValueError(f"margins: expected shape ({n},), got {tuple(margins.shape)}")
    freeze_lower_layers(reward_model, config.freeze_layers)
    reward_model.train()
    opt = _optimizer(reward_model, config)
    gen = torch.Generator().manual_seed(config.seed)
    n_epochs = -(-config.steps * config.batch_size // n)  # ceil: epochs needed, one permutation each
    order = torch.cat([torch.randperm(n, generator=gen) for _ in range(n_epochs)])  # (epochs * N,)
    history: dict[str, list] = {}

    def evaluate(step: int) -> None:
        ev = evaluate_reward_model(reward_model, tokenizer, eval_pairs, config)
        _append(history, eval_step=step, eval_loss=ev["loss"], eval_accuracy=ev["accuracy"],
                eval_margin=ev["margin"])

    evaluate(0)
    bar = tqdm(range(1, config.steps + 1), desc="reward model", disable=not config.show_progress)
    for step in bar:
        idx = order[(step - 1) * config.batch_size: step * config.batch_size]  # (B,)
        r_c, r_r = pair_rewards(reward_model, tokenizer, train_pairs[idx.tolist()], config)  # (B,), (B,)
        if margins is None:
            out = bt_loss(r_c, r_r)  # (B,)
        else:
            out = margin_loss(r_c, r_r, config.margin_scale * margins[idx].to(r_c))  # (B,)
        total = out.losses.mean()
        if config.centring_coef > 0:
            total = total + centring_penalty(r_c, r_r, config.centring_coef).losses.mean()
        opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_([p for p in reward_model.parameters() if p.requires_grad],
                                       config.grad_clip)
        opt.step()
        _append(history, step=step, loss=float(out.losses.detach().mean()), accuracy=float(out.correct.mean()),
                margin=float(out.margin.mean()), reward_mean=float(0.5 * (out.reward_chosen + out.reward_rejected).mean()))
        bar.set_postfix(loss=f"{history['loss'][-1]:.3f}")
        if step % config.eval_every == 0 or step == config.steps:
            evaluate(step)
    return history
