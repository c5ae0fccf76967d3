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


def test_smoke_cuts_every_training_count_and_nothing_else(monkeypatch):
    """RLHF_EDU_SMOKE=1 (the gpt2 plumbing test) cuts iterations, steps and seeds to 3; batch
    sizes, lengths and learning rates stay the preset's. Without it, nothing is cut."""
    from rlhf_edu.bradley_terry import RewardModelConfig
    from rlhf_edu.dpo import DPOConfig
    from rlhf_edu.fdpg import FDPGConfig
    from rlhf_edu.ppo import PPOConfig

    def configs():
        s = get_scale("gpt2", verbose=False)
        return s, [PPOConfig.from_scale(s, iterations=40), DPOConfig.from_scale(s), FDPGConfig.from_scale(s),
                   RewardModelConfig.from_scale(s)]

    monkeypatch.delenv("RLHF_EDU_SMOKE", raising=False)
    full, (ppo, dpo, fdpg, rm) = configs()
    assert not full.smoke and full.n(5) == 5
    assert (ppo.iterations, dpo.steps, fdpg.iterations, rm.steps) == (40, 400, 60, 400)
    monkeypatch.setenv("RLHF_EDU_SMOKE", "1")
    smoke, (ppo_s, dpo_s, fdpg_s, rm_s) = configs()
    assert smoke.smoke and (smoke.n(5), smoke.n(2)) == (3, 2)
    assert (ppo_s.iterations, dpo_s.steps, fdpg_s.iterations, rm_s.steps) == (3, 3, 3, 3)
    for a, b in [(ppo, ppo_s), (dpo, dpo_s), (fdpg, fdpg_s), (rm, rm_s)]:
        assert a.batch_size == b.batch_size and a.lr == b.lr
    assert (ppo_s.batch_size, ppo_s.max_new_tokens, dpo_s.batch_size) == (64, 32, 32)
