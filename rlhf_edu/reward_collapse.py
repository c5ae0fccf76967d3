"""Reward collapse: ranking utilities, the optimal-reward solver, Beta limits, prompt-aware utilities.

Source: Lecture 6, section "Reward collapse in alignment" (Song, Cai, Lee and Su 2023, [SCLS23]).
A reward model R(prompt, completion) in [0, 1] is trained on rankings of n completions per prompt
by maximising sum_{(w, l)} U(R(prompt, w) - R(prompt, l)) over the ranked pairs, with an increasing
concave utility U. If the network can fit every prompt exactly, each prompt's rewards solve

    (4)   max  sum_{1 <= i < j <= n} U(r_i - r_j)   over   1 >= r_1 >= r_2 >= ... >= r_n >= 0,

a problem that does not mention the prompt at all: every prompt gets the same set of rewards
("reward collapse"). The lecture's utility classes and limits (as n -> infinity, the empirical
distribution of the optimal r_1, ..., r_n converges to):

- Class 1, U(x) = x^gamma (0 < gamma < 1): Theorem 1, Beta((1 - gamma)/2, (1 - gamma)/2);
- Class 2, U(x) = -x^(-gamma) (0 < gamma <= 1), U = log x at gamma = 0: Theorem 2,
  Beta((1 + gamma)/2, (1 + gamma)/2);
- Class 3, U(x) = log sigmoid(x / sigma) (InstructGPT's choice): no closed form; the rewards spread
  more evenly over [0, 1] as sigma shrinks.

The prompt-aware fix lets U depend on the prompt: U = x (polarised rewards) for closed-ended
prompts, U = -1/x (even spread) for open-ended ones.

Solver. Write the rewards through their gaps d_k = r_k - r_{k+1} >= 0 (k = 1..n-1). Since U is
increasing, the optimum uses the whole range (r_1 = 1, r_n = 0, so sum_k d_k = 1), and
r_i - r_j = d_i + ... + d_{j-1} is linear in d: (4) becomes a concave maximisation over the
simplex. :func:`optimal_rewards` solves it with Newton's method under the equality constraint,
with a log barrier on the gaps for utilities whose optimum may touch the boundary (U'(0) finite).
Gradient and Hessian come in O(n^2) from two-dimensional cumulative sums.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch

from ._checks import check_instance, check_int, check_positive
from .config import one_thread as _one_thread



# ----------------------------------------------------------------------------------------------
# Utility families
# ----------------------------------------------------------------------------------------------
_sigmoid = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
# kind -> (label, U, U', U'', valid parameter), each a function of (x, g) or g; g = gamma or sigma
_FORMS = {
    "power": (lambda g: f"x^{g:g}", lambda x, g: x**g, lambda x, g: g * x ** (g - 1),
              lambda x, g: g * (g - 1) * x ** (g - 2), lambda g: 0 < g < 1),
    "inverse_power": (lambda g: "log x" if g == 0 else f"-x^-{g:g}",
                      lambda x, g: np.log(x) if g == 0 else -(x ** -g),
                      lambda x, g: 1.0 / x if g == 0 else g * x ** (-g - 1),
                      lambda x, g: -1.0 / x**2 if g == 0 else -g * (g + 1) * x ** (-g - 2), lambda g: 0 <= g <= 1),
    "logsigmoid": (lambda g: f"logsigmoid(x/{g:g})",
                   lambda x, g: -np.logaddexp(0.0, -x / g),  # log sigma(x / sigma)
                   lambda x, g: 1.0 / (g * (1.0 + np.exp(x / g))),  # sigma(-x/sigma) / sigma
                   lambda x, g: -_sigmoid(x / g) * (1.0 - _sigmoid(x / g)) / g**2,
                   lambda g: g > 0),
    "linear": (lambda g: "x", lambda x, g: np.array(x, dtype=np.float64), lambda x, g: np.ones_like(x, dtype=np.float64),
               lambda x, g: np.zeros_like(x, dtype=np.float64), lambda g: True),
}
UTILITY_KINDS = tuple(_FORMS)


@dataclass(frozen=True)
class Utility:
    """An increasing concave utility U of a reward difference x, with its derivatives.

    Build one with :func:`power_utility`, :func:`inverse_power_utility`, :func:`log_utility`,
    :func:`logsigmoid_utility` or :func:`linear_utility`. ``value``/``grad``/``hess`` act on
    float64 numpy arrays of positive differences (the solver); :meth:`torch_value` acts on torch
    tensors of any sign (network training).
    """

    kind: str
    """One of ``power`` (x^gamma), ``inverse_power`` (-x^-gamma, log x at gamma 0), ``logsigmoid``, ``linear``."""
    param: float = 0.0
    """gamma for the power classes, sigma for ``logsigmoid``; unused for ``linear``."""

    def __post_init__(self):
        if self.kind not in UTILITY_KINDS:
            raise ValueError(f"kind: expected one of {UTILITY_KINDS}, got {self.kind!r}")
        p = self.param
        if not (isinstance(p, (int, float)) and math.isfinite(p) and _FORMS[self.kind][4](p)):
            raise ValueError(f"param: {p!r} is outside the range of a {self.kind} utility "
                             "(power: 0 < gamma < 1; inverse_power: 0 <= gamma <= 1; logsigmoid: sigma > 0)")

    @property
    def name(self) -> str:
        """A label for plots, e.g. ``x^0.5``, ``log x``, ``-x^-1``, ``logsigmoid(x/0.1)``."""
        return _FORMS[self.kind][0](self.param)

    @property
    def interior(self) -> bool:
        """Whether U'(0+) is infinite, which keeps every gap of the optimum strictly positive."""
        return self.kind in ("power", "inverse_power")

    def value(self, x: np.ndarray) -> np.ndarray:
        """U(x) for x > 0 (x >= 0 for ``power``, ``linear``, ``logsigmoid``)."""
        return _FORMS[self.kind][1](x, self.param)

    def grad(self, x: np.ndarray) -> np.ndarray:
        """U'(x)."""
        return _FORMS[self.kind][2](x, self.param)

    def hess(self, x: np.ndarray) -> np.ndarray:
        """U''(x) (<= 0: U is concave)."""
        return _FORMS[self.kind][3](x, self.param)

    def torch_value(self, x: torch.Tensor, eps: float = 0.05) -> torch.Tensor:
        """U(x) on tensors of any sign, for training a reward network.

        The lecture notes that U must be extended to negative differences during training (a
        mis-ranked pair has r_w - r_l < 0). Below ``eps``, the power classes continue along their
        tangent at ``eps`` (a C^1, concave, increasing extension):
        U(x) = U(eps) + U'(eps) (x - eps) for x < eps. ``logsigmoid`` and ``linear`` need none.
        """
        if self.kind == "logsigmoid":
            return torch.nn.functional.logsigmoid(x / self.param)
        if self.kind == "linear":
            return x
        e = torch.as_tensor(eps, dtype=x.dtype)
        xs = torch.clamp(x, min=eps)  # the formula is only used where x >= eps
        g = self.param
        if self.kind == "power":
            u, u_e, du_e = xs**g, e**g, g * e ** (g - 1)
        elif g == 0:
            u, u_e, du_e = torch.log(xs), torch.log(e), 1.0 / e
        else:
            u, u_e, du_e = -(xs**-g), -(e**-g), g * e ** (-g - 1)
        return torch.where(x >= eps, u, u_e + du_e * (x - eps))  # tangent extension below eps


