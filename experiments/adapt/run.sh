#!/usr/bin/env bash
# adapt=speaker measured on corpora the default release never heard (URDU, nEMO).
# `make experiment NAME=adapt`, or this file from the repository root. Protocol: README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
for data in urdu nemo; do
  case $data in urdu) root=data/URDU ;; nemo) root=data/nEMO/samples ;; esac
  $PY speech_emotion_recognition/inference.py input=$root output=logs/adapt/$data.csv \
    hydra.run.dir=logs/adapt/${data}_run "$@"
done
$PY experiments/adapt/measure.py logs/adapt/urdu.csv urdu logs/adapt/nemo.csv nemo \
  --out reports/adapt
