#!/usr/bin/env bash
# Generalisation levers (#42): every arm with each corpus left out, two seeds; then the table.
# `make experiment NAME=generalisation [ARGS="override ..."]`, or this file from the repository
# root; ARMS="base copypaste" runs some arms only; extra arguments are Hydra overrides for every
# run. Finished runs are skipped and stopped ones resume. Protocol: README.md beside it.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
LOGS=${LOGS:-logs/generalisation}
# babble's second figure (and base's, to compare): validation accuracy clean and in babble at 0 dB
BABBLE_VAL=(data=multi_nemo_urdu subset=val "noise.types=[babble]" "noise.snr_db=[0]")
for arm in ${ARMS:-base no_nemo utterance_norm speaker_norm copypaste adversarial antialias babble}; do
  lever=(); [ "$arm" = base ] || lever=("lever=$arm")
  held_out="cremad ravdess nemo"; [ "$arm" = no_nemo ] && held_out="cremad ravdess"
  for seed in 1 2; do
    for corpus in $held_out; do
      run=$LOGS/$arm/${corpus}_seed$seed
      if [ ! -f "$run/metrics.json" ]; then
        resume=(); [ -f "$run/checkpoints/last.ckpt" ] && resume=("ckpt_path=$run/checkpoints/last.ckpt")
        $PY speech_emotion_recognition/train.py experiment=screen "${lever[@]}" \
          split.held_out="$corpus" seed="$seed" hydra.run.dir="$run" "${resume[@]}" "$@"
      fi
      if [[ "$arm" =~ ^(base|babble)$ && ! -f "$run/babble_val/metrics.json" ]]; then
        $PY speech_emotion_recognition/evaluate.py ckpt="$run/model.safetensors" \
          manifest_dir="$run/splits" "${BABBLE_VAL[@]}" hydra.run.dir="$run/babble_val"
      fi
    done
  done
done
$PY experiments/generalisation/calibrate.py "$LOGS" base
if compgen -G "$LOGS/antialias/*/model.safetensors" >/dev/null; then
  $PY experiments/generalisation/stability.py "$LOGS" reports/generalisation
fi
$PY experiments/generalisation/table.py "$LOGS" reports/generalisation
