"""The notebooks at ``RLHF_EDU_SCALE=gpt2``, on the CPU: plumbing, not results.

GPT-2's weights are not reachable here, so a randomly initialised one-layer GPT-2 (the tiny
tokenizer's vocabulary, width 32) stands in for GPT-2 small after SFT. ``RLHF_EDU_SMOKE=1`` cuts
every count read through ``Scale.n`` (iterations, steps, seeds) to at most 3; every other size is
the gpt2 preset's (64 prompts x 32 tokens per PPO iteration, DPO batches of 32, ...). What this
catches: a gpt2 branch of a notebook that crashes, a preset that does not reach the notebook, and
a result that notebook 08 cannot read from 07. Notebook 01 never loads a model and is left out.
"""

import json
import re
import shutil

import nbformat
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from rlhf_edu import course

NOTEBOOKS = [p for p in course.find_notebooks(course.NOTEBOOKS_DIR) if not p.name.startswith("01_")]


def _text(nb) -> str:
    """Everything the notebook printed (stream outputs and plain-text results)."""
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            out.append(o.get("text", "") or o.get("data", {}).get("text/plain", ""))
    return "\n".join(out)


@pytest.fixture(scope="module")
def gpt2_runs(tmp_path_factory, tiny_tokenizer):
    """Notebooks 02-08 executed in order at the gpt2 scale: {stem: (error, notebook)}."""
    root = tmp_path_factory.mktemp("gpt2_plumbing")
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=len(tiny_tokenizer), n_positions=128, n_embd=32, n_layer=1, n_head=2,
                     eos_token_id=tiny_tokenizer.eos_token_id, bos_token_id=tiny_tokenizer.eos_token_id)
    GPT2LMHeadModel(cfg).save_pretrained(root / "sft")
    tiny_tokenizer.save_pretrained(root / "sft")
    env = {"RLHF_EDU_SCALE": "gpt2", "RLHF_EDU_SMOKE": "1", "RLHF_EDU_GPT2_SFT_DIR": str(root / "sft"),
           "RLHF_EDU_GPT2_PATH": str(root / "sft"), "HF_HUB_OFFLINE": "1"}
    work = root / "notebooks"  # a copy: notebook 07 writes results/ beside itself
    work.mkdir()
    runs = {}
    for path in NOTEBOOKS:
        shutil.copy(path, work / path.name)
        nb = nbformat.read(work / path.name, as_version=4)
        error, _ = course.execute_notebook(nb, work, env, timeout=600)
        runs[path.stem] = (error, nb)
    runs["results"] = work / "results"
    return runs


@pytest.mark.parametrize("stem", [p.stem for p in NOTEBOOKS])
def test_notebook_runs_at_the_gpt2_scale(gpt2_runs, stem):
    error, nb = gpt2_runs[stem]
    assert error is None, error[-3000:]
    assert "[rlhf_edu] scale=gpt2" in _text(nb)


def test_the_gpt2_presets_reach_the_rl_notebooks(gpt2_runs):
    ppo = _text(gpt2_runs["07_ppo_ptx"][1])
    assert re.search(r"PPO: 3 iterations x 64 prompts x 32 tokens", ppo), ppo[:2000]
    assert re.search(r"PPO: 3 iterations x 64 prompts x 32 tokens", _text(gpt2_runs["06_fine_grained_rewards"][1]))
    dpo = _text(gpt2_runs["08_dpo_nll"][1])
    assert "batch_size=32" in dpo and "steps=3" in dpo and "lr=5e-06" in dpo


def test_notebook_08_reads_notebook_07s_gpt2_runs(gpt2_runs):
    saved = json.loads((gpt2_runs["results"] / "07_ppo_gpt2.json").read_text())
    assert saved["max_new_tokens"] == 32 and len(saved["runs"]) == 4  # the gpt2 preset's response length
    assert "run notebook 07" not in _text(gpt2_runs["08_dpo_nll"][1]).lower()
