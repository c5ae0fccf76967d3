"""KL divergences, their Monte Carlo estimators, and f-divergence generators.

Sources (see ``/work/shared/seeds``):

* the Regularization chapter of the RLHF book: eq. (3), the exact KL of two discrete
  distributions, and eq. (4), its Monte Carlo form E_{x~P}[log P(x) - log Q(x)];
* J. Schulman, "Approximating KL divergence" (2020): the estimators k1, k2, k3;
* Lecture 6 (f-DPG part) and Go et al. (2023), "Aligning language models with preferences through
  f-divergence minimization": the f-divergence table (f, f', f'(inf)).

Shapes: B batch, T tokens, V vocabulary, K samples. Every function takes and returns tensors.
All logarithms are natural (nats).

Conventions for the exact KL (eq. 3): 0 * log(0 / q) = 0, and a term with P(x) > 0, Q(x) = 0 is
+inf. These are pure functions: they check neither shapes nor values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import torch
from torch.nn.functional import softplus

from .logprobs import _acc_dtype  # float32 for float16/bfloat16 (e^x and sums overflow or round badly there)


def _float(x) -> torch.Tensor:
    """``x`` (a tensor, array or list of numbers) as a floating-point tensor."""
    t = torch.as_tensor(x)
    return t if t.is_floating_point() else t.to(torch.get_default_dtype())


def _log_probs(probs, logits, name: str, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(probabilities, log-probabilities) from exactly one of ``probs`` / ``logits``."""
    if (probs is None) == (logits is None):
        raise ValueError(f"{name}: pass exactly one of {name}= (probabilities) or {name}_logits=")
    if probs is not None:
        p = _float(probs)
        return p, torch.log(p)  # log 0 = -inf is handled by the callers' masks
    logp = torch.log_softmax(_float(logits), dim=dim)
    return logp.exp(), logp


# --------------------------------------------------------------------------------------------
# exact KL
# --------------------------------------------------------------------------------------------
def kl_categorical(p=None, q=None, *, p_logits=None, q_logits=None, dim: int = -1) -> torch.Tensor:
    """Exact KL(P || Q) of categorical distributions: the Regularization chapter, eq. (3).

        KL(P || Q) = sum_x P(x) log(P(x) / Q(x))

    Give each distribution either as probabilities (``p``, ``q``) or as unnormalised logits
    (``p_logits``, ``q_logits``; a ``-inf`` logit means probability 0). Both must have the same
    shape (..., V) with the outcomes along ``dim``.

    Conventions: a term with P(x) = 0 is 0 (0 log 0 = 0, whatever Q(x) is); a term with
    P(x) > 0 and Q(x) = 0 is +inf, so the result is +inf. Returns the KL with ``dim`` reduced.
    """
    p, logp = _log_probs(p, p_logits, "p", dim)
    q, logq = _log_probs(q, q_logits, "q", dim)
    dtype = torch.promote_types(p.dtype, q.dtype)
    p, logp, logq = p.to(dtype), logp.to(dtype), logq.to(dtype)
    terms = torch.where(p > 0, p * (logp - logq), torch.zeros_like(p))  # (..., V) eq. (3), 0 log 0 = 0
    return terms.sum(dim=dim)  # (...,)


def kl_gaussian(mu_p, sigma_p, mu_q, sigma_q) -> torch.Tensor:
    """Closed-form KL(N(mu_p, sigma_p^2) || N(mu_q, sigma_q^2)) for univariate Gaussians.

        KL = log(sigma_q / sigma_p) + (sigma_p^2 + (mu_p - mu_q)^2) / (2 sigma_q^2) - 1/2

    Arguments are numbers or broadcastable tensors; the standard deviations must be > 0.
    Returns a tensor of the broadcast shape (float64 when all inputs are Python numbers).
    """
    mp, sp, mq, sq = (v if torch.is_tensor(v) and v.is_floating_point() else torch.as_tensor(v, dtype=torch.float64)
                      for v in (mu_p, sigma_p, mu_q, sigma_q))
    dtype = torch.promote_types(torch.promote_types(mp.dtype, sp.dtype), torch.promote_types(mq.dtype, sq.dtype))
    if dtype in (torch.float16, torch.bfloat16):  # squares overflow float16: compute in float32
        return kl_gaussian(mp.float(), sp.float(), mq.float(), sq.float()).to(dtype)
    return torch.log(sq / sp) + (sp**2 + (mp - mq) ** 2) / (2 * sq**2) - 0.5


