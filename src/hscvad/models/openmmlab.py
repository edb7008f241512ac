"""The paper's models (METHOD.md §2) through OpenMMLab and timm, behind the stage interfaces.

=====================  ==============================================  =========================
backend (config key)   model                                           paper
=====================  ==============================================  =========================
``mmdet_yolov3``       mmdet 3.3 YOLOv3 DarkNet-53, COCO, 608 px       YOLOv3 (mmdet)
``mmdet_bytetrack``    mmdet 3.3 ByteTracker (``mmdet_ocsort``: OC-SORT) FairMOT (mmtrack)
``mmpose_hrnet``       mmpose 1.3 top-down HRNet-w32, COCO, 256x192    HRNet (mmpose)
``mmaction_posec3d``   mmaction2 1.2 PoseConv3D SlowOnly-R50, NTU-60   PoseConv3D (mmaction2)
``mmseg_deeplabv3plus`` mmseg 1.2 DeepLabV3+ R50-D8, Cityscapes          DeepLabV3+ (mmseg)
``timm_vit``           timm ViT-L/16 (1024-d pooled token)             ViT-L/16
=====================  ==============================================  =========================

mmtrack 0.14 cannot be installed beside these (it needs mmcv-full 1.x and mmdet 2.x, which uses
the same ``mmdet`` import name); mmdet 3.x took over its trackers, and FairMOT is in neither, so
ByteTrack on the YOLOv3 detections stands in for FairMOT. Model definitions come from the configs
shipped inside the installed packages (``<package>/.mim/configs``); weights from the path in
config.yaml, loaded by :func:`load_checkpoint` (checksum first, then ``torch.load`` with
``weights_only=True``). With ``weights: null`` a backend runs with random weights (tests, smoke
runs, timing), and says so in its ``describe()``.

Every import of OpenMMLab happens inside these classes, so the offline pipeline never needs them.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import types
from pathlib import Path

import numpy as np

from .appearance import AppearanceModel, crop_boxes, crop_windows
from .detection import Detections, Detector
from .motion import MotionModel
from .pose import PoseModel
from .registry import Runtime, WeightsError, resolve_weights
from .scene import SceneModel

log = logging.getLogger(__name__)

CITYSCAPES_CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)

_SHIMS_DONE = False


def install_shims() -> None:
    """Make the 2023-2024 OpenMMLab releases import and run on NumPy 2 and current setuptools."""
    global _SHIMS_DONE
    if _SHIMS_DONE:
        return
    # NumPy 2 removed these aliases; mmaction's PoseCompact uses np.Inf, and mmdet / mmpose
    # evaluation helpers use np.in1d and np.trapz.
    for name, value in (("Inf", np.inf), ("in1d", np.isin), ("trapz", np.trapezoid)):
        if not hasattr(np, name):
            setattr(np, name, value)
    # mmaction2 1.2.0's wheel and sdist lack mmaction/models/localizers/drn/, which
    # localizers/__init__.py imports; DRN (temporal grounding) is not used here, so an empty
    # stand-in that fails loudly if anyone builds it lets `import mmaction.models` work.
    if "mmaction.models.localizers.drn" not in sys.modules and importlib.util.find_spec("mmaction") is not None:
        spec = importlib.util.find_spec("mmaction")
        drn_dir = Path(spec.origin).parent / "models" / "localizers" / "drn"
        if not drn_dir.exists():
            pkg = types.ModuleType("mmaction.models.localizers.drn")
            pkg.__path__ = []
            mod = types.ModuleType("mmaction.models.localizers.drn.drn")

            class DRN:  # noqa: D401 - stand-in
                def __init__(self, *a, **k):
                    raise ImportError("mmaction2 1.2.0 ships without models/localizers/drn; DRN is unavailable")

            mod.DRN = DRN
            sys.modules[pkg.__name__] = pkg
            sys.modules[mod.__name__] = mod
    _SHIMS_DONE = True


def require(*modules: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(
            f"the paper's models need {', '.join(missing)}: run `bash scripts/setup.sh --openmmlab` "
            "(README, 'The paper's models'), or use the offline preset (models: offline)"
        )


def prepare(package: str) -> None:
    """Check that ``package`` (and mmcv) is installed, apply the shims, register its modules."""
    require(package, "mmcv")
    install_shims()
    importlib.import_module(f"{package}.utils").register_all_modules(init_default_scope=True)


def mim_config(package: str, rel: str):
    """An mmengine Config from the configs shipped inside an installed OpenMMLab package."""
    from mmengine.config import Config

    spec = importlib.util.find_spec(package)
    path = Path(spec.origin).parent / ".mim" / "configs" / rel
    if not path.is_file():
        raise FileNotFoundError(f"{path}: config not found in the installed {package}")
    return Config.fromfile(str(path))


def load_checkpoint(model, path, sha256: str | None, key: str, prefix: str | None = None) -> str:
    """Load published weights into ``model`` safely: the file must exist and match its checksum
    (a full sha256, or the 8-hex prefix that OpenMMLab puts in its file names); it is read with
    ``torch.load(weights_only=True)`` (or safetensors), never by unpickling arbitrary objects.
    Returns a description for logs; raises WeightsError naming ``key`` on any mismatch."""
    import torch

    p = resolve_weights(path, key, sha256 if sha256 and len(sha256) == 64 else None)
    if sha256 and len(sha256) < 64:
        from .registry import sha256sum

        got = sha256sum(p)
        if not got.startswith(sha256.lower()):
            raise WeightsError(f"{key}: {p} has sha256 {got}, expected one starting with {sha256}")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(p))
    else:
        try:
            # OpenMMLab checkpoints keep some metadata as NumPy arrays: allow exactly those types
            with torch.serialization.safe_globals(_numpy_safe_globals()):
                ckpt = torch.load(str(p), map_location="cpu", weights_only=True)
        except Exception as e:  # pickle with other objects: refuse rather than run its code
            raise WeightsError(f"{key}: {p} is not a plain weights file that loads with weights_only=True: {e}") from e
        state = ckpt.get("state_dict", ckpt.get("model", ckpt)) if isinstance(ckpt, dict) else ckpt
    if prefix:
        state = {k.removeprefix(prefix): v for k, v in state.items()}
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys:
        raise WeightsError(f"{key}: {p} lacks {len(result.missing_keys)} weights of the model, e.g. "
                           f"{result.missing_keys[:3]}; is it the checkpoint this backend expects?")
    if result.unexpected_keys:
        log.warning("%s: %d unused entries in %s (e.g. %s)", key, len(result.unexpected_keys), p,
                    result.unexpected_keys[:3])
    return f"{p.name}"


def _numpy_safe_globals() -> list:
    out = [np.ndarray, np.dtype]
    core = getattr(np, "_core", None) or np.core
    out.append(core.multiarray._reconstruct)
    out.append(core.multiarray.scalar)
    out += [type(np.dtype(t)) for t in ("float32", "float64", "int64", "int32", "uint8", "bool")]
    return out


def _device(runtime: Runtime) -> str:
    import torch

    torch.set_num_threads(runtime.threads)
    return "cuda" if runtime.device == "cuda" and torch.cuda.is_available() else "cpu"


def _load_or_init(model, cfg: dict, key: str) -> None:
    """Published weights when configured; otherwise the model's own initialisation scheme
    (``init_cfg``: what training starts from), not PyTorch's defaults, whose activations blow
    up through the untrained BatchNorm layers of these networks."""
    if cfg.get("weights"):
        load_checkpoint(model, cfg["weights"], cfg.get("sha256"), f"{key}.weights")
    else:
        import contextlib
        import io

        import torch

        torch.manual_seed(int(cfg.get("seed", 0)))
        mm_logger = None
        if importlib.util.find_spec("mmengine") is not None:
            from mmengine.logging import MMLogger

            mm_logger = MMLogger.get_current_instance()
            level = mm_logger.level
            mm_logger.setLevel(logging.WARNING)
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # mmengine reports every layer's init scheme
                model.init_weights()
        finally:
            if mm_logger is not None:
                mm_logger.setLevel(level)
        model.eval()


class _Backend:
    """Random-weights mode (``weights: null``): before the first forward pass, every BatchNorm
    layer's statistics are set from what reaches it in that first input (layer by layer, each
    already normalised by the ones before), so that activations stay in range; otherwise an
    untrained detector's box regressions overflow and every box is invalid. Published weights are
    used as they are."""

    random = False
    _calibrated = False
    #: the conda environment of the rules that run it (envs/openmmlab.yaml)
    conda_env = "openmmlab"

    @classmethod
    def from_config(cls, cfg, runtime, key):
        return cls(cfg, runtime, key)

    def _use(self, model, cfg: dict, key: str) -> None:
        """Keep ``model``, with the configured weights loaded, or initialised (random mode)."""
        self.model = model
        self.weights = _weights_desc(cfg)
        _load_or_init(model, cfg, key)
        self.random = not cfg.get("weights")

    def _calibrate_once(self, forward) -> None:
        if not self.random or self._calibrated:
            return
        import torch

        def set_stats(module, inputs):
            x = inputs[0]
            if x.numel() // x.shape[1] > 1:  # not a 1x1 map of one sample (e.g. ASPP image pooling)
                dims = [0, *range(2, x.dim())]
                module.running_mean.copy_(x.mean(dims))
                module.running_var.copy_(x.var(dims, unbiased=False))

        bns = [m for m in self.model.modules()
               if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_mean is not None]
        hooks = [m.register_forward_pre_hook(set_stats) for m in bns]
        try:
            with torch.no_grad():
                forward()
        finally:
            for h in hooks:
                h.remove()
        self._calibrated = True


def _weights_desc(cfg) -> str:
    return Path(cfg["weights"]).name if cfg.get("weights") else "RANDOM WEIGHTS"


# --------------------------------------------------------------------------- detection + tracking


class MMDetYOLOv3(Detector, _Backend):
    """mmdet's YOLOv3 (DarkNet-53, COCO-80 classes, the labels of :data:`COCO_CLASSES`)."""
    uses_gpu = True  # PyTorch: CUDA when present

    def __init__(self, cfg: dict, runtime: Runtime, key: str):
        prepare("mmdet")
        from mmdet.apis import init_detector

        mcfg = mim_config("mmdet", cfg.get("config", "yolo/yolov3_d53_8xb8-ms-608-273e_coco.py"))
        size = int(cfg.get("input_size", 608))
        for step in mcfg.test_pipeline:
            if step["type"] == "Resize":
                step["scale"] = (size, size)
        mcfg.model.test_cfg.score_thr = float(cfg.get("min_score", 0.05))
        self.device = _device(runtime)
        self._use(init_detector(mcfg, None, device=self.device), cfg, key)
        self.size = size

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
    tracker_cfg: dict = {}

    def __init__(self, cfg: dict):
        prepare("mmdet")
        from mmdet.registry import MODELS

        self.cfg = {**self.tracker_cfg, **{k: v for k, v in cfg.items() if k in self.tracker_cfg}}
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
    # the settings of mmdet's ByteTrack MOT17 config
    tracker_cfg = {"obj_score_thrs": {"high": 0.6, "low": 0.1}, "init_track_thr": 0.7,
                   "weight_iou_with_det_scores": True, "match_iou_thrs": {"high": 0.1, "low": 0.5, "tentative": 0.3},
                   "num_frames_retain": 30}


