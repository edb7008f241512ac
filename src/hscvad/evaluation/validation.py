"""Label-free validation: how well a finished run tells synthetic anomalies, made from its own
training tracks, from its held-out normal training samples. No test video and no test label is
read, so the figure may choose between settings (``bench/validation.py`` prints it).

Synthetic anomalies alter how a real training object moves, at the level of the raw inputs of the
velocity stream (its track boxes and the flow statistics inside them), and then go through the
velocity stage's own descriptor, log scale and column choice:

- ``fast``: the object moves ``k`` times as fast (default 2): box centres move k times as far from
  the track's first box, and the flow inside the box is multiplied by k (the flow statistics
  scale exactly, except the share of pixels above the lowest magnitude edge, which is taken from
  the nearest edge: an underestimate);
- ``rush``: ``fast`` at k = 4, an anomaly far beyond anything normal (a vehicle on a walkway);
- ``glide``: the object keeps its track's median box shape and moves ``k`` times as fast (default
  1.5) as one rigid body: the flow inside the box is the box's own velocity on a fixed share of the
  box's pixels (half), zero elsewhere. A caricature of a skater or a rider, built from the same
  description the gait columns were designed from, so it shows whether a configuration *can* see a
  glide, not how often test anomalies glide.

Only moving samples are altered (``bench/validation.py``: track centre speed >= 0.5 px / frame); a
still object moved "twice as fast" stays still. The other streams see the object unchanged (a skater looks like a
walker), so its appearance score is the original sample's. Every sample is scored as the score
stage scores training samples: leave-one-video-out, with the run's read-out temperature.

Appearance anomalies (``bench/appearance_validation.py``) alter the pixels inside an object's box
in every frame its crops are taken from (:func:`alter_box`: ``flip``, upside down; ``recolour``,
tinted red), leaving its context and motion as they are; the appearance stage's own code crops
and embeds them.
"""

from __future__ import annotations

import numpy as np

#: appearance anomalies, made in the frame inside an object's box before it is cropped
#: (``alter_box``): ``flip``, the object upside down; ``recolour``, the same shapes tinted a
#: saturated red (a grey scene's object too: a rotation of the channels would leave grey unchanged)
APPEARANCE_KINDS = ("flip", "recolour")
#: ``recolour``'s gain per RGB channel
TINT = np.array([1.3, 0.45, 0.45])

KINDS = {"fast": 2.0, "glide": 1.5, "rush": 4.0}
#: the alteration each kind applies (``rush``: ``fast`` at 4x, an extreme anomaly like a vehicle)
KIND_BASE = {"fast": "fast", "glide": "glide", "rush": "fast"}
#: share of a gliding object's box its pixels cover
GLIDE_COVERAGE = 0.5


def _track_anchor(frame: np.ndarray, track: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per row, ``values`` of its track's first (lowest-frame) row."""
    order = np.lexsort((frame, track))
    first = np.ones(len(order), bool)
    first[1:] = track[order][1:] != track[order][:-1]
    idx = np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))
    anchor = np.empty_like(values)
    anchor[order] = values[order][idx]
    return anchor


