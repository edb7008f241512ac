"""Rule ``appearance``: one appearance feature per object sample (one track within one clip):
:func:`hscvad.appearance.sample_features`. Output layout ``objects`` (docs/hdf5_layout.md).
"""

from __future__ import annotations

import numpy as np

from ..appearance import FEATURE_SETTINGS, sample_features, select_rows
from ..data import build_dataset
from ..features import object_samples, sample_boxes_and_classes
from ..h5store import read_arrays, write_store
from ..models.registry import APPEARANCE, Runtime
from ..settings import DATASET
from .common import log, progress

#: the settings this stage's result depends on (the rule's params; see hscvad.settings)
SETTINGS = (DATASET, *FEATURE_SETTINGS)


def run(dataset_name: str, dataset_cfg: dict, split: str, video: str, tracks: str, out: str, params: dict,
        runtime: Runtime) -> dict:
    cfg = params["appearance"]
    T = int(params["clip_length"])
    arr, attrs = read_arrays(tracks, "tracks")
    frame, tid, boxes, cls = arr["frame"], arr["track_id"], arr["box"], arr["class_id"]
    sample, uniq = object_samples(frame, tid, T)
    S = len(uniq)
    model = None
    if S:
        model = APPEARANCE.build(cfg["backend"], cfg.get(cfg["backend"], {}), runtime, "appearance")
    dim = model.dim if model else 0
    feat, n_crops = np.zeros((S, dim), np.float32), np.zeros(S, np.int64)
    if S:
        ds = build_dataset(dataset_name, dataset_cfg)
        bar = progress(int(select_rows(sample, frame, int(cfg["crops_per_sample"])).sum()), f"appearance {video}",
                       "crop")
        try:
            feat, n_crops = sample_features(
                ds.source(split, video).frames, frame, sample, boxes, S, int(attrs["n_frames"]), model,
                crops_per_sample=int(cfg["crops_per_sample"]), context=float(cfg["context"]),
                batch_size=int(cfg["batch_size"]), on_crops=bar.update)
        except RuntimeError as e:
            raise RuntimeError(f"{tracks}: {e}") from None
        bar.close()

    n_rows, box_mean, sample_cls = sample_boxes_and_classes(sample, S, boxes, cls)
    out_attrs = {
        "dataset": dataset_name, "split": split, "video": video, "n_frames": int(attrs["n_frames"]),
        "clip_length": T, "backend": cfg["backend"], "dim": dim,
        "crops_per_sample": int(cfg["crops_per_sample"]), "class_names": attrs["class_names"],
    }
    with write_store(out, "objects", out_attrs) as f:
        f["feature"] = feat
        f["clip"] = uniq[:, 0].astype(np.int32) if S else np.zeros(0, np.int32)
        f["track_id"] = uniq[:, 1].astype(np.int32) if S else np.zeros(0, np.int32)
        f["class_id"] = sample_cls.astype(np.int16)
        f["n_boxes"] = n_rows.astype(np.int32)
        f["n_crops"] = n_crops.astype(np.int32)
        f["box"] = box_mean.astype(np.float32)
    log.info("%s/%s: %d object samples, %d crops", split, video, S, int(n_crops.sum()))
    return {"n_samples": S, "n_crops": int(n_crops.sum())}


def main(job) -> None:
    w = job.wildcards
    run(w.dataset, job.params["dataset"], w.split, w.video, job.input.tracks, job.output[0], job.params, job.runtime)