def power_utility(gamma: float) -> Utility:
    """Class 1 of the lecture: U(x) = x^gamma with 0 < gamma < 1 (Theorem 1)."""
    return Utility("power", gamma)


def inverse_power_utility(gamma: float) -> Utility:
    """Class 2 of the lecture: U(x) = -x^(-gamma) with 0 <= gamma <= 1; log x at gamma = 0 (Theorem 2)."""
    return Utility("inverse_power", gamma)


def log_utility() -> Utility:
    """U(x) = log x (Class 2 at gamma = 0)."""
    return inverse_power_utility(0.0)


def logsigmoid_utility(sigma: float = 1.0) -> Utility:
    """Class 3 of the lecture: U(x) = log sigmoid(x / sigma), sigma > 0 (the InstructGPT RM loss)."""
    return Utility("logsigmoid", sigma)


def linear_utility() -> Utility:
    """U(x) = x: the limit gamma -> 1 of Class 1; its optimum is polarised (rewards 0 or 1)."""
    return Utility("linear", 1.0)


def prompt_aware_utility(open_ended: bool) -> Utility:
    """The lecture's prompt-aware choice: -1/x for open-ended prompts, x for closed-ended ones.

    -1/x (Theorem 2, gamma = 1) spreads the rewards evenly (Beta(1, 1), uniform); x pushes them to
    the two ends, the two-group shape a closed-ended prompt's answers should get.
    """
    return inverse_power_utility(1.0) if open_ended else linear_utility()


