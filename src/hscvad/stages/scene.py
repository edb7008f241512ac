"""Rule ``scene``: one scene feature per clip (docs/method.md §2), output layout ``scene``."""

from __future__ import annotations

import numpy as np

from ..data import build_dataset
from ..h5store import write_store
from ..models.registry import SCENE, Runtime
from ..models.scene import scene_cells
from ..settings import DATASET
from .common import log, n_clips, progress

#: the settings this stage's result depends on (the rule's params; see hscvad.settings)
SETTINGS = (DATASET, "clip_length", "scene.backend", "scene.cell", "scene.frame_stride", "scene.foreground_classes",
            "scene.@backend")


def run(dataset_name: str, dataset_cfg: dict, split: str, video: str, out: str, params: dict,
        runtime: Runtime) -> dict:
    cfg = params["scene"]
    T, stride, cell = int(params["clip_length"]), int(cfg["frame_stride"]), int(cfg["cell"])
    model = SCENE.build(cfg["backend"], cfg.get(cfg["backend"], {}), runtime, "scene")
    fg_names = cfg["foreground_classes"]
    unknown = [c for c in fg_names if c not in model.classes]
    if unknown:
        raise ValueError(f"scene.foreground_classes: {unknown} are not classes of backend {cfg['backend']}")
    fg = np.array([model.classes.index(c) for c in fg_names])
    ds = build_dataset(dataset_name, dataset_cfg)
    sums: dict[int, np.ndarray] = {}
    used: dict[int, int] = {}
    n = 0
    hw = None
    bar = progress(None, f"scene {video}", "frame")
    def keep(t):  # the frames segmented: every stride-th of each clip
        return not (t % T) % stride

    for n, frame in enumerate(ds.source(split, video).frames(keep), start=1):
        i = n - 1
        bar.update(1)
        if frame is None:
            continue
        hw = hw or frame.shape[:2]
        v = scene_cells(model.class_scores(frame), hw, cell, fg)
        c = i // T
        sums[c] = sums.get(c, 0) + v
        used[c] = used.get(c, 0) + 1
    bar.close()
    C = n_clips(n, T)
    feat = np.stack([sums[c] / used[c] for c in range(C)]).astype(np.float32)
    feat /= np.maximum(np.linalg.norm(feat, axis=1, keepdims=True), 1e-12)
    attrs = {
        "dataset": dataset_name, "split": split, "video": video, "n_frames": n, "clip_length": T,
        "backend": cfg["backend"], "cell": cell, "grid_h": hw[0] // cell, "grid_w": hw[1] // cell,
        "frame_stride": stride, "foreground_classes": list(fg_names),
    }
    with write_store(out, "scene", attrs) as f:
        f["feature"] = feat
        f["clip"] = np.arange(C, dtype=np.int32)
        f["n_frames_used"] = np.array([used[c] for c in range(C)], np.int32)
    log.info("%s/%s: %d clips, scene feature of %d cells", split, video, C, feat.shape[1])
    return {"n_clips": C, "dim": int(feat.shape[1])}


def main(job) -> None:
    w = job.wildcards
    run(w.dataset, job.params["dataset"], w.split, w.video, job.output[0], job.params, job.runtime)
