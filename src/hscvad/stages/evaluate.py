"""Rule ``evaluate``: frame-level AUCs under both protocols, per-frame CSV and plots.

Every number in ``auc.json`` comes with the protocol that produced it (docs/method.md §8).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from ..data import build_dataset
from ..evaluation import plots
from ..evaluation.objects import scores_header
from ..evaluation.protocols import calibrate, macro_auc, micro_auc, reference_protocol, strict_protocol
from ..h5store import atomic_path, open_store, read_arrays, write_json
from ..parallel import Workers
from ..settings import DATASET, Derived
from .common import log

#: evaluation.reference.fusion: how the reference protocol fuses its min-max-normalised streams
REFERENCE_FUSIONS = {
    "training_spread": "mean over streams of (score - test minimum) / std of the stream's training samples' scores "
                       "(min-max, each stream weighted by its test range over its training std)",
    "equal": "equal-weight mean of the min-max-normalised streams (the public code's 0.5/0.5)",
}


#: what each evaluation.calibration does to a stream's scores, before normalisation and fusion
CALIBRATIONS = {
    "tail": "per stream, -ln((1 + #training scores >= s) / (N + 1)): the surprise of the score's upper tail "
            "under the training samples' (leave-one-video-out) scores, 0 to ln(N + 1)",
    "crowd": "per stream, the tail surprise (as tail) of the clip's highest object, corrected for the n objects "
             "the stream scored in the clip: -ln(1 - (1 - p)^n), p = (1 + #training scores >= s) / (N + 1)",
    "none": "the scores as they are",
}


def _evaluation(config: dict, dataset: str) -> dict:
    from ..config import section

    return section(config, dataset, "evaluation")


def _with_defaults(ev: dict) -> dict:
    """The evaluation settings ``ev`` over the schema's defaults (a job built by hand may give only
    the settings it changes)."""
    from ..config import deep_merge, defaults

    return deep_merge(defaults("evaluation"), ev)


#: the settings this stage's result depends on (the rule's params; see hscvad.settings)
SETTINGS = (DATASET, Derived("evaluation", ("evaluation", "datasets.{dataset}.evaluation"), _evaluation))


def _track_averaging(ev: dict) -> str:
    w = int(ev["track_window"])
    if not w:
        return "none: each object sample's score in its own clip"
    return (f"each object sample's score (and each training sample's) averaged over its track's samples in the "
            f"clips within {w} clip(s) of its own, before calibration and the clip's highest object")


def _describe(params: dict, T: int) -> dict[str, dict]:
    ev = params["evaluation"]
    ref, strict = ev["reference"], ev["strict"]
    return {
        "reference": {
            "frames": f"each video's first floor(n/{T})*{T} frames (the rest dropped)",
            "track_averaging": _track_averaging(ev),
            "calibration": CALIBRATIONS[ev["calibration"]],
            "normalisation": "min-max over all test frames (positive scores), per stream; clips without objects 0",
            "smoothing": f"reference Gaussian, window {ref['window']}, sigma {ref['sigma']}, across video borders",
            "fusion": REFERENCE_FUSIONS[ref["fusion"]],
        },
        "strict": {
            "frames": "every frame",
            "track_averaging": _track_averaging(ev),
            "calibration": CALIBRATIONS[ev["calibration"]],
            "normalisation": "per stream (score - mean) / std of the training samples' scores; "
                             "frames without objects get the lowest training score",
            "smoothing": f"Gaussian sigma {strict['sigma']} within each video",
            "fusion": "equal-weight mean of streams",
        },
    }


def _aucs(scores, labels):
    if labels is None:
        return {"micro_auc": None, "macro_auc": None, "n_videos_macro": 0}
    mi = micro_auc(scores, labels)
    ma, nv = macro_auc(scores, labels)
    return {"micro_auc": mi, "macro_auc": ma, "n_videos_macro": nv}


def _reference(raw, stats, T, ev, fusion, weights=None):
    units = {s: stats[s]["std"] for s in raw} if fusion == "training_spread" else None
    return reference_protocol(raw, T, int(ev["reference"]["window"]), float(ev["reference"]["sigma"]),
                              weights=weights, units=units, rule=ev["fusion"])


def _protocols(raw, stats, labels, T, ev, calibration, train, counts=None, weights=None):
    """AUCs of the fused streams (``weights`` per stream, default 1) under each protocol with
    ``calibration`` (``tail``: needs the training scores ``train``; ``crowd``: those and ``counts``,
    per stream and video each frame's number of scored objects in its clip), and the scores they
    were computed from."""
    if calibration in ("tail", "crowd"):
        if train is None or (calibration == "crowd" and counts is None):
            raise ValueError(f"evaluation.calibration: {calibration} needs the training samples' scores"
                             + (" and the test objects' clips (test_video, test_clip; rerun score)"
                                if calibration == "crowd" else ""))
        raw, stats = calibrate(raw, train, counts if calibration == "crowd" else None)
    fusion = ev["reference"]["fusion"]
    ref_scores, keep = _reference(raw, stats, T, ev, fusion, weights)
    strict_scores = strict_protocol(raw, stats, float(ev["strict"]["sigma"]), weights, ev["fusion"])
    ref_labels = [y[k] for y, k in zip(labels, keep)] if labels is not None else None
    n_ref = int(sum(len(k) for k in keep))
    res = {
        "reference": {**_aucs(ref_scores, ref_labels), "n_frames": n_ref},
        "strict": {**_aucs(strict_scores, labels), "n_frames": int(sum(len(s) for s in strict_scores))},
    }
    if len(raw) > 1:
        for other in REFERENCE_FUSIONS:
            if other != fusion:
                alt, _ = _reference(raw, stats, T, ev, other, weights)
                res[f"reference_fusion_{other}"] = {**_aucs(alt, ref_labels), "n_frames": n_ref,
                                                    "fusion": REFERENCE_FUSIONS[other]}
    unsmoothed = strict_protocol(raw, stats, 0.0, weights, ev["fusion"])
    res["strict_unsmoothed"] = {**_aucs(unsmoothed, labels), "n_frames": res["strict"]["n_frames"]}
    return res, ref_scores, keep, strict_scores


def evaluate_streams(raw, stats, labels, T, params, train=None, counts=None, weights=None):
    """AUCs of the fused streams under each protocol, with the configured calibration. With more
    than one stream, the reference protocol is also computed with the fusion not configured (key
    reference_fusion_<name>); given the training scores ``train`` (and ``counts``, see
    :func:`_protocols`), both protocols also with each calibration not configured (keys
    strict_calibration_<name>, reference_calibration_<name>)."""
    ev = params["evaluation"]
    calibration = ev["calibration"]
    res, ref_scores, keep, strict_scores = _protocols(raw, stats, labels, T, ev, calibration, train, counts, weights)
    if train is not None:
        for other in CALIBRATIONS:
            if other == calibration or (other == "crowd" and counts is None):
                continue
            alt, *_ = _protocols(raw, stats, labels, T, ev, other, train, counts, weights)
            for p in ("strict", "reference"):
                res[f"{p}_calibration_{other}"] = {**alt[p], "calibration": other}
    return res, ref_scores, keep, strict_scores


def clip_counts(video: np.ndarray, clip: np.ndarray, score: np.ndarray, n_frames, T: int) -> list[np.ndarray]:
    """Per test video, each frame's number of samples with a score in its clip (the n of the
    ``crowd`` calibration), from a stream's ``test_video`` / ``test_clip`` / ``test_score``."""
    ok = np.isfinite(score)
    out = []
    for v, n in enumerate(np.asarray(n_frames, np.int64)):
        c = np.bincount(clip[ok & (video == v)], minlength=-(-int(n) // T))
        out.append(c[np.arange(int(n)) // T].astype(np.int64))
    return out


def _auc(pos: np.ndarray, neg: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    pos, neg = pos[np.isfinite(pos)], neg[np.isfinite(neg)]
    if not len(pos) or not len(neg):
        return None
    return float(roc_auc_score(np.r_[np.ones(len(pos)), np.zeros(len(neg))], np.r_[pos, neg]))


def localisation(ds, scores_file: str, track_files: list[str], labels, params: dict) -> dict:
    """RBDC / TBDC from the scored object boxes, parse coverage and object-level AUCs per stream
    (hscvad.evaluation.localisation), where the dataset has pixel masks of its anomalies."""
    from ..evaluation import localisation as LOC
    from ..evaluation.objects import load_objects, row_scores

    cfg = params["evaluation"]["localisation"]
    beta, alpha, thr = float(cfg["beta"]), float(cfg["alpha"]), float(cfg["overlap"])
    table = load_objects(scores_file, cfg["calibration"], int(params["evaluation"]["track_window"]))
    T = table.clip_length
    if labels is None:
        return {"available": False, "reason": "the dataset has no frame labels"}
    if len(track_files) != len(table.videos):
        raise ValueError(f"evaluate: {len(track_files)} track files for {len(table.videos)} test videos")
    det_f, det_b, det_s, gt_f, gt_b, gt_t = [], [], [], [], [], []
    overlap = np.zeros(len(table.video))
    own_object = np.zeros(len(table.video), bool)  # in some frame of its clip, an annotated region's own box
    n_abn_clips = n_covered = 0
    offset = track_offset = 0
    own_box = {}  # per video: its annotated regions with a box of their own, and its regions
    for i, (v, n) in enumerate(zip(table.videos, table.n_frames)):
        masks = ds.pixel_masks(v)
        if masks is None:
            return {"available": False, "reason": f"no pixel masks for test video {v} (adapter {ds.adapter})"}
        if len(masks) != int(n):
            raise ValueError(f"dataset {ds.name}: {len(masks)} pixel masks for the {int(n)} frames of test video {v}")
        rf, rb = LOC.mask_regions(masks, int(cfg["min_region_area"]))
        rt = LOC.link_tracks(rf, rb)
        gt_f.append(rf + offset), gt_b.append(rb), gt_t.append(rt + track_offset)
        track_offset += int(rt.max()) + 1 if len(rt) else 0
        arr, attrs = read_arrays(track_files[i], "tracks")
        if attrs["video"] != v:
            raise ValueError(f"{track_files[i]} belongs to video {attrs['video']}, expected {v}")
        inside = LOC.frame_box_overlap(masks, arr["frame"], arr["box"])  # each box's share inside its frame's mask
        has_own, box_own = LOC.own_boxes(inside, rf, rb, arr["frame"], arr["box"], beta)
        own_box[v] = (int(has_own.sum()), len(has_own))
        sc = row_scores(table, i, arr["frame"], arr["track_id"])
        ok = np.isfinite(sc)
        det_f.append(arr["frame"][ok].astype(np.int64) + offset), det_b.append(arr["box"][ok]), det_s.append(sc[ok])
        sel = table.video == i
        overlap[sel] = LOC.object_row_mean(inside, T, arr["frame"], arr["track_id"], table.clip[sel], table.track[sel])
        own_object[sel] = LOC.object_row_mean(box_own, T, arr["frame"], arr["track_id"], table.clip[sel],
                                              table.track[sel]) > 0
        clip_abn = np.zeros(-(-int(n) // T), bool)
        np.logical_or.at(clip_abn, np.arange(int(n)) // T, labels[i].astype(bool))
        covered = np.zeros_like(clip_abn)
        covered[table.clip[sel][overlap[sel] >= thr]] = True
        n_abn_clips += int(clip_abn.sum())
        n_covered += int((covered & clip_abn).sum())
        offset += int(n)
    res = LOC.rbdc_tbdc(np.concatenate(det_f), np.concatenate(det_b), np.concatenate(det_s), np.concatenate(gt_f),
                        np.concatenate(gt_b), np.concatenate(gt_t), int(offset), beta, alpha, float(cfg["max_fpr"]))
    # objects on the annotated anomaly (positive) vs objects in clips without an abnormal frame (negative)
    clip_has_abn = np.zeros(len(table.video), bool)
    for i, y in enumerate(labels):
        sel = table.video == i
        ca = np.zeros(-(-len(y) // T), bool)
        np.logical_or.at(ca, np.arange(len(y)) // T, y.astype(bool))
        clip_has_abn[sel] = ca[table.clip[sel]]
    pos, neg = overlap >= thr, ~clip_has_abn
    obj = {s: {"hsc": _auc(table.raw[pos, j], table.raw[neg, j]), "knn_1": _auc(table.knn[pos, j], table.knn[neg, j]),
               "n_positive": int((pos & np.isfinite(table.raw[:, j])).sum()),
               "n_negative": int((neg & np.isfinite(table.raw[:, j])).sum())}
           for j, s in enumerate(table.streams)}
    obj["fused"] = {"hsc": _auc(table.fused[pos], table.fused[neg]), "n_positive": int(pos.sum()),
                    "n_negative": int(neg.sum())}
    # within each video: its abnormal objects against the median object no anomaly mask touches
    ranks = {}
    for i, v in enumerate(table.videos):
        sel = table.video == i
        a, n = table.fused[sel & pos], table.fused[sel & (overlap == 0)]
        if len(a) and len(n):
            med = float(np.median(n))
            own = table.fused[sel & pos & own_object]
            ranks[v] = {"above_median_normal": float((a > med).mean()), "median_abnormal_percentile":
                        float(np.median(np.searchsorted(np.sort(n), a, side="right") / len(n))),
                        "n_abnormal": int(len(a)), "n_normal": int(len(n)),
                        "own_box_above_median_normal": float((own > med).mean()) if len(own) else None,
                        "n_own_box": int(len(own))}
    return {
        "available": True, **res,
        "detections": "every tracked box of every test frame, scored with its object's fused score (mean over "
                      f"streams of the score{' after the tail calibration' if cfg['calibration'] == 'tail' else ''}, "
                      "standardised by the stream's training scores)",
        "ground_truth": f"connected components (>= {int(cfg['min_region_area'])} px) of the pixel masks per frame; "
                        "tracks link overlapping regions of consecutive frames",
        "parse_coverage": n_covered / n_abn_clips if n_abn_clips else None,
        "n_abnormal_clips": n_abn_clips, "n_abnormal_clips_covered": n_covered,
        "regions_with_own_box": (sum(k for k, _ in own_box.values()) / max(sum(r for _, r in own_box.values()), 1)
                                 if own_box else None),
        "regions_with_own_box_per_video": {v: k / r for v, (k, r) in own_box.items() if r},
        "regions_with_own_box_definition": f"share of the annotated regions (connected components of a frame's "
                                           f"masks) that a tracked box of their frame overlaps with IoU >= {beta:g} "
                                           f"while lying >= {LOC.OWN_BOX_INSIDE:g} inside the frame's masks: the "
                                           "anomalies the parser gave a box of their own",
        "parse_coverage_definition": f"share of clips holding an abnormal frame in which some parsed object's boxes "
                                     f"are covered >= {thr:g} by their own frames' anomaly masks (mean over the "
                                     "object's frames in the clip)",
        "object_auc": obj,
        "object_auc_definition": f"per stream, objects whose boxes are covered >= {thr:g} by their own frames' "
                                 "anomaly masks (mean over the object's frames in its clip; positive) vs objects in "
                                 "clips without an abnormal frame (negative); "
                                 "hsc: the stream's score; knn_1: squared distance to the nearest training sample "
                                 "over the same autoencoder inputs (diagnostic baseline); both averaged along "
                                 "tracks first where evaluation.track_window is set",
        "object_rank_per_video": ranks,
        "object_rank_definition": f"per test video, its abnormal objects (boxes covered >= {thr:g} by their own "
                                  "frames' anomaly masks) against its objects no mask of their frames touches, by "
                                  "fused score: the share above the normal objects' median, and the abnormal objects' "
                                  "median percentile among the normal ones; own_box: the same share for the abnormal "
                                  "objects that are, in some frame of their clip, an annotated region's own box (see "
                                  "regions_with_own_box), not a bystander its mask grazes",
    }


def load_labels(ds, videos: list[str], n_frames) -> tuple[list[np.ndarray] | None, str | None]:
    """The test videos' frame labels, or None with the reason the AUCs are undefined: no label files,
    label files for only some test videos (the missing ones named), or one class only."""
    files = {v: ds.label_file(v) or ds.expected_label_file(v) for v in videos}
    missing = [f"{v} ({p})" if p is not None else v for v, p in files.items() if p is None or not p.exists()]
    if len(missing) == len(videos):
        return None, "the dataset has no frame labels (scores and plots only)"
    if missing:
        return None, (f"label files missing for {len(missing)} of {len(videos)} test videos: {', '.join(missing)}; "
                      "an AUC over the others would not be the test set's")
    labels = [ds.frame_labels(v, int(n)) for v, n in zip(videos, n_frames)]
    n_abnormal = int(sum(int(y.sum()) for y in labels))
    total = int(sum(len(y) for y in labels))
    if n_abnormal == 0:
        return labels, f"all {total} test frames are labelled normal: an AUC needs abnormal frames too"
    if n_abnormal == total:
        return labels, f"all {total} test frames are labelled abnormal: an AUC needs normal frames too"
    return labels, None


def _dataset_check(path: str | None) -> dict:
    """The check_dataset verdict: ``dataset_check`` (benchmark, complete, counts found) and, for a copy
    that differs from its benchmark (allow_partial), ``partial_dataset`` with the differences."""
    if path is None:
        return {"dataset_check": None}
    chk = json.loads(Path(path).read_text())
    out = {"dataset_check": {k: chk.get(k) for k in ("benchmark", "complete", "found", "expected", "warnings")}}
    if chk.get("complete") is False:
        out["partial_dataset"] = {"benchmark": chk["benchmark"], "differences": chk["differences"],
                                  "note": "this copy differs from the benchmark: the AUCs are not the benchmark's"}
    return out


def fusion_weights(scores_file: str, streams: list[str]) -> tuple[dict[str, float], dict | None]:
    """Each stream's weight in the fusion (the score stage's, from the yardstick; 1 in a file
    without one) and the yardstick's figures (None when the run did not choose with it)."""
    with open_store(scores_file, "scores") as f:
        w = {s: float(f[s].attrs.get("weight", 1.0)) for s in streams}
        yardstick = json.loads(f.attrs["yardstick"]) if "yardstick" in f.attrs else None
    if not sum(w.values()):
        raise ValueError(f"{scores_file}: every stream has weight 0; rerun validate and score")
    return w, yardstick


def fusion_rule(setting: str, yardstick: dict | None) -> tuple[str, str]:
    """``evaluation.fusion`` resolved: ``auto`` is the yardstick's choice (``mean`` without one)."""
    if setting != "auto":
        return setting, "evaluation.fusion (set in the configuration)"
    if yardstick is None or "fusion" not in yardstick:
        return "mean", "evaluation.fusion: auto, and the run has no yardstick (validation.choose: false)"
    return yardstick["fusion"]["rule"], "the yardstick (validation/validation.json): " + yardstick["fusion"]["reason"]


def read_scores(scores_file: str, track_window: int):
    """(streams, videos, n_frames, clip length, per stream the frame scores of each test video, the
    training scores, their statistics, the objects per clip or None) of a ``scores`` file; with
    ``track_window`` every object score, test and training, is first averaged along its track
    (:func:`hscvad.evaluation.objects.track_mean`) and the frames take their clip's highest average."""
    from ..evaluation.objects import clip_max, score_stats, track_mean, train_scores

    with open_store(scores_file, "scores") as f:
        streams, videos, n_frames, T, stats = scores_header(f)
        offsets = np.concatenate([[0], np.cumsum(n_frames)])
        missing = [s for s in streams if "train_score" not in f[s]]
        if missing:
            raise ValueError(f"{scores_file}: stream(s) {missing} have no training scores (train_score; an older "
                             "score file): rerun score")
        have_objects = all("test_video" in f[s] for s in streams)
        if track_window and not all("test_track" in f[s] for s in streams):
            raise ValueError(f"{scores_file}: no per-object identities to average along tracks with "
                             "(evaluation.track_window; an older score file): rerun score")
        train, raw = {}, {}
        for s in streams:
            g = f[s]
            train[s] = train_scores(g, scores_file, s, track_window)
            if track_window:
                te = track_mean(g["test_score"][()], g["test_video"][()], g["test_track"][()], g["test_clip"][()],
                                track_window, f"{scores_file}, stream {s}")
                frames = clip_max(te, g["test_video"][()], g["test_clip"][()], n_frames, T)
                stats = {**stats, s: score_stats(train[s])}
            else:
                frames = g["frame_score"][()]
            raw[s] = [frames[offsets[i] : offsets[i + 1]] for i in range(len(videos))]
        # objects per clip (calibration crowd); a score file without per-object rows has none
        counts = {s: clip_counts(f[s]["test_video"][()], f[s]["test_clip"][()], f[s]["test_score"][()], n_frames, T)
                  for s in streams} if have_objects else None
    return streams, videos, n_frames, T, raw, train, stats, counts


def run(dataset_name: str, dataset_cfg: dict, scores_file: str, out_json: str, out_csv: str, plot_dir: str,
        params: dict, table: str | None = None, video_plots: str | None = None,
        track_files: list[str] | None = None, explanations: str | None = None,
        dataset_check: str | None = None, threads: int = 1) -> dict:
    """``threads`` > 1: the figures are drawn by ``threads - 1`` worker processes while this one
    computes the localisation figures and writes the tables (:class:`hscvad.parallel.Workers`; the
    same files)."""
    with Workers(threads - 1) as workers:
        return _run(dataset_name, dataset_cfg, scores_file, out_json, out_csv, plot_dir, params, table, video_plots,
                    track_files, explanations, dataset_check, workers)


def _run(dataset_name, dataset_cfg, scores_file, out_json, out_csv, plot_dir, params, table, video_plots, track_files,
         explanations, dataset_check, workers) -> dict:
    params = {**params, "evaluation": _with_defaults(params["evaluation"])}
    window = int(params["evaluation"]["track_window"])
    streams, videos, n_frames, T, raw, train, stats, counts = read_scores(scores_file, window)
    weights, yardstick = fusion_weights(scores_file, streams)
    rule, rule_from = fusion_rule(params["evaluation"]["fusion"], yardstick)
    params = {**params, "evaluation": {**params["evaluation"], "fusion": rule}}
    ds = build_dataset(dataset_name, dataset_cfg)
    labels, undefined = load_labels(ds, videos, n_frames)
    if undefined:
        log.warning("evaluate %s: no AUC: %s", dataset_name, undefined)

    per_stream = {}
    for s in streams:
        per_stream[s], *_ = evaluate_streams({s: raw[s]}, stats, labels, T, params, {s: train[s]},
                                             {s: counts[s]} if counts else None)
    fused, ref_scores, keep, strict_scores = evaluate_streams(raw, stats, labels, T, params, train, counts, weights)
    if window:  # the same with each clip's own scores, beside the configured averaging along tracks
        *_, raw0, train0, stats0, _ = read_scores(scores_file, 0)
        alt, *_ = _protocols(raw0, stats0, labels, T, params["evaluation"], params["evaluation"]["calibration"],
                             train0, counts, weights)
        for p in ("strict", "reference"):
            fused[f"{p}_track_window_0"] = {**alt[p], "track_window": 0}
    per_stream["fused"] = fused
    Path(plot_dir).mkdir(parents=True, exist_ok=True)
    workers.submit(plots.score_curves, videos, strict_scores, ref_scores, keep, labels,
                   Path(plot_dir) / "score_curves.pdf", Path(plot_dir) / "score_curves.png", dataset_name,
                   video_dir=video_plots)
    workers.submit(plots.histograms, strict_scores, ref_scores, keep, labels, Path(plot_dir) / "histogram.png",
                   dataset_name)
    default = params["evaluation"]["protocol"]
    desc = _describe(params, T)
    with open_store(scores_file, "scores") as f:
        readout = json.loads(f.attrs["readout"]) if "readout" in f.attrs else None
    loc = localisation(ds, scores_file, track_files or [], labels, params) if track_files else {
        "available": False, "reason": "no track files given"}
    result = {
        "dataset": dataset_name,
        "protocol": default,
        "micro_auc": fused[default]["micro_auc"],
        "macro_auc": fused[default]["macro_auc"],
        "protocols": {p: {**fused[p], **desc.get(p, {})} for p in fused},
        "streams": {s: {"protocols": r, "micro_auc": r[default]["micro_auc"], "macro_auc": r[default]["macro_auc"]}
                    for s, r in per_stream.items()},
        "n_test_videos": len(videos),
        "n_test_frames": int(n_frames.sum()),
        "n_abnormal_frames": int(sum(int(y.sum()) for y in labels)) if labels is not None else None,
        "has_labels": labels is not None,
        "auc_undefined_reason": undefined,
        "train_score_stats": stats,
        "fusion": {"streams": streams, "weights": {s: weights[s] / sum(weights.values()) for s in streams},
                   "rule": rule, "rule_from": rule_from,
                   "weights_from": ("the yardstick (validation/validation.json): " + yardstick["weights_reason"]
                                    if yardstick else "equal (validation.choose: false)"),
                   "statistics": "strict: each stream's mean and std of its training samples' scores (leave-one-"
                                 "video-out, train_score_stats); reference: min-max over the test set",
                   "calibration": params["evaluation"]["calibration"],
                   "reference": params["evaluation"]["reference"]["fusion"],
                   "reference_units": ({s: stats[s]["std"] for s in streams}
                                       if params["evaluation"]["reference"]["fusion"] == "training_spread" else None)},
        "readout": readout,
        "yardstick": yardstick,
        "localisation": loc,
        **_dataset_check(dataset_check),
        "explanations": ({"csv": explanations, "images": str(Path(explanations).parent.parent / "plots" / "explain")}
                         if explanations else None),
    }
    write_json(out_json, result)

    with atomic_path(out_csv) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["video", "frame", "label", *[f"raw_{s}" for s in streams], "strict", "reference"])
        ref_full = [np.full(int(n), np.nan) for n in n_frames]
        for r, k, sc in zip(ref_full, keep, ref_scores):
            r[k] = sc
        cols = [np.repeat(np.asarray(videos, dtype=object), n_frames),
                np.concatenate([np.arange(int(n)) for n in n_frames]),
                (np.concatenate(labels) if labels is not None else np.full(int(n_frames.sum()), -1)).astype(int),
                *(_fmt_column(np.concatenate(raw[s])) for s in streams),
                _fmt_column(np.concatenate(strict_scores)), _fmt_column(np.concatenate(ref_full))]
        w.writerows(zip(*cols))

    if table is not None:
        write_auc_table(table, per_stream)

    workers.wait()
    log.info("evaluate: %s", json.dumps({p: fused[p] for p in fused}))
    return result


def write_auc_table(path: str, per_stream: dict[str, dict]) -> None:
    """One row per (stream, protocol): the table of the run report."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["stream", "protocol", "micro_auc", "macro_auc", "n_videos_macro", "n_frames"])
        for stream, protocols in per_stream.items():
            for protocol, r in protocols.items():
                w.writerow([stream, protocol, _fmt4(r.get("micro_auc")), _fmt4(r.get("macro_auc")),
                            r.get("n_videos_macro", ""), r.get("n_frames", "")])


def _fmt4(x) -> str:
    return "" if x is None or not np.isfinite(x) else f"{float(x):.4f}"


def _fmt_column(x: np.ndarray) -> np.ndarray:
    """Floats as %.17g strings (they read back exactly, so the file reproduces auc.json's AUCs even
    where scores differ only in their last bits), non-finite values as empty fields."""
    x = np.asarray(x, np.float64)
    out = np.char.mod("%.17g", x).astype(object)
    out[~np.isfinite(x)] = ""
    return out


def main(job) -> None:
    o = job.output
    run(job.dataset, job.params["dataset"], job.input.scores, o.auc, o.csv, str(Path(o.curves).parent), job.params,
        table=o.table, video_plots=o.videos, track_files=job.input.tracks, explanations=job.input.explanations,
        dataset_check=job.input.check, threads=job.threads)
