"""Rule ``evaluate``: frame-level AUCs under both protocols, per-frame CSV and plots.

Every number in ``auc.json`` comes with the protocol that produced it (METHOD.md §8).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from ..data import build_dataset
from ..evaluation import plots
from ..evaluation.protocols import macro_auc, micro_auc, reference_protocol, strict_protocol
from ..h5store import atomic_path, open_store, write_json
from .common import log


def _describe(params: dict, T: int) -> dict[str, dict]:
    ev = params["evaluation"]
    ref, strict = ev["reference"], ev["strict"]
    return {
        "reference": {
            "frames": f"each video's first floor(n/{T})*{T} frames (the rest dropped)",
            "normalisation": "min-max over all test frames (positive scores), per stream; clips without objects 0",
            "smoothing": f"reference Gaussian, window {ref['window']}, sigma {ref['sigma']}, across video borders",
            "fusion": "equal-weight mean of streams",
        },
        "strict": {
            "frames": "every frame",
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


def evaluate_streams(raw, stats, labels, T, params):
    ev = params["evaluation"]
    ref_scores, keep = reference_protocol(raw, T, int(ev["reference"]["window"]), float(ev["reference"]["sigma"]))
    strict_scores = strict_protocol(raw, stats, float(ev["strict"]["sigma"]))
    ref_labels = [y[k] for y, k in zip(labels, keep)] if labels is not None else None
    res = {
        "reference": {**_aucs(ref_scores, ref_labels), "n_frames": int(sum(len(k) for k in keep))},
        "strict": {**_aucs(strict_scores, labels), "n_frames": int(sum(len(s) for s in strict_scores))},
    }
    unsmoothed = strict_protocol(raw, stats, 0.0)
    res["strict_unsmoothed"] = {**_aucs(unsmoothed, labels), "n_frames": res["strict"]["n_frames"]}
    return res, ref_scores, keep, strict_scores


def run(dataset_name: str, dataset_cfg: dict, scores_file: str, out_json: str, out_csv: str, plot_dir: str,
        params: dict, table: str | None = None, video_plots: str | None = None) -> dict:
    with open_store(scores_file, "scores") as f:
        streams = [s.decode() if isinstance(s, bytes) else s for s in f.attrs["streams"]]
        videos = [v.decode() for v in f["videos"][()]]
        n_frames = f["n_frames"][()]
        T = int(f.attrs["clip_length"])
        stats = json.loads(f.attrs["train_stats"])
        offsets = np.concatenate([[0], np.cumsum(n_frames)])
        raw = {s: [f[s]["frame_score"][offsets[i] : offsets[i + 1]] for i in range(len(videos))] for s in streams}
    ds = build_dataset(dataset_name, dataset_cfg)
    labels = None
    if ds.has_labels():
        labels = [ds.frame_labels(v, int(n)) for v, n in zip(videos, n_frames)]
    else:
        log.warning("evaluate: dataset %s has no frame labels; writing scores and plots without AUCs", dataset_name)

    per_stream = {}
    for s in streams:
        per_stream[s], *_ = evaluate_streams({s: raw[s]}, stats, labels, T, params)
    fused, ref_scores, keep, strict_scores = evaluate_streams(raw, stats, labels, T, params)
    per_stream["fused"] = fused
    default = params["evaluation"]["protocol"]
    desc = _describe(params, T)
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
        "train_score_stats": stats,
    }
    write_json(out_json, result)

    with atomic_path(out_csv) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["video", "frame", "label", *[f"raw_{s}" for s in streams], "strict", "reference"])
        for i, v in enumerate(videos):
            ref_full = np.full(int(n_frames[i]), np.nan)
            ref_full[keep[i]] = ref_scores[i]
            y = labels[i] if labels is not None else np.full(int(n_frames[i]), -1)
            cols = [raw[s][i] for s in streams]
            for t in range(int(n_frames[i])):
                w.writerow([v, t, int(y[t]), *(_fmt(c[t]) for c in cols), _fmt(strict_scores[i][t]), _fmt(ref_full[t])])

    if table is not None:
        write_auc_table(table, per_stream)

    Path(plot_dir).mkdir(parents=True, exist_ok=True)
    plots.score_curves(videos, strict_scores, ref_scores, keep, labels, Path(plot_dir) / "score_curves.pdf",
                       Path(plot_dir) / "score_curves.png", dataset_name, video_dir=video_plots)
    plots.histograms(strict_scores, ref_scores, keep, labels, Path(plot_dir) / "histogram.png", dataset_name)
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


def _fmt(x) -> str:
    return "" if not np.isfinite(x) else f"{float(x):.6g}"


def main(args) -> None:
    run(args.dataset, args.params["dataset"], args.input, args.output, args.csv, args.plots, args.params,
        table=args.table, video_plots=args.video_plots)
