#!/usr/bin/env bash
# Confirmation of the kept arms (#42): the default's recipe (experiment=multi_mid) at 15 epochs
# with LEVERS, each corpus left out, two seeds; each seed's summary into
# reports/$RELEASE/cv/xcorpus_seed<seed>/, the release card's left-out table. Stopped runs resume.
#   LEVERS="[utterance_norm,copypaste]" RELEASE=ser-mid-multi-nemo experiments/generalisation/confirm.sh
# HELD_OUT="cremad ravdess" where no_nemo was kept; extra arguments are Hydra overrides.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
LOGS=${LOGS:-logs/generalisation}/confirm
: "${LEVERS:?the kept arms as a Hydra list: LEVERS='[a,b]', or '[]'}"
: "${RELEASE:?the release the runs are for: RELEASE=NAME}"
for seed in 1 2; do
  for corpus in ${HELD_OUT:-cremad ravdess nemo}; do
    run=$LOGS/seed$seed/$corpus
    [ -f "$run/metrics.json" ] && continue
    resume=(); [ -f "$run/checkpoints/last.ckpt" ] && resume=("ckpt_path=$run/checkpoints/last.ckpt")
    $PY speech_emotion_recognition/train.py experiment=multi_mid data=multi_nemo_urdu \
      split=leave_corpus_out split.held_out="$corpus" trainer.max_epochs=15 "lever=$LEVERS" \
      logger=csv seed="$seed" hydra.run.dir="$run" "${resume[@]}" "$@"
  done
  $PY speech_emotion_recognition/training/summary.py "$LOGS/seed$seed" \
    "reports/$RELEASE/cv/xcorpus_seed$seed"
done
