"""GPT-2 small on whatever device this runs on: DPO steps/s, PPO-ptx seconds/iteration, peak memory.

Usage (from the repository root):

    .venv/bin/python benchmarks/gpt2_scale.py            # a GPU if there is one, else the CPU
    .venv/bin/python benchmarks/gpt2_scale.py --quick    # fewer steps (a smoke run)
    .venv/bin/python benchmarks/gpt2_scale.py --device cpu

It runs ``benchmarks/dpo_step.py`` and ``benchmarks/ppo_step.py`` at the ``gpt2`` scale, each in its
own process (so each peak-memory figure belongs to one job), and prints one table with the device
name. The weights are GPT-2 small's when they can be had (``RLHF_EDU_GPT2_PATH`` or the Hugging
Face cache/hub); otherwise a randomly initialised model of the same architecture (124M parameters,
50,257-token vocabulary) is timed, which costs the same FLOPs (the table says which).

Sizes: on a GPU the presets of the course (``DPOConfig.gpt2``: 32 pairs of up to 96 tokens, bf16
autocast where supported; ``PPOConfig.gpt2``: 64 prompts x 32 new tokens, 4 epochs of
minibatch 16, bf16). On a CPU those take many minutes per step, so the CPU run uses small batches
(DPO 4 pairs x 64 tokens; PPO-ptx 8 prompts x 16 tokens, 1 epoch); the table gives the sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    p.add_argument("--quick", action="store_true", help="fewest steps: a smoke run")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--skip", choices=["dpo", "ppo"], default=None, help="run only the other benchmark")
    return p.parse_args(argv)


def device_name(device: str) -> str:
    import torch

    if device == "cuda":
        return f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda}, torch {torch.__version__})"
    import platform

    return f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores, torch {torch.__version__}"


def _run(cmd: list[str]) -> str:
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    print("$", " ".join(cmd), file=sys.stderr, flush=True)
    out = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True, check=True).stdout
    return out


def run_dpo(device: str, real: bool, quick: bool, threads: int) -> dict:
    cmd = [sys.executable, str(HERE / "dpo_step.py"), "--scale", "gpt2", "--device", device,
           "--threads", str(threads), "--alpha", "0.2"]
    if not real:
        cmd.append("--random-init")
    if device == "cpu":
        cmd += ["--batch-size", "4", "--max-len", "64", "--steps", "2" if quick else "4", "--warmup", "1",
                "--repeats", "1"]
    else:
        cmd += ["--steps", "5" if quick else "20", "--warmup", "3", "--repeats", "1" if quick else "3"]
    fields = {}
    for line in _run(cmd).splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def run_ppo(device: str, real: bool, quick: bool, threads: int) -> dict:
    cmd = [sys.executable, str(HERE / "ppo_step.py"), "--scale", "gpt2" if real else "random124m",
           "--device", device, "--threads", str(threads)]
    if device == "cpu":
        cmd += ["--preset", "gpt2_t4", "--iterations", "1" if quick else "2", "--batch-size", "8",
                "--max-new-tokens", "16", "--ppo-epochs", "1"]
    else:
        cmd += ["--preset", "gpt2", "--iterations", "2" if quick else "4"]
    return json.loads(_run(cmd))


def main(argv=None) -> int:
    import torch

    from rlhf_edu.config import gpt2_weights_available
    from rlhf_edu.course import format_table

    args = parse_args(argv)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    real, where = gpt2_weights_available()
    weights = f"GPT-2 small weights ({where})" if real else f"random GPT-2 small weights ({where})"
    rows = []
    if args.skip != "dpo":
        d = run_dpo(device, real, args.quick, args.threads)
        rows.append(["DPO+NLL step", f"{d['batch_size']} pairs x <= {d['max_len']} tokens, amp {d['amp_dtype']}",
                     f"{d['steps_per_s']} steps/s ({d['tokens_per_s']} tokens/s)", f"{d['peak_memory_mb']} MiB"])
    if args.skip != "ppo":
        r = run_ppo(device, real, args.quick, args.threads)
        rows.append(["PPO-ptx iteration",
                     f"{r['batch_size']} prompts x {r['max_new_tokens']} tokens, {r['ppo_epochs']} epochs, {r['dtype']}",
                     f"{r['s_per_iteration']} s/iteration (first {r['first_iteration_s']} s; "
                     f"{r['tokens_per_s']} tokens/s)", f"{r['peak_memory_mb']} MiB"])
    mem = "peak GPU memory allocated" if device == "cuda" else "peak RSS of the process"
    print(f"device: {device_name(device)}\nmodel: {weights}")
    print(format_table(["job", "size", "speed", mem], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
