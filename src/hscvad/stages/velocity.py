"""Rule ``velocity``: one velocity descriptor per object sample (one track within one clip), from
the track's boxes and the optical-flow statistics of rule ``flow``.

The descriptor is documented in :mod:`hscvad.velocity`; speeds are put on a log scale
(``velocity.log_scale_px`` / ``log_scale_rel``) and ``velocity.parts`` selects its groups of
columns. Output layout ``velocity``: the ``objects`` layout (same samples, in the same order, as
the appearance stream) plus the column names.
"""

from __future__ import annotations

import numpy as np

from ..features import sample_boxes_and_classes
from ..h5store import read_arrays, write_store
from ..velocity import GAIT_COLUMNS, column_groups, descriptor_names, log_scale, velocity_descriptor
from .common import log

#: the settings this stage's result depends on (the rule's params; see hscvad.settings)
SETTINGS = ("clip_length", "velocity")

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


def run(tracks: str, flow: str, out: str, params: dict) -> dict:
    T = int(params["clip_length"])
    arr, attrs = read_arrays(tracks, "tracks")
    fl, fattrs = read_arrays(flow, "flow")
    if len(fl["stats"]) != len(arr["frame"]):
        raise ValueError(f"{flow} has {len(fl['stats'])} rows, {tracks} {len(arr['frame'])}: rerun flow")
    bins, edges = int(fattrs["orientation_bins"]), list(fattrs["magnitude_edges"])
    vcfg = params["velocity"]
    sample, uniq, feat, kept = descriptor(arr["frame"], arr["track_id"], arr["box"], fl["stats"], T, bins, edges, vcfg)
    S = len(uniq)
    n_rows, box_mean, sample_cls = sample_boxes_and_classes(sample, S, arr["box"], arr["class_id"])
    out_attrs = {"dataset": attrs["dataset"], "split": attrs["split"], "video": attrs["video"],
                 "n_frames": int(attrs["n_frames"]), "clip_length": T, "backend": f"velocity ({fattrs['flow_model']})",
                 "dim": len(kept), "columns": kept, "column_groups": column_groups(kept),
                 "parts": list(vcfg["parts"]), "gait_columns": list(vcfg.get("gait_columns") or GAIT_COLUMNS),
                 "log_scale_px": float(vcfg["log_scale_px"]),
                 "log_scale_rel": float(vcfg["log_scale_rel"]), "class_names": attrs["class_names"]}
    with write_store(out, "velocity", out_attrs) as f:
        f["feature"] = feat.astype(np.float32)
        f["clip"] = uniq[:, 0].astype(np.int32)
        f["track_id"] = uniq[:, 1].astype(np.int32)
        f["class_id"] = sample_cls.astype(np.int16)
        f["n_boxes"] = n_rows.astype(np.int32)
        f["box"] = box_mean.astype(np.float32)
    log.info("%s/%s: %d velocity samples, %d-d", attrs["split"], attrs["video"], S, len(kept))
    return {"n_samples": S}


def main(job) -> None:
    run(job.input.tracks, job.input.flow, job.output[0], job.params)
