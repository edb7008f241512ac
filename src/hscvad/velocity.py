"""The velocity stream's building blocks: optical-flow statistics inside boxes and the per-sample
velocity descriptor (rules ``flow`` and ``velocity``; layouts ``flow`` and ``velocity`` in
docs/hdf5_layout.md).

Per box (one tracked object in one frame), :func:`box_flow_stats` summarises the dense flow from
that frame to the next inside the box, with integral images, so every box of a frame costs four
look-ups per statistic whatever its size. Its columns (``flow_stat_names``), all per-pixel means
over the box:

- ``fx``, ``fy``: mean flow vector (px / frame);
- ``mag``, ``mag2``: mean flow magnitude and mean squared magnitude (px / frame, px^2 / frame^2);
- ``hist_k`` (k < ``orientation_bins``): flow magnitude summed over the pixels whose flow direction
  falls in orientation bin k (bin 0 starts at angle 0 = +x, counter-clockwise in image
  coordinates, i.e. towards -y), divided by the box area: a magnitude-weighted orientation
  histogram in px / frame whose bins sum to ``mag``;
- ``above_e`` (e in ``magnitude_edges``): share of the box's pixels moving faster than e px / frame.

Per object sample (one track within one clip, numbered as every other stream numbers them,
:func:`hscvad.features.object_samples`), :func:`velocity_descriptor` averages the box statistics
over the sample's frames and adds what the track itself says. Columns (``descriptor_names``):

flow, in pixels (what is abnormal in pixels depends on the camera, which the scene-aware encoder
sees through the scene feature):
  ``hist_k`` (B), ``mag``, ``mag_std`` (the pixel spread of magnitude: sqrt(mag2 - mag^2), averaged),
  ``above_e`` (E), ``fx``, ``fy``;
flow, normalised by the box height (scale-free speed: a far cyclist and a near walker differ):
  ``mag_rel`` = mag / h, ``hist_rel_k`` = hist_k / h (B);
track (from the boxes of consecutive tracked frames inside the clip; 0 when the sample has a
single box):
  ``speed`` (centre speed, px / frame), ``speed_rel`` (speed / h), ``vx``, ``vy`` (mean centre
  velocity, px / frame), ``scale_rate`` (mean |d log h| / frame), ``aspect`` (mean w / h);
gait and glide (how the object moves, not how fast: a walker's legs and arms swing against the
body, and its box breathes with the stride; a skater or a rider glides, all of it moving as one):
  ``coherence`` = sum over the sample's boxes of |mean flow vector| / sum of mean flow magnitude,
  in [0, 1]: 1 when every moving pixel moves the same way, lower when parts swing against each
  other (boxes with more motion weigh more; 1 for a sample without motion);
  ``resid_rel``: the flow's spread around the box's own translation, sqrt(mean |f - mean f|^2) / h,
  averaged (box heights / frame; background pixels inside the box add to it for any moving box, so
  it is read together with ``mag_rel``);
  ``aspect_rate``: mean |d (w / h)| per frame between consecutive tracked frames (a stride opens
  and closes the box; a glide keeps its shape);
  ``flow_rate_rel``: mean |d mag_rel| per frame (the inner flow pulses with the gait);
  ``speed_vs_crowd``: ln(speed_rel + s0) minus the mean of the same over the other objects of the
  clip, s0 = 0.01 box heights / frame (0 for an object alone in its clip): faster than the crowd
  around it, whatever the crowd's own pace.
"""

from __future__ import annotations

import numpy as np

from .features import object_samples

#: the gait and glide columns (velocity.parts ``gait``)
GAIT_COLUMNS = ["coherence", "resid_rel", "aspect_rate", "flow_rate_rel", "speed_vs_crowd"]
#: speed floor of ``speed_vs_crowd`` (box heights / frame): slower than this is standing still
CROWD_SPEED_FLOOR = 0.01


def flow_stat_names(orientation_bins: int, magnitude_edges: list[float]) -> list[str]:
    return (["fx", "fy", "mag", "mag2"] + [f"hist_{k}" for k in range(orientation_bins)]
            + [f"above_{e:g}" for e in magnitude_edges])


