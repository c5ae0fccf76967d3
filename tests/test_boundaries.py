"""Bad input at the boundaries gets a ValueError whose message starts with the argument's name.

The boundaries are the configs (dataclass ``__post_init__``), the ``train_*`` entry points, data
loading and the user-facing loaders and samplers. Pure loss and estimator functions are not
listed: they keep at most a shape check and never read tensor values (see DESIGN.md).
"""

from __future__ import annotations

import pytest
import torch

from rlhf_edu import bradley_terry as bt
from rlhf_edu import config, course, data, dpo, fdpg, generation, ppo, pretrain, reward_collapse as rc, rewards
from rlhf_edu.divergences import get_f_divergence

PAIRS = {"prompt": ["a:", "b:"], "chosen": ["good", "great"], "rejected": ["bad", "awful"]}


def _cases(fx):
    """(argument name, call) pairs; ``fx`` gives the session fixtures (tokenizer, random LM)."""
    tok, lm = fx["tok"], fx["lm"]
    return [
        # configs
        ("iterations", lambda: ppo.PPOConfig(iterations=0)),
        ("gamma", lambda: ppo.PPOConfig(gamma=1.5)),
        ("kl_estimator", lambda: ppo.PPOConfig(kl_estimator="k2")),
        ("minibatch_size", lambda: ppo.PPOConfig(batch_size=32, minibatch_size=5)),
        ("beta", lambda: dpo.DPOConfig(beta=0.0)),
        ("alpha", lambda: dpo.DPOConfig(alpha=-1.0)),
        ("lr", lambda: bt.RewardModelConfig(lr=float("nan"))),
        ("max_len", lambda: bt.RewardModelConfig(max_len=1)),
        ("max_log_ratio", lambda: fdpg.FDPGConfig(max_log_ratio=-1.0)),
        ("steps", lambda: rc.SharedTrainConfig(steps=0)),
        ("n_head", lambda: pretrain.PretrainConfig(n_embd=256, n_head=3)),
        ("words", lambda: fdpg.GDCBinaryTask(words=())),
        ("beta", lambda: fdpg.RLKLTask(beta=0.0)),
        ("param", lambda: rc.power_utility(1.5)),
        ("weight", lambda: rewards.RewardCategory("x", float("inf"), rewards.sentence_segments, rewards.span_repetition)),
        # scales, seeds, loaders
        ("scale", lambda: config.get_scale("huge", verbose=False)),
        ("seed", lambda: config.seed_everything(-1)),
        ("source", lambda: data.load_corpus("nowhere")),
        ("ds", lambda: data.preference_pairs(data.Dataset.from_dict({"text": [], "label": [], "movie": []}))),
        ("prompts/responses", lambda: data.tokenize_prompt_response(tok, ["a", "b"], ["c"])),
        ("max_len", lambda: data.PairCollator(tok, max_len=1)),
        ("divergence", lambda: get_f_divergence("hellinger")),
        ("texts", lambda: rewards.gold_reward("great")),
        ("block_tokens", lambda: ppo.ptx_blocks(tok, ["a b c"], block_tokens=1)),
        # samplers
        ("max_new_tokens", lambda: generation.sample(lm, tok, [[1]], max_new_tokens=0)),
        ("top_k", lambda: generation.sample(lm, tok, [[1]], max_new_tokens=2, top_k=5)),
        ("prompts", lambda: generation.sample(lm, tok, [], max_new_tokens=2)),
        # train_* entry points
        ("config", lambda: ppo.train_ppo(dpo.DPOConfig(), lm, lm, lm, tok, ["a"] * 32, lambda ro: None)),
        ("reward_fn", lambda: ppo.train_ppo(ppo.PPOConfig(), lm, lm, lm, tok, ["a"] * 32, None)),
        ("prompts", lambda: ppo.train_ppo(ppo.PPOConfig(batch_size=32), lm, lm, lm, tok, ["a"], lambda ro: None)),
        ("ptx_data", lambda: ppo.train_ppo(ppo.PPOConfig(ptx_coef=0.1), lm, lm, lm, tok, ["a"] * 32, lambda ro: None)),
        ("train_pairs", lambda: dpo.train_dpo(lm, tok, PAIRS, config=dpo.DPOConfig(batch_size=4))),
        ("config", lambda: bt.train_reward_model(lm, tok, PAIRS, PAIRS, config=dpo.DPOConfig())),
        ("eval_pairs", lambda: bt.train_reward_model(lm, tok, PAIRS, {"prompt": []}, config=bt.RewardModelConfig())),
        ("prompts", lambda: fdpg.train_fdpg(lm, lm, tok, [], fdpg.RLKLTask(), "js")),
        ("task", lambda: fdpg.train_fdpg(lm, lm, tok, ["a"], object(), "js")),
        ("steps", lambda: fdpg.train_exact_fdpg(fdpg.make_exact_world(), fdpg.make_exact_world().log_a, "js", steps=-1)),
        ("train", lambda: rc.train_shared_reward_model(None, rc.make_feature_ranking_task(), [], rc.SharedTrainConfig())),
        # the CLI's course commands
        ("--only", lambda: course.parse_only("three")),
    ]


@pytest.fixture(scope="module")
def fx(tiny_tokenizer, random_lm):
    return {"tok": tiny_tokenizer, "lm": random_lm}


N_CASES = 39


def test_case_count():
    assert len(_cases({"tok": None, "lm": None})) == N_CASES


@pytest.mark.parametrize("i", range(N_CASES))
def test_boundary_names_the_argument(fx, i):
    arg, call = _cases(fx)[i]
    with pytest.raises(ValueError, match=rf"^{arg}:"):
        call()
