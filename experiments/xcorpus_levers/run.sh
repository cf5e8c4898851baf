#!/usr/bin/env bash
# URDU in training and corpus-balanced sampling, on the corpora left out.
# `make experiment NAME=xcorpus_levers [ARGS="override ..."]`, or this file from the repository root;
# extra arguments are Hydra overrides for every training run. Protocol: README.md beside it.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
RECIPE=${RECIPE:-multi_mid}
for seed in 42 43; do
  $PY speech_emotion_recognition/train.py -m experiment=$RECIPE data=multi_all \
    split=leave_corpus_out split.held_out=cremad,ravdess trainer.max_epochs=15 seed=$seed \
    hydra.sweep.dir=logs/xcorpus_levers/urdu_seed$seed 'hydra.sweep.subdir=${split.held_out}' "$@"
done
$PY speech_emotion_recognition/train.py -m experiment=$RECIPE split=leave_corpus_out \
  split.held_out=cremad data.balance_corpora=true trainer.max_epochs=15 seed=42,43 \
  hydra.sweep.dir=logs/xcorpus_levers/balanced 'hydra.sweep.subdir=seed${seed}' "$@"
$PY experiments/xcorpus_levers/table.py logs/xcorpus_levers reports/xcorpus_levers
