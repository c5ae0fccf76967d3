"""Shared fixtures: the shipped tiny model, loaded once per session, on 2 threads."""

import os

import pytest
import torch

os.environ.setdefault("RLHF_EDU_SCALE", "tiny")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_scale():
    from rlhf_edu.config import get_scale

    return get_scale("tiny", verbose=False)


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_scale):
    from rlhf_edu.models import load_tokenizer

    return load_tokenizer(tiny_scale)


@pytest.fixture()
def tiny_model(tiny_scale):
    """A fresh copy per test (tests may train it)."""
    from rlhf_edu.models import load_base_model

    return load_base_model(tiny_scale, device="cpu")


@pytest.fixture(scope="session")
def random_lm():
    """A randomly initialised, very small GPT-2 (vocab 11) for exact and statistical tests."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=11, n_positions=32, n_embd=16, n_layer=2, n_head=2,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, eos_token_id=0, bos_token_id=0,
                     pad_token_id=0)
    return GPT2LMHeadModel(cfg).eval()