def box_pixels(boxes: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Boxes (x1, y1, x2, y2) in pixels -> integer pixel ranges [x0, x1) x [y0, y1) inside the
    frame, at least one pixel wide and high."""
    H, W = hw
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    x0 = np.clip(np.floor(b[:, 0]), 0, W - 1).astype(np.int64)
    y0 = np.clip(np.floor(b[:, 1]), 0, H - 1).astype(np.int64)
    x1 = np.clip(np.ceil(b[:, 2]), x0 + 1, W).astype(np.int64)
    y1 = np.clip(np.ceil(b[:, 3]), y0 + 1, H).astype(np.int64)
    return np.stack([x0, y0, x1, y1], 1)


def _pixel_channels(fx: np.ndarray, fy: np.ndarray, orientation_bins: int, magnitude_edges) -> np.ndarray:
    """Per pixel (float32 fx, fy) -> (4 + bins + edges, N) float64 channels: fx, fy, |f|, |f|^2,
    the magnitude in its orientation bin, and one indicator per magnitude edge (each value
    computed in float32, as the statistics are defined)."""
    mag = np.hypot(fx, fy)
    # orientation in image coordinates with y pointing up, so bin 0 = rightwards, bin B/4 = upwards
    ang = np.mod(np.arctan2(-fy, fx), 2 * np.pi)
    b = np.minimum((ang * orientation_bins / (2 * np.pi)).astype(np.int64), orientation_bins - 1)
    edges = np.asarray(magnitude_edges, np.float32)
    chans = np.zeros((4 + orientation_bins + len(edges), len(fx)), np.float64)
    chans[0], chans[1], chans[2], chans[3] = fx, fy, mag, mag * mag
    chans[4 + b, np.arange(len(fx))] = mag
    chans[4 + orientation_bins :] = mag[None, :] > edges[:, None]
    return chans


def box_flow_stats(flow: np.ndarray, boxes: np.ndarray, orientation_bins: int = 8,
                   magnitude_edges: tuple[float, ...] | list[float] = (0.5, 1.0, 2.0, 4.0, 8.0),
                   max_pixels: int = 1 << 19) -> np.ndarray:
    """(H, W, 2) flow and (k, 4) boxes -> (k, len(flow_stat_names)) float32 per-box statistics.

    Only the pixels inside the boxes are read: their indices are generated for all boxes at once
    and each box's channels summed with one ``reduceat`` (in chunks of at most ``max_pixels``
    pixels: 17 float64 channels, ~70 MB), so the cost follows the boxes' area, not the frame's."""
    boxes = np.asarray(boxes).reshape(-1, 4)
    n_cols = 4 + orientation_bins + len(magnitude_edges)
    if len(boxes) == 0:
        return np.zeros((0, n_cols), np.float32)
    H, W = flow.shape[:2]
    p = box_pixels(boxes, (H, W))
    x0, y0, x1, y1 = p.T
    w, area = x1 - x0, (x1 - x0) * (y1 - y0)
    out = np.empty((len(boxes), n_cols), np.float32)
    # chunks of consecutive boxes whose pixels together stay under max_pixels (a box alone may exceed it)
    chunk = np.cumsum(area) // max(int(max_pixels), 1)
    for c in np.unique(chunk):
        sel = np.flatnonzero(chunk == c)
        a = area[sel]
        first = np.cumsum(a) - a
        box_of = np.repeat(np.arange(len(sel)), a)
        off = np.arange(int(a.sum())) - first[box_of]
        yy = y0[sel][box_of] + off // w[sel][box_of]
        xx = x0[sel][box_of] + off % w[sel][box_of]
        f = flow[yy, xx]
        chans = _pixel_channels(f[:, 0].astype(np.float32), f[:, 1].astype(np.float32), orientation_bins,
                                magnitude_edges)
        sums = np.add.reduceat(chans, first, axis=1).T
        out[sel] = sums / a[:, None]
    return out


def descriptor_names(orientation_bins: int, magnitude_edges: list[float]) -> list[str]:
    return ([f"hist_{k}" for k in range(orientation_bins)] + ["mag", "mag_std"]
            + [f"above_{e:g}" for e in magnitude_edges] + ["fx", "fy", "mag_rel"]
            + [f"hist_rel_{k}" for k in range(orientation_bins)]
            + ["speed", "speed_rel", "vx", "vy", "scale_rate", "aspect"] + GAIT_COLUMNS)



def velocity_descriptor(frame: np.ndarray, track_id: np.ndarray, boxes: np.ndarray, stats: np.ndarray,
                        clip_length: int, orientation_bins: int, magnitude_edges: list[float]
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per object sample: (sample index per track row, unique (clip, track), descriptor (S, D)).

    ``frame``, ``track_id``, ``boxes`` are the track file's rows and ``stats`` their
    :func:`box_flow_stats` rows (same order). Fully vectorised over rows and samples."""
    B, E = orientation_bins, len(magnitude_edges)
    D = len(descriptor_names(B, magnitude_edges))
    frame = np.asarray(frame, np.int64)
    if len(frame) == 0:
        return np.zeros(0, np.int64), np.zeros((0, 2), np.int64), np.zeros((0, D), np.float32)
    sample, uniq = object_samples(frame, track_id, clip_length)
    S = len(uniq)
    n = np.bincount(sample, minlength=S).astype(np.float64)

    def mean(x):  # per-sample mean of a per-row quantity (rows, k) or (rows,)
        x = np.asarray(x, np.float64)
        if x.ndim == 1:
            return np.bincount(sample, x, S) / n
        return np.stack([np.bincount(sample, x[:, j], S) for j in range(x.shape[1])], 1) / n[:, None]

    b = np.asarray(boxes, np.float64)
    h = np.maximum(b[:, 3] - b[:, 1], 1.0)
    w = np.maximum(b[:, 2] - b[:, 0], 1.0)
    st = np.asarray(stats, np.float64)
    fx, fy, mag, mag2 = st[:, 0], st[:, 1], st[:, 2], st[:, 3]
    hist = st[:, 4 : 4 + B]
    above = st[:, 4 + B : 4 + B + E]
    mag_std = np.sqrt(np.maximum(mag2 - mag * mag, 0.0))

    # track motion between consecutive tracked frames of the same sample (rows sorted by sample, frame)
    order = np.lexsort((frame, sample))
    so, fo = sample[order], frame[order]
    cx, cy = ((b[:, 0] + b[:, 2]) / 2)[order], ((b[:, 1] + b[:, 3]) / 2)[order]
    lh = np.log(h)[order]
    same = so[1:] == so[:-1]
    dt = np.maximum(fo[1:] - fo[:-1], 1).astype(np.float64)
    vx, vy = (cx[1:] - cx[:-1]) / dt, (cy[1:] - cy[:-1]) / dt
    speed = np.hypot(vx, vy)
    srate = np.abs(lh[1:] - lh[:-1]) / dt
    hs = h[order][1:]
    seg = so[1:][same]
    n_seg = np.maximum(np.bincount(seg, minlength=S), 1).astype(np.float64)

    def seg_mean(x):
        return np.bincount(seg, x[same], S) / n_seg

    # gait and glide: flow coherence and spread around the box's translation, shape and flow pulses
    mean_vec = np.hypot(fx, fy)
    mag_sum = np.bincount(sample, mag, S)
    coherence = np.where(mag_sum > 0, np.bincount(sample, np.minimum(mean_vec, mag), S) / np.maximum(mag_sum, 1e-12),
                         1.0)
    resid = np.sqrt(np.maximum(mag2 - mean_vec * mean_vec, 0.0)) / h
    asp = (w / h)[order]
    mrel = (mag / h)[order]
    aspect_rate = np.abs(asp[1:] - asp[:-1]) / dt
    flow_rate = np.abs(mrel[1:] - mrel[:-1]) / dt
    speed_rel = seg_mean(speed / hs)
    # relative to the other objects of the same clip (uniq[:, 0] is the clip)
    lsp = np.log(speed_rel + CROWD_SPEED_FLOOR)
    clip = uniq[:, 0]
    _, cinv = np.unique(clip, return_inverse=True)
    c_sum, c_n = np.bincount(cinv, lsp), np.bincount(cinv)
    others = c_n[cinv] - 1
    vs_crowd = np.where(others > 0, lsp - (c_sum[cinv] - lsp) / np.maximum(others, 1), 0.0)

    mh = mean(h)
    feat = np.concatenate([
        mean(hist), mean(mag)[:, None], mean(mag_std)[:, None], mean(above), mean(fx)[:, None],
        mean(fy)[:, None], mean(mag / h)[:, None], mean(hist / h[:, None]),
        np.stack([seg_mean(speed), speed_rel, seg_mean(vx), seg_mean(vy), seg_mean(srate),
                  mean(w / h)], 1),
        np.stack([coherence, mean(resid), seg_mean(aspect_rate), seg_mean(flow_rate), vs_crowd], 1),
    ], 1)
    assert feat.shape[1] == D and np.isfinite(mh).all()
    return sample, uniq, feat.astype(np.float32)


