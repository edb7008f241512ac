"""Localisation metrics from scored object boxes, where pixel ground truth exists.

RBDC and TBDC (Ramachandra and Jones, "Street Scene: A new dataset and evaluation protocol for
video anomaly detection", WACV 2020):

- Ground-truth *regions*: per frame, the connected components (8-connectivity) of the anomaly mask,
  as boxes (components under ``min_area`` pixels are dropped). Ground-truth *tracks*: regions of
  consecutive frames linked when their boxes overlap (greedy, highest IoU first); the official
  Street Scene tracks are annotated, UCSD Ped2 and Avenue give masks only, so tracks are derived.
- Detections: every tracked box of every test frame, scored with its object sample's score.
- At a threshold t, a ground-truth region is *detected* when a detection of its frame with score
  >= t overlaps it with IoU >= ``beta`` (0.1); a detection with score >= t that overlaps no region
  of its frame with IoU >= beta is a *false positive*. A track is detected when at least ``alpha``
  (0.1) of its regions are.
- RBDC: the area under (false positives per frame, share of regions detected), TBDC: the same with
  the share of tracks detected, for false-positive rates from 0 to ``max_fpr`` (1), divided by
  ``max_fpr``. The curve starts at (0, 0) and, when every detection is in, stays flat to max_fpr.

Also: object overlap with the annotated anomaly, used for the parse coverage and the object-level
AUCs (see evaluate): the share of an object's box covered by the anomaly mask *of the same frame*,
averaged over the object's frames in its clip. (Not the union of the clip's masks: over a clip of
16 frames a cyclist's masks smear along its path and cover the walkers it passes, who would then
count as abnormal objects.)
"""

from __future__ import annotations

import numpy as np

from .objects import find_keys, object_keys


def mask_regions(masks: np.ndarray, min_area: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(T, H, W) bool masks -> (frame (R,), box (R, 4) x1, y1, x2, y2 exclusive) of every connected
    component with at least ``min_area`` pixels."""
    import cv2

    frames, boxes = [], []
    for t in np.flatnonzero(masks.reshape(len(masks), -1).any(1)):
        n, _, stats, _ = cv2.connectedComponentsWithStats(masks[t].astype(np.uint8), connectivity=8)
        st = stats[1:]
        st = st[st[:, cv2.CC_STAT_AREA] >= min_area]
        if len(st):
            x, y, w, h = (st[:, i].astype(np.float64) for i in range(4))
            boxes.append(np.stack([x, y, x + w, y + h], 1))
            frames.append(np.full(len(st), t, np.int64))
    if not boxes:
        return np.zeros(0, np.int64), np.zeros((0, 4))
    return np.concatenate(frames), np.concatenate(boxes)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def link_tracks(frame: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Track id per region: a region continues the track of an overlapping region of the previous
    frame (highest IoU first, one-to-one), else starts a new one."""
    track = np.full(len(frame), -1, np.int64)
    if len(frame) == 0:
        return track
    order = np.argsort(frame, kind="stable")
    frame, box = frame[order], box[order]
    starts = np.searchsorted(frame, np.unique(frame))
    ends = np.append(starts[1:], len(frame))
    out = np.empty(len(frame), np.int64)
    next_id = 0
    prev = None
    for s, e in zip(starts, ends):  # one step per annotated frame (not per sample)
        ids = np.full(e - s, -1, np.int64)
        if prev is not None and frame[s] == frame[prev[0]] + 1:
            iou = iou_matrix(box[s:e], box[prev[0] : prev[1]])
            while iou.size and iou.max() > 0:
                i, j = np.unravel_index(iou.argmax(), iou.shape)
                ids[i] = out[prev[0] + j]
                iou[i, :], iou[:, j] = 0, 0
        new = ids < 0
        ids[new] = np.arange(next_id, next_id + new.sum())
        next_id += int(new.sum())
        out[s:e] = ids
        prev = (s, e)
    track[order] = out
    return track


def _match(det_frame, det_box, gt_frame, gt_box, beta):
    """Pairs (detection, region) of the same frame with IoU >= beta."""
    di, gi = [], []
    d_order, g_order = np.argsort(det_frame, kind="stable"), np.argsort(gt_frame, kind="stable")
    df, gf = det_frame[d_order], gt_frame[g_order]
    for f in np.intersect1d(df, gf):
        dsel = d_order[np.searchsorted(df, f) : np.searchsorted(df, f, "right")]
        gsel = g_order[np.searchsorted(gf, f) : np.searchsorted(gf, f, "right")]
        ii, jj = np.nonzero(iou_matrix(det_box[dsel], gt_box[gsel]) >= beta)
        di.append(dsel[ii])
        gi.append(gsel[jj])
    if not di:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(di), np.concatenate(gi)


def _curve_auc(fp_per_frame: np.ndarray, rate: np.ndarray, max_fpr: float) -> float:
    x = np.concatenate([[0.0], fp_per_frame])
    y = np.concatenate([[0.0], rate])
    if x[-1] < max_fpr:
        x, y = np.append(x, max_fpr), np.append(y, y[-1])
    cut = np.searchsorted(x, max_fpr, "right")
    if cut < len(x):  # interpolate the curve at max_fpr
        x0, x1, y0 = x[cut - 1], x[cut], y[cut - 1]
        y_end = y0 if x1 == x0 else y0 + (y[cut] - y0) * (max_fpr - x0) / (x1 - x0)
        x, y = np.append(x[:cut], max_fpr), np.append(y[:cut], y_end)
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2) / max_fpr)


