#!/usr/bin/env bash
# Set up a fresh checkout: a Python 3.11 virtual environment in .venv with the package and its
# pinned dependencies, and (when ../shared exists) links from resources/ to its datasets and models.
# Idempotent: a second run only checks. Needs no network when the packages are cached locally.
set -euo pipefail
cd "$(dirname "$0")/.."
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
  .venv/bin/python -m pip install --quiet "torch==2.13.0"
  .venv/bin/python -m pip install --quiet -e ".[dev]"
  touch .venv/.installed
fi
mkdir -p resources
for d in datasets models; do
  if [ -d ../shared/$d ] && [ ! -e resources/$d ]; then
    ln -s ../../shared/$d resources/$d
    echo "linked resources/$d -> ../shared/$d"
  fi
done
echo "setup done: activate with 'source .venv/bin/activate'"
