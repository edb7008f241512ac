#!/usr/bin/env bash
# The GPU check of the paper's backends: one command, on a machine with CUDA and the
# OpenMMLab stack (bash scripts/setup.sh --openmmlab). Prints frames/s per stage and combined.
#   bash bench/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
"$PY" -c 'import torch; assert torch.cuda.is_available(), "no CUDA device"; print(torch.cuda.get_device_name(0))'
"$PY" bench/openmmlab_backends.py --device cuda --threads 8 --repeat 10 "$@"
