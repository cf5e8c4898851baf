#!/usr/bin/env bash
# The field's protocols: RAVDESS 8 classes 5-fold, URDU from scratch vs fine-tuned.
# `make experiment NAME=field [ARGS="override ..."]`, or this file from the repository root;
# extra arguments are Hydra overrides for every training run. Protocol: README.md beside it.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
FOLDS=(split=kfold split.fold=0,1,2,3,4)
$PY speech_emotion_recognition/train.py -m experiment=ravdess_small labels=ravdess8 "${FOLDS[@]}" \
  hydra.sweep.dir=logs/field/ravdess8 "$@"
$PY speech_emotion_recognition/train.py -m experiment=urdu_small "${FOLDS[@]}" \
  hydra.sweep.dir=logs/field/urdu_scratch "$@"
$PY speech_emotion_recognition/train.py -m experiment=urdu_small "${FOLDS[@]}" \
  init_from=models/ser-small-ravdess.safetensors freeze.part=encoder freeze.epochs=3 \
  hydra.sweep.dir=logs/field/urdu_finetuned "$@"
