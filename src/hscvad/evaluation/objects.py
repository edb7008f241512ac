"""Test objects across streams: one row per test object sample (video, clip, track) with each
stream's score standardised by that stream's training scores (the strict protocol's statistics),
and the fused object score (the mean over the streams that scored the object; Eq. 12 averages
the streams of an object).

A stream's z-score says how unusual the object is *for that stream*, in units of the spread of
unseen normal (leave-one-video-out) training scores, so the streams can be compared: the stream
with the highest z is the one that found the object abnormal. With ``calibration="tail"``
(``evaluation.localisation.calibration``), a score is first mapped to its upper-tail surprise under
the stream's training scores, as both frame protocols do, and z standardises that: the fused object
score then ranks objects on the same scale the frame scores are fused on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from ..h5store import open_store
from .protocols import tail_surprise


@dataclass
class ObjectTable:
    streams: list[str]
    videos: list[str]
    n_frames: np.ndarray
    clip_length: int
    video: np.ndarray  # (O,) index into videos
    clip: np.ndarray  # (O,)
    track: np.ndarray  # (O,)
    box: np.ndarray  # (O, 4) mean box
    cls: np.ndarray  # (O,) class of the first stream that has the object
    raw: np.ndarray  # (O, n_streams) raw score, NaN where the stream has no such sample
    z: np.ndarray  # (O, n_streams) standardised (calibrated when so loaded) score, NaN where absent
    knn: np.ndarray  # (O, n_streams) 1-NN distance (diagnostic), NaN where absent
    fused: np.ndarray  # (O,) mean z over available streams
    train_stats: dict

    def keys(self) -> np.ndarray:
        return object_keys(self.video, self.clip, self.track)

    def responsible(self) -> np.ndarray:
        """Index of the stream with the highest z per object."""
        return np.nanargmax(np.where(np.isnan(self.z), -np.inf, self.z), axis=1)


def object_keys(video, clip, track) -> np.ndarray:
    """One int64 per (video, clip, track): video < 2^20, clip < 2^20, track < 2^23."""
    return (np.asarray(video, np.int64) << 43) | (np.asarray(clip, np.int64) << 23) | np.asarray(track, np.int64)


def find_keys(keys: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each of ``wanted`` is in the sorted unique ``keys`` (:func:`object_keys`), and whether it
    is there at all (where not, its position is a valid index to ignore)."""
    wanted = np.asarray(wanted, np.int64)
    if not len(keys):
        return np.zeros(len(wanted), np.int64), np.zeros(len(wanted), bool)
    pos = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
    return pos, keys[pos] == wanted


