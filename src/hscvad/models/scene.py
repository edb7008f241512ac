"""Scene backends: a frame -> per-class scores on a grid -> the scene cell vector of docs/method.md §2.

``scene_cells`` is shared by every backend: class scores are resized to 4 sub-cells per 16x16-pixel
cell and max-pooled to one value per cell and class (the reference's stride-4 map pooled by 4);
each cell keeps its largest class score, and cells won by a foreground class are set to 0.

Offline backend ``deeplabv3_voc``: DeepLabV3 MobileNetV2 on PASCAL VOC (21 classes) in ONNX.
"""

from __future__ import annotations

import numpy as np

from .registry import OnnxGpu, Runtime, onnx_session, resolve_weights

VOC_CLASSES = (
    "background aeroplane bicycle bird boat bottle bus car cat chair cow diningtable dog horse "
    "motorbike person pottedplant sheep sofa train tvmonitor"
).split()


def scene_cells(probs: np.ndarray, frame_hw: tuple[int, int], cell: int, foreground: np.ndarray) -> np.ndarray:
    """(C, h, w) class scores of one frame -> (floor(H/cell) * floor(W/cell),) cell vector."""
    import cv2

    H, W = frame_hw
    gh, gw = H // cell, W // cell
    if gh == 0 or gw == 0:
        raise ValueError(f"frame {W}x{H} is smaller than one {cell}x{cell} scene cell")
    sub = 4
    hwc = np.ascontiguousarray(probs.transpose(1, 2, 0))
    up = cv2.resize(hwc, (gw * sub, gh * sub), interpolation=cv2.INTER_LINEAR)
    if up.ndim == 2:
        up = up[:, :, None]
    pooled = up.reshape(gh, sub, gw, sub, -1).max(axis=(1, 3))  # (gh, gw, C)
    best = pooled.max(-1)
    winner = pooled.argmax(-1)
    best[np.isin(winner, foreground)] = 0.0
    return best.reshape(-1).astype(np.float32)


class SceneModel:
    backend_name = "base"
    #: runs on a GPU when there is one (its rule then asks for gpu=1): the PyTorch backends, and the
    #: ONNX Runtime ones where the onnxruntime-gpu build is installed (``OnnxGpu``); the TFLite,
    #: OpenCV and NumPy backends run on the CPU and ask for none
    uses_gpu = False
    classes: tuple[str, ...] = ()
    #: its classes of people and vehicles: ``scene.foreground_classes`` when that is null
    foreground: tuple[str, ...] = ()

    def class_scores(self, frame: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        """RGB uint8 frame -> (C, h, w) class probabilities."""
        raise NotImplementedError


class DeepLabV3VOC(SceneModel):
    uses_gpu = OnnxGpu()
    classes = tuple(VOC_CLASSES)
    foreground = ("bicycle", "bus", "car", "motorbike", "person", "train")

    def __init__(self, weights, runtime: Runtime):
        self.session = onnx_session(weights, runtime)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.size = int(inp.shape[1])

    @classmethod
    def from_config(cls, cfg, runtime, key):
        return cls(resolve_weights(cfg["weights"], f"{key}.weights", cfg["sha256"]), runtime)

    def class_scores(self, frame: np.ndarray) -> np.ndarray:
        import cv2

        x = cv2.resize(frame, (self.size, self.size), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        x = x / 127.5 - 1.0
        logits = self.session.run(None, {self.input_name: x[None]})[0][0]  # (h, w, C)
        logits = logits - logits.max(-1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(-1, keepdims=True)
        return p.transpose(2, 0, 1)