#: unit group of each descriptor column (input normalisation ``group`` divides every column of a
#: group by the group's pooled spread, keeping distances within a unit meaningful)
def column_groups(names: list[str]) -> list[str]:
    def group(c):
        if c.startswith("above_"):
            return "share"
        if c in ("speed", "vx", "vy"):
            return "track_px"
        if c in ("speed_rel", "scale_rate", "aspect", "coherence", "aspect_rate", "speed_vs_crowd"):
            return c
        return "flow_rel" if "rel" in c else "flow_px"

    return [group(c) for c in names]


def log_scale(feat: np.ndarray, names: list[str], px: float, rel: float) -> np.ndarray:
    """Speeds on a log scale: sign(x) log(1 + |x| / s), s = ``px`` (px / frame) for pixel columns and
    ``rel`` (box heights / frame) for box-relative columns and the scale rate; shares and the aspect
    stay linear; a scale of 0 leaves its columns linear. Speed differences are relative (1 vs 2
    px/frame matters as much as 4 vs 8), and a box that jumps 50 px in one frame must not outweigh
    every other column."""
    out = np.array(feat, np.float32, copy=True)
    for j, g in enumerate(column_groups(names)):
        if g in ("share", "aspect", "coherence", "speed_vs_crowd"):
            continue
        s = rel if g in ("flow_rel", "speed_rel", "scale_rate", "aspect_rate") else px
        if s > 0:
            out[:, j] = np.sign(out[:, j]) * np.log1p(np.abs(out[:, j]) / s)
    return out


