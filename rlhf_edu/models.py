"""Tokenizer, policy, frozen reference, reward and value models at a scale.

All models are ``transformers.GPT2LMHeadModel`` (policy, reference) or a GPT-2 backbone with a
scalar head (reward, value). Dropout is switched off everywhere: RLHF compares log-probs of the
same tokens under several models, and dropout noise would bias those comparisons.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from .config import Scale, get_scale, pick_device, pick_dtype, sft_dir

NO_DROPOUT = dict(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)


def _resolve(scale: Scale | str | None) -> Scale:
    if isinstance(scale, Scale):
        return scale
    return get_scale(scale, verbose=False)


def _from_pretrained(load, scale: Scale, **kw):
    """``load(scale.model_source, **kw)``; a missing local checkpoint or a failed GPT-2 download
    says how to fix it (a hub id is left to transformers)."""
    local = Path(scale.model_source)
    if not (local / "config.json").exists() and (
            scale.name == "tiny" or local == sft_dir() or local.is_absolute() or local.exists()):
        if scale.name == "tiny":
            how = "Rebuild the tiny base model with `rlhf-edu pretrain` (about 10 minutes on 2 CPU cores)."
        elif local == sft_dir():
            how = ("The gpt2 scale starts from GPT-2 fine-tuned on the course text: run `rlhf-edu sft --scale gpt2` "
                   "once (a few minutes on a GPU); it reads raw GPT-2 from RLHF_EDU_GPT2_PATH or the hub.")
        else:
            how = ("Save GPT-2 there with `GPT2LMHeadModel.from_pretrained('gpt2').save_pretrained(DIR)` on a "
                   "machine with internet, or unset RLHF_EDU_GPT2_PATH.")
        raise FileNotFoundError(f"{local} holds no checkpoint (no config.json). {how}")
    try:
        return load(scale.model_source, **kw)
    except Exception as err:  # hub or disk failure
        if scale.name == "tiny":
            raise
        raise RuntimeError(
            f"Could not load GPT-2 small from {scale.model_source!r} ({type(err).__name__}: {err}).\n"
            "Fix: connect to the internet once so the Hugging Face hub can be reached, or download "
            "GPT-2 elsewhere, copy the directory here and set RLHF_EDU_GPT2_PATH=/path/to/gpt2, "
            "or run at the CPU scale with RLHF_EDU_SCALE=tiny.") from err


def load_tokenizer(scale: Scale | str | None = None):
    """The tokenizer at ``scale`` (pad token = EOS, right padding)."""
    from transformers import AutoTokenizer

    scale = _resolve(scale)
    tok = _from_pretrained(AutoTokenizer.from_pretrained, scale)
    if len(tok) < 256:  # guard against the silently-empty tokenizer pitfall
        raise RuntimeError(f"tokenizer from {scale.model_source} has only {len(tok)} tokens")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "right"
    return tok


def load_base_model(scale: Scale | str | None = None, device: str | torch.device | None = None,
                    dtype: torch.dtype | None = None):
    """The pretrained ``GPT2LMHeadModel`` at ``scale``, dropout off, in train mode."""
    from transformers import GPT2LMHeadModel

    scale = _resolve(scale)
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(f"dtype: expected a floating torch.dtype such as torch.float32, got {dtype!r}")
    device = pick_device(device)
    model = _from_pretrained(GPT2LMHeadModel.from_pretrained, scale, dtype=dtype or pick_dtype(device, scale),
                             **NO_DROPOUT)
    model.config.pad_token_id = model.config.eos_token_id
    return model.to(device).train()


def load_policy(scale: Scale | str | None = None, device=None, dtype=None):
    """``(model, tokenizer)`` at ``scale``: the starting point of every notebook."""
    scale = _resolve(scale)
    return load_base_model(scale, device, dtype), load_tokenizer(scale)


def frozen_copy(model: nn.Module) -> nn.Module:
    """A deep copy in eval mode with every parameter's ``requires_grad`` off (the reference)."""
    ref = copy.deepcopy(model)
    ref.eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions 0, 1, ... counted over real tokens, so left padding does not shift them.

    attention_mask: (B, T) of 0/1. Returns (B, T) long.
    """
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)  # (B, T)


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last 1 in each row of ``mask`` (B, T), right or left padding (an all-zero row
    gives T - 1). Returns (B,)."""
    return mask.shape[1] - 1 - mask.long().flip(-1).argmax(-1)  # (B,)


class ScalarHeadModel(nn.Module):
    """A GPT-2 backbone plus a linear head giving one scalar per token.

    ``forward`` returns per-token scalars (B, T) (a value model); :meth:`score` returns the scalar
    at the last non-pad token (B,) (a reward model).
    """

    def __init__(self, backbone: nn.Module, hidden_size: int):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(hidden_size, 1)
        nn.init.normal_(self.head.weight, std=1.0 / (hidden_size + 1) ** 0.5)
        nn.init.zeros_(self.head.bias)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """input_ids, attention_mask: (B, T). Returns per-token scalars (B, T), float32."""
        h = self.backbone(input_ids=input_ids, attention_mask=attention_mask,
                          position_ids=position_ids_from_mask(attention_mask)).last_hidden_state  # (B, T, H)
        return self.head(h.to(self.head.weight.dtype)).squeeze(-1).float()  # (B, T)

    def score(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The scalar at each row's last non-pad token (right or left padding). Returns (B,)."""
        values = self(input_ids, attention_mask)  # (B, T)
        idx = last_token_index(attention_mask)  # (B,)
        return values.gather(1, idx[:, None]).squeeze(1)  # (B,)


def scalar_head_from_lm(lm: nn.Module) -> ScalarHeadModel:
    """A :class:`ScalarHeadModel` whose backbone is a deep copy of ``lm``'s transformer."""
    backbone = copy.deepcopy(lm.transformer)
    model = ScalarHeadModel(backbone, lm.config.n_embd)
    p = next(backbone.parameters())
    return model.to(device=p.device, dtype=p.dtype)


def load_reward_model(scale: Scale | str | None = None, device=None, dtype=None) -> ScalarHeadModel:
    """An untrained reward model (pretrained backbone, fresh scalar head) at ``scale``."""
    return scalar_head_from_lm(load_base_model(scale, device, dtype))


load_value_model = load_reward_model  # a value model is built the same way (a scalar per token via forward)


def n_parameters(model: nn.Module) -> int:
    """Number of distinct parameters (tied weights counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
