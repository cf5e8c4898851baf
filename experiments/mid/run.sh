#!/usr/bin/env bash
# The mid-size model on multi_small's recipe, scored by the default rule.
# `make experiment NAME=mid [ARGS="override ..."]`, or this file from the repository root;
# extra arguments are Hydra overrides for every training run. Protocol: README.md beside it.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
RUN=logs/multi_mid
$PY speech_emotion_recognition/train.py experiment=multi_mid logger=csv hydra.run.dir=$RUN "$@"
$PY experiments/default_rule/rule.py $RUN/splits ser-small-multi-v2 mid=$RUN/model.safetensors \
  --out reports/mid
