#!/usr/bin/env bash
# nEMO (issue 40): within nEMO by speaker 5-fold, and left out / added across corpora.
# `make experiment NAME=nemo [ARGS="override ..."]`, or this file from the repository root;
# extra arguments are Hydra overrides for every training run. Protocol: README.md beside it.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
$PY speech_emotion_recognition/train.py experiment=multi_mid data=multi_nemo \
  split=leave_corpus_out split.held_out=cremad trainer.max_epochs=15 logger=csv \
  hydra.run.dir=logs/nemo/cremad_out_with_nemo "$@"
$PY speech_emotion_recognition/train.py -m experiment=multi_small data=nemo labels=nemo \
  split=kfold split.fold=0,1,2,3,4 trainer.max_epochs=15 logger=csv \
  hydra.sweep.dir=logs/nemo/nemo_kfold 'hydra.sweep.subdir=fold${split.fold}' "$@"
$PY speech_emotion_recognition/evaluate.py data=nemo subset=all "noise.types=[]" "noise.snr_db=[]" \
  hydra.run.dir=logs/nemo/default_on_nemo
$PY speech_emotion_recognition/train.py experiment=multi_mid data=multi_nemo \
  split=leave_corpus_out split.held_out=nemo trainer.max_epochs=15 logger=csv \
  hydra.run.dir=logs/nemo/nemo_out "$@"
$PY experiments/nemo/table.py logs/nemo reports/nemo
