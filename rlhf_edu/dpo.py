"""Direct Preference Optimization (DPO), DPO+NLL, IPO, and a short DPO training loop.

Notation (notebook 08): x the prompt, y_w the chosen (winning) response, y_l the rejected
(losing) one, pi_theta the policy being trained, pi_ref the frozen reference (the starting
policy), beta > 0 the strength of the implicit KL constraint, alpha >= 0 the weight of the NLL
term. Every log-prob below is a *summed* response log-prob, log pi(y|x) = sum_t log pi(y_t|x, y_<t),
from :func:`rlhf_edu.logprobs.sequence_logprob` with ``reduction="sum"``; the NLL term of
DPO+NLL divides it by the response length itself.

Shapes: B pairs in a batch, N pairs in a dataset, T tokens.

Sources: Rafailov et al. 2023, "Direct Preference Optimization" (eq. 7: the DPO loss); the RLHF
book's Regularization chapter (eqs. 7-8: DPO+NLL with a length-normalised NLL on the chosen
response); Azar et al. 2023, "A General Theoretical Paradigm to Understand Learning from Human
Preferences" (eq. 17: IPO).

The reference log-probs depend only on the data, never on the policy being trained, so
:func:`reference_logprobs` computes them once, before training; :func:`train_dpo` then needs no
reference model in memory (one model instead of two: what users of one small GPU ask for).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ._checks import check_instance, check_int, check_nonnegative, check_positive
from .config import autocast
from .data import PairCollator
from .logprobs import masked_mean, masked_token_logprobs, sequence_logprob

# ----------------------------------------------------------------------------------------------
# Losses: pure functions of (B,) log-prob tensors
# ----------------------------------------------------------------------------------------------


class DPOOutput(NamedTuple):
    """Per-example DPO(-family) losses and detached diagnostics, all (B,)."""

    losses: torch.Tensor
    """(B,) the per-example loss (differentiable); average it for a batch loss."""
    chosen_rewards: torch.Tensor
    """(B,) detached implicit reward of y_w: beta * (log pi_theta(y_w|x) - log pi_ref(y_w|x))."""
    rejected_rewards: torch.Tensor
    """(B,) detached implicit reward of y_l: beta * (log pi_theta(y_l|x) - log pi_ref(y_l|x))."""
    nll: torch.Tensor | None = None
    """(B,) detached length-normalised NLL of y_w (DPO+NLL only; ``None`` otherwise)."""


def dpo_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
             ref_chosen_logps: torch.Tensor, ref_rejected_logps: torch.Tensor,
             beta: float) -> DPOOutput:
    """The DPO loss (Rafailov et al. 2023, eq. 7), per example.

        L_DPO = -log sigma( beta * [log pi_theta(y_w|x)/pi_ref(y_w|x) - log pi_theta(y_l|x)/pi_ref(y_l|x)] )

    Args:
        policy_chosen_logps: (B,) summed log pi_theta(y_w|x).
        policy_rejected_logps: (B,) summed log pi_theta(y_l|x).
        ref_chosen_logps: (B,) summed log pi_ref(y_w|x) (precomputed or from a frozen model).
        ref_rejected_logps: (B,) summed log pi_ref(y_l|x).
        beta: > 0. Small beta lets the policy move far from the reference.

    Returns:
        :class:`DPOOutput` with ``losses`` (B,) and the detached implicit rewards
        r_hat(x, y) = beta * log pi_theta(y|x)/pi_ref(y|x) of chosen and rejected (B,).
        When the policy equals the reference every loss is exactly ln 2 (not 0).
    """
    chosen_logratio = policy_chosen_logps - ref_chosen_logps  # (B,) log pi_theta/pi_ref of y_w
    rejected_logratio = policy_rejected_logps - ref_rejected_logps  # (B,) same for y_l
    losses = -F.logsigmoid(beta * (chosen_logratio - rejected_logratio))  # (B,) eq. 7
    return DPOOutput(losses, (beta * chosen_logratio).detach(), (beta * rejected_logratio).detach())


def length_normalised_nll(policy_chosen_logps: torch.Tensor, chosen_lengths: torch.Tensor) -> torch.Tensor:
    """The NLL term of DPO+NLL (Regularization chapter, eq. 8), per example.

        L_NLL(x, y_w) = -log P_theta(y_w|x) / |y_w|

    Each example is divided by *its own* token count, so every pair weighs the same whatever the
    length of its chosen response. This differs from the usual SFT loss, :func:`token_mean_nll`,
    which averages over all chosen tokens of the batch (sum of NLLs / sum of lengths), so long
    responses weigh more. The two agree when all chosen responses have the same length.

    Args:
        policy_chosen_logps: (B,) summed log pi_theta(y_w|x).
        chosen_lengths: (B,) number of tokens |y_w| of each chosen response (>= 1).

    Returns:
        (B,) the per-example mean token negative log-likelihood (differentiable).
    """
    return -policy_chosen_logps / chosen_lengths.to(policy_chosen_logps.dtype)  # (B,) eq. 8, 2nd term


class TokenNLL(NamedTuple):
    """Output of :func:`token_mean_nll`."""

    loss: torch.Tensor
    """Scalar: -sum of chosen-token log-probs / number of chosen tokens (differentiable)."""
    n_tokens: torch.Tensor
    """Scalar: the number of chosen tokens averaged over."""


def token_mean_nll(chosen_token_logps: torch.Tensor, chosen_mask: torch.Tensor) -> TokenNLL:
    """The SFT-style NLL: mean over *all* chosen tokens of the batch (a scalar).

        L_SFT = -sum_i sum_t log p(y_w,i,t) / sum_i |y_w,i|

    Offered for comparison with :func:`length_normalised_nll` (eq. 8 normalises each example by
    its own length, then averages over examples). This token-mean is what
    ``GPT2LMHeadModel(labels=...)`` reports.

    Args:
        chosen_token_logps: (B, T) token log-probs of the chosen sequences.
        chosen_mask: (B, T) 1 on chosen-response tokens.

    Returns :class:`TokenNLL` (``loss`` and ``n_tokens``, scalars).
    """
    loss = -masked_mean(chosen_token_logps, chosen_mask)  # scalar L_SFT; padding garbage cannot leak
    return TokenNLL(loss, (chosen_mask != 0).sum())


def dpo_nll_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
                 ref_chosen_logps: torch.Tensor, ref_rejected_logps: torch.Tensor,
                 chosen_lengths: torch.Tensor, beta: float, alpha: float) -> DPOOutput:
    """DPO plus a length-normalised NLL on the chosen response (Regularization chapter, eqs. 7-8).

        L_DPO+NLL = L_DPO(x, y_w, y_l) + alpha * ( -log P_theta(y_w|x) / |y_w| )

    Plain DPO only pushes the *difference* of log-ratios up, and often does so by lowering the
    likelihood of both responses; the NLL term keeps the chosen response likely in absolute terms.
    The NLL is per example, normalised by that example's chosen token count
    (:func:`length_normalised_nll`), not the batch-token mean of SFT (:func:`token_mean_nll`).
    With ``alpha=0`` the losses equal :func:`dpo_loss`.

    Args:
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps: (B,)
            summed log-probs, as in :func:`dpo_loss`.
        chosen_lengths: (B,) token count |y_w| of each chosen response (>= 1).
        beta: > 0.
        alpha: >= 0, the weight of the NLL term.

    Returns:
        :class:`DPOOutput` with ``losses`` (B,), the detached implicit rewards (B,) and the
        detached per-example NLL term ``nll`` (B,) (before multiplying by alpha).
    """
    dpo = dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta)
    nll = length_normalised_nll(policy_chosen_logps, chosen_lengths)  # (B,)
    losses = dpo.losses + alpha * nll  # (B,) eq. 8
    return DPOOutput(losses, dpo.chosen_rewards, dpo.rejected_rewards, nll.detach())


def ipo_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
             ref_chosen_logps: torch.Tensor, ref_rejected_logps: torch.Tensor,
             beta: float) -> DPOOutput:
    """The IPO loss (Azar et al. 2023, eq. 17), per example: a squared loss instead of a logistic one.

        h = log pi_theta(y_w|x)/pi_ref(y_w|x) - log pi_theta(y_l|x)/pi_ref(y_l|x)
        L_IPO = (h - 1/(2 beta))^2

    DPO's logistic loss keeps rewarding a larger margin h forever (its minimum is at h = inf);
    IPO regresses h to the finite target 1/(2 beta), so beta (here called tau in the paper)
    bounds how far the policy moves even on deterministic preferences. Log-probs are summed,
    as for :func:`dpo_loss` (some libraries use length-averaged log-probs for IPO instead).

    Args: as :func:`dpo_loss`, all (B,). Returns :class:`DPOOutput`.
    """
    chosen_logratio = policy_chosen_logps - ref_chosen_logps  # (B,)
    rejected_logratio = policy_rejected_logps - ref_rejected_logps  # (B,)
    h = chosen_logratio - rejected_logratio  # (B,)
    if h.dtype in (torch.float16, torch.bfloat16):
        h = h.float()  # the square overflows float16 at |h| ~ 256: half inputs give a float32 loss
    losses = (h - 1.0 / (2.0 * beta)) ** 2  # (B,) eq. 17
    return DPOOutput(losses, (beta * chosen_logratio).detach(), (beta * rejected_logratio).detach())


def implicit_reward_accuracy(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor) -> torch.Tensor:
    """Fraction of pairs whose implicit reward ranks chosen above rejected; ties count 1/2.

    chosen_rewards, rejected_rewards: (B,). Returns a scalar. Before training (policy = reference)
    every margin is 0 and the accuracy is 0.5, the coin-flip level.
    """
    margin = chosen_rewards - rejected_rewards  # (B,)
    return ((margin > 0).float() + 0.5 * (margin == 0).float()).mean()


# ----------------------------------------------------------------------------------------------
# Log-probs of preference pairs under a model
# ----------------------------------------------------------------------------------------------


class PairLogprobs(NamedTuple):
    """Summed response log-probs of a set of pairs, and the chosen lengths."""

    chosen: torch.Tensor
    """(N,) log pi(y_w|x)."""
    rejected: torch.Tensor
    """(N,) log pi(y_l|x)."""
    chosen_lengths: torch.Tensor
    """(N,) number of tokens of each chosen response (EOS included)."""


def pair_logprobs(model, batch: dict) -> PairLogprobs:
    """Summed log-probs of chosen and rejected responses in one forward pass of 2B sequences.

    batch: ``{"chosen": b, "rejected": b}`` from :class:`rlhf_edu.data.PairCollator`, each ``b``
    holding ``input_ids``, ``attention_mask``, ``response_mask`` of shape (B, T_c) / (B, T_r).
    Returns :class:`PairLogprobs` of (B,) tensors (differentiable when grad is enabled).
    """
    c, r = batch["chosen"], batch["rejected"]
    B, T = c["input_ids"].shape[0], max(c["input_ids"].shape[1], r["input_ids"].shape[1])
    device = next(model.parameters()).device
    cat = {k: torch.cat([F.pad(c[k], (0, T - c[k].shape[1])), F.pad(r[k], (0, T - r[k].shape[1]))]).to(device)
           for k in ("input_ids", "attention_mask", "response_mask")}  # each (2B, T), right-padded
    mask = cat["response_mask"][:, 1:]  # (2B, T-1) the scored response tokens
    # only the response positions go through the LM head (same values as model_token_logprobs)
    token_logps = masked_token_logprobs(model, cat["input_ids"], cat["attention_mask"], mask)  # (2B, T-1)
    seq = sequence_logprob(token_logps, mask, reduction="sum")  # (2B,)
    return PairLogprobs(seq[:B], seq[B:], mask[:B].sum(-1))


@torch.no_grad()
def reference_logprobs(model, tokenizer, pairs, max_len: int = 64, max_prompt_tokens: int = 16,
                       batch_size: int = 64) -> PairLogprobs:
    """Map a pairs dataset to the reference log-probs of its chosen and rejected responses.

    Run it once with the reference model (usually the policy *before* training); afterwards
    training needs only these (N,) tensors, no second model. pairs: a Dataset (or list of dicts)
    with ``prompt``, ``chosen``, ``rejected`` (N rows). Returns :class:`PairLogprobs` on the CPU,
    in float32, in the dataset's row order.
    """
    collate = PairCollator(tokenizer, max_len=max_len, max_prompt_tokens=max_prompt_tokens)
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(pairs), batch_size):
        rows = [pairs[i] for i in range(start, min(start + batch_size, len(pairs)))]
        out.append(pair_logprobs(model, collate(rows)))
    model.train(was_training)
    return PairLogprobs(*(torch.cat([o[k] for o in out]).float().cpu() for k in range(3)))


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------


@dataclass
class DPOConfig:
    """Hyper-parameters of one DPO / DPO+NLL run (notebook 08)."""

    beta: float = 0.1
    """Inverse strength of the implicit KL constraint: implicit reward = beta * log(pi/pi_ref)."""
    alpha: float = 0.0
    """Weight of the length-normalised NLL on the chosen response (0 = plain DPO)."""
    lr: float = 1e-4
    """AdamW learning rate (constant)."""
    steps: int = 100
    """Optimizer steps."""
    batch_size: int = 16
    """Preference pairs per step."""
    max_len: int = 48
    """Cap on prompt + response tokens per sequence (responses are cut on the right)."""
    max_prompt_tokens: int = 16
    """Prompts are cut from the left to this many tokens."""
    eval_every: int = 10
    """Evaluate on the held-out pairs every this many steps (and at steps 0 and ``steps``)."""
    eval_batch_size: int = 64
    """Pairs per forward pass during evaluation and reference precomputation."""
    n_eval_pairs: int = 64
    """Size of the held-out pair set that notebooks and benchmarks evaluate on."""
    grad_clip: float = 1.0
    """Max global gradient norm."""
    seed: int = 0
    """Seeds the order in which training pairs are visited."""
    amp_dtype: str | None = None
    """``"bfloat16"`` to run forward passes under autocast on a GPU (weights stay float32)."""

    def __post_init__(self):
        for name in ("beta", "lr", "grad_clip"):
            check_positive(name, getattr(self, name))
        check_nonnegative("alpha", self.alpha)
        for name in ("steps", "batch_size", "max_len", "eval_every", "eval_batch_size", "max_prompt_tokens",
                     "n_eval_pairs"):
            check_int(name, getattr(self, name))
        if self.amp_dtype not in (None, "bfloat16", "float16"):
            raise ValueError(f"amp_dtype: expected None, 'bfloat16' or 'float16', got {self.amp_dtype!r}")

    @classmethod
    def tiny(cls, **overrides) -> "DPOConfig":
        """CPU preset: about 15-20 s per run on 2 quiet cores with the tiny model.

        Small batches of short sequences and a fairly high learning rate, so that the effects of
        notebook 08 show within 40 steps (one pass over 320 pairs).
        """
        return cls(**{**dict(beta=0.1, lr=3e-4, steps=40, batch_size=8, max_len=32, eval_every=10,
                             n_eval_pairs=64), **overrides})

    @classmethod
    def gpt2(cls, **overrides) -> "DPOConfig":
        """One-GPU preset for GPT-2 small: bf16 autocast where supported, precomputed reference."""
        amp = "bfloat16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else None
        return cls(**{**dict(beta=0.1, lr=5e-6, steps=400, batch_size=32, max_len=96,
                             eval_every=50, eval_batch_size=128, amp_dtype=amp), **overrides})

    @classmethod
    def from_scale(cls, scale, **overrides) -> "DPOConfig":
        """The preset matching a :class:`rlhf_edu.config.Scale` (``tiny`` or ``gpt2``; ``scale.n`` cuts the steps)."""
        cfg = cls.gpt2(**overrides) if scale.name == "gpt2" else cls.tiny(**overrides)
        return cfg.with_(steps=scale.n(cfg.steps))


    def with_(self, **overrides) -> "DPOConfig":
        """A copy with some fields replaced."""
        return DPOConfig(**{**asdict(self), **overrides})


def _pair_metrics(out: DPOOutput, logps: PairLogprobs) -> dict[str, float]:
    margin = out.chosen_rewards - out.rejected_rewards  # (B,)
    return {"loss": out.losses.mean().item(), "nll": out.nll.mean().item(),
            "accuracy": implicit_reward_accuracy(out.chosen_rewards, out.rejected_rewards).item(),
            "margin": margin.mean().item(), "chosen_reward": out.chosen_rewards.mean().item(),
            "rejected_reward": out.rejected_rewards.mean().item(), "chosen_logp": logps.chosen.detach().mean().item(),
            "rejected_logp": logps.rejected.detach().mean().item()}


@torch.no_grad()
def evaluate_dpo(policy, tokenizer, pairs, reference: PairLogprobs, config: DPOConfig) -> dict[str, float]:
    """Held-out DPO metrics: mean loss, NLL term, implicit-reward accuracy and margin, log-probs.

    pairs: N pairs; reference: their :func:`reference_logprobs` (N,). Returns a dict of floats.
    """
    policy_now = reference_logprobs(policy, tokenizer, pairs, config.max_len,
                                    config.max_prompt_tokens, config.eval_batch_size)
    out = dpo_nll_loss(policy_now.chosen, policy_now.rejected, reference.chosen, reference.rejected,
                       policy_now.chosen_lengths, config.beta, config.alpha)
    return _pair_metrics(out, policy_now)


def _batches(n: int, batch_size: int, steps: int, seed: int):
    """Indices of ``steps`` batches: epochs of a seeded permutation of range(n)."""
    g = torch.Generator().manual_seed(seed)
    order = torch.empty(0, dtype=torch.long)
    for _ in range(steps):
        if len(order) < batch_size:
            order = torch.cat([order, torch.randperm(n, generator=g)])
        idx, order = order[:batch_size], order[batch_size:]
        yield idx


def train_dpo(policy, tokenizer, train_pairs, eval_pairs=None, config: DPOConfig | None = None, *,
              reference: PairLogprobs | None = None, eval_reference: PairLogprobs | None = None,
              reference_model=None, progress: bool = True) -> dict[str, list]:
    """Train ``policy`` in place with DPO+NLL (plain DPO when ``config.alpha == 0``).

    The reference log-probs of ``train_pairs`` / ``eval_pairs`` are computed once from the policy
    *before* the first step (or taken from ``reference`` / ``eval_reference``), so no reference
    model is held during training. Pass ``reference_model`` instead to score every batch with a
    frozen model on the fly (the classic, memory-hungrier way; same losses).

    Returns a history (dict of lists): per step ``step, loss, nll, accuracy, margin,
    chosen_reward, rejected_reward, chosen_logp, rejected_logp, tokens`` (non-pad tokens in the
    batch) and ``seconds`` (wall time of the step, evaluation excluded); every ``config.eval_every``
    steps the same keys prefixed ``eval_`` (with ``eval_step``) on ``eval_pairs``.
    """
    config = config or DPOConfig()
    check_instance("config", config, DPOConfig)
    if len(train_pairs) < config.batch_size:
        raise ValueError(f"train_pairs: expected at least batch_size={config.batch_size} pairs, got {len(train_pairs)}")
    if reference_model is None and reference is None:
        reference = reference_logprobs(policy, tokenizer, train_pairs, config.max_len,
                                       config.max_prompt_tokens, config.eval_batch_size)
    if reference is not None and len(reference.chosen) != len(train_pairs):
        raise ValueError(f"reference: expected {len(train_pairs)} rows (one per pair), got {len(reference.chosen)}")
    if eval_pairs is not None and eval_reference is None:
        eval_reference = reference_logprobs(reference_model or policy, tokenizer, eval_pairs, config.max_len,
                                            config.max_prompt_tokens, config.eval_batch_size)
    collate = PairCollator(tokenizer, max_len=config.max_len, max_prompt_tokens=config.max_prompt_tokens)
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=config.lr, weight_decay=0.0)
    history: dict[str, list] = {}
    log = lambda prefix, metrics: [history.setdefault(prefix + k, []).append(v) for k, v in metrics.items()]
    policy.train()
    bar = tqdm(list(_batches(len(train_pairs), config.batch_size, config.steps, config.seed)),
               desc=f"DPO beta={config.beta} alpha={config.alpha}", disable=not progress)
    for step, idx in enumerate(bar):
        if eval_pairs is not None and step % config.eval_every == 0:
            log("eval_", {"step": step, **evaluate_dpo(policy, tokenizer, eval_pairs, eval_reference, config)})
        t0 = time.perf_counter()
        batch = collate([train_pairs[i] for i in idx.tolist()])
        with autocast(next(policy.parameters()).device, config.amp_dtype):
            logps = pair_logprobs(policy, batch)  # (B,) each
        if reference_model is not None:
            with torch.no_grad(), autocast(next(reference_model.parameters()).device, config.amp_dtype):
                ref = pair_logprobs(reference_model, batch)
        else:
            ref = PairLogprobs(*(t[idx] for t in reference))
        device = logps.chosen.device
        out = dpo_nll_loss(logps.chosen, logps.rejected, ref.chosen.to(device), ref.rejected.to(device),
                           logps.chosen_lengths, config.beta, config.alpha)
        opt.zero_grad(set_to_none=True)
        out.losses.mean().backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), config.grad_clip)
        opt.step()
        metrics = _pair_metrics(out, logps)  # .item() waits for the GPU, so the timing is honest
        tokens = int(batch["chosen"]["attention_mask"].sum() + batch["rejected"]["attention_mask"].sum())
        log("", {"step": step, **metrics, "tokens": tokens, "seconds": time.perf_counter() - t0})
        bar.set_postfix(loss=f"{metrics['loss']:.3f}", acc=f"{metrics['accuracy']:.2f}")
    if eval_pairs is not None:
        log("eval_", {"step": config.steps, **evaluate_dpo(policy, tokenizer, eval_pairs, eval_reference, config)})
    return history
