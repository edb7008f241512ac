"""Throughput of the paper's backends (models: paper) at the paper's resolutions, random weights.

    python bench/openmmlab_backends.py                       # CPU, this machine's threads
    python bench/openmmlab_backends.py --device cuda         # the GPU check (bench/gpu_check.sh)

Per stage: YOLOv3 (608 px) per frame, mmdet ByteTrack per frame, DeepLabV3+ (Cityscapes test
scale 2048x1024) per frame, HRNet-w32 per person, PoseConv3D per 16-frame person clip, ViT-L/16
per crop, on a ShanghaiTech-sized frame (856x480). Random weights: the networks' cost does not
depend on the weights' values (the detector's NMS does a little; its boxes are capped at 100).
The last line combines them into frames per second of a scene with --persons people, the way
the pipeline runs them (scene on every --scene-stride-th frame, one ViT crop per person per
--crops frames), to set against the paper's ~21 FPS on one A6000 (docs/method.md §9).
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def timed(fn, repeat: int, warmup: int = 1) -> float:
    import torch

    for _ in range(warmup):
        fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / repeat


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--persons", type=int, default=8, help="people per frame for the combined figure")
    p.add_argument("--scene-stride", type=int, default=4)
    p.add_argument("--crops", type=int, default=4, help="ViT crops per person per 16-frame clip")
    p.add_argument("--skip", nargs="*", default=[],
                   help="stages to leave out (detect, track, scene, pose, motion, vit)")
    args = p.parse_args()

    import torch

    from hscvad.models.detection import Detections
    from hscvad.models.motion import build_motion
    from hscvad.models.registry import APPEARANCE, DETECTORS, POSE, SCENE, TRACKERS, Runtime

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device visible to torch")
    rt = Runtime(args.device, args.threads)
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (480, 856, 3), dtype=np.uint8)
    P = args.persons
    boxes = np.array([[40 + 90 * i, 150, 100 + 90 * i, 330] for i in range(P)], np.float32)
    where = torch.cuda.get_device_name(0) if args.device == "cuda" else f"{args.threads} threads"
    print(f"device {args.device} ({where}), frame 856x480, {P} persons, random weights, torch {torch.__version__}")
    sec: dict[str, float] = {}

    if "detect" not in args.skip:
        det = DETECTORS.build("mmdet_yolov3", {"input_size": 608}, rt, "detection")
        sec["detect"] = timed(lambda: det.detect(frame), args.repeat)
        print(f"  YOLOv3-D53 608px        {sec['detect'] * 1e3:8.1f} ms/frame   {1 / sec['detect']:7.1f} frames/s")
    if "track" not in args.skip:
        trk = TRACKERS.build("mmdet_bytetrack", {}, rt, "tracking")
        t = [0]

        def step():
            t[0] += 1
            b = boxes + [2 * t[0], 0, 2 * t[0], 0]
            trk.update(Detections(b, np.full(P, 0.9, np.float32), np.zeros(P, np.int64)))

        sec["track"] = timed(step, 20 * args.repeat)
        print(f"  ByteTrack (mmdet)       {sec['track'] * 1e3:8.2f} ms/frame")
    if "scene" not in args.skip:
        seg = SCENE.build("mmseg_deeplabv3plus", {}, rt, "scene")
        sec["scene"] = timed(lambda: seg.class_scores(frame), max(1, args.repeat - 1))
        print(f"  DeepLabV3+ R50 2048x1024 {sec['scene'] * 1e3:7.1f} ms/frame   {1 / sec['scene']:7.2f} frames/s")
    if "pose" not in args.skip:
        pose = POSE.build("mmpose_hrnet", {}, rt, "pose")
        per_frame = timed(lambda: pose.keypoints(frame, boxes), args.repeat)
        sec["pose"] = per_frame / P
        print(f"  HRNet-w32 256x192       {sec['pose'] * 1e3:8.1f} ms/person ({P} per forward pass)")
    if "motion" not in args.skip:
        mot = build_motion({"backend": "mmaction_posec3d", "mmaction_posec3d": {"batch_size": P}}, rt)
        K = np.zeros((P, 16, 17, 3), np.float32)
        K[..., 0] = 400 + rng.normal(0, 20, (P, 16, 17))
        K[..., 1] = 240 + rng.normal(0, 60, (P, 16, 17))
        K[..., 2] = 0.9
        M = np.ones((P, 16), bool)
        per_batch = timed(lambda: mot.embed(K, np.zeros((P, 16, 4), np.float32), M, (480, 856)), args.repeat)
        sec["motion"] = per_batch / P
        print(f"  PoseConv3D SlowOnly-R50 {sec['motion'] * 1e3:8.1f} ms/person-clip ({P} clips per forward pass)")
    if "vit" not in args.skip:
        vit = APPEARANCE.build("timm_vit", {"batch_size": 32}, rt, "appearance")
        crops = rng.integers(0, 255, (P * args.crops, 224, 224, 3), dtype=np.uint8)
        sec["vit"] = timed(lambda: vit.embed(crops), args.repeat) / len(crops)
        print(f"  ViT-L/16 224px          {sec['vit'] * 1e3:8.1f} ms/crop ({len(crops)} crops)")
    if len(sec) == 6:
        clip = (16 * (sec["detect"] + sec["track"]) + 16 / args.scene_stride * sec["scene"]
                + 16 * P * sec["pose"] + P * sec["motion"] + P * args.crops * sec["vit"])
        print(f"combined: {16 / clip:.2f} frames/s ({clip / 16 * 1e3:.0f} ms per frame; {P} persons, scene every "
              f"{args.scene_stride} frames, {args.crops} ViT crops per person-clip); "
              "the paper: ~21 frames/s on an A6000")


if __name__ == "__main__":
    main()
