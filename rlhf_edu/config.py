"""Scale presets, device and dtype selection, and seeding.

One knob picks the size of every experiment: the environment variable ``RLHF_EDU_SCALE``
(``tiny``, ``gpt2`` or ``auto``; default ``auto``). Notebooks call :func:`get_scale` and read
sizes from the returned :class:`Scale`; they never hard-code them.

``RLHF_EDU_SMOKE=1`` turns any scale into a plumbing test: every count read through
:meth:`Scale.n` (training iterations and steps in the configs' ``from_scale``, seeds in the
notebooks) is cut to at most 3, so that the notebooks' code paths at the ``gpt2`` scale can be run
on a CPU with a tiny random GPT-2 (``tests/test_gpt2_plumbing.py``). Its numbers mean nothing.
"""

from __future__ import annotations

import contextlib
import os
import random
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from .resources import cache_dir, tiny_model_dir

SCALES = ("tiny", "gpt2", "auto")
DTYPES = ("float32", "bfloat16", "float16")


@dataclass(frozen=True)
class Scale:
    """Sizes shared by every notebook at one scale."""

    name: str
    """``"tiny"`` or ``"gpt2"``."""
    model_source: str
    """Directory or hub id the base model and tokenizer load from."""
    base_source: str = ""
    """gpt2: the raw GPT-2 that ``rlhf-edu sft`` fine-tuned into ``model_source``."""
    reason: str = ""
    """One line saying why this scale was picked (filled in by ``auto``)."""
    max_prompt_tokens: int = 16
    """Prompts are truncated (from the left) to this many tokens."""
    max_response_tokens: int = 24
    """Tokens sampled per response in RL notebooks."""
    max_pair_tokens: int = 64
    """Prompt+response length cap for reward-model and DPO batches."""
    rl_batch_size: int = 32
    """Prompts per RL iteration."""
    pref_batch_size: int = 16
    """Preference pairs per reward-model / DPO step."""
    pref_steps: int = 120
    """Optimizer steps for reward-model / DPO training."""
    eval_pairs: int = 256
    """Held-out preference pairs used in evaluations."""
    dtype: str = "float32"
    """Training dtype: ``float32`` on CPU, ``bfloat16`` on GPUs that support it."""
    extra: dict = field(default_factory=dict)
    """Notebook-specific overrides."""
    smoke: bool = False
    """A plumbing test (``RLHF_EDU_SMOKE=1``): :meth:`n` cuts every count to at most 3."""

    def __post_init__(self):
        if self.name not in ("tiny", "gpt2"):
            raise ValueError(f"name: expected 'tiny' or 'gpt2', got {self.name!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype: expected one of {DTYPES}, got {self.dtype!r}")

    def n(self, count: int) -> int:
        """``count`` (iterations, steps, seeds); at most 3 in a plumbing test."""
        return min(count, 3) if self.smoke else count

    def with_(self, **kwargs) -> "Scale":
        """A copy with some fields replaced."""
        return replace(self, **kwargs)


def tiny() -> Scale:
    """The CPU preset: the shipped 4-layer, width-256 GPT-2 with an 8k BPE vocabulary
    (or ``$RLHF_EDU_TINY_DIR``, e.g. a model rebuilt by ``rlhf-edu pretrain``)."""
    return Scale(name="tiny", model_source=str(tiny_model_dir()))


def gpt2_source() -> str:
    """Raw GPT-2 small: ``$RLHF_EDU_GPT2_PATH`` (a local directory), else the hub id."""
    return os.environ.get("RLHF_EDU_GPT2_PATH") or "openai-community/gpt2"


def sft_dir() -> Path:
    """Where ``rlhf-edu sft`` writes GPT-2 fine-tuned on the course text: ``$RLHF_EDU_GPT2_SFT_DIR``,
    else ``<user cache>/gpt2-sft``."""
    return Path(os.environ.get("RLHF_EDU_GPT2_SFT_DIR") or cache_dir() / "gpt2-sft").expanduser()


def gpt2(source: str | None = None) -> Scale:
    """The one-GPU preset: GPT-2 small after SFT on the course text (``rlhf-edu sft --scale gpt2``),
    or the checkpoint in ``source``."""
    return Scale(
        name="gpt2",
        model_source=str(source or sft_dir()),
        base_source=gpt2_source(),
        max_prompt_tokens=16,
        max_response_tokens=32,
        max_pair_tokens=96,
        rl_batch_size=64,
        pref_batch_size=32,
        pref_steps=400,
        eval_pairs=512,
        dtype="bfloat16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "float32",
    )


