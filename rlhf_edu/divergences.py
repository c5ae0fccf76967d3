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
+inf. Bad input (negative probabilities, rows not summing to one, mismatched shapes) raises
``ValueError``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import torch

__all__ = [
    "kl_categorical", "kl_gaussian", "k1", "k2", "k3", "per_token_kl", "sampled_log_ratio",
    "SequenceKL", "sequence_kl_estimates", "kl_estimates_from_logits", "FDivergence", "FORWARD_KL", "REVERSE_KL",
    "TOTAL_VARIATION", "JENSEN_SHANNON", "F_DIVERGENCES", "get_f_divergence", "f_divergence",
    "check_probabilities", "kl_regularized_objective", "kl_regularized_optimum",
]


# --------------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------------
def _as_tensor(x, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        t = x
    else:
        try:
            t = torch.as_tensor(x)
        except Exception as e:  # pragma: no cover - exotic inputs
            raise ValueError(f"{name}: expected a tensor or array of numbers, got {type(x).__name__}") from e
    if not (t.is_floating_point() or t.dtype in (torch.int8, torch.int16, torch.int32, torch.int64,
                                                  torch.uint8, torch.bool)):
        raise ValueError(f"{name}: expected a real-valued tensor, got dtype {t.dtype}")
    if not t.is_floating_point():
        t = t.to(torch.get_default_dtype())
    return t


def _sum_tol(dtype: torch.dtype, n: int) -> float:
    """Tolerance on |sum - 1| for probabilities stored in ``dtype`` over ``n`` outcomes."""
    eps = torch.finfo(dtype).eps
    return max(1e-6 if dtype == torch.float64 else 1e-4, 8 * eps * n)


def check_probabilities(p, name: str = "p", dim: int = -1) -> torch.Tensor:
    """Return ``p`` as a float tensor after checking it holds distributions along ``dim``.

    Raises ``ValueError`` (naming ``name``) if ``p`` is empty, holds NaN/inf or negative entries,
    or if a slice along ``dim`` does not sum to 1 within a dtype-dependent tolerance.
    """
    p = _as_tensor(p, name)
    if p.dim() == 0 or p.numel() == 0:
        raise ValueError(f"{name}: expected a non-empty tensor of probabilities, got shape {tuple(p.shape)}")
    if not torch.isfinite(p).all():
        raise ValueError(f"{name}: expected finite probabilities, found NaN or inf")
    if (p < 0).any():
        raise ValueError(f"{name}: expected non-negative probabilities, min is {p.min().item():.3g}")
    total = p.sum(dim=dim)
    tol = _sum_tol(p.dtype, p.shape[dim])
    worst = (total - 1).abs().max().item()
    if worst > tol:
        raise ValueError(f"{name}: expected probabilities summing to 1 along dim={dim}, "
                         f"off by up to {worst:.3g} (tolerance {tol:.1g})")
    return p


def _check_logits(x, name: str) -> torch.Tensor:
    x = _as_tensor(x, name)
    if x.dim() == 0 or x.numel() == 0:
        raise ValueError(f"{name}: expected a non-empty tensor of logits, got shape {tuple(x.shape)}")
    if torch.isnan(x).any() or (x == float("inf")).any():
        raise ValueError(f"{name}: expected logits without NaN or +inf (-inf masks a token)")
    return x


def _log_probs(probs, logits, name: str, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(probabilities, log-probabilities) from exactly one of ``probs`` / ``logits``."""
    if (probs is None) == (logits is None):
        raise ValueError(f"{name}: pass exactly one of {name}= (probabilities) or {name}_logits=")
    if probs is not None:
        p = check_probabilities(probs, name, dim)
        return p, torch.log(p)  # log 0 = -inf is handled by the callers' masks
    z = _check_logits(logits, f"{name}_logits")
    logp = torch.log_softmax(z, dim=dim)
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
    P(x) > 0 and Q(x) = 0 is +inf, so the result is +inf.

    Returns the KL with ``dim`` reduced, shape (...,). Raises ``ValueError`` for negative
    probabilities, rows that do not sum to 1, NaN, or mismatched shapes.
    """
    p, logp = _log_probs(p, p_logits, "p", dim)
    q, logq = _log_probs(q, q_logits, "q", dim)
    if p.shape != q.shape:
        raise ValueError(f"p/q: expected the same shape, got {tuple(p.shape)} and {tuple(q.shape)}")
    if p.dtype != q.dtype:
        p, logp = p.to(torch.promote_types(p.dtype, q.dtype)), logp.to(torch.promote_types(p.dtype, q.dtype))
        q, logq = q.to(p.dtype), logq.to(p.dtype)
    # eq. (3): P log(P/Q), with 0 log 0 = 0 and P log(P/0) = +inf
    terms = torch.where(p > 0, p * (logp - logq), torch.zeros_like(p))  # (..., V)
    return terms.sum(dim=dim)  # (...,)


def kl_gaussian(mu_p, sigma_p, mu_q, sigma_q) -> torch.Tensor:
    """Closed-form KL(N(mu_p, sigma_p^2) || N(mu_q, sigma_q^2)) for univariate Gaussians.

        KL = log(sigma_q / sigma_p) + (sigma_p^2 + (mu_p - mu_q)^2) / (2 sigma_q^2) - 1/2

    Arguments are numbers or broadcastable tensors; the standard deviations must be > 0.
    Returns a tensor of the broadcast shape (float64 when all inputs are Python numbers).
    """
    args = {"mu_p": mu_p, "sigma_p": sigma_p, "mu_q": mu_q, "sigma_q": sigma_q}
    ts = {}
    for k, v in args.items():
        t = v if isinstance(v, torch.Tensor) else torch.as_tensor(v, dtype=torch.float64)
        if not t.is_floating_point():
            t = t.to(torch.float64)
        if not torch.isfinite(t).all():
            raise ValueError(f"{k}: expected finite values")
        ts[k] = t
    for k in ("sigma_p", "sigma_q"):
        if (ts[k] <= 0).any():
            raise ValueError(f"{k}: expected standard deviations > 0")
    mp, sp, mq, sq = ts["mu_p"], ts["sigma_p"], ts["mu_q"], ts["sigma_q"]
    dtype = torch.promote_types(torch.promote_types(mp.dtype, sp.dtype), torch.promote_types(mq.dtype, sq.dtype))
    if dtype in (torch.float16, torch.bfloat16):  # squares overflow float16: compute in float32
        return kl_gaussian(mp.float(), sp.float(), mq.float(), sq.float()).to(dtype)
    return torch.log(sq / sp) + (sp**2 + (mp - mq) ** 2) / (2 * sq**2) - 0.5


# --------------------------------------------------------------------------------------------
# Monte Carlo estimators (Schulman 2020); log_ratio = log Q(x) - log P(x), x ~ P
# --------------------------------------------------------------------------------------------
def _check_log_ratio(log_ratio) -> torch.Tensor:
    r = _as_tensor(log_ratio, "log_ratio")
    if torch.isnan(r).any():
        raise ValueError("log_ratio: expected no NaN (log Q(x) - log P(x) for x ~ P)")
    return r


def k1(log_ratio) -> torch.Tensor:
    """k1 = -log_ratio = log P(x) - log Q(x): eq. (4) of the Regularization chapter.

    ``log_ratio`` (any shape, e.g. (K,) or (B, T)) holds log Q(x) - log P(x) for samples x ~ P.
    Unbiased for KL(P || Q) but high-variance, and single samples can be negative.
    """
    r = _check_log_ratio(log_ratio)
    return -r  # eq. (4): log P(x) - log Q(x)


def k2(log_ratio) -> torch.Tensor:
    """k2 = log_ratio^2 / 2 (Schulman 2020). Same shape as ``log_ratio``.

    Always >= 0 and low-variance, but biased: its expectation is an f-divergence that only agrees
    with KL(P || Q) to second order when P and Q are close.
    """
    r = _check_log_ratio(log_ratio)
    return 0.5 * r**2


# 1/k! for k = 2..20: exp(x) - 1 - x = x^2 * sum_{k>=2} x^(k-2) / k!
_INV_FACT = [1.0 / math.factorial(k) for k in range(2, 21)]


def k3(log_ratio) -> torch.Tensor:
    """k3 = (r - 1) - log r with r = Q(x)/P(x), i.e. expm1(log_ratio) - log_ratio (Schulman 2020).

    ``log_ratio`` (any shape) holds log Q(x) - log P(x) for x ~ P. Unbiased for KL(P || Q)
    (E_P[r] = 1) and never negative (log r <= r - 1), with much lower variance than k1 when P and
    Q are close.

    Near log_ratio = 0 the difference expm1(x) - x cancels catastrophically (the answer is about
    x^2/2), so for |x| <= 1 we sum the Taylor series x^2 (1/2! + x/3! + ... + x^18/20!) instead,
    which is accurate to the working precision; elsewhere ``torch.expm1(x) - x`` is already
    accurate to a few ulps.
    """
    r = _check_log_ratio(log_ratio)
    small = r.abs() <= 1.0
    x = torch.where(small, r, torch.zeros_like(r))  # keeps the unused branch finite (and its grad)
    series = torch.full_like(x, _INV_FACT[-1])
    for c in reversed(_INV_FACT[:-1]):  # Horner: c_2 + x (c_3 + x (c_4 + ...))
        series = series * x + c
    taylor = x * x * series  # exp(x) - 1 - x for |x| <= 1
    direct = torch.expm1(torch.where(small, torch.zeros_like(r), r)) - torch.where(small, torch.zeros_like(r), r)
    return torch.where(small, taylor, direct)  # (r - 1) - log r


# --------------------------------------------------------------------------------------------
# language models: per-token KL
# --------------------------------------------------------------------------------------------
def _check_mask(mask, shape, name="mask") -> torch.Tensor | None:
    if mask is None:
        return None
    m = torch.as_tensor(mask)
    if tuple(m.shape) != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {tuple(m.shape)}")
    return m.bool()


def per_token_kl(logits_p: torch.Tensor, logits_q: torch.Tensor, mask=None) -> torch.Tensor:
    """Exact per-position KL(P_t || Q_t) between two LMs' next-token distributions.

        KL_t = sum_v P_t(v) (log P_t(v) - log Q_t(v))        (eq. 3, over the vocabulary)

    logits_p, logits_q: (B, T, V) logits of the sampling policy P (e.g. pi_RL) and of Q (e.g.
    pi_ref) at the same positions. mask: optional (B, T), 0 where the position is padding.
    Returns (B, T) float32 (or float64 for float64 input), 0 at masked positions. Summing over T
    gives the exact expected per-token KL along *one* sampled prefix; its expectation over
    prefixes x ~ P is the sequence-level KL(P || Q) (chain rule).
    """
    if not isinstance(logits_p, torch.Tensor) or not isinstance(logits_q, torch.Tensor):
        raise ValueError("logits_p/logits_q: expected torch tensors of shape (B, T, V)")
    if logits_p.dim() != 3 or logits_p.shape != logits_q.shape:
        raise ValueError(f"logits_p/logits_q: expected equal shapes (B, T, V), got "
                         f"{tuple(logits_p.shape)} and {tuple(logits_q.shape)}")
    for name, t in (("logits_p", logits_p), ("logits_q", logits_q)):
        if not t.is_floating_point():
            raise ValueError(f"{name}: expected floating-point logits, got {t.dtype}")
    m = _check_mask(mask, logits_p.shape[:2])
    dtype = torch.float64 if logits_p.dtype == torch.float64 else torch.float32
    logp = torch.log_softmax(logits_p.to(dtype), dim=-1)  # (B, T, V)
    logq = torch.log_softmax(logits_q.to(dtype), dim=-1)  # (B, T, V)
    p = logp.exp()  # (B, T, V)
    terms = torch.where(p > 0, p * (logp - logq), torch.zeros_like(p))  # (B, T, V) eq. (3) terms
    kl = terms.sum(-1)  # (B, T)
    if m is not None:
        kl = torch.where(m, kl, torch.zeros_like(kl))  # (B, T)
    return kl


def sampled_log_ratio(logprobs_p: torch.Tensor, logprobs_q: torch.Tensor, mask=None) -> torch.Tensor:
    """log_ratio = log Q(y_t) - log P(y_t) at sampled tokens y_t ~ P, 0 where ``mask`` is 0.

    logprobs_p, logprobs_q: (B, T) log-probs of the *sampled* tokens under P (the policy that
    generated them) and Q (the reference). mask: optional (B, T). Returns (B, T); feed it to
    :func:`k1`, :func:`k2` or :func:`k3` for per-token estimates of KL(P_t || Q_t).
    """
    if not isinstance(logprobs_p, torch.Tensor) or not isinstance(logprobs_q, torch.Tensor):
        raise ValueError("logprobs_p/logprobs_q: expected torch tensors of shape (B, T)")
    if logprobs_p.shape != logprobs_q.shape:
        raise ValueError(f"logprobs_p/logprobs_q: expected equal shapes, got {tuple(logprobs_p.shape)} "
                         f"and {tuple(logprobs_q.shape)}")
    for name, t in (("logprobs_p", logprobs_p), ("logprobs_q", logprobs_q)):
        if not t.is_floating_point():
            raise ValueError(f"{name}: expected floating-point log-probs, got {t.dtype}")
    r = logprobs_q - logprobs_p  # (B, T) log Q(y_t) - log P(y_t)
    m = _check_mask(mask, r.shape)
    if m is not None:
        r = torch.where(m, r, torch.zeros_like(r))  # (B, T); k1 = k2 = k3 = 0 at log_ratio = 0
    return r


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
    exact = None
    if per_token_exact is not None:
        if per_token_exact.shape != r.shape:
            raise ValueError(f"per_token_exact: expected shape {tuple(r.shape)}, got {tuple(per_token_exact.shape)}")
        m = _check_mask(mask, r.shape)
        e = per_token_exact if m is None else torch.where(m, per_token_exact, torch.zeros_like(per_token_exact))
        exact = e.sum(-1).detach()  # (B,)
    return SequenceKL(k1=k1(r).sum(-1).detach(), k2=k2(r).sum(-1).detach(), k3=k3(r).sum(-1).detach(),
                      exact=exact)


def kl_estimates_from_logits(logits_p: torch.Tensor, logits_q: torch.Tensor, tokens: torch.Tensor,
                             mask=None) -> SequenceKL:
    """All sequence-level KL(P || Q) estimates for responses ``tokens`` sampled from P.

    logits_p, logits_q: (B, T, V) logits scoring each response token under P (the sampling
    policy) and Q (the reference), e.g. from ``rlhf_edu.logprobs.response_logits``; tokens: (B, T)
    long, the sampled tokens; mask: optional (B, T), 0 on padding. Returns :class:`SequenceKL`
    with k1, k2, k3 (sampled-token estimates, eq. 4) and ``exact`` (the per-token full-vocabulary
    KL summed along each sampled prefix), each (B,).
    """
    if not isinstance(tokens, torch.Tensor) or tokens.is_floating_point() or tokens.is_complex():
        raise ValueError(f"tokens: expected an integer (B, T) tensor of token ids, got "
                         f"{getattr(tokens, 'dtype', type(tokens).__name__)}")
    if tokens.shape != logits_p.shape[:2]:
        raise ValueError(f"tokens: expected shape {tuple(logits_p.shape[:2])}, got {tuple(tokens.shape)}")
    exact = per_token_kl(logits_p, logits_q, mask)  # (B, T); also checks the logits' shapes
    dtype = exact.dtype  # float64 for float64 logits (as per_token_kl), else float32
    logp = torch.log_softmax(logits_p.to(dtype), -1).gather(-1, tokens[..., None]).squeeze(-1)  # (B, T)
    logq = torch.log_softmax(logits_q.to(dtype), -1).gather(-1, tokens[..., None]).squeeze(-1)  # (B, T)
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

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name: expected a non-empty str, got {self.name!r}")
        for k in ("f", "f_prime"):
            if not callable(getattr(self, k)):
                raise ValueError(f"{k}: expected a callable tensor -> tensor, got {type(getattr(self, k)).__name__}")
        if not isinstance(self.f_prime_inf, (int, float)) or math.isnan(self.f_prime_inf):
            raise ValueError(f"f_prime_inf: expected a number (math.inf allowed), got {self.f_prime_inf!r}")


def _xlogy(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.xlogy(x, y)  # x log y with 0 log 0 = 0


FORWARD_KL = FDivergence(
    name="forward_kl",
    f=lambda t: -torch.log(t),  # f(t) = -log t, f(0) = +inf
    f_prime=lambda t: -1.0 / t,  # f'(t) = -1/t
    f_prime_inf=0.0,
    label="forward KL: D_f(pi||p) = KL(p||pi)",
)
REVERSE_KL = FDivergence(
    name="reverse_kl",
    f=lambda t: _xlogy(t, t),  # f(t) = t log t, f(0) = 0
    f_prime=lambda t: torch.log(t) + 1.0,  # f'(t) = log t + 1
    f_prime_inf=math.inf,
    label="reverse KL: D_f(pi||p) = KL(pi||p)",
)
TOTAL_VARIATION = FDivergence(
    name="tv",
    f=lambda t: 0.5 * (1.0 - t).abs(),  # f(t) = |1 - t| / 2, f(0) = 1/2
    f_prime=lambda t: 0.5 * torch.sign(t - 1.0),  # +-1/2 (0 at the kink t = 1)
    f_prime_inf=0.5,
    label="total variation: TV(pi, p)",
)
JENSEN_SHANNON = FDivergence(
    name="js",
    # f(t) = t log(2t/(t+1)) + log(2/(t+1)), f(0) = log 2
    f=lambda t: _xlogy(t, 2.0 * t / (t + 1.0)) + torch.log(2.0 / (t + 1.0)),
    f_prime=lambda t: torch.log(2.0 * t / (t + 1.0)),  # f'(t) = log(2t/(t+1))
    f_prime_inf=math.log(2.0),
    label="Jensen-Shannon: JS(pi, p)",
)

F_DIVERGENCES: dict[str, FDivergence] = {
    "forward_kl": FORWARD_KL,
    "reverse_kl": REVERSE_KL,
    "tv": TOTAL_VARIATION,
    "js": JENSEN_SHANNON,
}


def get_f_divergence(name) -> FDivergence:
    """The generator registered under ``name`` (one of ``F_DIVERGENCES``); an FDivergence passes through."""
    if isinstance(name, FDivergence):
        return name
    if name not in F_DIVERGENCES:
        raise ValueError(f"name: expected one of {sorted(F_DIVERGENCES)}, got {name!r}")
    return F_DIVERGENCES[name]


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

    p, q: (..., V) probabilities along ``dim``; gen: an :class:`FDivergence` or its name.
    Returns (...,). Raises ``ValueError`` on bad probabilities or mismatched shapes.
    """
    gen = get_f_divergence(gen)
    p = check_probabilities(p, "p", dim)
    q = check_probabilities(q, "q", dim)
    if p.shape != q.shape:
        raise ValueError(f"p/q: expected the same shape, got {tuple(p.shape)} and {tuple(q.shape)}")
    dtype = torch.promote_types(p.dtype, q.dtype)
    p, q = p.to(dtype), q.to(dtype)
    t = p / torch.where(q > 0, q, torch.ones_like(q))  # (..., V) P/Q where Q > 0
    # Q f(P/Q) -> P f'(inf) as Q/P -> 0, so a ratio that overflows counts as mass off Q's support
    support = (q > 0) & torch.isfinite(t)
    t = torch.where(support, t, torch.ones_like(t))  # (..., V)
    inside = torch.where(support, q * gen.f(t), torch.zeros_like(p))  # (..., V) Q f(P/Q)
    outside_mass = torch.where(support, torch.zeros_like(p), p)  # (..., V) P where Q = 0
    off = outside_mass * gen.f_prime_inf if math.isfinite(gen.f_prime_inf) else torch.where(
        outside_mass > 0, torch.full_like(p, math.inf), torch.zeros_like(p))
    return inside.sum(dim=dim) + off.sum(dim=dim)  # (...,)


# --------------------------------------------------------------------------------------------
# the KL-regularised RLHF objective on a small discrete space
# --------------------------------------------------------------------------------------------
def kl_regularized_objective(pi, pi_ref, reward, beta: float, dim: int = -1) -> torch.Tensor:
    """J(pi) = E_{y~pi}[r(y)] - beta KL(pi || pi_ref), exactly, on a finite space of responses.

    The Regularization chapter, eq. (2) (reward minus a KL penalty to the reference), averaged
    over y ~ pi; the "Understanding RLHF" blog post writes the same objective.

    pi: (..., V) probabilities; pi_ref: (V,) or (..., V); reward: (V,) or (..., V) rewards r(y);
    beta > 0.
    Returns (...,).
    """
    if not beta > 0:
        raise ValueError(f"beta: expected > 0, got {beta}")
    pi = check_probabilities(pi, "pi", dim)
    r = _as_tensor(reward, "reward").to(pi.dtype)
    try:
        torch.broadcast_shapes(r.shape, pi.shape)
    except RuntimeError as e:
        raise ValueError(f"reward: expected a shape broadcastable to {tuple(pi.shape)}, got {tuple(r.shape)}") from e
    pi_ref = check_probabilities(pi_ref, "pi_ref", dim)
    try:
        pi_ref = pi_ref.to(pi.dtype).expand_as(pi)  # (..., V) a single reference broadcasts
    except RuntimeError as e:
        raise ValueError(f"pi_ref: expected a shape broadcastable to {tuple(pi.shape)}, got {tuple(pi_ref.shape)}") from e
    expected_r = (pi * r).sum(dim=dim)  # (...,) E_pi[r]
    return expected_r - beta * kl_categorical(pi, pi_ref, dim=dim)  # eq. (2), in expectation


def kl_regularized_optimum(pi_ref, reward, beta: float, dim: int = -1) -> torch.Tensor:
    """The maximiser of :func:`kl_regularized_objective`: pi*(y) = pi_ref(y) exp(r(y)/beta) / Z.

    This is the Gibbs / "RLHF as Bayesian inference" form (the Understanding RLHF blog post;
    the RLKL target of f-DPG, Lecture 6). At the optimum J(pi*) = beta log Z. Computed in log
    space, so large r/beta do not overflow. pi_ref: (..., V); reward: broadcastable; returns (..., V).
    """
    if not beta > 0:
        raise ValueError(f"beta: expected > 0, got {beta}")
    pi_ref = check_probabilities(pi_ref, "pi_ref", dim)
    r = _as_tensor(reward, "reward").to(pi_ref.dtype)
    logits = torch.log(pi_ref) + r / beta  # (..., V) log pi_ref + r / beta (-inf off the support)
    return torch.softmax(logits, dim=dim)  # (..., V) pi* = pi_ref exp(r/beta) / Z
