"""Motion feature backends: per person sample, its clip's keypoint sequence -> one feature vector
(and, for backends that classify actions, an action class used as the motion stream's object class).

Offline backend ``skeleton``: the 156-d descriptor of :mod:`hscvad.motion.descriptor`. The paper's
PoseConv3D is ``mmaction_posec3d`` in :mod:`hscvad.models.openmmlab.motion`.
"""

from __future__ import annotations

import numpy as np

from ..motion.descriptor import DIM, skeleton_descriptor
from .registry import MOTION, Runtime


class MotionModel:
    backend_name = "base"
    #: runs on a GPU when there is one (its rule then asks for gpu=1): the PyTorch backends; the
    #: NumPy skeleton descriptor runs on the CPU and asks for none
    uses_gpu = False
    dim = 0
    has_classes = False
    n_classes = 0  # actions it predicts (has_classes)

    def embed(self, keypoints: np.ndarray, boxes: np.ndarray, tracked: np.ndarray,
              frame_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray | None]:  # pragma: no cover
        """(S, T, 17, 3) keypoints (x, y, score), (S, T, 4) boxes, (S, T) tracked ->
        ((S, dim) float32 features, (S,) action classes or None)."""
        raise NotImplementedError

    def describe(self) -> str:
        return self.backend_name


class SkeletonDescriptor(MotionModel):
    dim = DIM

    #: the section-level settings it reads (motion.min_score), besides its own block's
    section_settings = ("min_score",)

    def __init__(self, min_score: float):
        self.min_score = float(min_score)

    @classmethod
    def from_config(cls, cfg, runtime: Runtime | None = None, key: str = "motion"):
        return cls(cfg["min_score"])

    def embed(self, keypoints, boxes, tracked, frame_hw):
        return skeleton_descriptor(keypoints, boxes, tracked, self.min_score, frame_hw), None


def build_motion(params_motion: dict, runtime: Runtime) -> MotionModel:
    """The motion backend of a rule's ``motion`` params (backend, min_score, backend settings)."""

    b = params_motion["backend"]
    section_keys = getattr(MOTION.get(b, "motion.backend"), "section_settings", ())
    cfg = {**params_motion.get(b, {}), **{k: params_motion[k] for k in section_keys}}
    return MOTION.build(b, cfg, runtime, "motion")
