"""mmaction2's PoseConv3D: a motion feature and an action class per clip."""

from __future__ import annotations

import numpy as np

from ..motion import MotionModel
from ..registry import Runtime
from .loading import OpenMMLabBackend


class MMActionPoseC3D(MotionModel, OpenMMLabBackend):
    """PoseConv3D (SlowOnly-R50 on 17-channel keypoint heatmap volumes, NTU-60 xsub): the 512-d
    globally pooled backbone feature and the NTU-60 action (argmax of the classifier), many clips
    per forward pass. Heatmap volumes come from mmaction's own validation pipeline (``clip_len``
    frames sampled uniformly from the clip, default 48 as trained; 64x64 person-centred crop,
    56x56 heatmaps)."""
    uses_gpu = True  # PyTorch: CUDA when present

    dim = 512
    has_classes = True
    n_classes = 60  # NTU-60

    def __init__(self, cfg: dict, runtime: Runtime, key: str):
        mcfg = self._config("mmaction", cfg)
        from mmengine.dataset import Compose

        self._init("mmaction.apis:init_recognizer", mcfg, cfg, runtime, key)
        self.clip_len = int(cfg["clip_len"])  # frames sampled from a clip (trained with 48)
        for step in mcfg.val_pipeline:
            if step["type"] == "UniformSampleFrames":
                step["clip_len"] = self.clip_len
        self.pipeline = Compose(mcfg.val_pipeline)
        self.batch_size = int(cfg["batch_size"])

    def describe(self) -> str:
        return f"mmaction_posec3d({self.weights})"

    def _volume(self, kp: np.ndarray, m: np.ndarray, hw) -> np.ndarray:
        t = np.flatnonzero(m)
        t = t if len(t) else np.arange(len(m))
        anno = {"frame_dict": "", "label": -1, "img_shape": tuple(hw), "origin_shape": tuple(hw), "start_index": 0,
                "modality": "Pose", "total_frames": len(t),
                "keypoint": kp[t, :, :2][None].astype(np.float32),
                "keypoint_score": kp[t, :, 2][None].astype(np.float32)}
        return self.pipeline(anno)["inputs"].numpy()  # (1, 17, 48, 56, 56)

    def embed(self, keypoints, boxes, tracked, frame_hw):
        import torch

        S = len(keypoints)
        feat = np.zeros((S, self.dim), np.float32)
        cls = np.zeros(S, np.int64)
        for a in range(0, S, self.batch_size):
            vols = np.concatenate([self._volume(keypoints[i], tracked[i], frame_hw)
                                   for i in range(a, min(S, a + self.batch_size))])
            x = torch.from_numpy(vols).to(self.device)
            self._calibrate_once(lambda x=x: self.model.backbone(x))
            with torch.no_grad():
                fmap = self.model.backbone(x)  # (B, 512, T', H', W')
                pooled = fmap.mean(dim=(2, 3, 4))
                logits = self.model.cls_head.fc_cls(pooled)
            feat[a : a + len(vols)] = pooled.cpu().numpy()
            cls[a : a + len(vols)] = logits.argmax(1).cpu().numpy()
        return feat, cls
