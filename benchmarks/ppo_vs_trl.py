"""Our ``train_ppo`` against TRL 1.12's ``PPOTrainer`` on the same work (and TRL 1.16's RLOO for orientation), CPU.

    .venv-bench-ppo/bin/python benchmarks/ppo_vs_trl.py             # 5 interleaved repeats, 1 thread: ~6 min
    .venv-bench-ppo/bin/python benchmarks/ppo_vs_trl.py --quick     # 1 repeat, 2 timed iterations: a smoke run
    .venv-bench-ppo/bin/python benchmarks/ppo_vs_trl.py --eos allow # EOS allowed: the cost of the convention

(any interpreter can drive it: each implementation runs in a subprocess of the interpreter given for it.)

Where it runs
-------------
TRL 1.12.0 (the last release with ``trl.experimental.ppo.PPOTrainer``) and TRL 1.16 (``RLOOTrainer``)
cannot share a venv. Ours and TRL PPO both run in ``--python-trl112`` (default
``.venv-bench-ppo/bin/python``, ``pip install -e ".[bench-ppo]"``), so the two sides of the headline
comparison run the very same torch and transformers; RLOO runs in ``--python-trl116`` (``.venv-bench``).
Both extras pin transformers 5.24.0; every worker reports its versions and they are printed.

The same work for ours and TRL PPO (``--eos block``, the default)
-----------------------------------------------------------------
* Models: the tiny base model (``rlhf_edu/data/tiny``) as policy and, copied, as frozen reference; a
  value model and a reward model built from the same base with the same seeded scalar heads
  (``rlhf_edu.models.scalar_head_from_lm``; for TRL the same weights in a bias-free
  ``GPT2ForSequenceClassification``; ours' bias starts at zero, so the models start identical).
  float32, CPU, dropout off, gradient checkpointing off (``gradient_checkpointing=False`` on every TRL
  config, whose default is True, and checked on the models after training; TRL 1.12's PPOTrainer,
  whose ``train`` is its own, leaves it off even at the default, RLOO's would turn it on), ``--threads`` torch
  threads in every process (``torch.set_num_threads`` and OMP/MKL/OPENBLAS_NUM_THREADS).
* EOS forbidden, on both sides alike: a forward hook on the LM head of the policy and of the
  reference pins the EOS logit at -1e4 (probability exactly 0 in float32). Every response is then
  exactly ``max_new_tokens`` = 20 real tokens on both sides, the generated width is 20 at every
  iteration (recorded and enforced), and the EOS conventions, which differ (see below), never come
  into play. The hook changes the model, not the sampler, so the sampled distribution *is* the
  policy on both sides: TRL's log-probs from its generation scores and ours from re-scoring are the
  same numbers. (``min_new_tokens`` would not do: TRL 1.12 takes the old log-probs from the
  processed generation scores, which then exclude EOS, while ours re-scores under the policy, so the
  first ratio would differ from 1 by 1 - p(EOS) on TRL's side only.)
* Prompts: the same pool (``rlhf_edu.data.make_prompts``, prompts of at most 16 tokens so that
  nobody truncates); TRL's dataloader is replaced by an unshuffled one over the pool in the order
  ``train_ppo`` visits it (its first seeded permutation), so both see the same 32 prompts in the same
  row order at every iteration (hashes of the left-padded prompt ids are recorded and enforced).
* Per iteration, both: one generation of 32 x 20 tokens with a KV cache (ours: the safe sampler;
  TRL: ``model.generate``), one reference forward over (32, P+20), one value forward, one reward
  forward, then 2 PPO epochs x 2 minibatches of 16: policy forward + backward, value forward +
  backward, one AdamW step (fused, lr 1e-4 for policy and value, no weight decay, constant). Ours
  by default also re-scores the rollout with one policy forward (log pi_old); with
  ``reuse_sampler_logprobs=True`` it takes them from the sampler as TRL does: that row is the
  like-for-like one. Clip 0.2/0.2, vf coef 0.5, fixed k1 KL coefficient 0.05 in the reward, GAE
  1/0.95, whitened advantages, no reward whitening, no ptx (TRL's PPO has none). TRL does not clip
  gradients; ours gets ``max_grad_norm=1e9``. Ours' ``gold_fn`` (an evaluation, not training) is a
  zero function so that it costs nothing.

EOS (``--eos allow``) and the convention difference
---------------------------------------------------
With EOS allowed (pad = EOS, the tiny tokenizer's only special token), TRL 1.12 truncates after the
first EOS, counts the EOS itself as padding (it is left out of the policy loss, the KL, and the
advantage whitening), and puts the score on the last token before it (the value loss covers one
position more); ours counts the EOS as a response token (loss, KL, whitening) and reads the reward
model at EOS. So the two train on different signals and the losses are not comparable; nor is
the work, since each side stops generating when all its own samples have ended. ``--eos allow``
measures both sides so configured and prints no ratio; its table shows what EOS costs each side.

Checks, run before any timing; the script exits with status 1 before printing a ratio if one fails
--------------------------------------------------------------------------------------------------
* TRL PPO against ours on one iteration, TRL generating: the 32 prompts (first iteration, our order);
  TRL's own ``batch_generation`` samples the rollout with the global torch seed set to S; ours'
  sampler with a generator seeded S must give the same tokens. Then TRL trains one iteration (2
  epochs x 2 minibatches, its minibatch permutations drawn from the torch generator ours uses), and
  ``train_ppo`` trains one iteration on TRL's rollout (its ``sample`` replaced by one returning
  TRL's tokens) from the same weights. The policy loss, value loss and total loss of each of the 4
  minibatches must agree to 1e-5, and the clipped branch must be taken in minibatch 2 with the
  same clip fraction on both sides (``--check-lr`` sets the learning rate of this check); the
  mean sequence KL and reward too. The policy is perturbed first (seeded noise, std 0.02) so that
  KL > 0; at the benchmark's own learning rate (1e-4) one step then moves it enough that the
  clipped branch is taken on about 16% of minibatch 2's tokens on both sides.
* RLOO (orientation only): per-token log-probs of policy and reference on the same sequences.
* After timing: every run of ours and of TRL PPO saw the same prompts and generated 20 tokens at
  every iteration.

Timing
------
Each implementation and repeat runs in a fresh subprocess; repeats are interleaved (the order
rotates each repeat) so that machine load hits all alike; ``os.getloadavg()`` is recorded at the
start and end of each run. The first iteration is a warm-up; a repeat's figure is the median of its
timed iterations; the table gives the median over repeats with (min-max); the ratio is computed per
repeat (TRL repeat i / ours repeat i) and given as median (min-max). Phases: rollout = generation +
log-probs + values; scoring = reward model; update = the rest (advantages, PPO epochs, logging).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
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
             rloo_k=4, seed=0, gen_seed=1234, pool=256)
IMPLS = ("ours_reuse", "ours", "trl_ppo", "trl_rloo")
LABELS = {"ours_reuse": "ours, `reuse_sampler_logprobs=True` (same passes as TRL)",
          "ours": "ours, `train_ppo` defaults (+1 policy forward per iteration)",
          "trl_ppo": "TRL 1.12 `PPOTrainer`", "trl_rloo": "TRL 1.16 `RLOOTrainer` *"}
LOSS_TOL = 1e-5


# ------------------------------------------------------------------------------------------
# Shared by every worker (each imports torch and rlhf_edu in its own interpreter)
# ------------------------------------------------------------------------------------------

def thread_env(threads: int) -> dict:
    n = str(threads)
    return dict(OMP_NUM_THREADS=n, MKL_NUM_THREADS=n, OPENBLAS_NUM_THREADS=n, OMP_WAIT_POLICY="PASSIVE")


def setup_torch(spec):
    import torch

    torch.set_num_threads(spec["threads"])
    return torch


def versions() -> dict:
    import accelerate
    import torch
    import transformers

    out = dict(python=sys.version.split()[0], torch=torch.__version__, transformers=transformers.__version__,
               accelerate=accelerate.__version__, threads=torch.get_num_threads())
    try:
        import trl

        out["trl"] = trl.__version__
    except ImportError:
        pass
    return out


def block_eos_(model, eos: int) -> None:
    """Pin the EOS logit of ``model``'s LM head at -1e4 (probability 0 in float32), for every caller."""
    import torch

    def hook(module, inputs, out):
        return out.index_fill(-1, torch.tensor([eos], device=out.device), -1e4)

    model.get_output_embeddings().register_forward_hook(hook)


