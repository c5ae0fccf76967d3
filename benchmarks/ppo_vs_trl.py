"""Our ``train_ppo`` against TRL's PPO (1.12) and RLOO (1.16) trainers on the same tiny setup, on CPU.

    python benchmarks/ppo_vs_trl.py            # 3 interleaved repeats: about 4-5 minutes on a quiet 2-core CPU
    python benchmarks/ppo_vs_trl.py --quick    # 1 repeat, 2 timed iterations: a 1-2 minute smoke run

The two TRL versions cannot share a virtual environment, so each implementation runs in its own
interpreter (one fresh subprocess per implementation and repeat, so peak RSS is per
implementation); the repeats are interleaved (ours, TRL PPO, TRL RLOO, then again in a rotated
order) and the table reports medians:

* ours: this interpreter (``.venv``): ``rlhf_edu.ppo.train_ppo``, twice: with its defaults, which
  re-score the rollout with a policy forward pass for log pi_old, and with
  ``reuse_sampler_logprobs=True``, which takes them from the sampler as TRL's PPO does (one
  forward pass less; the same values up to float32 round-off);
* TRL PPO: ``--python-trl112`` (default ``.venv-bench-ppo/bin/python``, ``pip install -e ".[bench-ppo]"``):
  ``trl.experimental.ppo.PPOTrainer`` of TRL 1.12.0, the last release that has it;
* TRL RLOO: ``--python-trl116`` (default ``.venv-bench/bin/python``, ``pip install -e ".[bench]"``):
  ``trl.RLOOTrainer`` of TRL 1.16.0.

The same work for ours and TRL PPO: the tiny base model (``rlhf_edu/data/tiny``) as policy and, copied,
as frozen reference; a value model and a reward model built from the same base with the same
seeded scalar heads (``rlhf_edu.models.scalar_head_from_lm``; for TRL the same weights are put
into ``GPT2ForSequenceClassification``, whose head has no bias: ours is initialised at zero, so
the models start identical); the same prompt pool (``rlhf_edu.data.make_prompts``, kept to
prompts of at most 16 tokens so that nobody truncates); 32 prompts per iteration, 20 response
tokens sampled at temperature 1 with no top-k/top-p, stopping at EOS on both sides (generation
goes on until every response has ended or 20 tokens); 2 PPO epochs of minibatches of 16, one
AdamW (lr 1e-4 for policy and value, no weight decay, constant schedule); clip ranges 0.2/0.2,
value coefficient 0.5, fixed KL coefficient 0.05 with the k1 estimator in the reward, GAE
gamma 1 and lambda 0.95, whitened advantages, no reward whitening; float32, CPU, 2 torch
threads. No ptx term on either side (TRL's PPO has none). TRL does not clip gradients; ours
always calls ``clip_grad_norm_`` and gets ``max_grad_norm=1e9`` so that the update is the same.

Differences that remain (not in the work done, only in bookkeeping): TRL's pad token is also
its EOS here (the tiny tokenizer has one special token), so TRL leaves the EOS token out of
the policy loss and puts the reward on it, while ours includes the EOS token in the response
mask and reads the reward there too. Both run every forward on the full (B, P+R) tensors, so
the cost is the same.

RLOO (TRL 1.16) is a different algorithm: no value model, k = 4 samples per prompt (8 prompts x
4 = the same 32 sampled responses of 20 tokens per iteration), a sequence-level loss, the
reward model re-reads decoded text. It is run with the same number of optimizer passes (2
iterations over the generation batch of 32 in minibatches of 16 = 4 optimizer steps) and is
reported for orientation only: it is not the same work.

Seconds per iteration are split into: rollout = generation + log-probs under policy and
reference + values (TRL PPO and ours with ``reuse_sampler_logprobs`` take the policy log-probs
from the generation; RLOO has no values); scoring = the reward model; update = everything else in the iteration (advantages,
PPO epochs, logging). The first iteration of every run is a warm-up and is dropped. Each
figure is given in wall seconds; the table also gives the process's CPU seconds per iteration,
which a loaded machine disturbs less (on a quiet machine, wall time is the figure to quote). CPU
time over wall time shows how many of the 2 cores a run kept busy: in our runs about 1.5 for ours
and 1.0-1.3 for TRL's PPO, so the wall-time ratio can exceed the CPU-time one.

Agreement checks (printed before the table), on one rollout of 32 responses sampled by our
sampler with EOS suppressed, so that no response ends early and the two masking conventions
coincide (every token is real on both sides):

* TRL PPO: the rollout is fed into ``PPOTrainer.train()`` in place of its generation (its
  ``batch_generation`` is replaced by one returning our tokens and the policy's logits), with
  the minibatch shuffle replaced by the identity; TRL then computes reference log-probs, values,
  reward, k1 KL, GAE and whitening itself. We compare its first minibatch's policy loss, value
  loss and total loss (read where it calls ``masked_mean`` and ``backward``) and its logged mean
  sequence KL and reward with ours from ``score_batch`` and ``_minibatch_losses`` on the same
  rows. They agree to float32 round-off (TRL divides logits by ``temperature + 1e-7``).
* TRL RLOO: per-token log-probs of the same sequences under policy and reference from its
  ``_get_per_token_logps_and_entropies`` against ours (``response_logprobs``), and the
  sequence k1 KL that RLOO puts in its reward. The losses are different objectives and are not
  compared.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SETUP = dict(batch_size=32, max_new_tokens=20, max_prompt_tokens=16, ppo_epochs=2, minibatch_size=16,
             lr=1e-4, clip_eps=0.2, value_clip_eps=0.2, vf_coef=0.5, beta=0.05, gamma=1.0, lam=0.95,
             rloo_k=4, seed=0, threads=2)
IMPLS = ("ours", "ours_reuse", "trl_ppo", "trl_rloo")
LABELS = {"ours": "ours (train_ppo, defaults)", "ours_reuse": "ours, reuse_sampler_logprobs=True",
          "trl_ppo": "TRL 1.12 PPOTrainer", "trl_rloo": "TRL 1.16 RLOOTrainer *"}


# ------------------------------------------------------------------------------------------
# Shared by every worker (each imports torch and rlhf_edu in its own interpreter)
# ------------------------------------------------------------------------------------------

def _setup_torch(threads: int):
    import torch

    torch.set_num_threads(threads)
    return torch


def build_models(seed: int):
    """(policy, reference, value ScalarHeadModel, reward ScalarHeadModel, tokenizer), seeded heads."""
    import torch

    from rlhf_edu.models import frozen_copy, load_policy, scalar_head_from_lm

    policy, tok = load_policy("tiny", device="cpu", dtype=torch.float32)
    torch.manual_seed(seed)
    value = scalar_head_from_lm(policy)
    reward = frozen_copy(scalar_head_from_lm(policy))
    return policy, frozen_copy(policy), value, reward, tok


def to_hf_classifier(model):
    """The same network as a ``GPT2ForSequenceClassification`` (what TRL expects); head bias must be 0."""
    import torch
    from transformers import GPT2ForSequenceClassification

    if model.head.bias.abs().max() != 0:
        raise ValueError("model: the scalar head's bias must be zero to fit a bias-free classifier")
    cfg = model.backbone.config.__class__.from_dict(model.backbone.config.to_dict())
    cfg.num_labels, cfg.pad_token_id = 1, 0
    out = GPT2ForSequenceClassification(cfg).to(torch.float32)
    out.transformer.load_state_dict(model.backbone.state_dict())
    with torch.no_grad():
        out.score.weight.copy_(model.head.weight)
    return out.train(model.training)


def mark() -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds): CPU time is the steadier figure on a loaded machine."""
    return time.perf_counter(), time.process_time()


