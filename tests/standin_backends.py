"""Stand-in backends for tests: small, deterministic, model-free detectors, appearance, scene and
pose backends that run in milliseconds on synthetic frames.

A plug-in module, as a user's own backends would be (docs/architecture.md, "Your own backends"):
importing it registers its backends. A Snakemake run picks it up through the environment variable
``HSCVAD_PLUGINS=<path of this file>``, which every job inherits; tests that call stages directly
import it.
"""

from __future__ import annotations

import numpy as np

from hscvad.models.appearance import AppearanceModel
from hscvad.models.detection import Detections, Detector
from hscvad.models.pose import PoseModel
from hscvad.models.registry import APPEARANCE, DETECTORS, POSE, SCENE, Runtime
from hscvad.models.scene import SceneModel


class BrightBlobDetector(Detector):
    """One 'person' box around each connected blob of saturated pixels."""

    @classmethod
    def from_config(cls, cfg, runtime, key):
        return cls()

    def detect(self, frame):
        import cv2

        mask = (frame.max(-1) > 150).astype(np.uint8)
        n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        if n <= 1:
            return Detections.empty()
        x, y, w, h = (stats[1:, i].astype(np.float32) for i in range(4))
        boxes = np.stack([x, y, x + w, y + h], 1)
        return Detections(boxes, np.full(n - 1, 0.9, np.float32), np.zeros(n - 1, np.int64))


class MeanColour(AppearanceModel):
    """The crop's mean colour (3-d)."""

    dim = 3
    input_hw = (8, 8)

    @classmethod
    def from_config(cls, cfg, runtime, key):
        return cls()

    def embed(self, crops):
        return crops.reshape(len(crops), -1, 3).mean(1).astype(np.float32)


class Brightness(SceneModel):
    """Two classes, dark and bright, scored by each pixel's brightness."""

    classes = ("dark", "bright")
    foreground = ("bright",)

    @classmethod
    def from_config(cls, cfg, runtime, key):
        return cls()

    def class_scores(self, frame):
        b = frame.mean(-1) / 255.0
        return np.stack([1 - b, b])


class BoxCorners(PoseModel):
    """Keypoints spread along the box's diagonal."""

    @classmethod
    def from_config(cls, cfg, runtime, key):
        return cls()

    def keypoints(self, frame, boxes):
        t = np.linspace(0, 1, 17)
        x = boxes[:, :1] + t * (boxes[:, 2:3] - boxes[:, :1])
        y = boxes[:, 1:2] + t * (boxes[:, 3:4] - boxes[:, 1:2])
        return np.stack([x, y, np.full_like(x, 0.9)], -1).astype(np.float32)


DETECTORS.register("standin_bright")(BrightBlobDetector)
APPEARANCE.register("standin_mean_colour")(MeanColour)
SCENE.register("standin_brightness")(Brightness)
POSE.register("standin_box_corners")(BoxCorners)


#: stage params (as a rule's) that select the stand-ins, for tests that call stages directly
PARAMS = {
    "clip_length": 4,
    "detection": {"backend": "standin_bright", "classes": ["person"], "score_threshold": 0.1, "standin_bright": {}},
    "tracking": {"backend": "bytetrack", "bytetrack": {}},
    "appearance": {"backend": "standin_mean_colour", "crops_per_sample": 2, "context": 1.0, "batch_size": 3,
                   "standin_mean_colour": {}},
    "scene": {"backend": "standin_brightness", "cell": 16, "frame_stride": 2, "foreground_classes": ["bright"],
              "standin_brightness": {}},
    "scene_labels": {"tsne": False, "perplexity": 30, "eps": 0.5, "min_samples": 2},
    "seed": 0,
}
RT = Runtime("cpu", 1)