def build_models(spec):
    """(policy, reference, value ScalarHeadModel, reward ScalarHeadModel, tokenizer), seeded heads."""
    import torch

    from rlhf_edu.models import frozen_copy, load_policy, scalar_head_from_lm

    policy, tok = load_policy("tiny", device="cpu", dtype=torch.float32)
    torch.manual_seed(spec["seed"])
    value = scalar_head_from_lm(policy)
    value.head.bias.requires_grad_(False)  # TRL's value head has no bias: ours' stays at its initial 0
    reward = frozen_copy(scalar_head_from_lm(policy))
    ref = frozen_copy(policy)
    if spec["eos"] == "block":
        for m in (policy, ref):
            block_eos_(m, tok.eos_token_id)
    return policy, ref, value, reward, tok


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


def perturb_(model, seed: int, std: float = 0.02) -> None:
    """Add seeded noise to every weight (the checks' policy moves away from the reference: KL > 0)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * std)


def our_order(spec) -> list[int]:
    """The order in which ``train_ppo`` visits the prompt pool (its first seeded permutation)."""
    import torch

    return torch.randperm(len(spec["prompts"]), generator=torch.Generator().manual_seed(spec["seed"])).tolist()


def our_config(spec, iterations: int, reuse: bool, lr: float | None = None):
    from rlhf_edu.ppo import PPOConfig

    lr = spec["lr"] if lr is None else lr
    return PPOConfig.tiny(iterations=iterations, batch_size=spec["batch_size"], max_new_tokens=spec["max_new_tokens"],
                          max_prompt_tokens=spec["max_prompt_tokens"], lr=lr, value_lr=lr,
                          ppo_epochs=spec["ppo_epochs"], minibatch_size=spec["minibatch_size"],
                          clip_eps=spec["clip_eps"], value_clip_eps=spec["value_clip_eps"], vf_coef=spec["vf_coef"],
                          beta=spec["beta"], kl_estimator="k1", gamma=spec["gamma"], lam=spec["lam"],
                          max_grad_norm=1e9, seed=spec["seed"], reuse_sampler_logprobs=reuse)


def ids_hash(ids) -> str:
    import numpy as np

    a = np.asarray(ids.tolist() if hasattr(ids, "tolist") else ids, dtype=np.int64)
    return hashlib.sha1(a.tobytes() + str(a.shape).encode()).hexdigest()[:12]


def no_gold(texts):
    import torch

    return torch.zeros(len(texts))


def mark() -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds)."""
    return time.perf_counter(), time.process_time()


def phases(starts, reward_marks, ends, rollout_ends=None) -> dict:
    """Per-iteration {phase: {"wall": [...], "cpu": [...]}} from ``mark()`` pairs."""
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


# ------------------------------------------------------------------------------------------
# Timed workers
# ------------------------------------------------------------------------------------------

