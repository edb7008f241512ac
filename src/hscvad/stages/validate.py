"""Rule ``validate``: the yardstick (:mod:`hscvad.evaluation.yardstick`). Synthetic anomalies of the
training objects (appearance: rule ``synthetic_objects``; velocity: made here from the training
tracks and flow with the velocity stage's own descriptor) are scored leave-one-video-out by every
candidate score of their stream; the JSON says which candidate each stream ships, its weight in
the fusion, and every figure they were chosen by. No test video and no test label is read.
"""

from __future__ import annotations

import numpy as np

from ..evaluation.objects import object_keys
from ..evaluation.validation import KINDS, synthetic_rows
from ..evaluation.yardstick import (
    candidate_aucs,
    candidate_name,
    candidates,
    choose,
    degenerate,
    fused_aucs,
    mean_auc,
    score_candidates,
    weights,
)
from ..features import STREAM_LAYOUT, load_samples
from ..h5store import read_arrays, write_json
from ..hsc.readout import stream_readout
from ..models.registry import Runtime
from ..velocity import descriptor, descriptor_names, velocity_descriptor
from .common import log

#: the settings this stage's result depends on (the rule's params; see hscvad.settings)
SETTINGS = ("streams=datasets.{dataset}.streams", "seed", "hsc.tau", "readout=hsc.readout", "validation")

#: a velocity sample moves when its centre travels at least this far per frame on average (px)
MOVING_SPEED = 0.5


