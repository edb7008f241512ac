"""Benchmark: the pose stage (persons/s and skeleton coverage) on the real Avenue training videos and
a Ped2 test video, and the motion building blocks (descriptor, augmentation, classifier).

    python bench/pose_motion.py

Coverage: the share of tracked person boxes whose skeleton has at least 8 keypoints with score
>= 0.3. Needs ../shared (or resources/ linked to it).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from hscvad.config import load_config  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def main() -> int:
    from hscvad.config import stage_params, validate
    from hscvad.h5store import read_arrays
    from hscvad.models.registry import Runtime
    from hscvad.motion import augment
    from hscvad.motion.classifier import train_classifier
    from hscvad.motion.descriptor import skeleton_descriptor
    from hscvad.stages import detect_track, pose

    models = SHARED / "models"
    cfg = load_config()
    cfg["datasets"] = {"avenue": {"adapter": "avenue", "root": str(SHARED / "datasets" / "avenue")},
                       "ped2": {"adapter": "ucsd_ped", "root": str(SHARED / "datasets" / "ped2")}}
    cfg["detection"]["yolox"]["weights"] = str(models / "yolox_nano_416x416.onnx")
    cfg["pose"]["movenet"]["weights"] = str(models / "movenet_singlepose_lightning_int8_4.tflite")
    validate(cfg)
    rt = Runtime("cpu", 2)
    tmp = Path(tempfile.mkdtemp(prefix="hscvad-pose-"))
    print(f"{'video':<14}{'frames':>7}{'persons':>9}{'tracks':>7}{'pose s':>8}{'persons/s':>11}{'coverage':>10}")
    all_k = []
    for ds, split, video in (("avenue", "train", "12"), ("avenue", "train", "16"), ("ped2", "test", "01")):
        p_det, p_pose = stage_params(cfg, ds, "detect_track"), stage_params(cfg, ds, "pose")
        t, p = tmp / f"{ds}_{video}_t.h5", tmp / f"{ds}_{video}_p.h5"
        detect_track.run(ds, p_det["dataset"], split, video, str(t), p_det, rt)
        t0 = time.perf_counter()
        info = pose.run(ds, p_pose["dataset"], split, video, str(t), str(p), p_pose, rt)
        dt = time.perf_counter() - t0
        arr, attrs = read_arrays(p, "pose")
        k = arr["keypoints"]
        cov = ((k[:, :, 2] >= 0.3).sum(1) >= 8).mean() if len(k) else float("nan")
        print(f"{ds + '/' + video:<14}{attrs['n_frames']:>7}{len(k):>9}{info['n_tracks']:>7}{dt:>8.1f}"
              f"{len(k) / dt:>11.1f}{cov:>10.3f}")
        all_k.append(k)
    # motion building blocks on synthetic batches shaped like real clips (T = 16)
    rng = np.random.default_rng(0)
    k = np.concatenate(all_k)
    k = k[: min(len(k) // 16, 2000) * 16].reshape(-1, 16, 17, 3)
    boxes = np.concatenate([k[..., :2].min(2), k[..., :2].max(2)], -1)
    tracked = np.ones(k.shape[:2], bool)
    t0 = time.perf_counter()
    f = skeleton_descriptor(k, boxes, tracked)
    t1 = time.perf_counter()
    v = augment.variants(k, rng)
    t2 = time.perf_counter()
    x = np.concatenate([f, skeleton_descriptor(v["spatial"][0], boxes, tracked)])
    y = np.r_[np.zeros(len(f), int), np.ones(len(f), int)]
    t3 = time.perf_counter()
    train_classifier(x, y, epochs=20)
    t4 = time.perf_counter()
    print(f"motion descriptor: {len(f) / (t1 - t0):.0f} samples/s ({len(f)} clips of 16 frames)")
    print(f"augmentation, four variants: {len(k) / (t2 - t1):.0f} samples/s")
    print(f"binary classifier: {t4 - t3:.2f} s for 20 epochs on {len(x)} samples")
    return 0


if __name__ == "__main__":
    sys.exit(main())
