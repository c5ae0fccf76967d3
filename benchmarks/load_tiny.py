"""Budget check: `import rlhf_edu` plus loading the tiny model and tokenizer (target < 5 s).

Each repeat runs in a fresh interpreter so imports are cold. Prints the median of 5.
Usage: python benchmarks/load_tiny.py
"""

import statistics
import subprocess
import sys

CODE = """
import time
t0 = time.perf_counter()
import rlhf_edu
from rlhf_edu.models import load_policy
t1 = time.perf_counter()
model, tok = load_policy("tiny")
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def main(repeats: int = 5) -> None:
    imports, loads = [], []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True)
        a, b = map(float, out.stdout.split()[-2:])
        imports.append(a)
        loads.append(b)
    total = [a + b for a, b in zip(imports, loads)]
    print(f"{'phase':<28}{'median s':>10}{'max s':>10}")
    print(f"{'import rlhf_edu + models':<28}{statistics.median(imports):>10.2f}{max(imports):>10.2f}")
    print(f"{'load tiny model+tokenizer':<28}{statistics.median(loads):>10.2f}{max(loads):>10.2f}")
    print(f"{'total (budget 5 s)':<28}{statistics.median(total):>10.2f}{max(total):>10.2f}")


if __name__ == "__main__":
    main()
