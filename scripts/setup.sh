#!/usr/bin/env bash
# Set up a fresh checkout: a Python 3.11 virtual environment in .venv with the package and its
# pinned dependencies, and (when ../shared exists) links from resources/ to its datasets and models.
# Idempotent: a second run only checks. Needs no network when the packages are cached locally.
#   --openmmlab  also the paper's models (OpenMMLab, timm)
#   --gpu        ONNX Runtime's CUDA build (onnxruntime-gpu) in place of the CPU one, so the offline
#                preset's ONNX models run on the GPU too (their rules then ask for gpu=1)
set -euo pipefail
cd "$(dirname "$0")/.."
OPENMMLAB=0 GPU=0
for arg in "$@"; do
  case "$arg" in
    --openmmlab) OPENMMLAB=1 ;;
    --gpu) GPU=1 ;;
    *) echo "setup.sh: unknown option $arg (--openmmlab, --gpu)" >&2; exit 2 ;;
  esac
done
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 needed, found {sys.version}"'
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if ! .venv/bin/python -c 'import hscvad, snakemake, torch, onnxruntime' >/dev/null 2>&1 \
   || [ pyproject.toml -nt .venv/.installed ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  # torch first: on this kind of machine the CPU build is taken from a local wheel folder;
  # elsewhere pip takes the index's build for the platform (CUDA on Linux x86-64).
  # (only when no torch is there: --openmmlab's 2.14.1 is kept, and installed right away with it)
  if [ "$OPENMMLAB" = 1 ]; then TORCH=("torch==2.14.1" "torchvision==0.29.1"); else TORCH=("torch==2.13.0"); fi
  .venv/bin/python -c 'import torch' >/dev/null 2>&1 || .venv/bin/python -m pip install --quiet "${TORCH[@]}"
  .venv/bin/python -m pip install --quiet -e ".[dev,slurm,lite12]"
  touch .venv/.installed
fi
# --openmmlab: the paper's models (OpenMMLab + timm) in the same venv. torch moves to 2.14.1 with
# torchvision 0.29.1 (the pair whose torchvision imports; on Linux x86-64 a CUDA build). The
# OpenMMLab packages stopped releasing in 2023-2024, hence the steps below (docs/paper-models.md, "The paper's
# models"): mmcv 2.1.0 with its compiled ops has no wheel for Python 3.11 on PyPI (a local one in
# ../shared/wheels is used when present, else it is built from source, ~20 min on 2 cores);
# mmpose 1.3.2 without its dependency chumpy (which does not build on 3.11), and xtcocotools
# rebuilt against NumPy 2.
if [ "$OPENMMLAB" = 1 ] && { ! .venv/bin/python -c 'import mmdet, mmseg, mmpose, mmaction, timm, mmcv.ops' \
     >/dev/null 2>&1 || [ pyproject.toml -nt .venv/.installed-openmmlab ]; }; then
  PIP=(.venv/bin/python -m pip install --quiet)
  "${PIP[@]}" "setuptools<80" wheel ninja cython "torch==2.14.1" "torchvision==0.29.1" "mmengine==0.10.7"
  if ls ../shared/wheels/mmcv-2.1.0-*.whl >/dev/null 2>&1; then
    "${PIP[@]}" --no-index --find-links ../shared/wheels "mmcv==2.1.0"
  else
    MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} "${PIP[@]}" --no-build-isolation "mmcv==2.1.0"
  fi
  "${PIP[@]}" -e ".[dev,slurm,lite12,openmmlab]"
  "${PIP[@]}" --no-deps "mmpose==1.3.2"
  "${PIP[@]}" --no-binary xtcocotools --no-build-isolation "xtcocotools==1.14.3"
  # pkg_resources (mmengine reads package paths with it) left setuptools in 80
  "${PIP[@]}" "setuptools<80"
  touch .venv/.installed-openmmlab
fi
if [ "$GPU" = 1 ] && ! .venv/bin/python -c 'import onnxruntime as o, sys; sys.exit("CUDAExecutionProvider" not in o.get_available_providers())' \
     >/dev/null 2>&1; then
  # one package owns the onnxruntime module: the CPU build goes, the CUDA build (its newest release)
  # is written over whatever it left (a later reinstall of the CPU build is undone the same way)
  .venv/bin/python -m pip uninstall --quiet -y onnxruntime
  .venv/bin/python -m pip install --quiet --force-reinstall --no-deps "onnxruntime-gpu==1.31.1"
fi
mkdir -p resources
for d in datasets models; do
  if [ -d ../shared/$d ] && [ ! -e resources/$d ]; then
    ln -s ../../shared/$d resources/$d
    echo "linked resources/$d -> ../shared/$d"
  fi
done
echo "setup done: activate with 'source .venv/bin/activate'"
