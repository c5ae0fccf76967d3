import pytest
import torch
from scipy.stats import chisquare

from rlhf_edu.generation import sample
from rlhf_edu.logprobs import response_logprobs


class IdTokenizer:
    """Token-id 'tokenizer' for the 11-token random GPT-2 (0 is EOS = pad)."""

    eos_token_id = 0
    pad_token_id = 0

    def decode(self, ids):
        return " ".join(map(str, ids))


TOK = IdTokenizer()


def test_first_token_follows_the_model_distribution(random_lm):
    prompt = [3, 5, 7]
    n = 4000
    ro = sample(random_lm, TOK, [prompt] * n, max_new_tokens=1, seed=0)
    with torch.no_grad():
        probs = random_lm(torch.tensor([prompt])).logits[0, -1].double().softmax(-1)
    counts = torch.bincount(ro.response_ids[:, 0], minlength=11).double()
    assert chisquare(counts.numpy(), (probs * n).numpy()).pvalue > 1e-3


def test_same_seed_same_samples(random_lm):
    prompts = [[1, 2], [4, 5, 6], [9]]
    a = sample(random_lm, TOK, prompts, max_new_tokens=8, seed=3)
    b = sample(random_lm, TOK, prompts, max_new_tokens=8, seed=3)
    c = sample(random_lm, TOK, prompts * 10, max_new_tokens=8, seed=4)
    assert torch.equal(a.input_ids, b.input_ids) and torch.equal(a.logprobs, b.logprobs)
    assert a.texts == b.texts
    assert not torch.equal(a.input_ids.repeat(10, 1), c.input_ids)


def test_logprobs_match_teacher_forced_rescoring(random_lm):
    prompts = [[1, 2], [4, 5, 6, 7, 8], [9]]  # left padding of different amounts
    ro = sample(random_lm, TOK, prompts * 4, max_new_tokens=10, seed=1)
    again = response_logprobs(random_lm, ro.input_ids, ro.attention_mask, ro.prompt_length)
    assert torch.allclose(again * ro.response_mask, ro.logprobs, atol=1e-5)
    assert torch.equal(ro.logprobs, ro.sampler_logprobs)  # safe settings: sampler = policy


def test_response_mask_stops_after_the_first_eos(random_lm):
    ro = sample(random_lm, TOK, [[3]] * 200, max_new_tokens=12, seed=2)
    for toks, m in zip(ro.response_ids.tolist(), ro.response_mask.tolist()):
        if 0 in toks[: sum(m)]:
            first = toks.index(0)
            assert m == [1] * (first + 1) + [0] * (len(m) - first - 1)
        else:
            assert all(m)
    assert (ro.logprobs[ro.response_mask == 0] == 0).all()


def test_biased_settings_need_explicit_consent(random_lm):
    for kw in (dict(top_k=2), dict(top_p=0.5), dict(min_new_tokens=3), dict(temperature=0.7)):
        with pytest.raises(ValueError, match=list(kw)[0]):
            sample(random_lm, TOK, [[3]], max_new_tokens=4, **kw)
    ro = sample(random_lm, TOK, [[3, 4]] * 300, max_new_tokens=1, top_k=2, allow_biased=True, seed=0)
    with torch.no_grad():
        top2 = random_lm(torch.tensor([[3, 4]])).logits[0, -1].topk(2).indices.tolist()
    assert set(ro.response_ids[:, 0].tolist()) <= set(top2)
    assert (ro.sampler_logprobs >= ro.logprobs).all()  # renormalised over fewer tokens
    ro = sample(random_lm, TOK, [[3]] * 300, max_new_tokens=4, min_new_tokens=3, allow_biased=True, seed=0)
    assert (ro.response_ids[:, :3] != 0).all()


def test_bad_arguments(random_lm):
    with pytest.raises(ValueError, match="max_new_tokens"):
        sample(random_lm, TOK, [[1]], max_new_tokens=0)
    with pytest.raises(ValueError, match="prompts"):
        sample(random_lm, TOK, [], max_new_tokens=2)