def rbdc_tbdc(det_frame: np.ndarray, det_box: np.ndarray, det_score: np.ndarray, gt_frame: np.ndarray,
              gt_box: np.ndarray, gt_track: np.ndarray, n_frames: int, beta: float = 0.1, alpha: float = 0.1,
              max_fpr: float = 1.0) -> dict[str, float | int | None]:
    """RBDC and TBDC over frames indexed globally (frame ids unique across videos)."""
    det_frame, gt_frame = np.asarray(det_frame, np.int64), np.asarray(gt_frame, np.int64)
    det_score = np.asarray(det_score, np.float64)
    if len(gt_frame) == 0:
        return {"rbdc": None, "tbdc": None, "n_regions": 0, "n_tracks": 0}
    di, gi = _match(det_frame, np.asarray(det_box), gt_frame, np.asarray(gt_box), beta)
    # the score at which each region becomes detected: its best matching detection's
    region_score = np.full(len(gt_frame), -np.inf)
    np.maximum.at(region_score, gi, det_score[di])
    is_tp = np.zeros(len(det_frame), bool)
    is_tp[di] = True
    fp_scores = np.sort(det_score[~is_tp])[::-1]
    # a track is detected once ceil(alpha * its regions) of its regions are: the k-th best region score
    _, tr_inv = np.unique(gt_track, return_inverse=True)
    order = np.lexsort((-region_score, tr_inv))
    counts = np.bincount(tr_inv)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    k = np.maximum(np.ceil(alpha * counts).astype(np.int64), 1)
    track_score = region_score[order][first + k - 1]
    thresholds = np.unique(det_score)[::-1]
    fp = np.searchsorted(-fp_scores, -thresholds, "right") / float(n_frames)

    def rate(scores):
        s = np.sort(scores)[::-1]
        return np.searchsorted(-s, -thresholds, "right") / float(len(scores))

    return {"rbdc": _curve_auc(fp, rate(region_score), max_fpr), "tbdc": _curve_auc(fp, rate(track_score), max_fpr),
            "n_regions": int(len(gt_frame)), "n_tracks": int(len(counts)), "beta": beta, "alpha": alpha,
            "max_fp_per_frame": max_fpr}


