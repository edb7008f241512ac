"""Rule ``detect_track``: detect objects in every frame of one video and track them.

Output layout ``tracks`` (docs/hdf5_layout.md): one row per tracked object per frame.
"""

from __future__ import annotations

import numpy as np

from ..data import build_dataset
from ..h5store import write_store
from ..models.detection import COCO_CLASSES, class_ids
from ..models.registry import DETECTORS, TRACKERS, Runtime
from ..settings import DATASET
from .common import log, progress

#: the settings this stage's result depends on (the rule's params; see hscvad.settings)
SETTINGS = (DATASET, "detection.backend", "detection.classes", "detection.score_threshold", "detection.@backend",
            "tracking.backend", "tracking.@backend")


def detect_frames(detector, frames, batch: int = 1):
    """(frame, detections) in frame order; detectors with ``detect_batch`` get ``batch`` frames
    per forward pass (tracking stays frame by frame)."""
    if batch <= 1 or not hasattr(detector, "detect_batch"):
        for frame in frames:
            yield frame, detector.detect(frame)
        return
    buf = []
    for frame in frames:
        buf.append(frame)
        if len(buf) == batch:
            yield from zip(buf, detector.detect_batch(buf))
            buf = []
    if buf:
        yield from zip(buf, detector.detect_batch(buf))


def run(dataset_name: str, dataset_cfg: dict, split: str, video: str, out: str, params: dict,
        runtime: Runtime) -> dict:
    ds = build_dataset(dataset_name, dataset_cfg)
    source = ds.source(split, video)
    det_cfg, trk_cfg = params["detection"], params["tracking"]
    detector = DETECTORS.build(det_cfg["backend"], det_cfg.get(det_cfg["backend"], {}), runtime, "detection")
    tracker = TRACKERS.build(trk_cfg["backend"], trk_cfg.get(trk_cfg["backend"], {}), runtime, "tracking")
    wanted = class_ids(det_cfg["classes"], "detection.classes")
    min_score = float(det_cfg["score_threshold"])

    rows_frame, rows_id, rows_box, rows_score, rows_cls = [], [], [], [], []
    n_det = 0
    n = 0
    hw = None
    bar = progress(None, f"detect+track {video}", "frame")
    batch = int(getattr(detector, "batch_size", 1))  # frames per forward pass of a detector that batches
    for n, (frame, d) in enumerate(detect_frames(detector, source.frames(), batch), start=1):
        hw = hw or frame.shape[:2]
        d = d.select(np.isin(d.classes, wanted) & (d.scores >= min_score))
        n_det += len(d)
        ids, idx = tracker.update(d)
        if len(ids):
            rows_frame.append(np.full(len(ids), n - 1, np.int32))
            rows_id.append(ids.astype(np.int32))
            rows_box.append(d.boxes[idx])
            rows_score.append(d.scores[idx])
            rows_cls.append(d.classes[idx].astype(np.int16))
        bar.update(1)
    bar.close()

    def cat(parts, shape, dtype):
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(shape, dtype)

    frame_idx = cat(rows_frame, (0,), np.int32)
    if n_det == 0:
        log.warning("%s/%s: no detection in any of its %d frames; writing an empty track file", split, video, n)
    attrs = {
        "dataset": dataset_name, "split": split, "video": video, "n_frames": n,
        "height": hw[0], "width": hw[1], "fps": float(source.fps),
        "detector": detector.describe(), "tracker": tracker.describe(),
        "class_names": list(COCO_CLASSES), "score_threshold": min_score,
    }
    with write_store(out, "tracks", attrs) as f:
        f["frame"] = frame_idx
        f["track_id"] = cat(rows_id, (0,), np.int32)
        f["box"] = cat(rows_box, (0, 4), np.float32)
        f["score"] = cat(rows_score, (0,), np.float32)
        f["class_id"] = cat(rows_cls, (0,), np.int16)
    n_tracks = len(np.unique(np.concatenate(rows_id))) if rows_id else 0
    log.info("%s/%s: %d frames, %d detections kept, %d tracks, %d tracked boxes", split, video, n, n_det,
             n_tracks, len(frame_idx))
    return {"n_frames": n, "n_detections": n_det, "n_tracks": n_tracks, "n_rows": len(frame_idx)}


def main(job) -> None:
    w = job.wildcards
    run(w.dataset, job.params["dataset"], w.split, w.video, job.output[0], job.params, job.runtime)