# --------------------------------------------------------------------------------------------
# Monte Carlo estimators (Schulman 2020); log_ratio = log Q(x) - log P(x), x ~ P
# --------------------------------------------------------------------------------------------
def k1(log_ratio: torch.Tensor) -> torch.Tensor:
    """k1 = -log_ratio = log P(x) - log Q(x): eq. (4) of the Regularization chapter.

    ``log_ratio`` (any shape, e.g. (K,) or (B, T)) holds log Q(x) - log P(x) for samples x ~ P.
    Unbiased for KL(P || Q) but high-variance, and single samples can be negative.
    """
    return -log_ratio  # eq. (4): log P(x) - log Q(x)


def k2(log_ratio: torch.Tensor) -> torch.Tensor:
    """k2 = log_ratio^2 / 2 (Schulman 2020). Same shape as ``log_ratio``.

    Always >= 0 and low-variance, but biased: its expectation is an f-divergence that only agrees
    with KL(P || Q) to second order when P and Q are close.
    """
    return 0.5 * log_ratio**2


def k3(log_ratio: torch.Tensor) -> torch.Tensor:
    """k3 = (r - 1) - log r with r = Q(x)/P(x), i.e. e^x - 1 - x for x = log_ratio (Schulman 2020).

    ``log_ratio`` (any shape) holds log Q(x) - log P(x) for x ~ P. Unbiased for KL(P || Q)
    (E_P[r] = 1) and never negative (log r <= r - 1), with much lower variance than k1 when P and
    Q are close.
    """
    x = log_ratio
    small = x.abs() <= 1.0
    # expm1(x) - x cancels catastrophically near 0 (the answer is ~x^2/2, and the tests ask for a few
    # ulps even at x = 1e-12), so there sum the Taylor series x^2/2! + x^3/3! + ... + x^20/20!
    xs = torch.where(small, x, torch.zeros_like(x))  # keeps the unused branch finite (and its grad)
    taylor = sum(xs**k / math.factorial(k) for k in range(20, 1, -1))  # smallest terms first
    return torch.where(small, taylor, torch.expm1(x) - x)


# --------------------------------------------------------------------------------------------
# language models: per-token KL
# --------------------------------------------------------------------------------------------
def _apply_mask(x: torch.Tensor, mask) -> torch.Tensor:
    """``x`` with 0 where ``mask`` (same shape, or None) is 0."""
    if mask is None:
        return x
    return torch.where(torch.as_tensor(mask).bool(), x, torch.zeros_like(x))


def per_token_kl(logits_p: torch.Tensor, logits_q: torch.Tensor, mask=None) -> torch.Tensor:
    """Exact per-position KL(P_t || Q_t) between two LMs' next-token distributions.

        KL_t = sum_v P_t(v) (log P_t(v) - log Q_t(v))        (eq. 3, over the vocabulary)

    logits_p, logits_q: (B, T, V) logits of the sampling policy P (e.g. pi_RL) and of Q (e.g.
    pi_ref) at the same positions. mask: optional (B, T), 0 where the position is padding.
    Returns (B, T) float32 (or float64 for float64 input), 0 at masked positions. Summing over T
    gives the exact expected per-token KL along *one* sampled prefix; its expectation over
    prefixes x ~ P is the sequence-level KL(P || Q) (chain rule).
    """
    dtype = torch.float64 if logits_p.dtype == torch.float64 else torch.float32
    kl = kl_categorical(p_logits=logits_p.to(dtype), q_logits=logits_q.to(dtype))  # (B, T) eq. (3)
    return _apply_mask(kl, mask)  # (B, T)


def sampled_log_ratio(logprobs_p: torch.Tensor, logprobs_q: torch.Tensor, mask=None) -> torch.Tensor:
    """log_ratio = log Q(y_t) - log P(y_t) at sampled tokens y_t ~ P, 0 where ``mask`` is 0.

    logprobs_p, logprobs_q: (B, T) log-probs of the *sampled* tokens under P (the policy that
    generated them) and Q (the reference). mask: optional (B, T). Returns (B, T); feed it to
    :func:`k1`, :func:`k2` or :func:`k3` for per-token estimates of KL(P_t || Q_t).
    """
    return _apply_mask(logprobs_q - logprobs_p, mask)  # (B, T); k1 = k2 = k3 = 0 at log_ratio = 0