#: descriptor columns of each part (velocity.parts)
PARTS = {
    "flow": lambda c: c.startswith(("hist_", "mag", "above_", "fx", "fy")) and "rel" not in c,
    "flow_rel": lambda c: "rel" in c and not c.startswith("speed") and c not in GAIT_COLUMNS,
    "track": lambda c: c in ("speed", "speed_rel", "vx", "vy", "scale_rate", "aspect"),
    "gait": lambda c: c in GAIT_COLUMNS,
}


def columns(names: list[str], parts: list[str], gait_columns: list[str] | None = None) -> np.ndarray:
    """Which descriptor columns ``parts`` keep (of part ``gait``, only ``gait_columns``; all when None)."""
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise ValueError(f"velocity.parts: unknown part(s) {unknown}; known: {sorted(PARTS)}")
    bad = [c for c in gait_columns or [] if c not in GAIT_COLUMNS]
    if bad:
        raise ValueError(f"velocity.gait_columns: unknown column(s) {bad}; known: {GAIT_COLUMNS}")
    keep = np.array([any(PARTS[p](c) for p in parts) for c in names])
    if gait_columns is not None:
        keep &= np.array([c not in GAIT_COLUMNS or c in gait_columns for c in names])
    return keep


def stream_feature(raw: np.ndarray, names: list[str], vcfg: dict) -> tuple[np.ndarray, list[str]]:
    """The full descriptor (:func:`hscvad.velocity.velocity_descriptor`, columns ``names``) -> the
    stream's feature (log-scaled, ``velocity.parts`` columns) and the kept column names."""
    feat = log_scale(raw, names, float(vcfg["log_scale_px"]), float(vcfg["log_scale_rel"]))
    keep = columns(names, list(vcfg["parts"]), vcfg.get("gait_columns"))
    return feat[:, keep], [c for c, k in zip(names, keep) if k]


def descriptor(frame, track_id, boxes, stats, clip_length: int, orientation_bins: int, magnitude_edges: list[float],
               vcfg: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Track rows and their flow statistics -> (sample per row, unique (clip, track), the stream's
    feature, the kept column names)."""
    sample, uniq, raw = velocity_descriptor(frame, track_id, boxes, stats, clip_length, orientation_bins,
                                            magnitude_edges)
    return (sample, uniq, *stream_feature(raw, descriptor_names(orientation_bins, magnitude_edges), vcfg))
