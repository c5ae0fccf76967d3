"""f-DPG: alignment as approximating a target distribution with an f-divergence.

Source: Lecture 6, section "Unified preference optimization framework" (after Go et al. 2023,
"Aligning language models with preferences through f-divergence minimization"). The lecture's
slides are unnumbered, so equations are cited by name and by the figures around them; the
target equations keep the paper's numbers, which the lecture quotes ("Eq. 1 or Eq. 4").

Notation (as in the notebook):

* ``a`` the base LM, ``π_θ`` the policy being trained, ``x`` a sequence (a response);
* ``P(x) >= 0`` an unnormalised target, ``Z = Σ_x P(x)``, ``p(x) = P(x) / Z``;
* ``t(x) = π_θ(x) / p(x)``, and ``log_t = log π_θ(x) - log p(x)`` (:func:`log_t`).

Targets (log P, all shape (B,)):

* RLKL (Go et al. eq. 3):           log P = log a + r / β;
* GDC binary (Go et al. eq. 1):     log P = log a + log b,  b ∈ {0, 1};
* GDC distributional (eq. 4):       log P = log a + Σ_i λ_i φ_i, λ fitted to moment targets.

The f-DPG gradient (Lecture 6, "f-divergences" and "Recovering some existing methods"):

    ∇_θ D_f(π_θ || p) = E_{x~π_θ}[ f'(π_θ(x)/p(x)) ∇_θ log π_θ(x) ],      D_f(π||p) = E_p f(π/p),

so the *pseudo-reward* is R(x) = -f'(π_θ(x)/p(x)) (the lecture's table, Fig. 15, and Fig. 17), and
f-DPG is REINFORCE on R with a baseline. The f-generators (and their numerics in log space) come
from :mod:`rlhf_edu.divergences`; the exact toy world from :mod:`rlhf_edu.exact_world`.

Shapes: B samples, K features, N sequences of an enumerated space, L sequence length, V vocab.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np
import torch
from tqdm.auto import tqdm

from ._checks import check_instance, check_int, check_positive
from .config import one_thread
from .divergences import F_DIVERGENCES, FDivergence, f_divergence, get_f_divergence
from .exact_world import ExactWorld, TabularPolicy, enumerate_sequences, kl_from_logs, make_exact_world  # noqa: F401
from .generation import sample
from .logprobs import response_logprobs, sequence_logprob
from .rewards import sentiment_reward

DIVERGENCE_NAMES = tuple(F_DIVERGENCES)


# ----------------------------------------------------------------------------------------------
# targets


def rlkl_log_target(log_a: torch.Tensor, reward: torch.Tensor, beta: float) -> torch.Tensor:
    """Unnormalised log-target of RL with a KL penalty (Go et al. eq. 3; Lecture 6).

    log P(x) = log a(x) + r(x)/β, so p ∝ a·exp(r/β) maximises E_π r - β KL(π||a).
    log_a: (B,) base log-probs; reward: (B,); beta > 0. Returns (B,).
    """
    return log_a + reward / beta  # (B,) log P = log a + r/β


def gdc_binary_log_target(log_a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Unnormalised log-target of GDC with a binary constraint (Go et al. eq. 1; Lecture 6).

    log P(x) = log a(x) + log b(x): -inf where b(x) = 0. log_a: (B,); b: (B,) with values in
    {0, 1} (bool or numeric). Returns (B,).
    """
    return log_a + torch.log(b.to(log_a.dtype))  # (B,) log P = log a + log b


def gdc_distributional_log_target(log_a: torch.Tensor, features: torch.Tensor,
                                  lambdas: torch.Tensor) -> torch.Tensor:
    """Unnormalised log-target of GDC with distributional constraints (Go et al. eq. 4).

    log P(x) = log a(x) + Σ_i λ_i φ_i(x). log_a: (B,); features φ: (B, K); lambdas λ: (K,).
    Returns (B,). Fit λ with :func:`fit_gdc_lambdas`.
    """
    lambdas = torch.as_tensor(lambdas, dtype=log_a.dtype)
    return log_a + features.to(log_a.dtype) @ lambdas  # (B,) log P = log a + λ·φ