def phases(starts, reward_marks, ends, rollout_ends=None) -> dict:
    """Per-iteration {phase: {"wall": [...], "cpu": [...]}} from marks (each a ``mark()`` pair).

    starts/ends: iteration boundaries; reward_marks: (begin, end) of the reward model per iteration;
    rollout_ends: where the rollout ends, if not at the reward's start (ours: make_rollout returns).
    """
    rollout_ends = rollout_ends or [a for a, _ in reward_marks]
    out = {}
    for i, clock in enumerate(("wall", "cpu")):
        total = [e[i] - s[i] for s, e in zip(starts, ends)]
        rollout = [r[i] - s[i] for s, r in zip(starts, rollout_ends)]
        scoring = [b[i] - a[i] for a, b in reward_marks]
        for name, v in (("total", total), ("rollout", rollout), ("scoring", scoring),
                        ("update", [t - r - c for t, r, c in zip(total, rollout, scoring)])):
            out.setdefault(name, {})[clock] = v
    return out


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def perturb_(model, seed: int, std: float = 0.02) -> None:
    """Add seeded noise to every weight (the checks' policy moves away from the reference: KL > 0)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * std)


def no_eos_rollout(policy, tok, prompts, spec):
    """Our sampler with EOS forbidden: every response has exactly ``max_new_tokens`` real tokens."""
    import torch

    from rlhf_edu.generation import sample

    R = spec["max_new_tokens"]
    g = torch.Generator().manual_seed(spec["seed"] + 1)
    return sample(policy, tok, prompts, R, generator=g, max_prompt_tokens=spec["max_prompt_tokens"],
                  min_new_tokens=R, allow_biased=True)


# ------------------------------------------------------------------------------------------
# Workers
# ------------------------------------------------------------------------------------------

def worker_ours(spec: dict, reuse_sampler_logprobs: bool = False) -> dict:
    _setup_torch(spec["threads"])
    from rlhf_edu import ppo
    from rlhf_edu.ppo import PPOConfig, reward_model_scores, train_ppo

    policy, ref, value, rm, tok = build_models(spec["seed"])
    cfg = PPOConfig.tiny(iterations=spec["iterations"], batch_size=spec["batch_size"],
                         max_new_tokens=spec["max_new_tokens"], max_prompt_tokens=spec["max_prompt_tokens"],
                         lr=spec["lr"], value_lr=spec["lr"], ppo_epochs=spec["ppo_epochs"],
                         minibatch_size=spec["minibatch_size"], clip_eps=spec["clip_eps"],
                         value_clip_eps=spec["value_clip_eps"], vf_coef=spec["vf_coef"], beta=spec["beta"],
                         kl_estimator="k1", gamma=spec["gamma"], lam=spec["lam"], max_grad_norm=1e9,
                         seed=spec["seed"], reuse_sampler_logprobs=reuse_sampler_logprobs)
    starts, rollout_ends, rewards = [], [], []
    make_rollout = ppo.make_rollout

    def timed_rollout(*a, **k):
        starts.append(mark())
        out = make_rollout(*a, **k)
        rollout_ends.append(mark())
        return out

    def reward_fn(ro):
        t = mark()
        out = reward_model_scores(rm, ro)
        rewards.append((t, mark()))
        return out

    ppo.make_rollout = timed_rollout
    try:
        hist = train_ppo(cfg, policy, ref, value, tok, spec["prompts"], reward_fn, progress=False)
        end = mark()
    finally:
        ppo.make_rollout = make_rollout
    # an iteration runs from one rollout's start to the next (the last one to the end of train_ppo)
    return dict(phases(starts, rewards, starts[1:] + [end], rollout_ends),
                response_length=hist["response_length"], peak_rss_mb=peak_rss_mb())


def _trl_ppo_trainer(spec, policy, ref, value, rm, tok, prompts, iterations, outdir):
    from datasets import Dataset
    from trl.experimental.ppo import PPOConfig as TRLPPOConfig
    from trl.experimental.ppo import PPOTrainer

    tok.padding_side = "left"
    ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    ds = Dataset.from_dict({"input_ids": ids})
    B = spec["batch_size"]
    args = TRLPPOConfig(
        output_dir=outdir, report_to="none", save_strategy="no", use_cpu=True, bf16=False, fp16=False,
        disable_tqdm=True, logging_steps=1, seed=spec["seed"], dataloader_num_workers=0,
        per_device_train_batch_size=B, gradient_accumulation_steps=1, num_mini_batches=B // spec["minibatch_size"],
        num_ppo_epochs=spec["ppo_epochs"], local_rollout_forward_batch_size=B, total_episodes=B * iterations,
        learning_rate=spec["lr"], lr_scheduler_type="constant", weight_decay=0.0, warmup_steps=0,
        response_length=spec["max_new_tokens"], stop_token="eos", temperature=1.0, missing_eos_penalty=None,
        kl_coef=spec["beta"], kl_estimator="k1", cliprange=spec["clip_eps"], cliprange_value=spec["value_clip_eps"],
        vf_coef=spec["vf_coef"], gamma=spec["gamma"], lam=spec["lam"], whiten_rewards=False,
        num_sample_generations=0,
    )
    return PPOTrainer(args=args, processing_class=tok, model=policy, ref_model=ref,
                      reward_model=to_hf_classifier(rm), value_model=to_hf_classifier(value),
                      train_dataset=ds, eval_dataset=ds.select(range(B)))


def worker_trl_ppo(spec: dict) -> dict:
    _setup_torch(spec["threads"])
    from transformers import TrainerCallback
    from trl.experimental.ppo import ppo_trainer as mod

    policy, ref, value, rm, tok = build_models(spec["seed"])
    with tempfile.TemporaryDirectory() as outdir:
        trainer = _trl_ppo_trainer(spec, policy, ref, value, rm, tok, spec["prompts"], spec["iterations"], outdir)
        marks = {"reward": [], "step_end": []}
        get_reward = mod.get_reward

        def timed_get_reward(model, *a, **k):
            t = mark()
            out = get_reward(model, *a, **k)
            if model is trainer.reward_model:
                marks["reward"].append((t, mark()))
            return out

        class StepEnd(TrainerCallback):
            def on_step_end(self, args, state, control, **kw):
                marks["step_end"].append(mark())

        lengths = []
        log = trainer.log

        def log_metrics(metrics, *a, **k):
            lengths.append(spec["max_new_tokens"] - metrics.get("val/num_eos_tokens", 0) / spec["batch_size"])
            return log(metrics, *a, **k)

        trainer.log = log_metrics
        trainer.add_callback(StepEnd())
        mod.get_reward = timed_get_reward
        try:
            start = mark()
            trainer.train()
        finally:
            mod.get_reward = get_reward
    # an iteration runs from one step end to the next (the first from the start of train())
    ends = marks["step_end"]
    return dict(phases([start] + ends[:-1], marks["reward"], ends), response_length=lengths,
                peak_rss_mb=peak_rss_mb())


def _trl_rloo_trainer(spec, policy, rm, tok, prompts, iterations, outdir):
    from datasets import Dataset
    from trl import RLOOConfig, RLOOTrainer

    B, k, mb = spec["batch_size"], spec["rloo_k"], spec["minibatch_size"]
    args = RLOOConfig(
        output_dir=outdir, report_to="none", save_strategy="no", use_cpu=True, bf16=False, fp16=False,
        disable_tqdm=True, logging_steps=B // mb * spec["ppo_epochs"], seed=spec["seed"], dataloader_num_workers=0,
        per_device_train_batch_size=mb, gradient_accumulation_steps=1, steps_per_generation=B // mb,
        num_generations=k, num_iterations=spec["ppo_epochs"], max_steps=iterations * (B // mb) * spec["ppo_epochs"],
        learning_rate=spec["lr"], lr_scheduler_type="constant", weight_decay=0.0, warmup_steps=0,
        max_completion_length=spec["max_new_tokens"], temperature=1.0, top_p=1.0, top_k=0,
        beta=spec["beta"], epsilon=spec["clip_eps"], pad_to_multiple_of=None,
    )
    rm_hf = to_hf_classifier(rm).eval()
    tok.padding_side = "left"
    return RLOOTrainer(model=policy, reward_funcs=rm_hf, args=args, processing_class=tok,
                       reward_processing_classes=tok, train_dataset=Dataset.from_dict({"prompt": list(prompts)}))


def worker_trl_rloo(spec: dict) -> dict:
    _setup_torch(spec["threads"])
    from transformers import TrainerCallback
    from trl import RLOOTrainer

    policy, _, _, rm, tok = build_models(spec["seed"])
    per_iter = spec["batch_size"] // spec["minibatch_size"] * spec["ppo_epochs"]
    with tempfile.TemporaryDirectory() as outdir:
        trainer = _trl_rloo_trainer(spec, policy, rm, tok, spec["prompts"], spec["iterations"], outdir)
        marks = {"gen_end": [], "reward": [], "step_end": [], "length": []}
        gen_score, calc_rewards = RLOOTrainer._generate_and_score_completions, RLOOTrainer._calculate_rewards

        def timed_gen_score(self, *a, **k):
            out = gen_score(self, *a, **k)
            marks["gen_end"].append(mark())
            marks["length"].append(out["completion_mask"].sum(-1).float().mean().item())
            return out

        def timed_rewards(self, *a, **k):
            t = mark()
            out = calc_rewards(self, *a, **k)
            marks["reward"].append((t, mark()))
            return out

        class StepEnd(TrainerCallback):
            def on_step_end(self, args, state, control, **kw):
                if state.global_step % per_iter == 0:
                    marks["step_end"].append(mark())

        trainer.add_callback(StepEnd())
        RLOOTrainer._generate_and_score_completions, RLOOTrainer._calculate_rewards = timed_gen_score, timed_rewards
        try:
            start = mark()
            trainer.train()
        finally:
            RLOOTrainer._generate_and_score_completions, RLOOTrainer._calculate_rewards = gen_score, calc_rewards
    # rollout = generation and log-probs (the reward model, called inside, is taken out by phases())
    ends = marks["step_end"]
    out = phases([start] + ends[:-1], marks["reward"], ends, marks["gen_end"])
    for clock in ("wall", "cpu"):
        out["rollout"][clock] = [r - c for r, c in zip(out["rollout"][clock], out["scoring"][clock])]
        out["update"][clock] = [t - r - c for t, r, c in zip(out["total"][clock], out["rollout"][clock],
                                                              out["scoring"][clock])]
    return dict(out, response_length=marks["length"], peak_rss_mb=peak_rss_mb())


# ------------------------------------------------------------------------------------------
# Agreement checks
# ------------------------------------------------------------------------------------------

def check_trl_ppo(spec: dict) -> dict:
    """First-minibatch losses of TRL 1.12's PPOTrainer and ours on one rollout (see the module docstring)."""
    torch = _setup_torch(spec["threads"])
    import numpy as np
    from trl.experimental.ppo import ppo_trainer as mod

    from rlhf_edu.logprobs import forward_logits
    from rlhf_edu.ppo import (PPOBatch, PPOConfig, _minibatch_losses, response_logprobs_masked, response_values,
                              reward_model_scores, score_batch)

    B, mb = spec["batch_size"], spec["minibatch_size"]
    policy, ref, value, rm, tok = build_models(spec["seed"])
    perturb_(policy, spec["seed"] + 2)
    prompts = spec["prompts"][:B]
    ro = no_eos_rollout(policy, tok, prompts, spec)
    P, m = ro.prompt_length, ro.response_mask
    assert int(m.sum()) == m.numel() and not bool((ro.response_ids == tok.eos_token_id).any())

    # ours, on all rows (advantages are whitened over the whole rollout)
    cfg = PPOConfig(batch_size=B, minibatch_size=mb, max_new_tokens=spec["max_new_tokens"], beta=spec["beta"],
                    kl_estimator="k1", gamma=spec["gamma"], lam=spec["lam"], clip_eps=spec["clip_eps"],
                    value_clip_eps=spec["value_clip_eps"], vf_coef=spec["vf_coef"])
    with torch.no_grad():
        old = response_logprobs_masked(policy, ro.input_ids, ro.attention_mask, P, m)
        refl = response_logprobs_masked(ref, ro.input_ids, ro.attention_mask, P, m)
        vals = response_values(value, ro.input_ids, ro.attention_mask, P).float() * m
        full_logits = forward_logits(policy, ro.input_ids, ro.attention_mask)[:, P - 1:-1]
    batch = PPOBatch(ro.input_ids, ro.attention_mask, m, P, old, refl, vals, ro.texts, list(prompts), rollout=ro)
    batch = score_batch(batch, reward_model_scores(rm, ro), spec["beta"], cfg)

    # TRL, fed the same rollout; rows matched by prompt tokens (TRL's dataloader shuffles)
    rows = {}
    for i, q in enumerate(ro.input_ids[:, :P].tolist()):
        rows.setdefault(tuple(q), []).append(i)
    seen = {"order": None, "masked_mean": [], "loss": None, "metrics": None}

    def fake_batch_generation(model, queries, *a, **k):
        if queries.shape[1] != P:
            raise RuntimeError(f"TRL padded the prompts to {queries.shape[1]} tokens, ours to {P}")
        order = [rows[tuple(q)].pop(0) for q in queries.tolist()]
        seen["order"] = order
        return ro.input_ids[order].clone(), full_logits[order].clone()

    masked_mean = mod.masked_mean

    def spy_masked_mean(*a, **k):
        out = masked_mean(*a, **k)
        if seen["loss"] is None and torch.is_grad_enabled():
            seen["masked_mean"].append(out.detach().clone())
        return out

    with tempfile.TemporaryDirectory() as outdir:
        trainer = _trl_ppo_trainer(spec, policy, ref, value, rm, tok, prompts, 1, outdir)
        backward = trainer.accelerator.backward

        def spy_backward(loss, *a, **k):
            if seen["loss"] is None:
                seen["loss"] = float(loss.detach())
            return backward(loss, *a, **k)

        log = trainer.log

        def spy_log(metrics, *a, **k):
            seen["metrics"] = dict(metrics)
            return log(metrics, *a, **k)

        trainer.accelerator.backward, trainer.log = spy_backward, spy_log
        saved = mod.batch_generation, mod.masked_mean, np.random.permutation
        mod.batch_generation, mod.masked_mean = fake_batch_generation, spy_masked_mean
        np.random.permutation = lambda n: np.arange(n)
        try:
            policy_state = {k: v.clone() for k, v in policy.state_dict().items()}
            value_state = {k: v.clone() for k, v in value.state_dict().items()}
            trainer.train()
        finally:
            mod.batch_generation, mod.masked_mean, np.random.permutation = saved
    # ours on TRL's first minibatch rows, with the weights before TRL's update
    policy.load_state_dict(policy_state)
    value.load_state_dict(value_state)
    idx = torch.tensor(seen["order"][:mb])
    pl, vl, _ = _minibatch_losses(policy, value, batch, idx, cfg)
    trl_vf, trl_pg = 0.5 * float(seen["masked_mean"][0]), float(seen["masked_mean"][2])
    ours = dict(policy_loss=pl.loss.item(), value_loss=vl.loss.item(),
                total_loss=(pl.loss + spec["vf_coef"] * vl.loss).item(),
                mean_sequence_kl=float(batch.kl.sum(-1).mean()), mean_reward=float(batch.scores.sum(-1).mean()))
    trl = dict(policy_loss=trl_pg, value_loss=trl_vf, total_loss=seen["loss"],
               mean_sequence_kl=seen["metrics"]["objective/kl"], mean_reward=seen["metrics"]["objective/scores"])
    return {"ours": ours, "trl": trl}


