"""Supervised fine-tuning of GPT-2 small on the course's text: ``rlhf-edu sft --scale gpt2``.

InstructGPT's pipeline is pretrain -> SFT -> reward model -> RL. At the tiny scale the base
model is pretrained on the course's text itself; at the GPT-2 scale, raw GPT-2 has never seen
the ``"<movie>: <review>"`` format, so RL from it would spend its budget on the format. This
module fine-tunes GPT-2 once on the same documents the tiny model is pretrained on (critic
snippets of the training split plus the teacher reviews, :func:`sft_documents`), and saves the
result in the user cache (:func:`sft_dir`). The ``gpt2`` scale of every notebook loads it.

Raw GPT-2 comes from ``RLHF_EDU_GPT2_PATH`` (a local directory) or the Hugging Face hub; the
CPU test fine-tunes a tiny random GPT-2 from a directory for a few steps.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .checkpoint import save_pretrained_atomic
from .config import gpt2_source, pick_device, seed_everything, sft_dir
from .data import lm_documents, load_splits, pack_blocks
from .pretrain import cosine_lr, perplexity, teacher_documents


@dataclass
class SFTConfig:
    """Settings of the GPT-2 supervised fine-tuning."""

    source: str = field(default_factory=gpt2_source)
    """Raw GPT-2: a local directory or a hub id (default ``$RLHF_EDU_GPT2_PATH``, else the hub)."""
    steps: int = 500
    """Optimizer steps (about 2 passes over the documents at the default batch)."""
    batch_size: int = 16
    block_size: int = 128
    lr: float = 5e-5
    warmup: int = 30
    seed: int = 0
    out_dir: str = field(default_factory=lambda: str(sft_dir()))
    device: str | None = None
    """``None``: CUDA if available, else the CPU."""

    def __post_init__(self):
        for name in ("steps", "batch_size", "block_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {getattr(self, name)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr: expected a finite value > 0, got {self.lr}")


def sft_documents(split: str = "train") -> list[str]:
    """Critic snippets of ``split`` (formatted ``"<movie>: <text>"``), plus the teacher reviews for ``train``."""
    docs = lm_documents(load_splits(0)[split])
    return docs + teacher_documents() if split == "train" else docs


def sft(cfg: SFTConfig | None = None, progress: bool = True) -> dict:
    """Fine-tune raw GPT-2 on :func:`sft_documents`, save it to ``cfg.out_dir``; returns metrics."""
    from tqdm.auto import tqdm
    from transformers import AutoTokenizer, GPT2LMHeadModel

    cfg = cfg or SFTConfig()
    g = seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    try:
        tok = AutoTokenizer.from_pretrained(cfg.source)
        model = GPT2LMHeadModel.from_pretrained(cfg.source, dtype=torch.float32).to(device)
    except OSError as err:
        raise FileNotFoundError(
            f"source: could not load raw GPT-2 from {cfg.source!r} ({err}). Connect to the internet once, "
            "or set RLHF_EDU_GPT2_PATH to a local copy (GPT2LMHeadModel.from_pretrained('gpt2')"
            ".save_pretrained(DIR) plus its tokenizer).") from err
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    block = min(cfg.block_size, model.config.n_positions)
    train = pack_blocks(tok, sft_documents("train"), block)
    val = pack_blocks(tok, sft_documents("validation"), block)[:256]
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    val_before = perplexity(model, val.to(device))
    history = {"step": [], "loss": []}
    order = torch.randperm(len(train), generator=g)
    t0 = time.perf_counter()
    model.train()
    for step in tqdm(range(cfg.steps), desc="sft", disable=not progress, mininterval=5):
        idx = order[(step * cfg.batch_size + torch.arange(cfg.batch_size)) % len(order)]
        x = train[idx].to(device)  # (B, T)
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, cfg.lr, cfg.warmup, cfg.steps)
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        history["step"].append(step)
        history["loss"].append(loss.item())
    metrics = {"source": cfg.source, "train_seconds": round(time.perf_counter() - t0, 1),
               "train_tokens": int(train.numel()), "val_ppl_before": round(val_before, 2),
               "val_ppl_after": round(perplexity(model, val.to(device)), 2), "config": asdict(cfg),
               "history": history}
    model.config.pad_token_id = model.config.eos_token_id
    out = Path(cfg.out_dir)
    save_pretrained_atomic(out, model.cpu(), tok)
    (out / "sft_info.json").write_text(json.dumps({k: v for k, v in metrics.items() if k != "history"}, indent=1))
    return metrics


def sft_done(path: str | os.PathLike | None = None) -> bool:
    """Whether a fine-tuned checkpoint is in ``path`` (default :func:`sft_dir`)."""
    return (Path(path or sft_dir()) / "sft_info.json").is_file()
