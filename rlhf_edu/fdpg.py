"""f-DPG: alignment as approximating a target distribution with an f-divergence.

Source: Lecture 6, section "Unified preference optimization framework" (after Go et al. 2023,
"Aligning language models with preferences through f-divergence minimization"). The lecture's
slides are unnumbered, so equations are cited by name and by the figures around them; the
target equations keep the paper's numbers, which the lecture quotes ("Eq. 1 or Eq. 4").

Notation (as in the notebook):

* ``a`` the base LM, ``π_θ`` the policy being trained, ``x`` a sequence (a response);
* ``P(x) >= 0`` an unnormalised target, ``Z = Σ_x P(x)``, ``p(x) = P(x) / Z``;
* ``t(x) = π_θ(x) / p(x)``, and ``log_ratio = log t = log π_θ(x) - log p(x)``.

Targets (log P, all shape (B,)):

* RLKL (Go et al. eq. 3):           log P = log a + r / β;
* GDC binary (Go et al. eq. 1):     log P = log a + log b,  b ∈ {0, 1};
* GDC distributional (eq. 4):       log P = log a + Σ_i λ_i φ_i, λ fitted to moment targets.

The f-DPG gradient (Lecture 6, "f-divergences" and "Recovering some existing methods"):

    ∇_θ D_f(π_θ || p) = E_{x~π_θ}[ f'(π_θ(x)/p(x)) ∇_θ log π_θ(x) ],      D_f(π||p) = E_p f(π/p),

so the *pseudo-reward* is R(x) = -f'(π_θ(x)/p(x)) (the lecture's table, Fig. 15, and Fig. 17), and
f-DPG is REINFORCE on R with a baseline. The f-generators come from :mod:`rlhf_edu.divergences`.

Shapes: B samples, K features, N sequences of an enumerated space, L sequence length, V vocab.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from .divergences import F_DIVERGENCES, FDivergence, f_divergence, get_f_divergence

DIVERGENCE_NAMES = tuple(F_DIVERGENCES)


# ----------------------------------------------------------------------------------------------
# divergences and checks


def resolve_divergence(divergence: str | FDivergence) -> FDivergence:
    """An :class:`FDivergence` from itself or from its name (``"forward_kl"``, ``"reverse_kl"``,
    ``"tv"``, ``"js"``). Unknown names raise ``ValueError``."""
    if isinstance(divergence, FDivergence):
        return divergence
    if not isinstance(divergence, str) or divergence not in F_DIVERGENCES:
        raise ValueError(f"divergence: expected an FDivergence or one of {DIVERGENCE_NAMES}, "
                         f"got {divergence!r}")
    return get_f_divergence(divergence)


def _check_1d(name: str, x: torch.Tensor, n: int | None = None) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 1:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name}: expected a 1-D tensor (B,), got {shape}")
    if n is not None and x.shape[0] != n:
        raise ValueError(f"{name}: expected length {n}, got {x.shape[0]}")
    if torch.isnan(x).any():
        raise ValueError(f"{name}: contains NaN")


def _f_prime(div: FDivergence, t: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(div.f_prime(t), dtype=t.dtype)


def _f(div: FDivergence, t: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(div.f(t), dtype=t.dtype)


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for float16/bfloat16 (e^x and sums overflow or round badly there), else ``dtype``."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


_LN2 = math.log(2.0)
# (f'(t), f(t)/t) of the registered generators written in x = log t, for the samples where
# t = e^x (or the generic formula) overflows although x is finite: e.g. a sequence log-ratio of
# 100 nats gives t = inf in float32, where JS's generic f'(t) = log(2t/(t+1)) is inf/inf = NaN.
_LOG_T_FORMS = {
    "forward_kl": (lambda x: -torch.exp(-x), lambda x: -x * torch.exp(-x)),
    "reverse_kl": (lambda x: x + 1.0, lambda x: x),
    "tv": (lambda x: 0.5 * torch.sign(x), lambda x: 0.5 * (-torch.expm1(-x)).abs()),
    "js": (lambda x: _LN2 - nn.functional.softplus(-x),
           lambda x: _LN2 - nn.functional.softplus(-x) + (_LN2 - nn.functional.softplus(x)) * torch.exp(-x)),
}


def _log_space_fix(div: FDivergence, which: int, generic: torch.Tensor, log_ratio: torch.Tensor,
                   finite: torch.Tensor) -> torch.Tensor:
    """``generic`` with its non-finite entries at finite log-ratios recomputed from x = log t.

    Only for the registered generators, and only where the generic value is inf or NaN, so every
    other value is unchanged bit for bit.
    """
    bad = finite & ~torch.isfinite(generic)
    if not bad.any() or div.name not in _LOG_T_FORMS or F_DIVERGENCES.get(div.name) is not div:
        return generic
    x = torch.where(bad, log_ratio, torch.zeros_like(log_ratio))
    return torch.where(bad, _LOG_T_FORMS[div.name][which](x), generic)


# ----------------------------------------------------------------------------------------------
# targets


def rlkl_log_target(log_a: torch.Tensor, reward: torch.Tensor, beta: float) -> torch.Tensor:
    """Unnormalised log-target of RL with a KL penalty (Go et al. eq. 3; Lecture 6).

    log P(x) = log a(x) + r(x)/β, so p ∝ a·exp(r/β) maximises E_π r - β KL(π||a).
    log_a: (B,) base log-probs; reward: (B,); beta > 0. Returns (B,).
    """
    _check_1d("log_a", log_a)
    _check_1d("reward", reward, log_a.shape[0])
    if not beta > 0:
        raise ValueError(f"beta: expected > 0, got {beta}")
    return log_a + reward / beta  # (B,) log P = log a + r/β


def gdc_binary_log_target(log_a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Unnormalised log-target of GDC with a binary constraint (Go et al. eq. 1; Lecture 6).

    log P(x) = log a(x) + log b(x): -inf where b(x) = 0. log_a: (B,); b: (B,) with values in
    {0, 1} (bool or numeric). Returns (B,).
    """
    _check_1d("log_a", log_a)
    _check_1d("b", b.float() if isinstance(b, torch.Tensor) else b, log_a.shape[0])
    bf = b.to(log_a.dtype)
    if not ((bf == 0) | (bf == 1)).all():
        raise ValueError("b: expected values in {0, 1}")
    return log_a + torch.log(bf)  # (B,) log P = log a + log b


