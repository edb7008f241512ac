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
from ..velocity import GAIT_COLUMNS, column_groups, descriptor
from .common import log

#: the settings this stage's result depends on (the rule's params; see hscvad.settings)
SETTINGS = ("clip_length", "velocity")

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
