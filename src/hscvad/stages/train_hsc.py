"""Rule ``train_hsc``: train the scene-aware autoencoder of every configured stream (docs/method.md §3-4).

The streams' losses add up (L = L_app + L_mot, Eq. 8); they share no parameters, so each stream is
trained by its own loop with its own seeded batch order, which yields the same gradients as one
joint loop. Nothing here reads a test label.
"""

from __future__ import annotations

import csv
from collections.abc import Callable

import numpy as np

from ..features import STREAM_LAYOUT, load_samples, scene_labels_for
from ..h5store import atomic_path, read_arrays
from ..models.registry import MOTION, Runtime
from ..settings import Derived
from .common import log, progress


def _motion_classes(config: dict, dataset: str, streams: list[str]) -> str | int | None:
    """The motion stream's object classes: the backend's actions, else ``motion.n_classes`` clusters."""
    if "motion" not in streams:
        return None
    return "action" if MOTION.get(config["motion"]["backend"], "motion.backend").has_classes \
        else config["motion"]["n_classes"]


def _settings(streams: Callable[[dict, str], list[str]], reads: tuple[str, ...], own: tuple[str, ...]) -> tuple:
    """The settings of a training of ``streams(config, dataset)`` (whose keys are ``reads``, or for a
    fixed list, ``own``: the architectures it reads)."""
    arch = (*reads, *(f"hsc.architecture.{s}" for s in (own or STREAM_LAYOUT)))
    return (
        "seed",
        Derived("streams", reads, lambda c, d: list(streams(c, d))),
        # every hsc setting but the read-out (scoring's: changing it must not retrain)
        *(f"hsc.{k}" for k in ("epochs", "batch_size", "lr", "optimizer", "matmul_precision", "weight_decay", "tau",
                               "memory_momentum", "rec_reduction", "feature_norm", "ablation")),
        Derived("hsc.architecture", arch, lambda c, d: {s: c["hsc"]["architecture"][s] for s in streams(c, d)}),
        Derived("motion_classes", (*reads, "motion.backend", "motion.n_classes"),
                lambda c, d: _motion_classes(c, d, streams(c, d)), optional=True),
    )


#: the settings this stage's result depends on (the rule's params; see hscvad.settings)
SETTINGS = _settings(lambda c, d: c["datasets"][d]["streams"], ("datasets.{dataset}.streams",), ())
#: rule retrain_motion (MA-): the motion stream alone, retrained with the augmented samples
RETRAIN_MOTION_SETTINGS = _settings(lambda c, d: ["motion"], (), ("motion",))


def motion_classes(feat: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Object classes of the motion stream's object-level contrast (the paper uses PoseConv3D's
    predicted action): k-means clusters of the standardised training motion features."""
    from sklearn.cluster import KMeans

    z = (feat - feat.mean(0)) / np.maximum(feat.std(0), 1e-6)
    k = max(1, min(k, len(np.unique(z.round(6), axis=0))))  # never more clusters than distinct features
    return KMeans(k, random_state=seed, n_init=4).fit_predict(z).astype(np.int64)


def column_groups(files: list[str], stream: str) -> list[str]:
    """The unit group of every feature column (input normalisation ``group``), from the stream's files."""
    from ..h5store import open_store

    with open_store(files[0], STREAM_LAYOUT[stream]) as f:
        groups = f.attrs.get("column_groups")
    if groups is None:
        raise ValueError(f"hsc.architecture.{stream}.input_norm: 'group' needs column groups, which {files[0]} "
                         "does not name; use 'standard'")
    return [g.decode() if isinstance(g, bytes) else str(g) for g in groups]


