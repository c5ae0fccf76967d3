"""DPO throughput: our ``rlhf_edu.dpo.train_dpo`` against TRL's ``DPOTrainer``, on the same work.

Usage (from the repository root; needs the ``bench`` extra, TRL 1.16):

    python3 -m venv .venv-bench && .venv-bench/bin/pip install torch==2.13.0
    .venv-bench/bin/pip install -e ".[bench]"
    .venv-bench/bin/python benchmarks/dpo_vs_trl.py            # 5 repeats, 1 thread: about 8 min
    .venv-bench/bin/python benchmarks/dpo_vs_trl.py --quick    # about 1 min smoke run

The same work for both
----------------------
* Model: the tiny base model (``rlhf_edu/data/tiny``, ``rlhf_edu.models.load_base_model``), float32, CPU,
  ``--threads`` torch threads (1), dropout off, no gradient checkpointing, no autocast.
* Work per step, both sides: one forward + backward of the policy over one (2B, T) batch (B chosen
  and B rejected sequences right-padded to the step's longest, T <= max_len), plus, in the
  on-the-fly modes, one no-grad reference forward over the same batch; in the precompute modes one
  reference pass over every training sequence before step 1 instead (in "total", not in step time).
* Data: the first ``(warmup + steps) * batch_size`` pairs of
  ``preference_pairs(load_splits(0)["train"], seed=0)``, visited in the order of ``train_dpo``
  (one seeded permutation); TRL gets the dataset in that order with
  ``train_sampling_strategy="sequential"``, so both train on identical batches, step by step.
* Tokens: our :class:`rlhf_edu.data.PairCollator` scores ``prompt[-max_prompt_tokens:] +
  " " + response + EOS`` cut on the right to ``max_len`` tokens. TRL tokenises ``prompt`` and
  ``prompt + completion`` (adding the EOS text), takes the completion where the two diverge,
  and its collator cuts ``prompt + completion`` on the right to ``max_length``. So TRL gets the
  completion with its leading space (``" " + response``), ``max_length = max_len``, and a prompt
  longer than ``max_prompt_tokens`` is replaced by the decoded text of its last
  ``max_prompt_tokens`` tokens. No BOS is added by either. The check below verifies that every
  sequence scored is token-for-token the same.
* Loss: sigmoid DPO, ``beta`` the same; ours with ``alpha=0`` (plain DPO, the same loss as TRL's
  ``loss_type="sigmoid"``); summed response log-probs for both.
* Optimizer: ``torch.optim.AdamW`` (``optim="adamw_torch"`` for TRL, not its fused default),
  same lr, betas, eps, no weight decay, constant lr, no warm-up, gradient-norm clip 1.0.
* No evaluation, no checkpoints, no progress bars, TRL logging off (its per-step metrics, which
  it always computes, stay: that is part of its step).

Implementations compared
------------------------
* ``ours``: ``train_dpo`` as shipped: the reference log-probs of all training pairs are computed
  once, before the first step (one model in memory).
* ``ours-ref-model``: ``train_dpo(reference_model=frozen_copy(policy))``: the reference model
  scores every batch on the fly, as TRL does by default. Same losses; shows how much of the
  speed-up comes from precomputing.
* ``trl``: ``DPOTrainer(model, ref_model=deepcopy(model))`` with default settings otherwise:
  the reference model runs every step.
* ``trl-precompute``: ``DPOTrainer`` with ``precompute_ref_log_probs=True`` (its fairest setting
  against ``ours``); its precompute batch size is our ``eval_batch_size``.

The like-for-like pairs, the headline: ``ours-ref-model`` / ``trl`` (reference on the fly, both) and
``ours`` / ``trl-precompute`` (reference log-probs precomputed, both). ``ours`` / ``trl`` is printed
too but labelled as not like for like.

What is timed
-------------
Each repeat of each implementation runs in a fresh subprocess (a fresh model; its own peak RSS,
``resource.getrusage(RUSAGE_SELF).ru_maxrss``), and the repeats are interleaved (ours, ours-ref,
TRL, TRL-precompute, ours, ...). *Step time* is the wall time of one optimizer step: for ours
``train_dpo``'s per-step ``seconds`` (collate, forward, loss, backward, clip, AdamW, metrics); for
TRL the interval between consecutive ``on_step_end`` callbacks (data loading included).
``--warmup`` first steps are excluded; the figure is the median over all timed steps of all
repeats, with the spread of the repeats' own medians. Tokens/s = median non-pad tokens per step (chosen + rejected) / median step time.
*Total* is the wall time from handing over the in-memory model and text pairs to the end of
training: for ours the ``train_dpo`` call (reference precompute included), for TRL building the
trainer (tokenising the dataset, precomputing if asked) plus ``trainer.train()``. Importing
libraries and loading the model and pairs are not timed; RSS after them is shown as "setup RSS".

Checks (the script exits with status 1, before printing any ratio, if one fails)
-------------------------------------------------------------------------------
Before timing, one subprocess scores the first batch with ours (``pair_logprobs`` + ``dpo_loss``)
and with TRL in both of its modes: ``compute_loss`` of a ``DPOTrainer`` with a reference model, and of
one with ``precompute_ref_log_probs=True`` (whose batch carries the precomputed reference
log-probs), each on the batch its own dataloader collates. At step 0 the policy equals the
reference, so both losses would trivially be ln 2; the check therefore perturbs the policy with
seeded Gaussian noise (std ``1e-2``) and keeps the unperturbed model as the reference. Both TRL
losses must be within 1e-5 of ours, every one of the run's sequences must be token-identical, and
every (2B, T) batch of the run must be identical on both sides (same rows, same width T). After
the timed runs, before the table: the non-pad tokens of every step and TRL's (2B, T) shapes must
equal the checked ones, and the per-step training losses of every pair of implementations must
agree to 1e-5 over all steps (warm-up included).

Threads and load
----------------
``--threads`` (default 1) applies to every subprocess alike: ``torch.set_num_threads`` and
OMP/MKL/OPENBLAS_NUM_THREADS. One thread is the primary measurement: on a shared 2-core machine a
single-threaded process is not stalled by a busy neighbour core the way a 2-thread OpenMP team is.
Each run records ``os.getloadavg()`` at its start and end, and the repeats are interleaved so that
load falls on all implementations alike. The table gives the median and the spread (min-max of
the repeats' medians); each like-for-like ratio is computed per repeat (ours repeat i / TRL
repeat i) and given as median (min-max).

Where the time goes (torch.profiler / cProfile, tiny model)
-----------------------------------------------------------
The tiny model's LM head (256 x 8,192) costs about as much as its four transformer blocks. Ours
projects only the response positions through it (:func:`rlhf_edu.logprobs.masked_token_logprobs`,
about 70% of the positions here: no prompt or pad logits), and computes no reference forward
during training. TRL on the CPU runs its chunked fused log-prob kernel (no Triton) over every
position of the batch, pads included, and its backward re-projects the logits and also returns
entropy, mean logits and top-1 hits for its metrics: that kernel is most of a TRL step, and the
reference forward (``trl``) comes on top. Tokenisation (``PairCollator``, about 1% of our step)
and AdamW (about 10%) are minor; the rest is the transformer's forward and backward, equal in both.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

for _k, _v in dict(OMP_WAIT_POLICY="PASSIVE", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
                   TRANSFORMERS_OFFLINE="1", TQDM_DISABLE="1", TOKENIZERS_PARALLELISM="false").items():
    os.environ.setdefault(_k, _v)

IMPLS = ("ours", "ours-ref-model", "trl", "trl-precompute")
RESULT = "@@RESULT "
LOSS_TOL = 1e-5


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=30, help="timed optimizer steps per repeat")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    p.add_argument("--repeats", type=int, default=5, help="interleaved repeats per implementation")
    p.add_argument("--batch-size", type=int, default=8, help="preference pairs per step (tiny preset: 8)")
    p.add_argument("--max-len", type=int, default=32, help="tokens per sequence cap (tiny preset: 32)")
    p.add_argument("--max-prompt-tokens", type=int, default=16, help="prompt tokens kept (from the left)")
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--beta", type=float, default=0.1)
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads per process, ours and TRL alike (1: the primary measurement)")
    p.add_argument("--impls", default=",".join(IMPLS), help=f"comma-separated subset of {IMPLS}")
    p.add_argument("--quick", action="store_true", help="smoke run: 4 timed steps, 2 warm-up, 1 repeat")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.warmup, args.repeats = 4, 2, 1
    return args


# ---------------------------------------------------------------------------------------------
# Shared set-up (run inside each worker)
# ---------------------------------------------------------------------------------------------


def _rss_now_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # Linux: KiB


def _setup(args):
    """(model, tokenizer, pairs in training order, our DPOConfig) — nothing of TRL imported."""
    import torch

    from rlhf_edu.config import seed_everything
    from rlhf_edu.data import load_splits, preference_pairs
    from rlhf_edu.dpo import DPOConfig, _batches
    from rlhf_edu.models import load_policy

    seed_everything(0, threads=args.threads)
    total = args.warmup + args.steps
    cfg = DPOConfig.tiny(beta=args.beta, alpha=0.0, lr=args.lr, steps=total, batch_size=args.batch_size,
                         max_len=args.max_len, max_prompt_tokens=args.max_prompt_tokens, grad_clip=1.0,
                         seed=0)
    pairs = preference_pairs(load_splits(0)["train"], seed=0)
    n = total * args.batch_size
    if n > len(pairs):
        raise ValueError(f"steps: (warmup + steps) * batch_size = {n} exceeds the {len(pairs)} training pairs")
    pairs = pairs.select(range(n))
    # train_dpo visits the pairs in this order (one seeded permutation, as n = steps * batch_size)
    order = torch.cat(list(_batches(n, cfg.batch_size, total, cfg.seed))).tolist()
    model, tok = load_policy("tiny", device="cpu", dtype=torch.float32)
    return model, tok, pairs, order, cfg


def _trl_dataset(tok, pairs, order, max_prompt_tokens):
    """The pairs as TRL text data, in training order, tokenising to our PairCollator's tokens."""
    from datasets import Dataset

    def prompt(p):
        ids = tok(p, add_special_tokens=False)["input_ids"]
        return tok.decode(ids[-max_prompt_tokens:]) if len(ids) > max_prompt_tokens else p

    def resp(r):  # as rlhf_edu.data.tokenize_prompt_response; TRL adds the EOS text itself
        return r if r.startswith(" ") else " " + r.strip()

    rows = [pairs[i] for i in order]
    return Dataset.from_dict({"prompt": [prompt(r["prompt"]) for r in rows],
                              "chosen": [resp(r["chosen"]) for r in rows],
                              "rejected": [resp(r["rejected"]) for r in rows]})


