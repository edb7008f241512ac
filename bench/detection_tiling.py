"""Detection on frames of every size: boxes per frame and time per frame of the YOLOX settings.

    python bench/detection_tiling.py [--shared ../shared] [--threads 2] [--frames 20]

For each detector setting, in one process, one after the other:

- *tracked boxes per frame* over the two Avenue training videos in ../shared (640x360, crowded): the
  detect_track stage's own run (YOLOX, the pipeline's score threshold and classes, ByteTrack), the
  figure a crowd of half-people inflates;
- *person boxes / hand-counted people* on the annotated frames of Avenue video 16
  (tests/data/avenue_training_16_people.json);
- *ms per frame* of the detector alone on 360x240 (Ped2), 640x360 (Avenue) and 856x480 (the size of
  ShanghaiTech: Avenue frames resized, as no ShanghaiTech video is at hand) frames.

Settings: ``tiles`` (the 2x tiles alone, Ped2's: pieces of one person in two tiles stay two
boxes), ``tiles+whole`` (``full_frame: true``, the default, so Avenue's, ShanghaiTech's and own
footage's: the tiles, a pass over the whole frame, cut boxes dropped or joined), ``whole`` (upscale 1: one pass over the
letterboxed frame), ``single`` (``single_pass: true``: the enlarged frame in one pass, padded to a
multiple of 32, no tiles) and ``single+whole`` (that and the whole-frame pass).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from hscvad.config import load_config, stage_params, validate  # noqa: E402
from hscvad.h5store import read_arrays  # noqa: E402
from hscvad.models.registry import DETECTORS, Runtime  # noqa: E402
from hscvad.stages import detect_track  # noqa: E402

SETTINGS = {
    "tiles": {"full_frame": False},    # Ped2's (config.yaml)
    "tiles+whole": {"full_frame": True},  # the default: Avenue's, ShanghaiTech's, own footage's
    "whole": {"upscale": 1.0},
    "single": {"single_pass": True},  # the enlarged frame in one pass, no tiles
    "single+whole": {"single_pass": True, "full_frame": True},
}


def frames_of(path: Path) -> list[np.ndarray]:
    import cv2

    cap, out = cv2.VideoCapture(str(path)), []
    while True:
        ok, f = cap.read()
        if not ok:
            return out
        out.append(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--frames", type=int, default=20, help="frames per size timed")
    args = ap.parse_args()
    import cv2

    weights = str(args.shared / "models" / "yolox_nano_416x416.onnx")
    avenue = args.shared / "datasets" / "avenue" / "training_videos"
    people = json.loads((REPO / "tests" / "data" / "avenue_training_16_people.json").read_text())["frames"]
    v16 = frames_of(avenue / "16.avi")
    ped2 = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in
            sorted((args.shared / "datasets" / "ped2" / "testing" / "frames" / "01").glob("*.jpg"))[: args.frames]]
    sizes = {"360x240": ped2, "640x360": v16[: args.frames],
             "856x480": [cv2.resize(f, (856, 480), interpolation=cv2.INTER_LINEAR) for f in v16[: args.frames]]}
    rt = Runtime("cpu", args.threads)
    print(f"YOLOX-nano, {args.threads} threads; tracked boxes per frame of Avenue training videos 12 / 16 (the "
          "detect_track stage); person boxes per hand-counted person on video 16's annotated frames")
    print(f"{'setting':<11} {'tracked boxes/frame':>20} {'boxes/person':>13} "
          + " ".join(f"{'ms/frame ' + s:>17}" for s in sizes))
    for name, setting in SETTINGS.items():
        cfg = validate(load_config())
        cfg["detection"]["yolox"].update(weights=weights, **setting)
        cfg["datasets"] = {"av": {"adapter": "avenue", "root": str(avenue.parent)}}
        params = stage_params(cfg, "av", "detect_track")
        per_video = {}
        with tempfile.TemporaryDirectory() as tmp:
            for video in ("12", "16"):
                out = Path(tmp) / f"{video}.h5"
                ds = {"adapter": "avenue", "root": str(avenue.parent)}
                detect_track.run("av", ds, "train", video, str(out), params, rt)
                arr, attrs = read_arrays(out, "tracks")
                per_video[video] = len(arr["frame"]) / int(attrs["n_frames"])
        det = DETECTORS.build("yolox", cfg["detection"]["yolox"], rt)
        ratio = []
        threshold = cfg["detection"]["score_threshold"]
        for i, ann in people.items():
            d = det.detect(v16[int(i)])
            ratio.append(((d.classes == 0) & (d.scores >= threshold)).sum() / len(ann["x"]))
        ms = []
        for frames_ in sizes.values():
            det.detect(frames_[0])
            t = time.perf_counter()
            for f in frames_:
                det.detect(f)
            ms.append(1000 * (time.perf_counter() - t) / len(frames_))
        tracked = f"{per_video['12']:.1f} / {per_video['16']:.1f}"
        times = " ".join(f"{m:>17.0f}" for m in ms)
        print(f"{name:<11} {tracked:>20} {np.mean(ratio):>13.2f} {times}", flush=True)


if __name__ == "__main__":
    main()