def moments(features: torch.Tensor, log_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Self-normalised weighted mean of features (K,). features: (N, K); log_weights: (N,) or None."""
    features = torch.as_tensor(features, dtype=torch.float64)
    if log_weights is None:
        return features.mean(0)
    w = torch.softmax(torch.as_tensor(log_weights, dtype=torch.float64), 0)  # (N,)
    return w @ features  # (K,)


def fit_gdc_lambdas(features: torch.Tensor, target_moments, log_weights: torch.Tensor | None = None,
                    tol: float = 1e-6) -> torch.Tensor:
    """Fit λ so that p_λ(x) ∝ w(x) exp(λ·φ(x)) has E_p[φ] = μ̄ (moment matching for GDC, eq. 4).

    The weights w are ``exp(log_weights)``: pass log a(x) over an enumerated space for the exact
    fit, or nothing for samples x ~ a (each then weighs 1/N). The fit minimises the convex dual
    log Σ_x w(x) e^{λ·φ(x)} - λ·μ̄ with scipy's L-BFGS-B; its gradient is E_λ[φ] - μ̄.
    features: (N, K); target_moments μ̄: (K,). Returns λ (K,) float64.
    """
    from scipy.optimize import minimize

    phi = np.asarray(torch.as_tensor(features, dtype=torch.float64))
    mu = np.asarray(target_moments, dtype=np.float64).reshape(-1)
    lw = np.zeros(len(phi)) if log_weights is None else np.asarray(
        torch.as_tensor(log_weights, dtype=torch.float64))
    lo, hi = phi[np.isfinite(lw)].min(0), phi[np.isfinite(lw)].max(0)
    if ((mu <= lo) | (mu >= hi)).any():
        raise ValueError(f"target_moments: expected each strictly between the feature's min {lo} "
                         f"and max {hi}, got {mu}; such moments cannot be matched by finite λ")

    def dual(lam):
        s = lw + phi @ lam  # (N,)
        m = s.max()
        w = np.exp(s - m)
        return m + np.log(w.sum()) - lam @ mu, (w / w.sum()) @ phi - mu

    res = minimize(dual, np.zeros(phi.shape[1]), jac=True, method="L-BFGS-B",
                   options=dict(gtol=tol * 1e-2, ftol=1e-15, maxiter=1000))
    lam = torch.tensor(res.x)
    err = (moments(torch.tensor(phi), torch.tensor(lw) + torch.tensor(phi) @ lam).numpy() - mu)
    if np.abs(err).max() > tol * 10:
        raise ValueError(f"target_moments: moment matching did not converge (error {err})")
    return lam


# ----------------------------------------------------------------------------------------------
# the partition function


def exact_log_partition(log_P: torch.Tensor) -> torch.Tensor:
    """log Z = log Σ_x P(x) over an enumerated space. log_P: (N,). -inf when every P(x) = 0."""
    return torch.logsumexp(log_P, 0)  # log Z


def normalise_log_target(log_P: torch.Tensor) -> torch.Tensor:
    """log p(x) = log P(x) - log Z over an enumerated space. log_P: (N,). Returns (N,)."""
    return log_P - exact_log_partition(log_P)  # (N,) log p = log P - log Z


def estimate_log_z(log_P: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """Importance-sampling estimate of log Z from samples x_k ~ q (Lecture 6, f-DPG).

    Z = E_{x~q}[P(x)/q(x)] ≈ (1/K) Σ_k P(x_k)/q(x_k). log_P, log_q: (K,). Returns log Ẑ (scalar),
    -inf when no sample has P(x) > 0 (:class:`RunningLogZ` raises then).
    """
    log_w = log_P - log_q  # (K,) log importance weights
    return torch.logsumexp(log_w, 0) - math.log(log_w.shape[0])  # log (1/K Σ P/q)


class RunningLogZ:
    """A running importance-sampling estimate of log Z over every sample seen so far.

    Each batch from the current policy gives an unbiased estimate of Z; their pooled mean is the
    running estimate f-DPG uses to turn P into p. ``update(log_P (K,), log_q (K,))`` returns the
    new log Ẑ; reading ``log_z`` before any P(x) > 0 was seen raises ``ValueError``.
    """

    def __init__(self):
        self.log_sum = -math.inf
        self.count = 0

    def update(self, log_P: torch.Tensor, log_q: torch.Tensor) -> float:
        log_w = (log_P - log_q).detach().double()  # (K,)
        self.log_sum = float(torch.logaddexp(torch.tensor(self.log_sum, dtype=torch.float64),
                                             torch.logsumexp(log_w, 0)))
        self.count += log_w.shape[0]
        return self.log_z

    @property
    def log_z(self) -> float:
        if self.count == 0 or self.log_sum == -math.inf:
            raise ValueError(f"log_P: none of the {self.count} samples seen so far has P(x) > 0 "
                             "(no sample satisfies the constraint), so Z is estimated as 0")
        return self.log_sum - math.log(self.count)


# ----------------------------------------------------------------------------------------------
# pseudo-rewards, the loss, divergence estimates


def log_t(log_pi: torch.Tensor, log_P: torch.Tensor, log_z) -> torch.Tensor:
    """log t = log π(x) - log p(x) = log π(x) - log P(x) + log Z. All (B,) (log_z scalar)."""
    return log_pi - log_P + log_z  # (B,) +inf where P(x) = 0




def pseudo_reward(log_t: torch.Tensor, divergence: str | FDivergence,
                  max_log_ratio: float | None = None) -> torch.Tensor:
    """The f-DPG pseudo-reward R(x) = -f'(π_θ(x)/p(x)) (Lecture 6, Fig. 15 table and Fig. 17).

    forward KL: p/π;  reverse KL: log(p/π) - 1;  TV: +1/2 if π < p, -1/2 if π > p;
    JS: log(1 + p/π) - log 2.
    log_t: (B,) log(π/p); +inf (p = 0) gives -f'(∞). ``max_log_ratio`` clips log(π/p) to
    [-m, m] first (needed for reverse KL when p has zeros, where -f'(∞) = -∞). Returns (B,).
    """
    div = get_f_divergence(divergence)
    if max_log_ratio is not None:
        log_t = log_t.clamp(-max_log_ratio, max_log_ratio)
    return -div.f_prime_at_log(log_t).to(log_t.dtype)  # (B,) R = -f'(π/p)


def leave_one_out_baseline(rewards: torch.Tensor) -> torch.Tensor:
    """b_i = mean of the other B-1 rewards: a baseline that keeps the estimator unbiased. (B,)->(B,)."""
    r = rewards.to(torch.promote_types(rewards.dtype, torch.float32))  # a float16 sum overflows early
    return ((r.sum() - r) / (rewards.shape[0] - 1)).to(rewards.dtype)  # (B,)


class FDPGLoss(NamedTuple):
    """Output of :func:`fdpg_loss`."""

    losses: torch.Tensor
    """(B,) per-example surrogate -(R - b) log π_θ(x); average it for a batch loss."""
    pseudo_reward: torch.Tensor
    """Scalar mean pseudo-reward R (detached)."""
    advantage_std: torch.Tensor
    """Scalar standard deviation of R - b (detached; 0 for B = 1)."""


def fdpg_loss(seq_logprob: torch.Tensor, pseudo_rewards: torch.Tensor,
              baseline: torch.Tensor | float = 0.0) -> FDPGLoss:
    """Per-example f-DPG surrogate loss whose mean's gradient estimates ∇_θ D_f(π_θ || p).

    ∇D_f(π_θ||p) = E_{x~π_θ}[f'(π_θ/p) ∇ log π_θ(x)] = -E[(R(x) - b) ∇ log π_θ(x)] (Lecture 6,
    f-DPG), since E[b ∇ log π_θ] = 0 for a baseline b that does not depend on x.
    seq_logprob: (B,) log π_θ(x) with grad; pseudo_rewards R: (B,) (detached here); baseline: scalar
    or (B,). Returns :class:`FDPGLoss`.
    """
    adv = (pseudo_rewards - baseline).detach()  # (B,) R - b
    losses = -adv * seq_logprob  # (B,) surrogate: grad = -(R - b) ∇ log π
    std = adv.std() if adv.numel() > 1 else adv.new_zeros(())
    return FDPGLoss(losses, pseudo_rewards.detach().mean(), std)


def estimate_f_divergence(log_t: torch.Tensor, divergence: str | FDivergence) -> torch.Tensor:
    """Importance-sampling estimate of D_f(π||p) = E_p f(π/p) from samples x ~ π.

    E_p f(t) = E_π[f(t)/t] with t = π/p; where p = 0 (t = ∞), f(t)/t → f'(∞), which is the f'(∞)
    π(p=0) term of the definition (Lecture 6, "f-divergences"). log_t: (B,). Returns a scalar.
    """
    return get_f_divergence(divergence).f_over_t_at_log(log_t).mean().to(log_t.dtype)  # E_π[f(t)/t]


def exact_f_divergence(log_pi: torch.Tensor, log_p: torch.Tensor,
                       divergence: str | FDivergence) -> torch.Tensor:
    """D_f(π||p) = Σ_{p>0} p f(π/p) + f'(∞) π(p = 0) over an enumerated space (Lecture 6,
    "f-divergences"), via :func:`rlhf_edu.divergences.f_divergence` (differentiable in log_pi).

    log_pi, log_p: (N,) normalised log-probabilities. Returns a scalar (+inf for reverse KL when π
    puts mass where p = 0, which is the true value).
    """
    return f_divergence(log_pi.exp(), log_p.exp(), divergence)  # E_p f(π/p) + f'(∞) π(p = 0)


def exact_fdpg_surrogate(log_pi: torch.Tensor, log_p: torch.Tensor, divergence: str | FDivergence,
                         max_log_ratio: float | None = None) -> torch.Tensor:
    """Scalar whose gradient is the exact f-DPG gradient Σ_x π(x) f'(π(x)/p(x)) ∇ log π(x).

    log_pi: (N,) log π_θ over an enumerated space, with grad; log_p: (N,). Returns a scalar.
    """
    R = pseudo_reward((log_pi - log_p).detach(), divergence, max_log_ratio)  # (N,)
    w = log_pi.detach().exp()  # (N,) π(x): the expectation is exact
    return -(w * R * log_pi).sum()


# ----------------------------------------------------------------------------------------------
# f-DPG in the exact world (rlhf_edu.exact_world)


def train_exact_fdpg(world: ExactWorld, log_P: torch.Tensor, divergence: str | FDivergence,
                     steps: int = 300, batch_size: int = 256, lr: float = 0.05, seed: int = 0,
                     max_log_ratio: float | None = 20.0, progress: bool = False):
    """Sampled f-DPG on a :class:`TabularPolicy` started at a, with a running Ẑ and a batch-mean
    baseline. log_P: (N,) an unnormalised target over ``world.sequences``.

    Returns (policy, history) with exact metrics per step: ``f_div`` D_f(π||p), ``kl_p_pi``
    KL(p||π), ``kl_pi_a`` KL(π||a), ``log_z_hat`` and ``log_z`` (true), ``satisfied`` π(b=1).
    """
    div = get_f_divergence(divergence)
    if log_P.shape != world.log_a.shape:
        raise ValueError(f"log_P: expected shape {tuple(world.log_a.shape)}, got {tuple(log_P.shape)}")
    check_int("steps", steps, 0), check_int("batch_size", batch_size, 1), check_positive("lr", lr)
    with one_thread():  # the tables are tiny: a second thread only adds synchronisation
        return _train_exact(world, log_P, div, steps, batch_size, lr, seed, max_log_ratio, progress)


def _train_exact(world, log_P, div, steps, batch_size, lr, seed, max_log_ratio, progress):
    log_p = normalise_log_target(log_P)  # (N,) exact p, for the metrics only
    policy = TabularPolicy(world.base.vocab_size, world.base.length, [t.detach() for t in world.base.tables])
    opt = torch.optim.Adam(policy.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    z = RunningLogZ()
    hist = {k: [] for k in ("step", "f_div", "kl_p_pi", "kl_pi_a", "log_z_hat", "log_z", "satisfied")}
    for step in tqdm(range(steps + 1), desc=f"exact f-DPG ({div.name})", disable=not progress):
        with torch.no_grad():
            lp_all = policy.log_prob_all()  # (N,)
            hist["step"].append(step)
            hist["f_div"].append(float(exact_f_divergence(lp_all, log_p, div)))
            hist["kl_p_pi"].append(kl_from_logs(log_p, lp_all))
            hist["kl_pi_a"].append(kl_from_logs(lp_all, world.log_a))
            hist["log_z"].append(float(exact_log_partition(log_P)))
            hist["satisfied"].append(float(lp_all.exp() @ world.constraint))
        if step == steps:
            break
        x = policy.sample(batch_size, g)  # (K, L)
        log_pi = policy.log_prob(x)  # (K,) with grad
        log_Px = log_P[policy.index(x)]  # (K,)
        log_z_hat = z.update(log_Px, log_pi.detach())
        hist["log_z_hat"].append(log_z_hat)
        R = pseudo_reward(log_t(log_pi.detach(), log_Px, log_z_hat), div, max_log_ratio)  # (K,)
        loss = fdpg_loss(log_pi, R, R.mean()).losses
        opt.zero_grad()
        loss.mean().backward()
        opt.step()
    hist["log_z_hat"].append(hist["log_z_hat"][-1] if hist["log_z_hat"] else float("nan"))
    return policy, hist


# ----------------------------------------------------------------------------------------------
# the tiny LM: tasks, config, training loop


POSITIVE_WORDS = (
    "good", "great", "best", "love", "fun", "funny", "beautiful", "lovely", "fascinating", "memorable",
    "interesting", "enjoyable", "wonderful", "brilliant", "charming", "delightful", "entertaining",
    "well", "moving", "smart", "sweet", "touching", "clever", "perfect", "fine", "nice",
)
"""The lexical constraint of notebook 05: about 10% of the tiny model's 12-token continuations
contain one of these words."""


@dataclass(frozen=True)
class GDCBinaryTask:
    """GDC binary lexical constraint: b(x) = 1 if the response contains one of ``words``."""

    words: tuple
    """Words (case-insensitive, whole words) that satisfy the constraint."""
    name: str = "lexical constraint"
    alignment_name: str = "constraint satisfaction rate"

    def __post_init__(self):
        if not self.words or not all(isinstance(w, str) and w.strip() for w in self.words):
            raise ValueError(f"words: expected a non-empty tuple of non-empty strings, got {self.words!r}")

    def satisfied(self, texts: list[str]) -> torch.Tensor:
        """b(x) for each text, (B,) float32 in {0, 1}."""
        pat = re.compile(r"\b(" + "|".join(re.escape(w.lower()) for w in self.words) + r")\b")
        return torch.tensor([1.0 if pat.search(t.lower()) else 0.0 for t in texts])

    def score(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(alignment (B,) = b, log factor (B,) = log b) so that log P = log a + log factor."""
        b = self.satisfied(texts)
        return b, torch.log(b)


@dataclass(frozen=True)
class RLKLTask:
    """RLKL with a reward function: log P = log a + r/β (default reward: VADER sentiment)."""

    beta: float = 0.1
    """KL coefficient β."""
    reward_fn: object = None
    """texts -> (B,) rewards; None means :func:`rlhf_edu.rewards.sentiment_reward` (VADER)."""
    name: str = "RLKL (VADER)"
    alignment_name: str = "mean VADER reward"

    def __post_init__(self):
        check_positive("beta", self.beta)
        if self.reward_fn is not None and not callable(self.reward_fn):
            raise ValueError(f"reward_fn: expected a callable texts -> (B,) rewards or None, got {self.reward_fn!r}")

    def score(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(alignment (B,) = r, log factor (B,) = r/β)."""
        r = (self.reward_fn or sentiment_reward)(texts).float()
        return r, r / self.beta


@dataclass
class FDPGConfig:
    """Settings of an f-DPG run on a language model. Presets: :meth:`tiny`, :meth:`gpt2`, :meth:`from_scale`."""

    iterations: int = 16
    """Policy updates (one batch of samples each)."""
    batch_size: int = 64
    """Prompts (one response each) per update."""
    lr: float = 4e-4
    """Adam learning rate."""
    max_new_tokens: int = 12
    """Response length R."""
    max_prompt_tokens: int = 16
    """Prompts are cut from the left to this many tokens."""
    max_log_ratio: float = 10.0
    """Clip log(π/p) to ±this before the pseudo-reward (reverse KL on GDC needs it)."""
    max_grad_norm: float | None = 1.0
    """Clip the gradient norm to this (None: no clipping); tames rare huge pseudo-rewards."""
    eval_samples: int = 128
    """Held-out prompts (one response each) used to evaluate a policy."""
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        for name in ("iterations", "batch_size", "max_new_tokens", "max_prompt_tokens", "eval_samples"):
            check_int(name, getattr(self, name))
        for name in ("lr", "max_log_ratio") + (("max_grad_norm",) if self.max_grad_norm is not None else ()):
            check_positive(name, getattr(self, name))

    @classmethod
    def tiny(cls, **overrides) -> "FDPGConfig":
        return cls(**overrides)

    @classmethod
    def gpt2(cls, **overrides) -> "FDPGConfig":
        return cls(**{**dict(iterations=60, batch_size=64, lr=2e-5, max_new_tokens=24, eval_samples=256), **overrides})

    @classmethod
    def from_scale(cls, scale, **overrides) -> "FDPGConfig":
        """The preset for ``scale`` (a :class:`rlhf_edu.config.Scale`), with ``scale.extra["fdpg"]`` overrides
        (``scale.n`` cuts the iterations in a plumbing test)."""
        cfg = cls.gpt2() if scale.name == "gpt2" else cls.tiny()
        cfg = replace(cfg, **{"max_prompt_tokens": scale.max_prompt_tokens, **scale.extra.get("fdpg", {}), **overrides})
        return replace(cfg, iterations=scale.n(cfg.iterations))



def _rollout_logprob(model, ro) -> torch.Tensor:
    """log model(y | prompt) (B,) summed over the response tokens of a Rollout."""
    lp = response_logprobs(model, ro.input_ids, ro.attention_mask, ro.prompt_length)  # (B, R)
    return sequence_logprob(lp, ro.response_mask, reduction="sum")  # (B,)




def train_fdpg(policy, base, tokenizer, prompts: list[str], task, divergence: str | FDivergence,
               config: FDPGConfig | None = None, seed: int = 0, progress: bool = True) -> dict:
    """Fine-tune ``policy`` (in place) towards p ∝ a·(task factor) with f-DPG.

    Each iteration: sample one response per prompt from π_θ (safe settings), score it under a
    (``base``), update the running Ẑ with weights P/π_θ, compute R = -f'(π_θ/p) and take an Adam
    step on the f-DPG loss with a batch-mean baseline. Z is one number pooled over prompts, so the
    target is the joint p(c, y) ∝ d(c) a(y|c) P(y|c)/a(y|c) over prompts c: an approximation of the
    per-prompt targets that keeps the loop short.

    Returns the metrics history (lists): ``alignment`` (b rate or mean reward), ``kl_pi_a``
    (mean log π_θ - log a over the batch), ``f_div`` (the IS estimate of D_f(π_θ||p)), ``log_z``,
    ``pseudo_reward`` and ``loss``.
    """
    div = get_f_divergence(divergence)
    config = FDPGConfig() if config is None else config
    if not callable(getattr(task, "score", None)):
        raise ValueError(f"task: expected a GDCBinaryTask, RLKLTask or object with .score(texts), got {task!r}")
    check_instance("config", config, FDPGConfig)
    prompts = list(prompts)
    if len(prompts) == 0:
        raise ValueError("prompts: expected at least one prompt")
    opt = torch.optim.Adam(policy.parameters(), lr=config.lr)
    g = torch.Generator().manual_seed(seed)
    z = RunningLogZ()
    hist = {k: [] for k in ("iteration", "alignment", "kl_pi_a", "f_div", "log_z", "pseudo_reward", "loss")}
    for it in tqdm(range(config.iterations), desc=f"f-DPG {div.name}", disable=not progress):
        idx = torch.randint(len(prompts), (config.batch_size,), generator=g)
        ro = sample(policy, tokenizer, [prompts[i] for i in idx.tolist()], config.max_new_tokens, generator=g,
                    max_prompt_tokens=config.max_prompt_tokens)
        with torch.no_grad():
            log_a = _rollout_logprob(base, ro)  # (B,) log a(y|c)
        log_pi = _rollout_logprob(policy, ro)  # (B,) log π_θ(y|c), with grad
        alignment, log_factor = task.score(ro.texts)  # (B,), (B,)
        log_P = log_a + log_factor.to(log_a.dtype)  # (B,) log P = log a + log b  (or + r/β)
        log_z = z.update(log_P, log_pi.detach())
        lt = log_t(log_pi.detach(), log_P, log_z)  # (B,) log π_θ/p
        R = pseudo_reward(lt, div, config.max_log_ratio)  # (B,) -f'(π_θ/p)
        out = fdpg_loss(log_pi, R, R.mean())
        opt.zero_grad()
        out.losses.mean().backward()
        if config.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(policy.parameters(), config.max_grad_norm)
        opt.step()
        hist["iteration"].append(it)
        hist["alignment"].append(float(alignment.mean()))
        hist["kl_pi_a"].append(float((log_pi.detach() - log_a).mean()))
        hist["f_div"].append(float(estimate_f_divergence(lt, div)))
        hist["log_z"].append(log_z)
        hist["pseudo_reward"].append(float(out.pseudo_reward))
        hist["loss"].append(float(out.losses.detach().mean()))
    return hist


def distinct_n(texts: list[str], n: int) -> float:
    """Distinct-n diversity: unique word n-grams / all word n-grams over ``texts`` (0 if none)."""
    grams = [tuple(w[i:i + n]) for w in (t.split() for t in texts) for i in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


@torch.no_grad()
def evaluate_fdpg(policy, base, tokenizer, prompts: list[str], task, config: FDPGConfig | None = None,
                  seed: int = 1234) -> dict:
    """Sample one response per prompt (safe settings) and report ``alignment`` (mean),
    ``kl_pi_a`` (mean sequence log π - log a), ``distinct_1``, ``distinct_2`` and ``texts``."""
    config = config or FDPGConfig()
    ro = sample(policy, tokenizer, list(prompts), config.max_new_tokens, seed=seed,
                max_prompt_tokens=config.max_prompt_tokens)
    kl = (_rollout_logprob(policy, ro) - _rollout_logprob(base, ro)).mean()
    alignment, _ = task.score(ro.texts)
    return dict(alignment=float(alignment.mean()), kl_pi_a=float(kl), distinct_1=distinct_n(ro.texts, 1),
                distinct_2=distinct_n(ro.texts, 2), texts=ro.texts, prompts=list(prompts))