class SequenceKL(NamedTuple):
    """Per-sequence KL(P || Q) estimates, each (B,), summed over the (unmasked) tokens."""

    k1: torch.Tensor
    """sum_t k1 = log P(y) - log Q(y): unbiased, can be negative."""
    k2: torch.Tensor
    """sum_t k2: biased, >= 0."""
    k3: torch.Tensor
    """sum_t k3: unbiased, >= 0."""
    exact: torch.Tensor | None
    """sum_t of the exact per-token KL (:func:`per_token_kl`) along the sampled prefix, or None."""


def sequence_kl_estimates(logprobs_p: torch.Tensor, logprobs_q: torch.Tensor, mask=None,
                          per_token_exact: torch.Tensor | None = None) -> SequenceKL:
    """Sequence-level KL(P || Q) estimates from one sampled response y ~ P per row.

    Each is the sum over response tokens of a per-token estimator (eq. 4 for k1). By the chain
    rule, E_{y~P}[sum_t KL_t] = KL(P(y) || Q(y)), so the k1, k3 and exact sums are all unbiased
    for the sequence KL; they differ in variance.

    logprobs_p, logprobs_q: (B, T) sampled-token log-probs under P and Q. mask: optional (B, T).
    per_token_exact: optional (B, T) output of :func:`per_token_kl` for the same positions.
    Returns :class:`SequenceKL` of detached (B,) tensors.
    """
    r = sampled_log_ratio(logprobs_p, logprobs_q, mask)  # (B, T)
    exact = None if per_token_exact is None else _apply_mask(per_token_exact, mask).sum(-1).detach()  # (B,)
    return SequenceKL(k1(r).sum(-1).detach(), k2(r).sum(-1).detach(), k3(r).sum(-1).detach(), exact)


def kl_estimates_from_logits(logits_p: torch.Tensor, logits_q: torch.Tensor, tokens: torch.Tensor,
                             mask=None) -> SequenceKL:
    """All sequence-level KL(P || Q) estimates for responses ``tokens`` sampled from P.

    logits_p, logits_q: (B, T, V) logits scoring each response token under P (the sampling
    policy) and Q (the reference), e.g. from ``rlhf_edu.logprobs.response_logits``; tokens: (B, T)
    long, the sampled tokens; mask: optional (B, T), 0 on padding. Returns :class:`SequenceKL`
    with k1, k2, k3 (sampled-token estimates, eq. 4) and ``exact`` (the per-token full-vocabulary
    KL summed along each sampled prefix), each (B,).
    """
    exact = per_token_kl(logits_p, logits_q, mask)  # (B, T)
    logp = torch.log_softmax(logits_p.to(exact.dtype), -1).gather(-1, tokens[..., None]).squeeze(-1)  # (B, T)
    logq = torch.log_softmax(logits_q.to(exact.dtype), -1).gather(-1, tokens[..., None]).squeeze(-1)  # (B, T)
    return sequence_kl_estimates(logp, logq, mask, per_token_exact=exact)


# --------------------------------------------------------------------------------------------
# f-divergences (Lecture 6, f-DPG table; Go et al. 2023)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FDivergence:
    """A generator f of an f-divergence, with its derivative and f'(inf) (the f-DPG table).

    f: convex on (0, inf) with f(1) = 0, tensor in / tensor out, and defined at t = 0 by its limit
    (f(0) may be +inf). f_prime: its derivative (a subgradient where f has a kink).
    f_prime_inf: lim_{t->0} t f(1/t) (may be ``math.inf``); it prices P-mass where Q = 0.
    """

    name: str
    f: Callable[[torch.Tensor], torch.Tensor] = field(repr=False)
    f_prime: Callable[[torch.Tensor], torch.Tensor] = field(repr=False)
    f_prime_inf: float
    label: str = ""
    """What D_f(pi || p) is, in words, in the f-DPG convention (for plots and tables)."""
    f_prime_log: Callable | None = field(default=None, repr=False)
    """Optional f'(e^x) written in x = log t, used where e^x overflows although x is finite (e.g.
    a sequence log-ratio of 100 nats is t = inf in float32, where JS's f'(t) = log(2t/(t+1)) is NaN)."""
    f_over_t_log: Callable | None = field(default=None, repr=False)
    """Optional f(e^x) / e^x written in x = log t, for the same purpose."""

    def _at_log(self, log_t: torch.Tensor, generic: Callable, log_form: Callable | None) -> torch.Tensor:
        """``generic(t)`` at t = e^log_t; f'(inf) where log_t = +inf; ``log_form(log_t)`` where the
        generic value overflowed at a finite log_t (every other value is the generic one, bit for bit).
        Computed (and returned) in float32 for half-precision input, where e^x overflows early."""
        x = log_t.to(_acc_dtype(log_t.dtype))
        finite = torch.isfinite(x)
        t = torch.exp(torch.where(finite, x, torch.zeros_like(x)))
        val = torch.where(finite, torch.as_tensor(generic(t), dtype=t.dtype), torch.full_like(t, float(self.f_prime_inf)))
        if log_form is not None:
            bad = finite & ~torch.isfinite(val)
            val = torch.where(bad, log_form(torch.where(bad, x, torch.zeros_like(x))), val)
        return val

    def f_prime_at_log(self, log_t: torch.Tensor) -> torch.Tensor:
        """f'(t) at t = e^log_t (f'(inf) at log_t = +inf). Same shape as ``log_t``."""
        return self._at_log(log_t, self.f_prime, self.f_prime_log)

    def f_over_t_at_log(self, log_t: torch.Tensor) -> torch.Tensor:
        """f(t) / t at t = e^log_t (its limit f'(inf) at log_t = +inf). Same shape as ``log_t``."""
        return self._at_log(log_t, lambda t: self.f(t) / t, self.f_over_t_log)


