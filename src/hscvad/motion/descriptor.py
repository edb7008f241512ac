"""The offline motion feature: a documented skeleton-sequence descriptor that needs no weights.

Input per object sample (one person track within one clip of T frames): keypoints (T, 17, 3) as
x, y, score in frame pixels, the person's boxes (T, 4) and the frames where the person was tracked.
A keypoint counts in a frame when the person is tracked there, its score is at least ``min_score``
and it lies inside the frame; everything else is missing and left out of every mean (no zero
filling). Positions are normalised by the box: u = (x - box centre x) / box height, likewise v,
which makes the descriptor invariant to where the person stands and how large they appear.
Velocities are differences between consecutive frames where the keypoint counts in both, in box
heights (the clip's mean) per frame.

Layout of the 156-d vector (k = 17 keypoints, COCO order):
  [0:34]    mean (u, v) per keypoint                  pose
  [34:68]   standard deviation of (u, v)              how much each joint moves relative to the body
  [68:85]   fraction of tracked frames the keypoint counts in
  [85:119]  mean velocity (du, dv) per keypoint       direction of motion
  [119:153] mean absolute velocity per keypoint       speed of each joint
  [153:155] mean velocity of the box centre, [155] mean relative change of the box height
"""

from __future__ import annotations

import numpy as np

DIM = 156


def _masked_mean(x: np.ndarray, m: np.ndarray, axis: int) -> np.ndarray:
    n = m.sum(axis)
    return np.where(n > 0, (x * m).sum(axis) / np.maximum(n, 1), 0.0)


def skeleton_descriptor(kpts: np.ndarray, boxes: np.ndarray, tracked: np.ndarray, min_score: float | None = None,
                        frame_hw: tuple[int, int] | None = None) -> np.ndarray:
    """(S, T, 17, 3) keypoints, (S, T, 4) boxes, (S, T) tracked mask -> (S, 156) float32.
    ``min_score`` None: the pipeline's default (``motion.min_score`` in the schema)."""
    if min_score is None:
        from ..config import defaults

        min_score = defaults("motion.min_score")
    kpts = np.asarray(kpts, np.float64)
    boxes = np.asarray(boxes, np.float64)
    tracked = np.asarray(tracked, bool)
    x, y, score = kpts[..., 0], kpts[..., 1], kpts[..., 2]
    ok = tracked[..., None] & (score >= min_score)
    if frame_hw is not None:
        h_img, w_img = frame_hw
        ok &= (x >= 0) & (x < w_img) & (y >= 0) & (y < h_img)
    bh = np.maximum(boxes[..., 3] - boxes[..., 1], 1.0)  # (S, T)
    cx, cy = (boxes[..., 0] + boxes[..., 2]) / 2, (boxes[..., 1] + boxes[..., 3]) / 2
    u = (x - cx[..., None]) / bh[..., None]
    v = (y - cy[..., None]) / bh[..., None]
    okf = ok.astype(np.float64)
    mean_u, mean_v = _masked_mean(u, okf, 1), _masked_mean(v, okf, 1)  # (S, 17)
    std_u = np.sqrt(_masked_mean((u - mean_u[:, None]) ** 2, okf, 1))
    std_v = np.sqrt(_masked_mean((v - mean_v[:, None]) ** 2, okf, 1))
    n_tracked = np.maximum(tracked.sum(1), 1)[:, None]
    visible = ok.sum(1) / n_tracked
    h_mean = _masked_mean(bh, tracked.astype(np.float64), 1)[:, None]  # (S, 1)
    h_mean = np.where(h_mean > 0, h_mean, 1.0)
    pair = (ok[:, 1:] & ok[:, :-1]).astype(np.float64)  # (S, T-1, 17)
    dx = (x[:, 1:] - x[:, :-1]) / h_mean[:, :, None]
    dy = (y[:, 1:] - y[:, :-1]) / h_mean[:, :, None]
    vel = np.concatenate([_masked_mean(dx, pair, 1), _masked_mean(dy, pair, 1)], 1)
    speed = np.concatenate([_masked_mean(np.abs(dx), pair, 1), _masked_mean(np.abs(dy), pair, 1)], 1)
    tpair = (tracked[:, 1:] & tracked[:, :-1]).astype(np.float64)
    box_v = np.stack([_masked_mean((cx[:, 1:] - cx[:, :-1]) / h_mean, tpair, 1),
                      _masked_mean((cy[:, 1:] - cy[:, :-1]) / h_mean, tpair, 1)], 1)
    box_s = _masked_mean((bh[:, 1:] - bh[:, :-1]) / h_mean, tpair, 1)[:, None]
    out = np.concatenate([mean_u, mean_v, std_u, std_v, visible, vel, speed, box_v, box_s], 1)
    assert out.shape[1] == DIM
    return out.astype(np.float32)
