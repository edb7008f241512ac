#!/usr/bin/env bash
# Run by Snakemake once after creating envs/openmmlab.yaml (docs/paper-models.md).
set -euo pipefail
PIP=("$CONDA_PREFIX/bin/python" -m pip install --quiet)
# mmcv 2.1.0 with compiled ops: no wheel for Python 3.11 on PyPI; use a local one if
# HSCVAD_WHEELS points at a folder holding it, else build it (~20 min on 2 cores).
if [ -n "${HSCVAD_WHEELS:-}" ] && ls "$HSCVAD_WHEELS"/mmcv-2.1.0-*.whl >/dev/null 2>&1; then
  "${PIP[@]}" --no-index --find-links "$HSCVAD_WHEELS" "mmcv==2.1.0"
else
  MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} "${PIP[@]}" --no-build-isolation "mmcv==2.1.0"
fi
"${PIP[@]}" "mmdet==3.3.0" "mmsegmentation==1.2.2" "mmaction2==1.2.0"
"${PIP[@]}" --no-deps "mmpose==1.3.2"     # its dependency chumpy does not build on Python 3.11
"${PIP[@]}" --no-binary xtcocotools --no-build-isolation "xtcocotools==1.14.3"   # wheel built on NumPy 1
"${PIP[@]}" "setuptools<80"                # mmengine imports pkg_resources