def check_trl_rloo(spec: dict) -> dict:
    """Per-token log-probs (policy, reference) and sequence k1 KL of RLOO 1.16 and ours on the same sequences."""
    torch = _setup_torch(spec["threads"])
    from rlhf_edu.logprobs import response_logprobs

    B, R = spec["batch_size"], spec["max_new_tokens"]
    policy, _, _, rm, tok = build_models(spec["seed"])
    prompts = spec["prompts"][:B]
    with tempfile.TemporaryDirectory() as outdir:
        trainer = _trl_rloo_trainer(spec, policy, rm, tok, prompts, 1, outdir)  # loads its reference from disk
        perturb_(policy, spec["seed"] + 2)
        ro = no_eos_rollout(policy, tok, prompts, spec)
        P = ro.prompt_length
        with torch.no_grad():
            trl_pol, _, _ = trainer._get_per_token_logps_and_entropies(trainer.model, ro.input_ids, ro.attention_mask,
                                                                       R, B)
            trl_ref, _, _ = trainer._get_per_token_logps_and_entropies(trainer.ref_model, ro.input_ids,
                                                                       ro.attention_mask, R, B)
            ours_pol = response_logprobs(policy, ro.input_ids, ro.attention_mask, P)
            ours_ref = response_logprobs(trainer.ref_model, ro.input_ids, ro.attention_mask, P)
    padded = (ro.attention_mask[:, :P] == 0).any(-1)  # (B,) rows whose prompt is left-padded

    def diff(a, b, rows):
        return float((a - b)[rows].abs().max()) if bool(rows.any()) else float("nan")

    return {"policy_unpadded": diff(trl_pol, ours_pol, ~padded), "ref_unpadded": diff(trl_ref, ours_ref, ~padded),
            "policy_padded": diff(trl_pol, ours_pol, padded), "ref_padded": diff(trl_ref, ours_ref, padded),
            "ours_mean_sequence_kl": float((ours_pol - ours_ref).sum(-1).mean()),
            "trl_mean_sequence_kl": float((trl_pol - trl_ref).sum(-1).mean()),
            "padded_rows": int(padded.sum()), "rows": B}