def _trl_config(args, cfg, max_steps, precompute: bool):
    import tempfile

    from trl import DPOConfig as TRLDPOConfig

    return TRLDPOConfig(
        output_dir=tempfile.mkdtemp(prefix="dpo_vs_trl_"), per_device_train_batch_size=cfg.batch_size,
        max_steps=max_steps, learning_rate=cfg.lr, lr_scheduler_type="constant", warmup_steps=0,
        weight_decay=0.0, max_grad_norm=cfg.grad_clip, optim="adamw_torch", beta=cfg.beta,
        loss_type=["sigmoid"], max_length=cfg.max_len, gradient_checkpointing=False, bf16=False, fp16=False,
        use_cpu=True, logging_strategy="no", save_strategy="no", eval_strategy="no", report_to="none",
        disable_tqdm=True, seed=0, data_seed=0, train_sampling_strategy="sequential", dataloader_num_workers=0,
        precompute_ref_log_probs=precompute, precompute_ref_batch_size=cfg.eval_batch_size,
    )


def _trl_trainer_class():
    from transformers import TrainerCallback
    from trl import DPOTrainer

    class StepClock(TrainerCallback):
        def __init__(self):
            self.times = []

        def on_train_begin(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter())

    class RecordingDPOTrainer(DPOTrainer):
        """DPOTrainer that keeps each step's loss and non-pad token count (no other change)."""

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            out = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            self.bench_losses.append((out[0] if return_outputs else out).detach())
            self.bench_tokens.append(inputs["attention_mask"].sum())
            self.bench_shapes.append(list(inputs["input_ids"].shape))
            return out

    return RecordingDPOTrainer, StepClock


