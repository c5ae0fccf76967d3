"""``rlhf-edu sft`` end to end on the CPU, with a tiny random GPT-2 standing in for GPT-2 small."""

import json

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from rlhf_edu.cli import main
from rlhf_edu.config import get_scale
from rlhf_edu.models import load_policy
from rlhf_edu.sft import SFTConfig, sft, sft_documents, sft_done


@pytest.fixture
def raw_gpt2(tmp_path, tiny_tokenizer):
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=len(tiny_tokenizer), n_positions=64, n_embd=32, n_layer=1, n_head=2,
                     eos_token_id=tiny_tokenizer.eos_token_id, bos_token_id=tiny_tokenizer.eos_token_id)
    path = tmp_path / "raw"
    GPT2LMHeadModel(cfg).save_pretrained(path)
    tiny_tokenizer.save_pretrained(path)
    return path


def test_sft_lowers_validation_perplexity(raw_gpt2, tmp_path):
    m = sft(SFTConfig(source=str(raw_gpt2), steps=8, batch_size=8, lr=3e-3, warmup=1, out_dir=str(tmp_path / "sft")),
            progress=False)
    assert m["val_ppl_after"] < 0.8 * m["val_ppl_before"]
    assert m["history"]["loss"][-1] < m["history"]["loss"][0]
    assert sft_done(tmp_path / "sft")


def test_cli_sft_then_the_gpt2_scale_loads_the_result(raw_gpt2, tmp_path, monkeypatch, capsys):
    out = tmp_path / "sft"
    monkeypatch.setenv("RLHF_EDU_GPT2_SFT_DIR", str(out))
    monkeypatch.setenv("RLHF_EDU_GPT2_PATH", str(raw_gpt2))
    assert main(["sft", "--scale", "gpt2", "--steps", "2"]) == 0
    info = json.loads((out / "sft_info.json").read_text())
    assert info["source"] == str(raw_gpt2) and info["config"]["steps"] == 2
    assert "validation perplexity" in capsys.readouterr().err
    scale = get_scale("gpt2", verbose=False)
    assert scale.model_source == str(out) and scale.base_source == str(raw_gpt2)
    model, tok = load_policy(scale)
    assert model.config.n_embd == 32 and len(tok) == model.config.vocab_size


def test_sft_data_is_the_pretraining_mix_and_names_no_held_out_movie():
    from rlhf_edu.data import load_splits

    train = sft_documents("train")
    val = sft_documents("validation")
    held_out = set(load_splits(0)["validation"]["movie"]) | set(load_splits(0)["test"]["movie"])
    assert len(train) > len(load_splits(0)["train"])  # the teacher reviews are in
    assert not {d.split(":", 1)[0] for d in train} & held_out
    assert {d.split(":", 1)[0] for d in val} <= set(load_splits(0)["validation"]["movie"])


def test_sft_without_gpt2_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="^source:.*RLHF_EDU_GPT2_PATH"):
        sft(SFTConfig(source=str(tmp_path / "nowhere"), out_dir=str(tmp_path / "o")), progress=False)