WORKERS = {"ours": worker_ours, "ours_reuse": lambda spec: worker_ours(spec, True), "trl_ppo": worker_trl_ppo, "trl_rloo": worker_trl_rloo,
           "check_trl_ppo": check_trl_ppo, "check_trl_rloo": check_trl_rloo}


# ------------------------------------------------------------------------------------------
# Driver
# ------------------------------------------------------------------------------------------

def make_prompt_pool(n: int, max_tokens: int, seed: int) -> list[str]:
    from rlhf_edu.data import load_splits, make_prompts
    from rlhf_edu.models import load_tokenizer

    tok = load_tokenizer("tiny")
    pool = make_prompts(load_splits()["train"], n=4 * n, seed=seed)["prompt"]
    keep = [p for p in pool if len(tok(p, add_special_tokens=False)["input_ids"]) <= max_tokens]
    if len(keep) < n:
        raise RuntimeError(f"only {len(keep)} prompts of at most {max_tokens} tokens")
    return keep[:n]


def run_worker(python: str, name: str, spec_path: str, timeout: float) -> dict:
    env = dict(os.environ, OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"), HF_HUB_OFFLINE="1",
               HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", TRL_EXPERIMENTAL_SILENCE="1",
               ACCELERATE_USE_CPU="true", CUDA_VISIBLE_DEVICES="", PYTHONWARNINGS="ignore")
    proc = subprocess.run([python, __file__, "--worker", name, "--spec", spec_path], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stderr or proc.stdout)[-1500:]}
    return json.loads(lines[-1][len("RESULT "):])


