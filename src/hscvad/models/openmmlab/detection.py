"""mmdet's YOLOv3 detector and its ByteTrack / OC-SORT trackers."""

from __future__ import annotations

import numpy as np

from ..detection import Detections, Detector
from ..registry import Runtime
from .loading import OpenMMLabBackend, prepare


class MMDetYOLOv3(Detector, OpenMMLabBackend):
    """mmdet's YOLOv3 (DarkNet-53, COCO-80 classes, the labels of :data:`COCO_CLASSES`)."""
    uses_gpu = True  # PyTorch: CUDA when present

    def __init__(self, cfg: dict, runtime: Runtime, key: str):
        mcfg = self._config("mmdet", cfg)
        size = int(cfg["input_size"])
        for step in mcfg.test_pipeline:
            if step["type"] == "Resize":
                step["scale"] = (size, size)
        mcfg.model.test_cfg.score_thr = float(cfg["min_score"])
        self._init("mmdet.apis:init_detector", mcfg, cfg, runtime, key)
        self.size = size
        self.batch_size = int(cfg["batch_size"])  # frames per forward pass (detect_track batches them)

    def describe(self) -> str:
        return f"mmdet_yolov3({self.size}px, {self.weights})"

    def detect(self, frame: np.ndarray) -> Detections:
        return self.detect_batch([frame])[0]

    def detect_batch(self, frames: list[np.ndarray]) -> list[Detections]:
        """Several RGB frames in one forward pass."""
        import torch
        from mmdet.apis import inference_detector

        bgr = [f[:, :, ::-1].copy() for f in frames]  # mmdet wants BGR
        self._calibrate_once(lambda: inference_detector(self.model, bgr))
        with torch.no_grad():
            results = inference_detector(self.model, bgr)
        out = []
        for r in results:
            inst = r.pred_instances
            d = Detections(inst.bboxes.cpu().numpy().astype(np.float32), inst.scores.cpu().numpy().astype(np.float32),
                           inst.labels.cpu().numpy().astype(np.int64))
            # non-finite or empty boxes (an untrained model's) would break the trackers' Kalman filter
            wh = d.boxes[:, 2:] - d.boxes[:, :2]
            out.append(d.select(np.isfinite(d.boxes).all(1) & (wh >= 1.0).all(1) & np.isfinite(d.scores)))
        return out


class _MMDetTracker:
    """An mmdet 3.x tracker fed with our detections; ids are mapped back to detection rows."""

    conda_env = "openmmlab"  # its rules run in envs/openmmlab.yaml
    def __init__(self, cfg: dict):
        prepare("mmdet")
        from mmdet.registry import MODELS

        self.cfg = dict(cfg)  # the tracker's arguments: its config block (schemas/config.schema.yaml)
        self.tracker = MODELS.build({"type": self.mm_type, "motion": {"type": "KalmanFilter"}, **self.cfg})
        self.frame = -1

    @classmethod
    def from_config(cls, cfg, runtime=None, key="tracking", frame_rate=25.0):
        return cls(cfg)

    def reset(self) -> None:
        self.tracker.reset()
        self.frame = -1

    def describe(self) -> str:
        return f"{self.backend_name}({self.cfg})"

    def update(self, det: Detections) -> tuple[np.ndarray, np.ndarray]:
        import torch
        from mmdet.structures import DetDataSample
        from mmengine.structures import InstanceData

        self.frame += 1
        ds = DetDataSample(metainfo={"frame_id": self.frame})
        inst = InstanceData()
        inst.bboxes = torch.as_tensor(det.boxes, dtype=torch.float32).reshape(-1, 4)
        inst.scores = torch.as_tensor(det.scores, dtype=torch.float32)
        inst.labels = torch.as_tensor(det.classes, dtype=torch.int64)
        ds.pred_instances = inst
        out = self.tracker.track(ds)
        if len(out) == 0 or len(det) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        boxes = out.bboxes.cpu().numpy()
        # the tracker returns the matched detections' own boxes: find their rows
        dist = np.abs(boxes[:, None, :] - det.boxes[None, :, :]).sum(-1)
        idx = dist.argmin(1)
        ok = dist[np.arange(len(idx)), idx] < 1e-3
        ids = out.instances_id.cpu().numpy().astype(np.int64) + 1  # ids start at 1, as ours
        return ids[ok], idx[ok]


class MMDetByteTrack(_MMDetTracker):
    mm_type = "ByteTracker"


class MMDetOCSORT(_MMDetTracker):
    mm_type = "OCSORTTracker"
