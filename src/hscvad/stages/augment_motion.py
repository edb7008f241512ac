"""Rule ``augment_motion``: motion augmentation with selection by the stage-1 model (docs/method.md §6).

Every training person sample yields the four variants of :func:`hscvad.motion.augment.variants`;
each variant gets a new motion feature and its stage-1 motion error (Eq. 11 with the trained
scene-motion autoencoder). Errors are put on the scale of
:func:`hscvad.motion.augment.normalised_error` (min-max over the training samples' own errors,
1st to 99th percentile). Variants below T_norm are kept as normal (0), above T_abn as abnormal (1,
MA-,+ only); the rest is discarded. Output layout ``augmented``.
"""

from __future__ import annotations

import numpy as np

from ..features import load_samples
from ..h5store import read_arrays, write_store
from ..models.motion import build_motion
from ..models.registry import Runtime
from ..motion import augment
from .common import log

#: the settings this stage's result depends on (the rule's params; see hscvad.settings)
SETTINGS = ("seed", "hsc.tau", "hsc.feature_norm", "motion.backend", "motion.min_score", "motion.@backend",
            *(f"motion_augmentation.{k}" for k in ("mode", "p_spatial", "p_temporal", "t_norm", "t_abn")))


def run(model_path: str, motion_files: list[str], scene_files: list[str], out: str, params: dict,
        runtime: Runtime) -> dict:
    from ..denormals import flush_denormals
    from ..hsc.train import load_checkpoint, model_input, score_samples

    flush_denormals()  # before any torch computation, so that torch's threads start with the flags
    cfg = params["motion_augmentation"]
    hsc = params["hsc"]
    models, meta = load_checkpoint(model_path, runtime.device)
    if "motion" not in models:
        raise KeyError(f"{model_path}: no trained motion stream")
    model, bank = models["motion"]
    train = load_samples(motion_files, scene_files, "motion")
    read = [read_arrays(f, "motion") for f in motion_files]
    parts = [r[0] for r in read]
    frame_hw = (int(read[0][1]["height"]), int(read[0][1]["width"]))
    K = np.concatenate([p["keypoints"] for p in parts])
    M = np.concatenate([p["tracked"] for p in parts])
    B = np.concatenate([p["boxes"] for p in parts])
    if len(K) == 0:
        raise ValueError("augment_motion: no training person sample to augment")
    tau = float(hsc["tau"])
    base_err = score_samples(model, bank, model_input(train.feat, meta, "motion"), train.scene_feat, tau)
    rng = np.random.default_rng(int(params["seed"]))
    variants = augment.variants(K, rng, float(cfg["p_spatial"]), float(cfg["p_temporal"]))
    motion_model = build_motion(params["motion"], runtime)
    feats, scene, variant, source = [], [], [], []
    for v_idx, name in enumerate(augment.VARIANTS):
        seq, keep = variants[name]
        feats.append(motion_model.embed(seq, B, M & keep, frame_hw)[0])
        scene.append(train.scene_feat)
        variant.append(np.full(len(seq), v_idx, np.int8))
        source.append(np.arange(len(seq)))
    X = np.concatenate(feats)
    XB = np.concatenate(scene)
    err = score_samples(model, bank, model_input(X, meta, "motion"), XB, tau)
    norm = augment.normalised_error(err, base_err)
    idx, labels = augment.select(norm, float(cfg["t_norm"]), float(cfg["t_abn"]), cfg["mode"])
    n_norm, n_abn = int((labels == 0).sum()), int((labels == 1).sum())
    lo, hi = np.percentile(base_err, [1, 99])
    attrs = {"mode": cfg["mode"], "t_norm": float(cfg["t_norm"]), "t_abn": float(cfg["t_abn"]),
             "error_p01": float(lo), "error_p99": float(hi), "n_candidates": int(len(X)),
             "n_normal": n_norm, "n_abnormal": n_abn, "variants": list(augment.VARIANTS)}
    with write_store(out, "augmented", attrs) as f:
        f["feature"] = X[idx]
        f["scene_feature"] = XB[idx]
        f["label"] = labels.astype(np.int8)
        f["variant"] = np.concatenate(variant)[idx]
        f["source"] = np.concatenate(source)[idx].astype(np.int32)
        f["norm_error"] = norm[idx].astype(np.float32)
        f["candidate_norm_error"] = norm.astype(np.float32)
        f["train_norm_error"] = augment.normalised_error(base_err, base_err).astype(np.float32)
    log.info("augment_motion: %d candidates -> %d normal, %d abnormal (%s, T_norm %.2f, T_abn %.2f)",
             len(X), n_norm, n_abn, cfg["mode"], cfg["t_norm"], cfg["t_abn"])
    return attrs


def main(job) -> None:
    run(job.input.model, job.input.motion, job.input.scenes, job.output[0], job.params, job.runtime)