def summarise(runs: list[dict], batch_size: int) -> dict:
    """Medians over repeats of per-repeat medians over the timed (non-warm-up) iterations."""
    def per_run(key, clock="wall"):
        return [statistics.median(r[key][clock][1:]) for r in runs]

    out = {k: statistics.median(per_run(k)) for k in ("total", "rollout", "scoring", "update")}
    out["cpu_total"] = statistics.median(per_run("total", "cpu"))
    out["samples_per_s"] = batch_size / out["total"]
    out["peak_rss_mb"] = statistics.median(r["peak_rss_mb"] for r in runs)
    out["response_length"] = statistics.mean(x for r in runs for x in r["response_length"][1:])
    out["spread"] = (min(per_run("total")), max(per_run("total")))
    return out


def print_checks(checks: dict) -> None:
    print("\nAgreement checks (one rollout of 32 x 20 tokens, EOS suppressed so every token is real):")
    c = checks.get("trl_ppo")
    if c and "error" not in c:
        print("  TRL 1.12 PPOTrainer fed our rollout vs ours, first minibatch, same weights:")
        for k in c["ours"]:
            a, b = c["ours"][k], c["trl"][k]
            print(f"    {k:18s} ours {a: .6f}   TRL {b: .6f}   |diff| {abs(a - b):.2e}")
    elif c:
        print("  TRL PPO check failed:", c["error"][-600:])
    c = checks.get("trl_rloo")
    if c and "error" not in c:
        print("  TRL 1.16 RLOOTrainer per-token log-probs of the same sequences vs ours (max |diff|):")
        print(f"    {c['rows'] - c['padded_rows']} rows without prompt padding: policy {c['policy_unpadded']:.2e}, "
              f"reference {c['ref_unpadded']:.2e}")
        print(f"    {c['padded_rows']} left-padded rows: policy {c['policy_padded']:.2e}, reference {c['ref_padded']:.2e}"
              " (RLOO passes no position_ids: GPT-2 then counts positions from the first pad, unlike sampling)")
        print(f"    mean sequence k1 KL ours {c['ours_mean_sequence_kl']:.6f}, TRL {c['trl_mean_sequence_kl']:.6f}")
    elif c:
        print("  TRL RLOO check failed:", c["error"][-600:])


