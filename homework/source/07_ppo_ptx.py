# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Homework 07 · PPO with a KL penalty and pretraining gradients
#
# Companion to lecture notebook 07. Four exercises; each answer cell holds a stub
# (`raise NotImplementedError()`): replace the stub with your answer, then run the check cell under
# it, which prints one line, `Exercise N (...): PASS` or `FAIL - reason`. The checks you see test the
# form of your answer; the grader runs further tests you do not see. Do not edit the check cells
# (the grader runs its own copy of them). Exercise 1 must be your own code: a check fails if your
# function calls the library's GAE.
#
# Eq. (2) of the Regularization chapter: $r = r_\theta - \lambda_{\mathrm{KL}}\,
# D_{\mathrm{KL}}(\pi_{\mathrm{RL}}\,\|\,\pi_{\mathrm{ref}})$, spread over tokens as
# $r_t = \mathbb{1}(t = T)\,r_\theta - \beta(\log\pi_\theta(a_t|s_t) - \log\pi_{\mathrm{ref}}(a_t|s_t))$.
# PPO's clipped surrogate per token, with $\rho_t = \pi_\theta(a_t|s_t)/\pi_{\mathrm{old}}(a_t|s_t)$:
# $\min\big(\rho_t A_t,\ \mathrm{clip}(\rho_t, 1-\epsilon, 1+\epsilon)\,A_t\big)$, maximised.

# %%
import torch

import rlhf_edu.ppo as ppo
from rlhf_edu.homework import assert_no_library_calls, exercise

# %% [markdown]
# ## Exercise 1 · Generalised advantage estimation (re-implementation)
#
# Write `gae_own(rewards, values, gamma, lam)` for one response: `rewards` and `values` are `(R,)`
# float64 tensors ($r_t$ and $V(s_t)$), and $V = 0$ after the last token. With
# $\delta_t = r_t + \gamma V(s_{t+1}) - V(s_t)$, return the `(R,)` advantages
# $A_t = \delta_t + \gamma\lambda A_{t+1}$ (a reverse loop over $t$).

# %%
def gae_own(rewards, values, gamma, lam):
    """rewards, values: (R,) float64 -> (R,) advantages."""
    ### BEGIN SOLUTION
    adv, last = torch.zeros_like(rewards), 0.0
    for t in reversed(range(rewards.shape[0])):
        next_v = values[t + 1] if t + 1 < rewards.shape[0] else 0.0
        last = rewards[t] + gamma * next_v - values[t] + gamma * lam * last
        adv[t] = last
    return adv
    ### END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
with exercise(1, "GAE for one response"):
    assert gae_own(torch.zeros(4, dtype=torch.float64), torch.zeros(4, dtype=torch.float64), 1.0, 0.95).shape == (4,), \
        "return one advantage per token"
    ### BEGIN HIDDEN TESTS
    assert_no_library_calls(gae_own, ppo.gae, ppo.clipped_value_loss)
    _g = torch.Generator().manual_seed(7)
    for _gamma, _lam in [(1.0, 0.95), (0.9, 0.5), (0.99, 1.0), (1.0, 0.0)]:
        _r, _v = torch.randn(9, generator=_g, dtype=torch.float64), torch.randn(9, generator=_g, dtype=torch.float64)
        _vn = torch.cat([_v[1:], torch.zeros(1, dtype=torch.float64)])
        _delta = _r + _gamma * _vn - _v
        _want = torch.stack([sum((_gamma * _lam) ** (s - t) * _delta[s] for s in range(t, 9)) for t in range(9)])
        assert torch.allclose(gae_own(_r, _v, _gamma, _lam), _want, atol=1e-10), \
            f"differs from sum_l (gamma lam)^l delta_(t+l) at gamma={_gamma}, lam={_lam}"
    ### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 2 · When does clipping stop the gradient? (derivation)
#
# Take $\epsilon = 0.2$ and one token with advantage $A = -2$ whose probability ratio has grown to
# $\rho = 1.5$. By hand, compute the per-token objective $\min(\rho A, \mathrm{clip}(\rho, 0.8, 1.2) A)$
# and its derivative with respect to $\rho$; assign them to `obj_value` and `obj_grad` (floats).
# Is this token's gradient cut off by the clip?

# %%
### BEGIN SOLUTION
obj_value = min(1.5 * -2.0, 1.2 * -2.0)
obj_grad = -2.0  # the unclipped branch rho * A is the smaller one, so d/drho = A
### END SOLUTION

# %%
# NBVAL_CHECK_OUTPUT
with exercise(2, "the clipped objective at A = -2, rho = 1.5"):
    assert isinstance(float(obj_value), float) and isinstance(float(obj_grad), float), "assign two numbers"
    ### BEGIN HIDDEN TESTS
    _rho = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
    _obj = torch.minimum(_rho * -2.0, _rho.clamp(0.8, 1.2) * -2.0)
    (_grad,) = torch.autograd.grad(_obj, _rho)
    assert abs(obj_value - float(_obj)) < 1e-9, "the objective's value is off"
    assert abs(obj_grad - float(_grad)) < 1e-9, "the derivative is off"
    ### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 3 · A sign in the per-token reward (find-the-bug)
