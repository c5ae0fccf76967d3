import random

import numpy as np
import pytest
import torch

from rlhf_edu.config import Scale, get_scale, gpt2, pick_dtype, seed_everything, tiny


def test_unknown_scale_is_rejected(monkeypatch):
    with pytest.raises(ValueError, match="scale"):
        get_scale("huge")
    monkeypatch.setenv("RLHF_EDU_SCALE", "medium")
    with pytest.raises(ValueError, match="RLHF_EDU_SCALE"):
        get_scale()


def test_env_var_picks_the_scale(monkeypatch, capsys):
    monkeypatch.setenv("RLHF_EDU_SCALE", "tiny")
    s = get_scale()
    assert s.name == "tiny" and s.model_source == tiny().model_source
    assert "scale=tiny" in capsys.readouterr().out  # one explanatory line


@pytest.mark.skipif(torch.cuda.is_available(), reason="auto picks gpt2 only where CUDA exists")
def test_auto_without_cuda_is_tiny_and_says_why(monkeypatch, capsys):
    monkeypatch.setenv("RLHF_EDU_SCALE", "auto")
    s = get_scale()
    assert s.name == "tiny" and "no CUDA" in s.reason
    assert "no CUDA" in capsys.readouterr().out


def test_gpt2_preset_starts_from_the_sft_checkpoint(monkeypatch, tmp_path):
    monkeypatch.setenv("RLHF_EDU_GPT2_PATH", str(tmp_path))
    monkeypatch.setenv("RLHF_EDU_GPT2_SFT_DIR", str(tmp_path / "sft"))
    assert gpt2().base_source == str(tmp_path) and gpt2().model_source == str(tmp_path / "sft")
    assert isinstance(gpt2(), Scale) and gpt2().max_pair_tokens >= tiny().max_pair_tokens


def test_cpu_dtype_is_float32():
    assert pick_dtype("cpu") == torch.float32


def test_seed_everything_repeats_every_rng():
    def draw():
        return random.random(), np.random.rand(), torch.rand(3).tolist()

    g = seed_everything(123)
    a, ga = draw(), torch.rand(2, generator=g).tolist()
    g = seed_everything(123)
    b, gb = draw(), torch.rand(2, generator=g).tolist()
    assert a == b and ga == gb
    seed_everything(124)
    assert draw() != a
    with pytest.raises(ValueError, match="seed"):
        seed_everything(-1)
