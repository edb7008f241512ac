"""Pose backends: person crops -> 17 COCO keypoints (x, y, score) in frame pixels.

Offline backend ``movenet``: MoveNet SinglePose Lightning (int8 TFLite, 192x192 uint8 RGB in,
(y, x, score) normalised to the crop out) run with ``ai-edge-litert`` on square crops of
``context`` times the person box, keypoints mapped back through the crop window.
"""

from __future__ import annotations

import numpy as np

from .appearance import crop_boxes, crop_windows
from .registry import Runtime, resolve_weights


class PoseModel:
    backend_name = "base"
    #: runs on a GPU when there is one (its rule then asks for gpu=1): the PyTorch backends, and the
    #: ONNX Runtime ones where the onnxruntime-gpu build is installed (``OnnxGpu``); the TFLite,
    #: OpenCV and NumPy backends run on the CPU and ask for none
    uses_gpu = False

    def keypoints(self, frame: np.ndarray, boxes: np.ndarray) -> np.ndarray:  # pragma: no cover
        """(N, 4) person boxes of one frame -> (N, 17, 3) keypoints x, y (pixels), score."""
        raise NotImplementedError


class MoveNet(PoseModel):
    def __init__(self, weights, runtime: Runtime, context: float):
        from ai_edge_litert.interpreter import Interpreter

        self.interp = Interpreter(model_path=str(weights), num_threads=runtime.threads)
        self.interp.allocate_tensors()
        inp = self.interp.get_input_details()[0]
        self.input_index, self.dtype = inp["index"], inp["dtype"]
        self.size = int(inp["shape"][1])
        self.output_index = self.interp.get_output_details()[0]["index"]
        self.context = float(context)

    @classmethod
    def from_config(cls, cfg, runtime, key):
        w = resolve_weights(cfg["weights"], f"{key}.weights", cfg["sha256"])
        return cls(w, runtime, cfg["context"])

    def keypoints(self, frame: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        hw = (self.size, self.size)
        if len(boxes) == 0:
            return np.zeros((0, 17, 3), np.float32)
        crops = crop_boxes(frame, boxes, hw, self.context, keep_aspect=True)
        windows = crop_windows(boxes, hw, self.context, keep_aspect=True)
        out = np.zeros((len(boxes), 17, 3), np.float32)
        for i, crop in enumerate(crops):  # the int8 model takes one crop per call
            self.interp.set_tensor(self.input_index, crop[None].astype(self.dtype))
            self.interp.invoke()
            out[i] = self.interp.get_tensor(self.output_index)[0, 0]
        x0, y0, w, h = (windows[:, j, None] for j in range(4))
        xy = np.stack([x0 + out[:, :, 1] * w, y0 + out[:, :, 0] * h], -1)
        return np.concatenate([xy, out[:, :, 2:3]], -1).astype(np.float32)