def worker_ours(spec: dict, reuse: bool) -> dict:
    load0 = os.getloadavg()[0]
    setup_torch(spec)
    from rlhf_edu import ppo
    from rlhf_edu.generation import encode_prompts
    from rlhf_edu.ppo import reward_model_scores, train_ppo

    policy, ref, value, rm, tok = build_models(spec)
    cfg = our_config(spec, spec["iterations"], reuse)
    starts, rollout_ends, rewards, work = [], [], [], []
    make_rollout = ppo.make_rollout

    def timed_rollout(policy_, reference, value_model, tokenizer, prompts, config, generator=None):
        starts.append(mark())
        out = make_rollout(policy_, reference, value_model, tokenizer, prompts, config, generator)
        rollout_ends.append(mark())
        q, _ = encode_prompts(tokenizer, prompts, config.max_prompt_tokens)
        work.append(dict(queries=ids_hash(q), P=out.prompt_length, width=out.input_ids.shape[1] - out.prompt_length,
                         real_tokens=float(out.response_mask.sum(-1).float().mean()),
                         eos_rows=int((out.rollout.response_ids == tokenizer.eos_token_id).any(-1).sum())))
        return out

    def reward_fn(ro):
        t = mark()
        out = reward_model_scores(rm, ro)
        rewards.append((t, mark()))
        return out

    ppo.make_rollout = timed_rollout
    try:
        train_ppo(cfg, policy, ref, value, tok, spec["prompts"], reward_fn, progress=False, gold_fn=no_gold)
        end = mark()
    finally:
        ppo.make_rollout = make_rollout
    return dict(phases(starts, rewards, starts[1:] + [end], rollout_ends), work=work, peak_rss_mb=peak_rss_mb(),
                load=[load0, os.getloadavg()[0]], versions=versions(),
                gradient_checkpointing=bool(getattr(policy, "is_gradient_checkpointing", False)))


def _trl_ppo_trainer(spec, policy, ref, value, rm, tok, iterations, outdir, lr=None):
    """TRL 1.12's PPOTrainer on our settings, its dataloader replaced by an unshuffled one in our order."""
    from datasets import Dataset
    from torch.utils.data import DataLoader
    from transformers import DataCollatorWithPadding
    from trl.experimental.ppo import PPOConfig as TRLPPOConfig
    from trl.experimental.ppo import PPOTrainer

    tok.padding_side = "left"
    prompts = [spec["prompts"][i] for i in our_order(spec)]
    ds = Dataset.from_dict({"input_ids": [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]})
    B = spec["batch_size"]
    args = TRLPPOConfig(
        output_dir=outdir, report_to="none", save_strategy="no", use_cpu=True, bf16=False, fp16=False,
        disable_tqdm=True, logging_steps=1, seed=spec["seed"], dataloader_num_workers=0,
        gradient_checkpointing=False, optim="adamw_torch_fused",
        per_device_train_batch_size=B, gradient_accumulation_steps=1, num_mini_batches=B // spec["minibatch_size"],
        num_ppo_epochs=spec["ppo_epochs"], local_rollout_forward_batch_size=B, total_episodes=B * iterations,
        learning_rate=spec["lr"] if lr is None else lr, lr_scheduler_type="constant", weight_decay=0.0,
        warmup_steps=0, response_length=spec["max_new_tokens"], stop_token="eos", temperature=1.0,
        missing_eos_penalty=None, kl_coef=spec["beta"], kl_estimator="k1", cliprange=spec["clip_eps"],
        cliprange_value=spec["value_clip_eps"], vf_coef=spec["vf_coef"], gamma=spec["gamma"], lam=spec["lam"],
        whiten_rewards=False, num_sample_generations=0,
    )
    trainer = PPOTrainer(args=args, processing_class=tok, model=policy, ref_model=ref,
                         reward_model=to_hf_classifier(rm), value_model=to_hf_classifier(value),
                         train_dataset=ds, eval_dataset=ds.select(range(B)))
    if args.local_batch_size != B or args.local_mini_batch_size != spec["minibatch_size"]:
        raise RuntimeError(f"TRL batch {args.local_batch_size} / minibatch {args.local_mini_batch_size}, expected "
                           f"{B} / {spec['minibatch_size']}")
    trainer.dataloader = trainer.accelerator.prepare(
        DataLoader(ds, batch_size=B, shuffle=False, collate_fn=DataCollatorWithPadding(tok), drop_last=True))
    return trainer


def worker_trl_ppo(spec: dict) -> dict:
    load0 = os.getloadavg()[0]
    torch = setup_torch(spec)
    from transformers import TrainerCallback
    from trl.experimental.ppo import ppo_trainer as mod

    policy, ref, value, rm, tok = build_models(spec)
    work = []
    with tempfile.TemporaryDirectory() as outdir:
        trainer = _trl_ppo_trainer(spec, policy, ref, value, rm, tok, spec["iterations"], outdir)
        marks = {"reward": [], "step_end": []}
        get_reward, batch_generation = mod.get_reward, mod.batch_generation

        def timed_get_reward(model, *a, **k):
            t = mark()
            out = get_reward(model, *a, **k)
            if model is trainer.reward_model:
                marks["reward"].append((t, mark()))
            return out

        def recorded_generation(model, queries, *a, **k):
            out = batch_generation(model, queries, *a, **k)
            P, resp = queries.shape[1], out[0][:, queries.shape[1]:]
            is_eos = resp == tok.eos_token_id
            first = torch.where(is_eos.any(-1), is_eos.float().argmax(-1), torch.full_like(is_eos[:, 0], resp.shape[1],
                                                                                           dtype=torch.long))
            work.append(dict(queries=ids_hash(queries), P=P, width=resp.shape[1], real_tokens=float(first.float().mean()),
                             eos_rows=int(is_eos.any(-1).sum())))
            return out

        class StepEnd(TrainerCallback):
            def on_step_end(self, args, state, control, **kw):
                marks["step_end"].append(mark())

        trainer.add_callback(StepEnd())
        mod.get_reward, mod.batch_generation = timed_get_reward, recorded_generation
        try:
            start = mark()
            trainer.train()
        finally:
            mod.get_reward, mod.batch_generation = get_reward, batch_generation
        gc_on = bool(policy.is_gradient_checkpointing or trainer.value_model.is_gradient_checkpointing)
    ends = marks["step_end"]
    return dict(phases([start] + ends[:-1], marks["reward"], ends), work=work, peak_rss_mb=peak_rss_mb(),
                load=[load0, os.getloadavg()[0]], versions=versions(), gradient_checkpointing=gc_on)


