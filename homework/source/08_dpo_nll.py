# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Homework 08 · DPO and DPO+NLL
#
# Companion to lecture notebook 08. Four exercises; each answer cell holds a stub
# (`raise NotImplementedError()`): replace the stub with your answer, then run the check cell under
# it, which prints one line, `Exercise N (...): PASS` or `FAIL - reason`. The checks you see test the
# form of your answer; the grader runs further tests you do not see. Do not edit the check cells
# (the grader runs its own copy of them). Exercise 1 must be your own code: a check fails if your
# function calls the library's DPO losses.
#
# Eqs. (7)–(8) of the Regularization chapter, per pair, with summed log-probabilities
# $\log\pi_\theta(y\mid x)$ and $|y_w|$ the chosen response's token count:
#
# $$\mathcal{L}_{\mathrm{DPO+NLL}} = -\log\sigma\Big(\beta\log\frac{\pi_\theta(y_w\mid x)}{\pi_{\mathrm{ref}}(y_w\mid x)}
# - \beta\log\frac{\pi_\theta(y_l\mid x)}{\pi_{\mathrm{ref}}(y_l\mid x)}\Big) - \alpha\,\frac{\log\pi_\theta(y_w\mid x)}{|y_w|}.$$

# %%
import numpy as np
import scipy
import torch
import torch.nn.functional as F

import rlhf_edu.dpo as dpo
from rlhf_edu.homework import assert_no_library_calls, exercise

# %% [markdown]
# ## Exercise 1 · The DPO+NLL loss (re-implementation)
#
# Write `dpo_nll(pc, pr, rc, rr, lengths, beta, alpha)`: the batch mean of eq. (8), where `pc`,
# `pr` are the policy's summed log-probabilities of the chosen and rejected responses, `rc`, `rr`
# the reference's, and `lengths` the chosen token counts (all `(B,)` float64 tensors). Return a
# 0-dim tensor that autograd can differentiate, finite even when the margin is $\pm 1000$.

# %%
def dpo_nll(pc, pr, rc, rr, lengths, beta, alpha):
    """pc, pr, rc, rr, lengths: (B,) float64; beta > 0; alpha >= 0 -> 0-dim tensor, mean of eq. (8)."""
    ### BEGIN SOLUTION
    z = beta * ((pc - rc) - (pr - rr))
    return (-F.logsigmoid(z) - alpha * pc / lengths).mean()
    ### END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
with exercise(1, "the DPO+NLL loss of eq. (8)"):
    _one = torch.zeros(2, dtype=torch.float64)
    assert dpo_nll(_one, _one, _one, _one, _one + 1, 0.1, 0.0).dim() == 0, "return a 0-dim tensor (the batch mean)"
    ### BEGIN HIDDEN TESTS
    assert_no_library_calls(dpo_nll, dpo.dpo_loss, dpo.dpo_nll_loss, dpo.length_normalised_nll, dpo.ipo_loss,
                            dpo.token_mean_nll)
    _g = torch.Generator().manual_seed(8)
    _pc = (torch.randn(6, generator=_g, dtype=torch.float64) * 5 - 20).requires_grad_()
    _pr, _rc, _rr = (torch.randn(6, generator=_g, dtype=torch.float64) * 5 - 20 for _ in range(3))
    _len = torch.tensor([3.0, 7.0, 12.0, 5.0, 1.0, 9.0], dtype=torch.float64)
    _pr[0] = _pc[0].detach() + 10_000  # margin -1000 at beta = 0.1
    for _beta, _alpha in [(0.1, 0.0), (0.1, 1.0), (0.5, 0.3)]:
        _z = (_beta * ((_pc - _rc) - (_pr - _rr))).detach().numpy()
        _want = np.mean(np.logaddexp(0, -_z) - _alpha * _pc.detach().numpy() / _len.numpy())  # eq. (8), numpy
        _got = dpo_nll(_pc, _pr, _rc, _rr, _len, _beta, _alpha)
        assert torch.isfinite(_got) and abs(float(_got) - _want) < 1e-9 * max(1, abs(_want)), "differs from eq. (8)"
        (_grad,) = torch.autograd.grad(_got, _pc)
        _want_grad = (-_beta * scipy.special.expit(-_z) - _alpha / _len.numpy()) / 6  # d/d pc, closed form
        assert np.allclose(_grad.numpy(), _want_grad, atol=1e-12), "gradient differs (is it differentiable?)"
    ### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 2 · One pair by hand (derivation)
#
# Take $\beta = 0.1$ and $\alpha = 0$. After some training, the policy's log-ratio against the
# reference is $+2$ on the chosen response and $+5$ on the rejected one (it raised both, the rejected
# more). Compute by hand
#
# - `loss_value`: the DPO loss of this pair;
# - `grad_weight`: the factor $w$ in $\nabla_\theta \mathcal{L} = -\beta\, w\, \big(\nabla_\theta\log\pi_\theta(y_w) - \nabla_\theta\log\pi_\theta(y_l)\big)$,
#   i.e. $\sigma$ of minus the margin $\beta(2 - 5)$.
#
# Would a pair the model already ranks correctly by a wide margin get a larger or a smaller $w$?

# %%
### BEGIN SOLUTION
loss_value = float(np.log1p(np.exp(0.3)))
grad_weight = float(1 / (1 + np.exp(-0.3)))
### END SOLUTION

