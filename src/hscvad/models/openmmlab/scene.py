"""mmsegmentation's DeepLabV3+ (Cityscapes)."""

from __future__ import annotations

import numpy as np

from ..registry import Runtime
from ..scene import SceneModel
from .loading import OpenMMLabBackend

CITYSCAPES_CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)




class MMSegDeepLabV3Plus(SceneModel, OpenMMLabBackend):
    """DeepLabV3+ R50-D8 on Cityscapes (19 classes; background 0-10, foreground 11-18)."""
    uses_gpu = True  # PyTorch: CUDA when present

    classes = CITYSCAPES_CLASSES
    foreground = ("person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle")

    def __init__(self, cfg: dict, runtime: Runtime, key: str):
        mcfg = self._config("mmseg", cfg)
        scale = cfg["input_scale"]  # (w, h) the test pipeline resizes to, keeping the aspect ratio
        if scale:
            for step in mcfg.test_pipeline:
                if step["type"] == "Resize":
                    step["scale"] = tuple(scale)
        self._init("mmseg.apis:init_model", mcfg, cfg, runtime, key)

    def describe(self) -> str:
        return f"mmseg_deeplabv3plus({self.weights})"

    def class_scores(self, frame: np.ndarray) -> np.ndarray:
        import torch
        from mmseg.apis import inference_model

        bgr = frame[:, :, ::-1].copy()
        self._calibrate_once(lambda: inference_model(self.model, bgr))
        with torch.no_grad():
            res = inference_model(self.model, bgr)
            logits = res.seg_logits.data  # (19, H, W) at the frame's size
            return torch.softmax(logits, 0).cpu().numpy().astype(np.float32)
