"""Smoke check: one full PPO-ptx iteration with a randomly initialised GPT-2 small (124M) config.

Four 124M models (policy, reference, value, reward) plus AdamW state for two of them: about 5 GB
of RAM. Slow on a CPU (minutes), so it is skipped unless RLHF_EDU_SLOW=1:

    RLHF_EDU_SLOW=1 .venv/bin/pytest -q tests/test_ppo_gpt2_smoke.py
"""

import importlib.util
import math
import os
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("RLHF_EDU_SLOW") != "1", reason="slow: set RLHF_EDU_SLOW=1 to run"),
]


def load_benchmark():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "ppo_step.py"
    spec = importlib.util.spec_from_file_location("ppo_step_benchmark", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_one_ppo_ptx_iteration_gpt2_small_random_init():
    bench = load_benchmark()
    out = bench.run("random124m", preset="gpt2", iterations=1, device="cpu", threads=2, progress=False,
                    batch_size=8, minibatch_size=4, max_new_tokens=16, ppo_epochs=1, ptx_batch_size=4)
    print(out)
    assert out["iterations"] == 1
    assert math.isfinite(out["s_per_iteration"]) and out["tokens_per_s"] > 0
