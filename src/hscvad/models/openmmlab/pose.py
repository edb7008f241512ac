"""mmpose's top-down HRNet-w32."""

from __future__ import annotations

import numpy as np

from ..pose import PoseModel
from ..registry import Runtime
from .loading import OpenMMLabBackend


class MMPoseHRNet(PoseModel, OpenMMLabBackend):
    """Top-down HRNet-w32 on COCO (256x192): all persons of a frame in one forward pass."""
    uses_gpu = True  # PyTorch: CUDA when present

    def __init__(self, cfg: dict, runtime: Runtime, key: str):
        mcfg = self._config("mmpose", cfg)
        self._init("mmpose.apis:init_model", mcfg, cfg, runtime, key)

    def describe(self) -> str:
        return f"mmpose_hrnet({self.weights})"

    def keypoints(self, frame: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        import torch
        from mmpose.apis import inference_topdown

        if len(boxes) == 0:
            return np.zeros((0, 17, 3), np.float32)
        bgr, b = frame[:, :, ::-1].copy(), np.asarray(boxes, np.float32)
        self._calibrate_once(lambda: inference_topdown(self.model, bgr, b, "xyxy"))
        with torch.no_grad():
            res = inference_topdown(self.model, bgr, b, "xyxy")
        kp = np.stack([r.pred_instances.keypoints[0] for r in res]).astype(np.float32)
        sc = np.stack([r.pred_instances.keypoint_scores[0] for r in res]).astype(np.float32)
        return np.concatenate([kp, sc[..., None]], -1)
