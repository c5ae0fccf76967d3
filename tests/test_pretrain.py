import math

import torch
from safetensors.torch import load_file

from rlhf_edu.data import lm_documents, load_splits
from rlhf_edu.pretrain import (PretrainConfig, pack_blocks, perplexity, pretrain, train_tokenizer,
                               unigram_perplexity)


def test_pack_blocks_separates_documents_with_eos(tiny_tokenizer):
    tok = tiny_tokenizer
    docs = ["a b c", "d e", "f"]
    flat = []
    for d in docs:
        flat += tok(d, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    blocks = pack_blocks(tok, docs, block_size=2)
    assert blocks.shape == (len(flat) // 2, 2)
    assert blocks.flatten().tolist() == flat[: blocks.numel()]


def test_perplexity_is_exp_of_hf_loss(random_lm):
    x = torch.randint(0, 11, (4, 8), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expect = math.exp(random_lm(input_ids=x, labels=x).loss.item())
    assert abs(perplexity(random_lm, x, batch_size=4) - expect) < 1e-6 * expect


def test_unigram_perplexity_by_hand():
    train = torch.tensor([[0, 1, 1, 2]])
    held = torch.tensor([[5, 1, 2]])  # the first token of a block is never predicted
    # add-one counts over vocab 3: [2, 3, 2] / 7
    expect = math.exp(-(math.log(3 / 7) + math.log(2 / 7)) / 2)
    assert abs(unigram_perplexity(train, held, 3) - expect) < 1e-9


def test_rebuild_is_deterministic_under_its_seed(tmp_path):
    docs = lm_documents(load_splits(0)["train"].select(range(400)))
    a, b = train_tokenizer(docs, 600), train_tokenizer(docs, 600)
    assert a.get_vocab() == b.get_vocab() and len(a) == 600
    runs = []
    for k in range(2):
        cfg = PretrainConfig(steps=2, batch_size=2, teacher=False, n_layer=1, n_embd=32, n_head=2, vocab_size=1024,
                             out_dir=str(tmp_path / f"run{k}"))
        m = pretrain(cfg, write_card=False)
        runs.append((m, load_file(tmp_path / f"run{k}" / "model.safetensors")))
    (m0, w0), (m1, w1) = runs
    assert m0["history"]["loss"] == m1["history"]["loss"]
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    assert m0["samples"] == m1["samples"]


def test_word_perplexity_matches_hf_loss_with_the_prefix_masked(tiny_tokenizer):
    from rlhf_edu.models import load_base_model
    from rlhf_edu.pretrain import word_perplexity

    model = load_base_model("tiny").eval()
    ds = {"movie": ["shrek", "jaws"], "text": ["A fun film.", "The shark is scary and the sea is big."]}
    total, words = 0.0, 0
    for movie, text in zip(ds["movie"], ds["text"]):
        prefix = [tiny_tokenizer.eos_token_id] + tiny_tokenizer(f"{movie}:")["input_ids"]
        body = tiny_tokenizer(f" {text}")["input_ids"]
        ids = torch.tensor([prefix + body])
        labels = ids.clone()
        labels[0, : len(prefix)] = -100  # HF's loss ignores the prompt positions
        with torch.no_grad():
            total += model(input_ids=ids, labels=labels).loss.item() * len(body)
        words += len(text.split())
    assert abs(word_perplexity(model, tiny_tokenizer, ds) - math.exp(total / words)) < 1e-3 * math.exp(total / words)
