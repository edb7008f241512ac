"""The paper's backends (OpenMMLab + timm), each built from its config section with random
weights on the CPU: outputs of the right shapes and types on a small frame, crop batch or clip;
the mmdet trackers on synthetic moving boxes; the checkpoint path with a saved random state dict.

These need `bash scripts/setup.sh --openmmlab`; .ci/run installs it, so none of them is skipped
there. Elsewhere they skip with the reason when the packages are missing."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from conftest import MODELS, REPO, assert_same_detections, need_shared

from hscvad.config import load_config
from hscvad.models.detection import Detections
from hscvad.models.motion import build_motion
from hscvad.models.openmmlab.loading import install_shims
from hscvad.models.registry import APPEARANCE, DETECTORS, POSE, SCENE, TRACKERS, Runtime, WeightsError, sha256sum

MISSING = [m for m in ("mmdet", "mmseg", "mmpose", "mmaction", "timm", "mmcv") if importlib.util.find_spec(m) is None]
pytestmark = [
    pytest.mark.openmmlab,
    pytest.mark.skipif(bool(MISSING), reason=f"OpenMMLab stack not installed ({', '.join(MISSING)}): "
                                             "bash scripts/setup.sh --openmmlab"),
]
CPU = Runtime("cpu", 2)


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    img[30:90, 60:85] = (200, 40, 40)
    return img


def test_yolov3_detects_on_a_frame_and_in_a_batch(frame):
    det = DETECTORS.build("mmdet_yolov3", {"weights": None, "input_size": 320, "min_score": 0.0}, CPU)
    assert "RANDOM WEIGHTS" in det.describe()
    d = det.detect(frame)
    assert isinstance(d, Detections)
    assert d.boxes.dtype == np.float32 and d.boxes.shape[1:] == (4,) and len(d.scores) == len(d.classes)
    assert d.classes.dtype == np.int64 and (d.classes < 80).all()
    frames = [frame, frame[:, ::-1].copy(), np.roll(frame, 17, axis=0)]
    batched = det.detect_batch(frames)
    assert len(batched) == 3 and all(isinstance(x, Detections) for x in batched)
    for i, (f, b) in enumerate(zip(frames, batched)):  # a batch gives each frame the detections it gets alone
        one = det.detect(f)
        assert len(one) > 0
        assert_same_detections(one, b, cap=det.model.test_cfg["max_per_img"], what=f"frame {i}")


def test_yolov3_runs_at_its_input_size_and_a_batch_in_one_forward_pass_on_a_gpu(frame):
    """`input_size` reaches the resize that inference uses (mmdet reads the test dataloader's
    pipeline, not the config's `test_pipeline`); a batch of frames is one forward pass on a GPU,
    and on the CPU (where that is slower) one pass per frame."""
    for size in (160, 320):
        det = DETECTORS.build("mmdet_yolov3", {"weights": None, "input_size": size, "min_score": 0.0}, CPU)
        seen = []
        hook = det.model.backbone.register_forward_pre_hook(lambda m, a, seen=seen: seen.append(tuple(a[0].shape)))
        # 160x120 resized to fit size x size with its aspect ratio, padded to a multiple of 32
        h = -(-(size * 3 // 4) // 32) * 32
        alone = det.detect_batch([frame, frame[:, ::-1].copy()])
        assert seen == [(1, 3, h, size)] * 3, (size, seen)  # random weights' calibrating pass, then each frame
        seen.clear()
        det.device = "cuda"  # the batching decision alone (the model stays on the CPU)
        batched = det.detect_batch([frame, frame[:, ::-1].copy()])
        hook.remove()
        assert seen == [(2, 3, h, size)], (size, seen)
        # each frame of the batch gets the detections it gets alone; with random weights many tie (one
        # box for several classes), and the two passes may order those either way
        for i, (a, b) in enumerate(zip(alone, batched)):
            assert len(a) > 0
            assert_same_detections(a, b, cap=det.model.test_cfg["max_per_img"], what=f"size {size}, frame {i}")


@pytest.mark.parametrize("backend", ["mmdet_bytetrack", "mmdet_ocsort"])
def test_mmdet_tracker_follows_two_moving_boxes(backend):
    trk = TRACKERS.build(backend, {}, CPU, "tracking")
    seen = []
    first = None
    for t in range(12):
        boxes = np.array([[10 + 4 * t, 20, 40 + 4 * t, 90], [300 - 3 * t, 50, 330 - 3 * t, 120]], np.float32)
        order = [1, 0] if t % 2 else [0, 1]  # detection order changes; ids must not
        d = Detections(boxes[order], np.array([0.95, 0.9], np.float32)[order], np.zeros(2, np.int64))
        ids, idx = trk.update(d)
        seen.append(dict(zip(idx.tolist(), ids.tolist())))
        if t >= 3:  # confirmed after the tentative frames
            assert len(ids) == 2 and sorted(idx.tolist()) == [0, 1]
            # the box moving right keeps one id, the box moving left another
            right = ids[list(idx).index(order.index(0))]
            left = ids[list(idx).index(order.index(1))]
            assert right != left
            first = first or (right, left)
            assert (right, left) == first
    assert all(i >= 1 for s in seen for i in s.values())


def test_hrnet_keypoints_for_boxes(frame):
    pose = POSE.build("mmpose_hrnet", {"weights": None}, CPU)
    boxes = np.array([[55, 25, 90, 95], [10, 10, 40, 70], [100, 20, 150, 110]], np.float32)
    kp = pose.keypoints(frame, boxes)
    assert kp.shape == (3, 17, 3) and kp.dtype == np.float32
    assert pose.keypoints(frame, np.zeros((0, 4), np.float32)).shape == (0, 17, 3)


def test_posec3d_feature_and_action_class_for_a_batch_of_clips():
    model = build_motion({"backend": "mmaction_posec3d", "min_score": 0.2,
                          "mmaction_posec3d": {"weights": None, "batch_size": 2}}, CPU)
    rng = np.random.default_rng(1)
    S, T = 3, 16
    K = np.zeros((S, T, 17, 3), np.float32)
    K[..., 0] = 60 + rng.normal(0, 10, (S, T, 17))
    K[..., 1] = 50 + rng.normal(0, 20, (S, T, 17))
    K[..., 2] = 0.9
    M = np.ones((S, T), bool)
    M[2, 8:] = False  # a person tracked in half the clip
    feat, cls = model.embed(K, np.zeros((S, T, 4), np.float32), M, (120, 160))
    assert feat.shape == (S, 512) and feat.dtype == np.float32 and np.isfinite(feat).all()
    assert cls.shape == (S,) and ((cls >= 0) & (cls < 60)).all()


def test_deeplabv3plus_cityscapes_class_scores(frame):
    seg = SCENE.build("mmseg_deeplabv3plus", {"weights": None, "input_scale": [160, 120]}, CPU)
    p = seg.class_scores(frame)
    assert p.shape == (19, 120, 160) and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(0), 1.0, atol=1e-4)
    assert seg.classes[11:] == ("person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle")


def test_vit_embeds_a_crop_batch():
    # ViT-L/16 with random weights is 300M parameters; the same code path on ViT-Ti keeps CI fast
    vit = APPEARANCE.build("timm_vit", {"arch": "vit_tiny_patch16_224", "weights": None, "batch_size": 3}, CPU)
    crops = np.random.default_rng(2).integers(0, 255, (5, 224, 224, 3), dtype=np.uint8)
    emb = vit.embed(crops)
    assert emb.shape == (5, vit.dim) == (5, 192) and emb.dtype == np.float32
    large = APPEARANCE.build("timm_vit", {"weights": None, "batch_size": 1}, CPU)
    assert large.dim == 1024 and large.input_hw == (224, 224)


def test_checkpoint_path_verifies_checksum_and_loads_safely(tmp_path):
    import timm
    import torch

    src = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0)
    path = tmp_path / "vit_tiny.pth"
    # OpenMMLab checkpoints carry metadata, some of it as NumPy arrays
    torch.save({"state_dict": src.state_dict(), "meta": {"epoch": 3, "palette": np.array([[1, 2, 3]])}}, path)
    digest = sha256sum(path)
    cfg = {"arch": "vit_tiny_patch16_224", "weights": str(path), "sha256": digest}
    vit = APPEARANCE.build("timm_vit", cfg, CPU, "appearance")
    for a, b in zip(vit.model.state_dict().values(), src.state_dict().values()):
        assert torch.equal(a, b)
    # OpenMMLab's file names carry the first 8 hex digits of the sha256
    APPEARANCE.build("timm_vit", {**cfg, "sha256": digest[:8]}, CPU, "appearance")
    with pytest.raises(WeightsError, match="appearance.timm_vit.weights.*expected"):
        APPEARANCE.build("timm_vit", {**cfg, "sha256": "0" * 64}, CPU, "appearance")
    with pytest.raises(WeightsError, match="weights file not found.*missing.pth"):
        APPEARANCE.build("timm_vit", {**cfg, "weights": str(tmp_path / "missing.pth")}, CPU, "appearance")
    # a pickle that is not plain weights is refused, not executed
    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": src.state_dict(), "obj": _Opaque()}, evil)
    with pytest.raises(WeightsError, match="weights_only"):
        APPEARANCE.build("timm_vit", {**cfg, "weights": str(evil), "sha256": None}, CPU, "appearance")
    # a checkpoint of another model is named as such
    other = tmp_path / "other.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}}, other)
    with pytest.raises(WeightsError, match="lacks .* weights of the model"):
        APPEARANCE.build("timm_vit", {**cfg, "weights": str(other), "sha256": None}, CPU, "appearance")


class _Opaque:
    pass


def test_shims_make_numpy2_aliases_and_mmaction_import():
    install_shims()
    assert np.Inf == np.inf and np.in1d([1, 2, 3], [2]).tolist() == [False, True, False]
    assert np.trapz([0.0, 1.0], [0.0, 1.0]) == 0.5
    import mmaction.models  # noqa: F401  (imports localizers/drn, missing from the 1.2.0 wheel)


SHARED_PED2 = REPO.parent / "shared" / "datasets" / "ped2"


def _ped2_smoke_subset(tmp: Path, name: str, streams: list[str]) -> dict:
    """Ped2 training video 01 (frames 0-31) and test video 01 (frames 56-87, abnormal from
    frame 61 of the video, i.e. 6-32 of the subset, 1-based), in the frames layout."""
    root = tmp / name
    for split, start in (("training", 0), ("testing", 56)):
        d = root / split / "frames" / "01"
        d.mkdir(parents=True)
        for i in range(32):
            (d / f"{i:03d}.jpg").symlink_to(SHARED_PED2 / split / "frames" / "01" / f"{start + i:03d}.jpg")
    (root / "testing" / "UCSDped2.m").write_text("TestVideoFile = {};\nTestVideoFile{end+1}.gt_frame = [6:32];\n")
    return {"adapter": "ucsd_ped", "root": str(root), "streams": streams}


@pytest.mark.slow
@pytest.mark.e2e
@need_shared(SHARED_PED2 / "training" / "frames" / "01", MODELS / "yolox_nano_416x416.onnx")
def test_paper_preset_runs_end_to_end_on_cpu_with_random_weights(tmp_path):
    """Smoke runs of the whole DAG with the paper preset (random weights, CPU): outputs of the
    right shapes; the AUCs are meaningless with random weights and are not checked.

    - ``ped2paper``: every paper backend, the appearance stream (the paper's Ped2 setting).
      Untrained YOLOv3 boxes land anywhere in every frame, so no track lasts.
    - ``ped2motion``: the motion stream (HRNet, PoseConv3D, augmentation, classifier) needs
      persons tracked for more than 10 frames, which only a trained detector gives: this dataset
      overrides detection and tracking with the offline YOLOX + ByteTrack (real weights).
    Smaller inputs than the paper's keep it short: 32 frames per video, YOLOv3 at 320 px,
    DeepLabV3+ at the frame's size, PoseConv3D on 16 instead of 48 sampled frames, ViT-Ti/16
    (192-d) instead of ViT-L/16 (1024-d; the same code, test_vit_embeds_a_crop_batch), Lite-HRNet-18
    instead of HRNet-w32 (the same top-down code, test_hrnet_keypoints_for_boxes)."""
    cfg = load_config()
    cfg["models"] = "paper"
    cfg["device"] = "cpu"  # no GPU token asked for: two of the one-thread model jobs share the two cores
    cfg["datasets"] = {"ped2paper": _ped2_smoke_subset(tmp_path, "ped2paper", ["appearance"]),
                       "ped2motion": _ped2_smoke_subset(tmp_path, "ped2motion", ["appearance", "motion"])}
    cfg["detection"]["mmdet_yolov3"].update(weights=None, input_size=320, min_score=0.0)
    # untrained YOLOv3 scores are below 0.002: keep the top ones and track them, so that there are objects
    cfg["datasets"]["ped2paper"]["detection"] = {"score_threshold": 0.0007}
    cfg["datasets"]["ped2paper"]["tracking"] = {"mmdet_bytetrack": {"init_track_thr": 0.0,
                                                                    "obj_score_thrs": {"high": 0.0005, "low": 0.0}}}
    cfg["datasets"]["ped2motion"]["detection"] = {"backend": "yolox", "score_threshold": 0.8, "classes": ["person"]}
    cfg["datasets"]["ped2motion"]["tracking"] = {"backend": "bytetrack"}
    cfg["detection"]["yolox"]["weights"] = str(MODELS / "yolox_nano_416x416.onnx")
    cfg["scene"]["mmseg_deeplabv3plus"].update(weights=None, input_scale=[360, 240])
    # the same top-down code with Lite-HRNet-18 (3x faster on the CPU than HRNet-w32, whose own
    # config test_hrnet_keypoints_for_boxes runs)
    cfg["pose"]["mmpose_hrnet"].update(
        weights=None, config="body_2d_keypoint/topdown_heatmap/coco/td-hm_litehrnet-18_8xb64-210e_coco-256x192.py")
    cfg["motion"]["mmaction_posec3d"].update(weights=None, clip_len=16)
    cfg["appearance"]["timm_vit"].update(weights=None, arch="vit_tiny_patch16_224")
    cfg["appearance"]["crops_per_sample"] = 1
    cfg["hsc"]["epochs"] = 2
    cfg["motion_augmentation"]["classifier"]["epochs"] = 2
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    r = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path),
                        "--configfile", str(tmp_path / "config.yaml"), "--cores", "2", "results/ped2paper/auc.json",
                        "results/ped2motion/auc.json"],
                       capture_output=True, text=True, timeout=1500)
    assert r.returncode == 0, r.stdout[-5000:] + r.stderr[-5000:]
    res = tmp_path / "results" / "ped2paper"
    with h5py.File(res / "tracks" / "test" / "01.h5") as f:
        assert f.attrs["detector"].startswith("mmdet_yolov3(320px, RANDOM WEIGHTS")
        assert f.attrs["tracker"].startswith("mmdet_bytetrack") and len(f["box"]) > 0
    with h5py.File(res / "objects" / "train" / "01.h5") as f:
        assert f["feature"].shape[1] == 192 and len(f["feature"]) > 0
    with h5py.File(res / "scene" / "test" / "01.h5") as f:
        assert f["feature"].shape == (2, (240 // 16) * (360 // 16))
        assert f.attrs["backend"] == "mmseg_deeplabv3plus"
    auc = json.loads((res / "auc.json").read_text())
    assert set(auc["streams"]) == {"appearance", "fused"} and auc["n_test_frames"] == 32

    res = tmp_path / "results" / "ped2motion"
    with h5py.File(res / "pose" / "train" / "01.h5") as f:
        assert f["keypoints"].shape[1:] == (17, 3) and len(f["keypoints"]) > 0
    with h5py.File(res / "motion" / "train" / "01.h5") as f:
        assert f["feature"].shape[1] == 512 and len(f["feature"]) > 0 and f.attrs["action_classes"]
        assert ((f["class_id"][()] >= 0) & (f["class_id"][()] < 60)).all()
    auc = json.loads((res / "auc.json").read_text())
    assert set(auc["streams"]) == {"appearance", "motion", "fused"} and auc["n_test_frames"] == 32
