"""Shared helpers: paths to ../shared (tests needing it skip when absent), tiny synthetic media and
datasets, and running the workflow."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

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


_SESSION_CACHE: str | None = None


def pytest_configure(config):
    """Models exported to ONNX at first use (``hscvad.models.onnx_export``) go to a folder of this
    test session, not the user's cache (the user's own when ``$HSCVAD_CACHE`` is set); the session's
    folder (about 100 MB of exported models) is removed when the session ends."""
    global _SESSION_CACHE
    if not os.environ.get("HSCVAD_CACHE"):
        import tempfile

        _SESSION_CACHE = tempfile.mkdtemp(prefix="hscvad-test-cache-")
        os.environ["HSCVAD_CACHE"] = _SESSION_CACHE


def pytest_unconfigure(config):
    global _SESSION_CACHE
    if _SESSION_CACHE is not None:
        shutil.rmtree(_SESSION_CACHE, ignore_errors=True)
        if os.environ.get("HSCVAD_CACHE") == _SESSION_CACHE:
            del os.environ["HSCVAD_CACHE"]
        _SESSION_CACHE = None


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


def assert_same_detections(a, b, *, box_atol: float = 1e-3, box_rtol: float = 1e-5, score_atol: float = 1e-5,
                           cap: int | None = None, what: str = "") -> None:
    """``a`` and ``b`` (Detections) hold the same detections, each (class, box, score) matched one to
    one within the tolerances (a coordinate within ``box_atol + box_rtol * |coordinate|``: random
    weights put boxes hundreds of pixels outside the frame, where float32 rounding differs in the
    third decimal), in whatever order.

    Two passes that compute the same scores along different paths (a batch against a frame alone,
    another thread count, another CPU) differ in the last bits, and detections whose scores tie to
    those bits (one box for several classes, two boxes of equal score) come out in either order:
    order is not what such a comparison checks. With ``cap`` (the detector keeps at most that many),
    a full list may also trade at most two of its lowest detections (within ``score_atol`` of the
    lowest score) for ones tied with them just below the cut."""
    from scipy.optimize import linear_sum_assignment

    assert len(a) == len(b), f"{what}: {len(a)} detections against {len(b)}"
    ok = ((a.classes[:, None] == b.classes[None, :])
          & (np.abs(a.boxes[:, None, :] - b.boxes[None, :, :])
             <= box_atol + box_rtol * np.abs(b.boxes[None, :, :])).all(-1)
          & (np.abs(a.scores[:, None] - b.scores[None, :]) <= score_atol))
    rows, cols = linear_sum_assignment(~ok)  # a largest one-to-one matching among the pairs that agree
    matched = ok[rows, cols]
    left_a = np.setdiff1d(np.arange(len(a)), rows[matched])
    left_b = np.setdiff1d(np.arange(len(b)), cols[matched])
    if len(left_a) == 0:
        return
    at_cut = (cap is not None and len(a) == cap and len(left_a) <= 2
              and (a.scores[left_a] <= a.scores.min() + score_atol).all()
              and (b.scores[left_b] <= b.scores.min() + score_atol).all())
    assert at_cut, (f"{what}: {len(left_a)} of {len(a)} detections have no counterpart; first unmatched: "
                    f"class {a.classes[left_a[0]]} box {a.boxes[left_a[0]].tolist()} "
                    f"score {a.scores[left_a[0]]:.6g}; the other side's unmatched classes "
                    f"{b.classes[left_b].tolist()[:5]}")



# --- running the workflow -------------------------------------------------------------------------

SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile")]
STANDINS = Path(__file__).resolve().parent / "standin_backends.py"


def smk(workdir: Path, cfg: dict | None, *args, check=True, timeout=900, snakefile: Path | None = None,
        env: dict | None = None, cores: int = 2) -> subprocess.CompletedProcess:
    """Snakemake on ``workdir`` with ``cfg`` written to ``workdir/config.yaml`` (given as --configfile;
    None: the file already there), from this checkout's Snakefile or ``snakefile``."""
    path = workdir / "config.yaml"
    if cfg is not None:
        path.write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(snakefile or REPO / "Snakefile"), "-d", str(workdir),
           "--configfile", str(path), "--cores", str(cores), *args]
    r = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, **(env or {})})
    if check and r.returncode != 0:
        raise AssertionError(f"snakemake failed ({r.returncode}):\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}")
    return r


def planned_jobs(output: str) -> dict[str, int]:
    """Job counts from a dry run's 'Job stats' table."""
    jobs = {}
    table = output.split("Job stats:")[-1] if "Job stats:" in output else ""
    for line in table.splitlines():
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if m and m.group(1) != "total":
            jobs[m.group(1)] = int(m.group(2))
    return jobs