def beta_limit(utility: Utility):
    """The n -> infinity limit of the optimal rewards' distribution (Theorems 1 and 2).

    Returns a frozen ``scipy.stats.beta``: Beta((1 - g)/2, (1 - g)/2) for x^g and
    Beta((1 + g)/2, (1 + g)/2) for -x^-g (log x at g = 0). Other utilities have no theorem and
    raise ValueError.
    """
    from scipy.stats import beta

    if utility.kind == "power":
        a = (1 - utility.param) / 2  # Theorem 1
    elif utility.kind == "inverse_power":
        a = (1 + utility.param) / 2  # Theorem 2
    else:
        raise ValueError(f"utility: expected a Class 1 or Class 2 utility (a Beta limit), got {utility.name}")
    return beta(a, a)


# ----------------------------------------------------------------------------------------------
# The optimisation problem (4) and its solver
# ----------------------------------------------------------------------------------------------
def _pair_diffs(r: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    iu = np.triu_indices(r.size, 1)  # all pairs i < j (i ranked above j)
    return r[iu[0]] - r[iu[1]], iu  # (n(n-1)/2,) r_i - r_j


def total_utility(rewards, utility: Utility) -> float:
    """The objective of (4): sum over i < j of U(r_i - r_j), rewards sorted best first, in [0, 1]."""
    diffs, _ = _pair_diffs(np.asarray(rewards, dtype=np.float64))
    return float(utility.value(diffs).sum())


def _rewards_from_gaps(d: np.ndarray) -> np.ndarray:
    return np.concatenate([np.cumsum(d[::-1])[::-1], [0.0]])  # (n,) r_k = d_k + ... + d_{n-1}


def _corner_sums(a: np.ndarray) -> np.ndarray:
    """S[p, q] = sum over i <= p, j >= q of a[i, j] (a is n x n)."""
    return np.cumsum(np.cumsum(a[:, ::-1], axis=1)[:, ::-1], axis=0)


def gap_gradient_hessian(rewards, utility: Utility) -> tuple[np.ndarray, np.ndarray]:
    """Gradient (n-1,) and Hessian (n-1, n-1) of (4) with respect to the gaps d_k = r_k - r_{k+1}.

    Gap k lies inside pair (i, j) when i <= k < j, so dF/dd_k = sum_{i <= k < j} U'(r_i - r_j) and
    d2F/dd_k dd_l = sum_{i <= min(k, l), j > max(k, l)} U''(r_i - r_j).
    """
    r = np.asarray(rewards, dtype=np.float64)
    n = r.size
    diffs, iu = _pair_diffs(r)
    a1, a2 = np.zeros((n, n)), np.zeros((n, n))
    a1[iu], a2[iu] = utility.grad(diffs), utility.hess(diffs)
    s1, s2 = _corner_sums(a1), _corner_sums(a2)
    k = np.arange(n - 1)
    grad = s1[k, k + 1]  # (n-1,)
    hess = s2[np.minimum.outer(k, k), np.maximum.outer(k, k) + 1]  # (n-1, n-1)
    return grad, hess


def kkt_gap(rewards, utility: Utility) -> float:
    """Optimality certificate of rewards for (4): the best first-order gain of any feasible move.

    In gap coordinates the feasible set is the simplex {d >= 0, sum d = 1}; the largest directional
    derivative towards any feasible point is max_k g_k - g . d (the Frank-Wolfe gap, g the gap
    gradient). It is >= 0, zero exactly at the optimum (KKT: g_k equal on every positive gap and
    no larger on zero gaps), and bounds the objective's distance to the optimum. Returned relative
    to max_k |g_k|.
    """
    r = np.asarray(rewards, dtype=np.float64)
    if r[0] != 1.0 or r[-1] != 0.0:
        return math.inf  # not using the full range: raising r_1 or lowering r_n is an ascent direction
    d = -np.diff(r)  # (n-1,) gaps
    g, _ = gap_gradient_hessian(r, utility)
    return float((g.max() - g @ d) / np.abs(g).max())


@dataclass
class CollapseSolution:
    """Result of :func:`optimal_rewards`."""

    rewards: np.ndarray
    """(n,) optimal rewards, best-ranked first: 1 = r_1 >= ... >= r_n = 0."""
    objective: float
    """sum_{i<j} U(r_i - r_j) at the optimum."""
    kkt_gap: float
    """:func:`kkt_gap` of the returned rewards (about 1e-10 or less when solved)."""
    newton_steps: int
    """Newton iterations used."""
    utility: Utility = field(repr=False, default=None)


def _newton_direction(grad: np.ndarray, hess: np.ndarray) -> np.ndarray:
    """Newton step for minimising with Hessian ``hess`` (positive definite) under sum(step) = 0.

    The Cholesky solve runs in torch on one thread (numpy's multi-threaded BLAS only spins on
    matrices this small, and on a busy machine is a hundred times slower).
    """
    with _one_thread():
        chol = torch.linalg.cholesky(torch.from_numpy(hess))  # (m, m)
        rhs = torch.from_numpy(np.stack([grad, np.ones_like(grad)], axis=1))  # (m, 2)
        sol = torch.cholesky_solve(rhs, chol).numpy()  # (m, 2): H^-1 grad, H^-1 1
    hg, h1 = sol[:, 0], sol[:, 1]
    nu = -hg.sum() / h1.sum()  # multiplier of the constraint 1 . step = 0
    return -(hg + nu * h1)


def _gap_kkt(d: np.ndarray, g: np.ndarray) -> float:
    """Frank-Wolfe gap max_k g_k - g . d of gaps d (summing to 1), relative to max_k |g_k|."""
    return float((g.max() - g @ (d / d.sum())) / np.abs(g).max())


def optimal_rewards(n: int, utility: Utility, tol: float = 1e-10, max_steps: int = 500) -> CollapseSolution:
    """Solve (4) for n ranked completions: the rewards a perfectly fitting reward model assigns.

    Concave maximisation over the gaps d (simplex), by equality-constrained Newton steps with a
    backtracking line search that keeps every gap positive. For ``log``/``x^gamma``/``-x^-gamma``
    the optimum is interior (U'(0) is infinite): plain Newton runs until the KKT gap itself is
    <= tol. For ``logsigmoid`` and ``linear`` a log barrier mu * sum log d_k is added and mu is
    driven to zero (duality gap (n - 1) mu <= tol * |F|). Returns a :class:`CollapseSolution`
    for the iterate with the smallest KKT gap seen.

    Why stop on the KKT gap, not on the Newton decrement: for x^0.5 at n = 200 the smallest gaps
    are ~3e-8 and the Hessian's condition number ~2e8, so the decrement reaches rounding level
    (even turns negative) one or two steps before the KKT gap falls below 1e-8; which step that is
    depended on the machine's floating-point path.
    """
    check_int("n", n, 2)
    m = n - 1
    d = np.full(m, 1.0 / m)  # equal gaps: evenly spaced rewards
    objective = lambda gaps: float(utility.value(_pair_diffs(_rewards_from_gaps(gaps))[0]).sum())
    mu = 0.0 if utility.interior else abs(objective(d)) / m
    steps, best_d, best_kkt = 0, d, math.inf
    while True:
        for _ in range(max_steps):
            r = _rewards_from_gaps(d)
            f = objective(d)
            g, h = gap_gradient_hessian(r, utility)
            gap = _gap_kkt(d, g)
            if gap < best_kkt:
                best_d, best_kkt = d, gap
            if mu == 0.0 and gap <= tol:
                break
            grad, hess = -g - mu / d, -h + np.diag(mu / d**2)  # of phi = -F - mu sum log d
            step = _newton_direction(grad, hess)
            decrement = -grad @ step  # Newton decrement squared
            steps += 1
            if mu > 0.0 and decrement / 2 <= 1e-22 * max(1.0, abs(f)):
                break  # barrier subproblem solved to rounding (a negative decrement is rounding too)
            shrink = step < 0
            s = min(1.0, 0.99 * np.min(-d[shrink] / step[shrink])) if shrink.any() else 1.0
            phi = -f - mu * np.log(d).sum()
            slack = 1e-14 * max(1.0, abs(phi))  # rounding noise of phi: lets Newton finish converging
            while s > 1e-16:  # backtracking (Armijo)
                new = d + s * step
                f_new = objective(new)
                if np.isfinite(f_new) and -f_new - mu * np.log(new).sum() <= phi - 0.25 * s * decrement + slack:
                    break
                s *= 0.5
            else:
                break  # no decrease representable in float64: converged to rounding
            d = new
        if mu == 0.0 or mu * m <= tol * max(1.0, abs(f)):
            break
        mu /= 10.0
        best_kkt = math.inf  # the barrier optimum moves with mu: only iterates at the final mu count
    d = best_d if mu == 0.0 else d
    r = np.clip(_rewards_from_gaps(d / d.sum()), 0.0, 1.0)  # remove rounding outside [0, 1]
    r[0], r[-1] = 1.0, 0.0
    return CollapseSolution(rewards=r, objective=objective(d), kkt_gap=kkt_gap(r, utility),
                            newton_steps=steps, utility=utility)


def ks_distance(rewards, utility: Utility) -> float:
    """Kolmogorov-Smirnov distance between the rewards' empirical CDF and the theorem's Beta CDF.

    rewards: (n,) values in [0, 1]. Uses ``scipy.stats.kstest``. Even a perfect fit of n points
    that include both end points has a distance of at least 1/n.
    """
    from scipy.stats import kstest

    r = np.asarray(rewards, dtype=np.float64)
    return float(kstest(r, beta_limit(utility).cdf).statistic)


# ----------------------------------------------------------------------------------------------
# Training a reward network on rankings: collapse vs prompt-aware utilities
# ----------------------------------------------------------------------------------------------
@dataclass
class RankingTask:
    """Synthetic ranked completions for two kinds of prompts (P prompts, n completions each).

    quality: (P, n) latent quality of each completion, sorted best first (the human ranking).
    open_ended: (P,) bool. Open-ended prompts have qualities spread evenly over [0, 1];
    closed-ended ones have two groups, right (near 0.9) or wrong (near 0.1).
    """

    quality: torch.Tensor
    open_ended: torch.Tensor


def make_ranking_task(n_prompts: int = 32, n_completions: int = 16, seed: int = 0,
                      spread: float = 0.03) -> RankingTask:
    """Half open-ended, half closed-ended prompts (see :class:`RankingTask`), seeded."""
    if n_prompts < 2 or n_prompts % 2 or n_completions < 2:
        raise ValueError(f"n_prompts/n_completions: expected an even n_prompts >= 2 and n_completions >= 2, "
                         f"got {n_prompts} and {n_completions}")
    g = torch.Generator().manual_seed(seed)
    half = n_prompts // 2
    open_q = torch.rand(half, n_completions, generator=g)  # (P/2, n) uniform on [0, 1]
    right = torch.rand(half, n_completions, generator=g) < 0.5  # (P/2, n) right or wrong answer
    closed_q = torch.where(right, 0.9, 0.1) + spread * torch.randn(half, n_completions, generator=g)
    quality = torch.cat([open_q, closed_q.clamp(0, 1)]).sort(dim=1, descending=True).values  # (P, n)
    open_ended = torch.cat([torch.ones(half, dtype=torch.bool), torch.zeros(half, dtype=torch.bool)])
    return RankingTask(quality=quality, open_ended=open_ended)


class RankingLoss(NamedTuple):
    """Output of :func:`ranking_utility_loss`."""

    losses: torch.Tensor
    """(P,) -mean_{i<j} U_p(R_{p,i} - R_{p,j}) (differentiable); average it for a batch loss."""
    pair_margins: torch.Tensor
    """(P, n(n-1)/2) R_w - R_l of every ranked pair (detached); negative means mis-ranked."""


def ranking_utility_loss(rewards: torch.Tensor, utilities: list[Utility], eps: float = 0.05) -> RankingLoss:
    """Per-prompt negative mean utility over ranked pairs (the lecture's training objective).

    loss_p = -mean_{i<j} U_p(R_{p,i} - R_{p,j}), with completions sorted best first.
    rewards: (P, n). utilities: P utilities (one per prompt: a fixed U, or prompt-aware U_prom).
    Returns :class:`RankingLoss` (``losses`` (P,)). Utilities are extended below ``eps`` (see
    :meth:`Utility.torch_value`).
    """
    i, j = torch.triu_indices(rewards.shape[1], rewards.shape[1], offset=1)
    diffs = rewards[:, i] - rewards[:, j]  # (P, n(n-1)/2) R_w - R_l over ranked pairs
    losses = torch.zeros(rewards.shape[0], dtype=rewards.dtype, device=rewards.device)  # (P,)
    for u in set(utilities):  # one vectorised call per distinct utility
        rows = torch.tensor([k for k, v in enumerate(utilities) if v == u], device=rewards.device)
        losses = losses.index_put((rows,), -u.torch_value(diffs[rows], eps).mean(dim=1))  # (P,)
    return RankingLoss(losses, diffs.detach())


# ----------------------------------------------------------------------------------------------
# Distance to the Beta limit that has no 1/n floor
# ----------------------------------------------------------------------------------------------
def pp_distance(rewards, utility: Utility) -> float:
    """Largest gap of the P-P plot: max_k |F(r_(k)) - (k - 1)/(n - 1)|, F the theorem's Beta CDF.

    The optimal rewards are not a random sample but n deterministic points from 0 to 1, so the
    natural question is whether they sit at the Beta quantiles F^-1((k - 1)/(n - 1)),
    k = 1..n (which include the end points 0 and 1). This distance is 0 exactly when they do, so
    unlike the KS distance (:func:`ks_distance`, at least 1/n because the empirical CDF jumps by
    1/n at 0 and at 1) it has no floor, and its decay with n is the rate of convergence.
    rewards: (n,) values in [0, 1], any order. Returns a float.
    """
    r = np.sort(np.asarray(rewards, dtype=np.float64))  # (n,)
    levels = np.arange(r.size) / (r.size - 1)  # (n,) (k - 1)/(n - 1)
    return float(np.abs(beta_limit(utility).cdf(r) - levels).max())


# ----------------------------------------------------------------------------------------------
# A reward model with shared parameters, evaluated on held-out prompts (Song et al.'s setting)
# ----------------------------------------------------------------------------------------------
@dataclass
class FeatureRankingTask:
    """Prompts and completions described by features, ranked by a hidden quality (P prompts, n each).

    Every completion has a latent score s = a . z (a fixed unit vector a, z ~ N(0, I), so
    s ~ N(0, 1)); labellers rank the completions of a prompt by s. Open-ended prompts have
    qualities Phi(s), uniform on [0, 1]. Closed-ended prompts have a right/wrong threshold t_p
    (a function of the prompt's features): answers with s > t_p are right (quality near 0.9), the others wrong (near
    0.1), with a small within-group spread that follows s. The ranking is the same kind of object
    for both types; only the qualities (which the reward model never sees) differ.
    """

    prompt_x: torch.Tensor
    """(P, d_p) prompt features; feature 0 (plus noise) decides whether the prompt is open-ended."""
    completion_z: torch.Tensor
    """(P, n, d_c) completion features, completions sorted best first."""
    quality: torch.Tensor
    """(P, n) hidden quality in [0, 1], sorted best first (the labellers' ranking)."""
    open_ended: torch.Tensor
    """(P,) bool."""
    right: torch.Tensor
    """(P, n) bool: the answer is right (closed-ended prompts; True where s > t_p, also recorded for open ones)."""


def make_feature_ranking_task(n_prompts: int = 64, n_completions: int = 16, seed: int = 0,
                              prompt_dim: int = 4, completion_dim: int = 4,
                              type_noise: float = 0.3, threshold_scale: float = 0.6) -> FeatureRankingTask:
    """Sample a :class:`FeatureRankingTask`. A prompt is open-ended when x_0 + type_noise * eps > 0;
    a closed-ended prompt's right/wrong threshold is t_p = threshold_scale * x_1 (visible to a model).

    The score direction a is drawn from a generator fixed across seeds (seed 1234), so tasks with
    different seeds (train and held-out prompts) share the same quality function.
    """
    check_int("n_prompts", n_prompts, 2), check_int("n_completions", n_completions, 2)
    check_int("prompt_dim", prompt_dim), check_int("completion_dim", completion_dim)
    a = torch.randn(completion_dim, generator=torch.Generator().manual_seed(1234), dtype=torch.float64)
    a = a / a.norm()  # (d_c,) shared score direction
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_prompts, prompt_dim, generator=g, dtype=torch.float64)  # (P, d_p)
    open_ended = x[:, 0] + type_noise * torch.randn(n_prompts, generator=g, dtype=torch.float64) > 0  # (P,)
    z = torch.randn(n_prompts, n_completions, completion_dim, generator=g, dtype=torch.float64)  # (P, n, d_c)
    threshold = threshold_scale * x[:, 1:2] if prompt_dim > 1 else torch.zeros(n_prompts, 1, dtype=torch.float64)  # (P, 1) t_p
    s = z @ a  # (P, n) latent score
    order = s.argsort(dim=1, descending=True)  # (P, n) the labellers' ranking
    z = torch.gather(z, 1, order[..., None].expand_as(z))
    s = torch.gather(s, 1, order)
    right = s > threshold  # (P, n)
    closed_q = torch.where(right, 0.9, 0.1) + 0.03 * torch.tanh(s - threshold)  # (P, n)
    open_q = torch.special.ndtr(s)  # (P, n) Phi(s), uniform on [0, 1]
    quality = torch.where(open_ended[:, None], open_q, closed_q)
    return FeatureRankingTask(prompt_x=x.float(), completion_z=z.float(), quality=quality.float(),
                              open_ended=open_ended, right=right)


