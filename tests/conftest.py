"""Shared fixtures: paths to ../shared (tests needing it skip when absent) and tiny synthetic media."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HSCVAD_SHARED", REPO.parent / "shared"))
PED2 = SHARED / "datasets" / "ped2"
MODELS = SHARED / "models"


_SHARED_REASON = "real data/models not present: "


def need_shared(*paths: Path):
    """Skips a test, naming what is missing, when ``paths`` are absent; every test so marked also
    gets the ``shared`` marker (``pytest_collection_modifyitems``), so ``-m shared`` selects them."""
    missing = [str(p) for p in paths if not p.exists()]
    return pytest.mark.skipif(bool(missing), reason=_SHARED_REASON + ", ".join(missing))


def pytest_collection_modifyitems(items):
    for item in items:
        if any(str(m.kwargs.get("reason", "")).startswith(_SHARED_REASON) for m in item.iter_markers("skipif")):
            item.add_marker(pytest.mark.shared)


def write_frames(folder: Path, n: int, hw=(48, 64), suffix=".jpg", start=0, seed=0) -> list[np.ndarray]:
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        img = np.full((*hw, 3), 90, np.uint8)
        img += rng.integers(0, 20, img.shape, dtype=np.uint8)
        x = (4 + 2 * i) % (hw[1] - 12)
        img[10:30, x : x + 10] = (200, 60, 60)
        cv2.imwrite(str(folder / f"{i + start:03d}{suffix}"), img)
        frames.append(img)
    return frames


def write_video(path: Path, n: int, hw=(48, 64), fps=25) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (hw[1], hw[0]))
    for i in range(n):
        img = np.full((*hw, 3), 80, np.uint8)
        x = (4 + 2 * i) % (hw[1] - 12)
        img[10:30, x : x + 10] = (60, 200, 60)
        w.write(img)
    w.release()


def auc_from_csv(path: Path, column: str) -> float:
    """A frame-level micro AUC recomputed from ``frame_scores.csv`` (rows with an empty score are the
    frames the protocol drops): an independent check of what ``auc.json`` reports."""
    import csv

    from sklearn.metrics import roc_auc_score

    with open(path, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r[column] != ""]
    return float(roc_auc_score([int(r["label"]) for r in rows], [float(r[column]) for r in rows]))

