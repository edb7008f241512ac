"""The label-free validation score of finished runs: no test video, no test label is read.

    python bench/validation.py results/ped2 [NAME=results_folder ...] [--seed 0] [--track-window 0 1 2]

For each run (a ``results/<dataset>`` folder of a run with the velocity stream), synthetic anomalies
are made from its training tracks (``fast``: twice the speed; ``rush``: four times; ``glide``: a
rigid body at 1.5x the speed; hscvad.evaluation.validation) and scored by the run's trained model
leave-one-video-out, as the score stage scores its training samples. Printed per run:

- object AUC of each kind's synthetic samples against every held-out normal training sample, for
  the velocity stream and the fused score (each stream calibrated by its training scores'
  tail surprise and standardised as the strict protocol does, then averaged);
- clip AUC: each training clip with a moving object, once with one of them altered, against every
  clip as it is (clip score: highest fused object score, Eq. 12 before smoothing);
- the held-out normal videos' share of clips above the pooled 99th percentile of clip scores
  (lowest / highest video; 0.01 each when a video's score level does not depend on its crowd);
- frame AUC: in each training video two clips of every ten hold one altered object, frames score
  their clip's highest fused object score and are smoothed per video (``--sigma``, the strict
  protocol's), and the altered clips' frames are the positives: the test AUC's own construction,
  with what a high score spills onto its neighbours;
- ``validation``: the mean of the ``fast`` and ``glide`` clip AUCs, the single figure the gait
  columns were chosen by; ``validation (frames)``: the frame AUC with all three kinds in turn in the
  same videos (subtle anomalies beside extreme ones, as on a test set, which is where a score's
  spill-over onto its neighbours shows);
- anomalies that last, the same frame AUC with one object altered over a stretch of its track:
  ``validation (runs)``, two consecutive clips of one track (an object that misbehaves for a while,
  normal before and after); ``validation (tracks)``, whole tracks (a rider is a rider for as long as
  it is in view). Spans of about a fifth of each video's clips, kept apart; positives are the
  altered spans' frames.

``--track-window`` scores the frame figures with ``evaluation.track_window`` averaging (each
object's score, and each training score that calibrates it, averaged along its track), one row per
window; the object and clip AUCs are each clip's own scores. Averaging along tracks dilutes an
anomaly shorter than the window and steadies one that lasts: the three frame figures show both.

``--calibration`` as ``evaluation.calibration``: ``tail`` (the default), ``crowd`` (each stream's tail
surprise corrected for the number of objects the stream scored in the sample's clip) or ``none``
(the streams' raw scores standardised by their training scores).

Objects are the velocity stream's training samples; a stream without some of them (the motion
stream keeps only long enough tracklets) leaves them out of its part of the fused mean. Checks on
the way: the velocity features rebuilt from the tracks and flow files equal the run's stored ones,
and the rebuilt scores of the unaltered samples equal the run's ``train_score``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def _videos(f, key):
    return [v.decode() if isinstance(v, bytes) else v for v in f[key][()]]


def validate(results: Path, seed: int, calibration: str = "tail", sigma: float = 6.0, track_window: int = 0) -> dict:
    import h5py

    from hscvad.evaluation.objects import object_keys, track_mean
    from hscvad.evaluation.protocols import crowd_surprise, tail_surprise
    from hscvad.evaluation.validation import (
        KINDS,
        clip_auc,
        clip_events,
        event_frame_auc,
        roc_auc,
        synthetic_rows,
        track_events,
    )
    from hscvad.features import load_samples
    from hscvad.h5store import read_arrays
    from hscvad.hsc.readout import holdout_groups, nn_distance
    from hscvad.hsc.train import load_checkpoint, model_input, score_samples
    from hscvad.velocity import descriptor, stream_feature, velocity_descriptor
    from hscvad.velocity import descriptor_names as names

    with h5py.File(results / "scores.h5", "r") as f:
        streams = [s.decode() if isinstance(s, bytes) else s for s in f.attrs["streams"]]
        if "velocity" not in streams:
            raise SystemExit(f"{results}: the run has no velocity stream; the synthetic anomalies alter motion")
        if "train_videos" not in f:
            raise SystemExit(f"{results}/scores.h5 has no training identities (written since the label-free "
                             "validation): rerun score")
        train_videos = _videos(f, "train_videos")
        per = {s: {k: f[s][k][()] for k in ("train_score", "train_video", "train_clip", "train_track")}
               for s in streams}
        tau = float(f["velocity"].attrs["tau"])
        ro = json.loads(f["velocity"].attrs["readout"])
    ref = per["velocity"]

    def keys(p):
        return object_keys(p["train_video"], p["train_clip"], p["train_track"])

    # each stream's training scores in the velocity stream's sample order (NaN where a stream, such as
    # motion with its minimum tracklet length, has no such sample)
    ref_keys = keys(ref)
    aligned = {}
    for s in streams:
        k = keys(per[s])
        order = np.argsort(k)
        pos = np.clip(np.searchsorted(k[order], ref_keys), 0, max(len(k) - 1, 0))
        hit = (k[order][pos] == ref_keys) if len(k) else np.zeros(len(ref_keys), bool)
        aligned[s] = np.where(hit, per[s]["train_score"][order][pos] if len(k) else np.nan, np.nan)

    vfiles = [str(results / "velocity" / "train" / f"{v}.h5") for v in train_videos]
    sfiles = [str(results / "scene" / "train" / f"{v}.h5") for v in train_videos]
    train = load_samples(vfiles, sfiles, "velocity")
    feats = {kind: [] for kind in ("orig", *KINDS)}
    moving = []
    for v in train_videos:
        tr, _ = read_arrays(str(results / "tracks" / "train" / f"{v}.h5"), "tracks")
        fl, fa = read_arrays(str(results / "flow" / "train" / f"{v}.h5"), "flow")
        _, va = read_arrays(str(results / "velocity" / "train" / f"{v}.h5"), "velocity")
        vcfg = {"parts": list(va["parts"]), "gait_columns": list(va.get("gait_columns", [])) or None,
                "log_scale_px": va["log_scale_px"], "log_scale_rel": va["log_scale_rel"]}
        bins, edges, T = int(fa["orientation_bins"]), list(fa["magnitude_edges"]), int(va["clip_length"])
        args = (T, bins, edges, vcfg)
        raw = velocity_descriptor(tr["frame"], tr["track_id"], tr["box"], fl["stats"], T, bins, edges)[2]
        feats["orig"].append(stream_feature(raw, names(bins, edges), vcfg)[0])
        for kind in KINDS:
            b, st = synthetic_rows(kind, tr["frame"], tr["track_id"], tr["box"], fl["stats"], bins, edges)
            feats[kind].append(descriptor(tr["frame"], tr["track_id"], b, st, *args)[2])
        # a sample moves when its centre travels >= 0.5 px / frame on average
        moving.append(raw[:, names(bins, edges).index("speed")] >= 0.5)
    feats = {k: np.concatenate(v) for k, v in feats.items()}
    moving = np.concatenate(moving)
    if not np.allclose(feats["orig"], train.feat, atol=1e-5):
        raise SystemExit(f"{results}: velocity features rebuilt from tracks and flow differ from the stored ones "
                         "(the run's code or settings differ from this checkout's): rerun velocity")

    models, meta = load_checkpoint(str(results / "hsc" / "model.pt"))
    model, bank = models["velocity"]
    if ro.get("bank") == "encoded":  # the read-out used the final encoder's codes (as the score stage)
        import torch

        from hscvad.hsc.train import encode

        z = encode(model, model_input(train.feat, meta, "velocity"), train.scene_feat, "cpu")
        bank = torch.cat([z, bank[len(z):]])
    groups, _ = holdout_groups(train.video)
    bank_groups = np.concatenate([groups, np.full(len(bank) - len(groups), -1, np.int64)])

    ref_in = model_input(train.feat, meta, "velocity")

    def vscore(feat):
        if ro.get("score") == "knn":  # the run ships the 1-NN distance for this stream (the yardstick's choice)
            return nn_distance(model_input(feat, meta, "velocity"), ref_in, groups, groups)
        return score_samples(model, bank, model_input(feat, meta, "velocity"), train.scene_feat, tau,
                             query_group=groups, bank_group=bank_groups)

    rebuilt = vscore(feats["orig"])
    ok = np.allclose(rebuilt, ref["train_score"], rtol=1e-4, atol=1e-6)
    if not ok:
        raise SystemExit(f"{results}: rescoring the unaltered training samples does not reproduce train_score "
                         f"(max diff {np.abs(rebuilt - ref['train_score']).max():.3g})")

    window = int(track_window)

    def along_tracks(x):  # evaluation.track_window, over the velocity stream's samples
        return track_mean(x, train.video, train.track, train.clip, window)

    clip_id = (train.video.astype(np.int64) << 32) | train.clip
    _, clip_inv = np.unique(clip_id, return_inverse=True)
    # each stream's objects per clip (evaluation.calibration: crowd)
    crowd_n = {s: np.bincount(clip_inv, np.isfinite(aligned[s]))[clip_inv] for s in streams}

    # each stream's training scores averaged along tracks as evaluate averages them: the reference
    # that calibrates and standardises scores averaged the same way
    reference = {s: track_mean(per[s]["train_score"], per[s]["train_video"], per[s]["train_track"],
                               per[s]["train_clip"], window) for s in streams}

    def standardised(s, x, along=False):
        """Calibrated (evaluation.calibration), then the strict protocol's standardisation, against the
        stream's training scores in their clips, or ``along`` tracks (for scores averaged the same way)."""
        tr = reference[s] if along else per[s]["train_score"].astype(np.float64)
        if calibration == "none":
            return (x - tr.mean()) / (tr.std() or 1.0)
        c_tr = tail_surprise(tr, tr)
        c = tail_surprise(x, tr)
        if calibration == "crowd":
            c = crowd_surprise(c, crowd_n[s])
        return (c - c_tr.mean()) / (c_tr.std() or 1.0)

    normal = {s: standardised(s, aligned[s]) for s in streams}
    fused = np.nanmean([normal[s] for s in streams], 0)
    out = {"n_normal": int(len(fused)), "n_moving": int(moving.sum()), "kinds": {}}
    raw_syn = []
    for kind in KINDS:
        syn_v = vscore(feats[kind])
        raw_syn.append(syn_v)
        syn = {s: normal[s] for s in streams}
        syn["velocity"] = standardised("velocity", syn_v)
        syn_fused = np.nanmean([syn[s] for s in streams], 0)
        c_auc, n_pos = clip_auc(fused, syn_fused, moving, clip_id, seed)
        out["kinds"][kind] = {
            "k": KINDS[kind],
            "object_auc_velocity": roc_auc(syn_v[moving], ref["train_score"]),
            "object_auc_fused": roc_auc(syn_fused[moving], fused),
            "clip_auc_fused": c_auc, "n_positive_clips": n_pos}
    # per held-out normal video: share of its clips above the pooled 99th percentile of clip scores
    uniq, inv = np.unique(clip_id, return_inverse=True)
    cmax = np.full(len(uniq), -np.inf)
    np.maximum.at(cmax, inv, fused)
    tail = np.quantile(cmax, 0.99)
    cvid = (uniq >> 32).astype(np.int64)
    share = np.bincount(cvid, cmax > tail) / np.maximum(np.bincount(cvid), 1)
    out["normal_tail_share"] = {"min": float(share.min()), "max": float(share.max()),
                                "worst_video": train_videos[int(share.argmax())]}
    out["validation"] = float(np.mean([r["clip_auc_fused"] for k, r in out["kinds"].items() if k != "rush"]))
    # the frame figures: the events' samples altered (all kinds in turn in the same videos: subtle
    # anomalies beside extreme ones), every stream's scores averaged along tracks as the score stage
    # does, calibrated, fused, a clip's highest score, smoothed
    raw_syn = np.stack(raw_syn)

    def event_auc(chosen, kind, positive):
        fused_scores = []
        for s in streams:
            x = np.array(aligned[s], np.float64, copy=True)
            if s == "velocity":
                x[chosen] = raw_syn[kind, chosen]
            fused_scores.append(standardised(s, along_tracks(x), along=True))
        f = np.nanmean(fused_scores, 0)
        return event_frame_auc(f, train.video, train.clip, train.n_frames, train.clip_length, positive, sigma,
                               floor=float(min(np.nanmin(f), np.nanmin(fused))))

    n_kinds = len(KINDS)
    events = clip_events(moving, train.video, train.clip, train.n_frames, train.clip_length, seed, n_kinds=n_kinds)
    out["validation_frames"] = event_auc(*events)
    for i, kind in enumerate(KINDS):  # each kind alone, in every event
        out["kinds"][kind]["frame_auc_fused"] = event_auc(events[0], np.full(len(events[0]), i), events[2])
    tracks = track_events(moving, train.video, train.track, train.clip, train.n_frames, train.clip_length, seed,
                          n_kinds=n_kinds)
    out["validation_tracks"] = event_auc(*tracks)
    runs = track_events(moving, train.video, train.track, train.clip, train.n_frames, train.clip_length, seed,
                        n_kinds=n_kinds, run=2)
    out["validation_runs"] = event_auc(*runs)
    out["n_altered_tracks_samples"] = int(len(tracks[0]))
    out["track_window"] = window
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="results/<dataset> folders, optionally NAME=folder")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--calibration", choices=["crowd", "tail", "none"], default="tail",
                    help="each stream's scores before fusion, as evaluation.calibration (default tail)")
    ap.add_argument("--sigma", type=float, default=6.0,
                    help="the frame figure's smoothing in frames, as evaluation.strict.sigma (Ped2: 6)")
    ap.add_argument("--track-window", type=int, nargs="+", metavar="W", default=[0],
                    help="score each run with these evaluation.track_window values in turn (default 0), one row "
                         "each: the scores are averaged along tracks after the fact, nothing retrained")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    a = ap.parse_args()
    from hscvad.denormals import flush_denormals

    flush_denormals()  # before torch starts its threads, as the stages do
    rows = {}
    for r in a.runs:
        name, _, folder = r.rpartition("=")
        for w in a.track_window:
            label = (name or folder) + (f" (track_window {w})" if len(a.track_window) > 1 or w else "")
            rows[label] = validate(Path(folder), a.seed, a.calibration, a.sigma, w)
    kinds = list(next(iter(rows.values()))["kinds"])
    head = " | ".join(f"{k}: object AUC velocity / fused, clip / frame AUC" for k in kinds)
    print(f"| run | {head} | normal videos' tail share min / max | validation (clips) | validation (frames) | "
          "validation (runs) | validation (tracks) |")
    print("|---|" + "---|" * len(kinds) + "---|---|---|---|---|")
    for name, o in rows.items():
        cells = " | ".join(f"{o['kinds'][k]['object_auc_velocity']:.3f} / {o['kinds'][k]['object_auc_fused']:.3f}, "
                           f"{o['kinds'][k]['clip_auc_fused']:.3f} / {o['kinds'][k]['frame_auc_fused']:.3f}"
                           for k in kinds)
        t = o["normal_tail_share"]
        print(f"| {name} | {cells} | {t['min']:.3f} / {t['max']:.3f} ({t['worst_video']}) | {o['validation']:.4f} | "
              f"{o['validation_frames']:.4f} | {o['validation_runs']:.4f} | {o['validation_tracks']:.4f} |")
    first = next(iter(rows.values()))
    print(f"(calibration {a.calibration}; {first['n_normal']} held-out normal samples, {first['n_moving']} moving "
          f"ones altered; {first['n_altered_tracks_samples']} samples in whole altered tracks; object and clip AUCs "
          "from each clip's own score, frame figures after the run's averaging along tracks; no test label read)")
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