def print_table(results: dict, spec: dict, repeats: int) -> None:
    B = spec["batch_size"]
    print(f"\nPPO on the tiny model, CPU, {spec['threads']} threads, float32: {B} responses x "
          f"{spec['max_new_tokens']} tokens per iteration, {spec['ppo_epochs']} epochs of minibatch "
          f"{spec['minibatch_size']}; medians of {repeats} interleaved repeat(s), "
          f"{spec['iterations'] - 1} timed iteration(s) each after 1 warm-up.")
    print("| implementation | s/iteration (spread) | rollout | scoring | update | samples/s | CPU s/iteration | "
          "peak RSS MB | mean response tokens | throughput vs TRL PPO (by CPU time) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    trl = results.get("trl_ppo")
    base = (trl["total"], trl["cpu_total"]) if trl and "error" not in trl else None
    for name in IMPLS:
        s = results.get(name)
        if s is None:
            continue
        if "error" in s:
            print(f"| {LABELS[name]} | failed: {s['error'].strip().splitlines()[-1][:80]} |||||||")
            continue
        ratio = f"{base[0] / s['total']:.2f}x ({base[1] / s['cpu_total']:.2f}x)" if base else "n/a"
        print(f"| {LABELS[name]} | {s['total']:.3f} ({s['spread'][0]:.2f}-{s['spread'][1]:.2f}) | {s['rollout']:.3f} | "
              f"{s['scoring']:.3f} | {s['update']:.3f} | {s['samples_per_s']:.1f} | {s['cpu_total']:.3f} | "
              f"{s['peak_rss_mb']:.0f} | {s['response_length']:.1f} | {ratio} |")
    print("* RLOO is a different algorithm (no value model; 8 prompts x 4 samples; sequence-level loss): "
          "same number of sampled responses, tokens and optimizer steps per iteration, not the same work.")
    print("throughput vs TRL PPO = TRL PPO seconds per iteration / this row's. Response tokens: ours count "
          "the EOS token, TRL PPO does not. rollout = generation + policy/reference "
          "log-probs + values; scoring = reward model; update = the rest (advantages, PPO epochs, logging).")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="1 repeat of 1 warm-up + 2 timed iterations")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--iterations", type=int, default=None, help="timed iterations per run (plus 1 warm-up)")
    ap.add_argument("--python-trl112", default=str(ROOT / ".venv-bench-ppo/bin/python"))
    ap.add_argument("--python-trl116", default=str(ROOT / ".venv-bench/bin/python"))
    ap.add_argument("--only", nargs="*", choices=IMPLS, default=list(IMPLS))
    ap.add_argument("--no-checks", action="store_true")
    ap.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        spec = json.loads(Path(args.spec).read_text())
        print("RESULT " + json.dumps(WORKERS[args.worker](spec)), flush=True)
        return

    repeats = args.repeats or (1 if args.quick else 3)
    timed = args.iterations or (2 if args.quick else 4)
    spec = dict(SETUP, iterations=timed + 1)
    spec["prompts"] = make_prompt_pool(256, spec["max_prompt_tokens"], spec["seed"])
    pythons = {"ours": sys.executable, "ours_reuse": sys.executable, "trl_ppo": args.python_trl112, "trl_rloo": args.python_trl116}
    impls = [n for n in args.only if Path(pythons[n]).exists()]
    for n in set(args.only) - set(impls):
        print(f"skipping {n}: no interpreter at {pythons[n]}")
    timeout = 120 + 60 * spec["iterations"]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        spec_path = str(Path(tmp) / "spec.json")
        Path(spec_path).write_text(json.dumps(spec))
        checks = {}
        if not args.no_checks:
            for n in ("trl_ppo", "trl_rloo"):
                if n in impls:
                    checks[n] = run_worker(pythons[n], "check_" + n, spec_path, timeout)
            print_checks(checks)
        runs = {n: [] for n in impls}
        for r in range(repeats):
            order = impls[r % len(impls):] + impls[:r % len(impls)]  # rotate who goes first
            for n in order:
                out = run_worker(pythons[n], n, spec_path, timeout)
                runs[n].append(out)
                msg = out.get("error", "").strip().splitlines()[-1:] if "error" in out else \
                    f"{statistics.median(out['total']['wall'][1:]):.3f} s/it, " \
                    f"{statistics.median(out['total']['cpu'][1:]):.3f} CPU s/it"
                print(f"  repeat {r + 1}/{repeats} {n}: {msg}", flush=True)
    results = {}
    for n, rs in runs.items():
        ok = [x for x in rs if "error" not in x]
        results[n] = summarise(ok, spec["batch_size"]) if ok else rs[0]
    print_table(results, spec, repeats)
    print(f"\nwall time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
