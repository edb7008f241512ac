"""Rule ``pose``: 17 COCO keypoints per tracked person per frame, output layout ``pose``.

Only persons of tracks with more than ``min_track_length`` tracked frames get a skeleton (the
paper feeds only such tracklets to the motion model).
"""

from __future__ import annotations

import numpy as np

from ..data import build_dataset
from ..h5store import read_arrays, write_store
from ..models.detection import COCO_CLASSES
from ..models.registry import POSE, Runtime
from ..settings import DATASET
from .common import log, progress

#: the settings this stage's result depends on (the rule's params; see hscvad.settings)
SETTINGS = (DATASET, "pose.backend", "pose.min_track_length", "pose.@backend")


def person_rows(track_id: np.ndarray, class_id: np.ndarray, min_track_length: int) -> np.ndarray:
    """Indices of the track rows that get a skeleton: persons of tracks longer than the minimum."""
    person = class_id == COCO_CLASSES.index("person")
    ids, counts = np.unique(track_id[person], return_counts=True)
    long_ids = ids[counts > int(min_track_length)]
    return np.flatnonzero(person & np.isin(track_id, long_ids))


def run(dataset_name: str, dataset_cfg: dict, split: str, video: str, tracks: str, out: str, params: dict,
        runtime: Runtime) -> dict:
    cfg = params["pose"]
    arr, attrs = read_arrays(tracks, "tracks")
    rows = person_rows(arr["track_id"], arr["class_id"], cfg["min_track_length"])
    kpts = np.zeros((len(rows), 17, 3), np.float32)
    if len(rows):
        model = POSE.build(cfg["backend"], cfg.get(cfg["backend"], {}), runtime, "pose")
        frame = arr["frame"][rows]
        order = np.argsort(frame, kind="stable")
        starts = np.searchsorted(frame[order], np.arange(int(attrs["n_frames"]) + 1))
        ds = build_dataset(dataset_name, dataset_cfg)
        bar = progress(len(rows), f"pose {video}", "person")
        needed = np.diff(starts) > 0

        def keep(t):
            return t < len(needed) and bool(needed[t])

        for f_idx, img in enumerate(ds.source(split, video).frames(keep)):
            sel = order[starts[f_idx] : starts[f_idx + 1]]
            if img is not None and len(sel):
                kpts[sel] = model.keypoints(img, arr["box"][rows[sel]])
                bar.update(len(sel))
        bar.close()
    else:
        log.warning("%s/%s: no person track longer than %d frames; writing an empty pose file", split, video,
                    cfg["min_track_length"])
    out_attrs = {"dataset": dataset_name, "split": split, "video": video, "n_frames": int(attrs["n_frames"]),
                 "backend": cfg["backend"], "min_track_length": int(cfg["min_track_length"])}
    with write_store(out, "pose", out_attrs) as f:
        f["row"] = rows.astype(np.int64)
        f["keypoints"] = kpts
    n_tracks = len(np.unique(arr["track_id"][rows])) if len(rows) else 0
    log.info("%s/%s: skeletons for %d person boxes of %d tracks", split, video, len(rows), n_tracks)
    return {"n_persons": int(len(rows)), "n_tracks": n_tracks}


def main(job) -> None:
    w = job.wildcards
    run(w.dataset, job.params["dataset"], w.split, w.video, job.input.tracks, job.output[0], job.params, job.runtime)
