# One command per job; each sets up what it needs first.
#   make train   environment + the English mix + train the default release's recipe (experiment=multi_mid)
#   make test    environment + RAVDESS and NOISE from DVC + the whole test suite
#   make serve   environment + RAVDESS (example clips) + the demo page and API on 127.0.0.1:7860
#   make cv      CREMA-D speaker 5-fold cross-validation of that recipe (make seeds: 3 training seeds)
#   make xcorpus leave-one-corpus-out on the English mix (CREMA-D, RAVDESS, TESS held out in turn)
#   make xcorpus-levers  URDU in training and corpus-balanced sampling, on the left-out corpora
#   make ablation every generalisation lever on and off, 2 seeds each, and its table
#   make ablation-noise  base vs noise over the clip only (two arms), 2 seeds each, scored in noise too
#   make recheck30  smoothing, reverb and distillation at the release's 30 epochs, by the default rule
#   make mid     the mid-size model on multi_small's recipe, scored by the default rule
#   make shift   the default release with its windows also scored shifted, by the default rule
#   make field   the field's protocols: RAVDESS 8 classes 5-fold, URDU from scratch vs fine-tuned
# Extra Hydra overrides: make train ARGS="trainer.max_epochs=5 data.batch_size=16"
# Another recipe for train, cv, seeds and xcorpus: make cv RECIPE=multi_small (the small model's)

VENV := .venv
PY := $(VENV)/bin/python
UV := python3 -m uv
ARGS ?=
RECIPE ?= multi_mid

.PHONY: setup data data-multi train test lint format lock repro cv seeds xcorpus xcorpus-levers ablation \
	ablation-noise recheck30 mid shift field serve

$(VENV)/.installed: requirements.lock pyproject.toml
	python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) venv --quiet --allow-existing --python python3 $(VENV)
	$(UV) pip install --quiet --compile-bytecode --python $(PY) --require-hashes -r requirements.lock
	$(UV) pip install --quiet --python $(PY) --no-deps --editable .
	touch $@

setup: $(VENV)/.installed

data: setup
	$(VENV)/bin/dvc pull data/RAVDESS.dvc data/NOISE.dvc

# What data=multi and data=multi_all train on: the DVC corpora, and CREMA-D (not on the remote).
data-multi: data
	$(VENV)/bin/dvc pull data/TESS.dvc data/URDU.dvc
	@test -d data/CREMA-D/AudioWAV || { echo "data/CREMA-D/AudioWAV is missing: run" \
		"$(PY) scripts/download_corpus.py corpus=cremad, or add source_dir=DIR to import a copy"; exit 1; }

# The default release's recipe (ser-mid-multi): the mid-size CPU model on CREMA-D + RAVDESS + TESS.
train: data-multi
	$(PY) speech_emotion_recognition/train.py experiment=$(RECIPE) $(ARGS)

# CREMA-D speaker 5-fold cross-validation of `make train`'s recipe (91 actors, each tested
# once); summary.{json,md} in the sweep folder.
cv: data-multi
	$(PY) speech_emotion_recognition/train.py -m experiment=$(RECIPE) data=cremad split=kfold \
		split.fold=0,1,2,3,4 $(ARGS)

# Seed spread of the same recipe on one split (data.seed stays 42).
seeds: data-multi
	$(PY) speech_emotion_recognition/train.py -m experiment=$(RECIPE) seed=1,2,3 $(ARGS)

# Cross-corpus: the recipe on the English mix, each corpus held out in turn (summary.md in
# the sweep folder); needs `make data-multi`.
xcorpus: data-multi
	$(PY) speech_emotion_recognition/train.py -m experiment=$(RECIPE) split=leave_corpus_out \
		split.held_out=cremad,ravdess,tess $(ARGS)

