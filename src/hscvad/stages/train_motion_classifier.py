"""Rule ``train_motion_classifier``: the supplement's binary classifier on [f_mot, f_B].

Training set: every original training person sample (normal, 0) plus the augmented samples the
``augment_motion`` rule kept (normal 0 / abnormal 1). When a class is empty (every augmented
sample fell between T_norm and T_abn, or none exceeded T_abn), ``motion_augmentation.fallback``
decides: ``error`` stops with a message; ``autoencoder`` writes a classifier file marked disabled,
and the motion stream keeps the autoencoder's Eq. 11 score.
"""

from __future__ import annotations

import csv

import numpy as np

from ..features import load_samples
from ..h5store import atomic_path, read_arrays, save_torch
from ..models.registry import Runtime
from .common import log

#: the settings this stage's result depends on (the rule's params; see hscvad.settings)
SETTINGS = ("seed", "hsc.feature_norm", "motion_augmentation.fallback", "motion_augmentation.classifier")


def run(augmented: str, motion_files: list[str], scene_files: list[str], out_model: str, out_history: str,
        params: dict, runtime: Runtime) -> dict:
    from ..denormals import flush_denormals
    from ..motion.classifier import abnormal_probability, classifier_input, train_classifier

    flush_denormals()  # before any torch computation, so that torch's threads start with the flags
    cfg = params["motion_augmentation"]
    norm = params["hsc"]["feature_norm"]
    aug, attrs = read_arrays(augmented, "augmented")
    train = load_samples(motion_files, scene_files, "motion")
    x = np.concatenate([classifier_input(train.feat, train.scene_feat, norm),
                        classifier_input(aug["feature"], aug["scene_feature"], norm)])
    y = np.concatenate([np.zeros(len(train.feat), np.int64), aug["label"].astype(np.int64)])
    n_abn = int((y == 1).sum())
    info = {"n_train": int(len(y)), "n_normal": int((y == 0).sum()), "n_abnormal": n_abn}
    history: list[float] = []
    if n_abn == 0:
        msg = (f"{augmented}: no augmented sample scored above T_abn={attrs['t_abn']} (of {attrs['n_candidates']} "
               f"candidates, {attrs['n_normal']} fell below T_norm={attrs['t_norm']}, the rest in between), so the "
               "binary classifier has no abnormal example")
        if cfg["fallback"] == "error":
            raise ValueError(msg + "; set motion_augmentation.fallback: autoencoder to keep the autoencoder's "
                             "motion score, or change motion_augmentation.t_norm / t_abn")
        log.warning("%s; fallback 'autoencoder': the motion stream keeps the autoencoder's score", msg)
        payload = {"enabled": False, "reason": msg, "info": info}
    else:
        c = cfg["classifier"]
        model, history = train_classifier(x, y, int(c["epochs"]), float(c["lr"]), int(c["batch_size"]),
                                          float(c["weight_decay"]), int(params["seed"]), runtime.device)
        p = abnormal_probability(model, x)
        info["train_accuracy"] = float(((p > 0.5) == (y == 1)).mean())
        payload = {"enabled": True, "state_dict": model.state_dict(), "in_dim": int(x.shape[1]), "info": info}
        log.info("train_motion_classifier: %s, loss %.4f -> %.4f", info, history[0], history[-1])
    save_torch(payload, out_model)
    with atomic_path(out_history) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["epoch", "loss"])
        w.writerows((i + 1, f"{v:.6f}") for i, v in enumerate(history))
    return info


def main(job) -> None:
    run(job.input.augmented, job.input.motion, job.input.scenes, job.output.model, job.output.history, job.params,
        job.runtime)