def _trl_rloo_trainer(spec, policy, rm, tok, iterations, outdir):
    from datasets import Dataset
    from trl import RLOOConfig, RLOOTrainer

    B, k, mb = spec["batch_size"], spec["rloo_k"], spec["minibatch_size"]
    args = RLOOConfig(
        output_dir=outdir, report_to="none", save_strategy="no", use_cpu=True, bf16=False, fp16=False,
        disable_tqdm=True, logging_steps=B // mb * spec["ppo_epochs"], seed=spec["seed"], dataloader_num_workers=0,
        gradient_checkpointing=False, per_device_train_batch_size=mb, gradient_accumulation_steps=1,
        steps_per_generation=B // mb, num_generations=k, num_iterations=spec["ppo_epochs"],
        max_steps=iterations * (B // mb) * spec["ppo_epochs"], learning_rate=spec["lr"], lr_scheduler_type="constant",
        weight_decay=0.0, warmup_steps=0, max_completion_length=spec["max_new_tokens"], temperature=1.0, top_p=1.0,
        top_k=0, beta=spec["beta"], epsilon=spec["clip_eps"], pad_to_multiple_of=None,
    )
    rm_hf = to_hf_classifier(rm).eval()
    tok.padding_side = "left"
    trainer = RLOOTrainer(model=policy, reward_funcs=rm_hf, args=args, processing_class=tok,
                          reward_processing_classes=tok, train_dataset=Dataset.from_dict({"prompt": list(spec["prompts"])}))
    if spec["eos"] == "block" and trainer.ref_model is not None:  # RLOO loads its reference from disk
        block_eos_(trainer.ref_model, tok.eos_token_id)
    return trainer


def worker_trl_rloo(spec: dict) -> dict:
    load0 = os.getloadavg()[0]
    setup_torch(spec)
    from transformers import TrainerCallback
    from trl import RLOOTrainer

    policy, _, _, rm, tok = build_models(spec)
    per_iter = spec["batch_size"] // spec["minibatch_size"] * spec["ppo_epochs"]
    with tempfile.TemporaryDirectory() as outdir:
        trainer = _trl_rloo_trainer(spec, policy, rm, tok, spec["iterations"], outdir)
        marks = {"gen_end": [], "reward": [], "step_end": []}
        work = []
        gen_score, calc_rewards = RLOOTrainer._generate_and_score_completions, RLOOTrainer._calculate_rewards

        def timed_gen_score(self, *a, **k):
            out = gen_score(self, *a, **k)
            marks["gen_end"].append(mark())
            work.append(dict(queries="", P=out["prompt_ids"].shape[1], width=out["completion_ids"].shape[1],
                             real_tokens=out["completion_mask"].sum(-1).float().mean().item(), eos_rows=-1))
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
        gc_on = bool(trainer.model.is_gradient_checkpointing)
    ends = marks["step_end"]
    out = phases([start] + ends[:-1], marks["reward"], ends, marks["gen_end"])
    for clock in ("wall", "cpu"):  # the reward model runs inside generate-and-score: take it out of the rollout
        out["rollout"][clock] = [r - c for r, c in zip(out["rollout"][clock], out["scoring"][clock])]
        out["update"][clock] = [t - r - c for t, r, c in zip(out["total"][clock], out["rollout"][clock],
                                                              out["scoring"][clock])]
    return dict(out, work=work, peak_rss_mb=peak_rss_mb(), load=[load0, os.getloadavg()[0]], versions=versions(),
                gradient_checkpointing=gc_on)


# ------------------------------------------------------------------------------------------
# Agreement checks
# ------------------------------------------------------------------------------------------

def check_trl_ppo(spec: dict) -> dict:
    """One iteration of TRL 1.12's PPOTrainer (its own generation) and of train_ppo on TRL's rollout."""
    torch = setup_torch(spec)
    import numpy as np
    from trl.experimental.ppo import ppo_trainer as mod

    from rlhf_edu import ppo, rollouts
    from rlhf_edu.generation import Rollout, encode_prompts, sample
    from rlhf_edu.ppo import reward_model_scores, train_ppo

    B, R, S = spec["batch_size"], spec["max_new_tokens"], spec["gen_seed"]
    policy, ref, value, rm, tok = build_models(spec)
    perturb_(policy, spec["seed"] + 2)
    ours_policy, ours_value = copy.deepcopy(policy), copy.deepcopy(value)  # the same starting weights
    first_prompts = [spec["prompts"][i] for i in our_order(spec)[:B]]

    # ours' sampler on the first iteration's prompts, seed S
    ours_ro = sample(copy.deepcopy(policy), tok, first_prompts, R, generator=torch.Generator().manual_seed(S),
                     max_prompt_tokens=spec["max_prompt_tokens"])

    # TRL: one iteration, generating itself; minibatch permutations from ours' generator stream
    seen = {"mm": [], "clip": [], "loss": [], "after_backward": False}
    perm_gen = torch.Generator().manual_seed(spec["seed"])
    perm_gen_ours_order = torch.randperm(len(spec["prompts"]), generator=perm_gen)  # train_ppo draws this first
    del perm_gen_ours_order
    batch_generation, masked_mean = mod.batch_generation, mod.masked_mean

    def spy_generation(model, queries, *a, **k):
        torch.manual_seed(S)
        out = batch_generation(model, queries, *a, **k)
        seen["queries"], seen["query_responses"], seen["gen_logits"] = queries.clone(), out[0].clone(), out[1].clone()
        return out

    def spy_masked_mean(*a, **k):
        out = masked_mean(*a, **k)
        if torch.is_grad_enabled():
            seen["mm"].append(float(out.detach()))
        elif seen["after_backward"]:  # the policy clip fraction, computed right after the step
            seen["clip"].append(float(out))
            seen["after_backward"] = False
        return out

    with tempfile.TemporaryDirectory() as outdir:
        trainer = _trl_ppo_trainer(spec, policy, ref, value, rm, tok, 1, outdir, lr=spec["check_lr"])
        backward = trainer.accelerator.backward

        def spy_backward(loss, *a, **k):
            seen["loss"].append(float(loss.detach()))
            seen["after_backward"] = True
            return backward(loss, *a, **k)

        log = trainer.log

        def spy_log(metrics, *a, **k):
            seen["metrics"] = dict(metrics)
            return log(metrics, *a, **k)

        trainer.accelerator.backward, trainer.log = spy_backward, spy_log
        saved = mod.batch_generation, mod.masked_mean, np.random.permutation
        mod.batch_generation, mod.masked_mean = spy_generation, spy_masked_mean
        np.random.permutation = lambda n: torch.randperm(n, generator=perm_gen).numpy()
        try:
            trainer.train()
        finally:
            mod.batch_generation, mod.masked_mean, np.random.permutation = saved
        trl_gc = bool(policy.is_gradient_checkpointing)

    q, qr = seen["queries"], seen["query_responses"]
    P = q.shape[1]
    ours_q, ours_qmask = encode_prompts(tok, first_prompts, spec["max_prompt_tokens"])
    resp = qr[:, P:]
    same_rows = int((resp == ours_ro.response_ids).all(-1).sum()) if resp.shape == ours_ro.response_ids.shape else 0

    # ours: train_ppo for one iteration on TRL's rollout (its sampler replaced by one returning TRL's tokens)
    eos = tok.eos_token_id
    is_eos = resp == eos
    after = (is_eos.cumsum(-1) - is_eos.long()) > 0  # past the first EOS
    resp_mask = (~after).long()
    with torch.no_grad():
        trl_gen_logprobs = torch.log_softmax(seen["gen_logits"].float(), -1).gather(-1, resp[..., None]).squeeze(-1)
    trl_ro = Rollout(input_ids=qr.clone(), attention_mask=torch.cat([ours_qmask, torch.ones_like(resp)], 1),
                     response_mask=resp_mask, logprobs=trl_gen_logprobs * resp_mask,
                     sampler_logprobs=trl_gen_logprobs * resp_mask, prompt_length=P, prompts=first_prompts,
                     texts=[tok.decode([t for t, m in zip(r.tolist(), mk.tolist()) if m and t != eos])
                            for r, mk in zip(resp, resp_mask)])
    ours_mb = []
    minibatch_losses = ppo._minibatch_losses

    def spy_minibatch_losses(*a, **k):
        pl, vl, ent = minibatch_losses(*a, **k)
        ours_mb.append(dict(policy_loss=float(pl.loss), value_loss=float(vl.loss), clipfrac=float(pl.clipfrac),
                            value_clipfrac=float(vl.clipfrac)))
        return pl, vl, ent

    rollout_sample = rollouts.sample
    rollouts.sample = lambda *a, **k: trl_ro
    ppo._minibatch_losses = spy_minibatch_losses
    try:
        hist = train_ppo(our_config(spec, 1, False, lr=spec["check_lr"]), ours_policy, ref, ours_value, tok,
                         spec["prompts"], lambda ro: reward_model_scores(rm, ro), progress=False, gold_fn=no_gold)
    finally:
        rollouts.sample, ppo._minibatch_losses = rollout_sample, minibatch_losses
    # TRL records, per minibatch: 2 x value loss (the mean before its 0.5), value clip fraction, policy loss (grad enabled), then the
    # clip fraction after the step
    trl_mb = [dict(policy_loss=seen["mm"][3 * i + 2], value_loss=0.5 * seen["mm"][3 * i],
                   value_clipfrac=seen["mm"][3 * i + 1], clipfrac=seen["clip"][i], total_loss=seen["loss"][i])
              for i in range(len(seen["loss"]))]
    for d in ours_mb:
        d["total_loss"] = d["policy_loss"] + spec["vf_coef"] * d["value_loss"]
    return dict(prompts_same=bool(q.shape == ours_q.shape and torch.equal(q, ours_q)), P=P, width=resp.shape[1],
                eos_rows=int(is_eos.any(-1).sum()), generation_same_rows=same_rows, rows=B,
                generation_same_tokens=int((resp == ours_ro.response_ids).sum()) if resp.shape == ours_ro.response_ids.shape else 0,
                trl_minibatches=trl_mb, ours_minibatches=ours_mb,
                trl_kl=seen["metrics"]["objective/kl"], ours_kl=hist["kl"][0],
                trl_reward=seen["metrics"]["objective/scores"], ours_reward=hist["reward"][0],
                trl_gradient_checkpointing=trl_gc, versions=versions())


def check_trl_rloo(spec: dict) -> dict:
    """Per-token log-probs (policy, reference) and sequence k1 KL of RLOO 1.16 and ours on the same sequences."""
    torch = setup_torch(spec)
    from rlhf_edu.generation import sample
    from rlhf_edu.logprobs import response_logprobs

    B, R = spec["batch_size"], spec["max_new_tokens"]
    policy, _, _, rm, tok = build_models(spec)
    prompts = spec["prompts"][:B]
    with tempfile.TemporaryDirectory() as outdir:
        trainer = _trl_rloo_trainer(spec, policy, rm, tok, 1, outdir)
        perturb_(policy, spec["seed"] + 2)
        ro = sample(policy, tok, prompts, R, generator=torch.Generator().manual_seed(spec["gen_seed"]),
                    max_prompt_tokens=spec["max_prompt_tokens"], min_new_tokens=R, allow_biased=True)
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
            "padded_rows": int(padded.sum()), "rows": B, "versions": versions()}