# Two levers aimed at the left-out gap itself, each on the corpora it can move, 15 epochs,
# training seeds 42 and 43 as `make xcorpus` ran: URDU as a fourth training corpus (data=multi_all;
# CREMA-D and RAVDESS left out), and corpus-balanced sampling (CREMA-D left out, where TESS's two
# speakers are 2400 of the 3191 training clips). Table by scripts/xcorpus_levers.py into
# reports/xcorpus_levers/levers.md, beside the recipe's own runs. Fixed after the
# first of the six runs had ended (URDU, CREMA-D left out, seed 42): a lever joins the recipe
# only when, on every corpus it ran on, its mean over the two seeds beats the recipe's mean
# (reports/ser-mid-multi/cv/xcorpus*) by at least the pooled seed sd of the two; a kept lever
# reaches users with the next release run, not before.
xcorpus-levers: data-multi
	for seed in 42 43; do \
		$(PY) speech_emotion_recognition/train.py -m experiment=$(RECIPE) data=multi_all \
			split=leave_corpus_out split.held_out=cremad,ravdess trainer.max_epochs=15 \
			seed=$$seed hydra.sweep.dir=logs/xcorpus_levers/urdu_seed$$seed \
			'hydra.sweep.subdir=$${split.held_out}' $(ARGS) || exit 1; \
	done
	$(PY) speech_emotion_recognition/train.py -m experiment=$(RECIPE) split=leave_corpus_out \
		split.held_out=cremad data.balance_corpora=true trainer.max_epochs=15 seed=42,43 \
		hydra.sweep.dir=logs/xcorpus_levers/balanced 'hydra.sweep.subdir=seed$${seed}' $(ARGS)
	$(PY) scripts/xcorpus_levers.py logs/xcorpus_levers reports/xcorpus_levers

# One multirun per arm (conf/ablation/), then reports/ablation/ablation.md (scripts/ablation.py).
ABLATION_ARMS := base no_background masks mixup smoothing speed reverb balanced
ablation: data-multi
	for arm in $(ABLATION_ARMS); do \
		$(PY) speech_emotion_recognition/train.py -m experiment=ablation ablation=$$arm \
			seed=1,2 hydra.sweep.dir=logs/ablation/$$arm $(ARGS) || exit 1; \
	done
	$(PY) scripts/ablation.py logs/ablation reports/ablation

# A robustness lever (noise only where the clip has audio) against base: each run is also
# evaluated on its validation speakers at 10 dB SNR of four noise kinds (into <run>/noise_val),
# then reports/ablation_noise/ablation.md.
NOISE_VAL := subset=val "noise.types=[white,pink,babble,recorded]" "noise.snr_db=[10]" precision=bf16
ablation-noise: data-multi
	for seed in 1 2; do for arm in base noise_on_clip noise_on_clip_matched; do \
		run=logs/ablation_noise/$$arm/seed$$seed; \
		$(PY) speech_emotion_recognition/train.py experiment=ablation ablation=$$arm seed=$$seed \
			hydra.run.dir=$$run $(ARGS) || exit 1; \
		$(PY) speech_emotion_recognition/evaluate.py ckpt=$$run/model.safetensors data=multi_all \
			"data.test_only=[urdu]" manifest_dir=$$run/splits $(NOISE_VAL) \
			hydra.run.dir=$$run/noise_val || exit 1; \
	done; done
	$(PY) scripts/ablation.py logs/ablation_noise reports/ablation_noise

# The ablation's two closest levers (label smoothing 0.1; reverb on 30 % of clips) rechecked at
# the release's budget: experiment=multi_small, 30 epochs, seed 42, plus one lever; then
# distillation from a CPU teacher (no GPU teacher exists yet): the mean logits of the three
# 30-epoch models of this split that exist before it (the two releases and the smoothing run),
# at weight 0.5 and temperature 2. Each run is a release candidate, scored beside
# ser-small-multi-v2 by the default rule (scripts/default_rule.py) into reports/recheck30/.
# Fixed before the runs ended: a lever joins the recipe only when the rule picks its run; a pick
# on the score by less than 0.018 (one seed sd of the score) is level and changes nothing.
RECHECK := logs/recheck30
TEACHERS := models/ser-small-multi.safetensors models/ser-small-multi-v2.safetensors \
	$(RECHECK)/smoothing/model.safetensors
