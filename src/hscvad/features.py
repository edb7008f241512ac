"""Joining per-video stage outputs into per-split sample arrays for training and scoring."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .h5store import read_arrays

#: the HDF5 layout (docs/hdf5_layout.md) holding each stream's per-video samples
STREAM_LAYOUT = {"appearance": "objects", "motion": "motion", "velocity": "velocity"}


def object_samples(frame: np.ndarray, track_id: np.ndarray, clip_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Group track rows into object samples (one track within one clip). Returns (sample index per
    row, unique (clip, track) pairs in lexicographic order): every stream built from the same track
    file numbers its samples the same way."""
    keys = np.stack([np.asarray(frame) // int(clip_length), track_id], 1).astype(np.int64)
    uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
    return inverse.reshape(-1), uniq


def sample_boxes_and_classes(sample: np.ndarray, n_samples: int, boxes: np.ndarray, cls: np.ndarray
                             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per object sample: (number of track rows, mean box, majority class of its rows)."""
    S = int(n_samples)
    if S == 0:
        return np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0, np.int64)
    n_rows = np.bincount(sample, minlength=S)
    box_mean = np.stack([np.bincount(sample, boxes[:, j], S) for j in range(4)], 1) / n_rows[:, None]
    pairs, counts = np.unique(np.stack([sample, cls.astype(np.int64)], 1), axis=0, return_counts=True)
    order = np.lexsort((-counts, pairs[:, 0]))
    first = np.unique(pairs[order, 0], return_index=True)[1]
    return n_rows, box_mean, pairs[order[first], 1]


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
    track: np.ndarray  # (S,) track id within its video
    box: np.ndarray  # (S, 4) mean box of the sample
    clip_scene_feat: list[np.ndarray]  # per video (C, D_B): every clip, with or without objects
    clip_length: int


def load_samples(object_files: list[str], scene_files: list[str], object_stage: str = "objects") -> Samples:
    if len(object_files) != len(scene_files):
        raise ValueError("object and scene feature files must pair up by video")
    videos, n_frames, feats, sfeats, vids, clips, classes, clip_scene = [], [], [], [], [], [], [], []
    tracks, boxes = [], []
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
            tracks.append(obj["track_id"].astype(np.int64))
            boxes.append(obj["box"].astype(np.float32))
        elif "dim" in oa and int(oa["dim"]):
            dim = int(oa["dim"])
    d_b = clip_scene[0].shape[1] if clip_scene else 0

    def cat(parts, shape, dtype):
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(shape, dtype)

    return Samples(
        videos=videos, n_frames=np.array(n_frames, np.int64),
        feat=cat(feats, (0, dim or 0), np.float32), scene_feat=cat(sfeats, (0, d_b), np.float32),
        video=cat(vids, (0,), np.int32), clip=cat(clips, (0,), np.int64), cls=cat(classes, (0,), np.int64),
        track=cat(tracks, (0,), np.int64), box=cat(boxes, (0, 4), np.float32),
        clip_scene_feat=clip_scene, clip_length=T or 16,
    )


def assign_scenes(feat: np.ndarray, cents: np.ndarray) -> np.ndarray:
    """Nearest scene centroid by cosine similarity (features and centroids are l2-normalised)."""
    if len(feat) == 0:
        return np.zeros(0, np.int64)
    return (feat @ cents.T).argmax(1).astype(np.int64)


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
