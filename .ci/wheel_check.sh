#!/usr/bin/env bash
# The install a student gets, checked end to end (issue 15): build the wheel, install it into a
# fresh venv OUTSIDE the clone, load the tiny policy, copy the notebooks out with
# `rlhf-edu course --dest`, and run one notebook there under nbval. Offline apart from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
work=$(mktemp -d "${TMPDIR:-/tmp}/rlhf-edu-wheel.XXXXXX")
trap 'rm -rf "$work"' EXIT

.venv/bin/python -m pip wheel -q --no-deps -w "$work/dist" .
wheel=$(ls "$work"/dist/rlhf_edu-*.whl)
python3 - "$wheel" <<'PY'
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
names = z.namelist()
need = ["rlhf_edu/data/tiny/model.safetensors", "rlhf_edu/data/tiny/tokenizer.json",
        "rlhf_edu/data/rotten_tomatoes_corpus_full.csv.bz2", "rlhf_edu/data/CORPUS.md",
        "rlhf_edu/notebooks/01_kl_directions.ipynb", "rlhf_edu/notebooks/08_dpo_nll.ipynb",
        "rlhf_edu/slides_vendor/VERSIONS.md"]
missing = [n for n in need if n not in names]
assert not missing, f"wheel lacks {missing}"
size = sum(i.file_size for i in z.infolist())
print(f"wheel: {sys.argv[1].rsplit('/', 1)[-1]}, {len(names)} files, {size / 1e6:.1f} MB unpacked")
PY
ls -l "$wheel" | awk '{printf "wheel file: %.1f MB\n", $5 / 1e6}'

"$PY" -m venv "$work/venv"
"$work/venv/bin/pip" install -q --upgrade pip
"$work/venv/bin/pip" install -q "$TORCH_SPEC"
"$work/venv/bin/pip" install -q "$wheel[test]"

cd "$work"  # nothing of the clone is importable from here
export HF_HUB_OFFLINE=1 RLHF_EDU_SCALE=tiny RLHF_EDU_CACHE="$work/cache"
"$work/venv/bin/python" - <<'PY'
import rlhf_edu, rlhf_edu.resources as res
from rlhf_edu.config import get_scale
from rlhf_edu.models import load_policy
from rlhf_edu.data import load_corpus
assert "site-packages" in rlhf_edu.__file__, rlhf_edu.__file__
assert not res.IN_CLONE
scale = get_scale("tiny")
policy, tok = load_policy(scale, device="cpu")
print(f"installed package at {rlhf_edu.__file__}; tiny policy {sum(p.numel() for p in policy.parameters()):,} "
      f"parameters, vocab {len(tok)}; corpus {len(load_corpus())} rows")
PY
"$work/venv/bin/rlhf-edu" course --dest "$work/course"
test -f "$work/course/01_kl_directions.ipynb" && test -f "$work/course/slides/vendor/VERSIONS.md"
"$work/venv/bin/python" -m pytest -q -p no:cacheprovider --nbval-lax "$work/course/01_kl_directions.ipynb"
echo "wheel check: ok"