_LN2 = math.log(2.0)

FORWARD_KL = FDivergence(
    name="forward_kl",
    f=lambda t: -torch.log(t),  # f(t) = -log t, f(0) = +inf
    f_prime=lambda t: -1.0 / t,  # f'(t) = -1/t
    f_prime_inf=0.0,
    label="forward KL: D_f(pi||p) = KL(p||pi)",
    f_prime_log=lambda x: -torch.exp(-x),
    f_over_t_log=lambda x: -x * torch.exp(-x),
)
REVERSE_KL = FDivergence(
    name="reverse_kl",
    f=lambda t: torch.xlogy(t, t),  # f(t) = t log t, f(0) = 0
    f_prime=lambda t: torch.log(t) + 1.0,  # f'(t) = log t + 1
    f_prime_inf=math.inf,
    label="reverse KL: D_f(pi||p) = KL(pi||p)",
    f_prime_log=lambda x: x + 1.0,
    f_over_t_log=lambda x: x,
)
TOTAL_VARIATION = FDivergence(
    name="tv",
    f=lambda t: 0.5 * (1.0 - t).abs(),  # f(t) = |1 - t| / 2, f(0) = 1/2
    f_prime=lambda t: 0.5 * torch.sign(t - 1.0),  # +-1/2 (0 at the kink t = 1)
    f_prime_inf=0.5,
    label="total variation: TV(pi, p)",
    f_prime_log=lambda x: 0.5 * torch.sign(x),
    f_over_t_log=lambda x: 0.5 * (-torch.expm1(-x)).abs(),
)
JENSEN_SHANNON = FDivergence(
    name="js",
    # f(t) = t log(2t/(t+1)) + log(2/(t+1)), f(0) = log 2
    f=lambda t: torch.xlogy(t, 2.0 * t / (t + 1.0)) + torch.log(2.0 / (t + 1.0)),
    f_prime=lambda t: torch.log(2.0 * t / (t + 1.0)),  # f'(t) = log(2t/(t+1))
    f_prime_inf=_LN2,
    label="Jensen-Shannon: JS(pi, p)",
    f_prime_log=lambda x: _LN2 - softplus(-x),
    f_over_t_log=lambda x: _LN2 - softplus(-x) + (_LN2 - softplus(x)) * torch.exp(-x),
)

F_DIVERGENCES: dict[str, FDivergence] = {
    "forward_kl": FORWARD_KL,
    "reverse_kl": REVERSE_KL,
    "tv": TOTAL_VARIATION,
    "js": JENSEN_SHANNON,
}


def get_f_divergence(divergence) -> FDivergence:
    """The generator registered under a name (one of ``F_DIVERGENCES``); an FDivergence passes through."""
    if isinstance(divergence, FDivergence):
        return divergence
    if not isinstance(divergence, str) or divergence not in F_DIVERGENCES:
        raise ValueError(f"divergence: expected an FDivergence or the name of one of {sorted(F_DIVERGENCES)}, "
                         f"got {divergence!r}")
    return F_DIVERGENCES[divergence]


