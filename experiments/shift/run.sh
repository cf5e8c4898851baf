#!/usr/bin/env bash
# The default release with its windows also scored shifted, by the default rule.
# `make experiment NAME=shift [ARGS="override ..."]`, or this file from the repository root;
# extra arguments are Hydra overrides for every training run. Protocol: README.md beside it.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
$PY experiments/default_rule/rule.py reports/ser-mid-multi/training/splits ser-mid-multi \
  ser-mid-multi@0.032 ser-mid-multi@0.064 ser-mid-multi@0.128 --out reports/shift
$PY experiments/shift/stability.py ser-mid-multi ser-small-multi-v2 --out reports/shift
