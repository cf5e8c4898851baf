#!/usr/bin/env bash
# Noise over the clip only against base, 2 seeds, each scored in noise too.
# `make experiment NAME=ablation_noise [ARGS="override ..."]`, or this file from the repository root;
# extra arguments are Hydra overrides for every training run. Protocol: README.md beside it.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
NOISE_VAL=(subset=val "noise.types=[white,pink,babble,recorded]" "noise.snr_db=[10]" precision=bf16)
for seed in 1 2; do for arm in base noise_on_clip noise_on_clip_matched; do
  run=logs/ablation_noise/$arm/seed$seed
  $PY speech_emotion_recognition/train.py experiment=ablation ablation=$arm seed=$seed \
    hydra.run.dir=$run "$@"
  $PY speech_emotion_recognition/evaluate.py ckpt=$run/model.safetensors data=multi_all \
    "data.test_only=[urdu]" manifest_dir=$run/splits "${NOISE_VAL[@]}" hydra.run.dir=$run/noise_val
done; done
$PY experiments/ablation/table.py logs/ablation_noise reports/ablation_noise
