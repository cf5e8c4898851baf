# One command per job; each sets up what it needs first. Extra Hydra overrides go in ARGS:
#   make train ARGS="trainer.max_epochs=5 data.batch_size=16"; another recipe: RECIPE=multi_small.
# Experiments (experiments/<name>/README.md): make experiment NAME=ablation [ARGS=...]

VENV := .venv
PY := $(VENV)/bin/python
UV := python3 -m uv
ARGS ?=
RECIPE ?= multi_mid
HELD_OUT ?= cremad,ravdess,tess
DATA ?= multi

.PHONY: setup data data-multi data-nemo train test lint format docs docs-build lock repro cv \
	seeds xcorpus experiment serve

$(VENV)/.installed: requirements.lock pyproject.toml
	python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) venv --quiet --allow-existing --python python3 $(VENV)
	$(UV) pip install --quiet --compile-bytecode --python $(PY) --require-hashes -r requirements.lock
	$(UV) pip install --quiet --python $(PY) --no-deps --editable .
	touch $@

# .venv from the hash-pinned requirements.lock, the package editable
setup: $(VENV)/.installed

# RAVDESS and the recorded noise from the DVC remote
data: setup
	$(VENV)/bin/dvc pull data/RAVDESS.dvc data/NOISE.dvc

# what data=multi and multi_all train on: TESS and URDU from DVC, and CREMA-D (imported apart)
data-multi: data
	$(VENV)/bin/dvc pull data/TESS.dvc data/URDU.dvc
	@test -d data/CREMA-D/AudioWAV || { echo "data/CREMA-D/AudioWAV is missing: run" \
		"$(PY) scripts/download_corpus.py corpus=cremad, or add source_dir=DIR to import a copy"; exit 1; }

# data=multi_nemo: the English mix and nEMO (imported apart)
data-nemo: data-multi
	@test -d data/nEMO/samples || { echo "data/nEMO/samples is missing: run" \
		"$(PY) scripts/download_corpus.py corpus=nemo, or add source_dir=DIR to import a copy"; exit 1; }

# the default release's recipe (experiment=multi_mid) on the English mix
train: data-multi
	$(PY) speech_emotion_recognition/train.py experiment=$(RECIPE) $(ARGS)

# the recipe's CREMA-D speaker 5-fold cross-validation; summary.{json,md} in the sweep folder
cv: data-multi
	$(PY) speech_emotion_recognition/train.py -m experiment=$(RECIPE) data=cremad split=kfold \
		split.fold=0,1,2,3,4 $(ARGS)

# the recipe's seed spread on one split (data.seed stays 42)
seeds: data-multi
	$(PY) speech_emotion_recognition/train.py -m experiment=$(RECIPE) seed=1,2,3 $(ARGS)

# each corpus left out in turn (DATA=multi_nemo HELD_OUT=cremad,ravdess,tess,nemo adds nEMO)
xcorpus: data-multi
	$(PY) speech_emotion_recognition/train.py -m experiment=$(RECIPE) data=$(DATA) \
		split=leave_corpus_out split.held_out=$(HELD_OUT) $(ARGS)

# one experiment of experiments/, by its folder name: make experiment NAME=ablation
experiment: data-multi
	@test -x experiments/$(NAME)/run.sh || { echo "No experiment '$(NAME)'; one of:" \
		$$(cd experiments && ls */run.sh | cut -d/ -f1); exit 1; }
	PY=$(PY) experiments/$(NAME)/run.sh $(ARGS)

# the demo page, the JSON API and the WebSocket on 127.0.0.1:7860
serve: data
	$(PY) speech_emotion_recognition/serve.py $(ARGS)

# the whole test suite (ARGS='-m "not slow"' for the fast part)
test: data
	$(PY) -m pytest $(ARGS)

# ruff as CI runs it
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# the documentation site on 127.0.0.1:8000, rebuilt as you edit
docs: setup
	$(VENV)/bin/mkdocs serve

# the documentation site into site/, strictly as CI builds it (a broken link fails)
docs-build: setup
	$(VENV)/bin/mkdocs build --strict

# regenerate the hash-pinned lock after editing pyproject.toml (names, versions, hashes only)
lock:
	$(UV) pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 --no-header --quiet -o requirements.lock

# the DVC pipeline (dvc.yaml): prepare -> train -> evaluate for experiment=ravdess_small
repro: data
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/dvc repro
	$(VENV)/bin/dvc metrics show
