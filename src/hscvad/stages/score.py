"""Rule ``score``: object scores (Eqs. 10-11) of every test sample and per-frame raw scores (Eq. 12).

A clip's raw score is its highest object score, given to each of its frames; frames of clips with
no object are NaN here and filled by each evaluation protocol. Training samples are scored too,
so the strict protocol can normalise with training statistics: each training sample is scored
leave-one-video-out (it does not read the memory entries of its own video), as the unseen normal
video a test sample is. The read-out temperature of Eq. 10 is chosen per stream without labels
(:func:`choose_tau`). Output layout ``scores``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..config import motion_augmentation_mode
from ..evaluation.objects import clip_max, score_stats
from ..evaluation.yardstick import candidate_name, from_name
from ..features import STREAM_LAYOUT, assign_scenes, load_samples
from ..h5store import read_arrays, write_store
from ..hsc.readout import choose_tau, holdout_groups, nn_distance, stream_readout
from ..models.registry import Runtime
from ..settings import Derived
from .common import log

#: the settings this stage's result depends on (the rule's params; see hscvad.settings)
SETTINGS = ("streams=datasets.{dataset}.streams", "seed", "hsc.tau", "hsc.feature_norm", "readout=hsc.readout",
            "validation.choose",
            Derived("motion_augmentation", ("datasets.{dataset}.streams", "motion_augmentation.enabled",
                                            "motion_augmentation.mode"), motion_augmentation_mode))


def run(model_path: str, streams: dict[str, dict[str, tuple[list[str], list[str]]]], scenes_file: str,
        out: str, params: dict, runtime: Runtime, plot: str | None = None, classifier: str | None = None,
        motion_model: str | None = None, validation: str | None = None) -> dict:
    """With ``validation`` (rule validate's JSON), each stream ships the score the yardstick chose
    for it (a read-out or the 1-NN) and carries its fusion weight; without, the configured read-out
    and weight 1."""
    import torch

    from ..denormals import flush_denormals
    from ..hsc.train import effective_entries, encode, load_checkpoint, model_input, score_samples

    flush_denormals()  # before any torch computation, so that torch's threads start with the flags
    cfg = params["hsc"]
    readout = params["readout"]
    models, meta = load_checkpoint(model_path, runtime.device)
    motion_meta = meta
    if motion_model is not None:  # MA-: the motion autoencoder retrained with pseudo-normal samples
        loaded, motion_meta = load_checkpoint(motion_model, runtime.device)
        models["motion"] = loaded["motion"]
    scenes, _ = read_arrays(scenes_file, "scenes")
    yardstick = json.loads(Path(validation).read_text()) if validation else None
    stats, result, readouts = {}, {}, {}
    test_ref = None
    with write_store(out, "scores", {"streams": list(streams)}) as f:
        for name, split_files in streams.items():
            if name not in models:
                raise KeyError(f"{model_path}: no trained '{name}' stream (trained: {list(models)})")
            model, bank = models[name]
            smeta = motion_meta if name == "motion" else meta
            train = load_samples(*split_files["train"], STREAM_LAYOUT[name])
            test = load_samples(*split_files["test"], STREAM_LAYOUT[name])
            if len(bank) < len(train.feat):
                raise ValueError(f"{model_path}: the {name} memory bank has {len(bank)} entries for "
                                 f"{len(train.feat)} training samples; rerun train_hsc")
            tr_in, te_in = model_input(train.feat, smeta, name), model_input(test.feat, smeta, name)
            ro = stream_readout(readout, name)
            shipped = from_name(yardstick["streams"][name]["shipped"]) if yardstick else None
            if shipped is not None and shipped.score == "hsc":
                ro = {**ro, "bank": shipped.bank, "tau": shipped.tau}
            z_tr = encode(model, tr_in, train.scene_feat, runtime.device)
            # how well the bank matches the final encoder: mean cosine of a training sample's code
            # with its own entry (1 when re-encoded; low when training stopped far from convergence)
            consistency = float((z_tr * bank[: len(tr_in)]).sum(1).mean()) if len(tr_in) else None
            if ro["bank"] == "memory" and consistency is not None and consistency < 0.8:
                log.warning("score: stream %s: the memory bank matches the final encoder poorly (mean cosine %.2f of "
                            "a training sample's code with its own entry): train longer (hsc.epochs) or read "
                            "hsc.readout.bank: encoded", name, consistency)
            if ro["bank"] == "encoded":  # the final encoder's codes of the training samples
                bank = torch.cat([z_tr, bank[len(tr_in) :]])
            groups, group_kind = holdout_groups(train.video)
            # MA- pseudo-normal entries beyond the training samples belong to no group (-1)
            bank_groups = np.concatenate([groups, np.full(len(bank) - len(groups), -1, np.int64)])
            tau, how = choose_tau(z_tr, bank, groups, bank_groups, ro, float(cfg["tau"]), int(params["seed"]),
                                  group_kind)
            tr = score_samples(model, bank, tr_in, train.scene_feat, tau, query_group=groups, bank_group=bank_groups)
            te = score_samples(model, bank, te_in, test.scene_feat, tau)
            with torch.no_grad():
                n_eff_te = effective_entries(encode(model, te_in, test.scene_feat, runtime.device), bank, tau)
            if shipped is not None and shipped.score == "knn":  # the yardstick ships the 1-NN distance
                hsc_tr, hsc_te = tr, te
                tr = nn_distance(tr_in, tr_in, groups, groups)
                te = nn_distance(te_in, tr_in)
            weight = float(yardstick["weights"][name]) if yardstick else 1.0
            readouts[name] = {"score": shipped.name if shipped else candidate_name(ro["bank"], ro["tau"]),
                              "weight": weight, "tau": tau, "how": how, "bank": ro["bank"], "train_holdout": group_kind,
                              "bank_entries": len(bank), "bank_consistency": consistency,
                              "test_median_effective_entries": float(n_eff_te.median()) if len(te) else None}
            clf = None
            if name == "motion" and classifier is not None:
                from ..motion.classifier import abnormal_probability, classifier_input, load_classifier

                clf = load_classifier(classifier, runtime.device)
            if clf is not None:  # the motion stream's score becomes P(abnormal) (supplement, Eq. 2)
                ae_tr, ae_te = tr, te
                tr = abnormal_probability(clf, classifier_input(train.feat, train.scene_feat, cfg["feature_norm"]))
                te = abnormal_probability(clf, classifier_input(test.feat, test.scene_feat, cfg["feature_norm"]))
            stats[name] = score_stats(tr)
            frames = clip_max(te, test.video, test.clip, test.n_frames, test.clip_length)
            g = f.create_group(name)
            g["train_score"] = tr.astype(np.float32)
            g["train_video"] = train.video
            g["train_clip"] = train.clip.astype(np.int32)
            g["train_track"] = train.track.astype(np.int32)
            g["test_score"] = te.astype(np.float32)
            g["test_video"] = test.video
            g["test_clip"] = test.clip.astype(np.int32)
            g["test_track"] = test.track.astype(np.int32)
            g["test_box"] = test.box.astype(np.float32)
            g["test_class"] = test.cls.astype(np.int16)
            g["test_knn_score"] = nn_distance(te_in, tr_in).astype(np.float32)
            g["frame_score"] = frames
            g.attrs["score"] = "classifier P(abnormal)" if clf is not None else "autoencoder error (Eq. 11)"
            g.attrs["tau"] = tau
            g.attrs["readout"] = json.dumps(readouts[name])
            g.attrs["weight"] = weight
            if shipped is not None and shipped.score == "knn":
                g.attrs["score"] = "1-NN distance (the yardstick's choice)"
                g["train_hsc_score"] = hsc_tr.astype(np.float32)
                g["test_hsc_score"] = hsc_te.astype(np.float32)
            if clf is not None:
                g["train_ae_score"] = ae_tr.astype(np.float32)
                g["test_ae_score"] = ae_te.astype(np.float32)
            if test_ref is None:
                test_ref = test
            if plot is not None and name == next(iter(streams)):
                from ..evaluation.plots import object_embedding

                object_embedding(train.feat, test.feat, te, plot, f"{name} features")
            result[name] = {"n_train_samples": len(tr), "n_test_samples": len(te),
                            "frames_without_object": int(np.isnan(frames).sum()), "readout": readouts[name]}
            log.info("score: stream %s, %d train / %d test samples; read-out tau %.4g (%s), test queries read a "
                     "median %.1f of %d entries; train score mean %.4f std %.4f; %d of %d test frames in clips "
                     "without objects", name, len(tr), len(te), tau, how,
                     readouts[name]["test_median_effective_entries"] or 0.0, len(bank), stats[name]["mean"],
                     stats[name]["std"], result[name]["frames_without_object"], len(frames))
        assert test_ref is not None
        f["videos"] = np.array(test_ref.videos, dtype=object).astype("S")
        f["train_videos"] = np.array(train.videos, dtype=object).astype("S")
        f["train_n_frames"] = train.n_frames
        f["n_frames"] = test_ref.n_frames
        f.attrs["clip_length"] = test_ref.clip_length
        f.attrs["train_stats"] = json.dumps(stats)
        f.attrs["readout"] = json.dumps(readouts)
        if yardstick is not None:
            f.attrs["yardstick"] = json.dumps(yardstick)
        clip_scene = assign_scenes(np.concatenate(test_ref.clip_scene_feat), scenes["centroid"])
        f["test_clip_scene"] = clip_scene.astype(np.int32)
    return result


def main(job) -> None:
    i = job.input
    files = {"appearance": (i.train_objects, i.test_objects), "motion": (i.train_motion, i.test_motion),
             "velocity": (i.train_velocity, i.test_velocity)}
    streams = {s: {"train": (files[s][0], i.train_scenes), "test": (files[s][1], i.test_scenes)}
               for s in job.params["streams"]}
    run(i.model, streams, i.labels, job.output.scores, job.params, job.runtime, plot=job.output.embedding,
        classifier=i.classifier[0] if i.classifier else None,
        motion_model=i.motion_model[0] if i.motion_model else None,
        validation=i.validation[0] if i.validation else None)