# ---------------------------------------------------------------------------------------------
# Workers
# ---------------------------------------------------------------------------------------------


def worker_train(args) -> dict:
    import copy

    impl = args.worker
    load_start = os.getloadavg()[0]
    model, tok, pairs, order, cfg = _setup(args)
    total = args.warmup + args.steps
    if impl.startswith("trl"):
        Trainer, StepClock = _trl_trainer_class()
        data = _trl_dataset(tok, pairs, order, cfg.max_prompt_tokens)
    setup_rss, setup_peak = _rss_now_mb(), _peak_rss_mb()
    if impl.startswith("ours"):
        from rlhf_edu.dpo import train_dpo
        from rlhf_edu.models import frozen_copy

        t0, c0 = time.perf_counter(), time.process_time()
        ref_model = frozen_copy(model) if impl == "ours-ref-model" else None
        hist = train_dpo(model, tok, pairs, None, cfg, reference_model=ref_model, progress=False)
        total_s, cpu_s = time.perf_counter() - t0, time.process_time() - c0
        step_s, tokens, losses, shapes = hist["seconds"], hist["tokens"], hist["loss"], None
    else:
        t0, c0 = time.perf_counter(), time.process_time()
        clock = StepClock()
        precompute = impl == "trl-precompute"
        trainer = Trainer(model=model, ref_model=None if precompute else copy.deepcopy(model),
                          args=_trl_config(args, cfg, total, precompute), train_dataset=data,
                          processing_class=tok, callbacks=[clock])
        trainer.bench_losses, trainer.bench_tokens, trainer.bench_shapes = [], [], []
        trainer.train()
        total_s, cpu_s = time.perf_counter() - t0, time.process_time() - c0
        step_s = [b - a for a, b in zip(clock.times, clock.times[1:])]
        tokens = [int(t) for t in trainer.bench_tokens]
        losses = [float(x) for x in trainer.bench_losses]
        shapes = trainer.bench_shapes
    if impl.startswith("trl"):
        import shutil

        shutil.rmtree(trainer.args.output_dir, ignore_errors=True)
    if len(step_s) != total:
        raise RuntimeError(f"{impl}: expected {total} steps, timed {len(step_s)}")
    import torch

    return dict(impl=impl, step_s=step_s[args.warmup:], tokens=tokens, losses=losses, shapes=shapes,
                total_s=total_s, cpu_s=cpu_s, setup_rss_mb=setup_rss, setup_peak_mb=setup_peak, peak_rss_mb=_peak_rss_mb(),
                load=[load_start, os.getloadavg()[0]], threads=torch.get_num_threads())


