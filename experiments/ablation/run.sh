#!/usr/bin/env bash
# Every generalisation lever on and off, 2 seeds each, then the table.
# `make experiment NAME=ablation [ARGS="override ..."]`, or this file from the repository root;
# extra arguments are Hydra overrides for every training run. Protocol: README.md beside it.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
for arm in base no_background masks mixup smoothing speed reverb balanced; do
  $PY speech_emotion_recognition/train.py -m experiment=ablation ablation=$arm seed=1,2 \
    hydra.sweep.dir=logs/ablation/$arm "$@"
done
$PY experiments/ablation/table.py logs/ablation reports/ablation
