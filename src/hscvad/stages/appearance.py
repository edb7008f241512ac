"""Rule ``appearance``: one appearance feature per object sample (one track within one clip).

The feature is the mean embedding of up to ``crops_per_sample`` crops of the sample, taken at
evenly spaced tracked frames of the clip. Output layout ``objects`` (docs/hdf5_layout.md).
"""

from __future__ import annotations

import numpy as np

from ..data import build_dataset
from ..features import object_samples, sample_boxes_and_classes
from ..h5store import read_arrays, write_store
from ..models.appearance import crop_boxes
from ..models.registry import APPEARANCE, Runtime
from ..settings import DATASET
from .common import log, progress

#: the settings this stage's result depends on (the rule's params; see hscvad.settings)
SETTINGS = (DATASET, "clip_length", "appearance.backend", "appearance.crops_per_sample", "appearance.context",
            "appearance.batch_size", "appearance.@backend")


def select_rows(sample: np.ndarray, frame: np.ndarray, k: int) -> np.ndarray:
    """Mask of rows picked for cropping: per sample, ``k`` rows at the centres of k equal segments
    of its frames in time order (all rows when it has k or fewer)."""
    order = np.lexsort((frame, sample))
    s_sorted = sample[order]
    counts = np.bincount(sample)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order)) - starts[s_sorted]
    c = counts[sample]
    kk = np.minimum(k, c)
    seg = (rank * kk) // c
    return rank == ((2 * seg + 1) * c) // (2 * kk)


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
    feat_sum = np.zeros((S, dim), np.float64)
    n_crops = np.zeros(S, np.int64)
    if S:
        picked = np.flatnonzero(select_rows(sample, frame, int(cfg["crops_per_sample"])))
        picked = picked[np.argsort(frame[picked], kind="stable")]
        starts = np.searchsorted(frame[picked], np.arange(int(attrs["n_frames"]) + 1))
        ds = build_dataset(dataset_name, dataset_cfg)
        batch_rows: list[np.ndarray] = []
        batch_crops: list[np.ndarray] = []
        pending = 0
        bar = progress(len(picked), f"appearance {video}", "crop")

        def flush():
            nonlocal pending
            rows = np.concatenate(batch_rows)
            emb = model.embed(np.concatenate(batch_crops))
            np.add.at(feat_sum, sample[rows], emb)
            np.add.at(n_crops, sample[rows], 1)
            bar.update(len(rows))
            batch_rows.clear(), batch_crops.clear()
            pending = 0

        needed = np.diff(starts) > 0  # frames holding a picked row: only these are read / converted

        def keep(t):
            return t < len(needed) and bool(needed[t])

        for f_idx, img in enumerate(ds.source(split, video).frames(keep)):
            if img is None:
                continue
            rows = picked[starts[f_idx] : starts[f_idx + 1]]
            batch_rows.append(rows)
            batch_crops.append(crop_boxes(img, boxes[rows], model.input_hw, float(cfg["context"]), model.keep_aspect))
            pending += len(rows)
            if pending >= int(cfg["batch_size"]):
                flush()
        if pending:
            flush()
        bar.close()
        if (n_crops == 0).any():
            raise RuntimeError(f"{tracks}: {int((n_crops == 0).sum())} samples got no crop; the video has fewer "
                               "frames than its track file says")
    feat = (feat_sum / np.maximum(n_crops, 1)[:, None]).astype(np.float32)

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
