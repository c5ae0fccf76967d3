import pytest
import torch

from rlhf_edu.config import Scale, get_scale
from rlhf_edu.models import (ScalarHeadModel, frozen_copy, load_base_model, load_tokenizer,
                             n_parameters, scalar_head_from_lm)

TEXTS = ["Tobey Maguire is a practitioner.", "Una película muy divertida — ¡sí!", "  spaces\tand\nlines  ",
         "emoji 🎬 and quotes \"'\"", ""]


def test_tiny_tokenizer_round_trips_text(tiny_tokenizer):
    tok = tiny_tokenizer
    assert 8000 <= len(tok) <= 8192  # the silently-empty tokenizer pitfall would give 1
    assert tok.pad_token_id == tok.eos_token_id
    for t in TEXTS:
        ids = tok(t, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == t  # byte-level BPE is lossless


def test_tiny_model_shape_and_size(tiny_model, tiny_tokenizer):
    cfg = tiny_model.config
    assert (cfg.n_layer, cfg.n_embd, cfg.vocab_size) == (4, 256, len(tiny_tokenizer))
    assert 4e6 < n_parameters(tiny_model) < 7e6
    assert all(getattr(cfg, k) == 0.0 for k in ("resid_pdrop", "embd_pdrop", "attn_pdrop"))


def test_frozen_copy_is_frozen_and_independent(tiny_model):
    ref = frozen_copy(tiny_model)
    assert not ref.training and all(not p.requires_grad for p in ref.parameters())
    with torch.no_grad():
        next(tiny_model.parameters()).add_(1.0)
    assert not torch.equal(next(tiny_model.parameters()), next(ref.parameters()))


def test_reward_head_scores_the_last_real_token(random_lm):
    rm = scalar_head_from_lm(random_lm)
    assert isinstance(rm, ScalarHeadModel)
    ids = torch.tensor([[5, 6, 7, 0, 0], [1, 2, 3, 4, 5]])
    right = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    s = rm.score(ids, right)
    for b, last in ((0, 2), (1, 4)):  # naive: the value at the last attended position
        alone = rm(ids[b : b + 1, : last + 1], right[b : b + 1, : last + 1])
        assert torch.allclose(s[b], alone[0, -1], atol=1e-5)
    left_ids = torch.tensor([[0, 0, 5, 6, 7]])
    left = torch.tensor([[0, 0, 1, 1, 1]])
    assert torch.allclose(rm.score(left_ids, left), s[:1], atol=1e-5)  # padding side doesn't matter


def test_gpt2_scale_without_weights_fails_clearly(monkeypatch, tmp_path):
    monkeypatch.setenv("RLHF_EDU_GPT2_PATH", str(tmp_path / "nowhere"))
    monkeypatch.setenv("RLHF_EDU_GPT2_SFT_DIR", str(tmp_path / "sft"))
    scale = get_scale("gpt2", verbose=False)
    with pytest.raises(FileNotFoundError, match="rlhf-edu sft --scale gpt2.*RLHF_EDU_GPT2_PATH"):
        load_tokenizer(scale)
    with pytest.raises(FileNotFoundError, match="RLHF_EDU_GPT2_PATH"):  # a given directory without weights
        load_tokenizer(scale.with_(model_source=str(tmp_path / "nowhere")))


def test_gpt2_path_round_trips_text(tmp_path, tiny_tokenizer):
    """The gpt2-scale code path (a local GPT-2 directory via RLHF_EDU_GPT2_PATH) round-trips text.

    Offline we cannot fetch GPT-2's own tokenizer, so a GPT-2-architecture directory is built
    from the tiny byte-level BPE and loaded through exactly the gpt2 path."""
    tiny = load_base_model(get_scale("tiny", verbose=False))
    tiny.save_pretrained(tmp_path)
    tiny_tokenizer.save_pretrained(tmp_path)
    scale = Scale(name="gpt2", model_source=str(tmp_path))
    tok = load_tokenizer(scale)
    for t in TEXTS:
        assert tok.decode(tok(t, add_special_tokens=False)["input_ids"]) == t
    m = load_base_model(scale)
    assert n_parameters(m) == n_parameters(tiny)


def test_missing_tiny_model_says_how_to_rebuild(tmp_path):
    with pytest.raises(FileNotFoundError, match="rlhf-edu pretrain"):
        load_tokenizer(Scale(name="tiny", model_source=str(tmp_path)))
