#!/usr/bin/env bash
# Smoothing, reverb and distillation at the release's 30 epochs, by the default rule.
# `make experiment NAME=recheck30 [ARGS="override ..."]`, or this file from the repository root;
# extra arguments are Hydra overrides for every training run. Protocol: README.md beside it.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
RUNS=logs/recheck30
$PY speech_emotion_recognition/train.py experiment=multi_small logger=csv \
  model.label_smoothing=0.1 hydra.run.dir=$RUNS/smoothing "$@"
$PY speech_emotion_recognition/train.py experiment=multi_small logger=csv \
  model.batch_augment.reverb_p=0.3 hydra.run.dir=$RUNS/reverb "$@"
$PY experiments/recheck30/teacher_logits.py $RUNS/smoothing --weights \
  models/ser-small-multi.safetensors models/ser-small-multi-v2.safetensors \
  $RUNS/smoothing/model.safetensors --out $RUNS/teacher.csv
$PY speech_emotion_recognition/train.py experiment=multi_small logger=csv \
  data.teacher_logits=$RUNS/teacher.csv model.distill_alpha=0.5 hydra.run.dir=$RUNS/distilled "$@"
$PY experiments/default_rule/rule.py $RUNS/smoothing/splits ser-small-multi-v2 \
  smoothing=$RUNS/smoothing/model.safetensors reverb=$RUNS/reverb/model.safetensors \
  distilled=$RUNS/distilled/model.safetensors --out reports/recheck30