WORKERS = {"ours": lambda spec: worker_ours(spec, False), "ours_reuse": lambda spec: worker_ours(spec, True),
           "trl_ppo": worker_trl_ppo, "trl_rloo": worker_trl_rloo,
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


def run_worker(python: str, name: str, spec_path: str, timeout: float, threads: int) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", TRL_EXPERIMENTAL_SILENCE="1", ACCELERATE_USE_CPU="true",
               CUDA_VISIBLE_DEVICES="", PYTHONWARNINGS="ignore", TQDM_DISABLE="1", **thread_env(threads))
    proc = subprocess.run([python, __file__, "--worker", name, "--spec", spec_path], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stderr or proc.stdout)[-3000:]}
    return json.loads(lines[-1][len("RESULT "):])


def spread(xs):
    return min(xs), statistics.median(xs), max(xs)


def per_run(r, key="total", clock="wall"):
    return statistics.median(r[key][clock][1:])  # the first iteration is a warm-up


def summarise(runs: list[dict], batch_size: int) -> dict:
    out = {k: statistics.median(per_run(r, k) for r in runs) for k in ("total", "rollout", "scoring", "update")}
    out["per_rep"] = [per_run(r) for r in runs]
    out["spread"] = spread(out["per_rep"])
    out["cpu_total"] = statistics.median(per_run(r, "total", "cpu") for r in runs)
    out["cpu_spread"] = spread([per_run(r, "total", "cpu") for r in runs])
    for k in ("rollout", "scoring", "update"):
        out["cpu_" + k] = statistics.median(per_run(r, k, "cpu") for r in runs)
    out["samples_per_s"] = batch_size / out["total"]
    out["peak_rss_mb"] = statistics.median(r["peak_rss_mb"] for r in runs)
    out["real_tokens"] = statistics.mean(w["real_tokens"] for r in runs for w in r["work"][1:])
    out["widths"] = sorted({w["width"] for r in runs for w in r["work"]})
    out["load"] = (min(r["load"][0] for r in runs), max(max(r["load"]) for r in runs))
    out["gradient_checkpointing"] = any(r["gradient_checkpointing"] for r in runs)
    return out


