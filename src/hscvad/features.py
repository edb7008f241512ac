"""Joining per-video stage outputs into per-split sample arrays for training and scoring."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .h5store import read_arrays

#: the HDF5 layout (docs/hdf5_layout.md) holding each stream's per-video samples
STREAM_LAYOUT = {"appearance": "objects", "motion": "motion"}


@dataclass
class Samples:
    """Every object sample of one split and stream, with its clip's scene feature."""

    videos: list[str]
    n_frames: np.ndarray  # per video
    feat: np.ndarray  # (S, D)
    scene_feat: np.ndarray  # (S, D_B)
    video: np.ndarray  # (S,) index into videos
    clip: np.ndarray  # (S,)
    cls: np.ndarray  # (S,) object class used by the object-level contrast
    clip_scene_feat: list[np.ndarray]  # per video (C, D_B): every clip, with or without objects
    clip_length: int


def load_samples(object_files: list[str], scene_files: list[str], object_stage: str = "objects") -> Samples:
    if len(object_files) != len(scene_files):
        raise ValueError("object and scene feature files must pair up by video")
    videos, n_frames, feats, sfeats, vids, clips, classes, clip_scene = [], [], [], [], [], [], [], []
    T = None
    dim = None
    for i, (of, sf) in enumerate(zip(object_files, scene_files)):
        obj, oa = read_arrays(of, object_stage)
        sc, sa = read_arrays(sf, "scene")
        if oa["video"] != sa["video"]:
            raise ValueError(f"{of} and {sf} belong to different videos ({oa['video']} vs {sa['video']})")
        if int(oa["n_frames"]) != int(sa["n_frames"]):
            raise ValueError(f"{of} ({oa['n_frames']} frames) and {sf} ({sa['n_frames']} frames) disagree")
        T = int(sa["clip_length"])
        videos.append(oa["video"])
        n_frames.append(int(oa["n_frames"]))
        clip_scene.append(sc["feature"])
        if len(obj["feature"]):
            dim = obj["feature"].shape[1]
            feats.append(obj["feature"])
            sfeats.append(sc["feature"][obj["clip"]])
            vids.append(np.full(len(obj["clip"]), i, np.int32))
            clips.append(obj["clip"].astype(np.int64))
            classes.append(obj["class_id"].astype(np.int64))
        elif "dim" in oa and int(oa["dim"]):
            dim = int(oa["dim"])
    d_b = clip_scene[0].shape[1] if clip_scene else 0

    def cat(parts, shape, dtype):
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(shape, dtype)

    return Samples(
        videos=videos, n_frames=np.array(n_frames, np.int64),
        feat=cat(feats, (0, dim or 0), np.float32), scene_feat=cat(sfeats, (0, d_b), np.float32),
        video=cat(vids, (0,), np.int32), clip=cat(clips, (0,), np.int64), cls=cat(classes, (0,), np.int64),
        clip_scene_feat=clip_scene, clip_length=T or 16,
    )


def scene_labels_for(samples: Samples, scenes_file: str) -> np.ndarray:
    """Scene pseudo-label of each training sample, looked up by (video, clip) in scenes.h5."""
    arr, _ = read_arrays(scenes_file, "scenes")
    names = [v.decode() if isinstance(v, bytes) else str(v) for v in arr["video"]]
    pos = {n: i for i, n in enumerate(names)}
    missing = [v for v in samples.videos if v not in pos]
    if missing:
        raise ValueError(f"{scenes_file}: no scene labels for training video(s) {missing}; rerun scene_labels")
    max_clip = int(arr["clip"].max()) + 1 if len(arr["clip"]) else 1
    table = np.full((len(names), max_clip), -1, np.int64)
    table[arr["video_index"], arr["clip"]] = arr["label"]
    vmap = np.array([pos[v] for v in samples.videos], np.int64)
    labels = table[vmap[samples.video], samples.clip] if len(samples.clip) else np.zeros(0, np.int64)
    if (labels < 0).any():
        raise ValueError(f"{scenes_file}: clips without a scene label; rerun scene_labels")
    return labels