def job_gpu(output: str) -> dict[str, set[int]]:
    """The gpu resource each planned job of a dry run asks for, per rule."""
    out: dict[str, set[int]] = {}
    rule = None
    for line in output.splitlines():
        m = re.match(r"^(?:local)?rule (\w+):", line)
        if m:
            rule = m.group(1)
        m = re.search(r"resources: .*", line)
        if m and rule:
            g = re.search(r"gpu=(\d+)", line)
            out.setdefault(rule, set()).add(int(g.group(1)) if g else 0)
    return out


def copy_run(src: Path, dest: Path) -> Path:
    """A finished run's folder (results and Snakemake's metadata) copied with its modification
    times, for a test to change without touching ``src``."""
    shutil.copytree(src, dest, symlinks=True)
    return dest


WORKFLOW_FILES = ("Snakefile", "rules", "scripts", "src", "schemas", "profiles", "report", "envs", "config.yaml")


def clone_workflow(dest: Path) -> Path:
    """The workflow's files copied as a fresh clone has them: the same contents, new modification
    times. Returns the clone's Snakefile."""
    dest.mkdir(parents=True)
    for name in WORKFLOW_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, copy_function=shutil.copy,
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy(src, dest / name)
    return dest / "Snakefile"


def synthetic_dataset(root: Path, n_train: int = 2, n_test: int = 2, n_frames: int = 48, hw=(48, 64)) -> dict:
    """A dataset in the `folder` layout (``train/<video>/NNN.png``, ``test/<video>/NNN.png``,
    ``labels/<video>.npy``): one bright square walking across a dark, noisy street at 1 px/frame;
    in the second half of each test video a second, white square races through at 3 px/frame (abnormal)."""
    import cv2

    rng = np.random.default_rng(0)
    h, w = hw
    for split, n in (("train", n_train), ("test", n_test)):
        for v in range(n):
            folder = root / split / f"{split[:2]}{v}"
            folder.mkdir(parents=True)
            labels = np.zeros(n_frames, np.int64)
            for t in range(n_frames):
                img = np.full((h, w, 3), 40, np.uint8) + rng.integers(0, 12, (h, w, 3), dtype=np.uint8)
                x = (4 + v * 7 + t) % (w - 10)
                img[8:24, x : x + 6] = (200, 190, 60)
                if split == "test" and t >= n_frames // 2:
                    xf = (3 * (t - n_frames // 2)) % (w - 8)
                    img[30:44, xf : xf + 8] = (230, 230, 230)
                    labels[t] = 1
                cv2.imwrite(str(folder / f"{t:03d}.png"), img)
            if split == "test":
                (root / "labels").mkdir(exist_ok=True)
                np.save(root / "labels" / f"{folder.name}.npy", labels)
    return {"adapter": "folder", "root": str(root), "streams": ["appearance", "velocity"],
            "evaluation": {"reference": {"window": 9, "sigma": 2}, "strict": {"sigma": 2}}}


def synthetic_config(workdir: Path) -> dict:
    """The shipped configuration (defaults filled in) on :func:`synthetic_dataset` in
    ``workdir/data`` (a path relative to the working folder, so a copied run reads its own copy),
    with the stand-in backends of ``standin_backends.py`` and a small, short HSC training."""
    from hscvad.config import load_config

    cfg = load_config()
    cfg["datasets"] = {"syn": {**synthetic_dataset(workdir / "data"), "root": "data"}}
    cfg["clip_length"] = 8
    cfg["detection"].update(backend="standin_bright", classes=["person"])
    cfg["appearance"].update(backend="standin_mean_colour", crops_per_sample=2)
    cfg["scene"].update(backend="standin_brightness", foreground_classes=["bright"], frame_stride=2)
    cfg["scene_labels"].update(tsne=False, eps=0.5, min_samples=2)
    cfg["hsc"].update(epochs=6, batch_size=16, lr=0.001)
    for stream in ("appearance", "velocity"):
        cfg["hsc"]["architecture"][stream].update(encoder_hidden=[32], latent=16, decoder_hidden=[32])
    return cfg


#: the environment of a run with the stand-in backends
STANDIN_ENV = {"HSCVAD_PLUGINS": str(STANDINS)}


# --- the real Ped2 data and offline models ---------------------------------------------------------

#: what the real-data workflow tests need
REAL = need_shared(PED2 / "training" / "frames", PED2 / "testing" / "UCSDped2.m", PED2 / "testing" / "pixel_masks",
                   MODELS / "yolox_nano_416x416.onnx", MODELS / "deeplabv3_mobilenetv2_voc_257.onnx")


def base_config(tmp: Path, **datasets) -> dict:
    """The shipped configuration (defaults filled in) with ``datasets`` and the offline models of ../shared."""
    from hscvad.config import load_config as _load_config

    cfg = _load_config()
    cfg["datasets"] = datasets
    for section, backend in (("detection", "yolox"), ("detection", "picodet"), ("appearance", "reid"),
                             ("scene", "deeplabv3_voc")):
        cfg[section][backend]["weights"] = str(MODELS / Path(cfg[section][backend]["weights"]).name)
    return cfg


