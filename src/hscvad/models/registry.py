"""One registry per stage family; backends register a class with ``from_config(cfg, runtime)``."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
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
    def resolve(device: str = "auto", threads: int = 1) -> Runtime:
        if device == "auto":
            try:
                import torch

                device = "cuda" if torch.cuda.is_available() else "cpu"
            except ImportError:  # pragma: no cover - torch is a dependency
                device = "cpu"
        return Runtime(device=device, threads=max(1, int(threads)))


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, type] = {}

    def register(self, name: str) -> Callable[[type], type]:
        def deco(cls: type) -> type:
            if name in self._items:
                raise ValueError(f"{self.kind} backend {name!r} registered twice")
            self._items[name] = cls
            cls.backend_name = name
            return cls

        return deco

    def unregister(self, name: str) -> None:
        """Remove a backend (tests that register stand-ins restore the registry with it)."""
        self._items.pop(name, None)

    def get(self, name: str, key: str = "") -> type:
        """The backend class registered under ``name`` (its class attributes describe it)."""
        if name not in self._items:
            known = ", ".join(self.names())
            raise KeyError(f"{key or self.kind}: unknown {self.kind} backend {name!r}; known: {known}")
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def build(self, name: str, cfg: dict[str, Any], runtime: Runtime, key: str) -> Any:
        if name not in self._items:
            raise KeyError(f"{key}: unknown {self.kind} backend {name!r}; known: {', '.join(self.names())}")
        return self._items[name].from_config(cfg, runtime, key=f"{key}.{name}" if key else name)


DETECTORS = Registry("detector")
TRACKERS = Registry("tracker")
APPEARANCE = Registry("appearance")
SCENE = Registry("scene")
POSE = Registry("pose")
MOTION = Registry("motion")
FLOW = Registry("optical flow")


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


def onnx_session(path: Path, runtime: Runtime):
    """An onnxruntime session on CUDA when asked for and available, else on the CPU."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = runtime.threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    providers = ["CPUExecutionProvider"]
    if runtime.device == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    return ort.InferenceSession(str(path), sess_options=opts, providers=providers)