class MMDetOCSORT(_MMDetTracker):
    mm_type = "OCSORTTracker"
    tracker_cfg = {"obj_score_thr": 0.3, "init_track_thr": 0.7, "weight_iou_with_det_scores": True,
                   "match_iou_thr": 0.3, "num_tentatives": 3, "vel_consist_weight": 0.2, "vel_delta_t": 3,
                   "num_frames_retain": 30}


# --------------------------------------------------------------------------- pose


class MMPoseHRNet(PoseModel, _Backend):
    """Top-down HRNet-w32 on COCO (256x192): all persons of a frame in one forward pass."""
    uses_gpu = True  # PyTorch: CUDA when present

    def __init__(self, cfg: dict, runtime: Runtime, key: str):
        prepare("mmpose")
        from mmpose.apis import init_model

        mcfg = mim_config("mmpose", cfg.get("config", "body_2d_keypoint/topdown_heatmap/coco/"
                                                     "td-hm_hrnet-w32_8xb64-210e_coco-256x192.py"))
        self.device = _device(runtime)
        self._use(init_model(mcfg, None, device=self.device), cfg, key)

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


# --------------------------------------------------------------------------- motion feature


class MMActionPoseC3D(MotionModel, _Backend):
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
        prepare("mmaction")
        from mmaction.apis import init_recognizer
        from mmengine.dataset import Compose

        mcfg = mim_config("mmaction", cfg.get("config", "skeleton/posec3d/slowonly_r50_8xb16-u48-240e_ntu60-xsub-"
                                                        "keypoint.py"))
        self.device = _device(runtime)
        self._use(init_recognizer(mcfg, None, device=self.device), cfg, key)
        self.clip_len = int(cfg.get("clip_len", 48))  # frames sampled from a clip (trained with 48)
        for step in mcfg.val_pipeline:
            if step["type"] == "UniformSampleFrames":
                step["clip_len"] = self.clip_len
        self.pipeline = Compose(mcfg.val_pipeline)
        self.batch_size = int(cfg.get("batch_size", 16))

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


