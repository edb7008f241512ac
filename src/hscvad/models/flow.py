"""Optical-flow backends (rule ``flow``): two consecutive RGB frames -> dense flow (H, W, 2).

Flow ``F`` from frame t to frame t+1 is in pixels per frame: the point (x, y) of frame t moves to
(x + F[y, x, 0], y + F[y, x, 1]) in frame t+1. Both offline backends are OpenCV's and run on the
CPU (``uses_gpu = False``, so the rule asks for no GPU).

- ``dis``: Dense Inverse Search (Kroeger et al., ECCV 2016), ``cv2.DISOpticalFlow`` with a preset
  (``ultrafast`` / ``fast`` / ``medium``); ``medium`` resolves the 1-3 px/frame motion of the
  15-40 px people of UCSD Ped2.
- ``farneback``: Farneback's polynomial expansion (``cv2.calcOpticalFlowFarneback``).
"""

from __future__ import annotations

import numpy as np

from .registry import Runtime


def _gray(frame: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame


class FlowModel:
    backend_name = "base"
    uses_gpu = False

    def flow(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def describe(self) -> str:
        return self.backend_name


class DISFlow(FlowModel):
    PRESETS = {"ultrafast": 0, "fast": 1, "medium": 2}

    def __init__(self, preset: str, runtime: Runtime):
        import cv2

        if preset not in self.PRESETS:
            raise ValueError(f"flow.dis.preset: {preset!r} is not one of {sorted(self.PRESETS)}")
        cv2.setNumThreads(runtime.threads)
        self.preset = preset
        self._dis = cv2.DISOpticalFlow_create(self.PRESETS[preset])

    @classmethod
    def from_config(cls, cfg: dict, runtime: Runtime, key: str = "flow.dis") -> DISFlow:
        return cls(str(cfg["preset"]), runtime)

    def flow(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        return self._dis.calc(_gray(prev), _gray(nxt), None)

    def describe(self) -> str:
        return f"OpenCV DIS optical flow, preset {self.preset}"


class FarnebackFlow(FlowModel):
    def __init__(self, cfg: dict, runtime: Runtime):
        import cv2

        cv2.setNumThreads(runtime.threads)
        self.args = (float(cfg["pyr_scale"]), int(cfg["levels"]), int(cfg["winsize"]), int(cfg["iterations"]),
                     int(cfg["poly_n"]), float(cfg["poly_sigma"]))

    @classmethod
    def from_config(cls, cfg: dict, runtime: Runtime, key: str = "flow.farneback") -> FarnebackFlow:
        return cls(cfg, runtime)

    def flow(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        import cv2

        return cv2.calcOpticalFlowFarneback(_gray(prev), _gray(nxt), None, *self.args, 0)

    def describe(self) -> str:
        args = ", ".join(str(a) for a in self.args)
        return f"OpenCV Farneback optical flow (pyr_scale, levels, winsize, iterations, poly_n, poly_sigma = {args})"
