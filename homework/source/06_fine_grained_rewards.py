# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Homework 06 · Fine-grained rewards
#
# Companion to lecture notebook 06. Four exercises; each answer cell holds a stub
# (`raise NotImplementedError()`): replace the stub with your answer, then run the check cell under
# it, which prints one line, `Exercise N (...): PASS` or `FAIL - reason`. The checks you see test the
# form of your answer; the grader runs further tests you do not see. Do not edit the check cells
# (the grader runs its own copy of them). Exercises 1 and 3 must be your own code: a check fails if
# your function calls the library's reward or segmenter helpers.
#
# Lecture 6's fine-grained reward for a response of $R$ tokens: category $k$ (weight $w_k$) splits
# the response into segments whose last tokens are $T^k_1 < T^k_2 < \dots$ and scores segment $j$
# with $R_k(x, y, j)$; token $t$ gets
#
# $$r_t = \sum_k \sum_j \mathbb{1}(t = T^k_j)\, w_k\, R_k(x, y, j) \;-\; \beta\, \mathrm{kl}_t .$$

# %%
import torch

import rlhf_edu.rewards as rw
from rlhf_edu.homework import assert_no_library_calls, exercise

# %% [markdown]
# ## Exercise 1 · The fine-grained reward (re-implementation)
#
# Write `fine_grained(ends, values, weights, kl, beta)`: `ends[k]` and `values[k]` are the end
# indices $T^k_j$ and scores $R_k(x, y, j)$ of category $k$ (lists of equal length), `weights[k]` is
# $w_k$, and `kl` is a `(R,)` float64 tensor of per-token KL estimates. Return the `(R,)` float64
# tensor $r_t$ of the formula above. Two categories may end a segment on the same token: their
# terms add.

# %%
def fine_grained(ends, values, weights, kl, beta):
    """ends, values: K lists; weights: K floats; kl: (R,) float64; beta: float -> (R,) float64."""
    ### BEGIN SOLUTION
    r = -beta * kl.clone()
    for ends_k, values_k, w in zip(ends, values, weights):
        for t, v in zip(ends_k, values_k):
            r[t] += w * v
    return r
    ### END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
with exercise(1, "the fine-grained per-token reward"):
    assert fine_grained([[2]], [[1.0]], [1.0], torch.zeros(3, dtype=torch.float64), 0.1).shape == (3,), \
        "return one reward per token"
    ### BEGIN HIDDEN TESTS
    assert_no_library_calls(fine_grained, rw.segment_rewards_to_tokens, rw.kl_shaped_rewards, rw.fine_grained_scores,
                            rw.sequence_to_token_scores, rw.sampled_token_kl)
    _g = torch.Generator().manual_seed(6)
    for _ in range(5):
        _R, _K = 12, 3
        _ends = [sorted(torch.randperm(_R, generator=_g)[:4].tolist()) for _ in range(_K)]
        _ends[0][-1] = _ends[1][-1] = _R - 1  # two categories end on the last token
        _ends = [sorted(set(e)) for e in _ends]
        _vals = [torch.randn(len(e), generator=_g, dtype=torch.float64).tolist() for e in _ends]
        _w, _kl = [1.0, -0.5, 2.0], torch.rand(_R, generator=_g, dtype=torch.float64)
        _want = torch.tensor([sum(_w[k] * _vals[k][j] for k in range(_K) for j, e in enumerate(_ends[k]) if e == t)
                              - 0.2 * float(_kl[t]) for t in range(_R)], dtype=torch.float64)  # the formula, term by term
        assert torch.allclose(fine_grained(_ends, _vals, _w, _kl, 0.2), _want, atol=1e-12), "differs from the formula"
    ### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 2 · Read off a reward and a return (derivation)
#
# A response of $R = 15$ tokens (indices 0–14) has three sentences ending at tokens 4, 9 and 14,
# scored $-0.5$, $0$ and $-0.8$ by the negativity category ($w = 1$), and two repetition spans ending
# at tokens 7 and 14, scored $0.2$ and $0.6$ by a repetition category with $w = -0.5$. Every token
# has $\mathrm{kl}_t = 0.02$, and $\beta = 0.1$. By hand, compute
#
# - `r_14`: the reward $r_{14}$ of the last token;
# - `return_from_8`: the undiscounted return from token 8 on, $\sum_{t=8}^{14} r_t$.

# %%
### BEGIN SOLUTION
r_14 = -0.8 + (-0.5) * 0.6 - 0.1 * 0.02
return_from_8 = 0.0 + (-0.8) + (-0.5) * 0.6 - 0.1 * 0.02 * 7
### END SOLUTION

