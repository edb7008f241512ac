"""Skeleton-based motion augmentation (docs/method.md §6; HSC supplement section 1).

Keypoint sequences are arrays ``(..., T, 17, C)`` in COCO order with C >= 2 (x, y[, score]); every
function is vectorised over the leading sample axes and the frames.

Spatial: each keypoint of Table 1 is, with probability ``p``, rotated about its parent by an angle
drawn uniformly from its range, and its descendants rotate with it about the same pivot, so bone
lengths are kept. One angle per keypoint and sample holds for all frames of the clip (the limb's
motion is changed consistently). Keypoints are visited parents first, so a descendant rotates
about its parent's new position. Head keypoints 0-4 never move. Angles are in degrees; a positive
angle turns +x towards +y (clockwise on screen, where y points down).

Temporal cutting: each frame is dropped (all its values set to 0) with probability ``p``.
"""

from __future__ import annotations

import numpy as np

#: keypoint -> (parent, descendants, angle range in degrees), supplement Table 1
TABLE1: dict[int, tuple[int, tuple[int, ...], tuple[float, float]]] = {
    5: (3, (7, 9), (-10.0, 10.0)),
    6: (4, (8, 10), (-10.0, 10.0)),
    7: (5, (9,), (-90.0, 90.0)),
    8: (6, (10,), (-90.0, 90.0)),
    9: (7, (), (0.0, 90.0)),
    10: (8, (), (0.0, 90.0)),
    11: (5, (13, 15), (-10.0, 10.0)),
    12: (6, (14, 16), (-10.0, 10.0)),
    13: (11, (15,), (-90.0, 90.0)),
    14: (12, (16,), (-90.0, 90.0)),
    15: (13, (), (-90.0, 0.0)),
    16: (14, (), (-90.0, 0.0)),
}
#: parents before children
ORDER = (5, 6, 11, 12, 7, 8, 13, 14, 9, 10, 15, 16)
HEAD = (0, 1, 2, 3, 4)
VARIANTS = ("spatial", "temporal", "spatial_then_temporal", "temporal_then_spatial")


def rotate(seq: np.ndarray, angles_deg: np.ndarray, apply: np.ndarray) -> np.ndarray:
    """Rotate keypoints as Table 1 says. ``seq`` (S, T, 17, C); ``angles_deg`` and ``apply``
    (S, 17), read at the Table 1 keypoints only. Returns a new array; scores are untouched."""
    out = np.array(seq, dtype=np.float64, copy=True)
    rad = np.deg2rad(angles_deg)
    for k in ORDER:
        parent, desc, _ = TABLE1[k]
        moving = [k, *desc]
        c, s = np.cos(rad[:, k]), np.sin(rad[:, k])
        pivot = out[:, :, parent, None, :2]  # (S, T, 1, 2)
        rel = out[:, :, moving, :2] - pivot  # (S, T, m, 2)
        rx = c[:, None, None] * rel[..., 0] - s[:, None, None] * rel[..., 1]
        ry = s[:, None, None] * rel[..., 0] + c[:, None, None] * rel[..., 1]
        new = pivot + np.stack([rx, ry], -1)
        on = apply[:, k][:, None, None, None]
        out[:, :, moving, :2] = np.where(on, new, out[:, :, moving, :2])
    return out.astype(seq.dtype, copy=False)


def draw_spatial(n: int, rng: np.random.Generator, p: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Angles (n, 17) uniform in each keypoint's range and the (n, 17) mask of keypoints to rotate."""
    angles = np.zeros((n, 17))
    apply = np.zeros((n, 17), bool)
    for k, (_, _, (lo, hi)) in TABLE1.items():
        angles[:, k] = rng.uniform(lo, hi, n)
        apply[:, k] = rng.random(n) < p
    return angles, apply


def spatial(seq: np.ndarray, rng: np.random.Generator, p: float = 0.5) -> np.ndarray:
    angles, apply = draw_spatial(len(seq), rng, p)
    return rotate(seq, angles, apply)


def temporal_cut(seq: np.ndarray, rng: np.random.Generator, p: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Drop each frame with probability ``p``: returns (sequence with dropped frames zeroed,
    (S, T) mask of kept frames)."""
    keep = rng.random(seq.shape[:2]) >= p
    return seq * keep[:, :, None, None], keep


def variants(seq: np.ndarray, rng: np.random.Generator, p_spatial: float = 0.5,
             p_temporal: float = 0.5) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The four variants of every sequence: name -> (sequences, (S, T) kept-frame mask)."""
    ones = np.ones(seq.shape[:2], bool)
    sp = spatial(seq, rng, p_spatial)
    tc, keep_t = temporal_cut(seq, rng, p_temporal)
    sp_tc, keep_st = temporal_cut(sp, rng, p_temporal)
    tc_sp = spatial(tc, rng, p_spatial) * keep_t[:, :, None, None]
    return {"spatial": (sp, ones), "temporal": (tc, keep_t),
            "spatial_then_temporal": (sp_tc, keep_st), "temporal_then_spatial": (tc_sp, keep_t)}


def normalised_error(err: np.ndarray, train_err: np.ndarray) -> np.ndarray:
    """The error scale on which T_norm and T_abn apply: min-max over the training samples' errors
    with robust ends (1st and 99th percentiles), not clipped. Training errors are right-skewed, so
    most of them fall below 0.2, the supplement's strict normality bound."""
    lo, hi = np.percentile(train_err, [1, 99])
    return (np.asarray(err, np.float64) - lo) / max(hi - lo, 1e-12)


def select(norm_err: np.ndarray, t_norm: float = 0.2, t_abn: float = 0.8,
           mode: str = "MA-,+") -> tuple[np.ndarray, np.ndarray]:
    """Keep augmented samples below ``t_norm`` as normal (0) and, for MA-,+, above ``t_abn`` as
    abnormal (1); the rest is discarded. Returns (indices kept, labels)."""
    if mode not in ("MA-", "MA-,+"):
        raise ValueError(f"motion augmentation mode {mode!r}: expected 'MA-' or 'MA-,+'")
    normal = np.flatnonzero(norm_err < t_norm)
    abnormal = np.flatnonzero(norm_err > t_abn) if mode == "MA-,+" else np.zeros(0, np.int64)
    idx = np.concatenate([normal, abnormal])
    return idx, np.concatenate([np.zeros(len(normal), np.int64), np.ones(len(abnormal), np.int64)])