def clip_max(scores: np.ndarray, video: np.ndarray, clip: np.ndarray, n_frames: np.ndarray, T: int) -> np.ndarray:
    """Per-frame raw scores over all videos concatenated: max object score of the frame's clip."""
    clips_per_video = -(-np.asarray(n_frames, np.int64) // int(T))
    clip_offset = np.concatenate([[0], np.cumsum(clips_per_video)[:-1]])
    per_clip = np.full(int(clips_per_video.sum()), -np.inf)
    np.maximum.at(per_clip, clip_offset[video] + clip, scores)
    per_clip[np.isinf(per_clip)] = np.nan
    frame_video = np.repeat(np.arange(len(n_frames)), n_frames)
    frame_offset = np.concatenate([[0], np.cumsum(n_frames)[:-1]])
    frame_in_video = np.arange(int(n_frames.sum())) - frame_offset[frame_video]
    return per_clip[clip_offset[frame_video] + frame_in_video // T].astype(np.float32)


def track_mean(scores: np.ndarray, video: np.ndarray, track: np.ndarray, clip: np.ndarray, window: int,
               source: str = "track_mean") -> np.ndarray:
    """Each object sample's score replaced by the mean of its track's samples (same video and track)
    in the clips within ``window`` clips of its own (itself included; a clip the track is absent
    from adds nothing): ``evaluation.track_window``. ``window`` 0 returns the scores unchanged.
    NaN scores stay NaN and are left out of their neighbours' means. ``source`` names the scores in
    errors (a scores file and stream)."""
    scores = np.asarray(scores, np.float64)
    window = int(window)
    if window < 0:
        raise ValueError(f"evaluation.track_window: {window} is negative")
    if window == 0 or not len(scores):
        return scores.copy()
    video, track, clip = (np.asarray(a, np.int64) for a in (video, track, clip))
    # one int64 key per (video, track, clip), ordered by clip within a track; clip + d stays in its track's range
    t_lo, c_span = int(track.min()), int(clip.max()) + 2 * window + 1
    key = (video * (int(track.max()) - t_lo + 1) + (track - t_lo)) * c_span + clip + window
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    if np.any(sorted_key[1:] == sorted_key[:-1]):
        v, t, c = (a[order[1:][sorted_key[1:] == sorted_key[:-1]][0]] for a in (video, track, clip))
        raise ValueError(f"{source}: two samples of track {t} in clip {c} of video {v} (one per track and clip "
                         "expected); rerun score")
    ok = np.isfinite(scores)
    total, count = np.where(ok, scores, 0.0), ok.astype(np.float64)
    for d in (*range(-window, 0), *range(1, window + 1)):
        at = np.minimum(np.searchsorted(sorted_key, key + d), len(key) - 1)
        j = order[at]
        hit = (sorted_key[at] == key + d) & ok[j]
        total[hit] += scores[j[hit]]
        count[hit] += 1.0
    return np.where(ok, total / np.maximum(count, 1.0), np.nan)


def score_stats(x: np.ndarray) -> dict[str, float]:
    """Summary of a stream's training scores (the ``train_stats`` the score stage writes)."""
    x = np.asarray(x)
    q = np.quantile(x, [0.01, 0.5, 0.99]) if len(x) else [np.nan] * 3
    return {"mean": float(x.mean()), "std": float(x.std()), "min": float(x.min()), "max": float(x.max()),
            "p01": float(q[0]), "p50": float(q[1]), "p99": float(q[2]), "n": int(len(x))}


def scores_header(f) -> tuple[list[str], list[str], np.ndarray, int, dict]:
    """(streams, test videos, frames per video, clip length, training score statistics) of an open
    ``scores`` file."""
    streams = [s.decode() if isinstance(s, bytes) else s for s in f.attrs["streams"]]
    videos = [v.decode() for v in f["videos"][()]]
    return streams, videos, f["n_frames"][()], int(f.attrs["clip_length"]), json.loads(f.attrs["train_stats"])


def train_scores(g, scores_file: str, stream: str, track_window: int) -> np.ndarray:
    """A stream's training scores (leave-one-video-out) from its group ``g`` of a ``scores`` file,
    averaged along tracks as the test scores are (``track_window``, :func:`track_mean`)."""
    if "train_score" not in g:
        raise ValueError(f"{scores_file}: stream {stream} has no training scores (train_score); rerun score")
    tr = g["train_score"][()]
    if track_window:
        if "train_track" not in g:
            raise ValueError(f"{scores_file}: stream {stream} has no training identities (train_track) to average "
                             "along tracks with (an older score file); rerun score")
        tr = track_mean(tr, g["train_video"][()], g["train_track"][()], g["train_clip"][()], track_window,
                        f"{scores_file}, stream {stream} (training scores)")
    return tr


def load_objects(scores_file: str, calibration: str = "none", track_window: int = 0) -> ObjectTable:
    """The test objects of a ``scores`` file; ``calibration``: ``none`` (z of the raw score) or
    ``tail`` (z of the tail surprise under the stream's training scores). With ``track_window``
    (``evaluation.track_window``) every score, the training ones that standardise it and the 1-NN
    diagnostic's, is first averaged along its track (:func:`track_mean`)."""
    if calibration not in ("none", "tail"):
        raise ValueError(f"calibration must be none or tail, not {calibration!r}")
    train = {}
    with open_store(scores_file, "scores") as f:
        streams, videos, n_frames, T, stats = scores_header(f)
        per = {}
        for s in streams:
            g = f[s]
            if "test_track" not in g:
                raise ValueError(f"{scores_file}: stream {s} has no per-object identities (an older score file); "
                                 "rerun score")
            per[s] = {k: g[k][()] for k in ("test_video", "test_clip", "test_track", "test_box", "test_class",
                                            "test_score", "test_knn_score")}
            if track_window:
                for k in ("test_score", "test_knn_score"):
                    per[s][k] = track_mean(per[s][k], per[s]["test_video"], per[s]["test_track"], per[s]["test_clip"],
                                           track_window, f"{scores_file}, stream {s}")
            if calibration == "tail" or track_window:
                train[s] = train_scores(g, scores_file, s, track_window)
                if track_window:
                    stats = {**stats, s: score_stats(train[s])}
    keys = {s: object_keys(p["test_video"], p["test_clip"], p["test_track"]) for s, p in per.items()}
    allk = np.unique(np.concatenate(list(keys.values()))) if keys else np.zeros(0, np.int64)
    O, K = len(allk), len(streams)
    raw, z, knn = (np.full((O, K), np.nan) for _ in range(3))
    box = np.zeros((O, 4))
    cls = np.zeros(O, np.int64)
    have = np.zeros(O, bool)
    for j, s in enumerate(streams):
        idx = np.searchsorted(allk, keys[s])
        p, st = per[s], stats[s]
        raw[idx, j] = p["test_score"]
        if calibration == "tail":
            c_tr = tail_surprise(train[s], train[s])
            c_std = float(c_tr.std()) if len(c_tr) else 0.0
            z[idx, j] = (tail_surprise(p["test_score"], train[s]) - (c_tr.mean() if len(c_tr) else 0.0)) / (
                c_std if c_std > 0 else 1.0)
        else:
            z[idx, j] = (p["test_score"] - st["mean"]) / (st["std"] if st["std"] > 0 else 1.0)
        knn[idx, j] = p["test_knn_score"]
        new = ~have[idx]
        box[idx[new]] = p["test_box"][new]
        cls[idx[new]] = p["test_class"][new]
        have[idx] = True
    with np.errstate(invalid="ignore"):
        fused = np.nanmean(z, 1) if O else np.zeros(0)
    return ObjectTable(streams, videos, np.asarray(n_frames), T, (allk >> 43).astype(np.int64),
                       ((allk >> 23) & ((1 << 20) - 1)).astype(np.int64), (allk & ((1 << 23) - 1)).astype(np.int64),
                       box, cls, raw, z, knn, fused, stats)


def row_scores(table: ObjectTable, video_index: int, frame: np.ndarray, track: np.ndarray) -> np.ndarray:
    """The fused object score of each track row (frame, track) of one test video (NaN if unscored)."""
    pos, ok = find_keys(table.keys(), object_keys(video_index, np.asarray(frame) // table.clip_length, track))
    return np.where(ok, table.fused[pos] if ok.any() else np.nan, np.nan)
