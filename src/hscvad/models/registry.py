"""One registry per stage family: backend name -> a class with ``from_config(cfg, runtime, key)``."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class WeightsError(FileNotFoundError):
    """A weights file that is missing or fails its checksum; names the config key and the path."""


@dataclass(frozen=True)
class Runtime:
    """Where and how a backend runs: ``device`` is 'cpu' or 'cuda'; ``threads`` CPU threads."""

    device: str = "cpu"
    threads: int = 1

    @staticmethod
    def resolve(device: str | None = None, threads: int = 1) -> Runtime:
        """The runtime of the ``device`` setting (None: its default, ``auto``: CUDA when present)."""
        if device is None:
            from ..config import defaults

            device = defaults("device")
        if device == "auto":
            device = "cuda" if torch_cuda_available() else "cpu"
        return Runtime(device=device, threads=max(1, int(threads)))


def cuda_driver_devices() -> int:
    """How many CUDA devices the NVIDIA driver shows this process (``CUDA_VISIBLE_DEVICES``
    included), asked through the driver library itself: 0 where there is no driver, no device or an
    error. Costs milliseconds, where importing PyTorch to ask costs a second of every job's start-up."""
    import ctypes

    for name in ("libcuda.so.1", "libcuda.so", "nvcuda.dll"):
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        count = ctypes.c_int(0)
        if lib.cuInit(0) != 0 or lib.cuDeviceGetCount(ctypes.byref(count)) != 0:
            return 0
        return int(count.value)
    return 0


def torch_cuda_available() -> bool:
    """``torch.cuda.is_available()``, with PyTorch imported only where the driver shows a device
    (:func:`cuda_driver_devices`): PyTorch cannot see a GPU the driver does not, so on a CPU machine
    the answer is the same and a job whose backend does not use PyTorch never imports it."""
    if cuda_driver_devices() == 0:
        return False
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return bool(torch.cuda.is_available())


#: Every built-in backend: stage family -> backend name -> "module:Class". A registry imports a
#: backend's module when the backend is first asked for, so a run imports only the stacks it uses
#: (OpenMMLab, timm and LiteRT are never imported by a run that does not select them), and nothing
#: is registered by an import's side effect. Add a backend here (docs/architecture.md).
BUILTIN_BACKENDS: dict[str, dict[str, str]] = {
    "detector": {
        "yolox": "hscvad.models.detection:YOLOX",
        "picodet": "hscvad.models.detection:PicoDet",
        "mmdet_yolov3": "hscvad.models.openmmlab.detection:MMDetYOLOv3",
    },
    "tracker": {
        "bytetrack": "hscvad.models.tracking:ByteTrack",
        "mmdet_bytetrack": "hscvad.models.openmmlab.detection:MMDetByteTrack",
        "mmdet_ocsort": "hscvad.models.openmmlab.detection:MMDetOCSORT",
    },
    "appearance": {
        "efficientnet_lite0": "hscvad.models.appearance:EfficientNetLite0",
        "efficientnet_lite1": "hscvad.models.appearance:EfficientNetLite1",
        "efficientnet_lite2": "hscvad.models.appearance:EfficientNetLite2",
        "reid": "hscvad.models.appearance:PersonReID",
        "timm_vit": "hscvad.models.openmmlab.appearance:TimmViT",
    },
    "scene": {
        "deeplabv3_voc": "hscvad.models.scene:DeepLabV3VOC",
        "mmseg_deeplabv3plus": "hscvad.models.openmmlab.scene:MMSegDeepLabV3Plus",
    },
    "pose": {
        "movenet": "hscvad.models.pose:MoveNet",
        "mmpose_hrnet": "hscvad.models.openmmlab.pose:MMPoseHRNet",
    },
    "motion": {
        "skeleton": "hscvad.models.motion:SkeletonDescriptor",
        "mmaction_posec3d": "hscvad.models.openmmlab.motion:MMActionPoseC3D",
    },
    "optical flow": {
        "dis": "hscvad.models.flow:DISFlow",
        "farneback": "hscvad.models.flow:FarnebackFlow",
    },
}


#: the environment variable naming plug-in modules: module names or paths of .py files, separated by
#: commas; each is imported once, before the first backend is looked up, and registers its backends
#: with ``<REGISTRY>.register(name)`` when imported (docs/architecture.md, "Your own backends")
PLUGINS_ENV = "HSCVAD_PLUGINS"
_plugins_loaded: set[str] = set()


