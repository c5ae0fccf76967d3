import pytest
import torch

from rlhf_edu.logprobs import (batch_sequence_logprob, logprobs_of_labels, masked_mean, masked_sum,
                               masked_var, masked_whiten, model_token_logprobs, response_logprobs,
                               sequence_logprob, token_logprobs)


def _batch(B=3, T=9, V=11, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, V, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.long)
    mask[1, 6:] = 0  # right padding
    mask[2, 4:] = 0
    resp = torch.zeros(B, T, dtype=torch.long)
    resp[0, 3:] = 1
    resp[1, 2:6] = 1
    resp[2, 1:4] = 1
    return ids, mask, resp


def test_token_logprobs_equals_a_naive_loop():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 5, 7, generator=g)
    ids = torch.randint(0, 7, (2, 5), generator=g)
    out = token_logprobs(logits, ids)
    assert out.shape == (2, 4)
    for b in range(2):
        for t in range(4):
            expect = torch.log(torch.softmax(logits[b, t].double(), -1)[ids[b, t + 1]])
            assert abs(out[b, t].item() - expect.item()) < 1e-5


def test_sum_logprob_equals_hf_language_model_loss(random_lm):
    """Summed response log-prob = -(HF mean token CE) x (number of scored tokens)."""
    ids, mask, resp = _batch()
    batch = {"input_ids": ids, "attention_mask": mask, "response_mask": resp}
    ours = batch_sequence_logprob(random_lm, batch, reduction="sum")  # (B,)
    for b in range(ids.shape[0]):
        labels = ids[b : b + 1].clone()
        labels[resp[b : b + 1] == 0] = -100  # HF ignores -100
        out = random_lm(input_ids=ids[b : b + 1], attention_mask=mask[b : b + 1], labels=labels)
        n = int(resp[b, 1:].sum())
        assert torch.allclose(ours[b], -out.loss * n, atol=1e-5)
    mean = batch_sequence_logprob(random_lm, batch, reduction="mean")
    assert torch.allclose(mean * resp[:, 1:].sum(-1), ours, atol=1e-5)


def test_left_padding_does_not_change_response_logprobs(random_lm):
    ids = torch.tensor([[3, 4, 5, 6, 7, 8]])
    att = torch.ones_like(ids)
    plain = response_logprobs(random_lm, ids, att, prompt_length=3)
    padded_ids = torch.cat([torch.zeros(1, 2, dtype=torch.long), ids], 1)
    padded_att = torch.cat([torch.zeros(1, 2, dtype=torch.long), att], 1)
    padded = response_logprobs(random_lm, padded_ids, padded_att, prompt_length=5)
    assert torch.allclose(plain, padded, atol=1e-5)
    full = model_token_logprobs(random_lm, ids, att)
    assert torch.allclose(full[:, 2:], plain, atol=1e-6)


def test_masked_helpers_equal_naive_loops():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(4, 6, generator=g, dtype=torch.float64)
    m = (torch.rand(4, 6, generator=g) > 0.4).long()
    m[:, 0] = 1
    sel = [x[i, j].item() for i in range(4) for j in range(6) if m[i, j]]
    mean = sum(sel) / len(sel)
    var = sum((v - mean) ** 2 for v in sel) / (len(sel) - 1)
    assert abs(masked_sum(x, m).item() - sum(sel)) < 1e-12
    assert abs(masked_mean(x, m).item() - mean) < 1e-12
    assert abs(masked_var(x, m).item() - var) < 1e-12
    rows = masked_mean(x, m, dim=1)
    for i in range(4):
        r = [x[i, j].item() for j in range(6) if m[i, j]]
        assert abs(rows[i].item() - sum(r) / len(r)) < 1e-12
    w = masked_whiten(x, m)
    assert abs(masked_mean(w, m).item()) < 1e-9 and abs(masked_var(w, m).item() - 1) < 1e-6
    w2 = masked_whiten(x, m, shift_mean=False)
    assert abs(masked_mean(w2, m).item() - mean) < 1e-9


def test_padding_never_changes_a_masked_result():
    x = torch.tensor([[1.0, 2.0, 3.0]])
    m = torch.tensor([[1, 1, 0]])
    xp = torch.tensor([[1.0, 2.0, 3.0, 99.0, -5.0]])
    mp = torch.tensor([[1, 1, 0, 0, 0]])
    assert masked_mean(x, m) == masked_mean(xp, mp)
    assert sequence_logprob(x, m, "sum") == sequence_logprob(xp, mp, "sum")


def test_bad_input_is_rejected():
    x = torch.randn(2, 3)
    with pytest.raises(ValueError, match="x / mask"):
        masked_mean(x, torch.ones(2, 4))
    with pytest.raises(ValueError, match="reduction"):
        sequence_logprob(x, torch.ones(2, 3), reduction="avg")


def test_masked_token_logprobs_equals_full_logits_path(random_lm):
    """Projecting only the scored positions through the LM head changes no value or gradient."""
    from rlhf_edu.logprobs import masked_token_logprobs

    ids, att, resp = _batch(B=3, T=9)
    score = resp[:, 1:]
    lm = random_lm
    full = model_token_logprobs(lm, ids, att) * score  # (B, T-1), every position's logits built
    g_full = torch.autograd.grad(full.sum(), list(lm.parameters()))
    fast = masked_token_logprobs(lm, ids, att, score)
    assert fast.shape == (3, 8)
    assert (fast[score == 0] == 0).all()
    torch.testing.assert_close(fast, full, rtol=0, atol=1e-6)
    g_fast = torch.autograd.grad(fast.sum(), list(lm.parameters()))
    for a, b in zip(g_fast, g_full):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_masked_token_logprobs_falls_back_for_other_models(random_lm):
    from rlhf_edu.logprobs import masked_token_logprobs

    class Wrapped(torch.nn.Module):  # not a GPT2LMHeadModel: the generic path is used
        def __init__(self, lm):
            super().__init__()
            self.lm = lm

        def forward(self, **kwargs):
            return self.lm(**kwargs)

    ids, att, resp = _batch(B=3, T=9)
    with torch.no_grad():
        ours = masked_token_logprobs(Wrapped(random_lm), ids, att, resp[:, 1:])
        expect = model_token_logprobs(random_lm, ids, att) * resp[:, 1:]
    torch.testing.assert_close(ours, expect, rtol=0, atol=0)