def worker_check(args) -> dict:
    """Step-0 loss of ours and of both TRL modes on the first batch, with a perturbed policy, and the
    token ids and shapes of every batch of the run on both sides (see the module docstring)."""
    import copy
    import shutil

    import torch

    from rlhf_edu.data import PairCollator
    from rlhf_edu.dpo import dpo_loss, pair_logprobs

    ref, tok, pairs, order, cfg = _setup(args)
    policy = copy.deepcopy(ref)
    g = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(1e-2 * torch.randn(p.shape, generator=g))
    ref_for_precompute = copy.deepcopy(ref)  # before TRL patches any forward
    collate = PairCollator(tok, cfg.max_len, cfg.max_prompt_tokens)
    B = cfg.batch_size
    ours_steps, ours_tokens = [], []  # per step: the (2B, T) batch pair_logprobs runs (as in train_dpo)
    for k in range(0, len(order), B):
        c = collate([pairs[i] for i in order[k:k + B]])
        ours_tokens.append(int(c["chosen"]["attention_mask"].sum() + c["rejected"]["attention_mask"].sum()))
        T = max(c["chosen"]["input_ids"].shape[1], c["rejected"]["input_ids"].shape[1])
        ours_steps.append(torch.cat([torch.nn.functional.pad(c[s]["input_ids"] * c[s]["attention_mask"],
                                                             (0, T - c[s]["input_ids"].shape[1]))
                                     for s in ("chosen", "rejected")]))
    ours_batch = collate([pairs[i] for i in order[:B]])
    with torch.no_grad():
        lp, rlp = pair_logprobs(policy, ours_batch), pair_logprobs(ref, ours_batch)
        ours_loss = dpo_loss(lp.chosen, lp.rejected, rlp.chosen, rlp.rejected, cfg.beta).losses.mean().item()

    Trainer, _ = _trl_trainer_class()
    data = _trl_dataset(tok, pairs, order, cfg.max_prompt_tokens)
    total = args.warmup + args.steps
    out = dict(impl="check", ours_loss=ours_loss, n_sequences=2 * len(order), n_steps=len(ours_steps),
               ours_shapes=[list(x.shape) for x in ours_steps], ours_tokens=ours_tokens)
    for mode in ("trl", "trl-precompute"):
        pre = mode == "trl-precompute"
        # precompute mode: TRL's reference pass runs over the unperturbed model it is given; the perturbed
        # policy is then handed to compute_loss
        trainer = Trainer(model=ref_for_precompute if pre else policy, ref_model=None if pre else ref,
                          args=_trl_config(args, cfg, total, pre), train_dataset=data, processing_class=tok)
        trainer.bench_losses, trainer.bench_tokens, trainer.bench_shapes = [], [], []
        mismatched = 0
        for k, i in enumerate(order):
            theirs, ours = trainer.train_dataset[k], collate([pairs[i]])
            for side in ("chosen", "rejected"):
                ids = ours[side]["input_ids"][0][ours[side]["attention_mask"][0].bool()].tolist()
                mismatched += ids != (theirs["prompt_ids"] + theirs[f"{side}_ids"])[: cfg.max_len]
        steps = list(trainer.get_train_dataloader())
        same_steps = len(steps) == len(ours_steps) and all(
            x["input_ids"].shape == y.shape and torch.equal(x["input_ids"] * x["attention_mask"], y)
            for x, y in zip(steps, ours_steps))
        policy.train()
        with torch.no_grad():
            trl_loss = trainer.compute_loss(policy, steps[0]).item()
        out[mode] = dict(loss=trl_loss, mismatched_sequences=mismatched, same_batches=bool(same_steps),
                         shapes=[list(x["input_ids"].shape) for x in steps],
                         precomputed_ref="ref_chosen_logps" in steps[0])
        shutil.rmtree(trainer.args.output_dir, ignore_errors=True)
    return out


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------


