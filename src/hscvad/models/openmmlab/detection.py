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
        from mmdet.utils import get_test_pipeline_cfg

        mcfg = self._config("mmdet", cfg)
        size = int(cfg["input_size"])
        # mmdet's inference reads the test dataloader's pipeline (the config's `test_pipeline` was
        # copied into it when the file was parsed), so the resize is set there
        for step in get_test_pipeline_cfg(mcfg):
            if step["type"] == "Resize":
                step["scale"] = (size, size)
        mcfg.model.test_cfg.score_thr = float(cfg["min_score"])
        self._init("mmdet.apis:init_detector", mcfg, cfg, runtime, key)
        self.size = size
        self.batch_size = int(cfg["batch_size"])  # frames per call (detect_track batches them; one pass on a GPU)
        self._pipeline = None

    def describe(self) -> str:
        return f"mmdet_yolov3({self.size}px, {self.weights})"

    def input_pipeline(self):
        """The test pipeline (resize to ``input_size``, keeping the aspect ratio) for BGR arrays."""
        if self._pipeline is None:
            import copy

            from mmdet.utils import get_test_pipeline_cfg
            from mmengine.dataset import Compose

            steps = copy.deepcopy(get_test_pipeline_cfg(self.model.cfg))
            steps[0].type = "mmdet.LoadImageFromNDArray"
            self._pipeline = Compose(steps)
        return self._pipeline

    def detect(self, frame: np.ndarray) -> Detections:
        return self.detect_batch([frame])[0]

    def detect_batch(self, frames: list[np.ndarray]) -> list[Detections]:
        """Several RGB frames of one size (a video's): on a GPU in one forward pass (each frame
        padded as it would be alone); on the CPU one at a time, which is faster there (608 px,
        one thread: 783 against 878 ms per frame in batches of 8; `docs/paper-models.md`)."""
        import torch

        prep = [self.input_pipeline()(dict(img=f[:, :, ::-1].copy(), img_id=0)) for f in frames]  # BGR
        step = len(prep) if self.device != "cpu" else 1
        batches = [{"inputs": [p["inputs"] for p in prep[i:i + step]],
                    "data_samples": [p["data_samples"] for p in prep[i:i + step]]} for i in range(0, len(prep), step)]
        self._calibrate_once(lambda: self.model.test_step(batches[0]))
        with torch.no_grad():
            results = [r for b in batches for r in self.model.test_step(b)]
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