# %%
# NBVAL_CHECK_OUTPUT
with exercise(2, "a DPO loss and its gradient weight by hand"):
    assert isinstance(float(loss_value), float) and isinstance(float(grad_weight), float), "assign two numbers"
    ### BEGIN HIDDEN TESTS
    _u = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)  # the chosen log-ratio
    _loss = -F.logsigmoid(0.1 * (_u - 5.0))
    (_du,) = torch.autograd.grad(_loss, _u)  # = -beta * w
    assert abs(loss_value - float(_loss)) < 1e-4, "the loss is off"
    assert abs(grad_weight - float(-_du / 0.1)) < 1e-4, "the gradient weight is off"
    ### END HIDDEN TESTS

# %% [markdown]
# ## A toy policy for Exercises 3 and 4
#
# Six responses with two features each; the policy is a softmax of $\theta \cdot \phi(y)$, so a
# step on one response moves every response that shares its features. The chosen response
# ($\phi = (1, 0.9)$, 5 tokens) and the rejected one ($\phi = (1, 1)$) look alike. `train(alpha)`
# runs 200 gradient steps of eq. (8) from $\theta = 0$ (which is also $\pi_{\mathrm{ref}}$) and returns
# how far $\log\pi_\theta(y_w)$ moved and the final DPO margin
# $\beta\big(\log\frac{\pi_\theta(y_w)}{\pi_{\mathrm{ref}}(y_w)} - \log\frac{\pi_\theta(y_l)}{\pi_{\mathrm{ref}}(y_l)}\big)$.

# %%
phi = torch.tensor([[1.0, 0.9], [1.0, 1.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.3], [0.2, 0.0]], dtype=torch.float64)
CHOSEN, REJECTED, LENGTH, BETA = 0, 1, 5, 0.5


def train(alpha: float, steps: int = 200, lr: float = 0.5) -> tuple[float, float]:
    theta = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    ref = torch.log_softmax(phi @ theta.detach(), 0)
    opt = torch.optim.SGD([theta], lr=lr)
    for _ in range(steps):
        lp = torch.log_softmax(phi @ theta, 0)
        z = BETA * ((lp[CHOSEN] - ref[CHOSEN]) - (lp[REJECTED] - ref[REJECTED]))
        loss = -F.logsigmoid(z) - alpha * lp[CHOSEN] / LENGTH
        opt.zero_grad()
        loss.backward()
        opt.step()
    lp = torch.log_softmax(phi @ theta, 0).detach()
    return float(lp[CHOSEN] - ref[CHOSEN]), float(BETA * ((lp[CHOSEN] - ref[CHOSEN]) - (lp[REJECTED] - ref[REJECTED])))

# %% [markdown]
# ## Exercise 3 · Does plain DPO make the chosen response more likely? (predict-then-run)
#
# **Before running the next cell**, predict what plain DPO ($\alpha = 0$) does to
# $\log\pi_\theta(y_w)$ on the toy policy: set `prediction = "up"` or `prediction = "down"`.

# %%
### BEGIN SOLUTION
prediction = "down"
### END SOLUTION

# %%
chosen_shift, margin = train(0.0)
print(f"plain DPO: log pi(y_w) moved by {chosen_shift:+.2f} nats; final margin {margin:+.3f}")

# %%
# NBVAL_CHECK_OUTPUT
with exercise(3, "the chosen log-probability under plain DPO"):
    assert prediction in ("up", "down"), 'prediction must be "up" or "down"'
    ### BEGIN HIDDEN TESTS
    assert margin > 0, "the toy run should raise the margin"
    assert prediction == ("up" if chosen_shift > 0 else "down"), "the experiment says otherwise"
    ### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 4 · Pick the NLL weight on a budget (design)
#
# You want an $\alpha$ for which, after `train(alpha)`, the chosen response's log-probability has
# **risen by at least 0.5 nats** and the DPO **margin is at least 0.1**. Your budget is **three
# training runs**: list the (at most three) values of $\alpha \ge 0$ you would try in `alphas`,
# ordered as you would run them, and set `chosen_alpha` to the one you would keep. The next cell
# runs exactly your three and prints their results; the grader checks that `chosen_alpha` meets both
# targets in that run. Reason before you try: what does the NLL term add to the gradient of
# $\theta$, and how does that interact with the margin?

# %%
### BEGIN SOLUTION
alphas = [1.0, 10.0, 30.0]
chosen_alpha = 10.0
### END SOLUTION

# %%
design_runs = {float(a): train(float(a)) for a in list(alphas)[:3]}
for a, (shift, m) in design_runs.items():
    print(f"alpha = {a:g}: log pi(y_w) moved {shift:+.2f} nats, margin {m:+.3f}")

# %%
# NBVAL_CHECK_OUTPUT
with exercise(4, "an NLL weight that meets both targets in three runs"):
    assert 1 <= len(alphas) <= 3 and float(chosen_alpha) in [float(a) for a in alphas], \
        "at most three alphas, and chosen_alpha must be one of them"
    ### BEGIN HIDDEN TESTS
    _shift, _margin = design_runs[float(chosen_alpha)]
    assert float(chosen_alpha) >= 0 and _shift >= 0.5 and _margin >= 0.1, \
        f"alpha = {chosen_alpha}: shift {_shift:+.2f}, margin {_margin:+.3f} miss a target"
    ### END HIDDEN TESTS