class SharedRewardNet(torch.nn.Module):
    """R(prompt, completion) = sigmoid(MLP([x_p, z])): one network shared by every prompt, in (0, 1).

    Unlike :class:`RankingRewardNet` it has no free parameter per completion: what it learns on
    training prompts must carry over to prompts it has never seen.
    """

    def __init__(self, prompt_dim: int, completion_dim: int, hidden: int = 64):
        super().__init__()
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(prompt_dim + completion_dim, hidden), torch.nn.Tanh(),
            torch.nn.Linear(hidden, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 1))

    def forward(self, prompt_x: torch.Tensor, completion_z: torch.Tensor) -> torch.Tensor:
        """prompt_x (P, d_p), completion_z (P, n, d_c) -> rewards (P, n) in (0, 1)."""
        x = prompt_x[:, None, :].expand(-1, completion_z.shape[1], -1)  # (P, n, d_p)
        return torch.sigmoid(self.mlp(torch.cat([x, completion_z], dim=-1)).squeeze(-1))  # (P, n)


@dataclass
class SharedTrainConfig:
    """Hyper-parameters of :func:`train_shared_reward_model`."""

    steps: int = 400
    """Adam steps on the ranking loss (full batch over the training prompts)."""
    warm_steps: int = 200
    """Adam steps of a warm start that regresses R on the hidden quality (MSE), so that the two prompt
    types start with their true reward distributions; 0 for none."""
    lr: float = 0.01
    """Adam learning rate."""
    hidden: int = 64
    """Width of the two hidden layers."""
    eps: float = 0.05
    """Below this difference the power utilities continue linearly (:meth:`Utility.torch_value`)."""
    snapshot_every: int = 25
    """Record the held-out rewards every this many ranking steps."""
    seed: int = 0
    """Seeds the network's initialisation."""

    def __post_init__(self):
        for name in ("steps", "hidden", "snapshot_every"):
            check_int(name, getattr(self, name))
        check_int("warm_steps", self.warm_steps, 0), check_int("seed", self.seed, 0)
        for name in ("lr", "eps"):
            check_positive(name, getattr(self, name))


