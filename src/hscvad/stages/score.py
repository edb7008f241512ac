"""Rule ``score``: object scores (Eqs. 10-11) of every test sample and per-frame raw scores (Eq. 12).

A clip's raw score is its highest object score, given to each of its frames; frames of clips with
no object are NaN here and filled by each evaluation protocol. Training samples are scored too,
so the strict protocol can normalise with training statistics. Output layout ``scores``.
"""

from __future__ import annotations

import json

import numpy as np

from ..features import STREAM_LAYOUT, load_samples
from ..h5store import read_arrays, write_store
from ..hsc.train import load_checkpoint, prepare_features, score_samples
from ..models.registry import Runtime
from .common import log, n_clips
from .scene_labels import assign_scenes


def clip_max(scores: np.ndarray, video: np.ndarray, clip: np.ndarray, n_frames: np.ndarray, T: int) -> np.ndarray:
    """Per-frame raw scores over all videos concatenated: max object score of the frame's clip."""
    clips_per_video = np.array([n_clips(n, T) for n in n_frames], np.int64)
    clip_offset = np.concatenate([[0], np.cumsum(clips_per_video)[:-1]])
    per_clip = np.full(int(clips_per_video.sum()), -np.inf)
    np.maximum.at(per_clip, clip_offset[video] + clip, scores)
    per_clip[np.isinf(per_clip)] = np.nan
    frame_video = np.repeat(np.arange(len(n_frames)), n_frames)
    frame_offset = np.concatenate([[0], np.cumsum(n_frames)[:-1]])
    frame_in_video = np.arange(int(n_frames.sum())) - frame_offset[frame_video]
    return per_clip[clip_offset[frame_video] + frame_in_video // T].astype(np.float32)


def _stats(x: np.ndarray) -> dict[str, float]:
    q = np.quantile(x, [0.01, 0.5, 0.99]) if len(x) else [np.nan] * 3
    return {"mean": float(x.mean()), "std": float(x.std()), "min": float(x.min()), "max": float(x.max()),
            "p01": float(q[0]), "p50": float(q[1]), "p99": float(q[2]), "n": int(len(x))}


def run(model_path: str, streams: dict[str, dict[str, tuple[list[str], list[str]]]], scenes_file: str,
        out: str, params: dict, runtime: Runtime, plot: str | None = None, classifier: str | None = None,
        motion_model: str | None = None) -> dict:
    cfg = params["hsc"]
    tau = float(cfg["tau"])
    models, meta = load_checkpoint(model_path, runtime.device)
    if motion_model is not None:  # MA-: the motion autoencoder retrained with pseudo-normal samples
        models["motion"] = load_checkpoint(motion_model, runtime.device)[0]["motion"]
    scenes, _ = read_arrays(scenes_file, "scenes")
    stats, result = {}, {}
    test_ref = None
    with write_store(out, "scores", {"streams": list(streams), "tau": tau}) as f:
        for name, split_files in streams.items():
            if name not in models:
                raise KeyError(f"{model_path}: no trained '{name}' stream (trained: {list(models)})")
            model, bank = models[name]
            train = load_samples(*split_files["train"], STREAM_LAYOUT[name])
            test = load_samples(*split_files["test"], STREAM_LAYOUT[name])
            tr = score_samples(model, bank, prepare_features(train.feat, cfg["feature_norm"]), train.scene_feat, tau)
            te = score_samples(model, bank, prepare_features(test.feat, cfg["feature_norm"]), test.scene_feat, tau)
            clf = None
            if name == "motion" and classifier is not None:
                from .train_motion_classifier import classifier_input, load_classifier

                clf = load_classifier(classifier, runtime.device)
            if clf is not None:  # the motion stream's score becomes P(abnormal) (supplement, Eq. 2)
                from ..motion.classifier import abnormal_probability

                ae_tr, ae_te = tr, te
                tr = abnormal_probability(clf, classifier_input(train.feat, train.scene_feat, cfg["feature_norm"]))
                te = abnormal_probability(clf, classifier_input(test.feat, test.scene_feat, cfg["feature_norm"]))
            stats[name] = _stats(tr)
            frames = clip_max(te, test.video, test.clip, test.n_frames, test.clip_length)
            g = f.create_group(name)
            g["train_score"] = tr.astype(np.float32)
            g["test_score"] = te.astype(np.float32)
            g["test_video"] = test.video
            g["test_clip"] = test.clip.astype(np.int32)
            g["test_class"] = test.cls.astype(np.int16)
            g["frame_score"] = frames
            g.attrs["score"] = "classifier P(abnormal)" if clf is not None else "autoencoder error (Eq. 11)"
            if clf is not None:
                g["train_ae_score"] = ae_tr.astype(np.float32)
                g["test_ae_score"] = ae_te.astype(np.float32)
            if test_ref is None:
                test_ref = test
            if plot is not None and name == next(iter(streams)):
                from ..evaluation.plots import object_embedding

                object_embedding(train.feat, test.feat, te, plot, f"{name} features")
            result[name] = {"n_train_samples": len(tr), "n_test_samples": len(te),
                            "frames_without_object": int(np.isnan(frames).sum())}
            log.info("score: stream %s, %d train / %d test samples; train score mean %.4f std %.4f; "
                     "%d of %d test frames in clips without objects", name, len(tr), len(te),
                     stats[name]["mean"], stats[name]["std"], result[name]["frames_without_object"], len(frames))
        assert test_ref is not None
        f["videos"] = np.array(test_ref.videos, dtype=object).astype("S")
        f["n_frames"] = test_ref.n_frames
        f.attrs["clip_length"] = test_ref.clip_length
        f.attrs["train_stats"] = json.dumps(stats)
        clip_scene = assign_scenes(np.concatenate(test_ref.clip_scene_feat), scenes["centroid"])
        f["test_clip_scene"] = clip_scene.astype(np.int32)
    return result


def main(args) -> None:
    files = {"appearance": (args.train_objects, args.test_objects), "motion": (args.train_motion, args.test_motion)}
    streams = {s: {"train": (files[s][0], args.train_scenes), "test": (files[s][1], args.test_scenes)}
               for s in args.params["streams"]}
    run(args.model, streams, args.scene_labels, args.output, args.params, Runtime.resolve(args.device, args.threads),
        plot=args.plot, classifier=args.classifier or None, motion_model=args.motion_model or None)