def gdc_distributional_log_target(log_a: torch.Tensor, features: torch.Tensor,
                                  lambdas: torch.Tensor) -> torch.Tensor:
    """Unnormalised log-target of GDC with distributional constraints (Go et al. eq. 4).

    log P(x) = log a(x) + Σ_i λ_i φ_i(x). log_a: (B,); features φ: (B, K); lambdas λ: (K,).
    Returns (B,). Fit λ with :func:`fit_gdc_lambdas`.
    """
    _check_1d("log_a", log_a)
    if features.dim() != 2 or features.shape[0] != log_a.shape[0]:
        raise ValueError(f"features: expected (B, K) with B={log_a.shape[0]}, got {tuple(features.shape)}")
    lambdas = torch.as_tensor(lambdas, dtype=log_a.dtype)
    if lambdas.shape != (features.shape[1],):
        raise ValueError(f"lambdas: expected ({features.shape[1]},), got {tuple(lambdas.shape)}")
    return log_a + features.to(log_a.dtype) @ lambdas  # (B,) log P = log a + λ·φ


def moments(features: torch.Tensor, log_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Self-normalised weighted mean of features (K,). features: (N, K); log_weights: (N,) or None."""
    features = torch.as_tensor(features, dtype=torch.float64)
    if features.dim() != 2:
        raise ValueError(f"features: expected (N, K), got {tuple(features.shape)}")
    if log_weights is not None and tuple(torch.as_tensor(log_weights).shape) != (features.shape[0],):
        raise ValueError(f"log_weights: expected ({features.shape[0]},), got {tuple(torch.as_tensor(log_weights).shape)}")
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
    if phi.ndim != 2:
        raise ValueError(f"features: expected (N, K), got {phi.shape}")
    mu = np.asarray(target_moments, dtype=np.float64).reshape(-1)
    if mu.shape != (phi.shape[1],):
        raise ValueError(f"target_moments: expected ({phi.shape[1]},), got {mu.shape}")
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
    """log Z = log Σ_x P(x) over an enumerated space. log_P: (N,). Raises if Z = 0."""
    _check_1d("log_P", log_P)
    if torch.isneginf(log_P).all():
        raise ValueError("log_P: every sequence has P(x) = 0 (no x satisfies the constraint), "
                         "so Z = 0 and p is undefined")
    return torch.logsumexp(log_P, 0)  # log Z


def normalise_log_target(log_P: torch.Tensor) -> torch.Tensor:
    """log p(x) = log P(x) - log Z over an enumerated space. log_P: (N,). Returns (N,)."""
    return log_P - exact_log_partition(log_P)  # (N,) log p = log P - log Z


def estimate_log_z(log_P: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """Importance-sampling estimate of log Z from samples x_k ~ q (Lecture 6, f-DPG).

    Z = E_{x~q}[P(x)/q(x)] ≈ (1/K) Σ_k P(x_k)/q(x_k). log_P, log_q: (K,). Returns log Ẑ (scalar).
    Raises ``ValueError`` when every weight is 0 (no sample satisfies the constraint: Ẑ = 0).
    """
    _check_1d("log_P", log_P)
    _check_1d("log_q", log_q, log_P.shape[0])
    log_w = log_P - log_q  # (K,) log importance weights
    if torch.isneginf(log_w).all():
        raise ValueError(f"log_P: none of the {log_P.shape[0]} samples has P(x) > 0 (no sample "
                         "satisfies the constraint), so the estimate of Z is 0 and log p is "
                         "undefined; draw more samples or loosen the constraint")
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
        _check_1d("log_P", log_P)
        _check_1d("log_q", log_q, log_P.shape[0])
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


def log_ratio(log_pi: torch.Tensor, log_P: torch.Tensor, log_z) -> torch.Tensor:
    """log t = log π(x) - log p(x) = log π(x) - log P(x) + log Z. All (B,) (log_z scalar)."""
    _check_1d("log_pi", log_pi)
    _check_1d("log_P", log_P, log_pi.shape[0])
    if torch.as_tensor(log_z).numel() != 1:
        raise ValueError(f"log_z: expected a scalar, got shape {tuple(torch.as_tensor(log_z).shape)}")
    return log_pi - log_P + log_z  # (B,) +inf where P(x) = 0


def pseudo_reward(log_ratio: torch.Tensor, divergence: str | FDivergence,
                  max_log_ratio: float | None = None) -> torch.Tensor:
    """The f-DPG pseudo-reward R(x) = -f'(π_θ(x)/p(x)) (Lecture 6, Fig. 15 table and Fig. 17).

    forward KL: p/π;  reverse KL: log(p/π) - 1;  TV: +1/2 if π < p, -1/2 if π > p;
    JS: log(1 + p/π) - log 2.
    log_ratio: (B,) log(π/p); +inf (p = 0) gives -f'(∞). ``max_log_ratio`` clips log(π/p) to
    [-m, m] first (needed for reverse KL when p has zeros, where -f'(∞) = -∞). Returns (B,).
    """
    div = resolve_divergence(divergence)
    _check_1d("log_ratio", log_ratio)
    if torch.isneginf(log_ratio).any():
        raise ValueError("log_ratio: -inf means π(x) = 0 for a sample, which cannot be drawn from π")
    if max_log_ratio is not None:
        if not max_log_ratio > 0:
            raise ValueError(f"max_log_ratio: expected > 0, got {max_log_ratio}")
        log_ratio = log_ratio.clamp(-max_log_ratio, max_log_ratio)
    out_dtype, log_ratio = log_ratio.dtype, log_ratio.to(_acc_dtype(log_ratio.dtype))
    finite = torch.isfinite(log_ratio)  # (B,)
    t = torch.exp(torch.where(finite, log_ratio, torch.zeros_like(log_ratio)))  # (B,) π/p
    fp = torch.where(finite, _f_prime(div, t),
                     torch.full_like(t, float(div.f_prime_inf)))  # (B,) f'(π/p), f'(∞) at p = 0
    fp = _log_space_fix(div, 0, fp, log_ratio, finite)
    return (-fp).to(out_dtype)  # (B,) R = -f'(π/p)


def leave_one_out_baseline(rewards: torch.Tensor) -> torch.Tensor:
    """b_i = mean of the other B-1 rewards: a baseline that keeps the estimator unbiased. (B,)->(B,)."""
    _check_1d("rewards", rewards)
    if rewards.shape[0] < 2:
        raise ValueError("rewards: a leave-one-out baseline needs B >= 2")
    r = rewards.to(_acc_dtype(rewards.dtype))  # a float16 sum overflows long before the mean does
    return ((r.sum() - r) / (rewards.shape[0] - 1)).to(rewards.dtype)  # (B,)


def fdpg_loss(seq_logprob: torch.Tensor, pseudo_rewards: torch.Tensor,
              baseline: torch.Tensor | float = 0.0) -> tuple[torch.Tensor, dict]:
    """Per-example f-DPG surrogate loss whose mean's gradient estimates ∇_θ D_f(π_θ || p).

    ∇D_f(π_θ||p) = E_{x~π_θ}[f'(π_θ/p) ∇ log π_θ(x)] = -E[(R(x) - b) ∇ log π_θ(x)] (Lecture 6,
    f-DPG), since E[b ∇ log π_θ] = 0 for a baseline b that does not depend on x.
    seq_logprob: (B,) log π_θ(x) with grad; pseudo_rewards R: (B,) (detached here); baseline: scalar
    or (B,). Returns (loss (B,), diagnostics dict of detached floats).
    """
    _check_1d("seq_logprob", seq_logprob)
    _check_1d("pseudo_rewards", pseudo_rewards, seq_logprob.shape[0])
    if not torch.isfinite(pseudo_rewards).all():
        raise ValueError("pseudo_rewards: expected finite values (clip log(π/p) with "
                         "max_log_ratio when p has zeros and f'(∞) is infinite)")
    if isinstance(baseline, torch.Tensor) and baseline.numel() != 1 and baseline.shape != pseudo_rewards.shape:
        raise ValueError(f"baseline: expected a scalar or shape {tuple(pseudo_rewards.shape)}, got {tuple(baseline.shape)}")
    adv = (pseudo_rewards - baseline).detach()  # (B,) R - b
    loss = -adv * seq_logprob  # (B,) surrogate: grad = -(R - b) ∇ log π
    diag = dict(pseudo_reward=float(pseudo_rewards.mean()), advantage_std=float(adv.std()) if adv.numel() > 1 else 0.0)
    return loss, diag


def estimate_f_divergence(log_ratio: torch.Tensor, divergence: str | FDivergence) -> torch.Tensor:
    """Importance-sampling estimate of D_f(π||p) = E_p f(π/p) from samples x ~ π.

    E_p f(t) = E_π[f(t)/t] with t = π/p; where p = 0 (t = ∞), f(t)/t → f'(∞), which is the f'(∞)
    π(p=0) term of the definition (Lecture 6, "f-divergences"). log_ratio: (B,). Returns a scalar.
    """
    div = resolve_divergence(divergence)
    _check_1d("log_ratio", log_ratio)
    out_dtype, log_ratio = log_ratio.dtype, log_ratio.to(_acc_dtype(log_ratio.dtype))
    finite = torch.isfinite(log_ratio)  # (B,)
    t = torch.exp(torch.where(finite, log_ratio, torch.zeros_like(log_ratio)))  # (B,)
    g = torch.where(finite, _f(div, t) / t, torch.full_like(t, float(div.f_prime_inf)))  # (B,) f(t)/t
    g = _log_space_fix(div, 1, g, log_ratio, finite)
    return g.mean().to(out_dtype)


def exact_f_divergence(log_pi: torch.Tensor, log_p: torch.Tensor,
                       divergence: str | FDivergence) -> torch.Tensor:
    """D_f(π||p) = Σ_{p>0} p f(π/p) + f'(∞) π(p = 0) over an enumerated space (Lecture 6,
    "f-divergences"), via :func:`rlhf_edu.divergences.f_divergence` (differentiable in log_pi).

    log_pi, log_p: (N,) normalised log-probabilities. Returns a scalar (+inf for reverse KL when π
    puts mass where p = 0, which is the true value).
    """
    div = resolve_divergence(divergence)
    _check_1d("log_pi", log_pi)
    _check_1d("log_p", log_p, log_pi.shape[0])
    return f_divergence(log_pi.exp(), log_p.exp(), div)  # E_p f(π/p) + f'(∞) π(p = 0)


def exact_fdpg_surrogate(log_pi: torch.Tensor, log_p: torch.Tensor, divergence: str | FDivergence,
                         max_log_ratio: float | None = None) -> torch.Tensor:
    """Scalar whose gradient is the exact f-DPG gradient Σ_x π(x) f'(π(x)/p(x)) ∇ log π(x).

    log_pi: (N,) log π_θ over an enumerated space, with grad; log_p: (N,). Returns a scalar.
    """
    _check_1d("log_pi", log_pi)
    _check_1d("log_p", log_p, log_pi.shape[0])
    R = pseudo_reward((log_pi - log_p).detach(), divergence, max_log_ratio)  # (N,)
    w = log_pi.detach().exp()  # (N,) π(x): the expectation is exact
    return -(w * R * log_pi).sum()


# ----------------------------------------------------------------------------------------------
# the exact world: a small enumerable sequence space


def enumerate_sequences(vocab_size: int, length: int) -> torch.Tensor:
    """Every sequence of ``length`` tokens over ``vocab_size`` tokens, (V**L, L) long, in
    lexicographic order (so row index = Σ_t x_t V^(L-1-t))."""
    if vocab_size < 2 or length < 1:
        raise ValueError(f"vocab_size >= 2 and length >= 1 expected, got {vocab_size}, {length}")
    if vocab_size**length > 200_000:
        raise ValueError(f"vocab_size**length: expected <= 200000 sequences, got {vocab_size**length}")
    return torch.tensor(list(itertools.product(range(vocab_size), repeat=length)), dtype=torch.long)


class TabularPolicy(nn.Module):
    """An autoregressive policy with one free logit vector per prefix: π(x) = Π_t π(x_t | x_<t).

    Fully expressive on V**L sequences, so f-DPG can reach p exactly. ``tables[t]`` has shape
    (V**t, V): row = the prefix's index. Initialise from ``logits`` (list of such tensors).
    """

    def __init__(self, vocab_size: int, length: int, logits: list[torch.Tensor] | None = None):
        if not isinstance(vocab_size, int) or vocab_size < 2:
            raise ValueError(f"vocab_size: expected an int >= 2, got {vocab_size!r}")
        if not isinstance(length, int) or length < 1:
            raise ValueError(f"length: expected an int >= 1, got {length!r}")
        super().__init__()
        self.vocab_size, self.length = vocab_size, length
        if logits is None:
            logits = [torch.zeros(vocab_size**t, vocab_size, dtype=torch.float64) for t in range(length)]
        for t, lg in enumerate(logits):
            if tuple(lg.shape) != (vocab_size**t, vocab_size):
                raise ValueError(f"logits[{t}]: expected ({vocab_size**t}, {vocab_size}), got {tuple(lg.shape)}")
        self.tables = nn.ParameterList([nn.Parameter(lg.clone().double()) for lg in logits])

    @classmethod
    def random(cls, vocab_size: int, length: int, scale: float = 1.0, seed: int = 0) -> "TabularPolicy":
        """Random N(0, scale²) logits."""
        g = torch.Generator().manual_seed(seed)
        return cls(vocab_size, length, [scale * torch.randn(vocab_size**t, vocab_size, generator=g,
                                                            dtype=torch.float64) for t in range(length)])

    def log_prob(self, seqs: torch.Tensor) -> torch.Tensor:
        """log π(x) for seqs (B, L) long. Returns (B,) float64 (with grad)."""
        if seqs.dim() != 2 or seqs.shape[1] != self.length:
            raise ValueError(f"seqs: expected (B, {self.length}), got {tuple(seqs.shape)}")
        prefix = torch.zeros(seqs.shape[0], dtype=torch.long)  # (B,)
        out = torch.zeros(seqs.shape[0], dtype=torch.float64)
        for t, table in enumerate(self.tables):
            logp = table[prefix].log_softmax(-1)  # (B, V)
            out = out + logp.gather(1, seqs[:, t:t + 1]).squeeze(1)  # (B,) += log π(x_t | x_<t)
            prefix = prefix * self.vocab_size + seqs[:, t]
        return out

    def log_prob_all(self) -> torch.Tensor:
        """log π over :func:`enumerate_sequences` order, (V**L,)."""
        logp = torch.zeros(1, dtype=torch.float64)
        for table in self.tables:
            logp = (logp[:, None] + table.log_softmax(-1)).reshape(-1)  # (V**(t+1),)
        return logp

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n sequences x ~ π, (n, L) long."""
        prefix = torch.zeros(n, dtype=torch.long)
        cols = []
        for table in self.tables:
            x = torch.multinomial(table[prefix].softmax(-1), 1, generator=generator).squeeze(1)  # (n,)
            cols.append(x)
            prefix = prefix * self.vocab_size + x
        return torch.stack(cols, 1)

    def index(self, seqs: torch.Tensor) -> torch.Tensor:
        """Row of each sequence in :func:`enumerate_sequences` order. (B, L) -> (B,)."""
        powers = self.vocab_size ** torch.arange(self.length - 1, -1, -1)  # (L,)
        return (seqs * powers).sum(1)


@dataclass
class ExactWorld:
    """A small enumerable world: every sequence, the base a, a reward and a binary constraint."""

    tokens: list
    """Names of the V tokens."""
    sequences: torch.Tensor
    """(N, L) every sequence."""
    base: TabularPolicy
    """The base model a (a random autoregressive table)."""
    log_a: torch.Tensor
    """(N,) log a(x)."""
    reward: torch.Tensor
    """(N,) r(x) = (#"good" - #"bad") / L, in [-1, 1]."""
    constraint: torch.Tensor
    """(N,) b(x) = 1 if x contains "good"."""
    beta: float
    """KL coefficient of the RLKL target."""

    def rlkl_log_target(self) -> torch.Tensor:
        """(N,) log P for RLKL (eq. 3)."""
        return rlkl_log_target(self.log_a, self.reward, self.beta)

    def gdc_log_target(self) -> torch.Tensor:
        """(N,) log P for GDC binary (eq. 1)."""
        return gdc_binary_log_target(self.log_a, self.constraint)

    def text(self, i: int) -> str:
        return " ".join(self.tokens[j] for j in self.sequences[i].tolist())


def make_exact_world(vocab_size: int = 6, length: int = 3, beta: float = 0.5, seed: int = 0,
                     base_scale: float = 1.5, good_bias: float = -1.5) -> ExactWorld:
    """An enumerable world of V**L sequences. Token 0 is "good", token 1 "bad".

    The base a is a random autoregressive table (logits N(0, base_scale²)) with ``good_bias`` added
    to the logit of "good", so that the constraint "contains good" is rare-ish under a.
    """
    if not (isinstance(beta, (int, float)) and math.isfinite(beta) and beta > 0):
        raise ValueError(f"beta: expected a finite number > 0, got {beta!r}")
    names = ["good", "bad", "film", "plot", "the", "."] + [f"w{i}" for i in range(6, vocab_size)]
    seqs = enumerate_sequences(vocab_size, length)  # (N, L)
    base = TabularPolicy.random(vocab_size, length, scale=base_scale, seed=seed)
    with torch.no_grad():
        for table in base.tables:
            table[:, 0] += good_bias
    base.requires_grad_(False)
    log_a = base.log_prob_all()  # (N,)
    reward = ((seqs == 0).sum(1) - (seqs == 1).sum(1)).double() / length  # (N,)
    b = (seqs == 0).any(1).double()  # (N,)
    return ExactWorld(names[:vocab_size], seqs, base, log_a, reward, b, beta)


def kl_from_logs(log_p: torch.Tensor, log_q: torch.Tensor) -> float:
    """KL(p||q) = Σ_{p>0} p (log p - log q) from log-probabilities (N,)."""
    _check_1d("log_p", log_p)
    _check_1d("log_q", log_q, log_p.shape[0])
    support = torch.isfinite(log_p)
    lp = torch.where(support, log_p, torch.zeros_like(log_p))
    return float(torch.where(support, lp.exp() * (lp - log_q), torch.zeros_like(lp)).sum())


def train_exact_fdpg(world: ExactWorld, log_P: torch.Tensor, divergence: str | FDivergence,
                     steps: int = 300, batch_size: int = 256, lr: float = 0.05, seed: int = 0,
                     max_log_ratio: float | None = 20.0, progress: bool = False):
    """Sampled f-DPG on a :class:`TabularPolicy` started at a, with a running Ẑ and a batch-mean
    baseline. log_P: (N,) an unnormalised target over ``world.sequences``.

    Returns (policy, history) with exact metrics per step: ``f_div`` D_f(π||p), ``kl_p_pi``
    KL(p||π), ``kl_pi_a`` KL(π||a), ``log_z_hat`` and ``log_z`` (true), ``satisfied`` π(b=1).
    """
    resolve_divergence(divergence)
    _check_1d("log_P", log_P, world.sequences.shape[0])
    for name, v, lo in (("steps", steps, 0), ("batch_size", batch_size, 1)):
        if not isinstance(v, int) or v < lo:
            raise ValueError(f"{name}: expected an int >= {lo}, got {v!r}")
    if not lr > 0:
        raise ValueError(f"lr: expected > 0, got {lr}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the tables are tiny: a second thread only adds synchronisation
    try:
        return _train_exact(world, log_P, resolve_divergence(divergence), steps, batch_size, lr, seed,
                            max_log_ratio, progress)
    finally:
        torch.set_num_threads(threads)


def _train_exact(world, log_P, div, steps, batch_size, lr, seed, max_log_ratio, progress):
    from tqdm.auto import tqdm

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
        R = pseudo_reward(log_ratio(log_pi.detach(), log_Px, log_z_hat), div, max_log_ratio)  # (K,)
        loss, _ = fdpg_loss(log_pi, R, R.mean())
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
    """RLKL with a reward function: log P = log a + r/β (default reward: VADER, the gold reward)."""

    beta: float = 0.1
    """KL coefficient β."""
    reward_fn: object = None
    """texts -> (B,) rewards; None means :func:`rlhf_edu.rewards.gold_reward`."""
    name: str = "RLKL (VADER)"
    alignment_name: str = "mean VADER reward"

    def __post_init__(self):
        if not self.beta > 0:
            raise ValueError(f"beta: expected > 0, got {self.beta}")
        if self.reward_fn is not None and not callable(self.reward_fn):
            raise ValueError(f"reward_fn: expected a callable texts -> (B,) rewards or None, got {self.reward_fn!r}")

    def score(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(alignment (B,) = r, log factor (B,) = r/β)."""
        from .rewards import gold_reward

        r = (self.reward_fn or gold_reward)(texts).float()
        return r, r / self.beta


@dataclass
class FDPGConfig:
    """Settings of an f-DPG run on a language model."""

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
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: expected an int >= 1, got {v!r}")
        for name in ("lr", "max_log_ratio", "max_grad_norm"):
            v = getattr(self, name)
            if v is None and name == "max_grad_norm":
                continue
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name}: expected a finite number > 0, got {v!r}")

    @classmethod
    def tiny(cls) -> "FDPGConfig":
        return cls()

    @classmethod
    def gpt2(cls) -> "FDPGConfig":
        return cls(iterations=60, batch_size=64, lr=2e-5, max_new_tokens=24, eval_samples=256)

    @classmethod
    def for_scale(cls, scale) -> "FDPGConfig":
        """The preset for ``scale`` (a :class:`rlhf_edu.config.Scale`), with ``scale.extra`` overrides."""
        cfg = cls.gpt2() if scale.name == "gpt2" else cls.tiny()
        cfg.max_prompt_tokens = scale.max_prompt_tokens
        for k, v in scale.extra.get("fdpg", {}).items():
            setattr(cfg, k, v)
        return cfg


def sequence_logprobs(model, rollout) -> torch.Tensor:
    """log model(y | prompt) summed over the response tokens of a Rollout. Returns (B,)."""
    if not all(hasattr(rollout, k) for k in ("input_ids", "attention_mask", "prompt_length", "response_mask")):
        raise ValueError(f"rollout: expected a generation.Rollout, got {type(rollout).__name__}")
    from .logprobs import masked_sum, response_logprobs

    lp = response_logprobs(model, rollout.input_ids, rollout.attention_mask, rollout.prompt_length)  # (B, R)
    return masked_sum(lp, rollout.response_mask.to(lp.dtype), dim=-1)  # (B,)


def _check_task_config(task, config) -> None:
    if not callable(getattr(task, "score", None)):
        raise ValueError(f"task: expected a GDCBinaryTask, RLKLTask or object with .score(texts), got {task!r}")
    if not isinstance(config, FDPGConfig):
        raise ValueError(f"config: expected an FDPGConfig, got {type(config).__name__}")


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
    from tqdm.auto import tqdm

    from .generation import sample

    div = resolve_divergence(divergence)
    config = FDPGConfig() if config is None else config
    _check_task_config(task, config)
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
            log_a = sequence_logprobs(base, ro)  # (B,) log a(y|c)
        log_pi = sequence_logprobs(policy, ro)  # (B,) log π_θ(y|c), with grad
        alignment, log_factor = task.score(ro.texts)  # (B,), (B,)
        log_P = log_a + log_factor.to(log_a.dtype)  # (B,) log P = log a + log b  (or + r/β)
        log_z = z.update(log_P, log_pi.detach())
        lr_ = log_ratio(log_pi.detach(), log_P, log_z)  # (B,) log π_θ/p
        R = pseudo_reward(lr_, div, config.max_log_ratio)  # (B,) -f'(π_θ/p)
        loss, diag = fdpg_loss(log_pi, R, R.mean())
        opt.zero_grad()
        loss.mean().backward()
        if config.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(policy.parameters(), config.max_grad_norm)
        opt.step()
        hist["iteration"].append(it)
        hist["alignment"].append(float(alignment.mean()))
        hist["kl_pi_a"].append(float((log_pi.detach() - log_a).mean()))
        hist["f_div"].append(float(estimate_f_divergence(lr_, div)))
        hist["log_z"].append(log_z)
        hist["pseudo_reward"].append(diag["pseudo_reward"])
        hist["loss"].append(float(loss.detach().mean()))
    return hist


def distinct_n(texts: list[str], n: int) -> float:
    """Distinct-n diversity: unique word n-grams / all word n-grams over ``texts`` (0 if none)."""
    if isinstance(texts, str):
        raise ValueError("texts: expected a list of strings, got a single string")
    if n < 1:
        raise ValueError(f"n: expected >= 1, got {n}")
    grams = [tuple(w[i:i + n]) for w in (t.split() for t in texts) for i in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


@torch.no_grad()
def evaluate_policy(policy, base, tokenizer, prompts: list[str], task, config: FDPGConfig | None = None,
                    seed: int = 1234) -> dict:
    """Sample one response per prompt (safe settings) and report ``alignment`` (mean),
    ``kl_pi_a`` (mean sequence log π - log a), ``distinct_1``, ``distinct_2`` and ``texts``."""
    from .generation import sample

    config = config or FDPGConfig()
    _check_task_config(task, config)
    if isinstance(prompts, str) or len(prompts) == 0:
        raise ValueError("prompts: expected a non-empty list of prompts")
    ro = sample(policy, tokenizer, list(prompts), config.max_new_tokens, seed=seed,
                max_prompt_tokens=config.max_prompt_tokens)
    kl = (sequence_logprobs(policy, ro) - sequence_logprobs(base, ro)).mean()
    alignment, _ = task.score(ro.texts)
    return dict(alignment=float(alignment.mean()), kl_pi_a=float(kl), distinct_1=distinct_n(ro.texts, 1),
                distinct_2=distinct_n(ro.texts, 2), texts=ro.texts, prompts=list(prompts))


__all__ = [
    "DIVERGENCE_NAMES", "resolve_divergence", "rlkl_log_target", "gdc_binary_log_target",
    "gdc_distributional_log_target", "moments", "fit_gdc_lambdas", "exact_log_partition",
    "normalise_log_target", "estimate_log_z", "RunningLogZ", "log_ratio", "pseudo_reward",
    "leave_one_out_baseline", "fdpg_loss", "estimate_f_divergence", "exact_f_divergence",
    "exact_fdpg_surrogate", "enumerate_sequences", "TabularPolicy", "ExactWorld",
    "make_exact_world", "kl_from_logs", "train_exact_fdpg", "POSITIVE_WORDS", "GDCBinaryTask", "RLKLTask",
    "FDPGConfig", "sequence_logprobs", "train_fdpg", "distinct_n", "evaluate_policy",
]