def train_shared_reward_model(train: FeatureRankingTask, test: FeatureRankingTask, utilities: list[Utility],
                              config: SharedTrainConfig) -> dict[str, list]:
    """Warm-start a :class:`SharedRewardNet` on the hidden quality, then maximise sum U_p(R_w - R_l).

    train, test: :class:`FeatureRankingTask` with the same feature sizes. utilities: one per training
    prompt (a fixed U for all, or a prompt-aware choice). The loss is :func:`ranking_utility_loss`
    over all ranked pairs of each prompt (the lecture's objective). Returns a history: ``step`` and
    ``loss`` per step; per snapshot (step 0 = after the warm start) ``snapshot_step`` and
    ``test_rewards`` / ``train_rewards``, numpy arrays (P, n) of the rewards.
    """
    check_instance("train", train, FeatureRankingTask), check_instance("test", test, FeatureRankingTask)
    check_instance("config", config, SharedTrainConfig)
    if len(utilities) != train.prompt_x.shape[0]:
        raise ValueError(f"utilities: expected one per training prompt ({train.prompt_x.shape[0]}), got {len(utilities)}")
    torch.manual_seed(config.seed)
    model = SharedRewardNet(train.prompt_x.shape[1], train.completion_z.shape[2], config.hidden)
    history: dict[str, list] = {"step": [], "loss": [], "snapshot_step": [], "test_rewards": [], "train_rewards": []}

    def snapshot(step: int) -> None:
        with torch.no_grad():
            history["snapshot_step"].append(step)
            history["test_rewards"].append(model(test.prompt_x, test.completion_z).numpy())  # (P_test, n)
            history["train_rewards"].append(model(train.prompt_x, train.completion_z).numpy())  # (P, n)

    with _one_thread():
        opt = torch.optim.Adam(model.parameters(), lr=config.lr)
        for _ in range(config.warm_steps):  # warm start: R close to the hidden quality
            loss = (model(train.prompt_x, train.completion_z) - train.quality).pow(2).mean()
            opt.zero_grad(set_to_none=True), loss.backward(), opt.step()
        opt = torch.optim.Adam(model.parameters(), lr=config.lr)
        snapshot(0)
        for step in range(1, config.steps + 1):
            rewards = model(train.prompt_x, train.completion_z)  # (P, n)
            loss = ranking_utility_loss(rewards, utilities, config.eps).losses.mean()
            opt.zero_grad(set_to_none=True), loss.backward(), opt.step()
            history["step"].append(step)
            history["loss"].append(float(loss.detach()))
            if step % config.snapshot_every == 0 or step == config.steps:
                snapshot(step)
    return history