def load_plugins() -> list[str]:
    """Import the plug-in modules that ``$HSCVAD_PLUGINS`` names (each once per process); returns
    their names. Snakemake passes the variable on to every job, so a plug-in backend can be named in
    the config of a workflow run like a built-in one."""
    import importlib
    import importlib.util
    import os
    import sys

    names = [n.strip() for n in os.environ.get(PLUGINS_ENV, "").split(",") if n.strip()]
    for name in names:
        if name in _plugins_loaded:
            continue
        _plugins_loaded.add(name)
        if name.endswith(".py"):
            path = Path(name)
            if not path.is_file():
                raise ImportError(f"${PLUGINS_ENV}: plug-in file not found: {name}")
            module = f"hscvad_plugin_{path.stem}"
            if module not in sys.modules:
                spec = importlib.util.spec_from_file_location(module, path)
                mod = importlib.util.module_from_spec(spec)
                sys.modules[module] = mod
                spec.loader.exec_module(mod)
        else:
            try:
                importlib.import_module(name)
            except ImportError as e:
                raise ImportError(f"${PLUGINS_ENV}: cannot import plug-in module {name!r}: {e}") from e
    return names


class Registry:
    """Backend name -> class for one stage family: the built-in table (imported lazily) plus
    classes registered at run time with :meth:`register` (plug-ins, test stand-ins)."""

    def __init__(self, kind: str, section: str, stateless: bool = True):
        self.kind = kind
        self.section = section  # the config section whose ``backend`` picks from this registry
        self.stateless = stateless  # a built backend may serve several videos (shared_models)
        self._items: dict[str, type] = {}
        self._lazy: dict[str, str] = dict(BUILTIN_BACKENDS.get(kind, {}))

    def register(self, name: str) -> Callable[[type], type]:
        def deco(cls: type) -> type:
            if name in self._items or name in self._lazy:
                raise ValueError(f"{self.kind} backend {name!r} registered twice")
            self._items[name] = cls
            cls.backend_name = name
            return cls

        return deco

    def unregister(self, name: str) -> None:
        """Remove a registered backend (tests that register stand-ins restore the registry with it)."""
        self._items.pop(name, None)

    def get(self, name: str, key: str = "") -> type:
        """The backend class for ``name`` (its class attributes describe it), importing its module
        on first use."""
        if name not in self._items and name not in self._lazy:
            load_plugins()
        if name not in self._items:
            if name not in self._lazy:
                known = ", ".join(self.names())
                raise KeyError(f"{key or self.kind}: unknown {self.kind} backend {name!r}; known: {known}")
            import importlib

            module, cls_name = self._lazy[name].split(":")
            cls = getattr(importlib.import_module(module), cls_name)
            if cls.__dict__.get("backend_name") not in (None, name):
                raise ValueError(f"{self.kind} backend {name!r}: {self._lazy[name]} is already backend "
                                 f"{cls.backend_name!r}")
            cls.backend_name = name
            self._items[name] = cls
        return self._items[name]

    def names(self) -> list[str]:
        load_plugins()
        return sorted(set(self._items) | set(self._lazy))

    def plugin_names(self) -> list[str]:
        """The names registered at run time (plug-ins), not in the built-in table."""
        load_plugins()
        return sorted(set(self._items) - set(BUILTIN_BACKENDS.get(self.kind, {})))

    def build(self, name: str, cfg: dict[str, Any] | None = None, runtime: Runtime | None = None,
              key: str | None = None) -> Any:
        """The backend ``name`` built from its settings ``cfg`` (the config block
        ``<section>.<name>``): every setting missing from ``cfg`` takes its schema default
        (:func:`hscvad.config.backend_settings`), so ``build(name)`` alone gives the backend the
        pipeline runs by default; ``runtime`` defaults to one CPU thread.

        Inside :func:`shared_models` (a shard job: several videos in one process) a stateless
        backend built before with the same class, settings and runtime is returned again instead of
        being loaded a second time."""
        from ..config import backend_settings

        key = key or self.section
        cls = self.get(name, key)
        cfg = backend_settings(self.section, name, cfg, getattr(cls, "section_settings", ()))
        runtime = runtime or Runtime()
        full_key = f"{key}.{name}" if key else name
        if _shared is None or not self.stateless:
            return cls.from_config(cfg, runtime, key=full_key)
        ident = (self.kind, cls, full_key, runtime, json.dumps(cfg, sort_keys=True, default=str))
        if ident not in _shared:
            _shared[ident] = cls.from_config(cfg, runtime, key=full_key)
        return _shared[ident]