#
# A colleague's per-token reward for one response (score $r_\theta$ of the whole response; `logprobs`
# and `ref_logprobs` of the sampled tokens under $\pi_\theta$ and $\pi_{\mathrm{ref}}$):
#
# ```python
# def token_rewards(score, logprobs, ref_logprobs, beta):
#     rewards = beta * (logprobs - ref_logprobs)
#     rewards[-1] += score
#     return rewards
# ```
#
# The next cell runs it on an example. Which statement is true? Set `bug` to `"a"`, `"b"`, `"c"` or `"d"`.
#
# - (a) A token that $\pi_\theta$ finds more likely than $\pi_{\mathrm{ref}}$ does gets a *positive*
#   reward from the KL term, so PPO is pushed away from $\pi_{\mathrm{ref}}$.
# - (b) The last token's reward does not include the score.
# - (c) The rewards depend on $\beta$ only at the last token.
# - (d) Nothing is wrong: the rewards sum to $r_\theta - \beta \sum_t (\log\pi_\theta - \log\pi_{\mathrm{ref}})$.

# %%
def token_rewards(score, logprobs, ref_logprobs, beta):
    rewards = beta * (logprobs - ref_logprobs)
    rewards[-1] += score
    return rewards


lp = torch.tensor([-1.0, -0.5, -2.0, -0.1], dtype=torch.float64)
ref_lp = torch.tensor([-1.5, -0.5, -1.0, -0.3], dtype=torch.float64)
print("rewards:", token_rewards(1.0, lp, ref_lp, 0.1))

# %%
### BEGIN SOLUTION
bug = "a"
### END SOLUTION

# %%
# NBVAL_CHECK_OUTPUT
with exercise(3, "the sign of the KL penalty"):
    assert bug in ("a", "b", "c", "d"), 'answer "a", "b", "c" or "d"'
    ### BEGIN HIDDEN TESTS
    _out = token_rewards(1.0, lp, ref_lp, 0.1)
    _more_likely = (lp > ref_lp)[:-1]
    _truth = {"a": bool((_out[:-1][_more_likely] > 0).all()) and bool(_more_likely.any()),
              "b": abs(float(_out[-1]) - 0.1 * float(lp[-1] - ref_lp[-1])) < 1e-12,
              "c": bool(torch.allclose(_out[:-1], token_rewards(1.0, lp, ref_lp, 0.7)[:-1])),
              "d": abs(float(_out.sum()) - (1.0 - 0.1 * float((lp - ref_lp).sum()))) < 1e-12}
    assert sum(_truth.values()) == 1 and _truth[bug], "run the example and compare with eq. (2)"
    ### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 4 · Does clipping cap a greedy update? (predict-then-run)
#
# A policy over 5 actions (softmax of logits) takes 30 gradient-ascent steps (learning rate 0.3) on
# one sampled action with advantage $A = +1$, against a frozen $\pi_{\mathrm{old}}$ (the policy
# before the steps): once with the clipped objective ($\epsilon = 0.2$), once with the plain
# $\rho A$. **Before running the next cell**, predict what happens to the clipped run's ratio
# $\rho$: it `"stops"` near $1 + \epsilon$ (within 0.3 of it), or it `"grows"` as far as the plain
# run's. Set `prediction`.

# %%
### BEGIN SOLUTION
prediction = "stops"
### END SOLUTION

# %%
def run_steps(clipped: bool) -> float:
    logits = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    old_logprob = torch.log_softmax(logits, 0)[2].detach()
    opt = torch.optim.SGD([logits], lr=0.3)
    for _ in range(30):
        rho = torch.exp(torch.log_softmax(logits, 0)[2] - old_logprob)
        objective = torch.minimum(rho * 1.0, rho.clamp(0.8, 1.2) * 1.0) if clipped else rho * 1.0
        opt.zero_grad()
        (-objective).backward()
        opt.step()
    return float(torch.exp(torch.log_softmax(logits, 0)[2] - old_logprob))


rho_clipped, rho_plain = run_steps(True), run_steps(False)
print(f"final ratio: clipped {rho_clipped:.2f}, plain {rho_plain:.2f}")

# %%
# NBVAL_CHECK_OUTPUT
with exercise(4, "the ratio under the clipped objective"):
    assert prediction in ("stops", "grows"), 'prediction must be "stops" or "grows"'
    ### BEGIN HIDDEN TESTS
    _observed = "stops" if abs(rho_clipped - 1.2) < 0.3 and rho_plain > rho_clipped + 0.5 else "grows"
    assert prediction == _observed, "the experiment says otherwise"
    ### END HIDDEN TESTS