def frame_box_overlap(masks: np.ndarray, frame: np.ndarray, box: np.ndarray, chunk: int = 32) -> np.ndarray:
    """Share of each box (x1, y1, x2, y2) covered by the anomaly mask of its own frame ``frame``
    (integral images, built only for frames that hold both a mask and a box, ``chunk`` at a time)."""
    T, H, W = masks.shape
    frame = np.asarray(frame, np.int64)
    b = np.asarray(box, np.float64).reshape(-1, 4)
    if len(frame) != len(b):
        raise ValueError(f"{len(frame)} frame indices for {len(b)} boxes")
    if len(frame) and (frame.min() < 0 or frame.max() >= T):
        raise ValueError(f"box frame indices {frame.min()}..{frame.max()} outside the {T} frames of the masks")
    x0 = np.clip(np.floor(b[:, 0]), 0, W).astype(np.int64)
    y0 = np.clip(np.floor(b[:, 1]), 0, H).astype(np.int64)
    x1 = np.clip(np.ceil(b[:, 2]), 0, W).astype(np.int64)
    y1 = np.clip(np.ceil(b[:, 3]), 0, H).astype(np.int64)
    area = np.maximum((x1 - x0) * (y1 - y0), 1)
    out = np.zeros(len(b))
    has_mask = masks.reshape(T, -1).any(1)
    todo = np.unique(frame[has_mask[frame]]) if len(frame) else np.zeros(0, np.int64)
    for lo in range(0, len(todo), chunk):
        fr = todo[lo : lo + chunk]
        S = np.zeros((len(fr), H + 1, W + 1), np.int32)
        S[:, 1:, 1:] = masks[fr].cumsum(1, dtype=np.int32).cumsum(2, dtype=np.int32)
        rows = np.flatnonzero(np.isin(frame, fr))
        k = np.searchsorted(fr, frame[rows])
        inside = (S[k, y1[rows], x1[rows]] - S[k, y0[rows], x1[rows]] - S[k, y1[rows], x0[rows]]
                  + S[k, y0[rows], x0[rows]])
        out[rows] = inside / area[rows]
    return out


def object_mask_overlap(masks: np.ndarray, clip_length: int, frame: np.ndarray, track: np.ndarray, box: np.ndarray,
                        obj_clip: np.ndarray, obj_track: np.ndarray) -> np.ndarray:
    """Per object sample (its clip ``obj_clip`` and track ``obj_track``): the mean over its tracked
    boxes in that clip (rows ``frame``, ``track``, ``box`` of the video's tracks) of the share of
    the box covered by its own frame's anomaly mask (:func:`frame_box_overlap`); 0 for an object
    with no tracked box in its clip."""
    return object_row_mean(frame_box_overlap(masks, frame, box), clip_length, frame, track, obj_clip, obj_track)


def object_row_mean(values: np.ndarray, clip_length: int, frame: np.ndarray, track: np.ndarray,
                    obj_clip: np.ndarray, obj_track: np.ndarray) -> np.ndarray:
    """Per object sample (its clip ``obj_clip`` and track ``obj_track``): the mean of ``values`` (one
    per track row ``frame``, ``track`` of a video) over its rows in that clip; 0 for an object with no
    row (:func:`object_mask_overlap` with ``values`` its boxes' mask shares)."""
    keys, inv = np.unique(object_keys(0, np.asarray(frame, np.int64) // int(clip_length), track), return_inverse=True)
    mean = np.bincount(inv, np.asarray(values, np.float64), len(keys)) / np.maximum(
        np.bincount(inv, minlength=len(keys)), 1)
    at, found = find_keys(keys, object_keys(0, obj_clip, obj_track))
    return np.where(found, mean[at] if len(keys) else 0.0, 0.0)


#: share of a box that must lie inside its frame's anomaly mask for the box to be a region's own
OWN_BOX_INSIDE = 0.5


def own_boxes(inside: np.ndarray, region_frame: np.ndarray, region_box: np.ndarray, frame: np.ndarray,
              box: np.ndarray, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """Which tracked boxes (``frame``, ``box``, each box's share inside its frame's anomaly mask
    ``inside``: :func:`frame_box_overlap`) are an annotated region's own (``region_frame``,
    ``region_box``; :func:`mask_regions`): a box of the region's frame that overlaps it with IoU >=
    ``beta`` and lies at least :data:`OWN_BOX_INSIDE` inside the mask. Returns (per region: has a box
    of its own, per box: is a region's own). A walker beside a rider whose box the rider's mask only
    grazes is not the rider's box: where the rider has no box, the region has none of its own."""
    own = np.asarray(inside) >= OWN_BOX_INSIDE
    region_has = np.zeros(len(region_frame), bool)
    box_is = np.zeros(len(own), bool)
    di, gi = _match(np.asarray(frame, np.int64), np.asarray(box, np.float64).reshape(-1, 4),
                    np.asarray(region_frame, np.int64), np.asarray(region_box, np.float64).reshape(-1, 4), beta)
    region_has[gi[own[di]]] = True
    box_is[di[own[di]]] = True
    return region_has, box_is