recheck30: data-multi
	$(PY) speech_emotion_recognition/train.py experiment=multi_small logger=csv \
		model.label_smoothing=0.1 hydra.run.dir=$(RECHECK)/smoothing $(ARGS)
	$(PY) speech_emotion_recognition/train.py experiment=multi_small logger=csv \
		model.batch_augment.reverb_p=0.3 hydra.run.dir=$(RECHECK)/reverb $(ARGS)
	$(PY) scripts/teacher_logits.py $(RECHECK)/smoothing --weights $(TEACHERS) \
		--out $(RECHECK)/teacher.csv
	$(PY) speech_emotion_recognition/train.py experiment=multi_small logger=csv \
		data.teacher_logits=$(RECHECK)/teacher.csv model.distill_alpha=0.5 \
		hydra.run.dir=$(RECHECK)/distilled $(ARGS)
	$(PY) scripts/default_rule.py $(RECHECK)/smoothing/splits ser-small-multi-v2 \
		smoothing=$(RECHECK)/smoothing/model.safetensors \
		reverb=$(RECHECK)/reverb/model.safetensors \
		distilled=$(RECHECK)/distilled/model.safetensors --out reports/recheck30

# The mid-size model (conf/model/mid.yaml, 2.5 M parameters) on multi_small's recipe, 30 epochs,
# seed 42, the release's split; a release candidate scored beside ser-small-multi-v2 by the
# default rule into reports/mid/. Fixed before the run ended: it becomes the default only when
# the rule picks it and its fit took <= 90 min on the 2-core CPU; a pick on the score by less
# than 0.018 (one seed sd of the score) is level and keeps the smaller, faster model.
MID := logs/multi_mid
mid: data-multi
	$(PY) speech_emotion_recognition/train.py experiment=multi_mid logger=csv \
		hydra.run.dir=$(MID) $(ARGS)
	$(PY) scripts/default_rule.py $(MID)/splits ser-small-multi-v2 \
		mid=$(MID)/model.safetensors --out reports/mid

# Test-time shift (conf/speech shift_seconds): the default release with each window scored once
# and also moved 32, 64 and 128 ms earlier and later (three windows averaged), by the default
# rule's score on validation speakers, into reports/shift/. Fixed before any figure was read (a
# throwaway exploration measured the same settings first): the best setting becomes the default
# only if its score beats scoring once by >= 0.010.
# Then how often 32 ms of shift changes a label, once and shifted (scripts/shift_stability.py).
shift: data-multi
	$(PY) scripts/default_rule.py reports/ser-mid-multi/training/splits ser-mid-multi \
		ser-mid-multi@0.032 ser-mid-multi@0.064 ser-mid-multi@0.128 --out reports/shift
	$(PY) scripts/shift_stability.py ser-mid-multi ser-small-multi-v2 --out reports/shift

# RAVDESS with its 8 emotions over 5 actor folds; URDU (4 emotions) over 5 speaker folds, from
# scratch and fine-tuned from the default release. Summaries in logs/field/<protocol>/.
FOLDS := split=kfold split.fold=0,1,2,3,4
field: data-multi
	$(PY) speech_emotion_recognition/train.py -m experiment=ravdess_small labels=ravdess8 \
		$(FOLDS) hydra.sweep.dir=logs/field/ravdess8 $(ARGS)
	$(PY) speech_emotion_recognition/train.py -m experiment=urdu_small $(FOLDS) \
		hydra.sweep.dir=logs/field/urdu_scratch $(ARGS)
	$(PY) speech_emotion_recognition/train.py -m experiment=urdu_small $(FOLDS) \
		init_from=models/ser-small-ravdess.safetensors freeze.part=encoder freeze.epochs=3 \
		hydra.sweep.dir=logs/field/urdu_finetuned $(ARGS)

serve: data
	$(PY) speech_emotion_recognition/serve.py $(ARGS)

test: data
	$(PY) -m pytest $(ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Regenerate the hash-pinned lock after editing pyproject.toml (names, versions, hashes only).
lock:
	$(UV) pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 --no-header --quiet -o requirements.lock

# The DVC pipeline (dvc.yaml): prepare -> train -> evaluate for experiment=ravdess_small.
repro: data
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/dvc repro
	$(VENV)/bin/dvc metrics show