def run_worker(name: str, argv: list[str], threads: int) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), *argv, "--worker", name]
    env = dict(os.environ, **thread_env(threads))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT):
            return json.loads(line[len(RESULT):])
    sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
    raise RuntimeError(f"worker {name} failed with status {proc.returncode}")


def thread_env(threads: int) -> dict:
    """The same thread settings for every subprocess, ours and TRL's alike."""
    n = str(threads)
    return dict(OMP_NUM_THREADS=n, MKL_NUM_THREADS=n, OPENBLAS_NUM_THREADS=n, OMP_WAIT_POLICY="PASSIVE")


def spread(xs) -> tuple[float, float, float]:
    return min(xs), statistics.median(xs), max(xs)


def summarise(runs: list[dict], warmup: int) -> dict:
    step_s = [s for r in runs for s in r["step_s"]]
    tokens = [t for r in runs for t in r["tokens"][warmup:]]
    sec = statistics.median(step_s)
    steps = len(runs[0]["losses"])
    per_rep = [1 / statistics.median(r["step_s"]) for r in runs]  # steps/s of each repeat
    return dict(steps_per_s=1 / sec, steps_per_s_spread=spread(per_rep), per_rep=per_rep,
                tokens_per_s=statistics.median(tokens) / sec,
                total_s=statistics.median(r["total_s"] for r in runs),
                e2e_steps_per_s=steps / statistics.median(r["total_s"] for r in runs),
                e2e_per_rep=[steps / r["total_s"] for r in runs],
                cpu_per_rep=[steps / r["cpu_s"] for r in runs],  # steps per CPU second, set-up included
                setup_rss_mb=statistics.median(r["setup_rss_mb"] for r in runs),
                setup_peak_mb=statistics.median(r["setup_peak_mb"] for r in runs),
                peak_rss_mb=statistics.median(r["peak_rss_mb"] for r in runs), losses=runs[0]["losses"])


LIKE_FOR_LIKE = (("ours-ref-model", "trl", "reference model on the fly, both"),
                 ("ours", "trl-precompute", "reference log-probs precomputed, both"))


