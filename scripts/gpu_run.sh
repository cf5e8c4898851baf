#!/usr/bin/env bash
# The GPU run of the full model, in two device calls on one warm machine (issue 15):
#   scripts/gpu_run.sh bench          carry .gpu/base: installs, prints GPU and versions, then the
#                                     training-throughput table (scripts/train_throughput.py)
#   scripts/gpu_run.sh train [ARGS]   carry .gpu/tess: trains experiment=multi_full in bf16 for
#                                     the epochs that fit TRAIN_SECONDS, packs the results
# Inputs come from `python scripts/gpu_stage.py` in $GPU_STAGE (default .gpu). Everything that
# comes back is written to $OUT (the device tool's folder; outputs/gpu elsewhere), each file
# under 16 MiB.
# Dry run on a CPU: DRY_RUN=1 scripts/gpu_run.sh bench; DRY_RUN=1 scripts/gpu_run.sh train
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:?usage: scripts/gpu_run.sh bench|train [train.py overrides]}
shift
OUT=${OUT:-outputs/gpu}
PY=${PYTHON:-python3}
TRAIN_SECONDS=${TRAIN_SECONDS:-330}
STAGE=$(realpath -m "${GPU_STAGE:-.gpu}")
RUNS=$STAGE/runs
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HYDRA_FULL_ERROR=1
mkdir -p "$OUT" "$RUNS" "$STAGE/data"

# Wheels of what the image lacks; installed once per machine.
if [ -z "${DRY_RUN:-}" ] && [ -d "$STAGE/base/wheels" ] && [ ! -e /tmp/site/.done ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$STAGE"/base/wheels/*.whl
  touch /tmp/site/.done
fi
if [ -z "${DRY_RUN:-}" ] && [ -d /tmp/site ]; then
  export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi

# The corpora that travelled, under one data folder; TESS may come in a later call.
for corpus in base/RAVDESS base/URDU tess/TESS; do
  if [ -d "$STAGE/$corpus" ]; then ln -sfn "../$corpus" "$STAGE/data/$(basename $corpus)"; fi
done
DATA=(paths.data_dir="$STAGE/data")
[ -e "$STAGE/data/TESS" ] || DATA+=(data.corpus.parts.TESS=null)

if [ -n "${DRY_RUN:-}" ]; then
  # The same calls at toy size on the CPU: the small model, one epoch, a few batches.
  MODEL=(model=small data.num_workers=2)
  BENCH=(batch_sizes=[8] steps=2 warmup_steps=1 loader_batches=3 device=cpu)
  TRAIN=(trainer=cpu trainer.precision=bf16-mixed trainer.max_epochs=1
    ++trainer.limit_train_batches=3 ++trainer.limit_val_batches=2 ++trainer.limit_test_batches=2)
else
  MODEL=()
  BENCH=()
  TRAIN=()
fi

case "$MODE" in
bench)
  nvidia-smi || true
  $PY - <<'EOF'
import importlib.metadata as m, torch
print("python", __import__("sys").version.split()[0], "| torch", torch.__version__,
      "| cuda", torch.version.cuda, "|", torch.cuda.get_device_name() if torch.cuda.is_available()
      else "no GPU")
for name in ("torchaudio", "lightning", "torchmetrics", "hydra-core", "omegaconf",
             "audiomentations", "soundfile", "safetensors", "onnx", "onnxruntime", "matplotlib"):
    print(f"  {name} {m.version(name)}")
EOF
  rm -rf "$RUNS/throughput"
  $PY scripts/train_throughput.py data=multi_all data.corpus.parts.CREMA-D=null data.pin_memory=true "${DATA[@]}" "${MODEL[@]}" \
    "${BENCH[@]}" hydra.run.dir="$RUNS/throughput" "$@" 2>&1 | tee "$OUT/throughput.log"
  cp "$RUNS/throughput/throughput.json" "$RUNS/throughput/throughput.md" "$OUT/"
  ;;
train)
  # The fastest feed the benchmark found, and the epochs that fit TRAIN_SECONDS at its speed.
  mapfile -t PLAN < <($PY - "$RUNS/throughput/throughput.json" "$TRAIN_SECONDS" "$STAGE" <<'EOF'
import json, pathlib, sys
path, seconds = pathlib.Path(sys.argv[1]), float(sys.argv[2])
tess = len(list(pathlib.Path(sys.argv[3], "data", "TESS").rglob("*.flac")))
if path.exists():
    bench = json.loads(path.read_text())
    clips = bench["train_clips"] + tess
    # Validation, checkpoints and figures add about a fifth to each epoch.
    epochs = int(seconds / (1.2 * clips / bench["best"]["clips_per_s"]))
    print(max(5, min(150, epochs)))
    for override in bench["best"]["overrides"]:
        print(override)
else:
    print(40)
EOF
  )
  EPOCHS=${PLAN[0]}
  FEED=("${PLAN[@]:1}")
  echo "Training for $EPOCHS epochs with feed overrides: ${FEED[*]:-none}" | tee "$OUT/train.log"
  rm -rf "$RUNS/train"
  start=$(date +%s)
  # max_time stops a slower-than-measured run in time for the test and the packing.
  $PY speech_emotion_recognition/train.py experiment=multi_full logger=csv "${DATA[@]}" \
    "${FEED[@]}" trainer.max_epochs="$EPOCHS" ++trainer.max_time="$(printf "00:00:%02d:%02d" $(((TRAIN_SECONDS + 60) / 60)) $(((TRAIN_SECONDS + 60) % 60)))" \
    "${MODEL[@]}" "${TRAIN[@]}" hydra.run.dir="$RUNS/train" "$@" 2>&1 | tee -a "$OUT/train.log"
  echo "wall seconds: $(($(date +%s) - start))" | tee -a "$OUT/train.log"
  run="$RUNS/train"
  # Weights in parts under 16 MiB (join with `cat model.safetensors.part-* > model.safetensors`).
  split -b 15M "$run/model.safetensors" "$OUT/model.safetensors.part-"
  tar -czf "$OUT/run.tar.gz" -C "$run" metrics.json splits csv .hydra \
    $(cd "$run" && ls *.png 2>/dev/null) -C "$RUNS" throughput
  ls -la "$OUT"
  ;;
*)
  echo "unknown mode $MODE: bench or train" >&2
  exit 2
  ;;
esac