def _track_median(track: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per row, the median of ``values`` over its track (vectorised by sorting within tracks)."""
    uniq, inv = np.unique(track, return_inverse=True)
    order = np.lexsort((values, inv))
    counts = np.bincount(inv, minlength=len(uniq))
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    lo = values[order][start + (counts - 1) // 2]
    hi = values[order][start + counts // 2]
    return ((lo + hi) / 2)[inv]


def _row_velocity(frame: np.ndarray, track: np.ndarray, cx: np.ndarray, cy: np.ndarray):
    """Per row, the centre velocity to the track's next row (the previous one for its last row)."""
    order = np.lexsort((frame, track))
    f, t, x, y = frame[order], track[order], cx[order], cy[order]
    same = t[1:] == t[:-1]
    dt = np.maximum(f[1:] - f[:-1], 1)
    vx_f, vy_f = np.where(same, (x[1:] - x[:-1]) / dt, np.nan), np.where(same, (y[1:] - y[:-1]) / dt, np.nan)
    vx, vy = np.append(vx_f, np.nan), np.append(vy_f, np.nan)
    back = np.isnan(vx) & np.append([False], same)  # last row of a track: take the previous step
    vx[back], vy[back] = vx_f[np.flatnonzero(back) - 1], vy_f[np.flatnonzero(back) - 1]
    vx, vy = np.nan_to_num(vx), np.nan_to_num(vy)
    out_x, out_y = np.empty_like(vx), np.empty_like(vy)
    out_x[order], out_y[order] = vx, vy
    return out_x, out_y


def synthetic_rows(kind: str, frame: np.ndarray, track: np.ndarray, boxes: np.ndarray, stats: np.ndarray,
                   orientation_bins: int, magnitude_edges: list[float], k: float | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """A video's track rows and their flow statistics (:func:`hscvad.velocity.box_flow_stats`
    columns) -> the same rows altered as ``kind`` (``fast``, ``rush`` or ``glide``; ``k`` replaces the
    kind's speed factor), as (boxes, stats)."""
    if kind not in KINDS:
        raise ValueError(f"unknown synthetic anomaly {kind!r}; known: {sorted(KINDS)}")
    k = KINDS[kind] if k is None else float(k)
    kind = KIND_BASE[kind]
    frame, track = np.asarray(frame, np.int64), np.asarray(track, np.int64)
    b = np.asarray(boxes, np.float64)
    st = np.array(stats, np.float64, copy=True)
    B, edges = orientation_bins, np.asarray(magnitude_edges, np.float64)
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    ax, ay = _track_anchor(frame, track, cx), _track_anchor(frame, track, cy)
    nx, ny = ax + k * (cx - ax), ay + k * (cy - ay)
    if kind == "glide":
        w, h = _track_median(track, w), _track_median(track, h)
    out_b = np.stack([nx - w / 2, ny - h / 2, nx + w / 2, ny + h / 2], 1)
    if kind == "fast":
        st[:, 0:3] *= k  # fx, fy, mag
        st[:, 3] *= k * k  # mag2
        st[:, 4 : 4 + B] *= k  # orientation histogram (magnitude-weighted)
        above = np.array(st[:, 4 + B :], copy=True)
        # share faster than e at k x the speed = share faster than e / k now (nearest edge at or below)
        src = np.searchsorted(edges, edges / k, side="right") - 1
        st[:, 4 + B :] = above[:, np.maximum(src, 0)]
        return out_b, st.astype(np.float32)
    vx, vy = _row_velocity(frame, track, nx, ny)
    speed = np.hypot(vx, vy)
    p = GLIDE_COVERAGE
    st[:] = 0.0
    st[:, 0], st[:, 1], st[:, 2], st[:, 3] = p * vx, p * vy, p * speed, p * speed * speed
    ang = np.mod(np.arctan2(-vy, vx), 2 * np.pi)
    bins = np.minimum((ang * B / (2 * np.pi)).astype(np.int64), B - 1)
    st[np.arange(len(st)), 4 + bins] = p * speed
    st[:, 4 + B :] = p * (speed[:, None] > edges[None, :])
    return out_b, st.astype(np.float32)


def alter_box(kind: str, image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """A copy of ``image`` (H, W, 3) with the pixels inside ``box`` (x1, y1, x2, y2; clipped to the
    image, rounded outwards) altered as ``kind`` (:data:`APPEARANCE_KINDS`); every other pixel is
    the input's."""
    if kind not in APPEARANCE_KINDS:
        raise ValueError(f"unknown appearance anomaly {kind!r}; known: {list(APPEARANCE_KINDS)}")
    h, w = image.shape[:2]
    x0, y0 = (int(np.clip(np.floor(c), 0, m)) for c, m in ((box[0], w), (box[1], h)))
    x1, y1 = (int(np.clip(np.ceil(c), 0, m)) for c, m in ((box[2], w), (box[3], h)))
    out = image.copy()
    region = image[y0:y1, x0:x1]
    if kind == "flip":
        out[y0:y1, x0:x1] = region[::-1]
    else:
        out[y0:y1, x0:x1] = np.clip(region * TINT, 0, 255).astype(image.dtype)
    return out


def roc_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """AUC of positives against negatives (scikit-learn's; ties count half); NaN when either side
    is empty."""
    from sklearn.metrics import roc_auc_score

    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    return float(roc_auc_score(np.r_[np.ones(len(pos)), np.zeros(len(neg))], np.r_[pos, neg]))


def clip_auc(fused: np.ndarray, fused_synthetic: np.ndarray, altered: np.ndarray, clip_id: np.ndarray,
             seed: int) -> tuple[float, int]:
    """Clip-level AUC: each clip with an altered sample, once with one of its altered samples (chosen
    with ``seed``) in place of the original, against every clip as it is; a clip scores the highest
    fused score of its samples (Eq. 12 before smoothing). Returns (AUC, positive clips)."""
    uniq, inv = np.unique(clip_id, return_inverse=True)
    C = len(uniq)
    normal = np.full(C, -np.inf)
    np.maximum.at(normal, inv, fused)
    rng = np.random.default_rng(seed)
    cand = np.flatnonzero(altered)
    pick_key = rng.random(len(cand))
    # one altered sample per clip: the one with the lowest random key
    order = np.lexsort((pick_key, inv[cand]))
    first = np.ones(len(order), bool)
    first[1:] = inv[cand][order][1:] != inv[cand][order][:-1]
    chosen = cand[order][first]
    # the clip's max over its other samples, with the chosen one's synthetic score
    others = np.full(C, -np.inf)
    mask = np.ones(len(fused), bool)
    mask[chosen] = False
    np.maximum.at(others, inv[mask], fused[mask])
    pos = np.maximum(others[inv[chosen]], fused_synthetic[chosen])
    return roc_auc(pos, normal), int(len(chosen))


def clip_events(altered: np.ndarray, video: np.ndarray, clip: np.ndarray, n_frames: np.ndarray, clip_length: int,
                seed: int, period: int = 10, event: int = 2, n_kinds: int = 1
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Short anomalies: in each video, ``event`` consecutive clips of every ``period`` hold one
    altered sample each (one of the clip's ``altered`` candidates, chosen with ``seed``); successive
    events take the ``n_kinds`` kinds in turn. Returns (chosen samples, their kind, positive clips
    as indices into all videos' clips concatenated)."""
    T = int(clip_length)
    video, clip = np.asarray(video, np.int64), np.asarray(clip, np.int64)
    n_clips = -(-np.asarray(n_frames, np.int64) // T)
    offset = np.concatenate([[0], np.cumsum(n_clips)[:-1]])
    cid = offset[video] + clip
    event_clip = (clip % period) < event
    cand = np.flatnonzero(np.asarray(altered, bool) & event_clip)
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(len(cand)), cid[cand]))
    first = np.ones(len(order), bool)
    first[1:] = cid[cand][order][1:] != cid[cand][order][:-1]
    chosen = cand[order][first]
    return chosen, (clip[chosen] // period) % max(int(n_kinds), 1), np.unique(cid[chosen])


def track_events(altered: np.ndarray, video: np.ndarray, track: np.ndarray, clip: np.ndarray, n_frames: np.ndarray,
                 clip_length: int, seed: int, share: float = 0.2, gap: int = 2, n_kinds: int = 1,
                 run: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Anomalies of one object that last: whole tracks altered (``run`` None), as a rider is a rider
    for as long as it is in view, or ``run`` consecutive clips of a track (an object that misbehaves
    for a while, normal before and after; the run starts at a seeded random clip of the track).
    In each video, tracks holding an ``altered`` candidate are taken in a seeded random order, each
    kept when its altered clips (first to last) stay ``gap`` clips away from those kept before,
    until the kept spans cover ``share`` of the video's clips; every sample of a kept span is
    altered (successive spans of a video, in time order, take the ``n_kinds`` kinds in turn) and
    every clip of it is positive. Returns (chosen samples, their kind, positive clips as indices
    into all videos' clips concatenated)."""
    T = int(clip_length)
    video, track, clip = (np.asarray(a, np.int64) for a in (video, track, clip))
    n_clips = -(-np.asarray(n_frames, np.int64) // T)
    offset = np.concatenate([[0], np.cumsum(n_clips)[:-1]])
    rng = np.random.default_rng(seed)
    chosen, kinds, positive = [], [], []
    for v in range(len(n_clips)):
        in_v = video == v
        ids = np.unique(track[in_v & np.asarray(altered, bool)])
        lo = {t: int(clip[in_v & (track == t)].min()) for t in ids}
        hi = {t: int(clip[in_v & (track == t)].max()) for t in ids}
        if run is not None:  # a run of `run` clips inside the track's span
            for t in ids:
                start = lo[t] + int(rng.integers(0, max(hi[t] - lo[t] - int(run) + 2, 1)))
                lo[t], hi[t] = start, min(start + int(run) - 1, hi[t])
        taken = np.zeros(int(n_clips[v]) + 2 * gap, bool)  # clips held by kept spans and their gaps, shifted by gap
        kept, covered = [], 0
        for t in ids[rng.permutation(len(ids))]:
            if covered >= share * n_clips[v]:
                break
            if taken[lo[t] : hi[t] + 2 * gap + 1].any():  # the span widened by gap on both sides
                continue
            taken[lo[t] + gap : hi[t] + gap + 1] = True
            kept.append(t)
            covered += hi[t] - lo[t] + 1
        for k, t in enumerate(sorted(kept, key=lambda t: lo[t])):
            rows = np.flatnonzero(in_v & (track == t) & (clip >= lo[t]) & (clip <= hi[t]))
            chosen.append(rows)
            kinds.append(np.full(len(rows), k % max(int(n_kinds), 1)))
            positive.append(offset[v] + np.arange(lo[t], hi[t] + 1))
    cat = lambda parts: np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)  # noqa: E731
    return cat(chosen), cat(kinds), np.unique(cat(positive))


def event_frame_auc(scores: np.ndarray, video: np.ndarray, clip: np.ndarray, n_frames: np.ndarray, clip_length: int,
                    positive: np.ndarray, sigma: float, floor: float | None = None) -> float:
    """Frame-level AUC with the strict protocol's smoothing, from per-sample fused ``scores`` (the
    altered samples' already in place): a frame scores its clip's highest sample score (clips without
    samples ``floor``, default the lowest score), each video is smoothed with a Gaussian of ``sigma``
    frames, and frames of the ``positive`` clips (indices into all videos' clips) are the positives."""
    from .protocols import strict_smooth

    T = int(clip_length)
    n_clips = -(-np.asarray(n_frames, np.int64) // T)
    offset = np.concatenate([[0], np.cumsum(n_clips)[:-1]])
    cid = offset[np.asarray(video, np.int64)] + np.asarray(clip, np.int64)
    per_clip = np.full(int(n_clips.sum()), -np.inf)
    np.maximum.at(per_clip, cid, scores)
    per_clip[np.isinf(per_clip)] = float(np.min(scores)) if floor is None and len(scores) else (floor or 0.0)
    is_pos = np.zeros(len(per_clip), bool)
    is_pos[np.asarray(positive, np.int64)] = True
    out, labels = [], []
    for v, n in enumerate(np.asarray(n_frames, np.int64)):  # one smoothing per video
        c = offset[v] + np.arange(int(n)) // T
        out.append(strict_smooth(per_clip[c], sigma))
        labels.append(is_pos[c])
    s, y = np.concatenate(out), np.concatenate(labels)
    return roc_auc(s[y], s[~y])