# %%
# NBVAL_CHECK_OUTPUT
with exercise(2, "a token reward and a return by hand"):
    assert isinstance(float(r_14), float) and isinstance(float(return_from_8), float), "assign two numbers"
    ### BEGIN HIDDEN TESTS
    _r = [-0.1 * 0.02] * 15
    for _t, _v, _w in [(4, -0.5, 1), (9, 0.0, 1), (14, -0.8, 1), (7, 0.2, -0.5), (14, 0.6, -0.5)]:
        _r[_t] += _w * _v
    assert abs(r_14 - _r[14]) < 1e-6, "r_14 is off"
    assert abs(return_from_8 - sum(_r[8:])) < 1e-6, "the return from token 8 is off"
    ### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 3 · Rewards one token late (find-the-bug)
#
# A colleague wrote this sentence segmenter; each sentence's reward is then placed on the token at
# its end index. On the example in the next cell every sentence reward would land on the wrong
# token, and for a response that ends with a period the last end index points past the response.
#
# ```python
# def sentence_ends(tokens):                        # line 1
#     ends = []                                     # line 2
#     for i, tok in enumerate(tokens):              # line 3
#         if any(c in tok for c in ".!?"):          # line 4
#             ends.append(i + 1)                    # line 5
#     if not ends or ends[-1] != len(tokens) - 1:   # line 6
#         ends.append(len(tokens) - 1)              # line 7
#     return ends                                   # line 8
# ```
#
# Set `bug_line` to the number of the line that is wrong (an int), and write `sentence_ends_fixed(tokens)`:
# the index of the last token of every sentence (a token holding `.`, `!` or `?` ends one; the
# last token always ends one), in increasing order, without duplicates.

# %%
def sentence_ends(tokens):
    ends = []
    for i, tok in enumerate(tokens):
        if any(c in tok for c in ".!?"):
            ends.append(i + 1)
    if not ends or ends[-1] != len(tokens) - 1:
        ends.append(len(tokens) - 1)
    return ends


example = [" The", " plot", " drags", ".", " Still", ",", " fun", "!", " See", " it"]
print("buggy ends:", sentence_ends(example))

# %%
### BEGIN SOLUTION
bug_line = 5


def sentence_ends_fixed(tokens):
    ends = [i for i, tok in enumerate(tokens) if any(c in tok for c in ".!?")]
    if tokens and (not ends or ends[-1] != len(tokens) - 1):
        ends.append(len(tokens) - 1)
    return ends
### END SOLUTION

# %%
# NBVAL_CHECK_OUTPUT
with exercise(3, "the off-by-one sentence end"):
    assert isinstance(bug_line, int) and callable(sentence_ends_fixed), "set bug_line and define sentence_ends_fixed"
    ### BEGIN HIDDEN TESTS
    assert_no_library_calls(sentence_ends_fixed, rw.sentence_segments, rw.span_segments, rw.whole_response_segments,
                            rw._segments_from_ends)
    assert bug_line == 5, "the condition is right; look at what is appended"
    _cases = [example, [" Good", "."], [" no", " end"], ["!", "?", " x"], [" a", ".", " b", "!"]]
    for _c in _cases:  # brute force: t ends a sentence iff its token has . ! ? or t is the last token
        _want = [t for t in range(len(_c)) if any(ch in _c[t] for ch in ".!?") or t == len(_c) - 1]
        assert sentence_ends_fixed(_c) == _want, f"wrong ends for {_c}"
    ### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 4 · Who gets the blame? (predict-then-run)
#
# Take the response of Exercise 2 without KL ($\beta = 0$) and only its first sentence negative
# (score $-0.5$ at token 4, the other sentences 0). Compare two rewards with the same total: the
# **holistic** one puts $-0.5$ on the last token, the **fine-grained** one puts it on token 4. With
# $\gamma = 1$, the return of token $t$ is $G_t = \sum_{s \ge t} r_s$. **Before running the next
# cell**, predict which reward gives a token of the first sentence (token 2) a *lower* return than a
# token of the last sentence (token 12): set `prediction = "holistic"`, `"fine-grained"` or
# `"both"`.

# %%
### BEGIN SOLUTION
prediction = "fine-grained"
### END SOLUTION

# %%
holistic, fine = torch.zeros(15, dtype=torch.float64), torch.zeros(15, dtype=torch.float64)
holistic[14], fine[4] = -0.5, -0.5
returns = {name: torch.flip(torch.cumsum(torch.flip(r, [0]), 0), [0]) for name, r in
           (("holistic", holistic), ("fine-grained", fine))}
for name, G in returns.items():
    print(f"{name:>12}: G_2 = {float(G[2]):+.2f}, G_12 = {float(G[12]):+.2f}")

# %%
# NBVAL_CHECK_OUTPUT
with exercise(4, "credit assignment, holistic against fine-grained"):
    assert prediction in ("holistic", "fine-grained", "both"), 'prediction must be "holistic", "fine-grained" or "both"'
    ### BEGIN HIDDEN TESTS
    _lower = [n for n, G in returns.items() if float(G[2]) < float(G[12])]
    _observed = "both" if len(_lower) == 2 else _lower[0]
    assert prediction == _observed, "the experiment says otherwise"
    ### END HIDDEN TESTS
