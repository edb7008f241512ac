"""Rule ``flow``: dense optical flow between consecutive frames, summarised inside every tracked box.

Full flow fields are not kept (a 640x360 video would need 1.8 MB per frame); what the velocity
stream needs is kept per track row: the statistics of :func:`hscvad.velocity.box_flow_stats` of
the flow from the box's frame to the next one (the last frame uses the flow into it). Flow is only
computed for frames that hold a tracked box. Output layout ``flow`` (docs/hdf5_layout.md).
"""

from __future__ import annotations

import numpy as np

from ..data import build_dataset
from ..h5store import read_arrays, write_store
from ..models.registry import FLOW, Runtime
from ..settings import DATASET
from ..velocity import box_flow_stats, flow_stat_names
from .common import log, progress

#: the settings this stage's result depends on (the rule's params; see hscvad.settings)
SETTINGS = (DATASET, "flow.backend", "flow.orientation_bins", "flow.magnitude_edges", "flow.@backend")


def run(dataset_name: str, dataset_cfg: dict, split: str, video: str, tracks: str, out: str, params: dict,
        runtime: Runtime) -> dict:
    cfg = params["flow"]
    bins, edges = int(cfg["orientation_bins"]), [float(e) for e in cfg["magnitude_edges"]]
    arr, attrs = read_arrays(tracks, "tracks")
    frame, boxes = arr["frame"].astype(np.int64), arr["box"]
    n = int(attrs["n_frames"])
    hw = (int(attrs["height"]), int(attrs["width"])) if n else (0, 0)
    names = flow_stat_names(bins, edges)
    stats = np.zeros((len(frame), len(names)), np.float32)
    starts = np.searchsorted(frame, np.arange(n + 1))
    model = FLOW.build(cfg["backend"], cfg.get(cfg["backend"], {}), runtime, "flow")
    n_fields = 0
    if len(frame):
        ds = build_dataset(dataset_name, dataset_cfg)
        bar = progress(n, f"flow {video}", "frame")
        prev = None
        t = -1
        for t, img in enumerate(ds.source(split, video).frames()):
            if img.shape[:2] != hw:
                raise ValueError(f"{split}/{video}: frame {t} is {img.shape[1]}x{img.shape[0]}, the track file "
                                 f"{tracks} says {hw[1]}x{hw[0]}")
            if t >= n:
                raise ValueError(f"{split}/{video}: more frames than the {n} its track file {tracks} holds")
            # rows of frame t-1 take the flow t-1 -> t; the last frame's rows take the flow into it
            todo = [t - 1] if t >= 1 else []
            if t == n - 1 and n >= 2:
                todo.append(t)
            if any(starts[s + 1] > starts[s] for s in todo):
                fl = model.flow(prev, img)
                n_fields += 1
                for s in todo:
                    rows = slice(starts[s], starts[s + 1])
                    stats[rows] = box_flow_stats(fl, boxes[rows], bins, edges)
            prev = img
            bar.update(1)
        bar.close()
        if t + 1 != n:
            raise ValueError(f"{split}/{video}: {t + 1} frames decoded, its track file {tracks} holds {n}: rerun "
                             "detect_track")
        if n == 1:
            log.warning("%s/%s: a single frame, no flow: the velocity of its boxes is 0", split, video)
    out_attrs = {"dataset": dataset_name, "split": split, "video": video, "n_frames": n, "height": hw[0],
                 "width": hw[1], "backend": cfg["backend"], "flow_model": model.describe(), "columns": names,
                 "orientation_bins": bins, "magnitude_edges": edges, "n_flow_fields": n_fields}
    with write_store(out, "flow", out_attrs) as f:
        f["stats"] = stats
    log.info("%s/%s: %d flow fields, %d boxes summarised", split, video, n_fields, len(frame))
    return {"n_flow_fields": n_fields, "n_rows": len(frame)}


def main(job) -> None:
    w = job.wildcards
    run(w.dataset, job.params["dataset"], w.split, w.video, job.input.tracks, job.output[0], job.params, job.runtime)
