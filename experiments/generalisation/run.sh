#!/usr/bin/env bash
# Generalisation levers (#42): every arm with each corpus left out, two seeds; then the table.
# `make experiment NAME=generalisation [ARGS="override ..."]`, or this file from the repository
# root; ARMS="base copypaste" runs some arms only; extra arguments are Hydra overrides for every
# run. Finished runs are skipped and stopped ones resume. Protocol: README.md beside it.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
LOGS=${LOGS:-logs/generalisation}
for arm in ${ARMS:-base no_nemo utterance_norm speaker_norm copypaste adversarial antialias}; do
  lever=(); [ "$arm" = base ] || lever=("lever=$arm")
  held_out="cremad ravdess nemo"; [ "$arm" = no_nemo ] && held_out="cremad ravdess"
  for seed in 1 2; do
    for corpus in $held_out; do
      run=$LOGS/$arm/${corpus}_seed$seed
      [ -f "$run/metrics.json" ] && continue
      resume=(); [ -f "$run/checkpoints/last.ckpt" ] && resume=("ckpt_path=$run/checkpoints/last.ckpt")
      $PY speech_emotion_recognition/train.py experiment=screen "${lever[@]}" \
        split.held_out="$corpus" seed="$seed" hydra.run.dir="$run" "${resume[@]}" "$@"
    done
  done
done
$PY experiments/generalisation/calibrate.py "$LOGS" base
if compgen -G "$LOGS/antialias/*/model.safetensors" >/dev/null; then
  $PY experiments/generalisation/stability.py "$LOGS" reports/generalisation
fi
$PY experiments/generalisation/table.py "$LOGS" reports/generalisation