# --------------------------------------------------------------------------- scene


class MMSegDeepLabV3Plus(SceneModel, _Backend):
    """DeepLabV3+ R50-D8 on Cityscapes (19 classes; background 0-10, foreground 11-18)."""
    uses_gpu = True  # PyTorch: CUDA when present

    classes = CITYSCAPES_CLASSES
    foreground = ("person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle")

    def __init__(self, cfg: dict, runtime: Runtime, key: str):
        prepare("mmseg")
        from mmseg.apis import init_model

        mcfg = mim_config("mmseg", cfg.get("config", "deeplabv3plus/deeplabv3plus_r50-d8_4xb2-80k_cityscapes-"
                                                     "512x1024.py"))
        scale = cfg.get("input_scale")  # (w, h) the test pipeline resizes to, keeping the aspect ratio
        if scale:
            for step in mcfg.test_pipeline:
                if step["type"] == "Resize":
                    step["scale"] = tuple(scale)
        self.device = _device(runtime)
        self._use(init_model(mcfg, None, device=self.device), cfg, key)

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


# --------------------------------------------------------------------------- appearance


class TimmViT(AppearanceModel, _Backend):
    """timm ViT (default ViT-L/16 at 224 px): the pooled 1024-d token of each crop, many crops
    per forward pass."""
    uses_gpu = True  # PyTorch: CUDA when present

    def __init__(self, cfg: dict, runtime: Runtime, key: str):
        require("timm")
        import timm
        import torch

        self.arch = cfg.get("arch", "vit_large_patch16_224")
        self.device = _device(runtime)
        self._use(timm.create_model(self.arch, pretrained=False, num_classes=0).eval().to(self.device), cfg, key)
        self.random = False  # LayerNorm only: no BatchNorm statistics to set
        dc = self.model.pretrained_cfg
        self.size = int(dc.get("input_size", (3, 224, 224))[-1])
        self.mean = torch.tensor(dc.get("mean", (0.5, 0.5, 0.5)), device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(dc.get("std", (0.5, 0.5, 0.5)), device=self.device).view(1, 3, 1, 1)
        self.dim = int(self.model.num_features)
        self.batch_size = int(cfg.get("batch_size", 32))
        self.input_hw = (self.size, self.size)  # crops are cut at this size

    def describe(self) -> str:
        return f"timm_vit({self.arch}, {self.weights})"

    def embed(self, crops: np.ndarray) -> np.ndarray:
        import torch

        out = []
        for a in range(0, len(crops), self.batch_size):
            x = torch.from_numpy(np.ascontiguousarray(crops[a : a + self.batch_size])).to(self.device)
            x = x.permute(0, 3, 1, 2).float().div_(255.0)
            if x.shape[-1] != self.size or x.shape[-2] != self.size:
                x = torch.nn.functional.interpolate(x, size=(self.size, self.size), mode="bilinear",
                                                    align_corners=False)
            with torch.no_grad():
                out.append(self.model((x - self.mean) / self.std).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)


__all__ = ["install_shims", "load_checkpoint", "crop_boxes", "crop_windows"]