def velocity_synthetic(track_files: list[str], flow_files: list[str], velocity_files: list[str], train,
                       n_samples: int, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each velocity kind (fast, glide, rush) applied to the same seeded subset of moving training
    samples: kind -> (indices into ``train``, altered stream features)."""
    feats = {k: [] for k in KINDS}
    moving = []
    for tf, ff, vf in zip(track_files, flow_files, velocity_files):
        tr, _ = read_arrays(tf, "tracks")
        fl, fa = read_arrays(ff, "flow")
        va_arr, va = read_arrays(vf, "velocity")
        vcfg = {"parts": list(va["parts"]), "gait_columns": list(va.get("gait_columns", [])) or None,
                "log_scale_px": va["log_scale_px"], "log_scale_rel": va["log_scale_rel"]}
        bins, edges, T = int(fa["orientation_bins"]), list(fa["magnitude_edges"]), int(va["clip_length"])
        _, uniq, raw = velocity_descriptor(tr["frame"], tr["track_id"], tr["box"], fl["stats"], T, bins, edges)
        if not (np.array_equal(uniq[:, 0], va_arr["clip"]) and np.array_equal(uniq[:, 1], va_arr["track_id"])):
            raise ValueError(f"{tf} and {vf} disagree on the video's samples: rerun velocity")
        for kind in KINDS:
            b, st = synthetic_rows(kind, tr["frame"], tr["track_id"], tr["box"], fl["stats"], bins, edges)
            feats[kind].append(descriptor(tr["frame"], tr["track_id"], b, st, T, bins, edges, vcfg)[2])
        moving.append(raw[:, descriptor_names(bins, edges).index("speed")] >= MOVING_SPEED)
    moving_idx = np.flatnonzero(np.concatenate(moving)) if moving else np.zeros(0, np.int64)
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(moving_idx, size=min(int(n_samples), len(moving_idx)), replace=False))
    return {k: (idx, np.concatenate(v)[idx].astype(np.float32)) for k, v in feats.items()}


def appearance_synthetic(path: str, train) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    arr, attrs = read_arrays(path, "synthetic_objects")
    if int(attrs["n_train_samples"]) != len(train.feat):
        raise ValueError(f"{path}: made for {attrs['n_train_samples']} training samples, the appearance "
                         f"features have {len(train.feat)}: rerun synthetic_objects")
    idx = arr["index"].astype(np.int64)
    keys = object_keys(train.video[idx], train.clip[idx], train.track[idx])
    if not np.array_equal(keys, object_keys(arr["video"], arr["clip"], arr["track_id"])):
        raise ValueError(f"{path}: its samples are not the appearance features' ones: rerun synthetic_objects")
    return {k: (idx, arr[f"feature_{k}"]) for k in attrs["kinds"]}


def run(model_path: str, streams: dict[str, tuple[list[str], list[str]]], out: str, params: dict,
        runtime: Runtime, synthetic_objects: str | None = None,
        velocity_inputs: tuple[list[str], list[str]] | None = None) -> dict:
    from ..hsc.train import load_checkpoint

    vcfg = params["validation"]
    seed = int(params["seed"])
    device = runtime.device
    models, meta = load_checkpoint(model_path, device)
    train = {s: load_samples(*files, STREAM_LAYOUT[s]) for s, files in streams.items()}
    synthetic = {}
    if "appearance" in train and synthetic_objects:
        synthetic["appearance"] = appearance_synthetic(synthetic_objects, train["appearance"])
    if "velocity" in train and velocity_inputs:
        synthetic["velocity"] = velocity_synthetic(*velocity_inputs, streams["velocity"][0], train["velocity"],
                                                   int(vcfg["samples"]), seed)
    keys = {s: object_keys(t.video, t.clip, t.track) for s, t in train.items()}
    measured = [s for s in train if s in synthetic]
    # the normal side: a seeded subset of the measured streams' objects, the same for each stream
    pool = np.unique(np.concatenate([keys[s] for s in measured])) if measured else np.zeros(0, np.int64)
    rng = np.random.default_rng(seed)
    normal_keys = np.sort(rng.choice(pool, size=min(int(vcfg["max_normal"]), len(pool)), replace=False))
    altered_keys = np.unique(np.concatenate(
        [keys[s][idx] for s in measured for idx, _ in synthetic[s].values()] or [np.zeros(0, np.int64)]))
    wanted = np.union1d(normal_keys, altered_keys)
    report, best_auc, fused_in = {}, {}, {}
    for s, t in train.items():
        ro = stream_readout(params["readout"], s)
        configured = candidate_name(ro["bank"], ro["tau"])
        if s not in synthetic:
            report[s] = {"kinds": [], "shipped": configured, "shipped_auc": None,
                         "reason": "no synthetic anomaly of this stream yet: its configured read-out"}
            best_auc[s] = float("nan")
            continue
        model, bank = models[s]
        query = np.flatnonzero(np.isin(keys[s], wanted))
        is_normal = np.isin(keys[s][query], normal_keys)
        cands = candidates(ro)
        scored = score_candidates(model, bank, meta, s, t, query, synthetic[s], ro, float(params["hsc"]["tau"]), seed,
                                  cands, device)
        aucs = candidate_aucs(scored, is_normal)
        broken = {c: degenerate(r["normal"]) for c, r in scored.items()}
        usable = [c.name for c in cands if broken[c.name] is None] or [configured]
        shipped, auc = choose(aucs, usable)
        n_altered = {k: int(len(idx)) for k, (idx, _) in synthetic[s].items()}
        reason = (f"highest mean object AUC over {', '.join(synthetic[s])} ({auc:.3f})" if np.isfinite(auc)
                  else "no altered sample could be made: its configured read-out")
        if shipped != configured and np.isfinite(auc):
            reason += f"; the configured read-out {configured}: {mean_auc(aucs[configured]):.3f}"
        report[s] = {"kinds": list(synthetic[s]), "n_altered": n_altered, "shipped": shipped, "shipped_auc": auc,
                     "reason": reason, "hsc_vs_knn": {"best_hsc": max((mean_auc(aucs[c.name]) for c in cands
                                                                        if c.score == "hsc"), default=None),
                                                      "knn": mean_auc(aucs["knn"])},
                     "candidates": {c: {"tau": scored[c]["tau"], "aucs": aucs[c], "mean_auc": mean_auc(aucs[c]),
                                        "degenerate": broken[c]} for c in scored}}
        best_auc[s] = auc
        chosen = scored[shipped]
        fused_in[s] = {"keys": keys[s][query], "scores": chosen["normal"],
                       "kinds": {k: (keys[s][idx], chosen["kinds"][k]) for k, (idx, _) in synthetic[s].items()}}
        log.info("validate: stream %s ships %s (%s)", s, shipped, reason)
    w, why = weights(best_auc, float(vcfg["min_auc"]))
    for s in report:
        report[s]["weight"] = w[s]
    fused = fused_aucs(fused_in, normal_keys, w) if fused_in else {}
    fused_max = fused_aucs(fused_in, normal_keys, w, "max") if fused_in else {}
    best_stream = {k: max(report[s]["candidates"][report[s]["shipped"]]["aucs"][k] for s in fused_in
                          if k in report[s]["kinds"]) for k in fused}
    rules = {"mean": mean_auc(fused), "max": mean_auc(fused_max)}
    rule = "max" if rules["max"] > rules["mean"] else "mean"
    fusion = {"rule": rule, "mean_auc": rules,
              "reason": (f"mean fused object AUC over the synthetic kinds: max {rules['max']:.3f}, mean "
                         f"{rules['mean']:.3f}" if fused else "nothing measured: the weighted mean")}
    result = {
        "n_normal": int(len(normal_keys)), "holdout": "video" if len(np.unique(next(iter(train.values())).video)) > 1
        else "sample", "min_auc": float(vcfg["min_auc"]), "streams": report, "weights": w, "weights_reason": why,
        "fusion": fusion,
        "fused": {k: {"mean": fused[k], "max": fused_max[k], "best_stream_auc": best_stream[k]} for k in fused},
    }
    write_json(out, result)
    log.info("validate: weights %s (%s); fused object AUC per kind %s", w, why,
             {k: round(v, 3) for k, v in fused.items()})
    return result


def main(job) -> None:
    i = job.input
    files = {"appearance": i.train_objects, "motion": i.train_motion, "velocity": i.train_velocity}
    streams = {s: (list(files[s]), list(i.train_scenes)) for s in job.params["streams"]}
    run(i.model, streams, job.output[0], job.params, job.runtime,
        synthetic_objects=i.synthetic_objects[0] if i.synthetic_objects else None,
        velocity_inputs=(list(i.train_tracks), list(i.train_flow)) if i.train_flow else None)
