"""Rule ``synthetic_objects``: the yardstick's appearance anomalies. A seeded subset of training object
samples (``validation.samples``) is altered inside its boxes in every frame its crops come from
(:func:`hscvad.evaluation.validation.alter_box`: ``flip``, ``recolour``) and embedded with the
appearance stage's own code and settings (:func:`hscvad.appearance.sample_features`). No test video
is read. Output layout ``synthetic_objects`` (docs/hdf5_layout.md); rule ``validate`` scores them.
"""

from __future__ import annotations

import numpy as np

from ..appearance import FEATURE_SETTINGS, sample_features, select_rows
from ..data import build_dataset
from ..evaluation.validation import APPEARANCE_KINDS, alter_box
from ..features import object_samples
from ..h5store import read_arrays, write_store
from ..models.registry import APPEARANCE, Runtime
from ..settings import DATASET
from .common import log, progress

#: the settings this stage's result depends on (the rule's params; see hscvad.settings)
SETTINGS = (DATASET, *FEATURE_SETTINGS, "seed", "validation.samples")


def choose_samples(n_per_video: np.ndarray, n_samples: int, seed: int) -> np.ndarray:
    """A seeded subset of ``n_samples`` of the training samples (indices into all videos' samples
    concatenated, sorted)."""
    total = int(np.sum(n_per_video))
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(total, size=min(int(n_samples), total), replace=False)).astype(np.int64)


def run(dataset_name: str, dataset_cfg: dict, object_files: list[str], track_files: list[str], out: str,
        params: dict, runtime: Runtime) -> dict:
    cfg = params["appearance"]
    T = int(params["clip_length"])
    heads = [read_arrays(f, "objects") for f in object_files]
    videos = [a["video"] for _, a in heads]
    n_per = np.array([len(o["clip"]) for o, _ in heads], np.int64)
    offsets = np.concatenate([[0], np.cumsum(n_per)])
    chosen = choose_samples(n_per, int(params["validation"]["samples"]), int(params["seed"]))
    dim = int(heads[0][1]["dim"]) if heads else 0
    feats = {k: np.zeros((len(chosen), dim), np.float32) for k in APPEARANCE_KINDS}
    model = (APPEARANCE.build(cfg["backend"], cfg.get(cfg["backend"], {}), runtime, "appearance")
             if len(chosen) else None)
    ds = build_dataset(dataset_name, dataset_cfg)
    plans = []
    for v, (video, tracks) in enumerate(zip(videos, track_files)):
        here = chosen[(chosen >= offsets[v]) & (chosen < offsets[v + 1])]
        if not len(here):
            continue
        tr, ta = read_arrays(tracks, "tracks")
        if ta.get("video", video) != video:
            raise ValueError(f"{tracks}: tracks of video {ta.get('video')}, expected {video}")
        sample, uniq = object_samples(tr["frame"], tr["track_id"], T)
        obj = heads[v][0]
        if len(uniq) != n_per[v] or not (np.array_equal(uniq[:, 0], obj["clip"])
                                         and np.array_equal(uniq[:, 1], obj["track_id"])):
            raise ValueError(f"{tracks} and {object_files[v]} disagree on the video's object samples: rerun appearance")
        mask = np.zeros(len(uniq), bool)
        mask[here - offsets[v]] = True
        plans.append((video, tr, ta, sample, uniq, mask, np.searchsorted(chosen, here)))
    n_rows = sum(int(select_rows(p[3], p[1]["frame"], int(cfg["crops_per_sample"]))[p[5][p[3]]].sum()) for p in plans)
    bar = progress(n_rows * len(APPEARANCE_KINDS), "synthetic objects", "crop")
    for video, tr, ta, sample, uniq, mask, at in plans:
        for kind in APPEARANCE_KINDS:
            f, _ = sample_features(ds.source("train", video).frames, tr["frame"], sample, tr["box"], len(uniq),
                                   int(ta["n_frames"]), model, crops_per_sample=int(cfg["crops_per_sample"]),
                                   context=float(cfg["context"]), batch_size=int(cfg["batch_size"]), embed=mask,
                                   alter=lambda img, box, k=kind: alter_box(k, img, box), on_crops=bar.update)
            feats[kind][at] = f[mask]
    bar.close()
    vid = np.searchsorted(offsets, chosen, side="right") - 1
    local = chosen - offsets[vid]
    attrs = {"dataset": dataset_name, "kinds": list(APPEARANCE_KINDS), "videos": videos, "seed": int(params["seed"]),
             "n_train_samples": int(offsets[-1]), "backend": cfg["backend"], "clip_length": T}
    with write_store(out, "synthetic_objects", attrs) as f:
        f["index"] = chosen
        f["video"] = vid.astype(np.int32)
        f["clip"] = np.array([heads[v][0]["clip"][i] for v, i in zip(vid, local)], np.int32).reshape(-1)
        f["track_id"] = np.array([heads[v][0]["track_id"][i] for v, i in zip(vid, local)], np.int32).reshape(-1)
        for kind in APPEARANCE_KINDS:
            f[f"feature_{kind}"] = feats[kind]
    log.info("synthetic objects: %d of %d training samples altered as %s", len(chosen), int(offsets[-1]),
             ", ".join(APPEARANCE_KINDS))
    return {"n_altered": int(len(chosen))}


def main(job) -> None:
    run(job.wildcards.dataset, job.params["dataset"], list(job.input.objects), list(job.input.tracks),
        job.output[0], job.params, job.runtime)