def gpt2_weights_available(source: str | None = None) -> tuple[bool, str]:
    """Whether GPT-2 small can be had without error, and where from (or why not)."""
    from huggingface_hub import HfApi, try_to_load_from_cache

    src = source or os.environ.get("RLHF_EDU_GPT2_PATH")
    if src:
        found = (Path(src) / "config.json").exists()
        return found, f"local directory {src}" if found else f"RLHF_EDU_GPT2_PATH={src} has no config.json"
    if isinstance(try_to_load_from_cache("openai-community/gpt2", "config.json"), str):
        return True, "Hugging Face cache"
    try:  # offline (HF_HUB_OFFLINE=1) raises too
        HfApi().model_info("openai-community/gpt2", timeout=5)
        return True, "Hugging Face hub"
    except Exception:
        return False, "the Hugging Face hub is unreachable and GPT-2 is not cached"


def get_scale(name: str | None = None, verbose: bool = True) -> Scale:
    """Resolve the scale from ``name`` or ``RLHF_EDU_SCALE`` (default ``auto``).

    ``auto`` picks ``gpt2`` when CUDA is available and GPT-2's weights can be had, and ``tiny``
    otherwise, printing one line that says why.
    """
    name = str(name or os.environ.get("RLHF_EDU_SCALE") or "auto").strip().lower()
    if name not in SCALES:
        raise ValueError(f"scale: expected a scale name, one of {SCALES}, got {name!r} (set RLHF_EDU_SCALE)")
    if name != "auto":
        scale = (tiny if name == "tiny" else gpt2)().with_(reason=f"requested {name}")
    elif not torch.cuda.is_available():
        scale = tiny().with_(reason="auto: no CUDA device, using the tiny CPU model")
    elif (sft_dir() / "config.json").exists():
        scale = gpt2().with_(reason=f"auto: CUDA available and GPT-2 after SFT found in {sft_dir()}")
    else:
        found, where = gpt2_weights_available()
        scale = tiny().with_(reason=f"auto: CUDA available and GPT-2 found ({where}), but not fine-tuned yet: run "
                                    "`rlhf-edu sft --scale gpt2` once to use it; using tiny" if found
                             else f"auto: CUDA available but {where}; using tiny")
    if os.environ.get("RLHF_EDU_SMOKE") == "1":
        scale = scale.with_(smoke=True, reason=f"{scale.reason}; RLHF_EDU_SMOKE=1: a plumbing test, counts cut to 3")
    if verbose:
        print(f"[rlhf_edu] scale={scale.name} ({scale.reason})")
    return scale


def pick_device(prefer: str | None = None) -> torch.device:
    """``cuda`` when available (or ``prefer``), otherwise ``cpu``."""
    return torch.device(prefer or ("cuda" if torch.cuda.is_available() else "cpu"))


def pick_dtype(device: torch.device | str, scale: Scale | None = None) -> torch.dtype:
    """float32 on CPU; bfloat16 on a GPU that supports it (when the scale asks for it)."""
    bf16 = torch.device(device).type == "cuda" and torch.cuda.is_bf16_supported()
    return torch.bfloat16 if bf16 and (scale is None or scale.dtype == "bfloat16") else torch.float32


@contextlib.contextmanager
def one_thread():
    """Run torch on one thread: for tiny tensors, extra threads only spin (and on a busy machine
    make every operation tens of times slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def autocast(device, dtype: str | None) -> torch.autocast:
    """Autocast to ``dtype`` (``"bfloat16"`` or ``"float16"``) on CUDA; a disabled one on CPU or for
    None / ``"float32"`` (the weights keep their dtype either way)."""
    device = torch.device(device)
    on = device.type == "cuda" and dtype in ("bfloat16", "float16")
    return torch.autocast(device.type, dtype=getattr(torch, dtype) if on else None, enabled=on)


def seed_everything(seed: int = 0, threads: int | None = None) -> torch.Generator:
    """Seed python, numpy and torch; return a torch CPU generator seeded with ``seed``.

    ``threads`` sets ``torch.set_num_threads`` (the course machines have 2 cores).
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed: expected a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if threads is not None:
        torch.set_num_threads(threads)
    g = torch.Generator()
    g.manual_seed(seed)
    return g
