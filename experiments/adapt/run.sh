#!/usr/bin/env bash
# adapt=speaker measured on corpora a model never heard: the default release on URDU and nEMO,
# and the nEMO experiment's CREMA-D-left-out run (experiments/nemo/run.sh) on CREMA-D.
# `make experiment NAME=adapt`, or this file from the repository root. Protocol: README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
LEFT_OUT=logs/nemo/cremad_out_with_nemo/model.safetensors
predict() {  # data option, its folder, weights
  $PY speech_emotion_recognition/inference.py input=$2 ckpt=$3 output=logs/adapt/$1.csv \
    hydra.run.dir=logs/adapt/$1_run
}
predict urdu data/URDU models/ser-mid-multi.safetensors
predict nemo data/nEMO/samples models/ser-mid-multi.safetensors
predict cremad data/CREMA-D/AudioWAV $LEFT_OUT
$PY experiments/adapt/measure.py logs/adapt/urdu.csv urdu ser-mid-multi \
  logs/adapt/nemo.csv nemo ser-mid-multi \
  logs/adapt/cremad.csv cremad "CREMA-D left out (RAVDESS + TESS + nEMO, 15 epochs)" \
  --out reports/adapt
