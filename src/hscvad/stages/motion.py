"""Rule ``motion``: one motion feature per person sample (one long track within one clip).

Samples are the persons that got a skeleton in the ``pose`` stage (tracks with more than
``pose.min_track_length`` tracked frames). The feature comes from the ``motion.backend`` of
:mod:`hscvad.models.motion` (offline: the ``skeleton`` descriptor; paper: PoseConv3D, whose
NTU-60 action becomes the sample's ``class_id``). Output layout ``motion``: the ``objects``
layout plus the clip's keypoint sequences, kept for motion augmentation.
"""

from __future__ import annotations

import numpy as np

from ..features import object_samples
from ..h5store import read_arrays, write_store
from ..models.motion import build_motion
from ..models.registry import Runtime
from .common import log

#: the settings this stage's result depends on (the rule's params; see hscvad.settings)
SETTINGS = ("clip_length", "motion.backend", "motion.min_score", "motion.@backend")


def sequences(frame: np.ndarray, track: np.ndarray, kpts: np.ndarray, boxes: np.ndarray, T: int):
    """Scatter pose rows into per-sample clip arrays: (uniq (clip, track), keypoints (S, T, 17, 3),
    boxes (S, T, 4), tracked (S, T))."""
    sample, uniq = object_samples(frame, track, T)
    S = len(uniq)
    t = frame % T
    K = np.zeros((S, T, 17, 3), np.float32)
    B = np.zeros((S, T, 4), np.float32)
    M = np.zeros((S, T), bool)
    K[sample, t] = kpts
    B[sample, t] = boxes
    M[sample, t] = True
    return uniq, K, B, M


def run(tracks: str, pose_file: str, out: str, params: dict, runtime: Runtime | None = None) -> dict:
    cfg = params["motion"]
    model = build_motion(cfg, runtime or Runtime())
    T = int(params["clip_length"])
    tr, attrs = read_arrays(tracks, "tracks")
    pz, pattrs = read_arrays(pose_file, "pose")
    rows = pz["row"]
    uniq, K, B, M = sequences(tr["frame"][rows], tr["track_id"][rows], pz["keypoints"], tr["box"][rows], T)
    S = len(uniq)
    hw = (int(attrs["height"]), int(attrs["width"]))
    if S:
        feat, action = model.embed(K, B, M, hw)
    else:
        feat, action = np.zeros((0, model.dim), np.float32), None
    dim = model.dim
    if S == 0:
        log.warning("%s: no person sample with a skeleton (no person track longer than %s frames)",
                    attrs["video"], pattrs["min_track_length"])
    n_boxes = M.sum(1)
    out_attrs = {"dataset": attrs["dataset"], "split": attrs["split"], "video": attrs["video"],
                 "n_frames": int(attrs["n_frames"]), "clip_length": T, "backend": cfg["backend"], "dim": dim,
                 "motion_model": model.describe(), "action_classes": bool(model.has_classes),
                 "min_score": float(cfg["min_score"]),
                 # class_id indexes these: the detector's classes, or the motion model's actions
                 "class_names": ([f"action_{i}" for i in range(model.n_classes)] if model.has_classes
                                 else attrs["class_names"]),
                 "height": int(attrs["height"]), "width": int(attrs["width"])}
    with write_store(out, "motion", out_attrs) as f:
        f["feature"] = feat.reshape(S, dim)
        f["clip"] = uniq[:, 0].astype(np.int32) if S else np.zeros(0, np.int32)
        f["track_id"] = uniq[:, 1].astype(np.int32) if S else np.zeros(0, np.int32)
        # the predicted action (PoseConv3D), or 0 when the class is assigned when training (k-means)
        f["class_id"] = (action if action is not None else np.zeros(S)).astype(np.int16)
        f["n_boxes"] = n_boxes.astype(np.int32)
        f["box"] = (B.sum(1) / np.maximum(n_boxes, 1)[:, None]).astype(np.float32)
        f["keypoints"] = K
        f["boxes"] = B
        f["tracked"] = M
    log.info("%s/%s: %d person samples with motion features", attrs["split"], attrs["video"], S)
    return {"n_samples": S}


def main(job) -> None:
    run(job.input.tracks, job.input.pose, job.output[0], job.params, job.runtime)