#: the backends built so far inside :func:`shared_models` (None outside it)
_shared: dict[tuple, Any] | None = None


@contextmanager
def shared_models():
    """Within this block every registry whose backends are stateless builds each configured backend
    once and hands the same object to later builds (a shard job runs its videos' stage code in turn:
    the model loads once per shard). Trackers carry per-video state and are always built anew."""
    global _shared
    outer, _shared = _shared, ({} if _shared is None else _shared)
    try:
        yield
    finally:
        _shared = outer


DETECTORS = Registry("detector", "detection")
TRACKERS = Registry("tracker", "tracking", stateless=False)  # a tracker holds the tracks of one video
APPEARANCE = Registry("appearance", "appearance")
SCENE = Registry("scene", "scene")
POSE = Registry("pose", "pose")
MOTION = Registry("motion", "motion")
FLOW = Registry("optical flow", "flow")

#: the registry of each config section that selects a backend
SECTION_REGISTRIES = {"detection": DETECTORS, "tracking": TRACKERS, "appearance": APPEARANCE, "scene": SCENE,
                      "pose": POSE, "motion": MOTION, "flow": FLOW}


def registry_for(section: str) -> Registry:
    """The registry of a config section (``detection``, ``tracking``, ``appearance``, ...)."""
    return SECTION_REGISTRIES[section]


def sha256sum(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def resolve_weights(path: str | Path | None, key: str, sha256: str | None = None) -> Path:
    """Check that a configured weights file exists (and matches its checksum when one is given)."""
    if path is None:
        raise WeightsError(f"{key}: no weights path configured")
    p = Path(path)
    if not p.is_file():
        raise WeightsError(
            f"{key}: weights file not found: {p}. Place the file there, point {key} at it, or "
            "run `snakemake fetch_models --cores 1` on a machine with a network."
        )
    if sha256:
        got = sha256sum(p)
        if got != sha256.lower():
            raise WeightsError(f"{key}: {p} has sha256 {got}, expected {sha256}")
    return p


def onnx_cuda_available() -> bool:
    """Whether the installed ONNX Runtime has the CUDA provider (the ``onnxruntime-gpu`` build,
    ``bash scripts/setup.sh --gpu``) and a GPU to run it on."""
    try:
        import onnxruntime as ort
    except ImportError:  # pragma: no cover - onnxruntime is a dependency
        return False
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return False
    return torch_cuda_available()


class OnnxGpu:
    """``uses_gpu`` of an ONNX Runtime backend: true where :func:`onnx_cuda_available` (its rule
    then asks for gpu=1 and the session takes the CUDA provider); false on a CPU machine."""

    def __get__(self, obj, owner) -> bool:
        return onnx_cuda_available()


def backend_uses_gpu(cls: type, settings: dict) -> bool:
    """Whether backend ``cls`` with its ``settings`` runs on a GPU when there is one: its
    ``gpu_for(settings)`` where it has one (a backend whose engine is a setting), else ``uses_gpu``."""
    gpu_for = getattr(cls, "gpu_for", None)
    return bool(gpu_for(settings)) if gpu_for is not None else bool(getattr(cls, "uses_gpu", False))


def onnx_session(path: Path | str | bytes, runtime: Runtime):
    """An onnxruntime session of a model file (or a serialised model): on CUDA when asked for and
    available, else on the CPU with ``runtime.threads`` threads that sleep instead of spinning when
    they wait (so they leave the cores to the other jobs of a run)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = runtime.threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    opts.log_severity_level = 3
    providers = ["CPUExecutionProvider"]
    if runtime.device == "cuda" and onnx_cuda_available():
        providers.insert(0, "CUDAExecutionProvider")
        if hasattr(ort, "preload_dlls"):  # CUDA / cuDNN from the nvidia-* wheels PyTorch brought
            ort.preload_dlls()
    model = path if isinstance(path, bytes) else str(path)
    return ort.InferenceSession(model, sess_options=opts, providers=providers)