def run(streams: dict[str, tuple[list[str], list[str]]], scenes_file: str, out_model: str, out_history: str,
        params: dict, runtime: Runtime, augmented: str | None = None) -> dict:
    """Train every stream; with ``augmented`` (MA-) the motion stream also learns from the pseudo-normal
    variants, each inheriting the scene label and motion class of the sample it was made from."""
    from ..denormals import flush_denormals
    from ..hsc.train import StreamData, input_norm, prepare_features, save_checkpoint, standard_stats, train_stream

    flush_denormals()  # before any torch computation, so that torch's threads start with the flags
    cfg = params["hsc"]
    seed = int(params["seed"])
    _, sattrs = read_arrays(scenes_file, "scenes")
    n_scenes = int(sattrs["n_scenes"])
    results, stream_cfg, norm_stats = {}, {}, {}
    rows = []
    for name, (object_files, scene_files) in streams.items():
        s = load_samples(object_files, scene_files, STREAM_LAYOUT[name])
        if len(s.feat) < 2:
            why = ("no person is tracked for more than pose.min_track_length frames in the training videos "
                   "(the motion stream needs people; remove 'motion' from datasets.<name>.streams)"
                   if name == "motion" else
                   "the detector found (almost) nothing in the training videos (check "
                   "detection.score_threshold and detection.classes)")
            raise ValueError(f"train_hsc: stream '{name}' has {len(s.feat)} training samples: {why}")
        cls = s.cls
        if name == "motion" and params["motion_classes"] != "action":
            # without an action classifier (skeleton): k-means prototypes of the training motion features
            cls = motion_classes(s.feat, int(params["motion_classes"]), seed)
        stream_cfg[name] = {**cfg, "architecture": cfg["architecture"][name]}
        norm = input_norm(stream_cfg[name])
        if norm in ("standard", "group"):  # statistics of the original training samples (not of MA- variants)
            norm_stats[name] = standard_stats(s.feat, column_groups(object_files, name) if norm == "group" else None)
        data = StreamData(prepare_features(s.feat, norm, norm_stats.get(name)), s.scene_feat,
                          scene_labels_for(s, scenes_file), cls)
        if name == "motion" and augmented is not None:
            aug, _ = read_arrays(augmented, "augmented")
            keep = aug["label"] == 0
            src = aug["source"][keep].astype(np.int64)
            data = StreamData(np.concatenate([data.feat, prepare_features(aug["feature"][keep], norm,
                                                                          norm_stats.get(name))]),
                              np.concatenate([data.scene_feat, aug["scene_feature"][keep]]),
                              np.concatenate([data.scene, data.scene[src]]), np.concatenate([data.cls, data.cls[src]]))
            log.info("train_hsc: MA-, %d pseudo-normal motion samples added to %d", int(keep.sum()), len(s.feat))
        log.info("train_hsc: stream %s, %d samples, feature %d-d, scene %d-d, %d scene(s), %d object class(es)",
                 name, len(data), data.feat.shape[1], data.scene_feat.shape[1], n_scenes,
                 len(np.unique(data.cls)))
        bar = progress(int(cfg["epochs"]), f"train {name}", "epoch")
        res = train_stream(data, stream_cfg[name], n_scenes, seed, runtime.device, bar)
        bar.close()
        results[name] = res
        rows += [{"stream": name, **h} for h in res.history]
    meta = {"hsc": cfg, "stream_cfg": stream_cfg, "n_scenes": n_scenes, "seed": seed, "streams": list(streams),
            "input_norm_stats": norm_stats}
    save_checkpoint(out_model, results, meta)
    keys = ["stream", "epoch", "rec", "lc", "scn", "obj", "total"]
    with atomic_path(out_history) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in keys})
    last = {n: r.history[-1] for n, r in results.items()}
    log.info("train_hsc: final losses %s", last)
    return last


def main(job) -> None:
    i = job.input
    files = {"appearance": i.get("objects", []), "motion": i.get("motion", []), "velocity": i.get("velocity", [])}
    streams = {s: (files[s], i.scenes) for s in job.params["streams"]}
    run(streams, i.labels, job.output.model, job.output.history, job.params, job.runtime,
        augmented=i.get("augmented"))
