"""The label-free validation score of finished runs: no test video, no test label is read.

    python bench/validation.py results/ped2 [NAME=results_folder ...] [--seed 0]

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
  spill-over onto its neighbours shows).

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


def validate(results: Path, seed: int, calibration: str = "tail", sigma: float = 6.0) -> dict:
    import h5py

    from hscvad.evaluation.objects import object_keys
    from hscvad.evaluation.protocols import crowd_surprise, tail_surprise
    from hscvad.evaluation.validation import KINDS, clip_auc, frame_auc, roc_auc, synthetic_rows
    from hscvad.features import load_samples
    from hscvad.h5store import read_arrays
    from hscvad.hsc.train import load_checkpoint, model_input, score_samples
    from hscvad.stages.score import holdout_groups
    from hscvad.stages.velocity import descriptor, stream_feature
    from hscvad.velocity import descriptor_names as names
    from hscvad.velocity import velocity_descriptor

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

    def vscore(feat):
        return score_samples(model, bank, model_input(feat, meta, "velocity"), train.scene_feat, tau,
                             query_group=groups, bank_group=bank_groups)

    rebuilt = vscore(feats["orig"])
    ok = np.allclose(rebuilt, ref["train_score"], rtol=1e-4, atol=1e-6)
    if not ok:
        raise SystemExit(f"{results}: rescoring the unaltered training samples does not reproduce train_score "
                         f"(max diff {np.abs(rebuilt - ref['train_score']).max():.3g})")

    clip_id = (train.video.astype(np.int64) << 32) | train.clip
    _, clip_inv = np.unique(clip_id, return_inverse=True)
    # each stream's objects per clip (evaluation.calibration: crowd)
    crowd_n = {s: np.bincount(clip_inv, np.isfinite(aligned[s]))[clip_inv] for s in streams}

    def standardised(s, x):  # calibrated (evaluation.calibration), then the strict protocol's standardisation
        tr = per[s]["train_score"].astype(np.float64)
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
    all_syn = []
    for kind in KINDS:
        syn_v = vscore(feats[kind])
        syn = {s: normal[s] for s in streams}
        syn["velocity"] = standardised("velocity", syn_v)
        syn_fused = np.nanmean([syn[s] for s in streams], 0)
        all_syn.append(syn_fused)
        c_auc, n_pos = clip_auc(fused, syn_fused, moving, clip_id, seed)
        f_auc, n_events = frame_auc(fused, syn_fused, moving, train.video, train.clip, train.n_frames,
                                    train.clip_length, sigma, seed)
        out["kinds"][kind] = {
            "k": KINDS[kind],
            "object_auc_velocity": roc_auc(syn_v[moving], ref["train_score"]),
            "object_auc_fused": roc_auc(syn_fused[moving], fused),
            "clip_auc_fused": c_auc, "n_positive_clips": n_pos,
            "frame_auc_fused": f_auc, "n_altered_event_clips": n_events}
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
    # all kinds in turn in the same videos: subtle anomalies beside extreme ones
    out["validation_frames"], _ = frame_auc(fused, np.stack(all_syn), moving, train.video, train.clip,
                                            train.n_frames, train.clip_length, sigma, seed)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="results/<dataset> folders, optionally NAME=folder")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--calibration", choices=["crowd", "tail", "none"], default="tail",
                    help="each stream's scores before fusion, as evaluation.calibration (default tail)")
    ap.add_argument("--sigma", type=float, default=6.0,
                    help="the frame figure's smoothing in frames, as evaluation.strict.sigma (Ped2: 6)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    a = ap.parse_args()
    from hscvad.denormals import flush_denormals

    flush_denormals()  # before torch starts its threads, as the stages do
    rows = {}
    for r in a.runs:
        name, _, folder = r.rpartition("=")
        rows[name or folder] = validate(Path(folder), a.seed, a.calibration, a.sigma)
    kinds = list(next(iter(rows.values()))["kinds"])
    head = " | ".join(f"{k}: object AUC velocity / fused, clip / frame AUC" for k in kinds)
    print(f"| run | {head} | normal videos' tail share min / max | validation (clips) | validation (frames) |")
    print("|---|" + "---|" * len(kinds) + "---|---|---|")
    for name, o in rows.items():
        cells = " | ".join(f"{o['kinds'][k]['object_auc_velocity']:.3f} / {o['kinds'][k]['object_auc_fused']:.3f}, "
                           f"{o['kinds'][k]['clip_auc_fused']:.3f} / {o['kinds'][k]['frame_auc_fused']:.3f}"
                           for k in kinds)
        t = o["normal_tail_share"]
        print(f"| {name} | {cells} | {t['min']:.3f} / {t['max']:.3f} ({t['worst_video']}) | {o['validation']:.4f} | "
              f"{o['validation_frames']:.4f} |")
    print(f"(calibration {a.calibration}; {next(iter(rows.values()))['n_normal']} held-out normal samples, "
          f"{next(iter(rows.values()))['n_moving']} moving ones altered; no test label read)")
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