def fail(msg: str) -> int:
    print(f"FAILED (no ratio printed): {msg}", file=sys.stderr, flush=True)
    return 1


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.worker is not None:
        os.environ.update(thread_env(args.threads))
        result = worker_check(args) if args.worker == "check" else worker_train(args)
        print(RESULT + json.dumps(result))
        return 0
    impls = [i.strip() for i in args.impls.split(",") if i.strip()]
    if not set(impls) <= set(IMPLS):
        raise SystemExit(f"--impls: expected a subset of {IMPLS}, got {impls}")
    import accelerate
    import datasets
    import trl

    import torch
    import transformers

    worker_argv = [a for a in argv if a != "--quick"] + (
        ["--steps", str(args.steps), "--warmup", str(args.warmup), "--repeats", str(args.repeats)]
        if args.quick else [])
    total = args.warmup + args.steps
    B = args.batch_size
    print(f"versions: python {sys.version.split()[0]}, torch {torch.__version__}, transformers "
          f"{transformers.__version__}, trl {trl.__version__}, accelerate {accelerate.__version__}, "
          f"datasets {datasets.__version__}; Triton available to TRL: "
          f"{__import__('transformers.utils', fromlist=['x']).is_triton_available()}")
    print(f"settings: {args.threads} torch thread(s) per process (torch.set_num_threads and OMP/MKL/OPENBLAS_NUM_THREADS"
          f" in every subprocess), float32 CPU, dropout off, gradient checkpointing off (TRL "
          f"gradient_checkpointing=False), AdamW (TRL optim=adamw_torch) lr {args.lr}, no weight decay, constant lr, "
          f"grad clip 1.0, sigmoid DPO beta {args.beta}, no NLL term; {args.warmup} warm-up + {args.steps} timed steps x "
          f"{args.repeats} interleaved repeats, each run in a fresh process; load average {os.getloadavg()[0]:.2f}",
          flush=True)

    check = run_worker("check", worker_argv, args.threads)
    widths = [s[1] for s in check["ours_shapes"]]
    print(f"work per step, both sides: tiny GPT-2 policy (rlhf_edu/data/tiny), one forward + backward over "
          f"{2 * B} sequences ({B} chosen + {B} rejected, one (2B, T) batch), T = longest sequence of the step "
          f"(T over the {check['n_steps']} steps: min {min(widths)}, median {statistics.median(widths):g}, max "
          f"{max(widths)}; non-pad tokens per step: median {statistics.median(check['ours_tokens']):g}); "
          f"reference: one no-grad forward over the same (2B, T) batch every step (on-the-fly modes) or one pass "
          f"over all {check['n_sequences']} sequences before step 1 (precompute modes)")
    ok = True
    for mode in ("trl", "trl-precompute"):
        c = check[mode]
        diff = abs(check["ours_loss"] - c["loss"])
        print(f"check {mode:>14}: tokens {check['n_sequences'] - c['mismatched_sequences']}/{check['n_sequences']} "
              f"sequences identical; all {check['n_steps']} (2B, T) batches identical to ours: {c['same_batches']}; "
              f"reference log-probs read from the precomputed columns: {c['precomputed_ref']}; step-0 loss (perturbed "
              f"policy vs reference) ours {check['ours_loss']:.8f}, TRL {c['loss']:.8f}, |diff| {diff:.2e} "
              f"(tolerance {LOSS_TOL:g})", flush=True)
        ok &= diff <= LOSS_TOL and c["mismatched_sequences"] == 0 and c["same_batches"] and (
            c["precomputed_ref"] == (mode == "trl-precompute"))
    if not ok:
        return fail("the step-0 losses, the token sequences or the batches of ours and TRL disagree")

    runs: dict[str, list[dict]] = {i: [] for i in impls}
    for rep in range(args.repeats):
        for impl in impls:
            r = run_worker(impl, worker_argv, args.threads)
            runs[impl].append(r)
            print(f"  repeat {rep + 1}/{args.repeats} {impl:>15}: median step "
                  f"{statistics.median(r['step_s']) * 1e3:7.1f} ms, total {r['total_s']:6.2f} s ({r['cpu_s']:6.2f} CPU s), "
                  f"peak RSS {r['peak_rss_mb']:6.0f} MB, {r['threads']} thread(s), load average "
                  f"{r['load'][0]:.2f} -> {r['load'][1]:.2f}", flush=True)

    # enforce the same work and the same losses before any ratio
    for impl, rs in runs.items():
        for r in rs:
            if len(r["tokens"]) != total or r["tokens"] != check["ours_tokens"]:
                return fail(f"{impl}: non-pad tokens per step differ from the check's batches")
            if r["shapes"] is not None and r["shapes"] != check["ours_shapes"]:
                return fail(f"{impl}: (2B, T) batch shapes differ from ours")
    res = {i: summarise(runs[i], args.warmup) for i in impls}
    names = list(res)
    worst = 0.0
    for o in names:
        for t in names[names.index(o) + 1:]:
            d = max(abs(x - y) for x, y in zip(res[o]["losses"], res[t]["losses"]))
            worst = max(worst, d)
            print(f"training losses, max |{o} - {t}| over {len(res[o]['losses'])} steps: {d:.2e}")
    if worst > LOSS_TOL:
        return fail(f"per-step training losses differ by {worst:.2e} > {LOSS_TOL:g}")
    print(f"per-step training losses of all implementations agree within {LOSS_TOL:g} over all {total} steps; "
          f"non-pad tokens and (2B, T) shapes identical at every step", flush=True)

    print(f"\n{'implementation':>15} | {'steps/s (min-max over repeats)':>30} | {'tokens/s':>8} | {'total s':>7} | "
          f"{'e2e steps/s':>11} | {'setup RSS (peak) MB':>19} | {'peak RSS MB':>11}")
    print("-" * 124)
    for i, r in res.items():
        lo, _, hi = r["steps_per_s_spread"]
        print(f"{i:>15} | {r['steps_per_s']:7.2f} ({lo:5.2f}-{hi:5.2f}){'':>10} | {r['tokens_per_s']:8.0f} | "
              f"{r['total_s']:7.2f} | {r['e2e_steps_per_s']:11.2f} | {r['setup_rss_mb']:10.0f} ({r['setup_peak_mb']:5.0f}) | "
              f"{r['peak_rss_mb']:11.0f}")
    print("(steps/s: median over all timed steps of all repeats; min-max: the repeats' own medians. total: train_dpo "
          "call, or building the DPOTrainer + train(); e2e = all steps / total)")
    print("\nlike-for-like ratios ours / TRL (per repeat i: ours repeat i / TRL repeat i, interleaved; min / median / max):")
    for o, t, what in LIKE_FOR_LIKE:
        if o in res and t in res:
            rs = [a / b for a, b in zip(res[o]["per_rep"], res[t]["per_rep"])]
            e2e = [a / b for a, b in zip(res[o]["e2e_per_rep"], res[t]["e2e_per_rep"])]
            cpu = [a / b for a, b in zip(res[o]["cpu_per_rep"], res[t]["cpu_per_rep"])]
            print(f"  {o} / {t} ({what}): steps/s x{spread(rs)[1]:.2f} (min x{min(rs):.2f}, max x{max(rs):.2f}); "
                  f"end-to-end x{spread(e2e)[1]:.2f} (x{min(e2e):.2f}-x{max(e2e):.2f}); end-to-end by CPU time "
                  f"x{spread(cpu)[1]:.2f} (x{min(cpu):.2f}-x{max(cpu):.2f}); peak RSS "
                  f"x{res[o]['peak_rss_mb'] / res[t]['peak_rss_mb']:.2f}")
    if "ours" in res and "trl" in res:
        rs = [a / b for a, b in zip(res["ours"]["per_rep"], res["trl"]["per_rep"])]
        print(f"  not like for like: ours (precomputed) / trl (on the fly): x{statistics.median(rs):.2f}")
    print("why (CPU-specific): without Triton, TRL 1.16's fused LM head (trl.trainer.utils.add_fused_lm_head, "
          "compact = _use_triton(device)) projects every position of the (2B, T) batch through the LM head, prompt and "
          "pad included, forward and again in its backward, and its DPOTrainer always asks for entropy, mean logits and "
          "top-1 hits; ours projects only the response positions. On a Triton GPU TRL scores only the response "
          "positions too, so these ratios do not carry over to GPUs.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