def fail(msg: str) -> int:
    print(f"FAILED (no ratio printed): {msg}", file=sys.stderr, flush=True)
    return 1


def print_check_ppo(c, spec) -> bool:
    """Print the TRL PPO check; True when everything it claims holds."""
    print(f"  TRL 1.12 PPOTrainer, one iteration generating itself, against train_ppo on TRL's rollout "
          f"(learning rate {spec['check_lr']:g} so that the second minibatch clips):")
    print(f"    prompts: TRL's first batch equals ours (same order, same left padding, P = {c['P']}): {c['prompts_same']}")
    print(f"    TRL's own generation (global seed {spec['gen_seed']}) vs ours' sampler (generator seed "
          f"{spec['gen_seed']}): {c['generation_same_rows']}/{c['rows']} responses and "
          f"{c['generation_same_tokens']}/{c['rows'] * c['width']} tokens identical; width {c['width']}; "
          f"responses containing EOS: {c['eos_rows']}")
    ok = c["prompts_same"]
    if spec["eos"] == "block":
        ok &= c["width"] == spec["max_new_tokens"] and c["eos_rows"] == 0
    worst = 0.0
    for i, (t, o) in enumerate(zip(c["trl_minibatches"], c["ours_minibatches"])):
        d = max(abs(t[k] - o[k]) for k in ("policy_loss", "value_loss", "total_loss"))
        worst = max(worst, d) if i < 4 else worst
        print(f"    minibatch {i + 1} (epoch {i // 2 + 1}): policy loss TRL {t['policy_loss']: .8f} ours "
              f"{o['policy_loss']: .8f}; value loss TRL {t['value_loss']:.8f} ours {o['value_loss']:.8f}; total "
              f"TRL {t['total_loss']: .8f} ours {o['total_loss']: .8f}; max |diff| {d:.1e}; clip fraction TRL "
              f"{t['clipfrac']:.3f} ours {o['clipfrac']:.3f}, value clip fraction TRL {t['value_clipfrac']:.3f} "
              f"ours {o['value_clipfrac']:.3f}")
    dkl, drw = abs(c["trl_kl"] - c["ours_kl"]), abs(c["trl_reward"] - c["ours_reward"])
    print(f"    mean sequence KL TRL {c['trl_kl']:.6f} ours {c['ours_kl']:.6f} (|diff| {dkl:.1e}); mean reward TRL "
          f"{c['trl_reward']:.6f} ours {c['ours_reward']:.6f} (|diff| {drw:.1e}); TRL gradient checkpointing: "
          f"{c['trl_gradient_checkpointing']}")
    if spec["eos"] != "block":
        print("    (EOS allowed: the conventions differ, so these losses are not expected to agree; not enforced)")
        return ok
    mb2 = c["trl_minibatches"][1], c["ours_minibatches"][1]
    ok &= len(c["trl_minibatches"]) == len(c["ours_minibatches"]) == 2 * spec["ppo_epochs"]
    ok &= worst <= LOSS_TOL and dkl <= LOSS_TOL and drw <= LOSS_TOL and not c["trl_gradient_checkpointing"]
    ok &= mb2[0]["clipfrac"] > 0 and mb2[1]["clipfrac"] > 0 and abs(mb2[0]["clipfrac"] - mb2[1]["clipfrac"]) < 1e-6
    print(f"    all {len(c['trl_minibatches'])} minibatches within {LOSS_TOL:g} and clipping exercised in minibatch 2: "
          f"{ok}")
    return ok


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="1 repeat of 1 warm-up + 2 timed iterations")
    ap.add_argument("--repeats", type=int, default=None, help="interleaved repeats (default 5)")
    ap.add_argument("--iterations", type=int, default=None, help="timed iterations per run, plus 1 warm-up (4)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process, every side alike (1)")
    ap.add_argument("--eos", choices=("block", "allow"), default="block",
                    help="block: EOS forbidden on both sides, fixed width, like for like; allow: the cost of EOS")
    ap.add_argument("--check-lr", type=float, default=SETUP["lr"],
                    help="learning rate of the TRL PPO check (default: the benchmark's own, 1e-4)")
    ap.add_argument("--python-trl112", default=str(ROOT / ".venv-bench-ppo/bin/python"),
                    help="interpreter for TRL PPO and for ours")
    ap.add_argument("--python-trl116", default=str(ROOT / ".venv-bench/bin/python"), help="interpreter for RLOO")
    ap.add_argument("--only", nargs="*", choices=IMPLS, default=["ours_reuse", "ours", "trl_ppo"],
                    help="implementations to run (default: the three of the headline; add trl_rloo for RLOO)")
    ap.add_argument("--profile", choices=IMPLS, help="run this implementation once in-process under pyinstrument")
    ap.add_argument("--check-only", action="store_true", help="run the checks and stop")
    ap.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        spec = json.loads(Path(args.spec).read_text())
        print("RESULT " + json.dumps(WORKERS[args.worker](spec)), flush=True)
        return 0

    os.environ.update(thread_env(args.threads))  # before torch is imported here
    repeats = args.repeats or (1 if args.quick else 5)
    timed = args.iterations or (2 if args.quick else 4)
    spec = dict(SETUP, iterations=timed + 1, threads=args.threads, eos=args.eos, check_lr=args.check_lr)
    spec["prompts"] = make_prompt_pool(spec["pool"], spec["max_prompt_tokens"], spec["seed"])
    pythons = {"ours": args.python_trl112, "ours_reuse": args.python_trl112, "trl_ppo": args.python_trl112,
               "trl_rloo": args.python_trl116}
    impls = [n for n in IMPLS if n in args.only and Path(pythons[n]).exists()]
    for n in set(args.only) - set(impls):
        print(f"skipping {n}: no interpreter at {pythons[n]}")
    B, R = spec["batch_size"], spec["max_new_tokens"]
    print(f"settings: {args.threads} torch thread(s) per process (torch.set_num_threads and OMP/MKL/OPENBLAS_NUM_THREADS "
          f"in every subprocess); EOS {'forbidden on both sides (LM-head hook): fixed width' if args.eos == 'block' else 'allowed'}; "
          f"{B} prompts x {R} new tokens per iteration, temperature 1, no top-k/top-p; {spec['ppo_epochs']} epochs of "
          f"minibatch {spec['minibatch_size']}; AdamW (fused) lr {spec['lr']:g} policy and value, no weight decay, "
          f"constant; clip {spec['clip_eps']}/{spec['value_clip_eps']}, vf coef {spec['vf_coef']}, k1 KL coefficient "
          f"{spec['beta']}, GAE {spec['gamma']}/{spec['lam']}, whitened advantages; float32 CPU, dropout off, "
          f"gradient checkpointing off; {repeats} interleaved repeat(s) x ({timed} timed + 1 warm-up) iterations; "
          f"load average at start {os.getloadavg()[0]:.2f}", flush=True)
    if args.profile:
        from pyinstrument import Profiler

        prof = Profiler(interval=0.001)
        prof.start()
        out = WORKERS[args.profile](spec)
        prof.stop()
        print(f"{args.profile}: {per_run(out):.3f} s/iteration (median of {timed} after 1 warm-up), whole run profiled:")
        # library frames hidden, except TRL's, ours' and the model forwards (what the comparison is about)
        print(prof.output_text(unicode=False, color=False, show_all=False, processor_options={
            "show_regex": r".*(/trl/|rlhf_edu/|benchmarks/|modeling_gpt2|torch/nn/functional).*"}))
        return 0
    timeout = 180 + 90 * spec["iterations"]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        spec_path = str(Path(tmp) / "spec.json")
        Path(spec_path).write_text(json.dumps(spec))
        print("\nChecks (before any timing):")
        if "trl_ppo" in impls:
            c = run_worker(pythons["trl_ppo"], "check_trl_ppo", spec_path, timeout, args.threads)
            if "error" in c:
                print(c["error"])
                return fail("the TRL PPO check did not run")
            print(f"  versions (ours and TRL PPO, one interpreter): {c['versions']}")
            if not print_check_ppo(c, spec):
                return fail("TRL PPO and ours disagree (prompts, generation width, losses, KL, reward or clipping)")
        if "trl_rloo" in impls:
            c = run_worker(pythons["trl_rloo"], "check_trl_rloo", spec_path, timeout, args.threads)
            if "error" in c:
                print("  TRL RLOO check failed to run:", c["error"][-800:])
            else:
                print(f"  TRL 1.16 RLOOTrainer ({c['versions']}), per-token log-probs of the same sequences vs ours "
                      f"(max |diff|): {c['rows'] - c['padded_rows']} rows without prompt padding: policy "
                      f"{c['policy_unpadded']:.1e}, reference {c['ref_unpadded']:.1e}; {c['padded_rows']} left-padded "
                      f"rows: policy {c['policy_padded']:.1e}, reference {c['ref_padded']:.1e} (RLOO passes no "
                      f"position_ids: GPT-2 then counts positions from the first pad, unlike its sampling)"
                      + ("; with EOS forbidden, RLOO's fused LM head reads the head's weight directly, misses the "
                         "hook and keeps EOS in its log-probs, so no row agrees" if args.eos == "block" else ""))
        if args.check_only:
            return 0
        print("\nTimed runs:", flush=True)
        runs = {n: [] for n in impls}
        for r in range(repeats):
            order = impls[r % len(impls):] + impls[:r % len(impls)]  # rotate who goes first
            for n in order:
                out = run_worker(pythons[n], n, spec_path, timeout, args.threads)
                if "error" in out:
                    print(out["error"])
                    return fail(f"{n} did not run")
                runs[n].append(out)
                print(f"  repeat {r + 1}/{repeats} {n:>10}: {per_run(out):.3f} s/it ({per_run(out, 'total', 'cpu'):.3f} "
                      f"CPU s/it), widths {sorted({w['width'] for w in out['work']})}, load average "
                      f"{out['load'][0]:.2f} -> {out['load'][1]:.2f}", flush=True)

    # the same work: same prompts in the same order and the same generated width at every iteration
    same = [n for n in ("ours_reuse", "ours", "trl_ppo") if n in runs]
    ref_work = runs[same[0]][0]["work"] if same else []
    for n in same:
        for rr in runs[n]:
            if [w["queries"] for w in rr["work"]] != [w["queries"] for w in ref_work]:
                return fail(f"{n}: the prompts of some iteration differ from {same[0]}'s")
            if args.eos == "block" and any(w["width"] != R or w["eos_rows"] for w in rr["work"]):
                return fail(f"{n}: a generated width other than {R} or an EOS with EOS forbidden")
    for n, rs in runs.items():
        if any(r["gradient_checkpointing"] for r in rs):
            return fail(f"{n}: gradient checkpointing was on")
    if same:
        print(f"\nwork: every run of {', '.join(same)} saw the same {B} prompts in the same order at each of the "
              f"{spec['iterations']} iterations" + (f" and generated exactly {R} tokens per response (width {R}, no EOS)"
                                                    if args.eos == "block" else ""))
    results = {n: summarise(rs, B) for n, rs in runs.items()}
    vers = {n: runs[n][0]["versions"] for n in runs}
    for n in runs:
        print(f"  {n}: {vers[n]}")

    print(f"\n| implementation | s/iteration, median (min-max) | rollout | scoring | update | samples/s | CPU s/iteration "
          f"(min-max) | peak RSS MB | generated width | real tokens per response | load average (min-max) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for n, s in results.items():
        print(f"| {LABELS[n]} | {s['total']:.3f} ({s['spread'][0]:.3f}-{s['spread'][2]:.3f}) | {s['rollout']:.3f} | "
              f"{s['scoring']:.3f} | {s['update']:.3f} | {s['samples_per_s']:.1f} | {s['cpu_total']:.3f} "
              f"({s['cpu_spread'][0]:.3f}-{s['cpu_spread'][2]:.3f}) | "
              f"{s['peak_rss_mb']:.0f} | {'/'.join(map(str, s['widths']))} | {s['real_tokens']:.1f} | "
              f"{s['load'][0]:.2f}-{s['load'][1]:.2f} |")
    print("CPU seconds per iteration by phase (median): " + "; ".join(
        f"{n} rollout {s['cpu_rollout']:.3f}, scoring {s['cpu_scoring']:.3f}, update {s['cpu_update']:.3f}"
        for n, s in results.items()))
    print("* RLOO: a different algorithm (no value model, 8 prompts x 4 samples, sequence-level loss), its own prompt "
          "order; same number of responses, tokens and optimizer steps per iteration; not the same work.")
    if args.eos == "block" and "trl_ppo" in results:
        print("\nratios, TRL PPO s/iteration / ours (per interleaved repeat; median, min-max):")
        for n in ("ours_reuse", "ours", "trl_rloo"):
            if n in results and (n != "trl_rloo" or "ours_reuse" in results):
                theirs, ours_n = ("trl_rloo", "ours_reuse") if n == "trl_rloo" else ("trl_ppo", n)
                rs = [t / o for t, o in zip(results[theirs]["per_rep"], results[ours_n]["per_rep"])]
                cpu = [per_run(t, "total", "cpu") / per_run(o, "total", "cpu") for t, o in zip(runs[theirs], runs[ours_n])]
                tag = {"ours_reuse": "like for like", "ours": "ours does one more forward pass",
                       "trl_rloo": "TRL RLOO / ours_reuse, not the same work"}[n]
                print(f"  {n} ({tag}): wall x{statistics.median(rs):.2f} (x{min(rs):.2f}-x{max(rs):.2f}); "
                      f"CPU time x{statistics.median(cpu):.2f} (x{min(cpu):.2f}-x{max(cpu):.2f})")
    elif args.eos == "allow":
        print("\nEOS allowed: the two sides train on different signals and generate different widths; no ratio printed.")
    print(f"\nwall time {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
