"""Offline appearance backends and settings on a finished run's tracks (issue 13, item 3).

    python bench/appearance_backends.py [--results results/ped2] [--work results/ped2/bench_appearance]
                                        [--settings lite0_128 lite0_224 ...] [--threads 2]

For each setting, runs the ``appearance`` stage's own code (``hscvad.stages.appearance.run``) on
every training and test video of the run's tracks (``<results>/tracks``), into
``<work>/<setting>/`` (kept: a rerun reuses finished videos), and prints one row per setting:

- crops embedded and seconds per 1,000 crops (the stage's wall time, decoding included);
- the object-level AUC of a 1-nearest-neighbour over the features (squared Euclidean distance of a
  test sample's raw feature to the nearest training sample's, what ``score`` stores as
  ``test_knn_score`` with ``hsc.feature_norm: none``), with the positive / negative objects of
  ``evaluate`` (objects covered by the anomaly masks vs objects in clips without an abnormal frame);
- the frame micro AUC of that 1-NN score, strict protocol (clip max; frames without objects get
  the lowest training score; standardised by the training samples' leave-one-video-out 1-NN
  scores), unsmoothed and smoothed with the config's sigma.

These read test labels to *report*; nothing here selects a setting. The default was fixed before
this table was measured, by a rule that uses no labels (docs/results.md, "Appearance backends").
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from hscvad.config import load_schema, stage_params, validate  # noqa: E402
from hscvad.data import build_dataset  # noqa: E402
from hscvad.evaluation.localisation import object_mask_overlap  # noqa: E402
from hscvad.evaluation.objects import clip_max  # noqa: E402
from hscvad.evaluation.protocols import micro_auc, strict_protocol  # noqa: E402
from hscvad.features import load_samples  # noqa: E402
from hscvad.h5store import read_arrays  # noqa: E402
from hscvad.hsc.readout import nn_distance  # noqa: E402
from hscvad.models.registry import Runtime  # noqa: E402
from hscvad.stages import appearance as appearance_stage  # noqa: E402

#: name -> (backend, overrides of the appearance section, overrides of the backend's block)
SETTINGS: dict[str, tuple[str, dict, dict]] = {
    "lite0_128": ("efficientnet_lite0", {}, {"input_size": 128}),
    "lite0_224": ("efficientnet_lite0", {}, {"input_size": 224}),
    "lite0_224_ctx1.0": ("efficientnet_lite0", {"context": 1.0}, {"input_size": 224}),
    "lite0_224_ctx1.5": ("efficientnet_lite0", {"context": 1.5}, {"input_size": 224}),
    "lite0_224_crops1": ("efficientnet_lite0", {"crops_per_sample": 1}, {"input_size": 224}),
    "lite1_240": ("efficientnet_lite1", {}, {"input_size": 240}),
    "lite2_260": ("efficientnet_lite2", {}, {"input_size": 260}),
    "reid_0288": ("reid", {}, {}),
    "reid_0287": ("reid", {}, {"weights": "resources/models/person-reidentification-retail-0287.onnx",
                               "sha256": None}),
}


def extract(name: str, cfg: dict, dataset: str, results: Path, work: Path, threads: int) -> tuple[float, int]:
    """Runs the appearance stage for every video; returns (seconds, crops) of the videos run now."""
    backend, sec, block = SETTINGS[name]
    cfg = copy.deepcopy(cfg)
    cfg["appearance"].update(sec, backend=backend)
    cfg["appearance"][backend] = {**cfg["appearance"].get(backend, {}), **block}
    params = stage_params(cfg, dataset, "appearance")
    dcfg = params["dataset"]
    runtime = Runtime.resolve("cpu", threads)
    seconds, crops = 0.0, 0
    for split in ("train", "test"):
        for tracks in sorted((results / "tracks" / split).glob("*.h5")):
            out = work / name / split / tracks.name
            if out.exists():
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            t0 = time.perf_counter()
            r = appearance_stage.run(dataset, dcfg, split, tracks.stem, str(tracks), str(out), params, runtime)
            seconds += time.perf_counter() - t0
            crops += r["n_crops"]
    return seconds, crops


def measure(name: str, dataset: str, cfg: dict, results: Path, work: Path) -> dict:
    def files(split):
        return ([str(p) for p in sorted((work / name / split).glob("*.h5"))],
                [str(p) for p in sorted((results / "scene" / split).glob("*.h5"))])

    train, test = load_samples(*files("train"), "objects"), load_samples(*files("test"), "objects")
    te = nn_distance(test.feat, train.feat)
    tr = nn_distance(train.feat, train.feat, train.video, train.video)  # leave-one-video-out
    ds = build_dataset(dataset, cfg["datasets"][dataset])
    T = test.clip_length
    thr = float(cfg["evaluation"]["localisation"]["overlap"])
    frames = clip_max(te, test.video, test.clip, test.n_frames, T)
    bounds = np.concatenate([[0], np.cumsum(test.n_frames)])
    raw = {"appearance": [frames[a:b] for a, b in zip(bounds[:-1], bounds[1:])]}
    stats = {"appearance": {"mean": float(tr.mean()), "std": float(tr.std()), "min": float(tr.min())}}
    labels, overlap, clip_abn = [], np.zeros(len(te)), np.zeros(len(te), bool)
    for i, (v, n) in enumerate(zip(test.videos, test.n_frames)):
        y = ds.frame_labels(v, int(n)).astype(bool)
        labels.append(y)
        sel = test.video == i
        masks = ds.pixel_masks(v)
        if masks is not None:
            rows, _ = read_arrays(results / "tracks" / "test" / f"{v}.h5", "tracks")
            overlap[sel] = object_mask_overlap(masks, T, rows["frame"], rows["track_id"], rows["box"],
                                               test.clip[sel], test.track[sel])
        ca = np.zeros(-(-int(n) // T), bool)
        np.logical_or.at(ca, np.arange(int(n)) // T, y)
        clip_abn[sel] = ca[test.clip[sel]]
    from sklearn.metrics import roc_auc_score

    pos, neg = overlap >= thr, ~clip_abn
    obj = float(roc_auc_score(np.r_[np.ones(pos.sum()), np.zeros(neg.sum())], np.r_[te[pos], te[neg]]))
    sigma = float(cfg["evaluation"]["strict"]["sigma"])
    return {"object_auc": obj, "n_pos": int(pos.sum()), "n_neg": int(neg.sum()),
            "frame_unsmoothed": micro_auc(strict_protocol(raw, stats, 0.0), labels),
            "frame_smoothed": micro_auc(strict_protocol(raw, stats, sigma), labels),
            "n_train": len(train.feat), "n_test": len(te), "dim": int(train.feat.shape[1])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", default="results/ped2")
    ap.add_argument("--dataset", default=None, help="default: the results folder's name")
    ap.add_argument("--work", default=None, help="default: <results>/bench_appearance")
    ap.add_argument("--config", default=str(REPO / "config.yaml"))
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    results = Path(args.results)
    dataset = args.dataset or results.name
    work = Path(args.work) if args.work else results / "bench_appearance"
    cfg = validate(yaml.safe_load(Path(args.config).read_text()), load_schema())
    if not (results / "tracks" / "test").is_dir():
        sys.exit(f"{results}/tracks: no tracks; run the workflow up to detect_track first")
    print(f"{dataset}: appearance settings on {results}/tracks; 1-NN over raw features; test labels read to report")
    print("| setting | dim | crops (run now) | s / 1000 crops | object AUC (1-NN) | frame micro AUC, strict "
          "unsmoothed / smoothed |")
    print("|---|---|---|---|---|---|")
    for name in args.settings:
        seconds, crops = extract(name, cfg, dataset, results, work, args.threads)
        m = measure(name, dataset, cfg, results, work)
        speed = f"{1000 * seconds / crops:.1f}" if crops else "(cached)"
        print(f"| {name} | {m['dim']} | {crops} | {speed} | {m['object_auc']:.3f} | "
              f"{m['frame_unsmoothed']:.3f} / {m['frame_smoothed']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