def f_divergence(p, q, gen, dim: int = -1) -> torch.Tensor:
    """D_f(P || Q) of categorical distributions, in the f-DPG convention (Lecture 6; Go et al. 2023).

        D_f(P || Q) = sum_{x: Q(x) > 0} Q(x) f(P(x) / Q(x))  +  f'(inf) * P(Q = 0)

    The expectation is over the *second* argument. Read it with the f-DPG table, where
    P = pi_theta (the model) and Q = p (the target):

    * ``FORWARD_KL`` (f = -log t): D_f(pi || p) = E_p[-log(pi/p)] = KL(p || pi), the forward KL;
    * ``REVERSE_KL`` (f = t log t): D_f(pi || p) = E_p[(pi/p) log(pi/p)] = KL(pi || p), the reverse KL;
    * ``TOTAL_VARIATION`` and ``JENSEN_SHANNON`` are symmetric, so the order does not matter.
      With the table's generator, ``JENSEN_SHANNON`` gives KL(P||M) + KL(Q||M) with M = (P+Q)/2,
      i.e. twice the JS divergence in the 1/2-weighted convention (at most 2 log 2).

    So ``f_divergence(P, Q, FORWARD_KL) == kl_categorical(Q, P)`` and
    ``f_divergence(P, Q, REVERSE_KL) == kl_categorical(P, Q)``.

    Limits: a term with Q(x) > 0 and P(x) = 0 is Q(x) f(0) (f(0) = lim_{t->0} f(t), +inf for
    forward KL); P-mass where Q = 0 costs f'(inf) per unit, and contributes nothing when that
    mass is 0 (even if f'(inf) = inf).

    p, q: (..., V) probabilities along ``dim``; gen: an :class:`FDivergence` or its name. Returns (...,).
    """
    gen = get_f_divergence(gen)
    p, q = _float(p), _float(q)
    dtype = torch.promote_types(p.dtype, q.dtype)
    p, q = p.to(dtype), q.to(dtype)
    t = p / torch.where(q > 0, q, torch.ones_like(q))  # (..., V) P/Q where Q > 0
    # Q f(P/Q) -> P f'(inf) as Q/P -> 0, so a ratio that overflows counts as mass off Q's support
    support = (q > 0) & torch.isfinite(t)
    inside = torch.where(support, q * gen.f(torch.where(support, t, torch.ones_like(t))), torch.zeros_like(p))
    outside = torch.where(support, torch.zeros_like(p), p)  # (..., V) P where Q = 0
    off = torch.where(outside > 0, outside * gen.f_prime_inf, torch.zeros_like(p))  # 0 * inf counts 0
    return inside.sum(dim=dim) + off.sum(dim=dim)  # (...,)


# --------------------------------------------------------------------------------------------
# the KL-regularised RLHF objective on a small discrete space
# --------------------------------------------------------------------------------------------
def kl_regularized_objective(pi, pi_ref, reward, beta: float, dim: int = -1) -> torch.Tensor:
    """J(pi) = E_{y~pi}[r(y)] - beta KL(pi || pi_ref), exactly, on a finite space of responses.

    The Regularization chapter, eq. (2) (reward minus a KL penalty to the reference), averaged
    over y ~ pi; the "Understanding RLHF" blog post writes the same objective.

    pi: (..., V) probabilities; pi_ref: (V,) or (..., V); reward: (V,) or (..., V) rewards r(y);
    beta > 0. Returns (...,).
    """
    pi = _float(pi)
    pi_ref = _float(pi_ref).to(pi.dtype).expand_as(pi)  # (..., V) a single reference broadcasts
    expected_r = (pi * _float(reward).to(pi.dtype)).sum(dim=dim)  # (...,) E_pi[r]
    return expected_r - beta * kl_categorical(pi, pi_ref, dim=dim)  # eq. (2), in expectation


def kl_regularized_optimum(pi_ref, reward, beta: float, dim: int = -1) -> torch.Tensor:
    """The maximiser of :func:`kl_regularized_objective`: pi*(y) = pi_ref(y) exp(r(y)/beta) / Z.

    This is the Gibbs / "RLHF as Bayesian inference" form (the Understanding RLHF blog post;
    the RLKL target of f-DPG, Lecture 6). At the optimum J(pi*) = beta log Z. Computed in log
    space, so large r/beta do not overflow. pi_ref: (..., V); reward: broadcastable; returns (..., V).
    """
    pi_ref = _float(pi_ref)
    logits = torch.log(pi_ref) + _float(reward).to(pi_ref.dtype) / beta  # (..., V) log pi_ref + r / beta
    return torch.softmax(logits, dim=dim)  # (..., V) pi* = pi_ref exp(r/beta) / Z
