"""Motion augmentation geometry (supplement Table 1), temporal cutting, selection and the classifier."""

import numpy as np
import pytest
from conftest import MODELS, SHARED, need_shared

from hscvad.config import load_config
from hscvad.motion import augment as A
from hscvad.motion.classifier import abnormal_probability, load_classifier, train_classifier

pytestmark = pytest.mark.motion

# a standing person, COCO order, image coordinates (y down)
POSE = np.array([[50, 10], [48, 8], [52, 8], [45, 10], [55, 10], [42, 25], [58, 25], [38, 45], [62, 45],
                 [36, 62], [64, 62], [45, 65], [55, 65], [44, 90], [56, 90], [44, 115], [56, 115]], float)
# links Table 1 keeps rigid (a shoulder turns about its ear without its hip: 5-11 and 6-12 may stretch)
BONES = [(3, 5), (4, 6), (5, 7), (7, 9), (6, 8), (8, 10), (11, 13), (13, 15), (12, 14), (14, 16)]


def seq(n=3, t=4):
    s = np.repeat(np.repeat(POSE[None, None], t, 1), n, 0)
    s = s + np.arange(t)[None, :, None, None]  # walking right/down
    return np.concatenate([s, np.full((n, t, 17, 1), 0.9)], -1)


def bone_lengths(s):
    return np.stack([np.linalg.norm(s[..., a, :2] - s[..., b, :2], axis=-1) for a, b in BONES], -1)


def test_rotation_keeps_bone_lengths_and_head_and_scores():
    s = seq()
    rng = np.random.default_rng(0)
    out = A.spatial(s, rng, p=1.0)
    assert np.allclose(bone_lengths(out), bone_lengths(s))
    assert np.array_equal(out[:, :, A.HEAD], s[:, :, A.HEAD])
    assert np.array_equal(out[..., 2], s[..., 2])


def test_rotation_angle_is_exact_and_only_descendants_move():
    s = seq(n=1)
    angles = np.zeros((1, 17))
    apply = np.zeros((1, 17), bool)
    angles[0, 7], apply[0, 7] = 30.0, True  # left elbow about the left shoulder
    out = A.rotate(s, angles, apply)
    moved = np.flatnonzero(np.any(np.abs(out - s) > 1e-9, axis=(0, 1, 3)))
    assert moved.tolist() == [7, 9]
    for k in (7, 9):
        before = s[0, 0, k, :2] - s[0, 0, 5, :2]
        after = out[0, 0, k, :2] - out[0, 0, 5, :2]
        ang = np.degrees(np.arctan2(after[1], after[0]) - np.arctan2(before[1], before[0]))
        assert ang == pytest.approx(30.0)


def test_descendants_follow_a_rotated_parent():
    s = seq(n=1)
    angles = np.zeros((1, 17))
    apply = np.zeros((1, 17), bool)
    angles[0, 11], apply[0, 11] = 10.0, True  # left hip about the left shoulder: knee and ankle follow
    angles[0, 13], apply[0, 13] = -45.0, True  # then the knee about the hip's new position
    out = A.rotate(s, angles, apply)
    assert np.allclose(bone_lengths(out), bone_lengths(s))
    moved = np.flatnonzero(np.any(np.abs(out - s) > 1e-9, axis=(0, 1, 3)))
    assert moved.tolist() == [11, 13, 15]


def test_drawn_angles_lie_in_their_ranges():
    angles, apply = A.draw_spatial(20000, np.random.default_rng(1), p=0.5)
    for k, (_, _, (lo, hi)) in A.TABLE1.items():
        assert lo <= angles[:, k].min() and angles[:, k].max() <= hi
        assert apply[:, k].mean() == pytest.approx(0.5, abs=0.02)
    assert not apply[:, list(A.HEAD)].any()


def test_temporal_cutting_rate_and_zeroing():
    s = seq(n=500, t=16)
    out, keep = A.temporal_cut(s, np.random.default_rng(2), p=0.5)
    assert keep.mean() == pytest.approx(0.5, abs=0.02)
    assert np.all(out[~keep] == 0) and np.array_equal(out[keep], s[keep])


def test_four_variants():
    s = seq(n=50, t=16)
    v = A.variants(s, np.random.default_rng(3))
    assert set(v) == set(A.VARIANTS)
    assert v["spatial"][1].all() and not v["temporal"][1].all()
    for name, (x, keep) in v.items():
        assert x.shape == s.shape
        assert np.all(x[~keep] == 0), name
        if name != "temporal":
            kept = keep[:, :, None] & np.ones((1, 1, len(BONES)), bool)
            assert np.allclose(bone_lengths(x)[kept], bone_lengths(s)[kept]), name


def test_selection_thresholds_and_modes():
    train = np.linspace(0, 10, 1001)
    err = np.array([0.5, 1.9, 2.1, 5.0, 8.1, 9.5, 30.0])
    norm = A.normalised_error(err, train)
    idx, y = A.select(norm, 0.2, 0.8, "MA-,+")
    assert idx.tolist() == [0, 1, 4, 5, 6] and y.tolist() == [0, 0, 1, 1, 1]
    idx, y = A.select(norm, 0.2, 0.8, "MA-")
    assert idx.tolist() == [0, 1] and y.tolist() == [0, 0]
    with pytest.raises(ValueError):
        A.select(norm, mode="MA+")


def test_classifier_shapes_and_training_lowers_the_loss():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (200, 20)), rng.normal(1.5, 1, (200, 20))]).astype(np.float32)
    y = np.r_[np.zeros(200, int), np.ones(200, int)]
    model, hist = train_classifier(x, y, epochs=30, seed=0)
    assert hist[-1] < hist[0]
    assert model.fc1.out_features == 512 and model.fc2.out_features == 32 and model.fc3.out_features == 2
    p = abnormal_probability(model, x)
    assert p.shape == (400,) and ((0 <= p) & (p <= 1)).all()
    assert p[200:].mean() > p[:200].mean() + 0.5
    with pytest.raises(ValueError, match="both classes"):
        train_classifier(x[:10], np.zeros(10, int))


def _clip(shift=(0.0, 0.0), scale=1.0, t=16):
    """A person walking right, with the left wrist swinging; boxes follow the skeleton."""
    s = np.repeat(POSE[None], t, 0).copy()
    s[:, :, 0] += 2.0 * np.arange(t)[:, None]
    s[:, 9, 1] += 5 * np.sin(np.arange(t))
    s = s * scale + np.array(shift)
    boxes = np.stack([s[:, :, 0].min(1), s[:, :, 1].min(1), s[:, :, 0].max(1), s[:, :, 1].max(1)], 1)
    k = np.concatenate([s, np.full((t, 17, 1), 0.9)], -1)
    return k[None], boxes[None], np.ones((1, t), bool)


def test_descriptor_is_invariant_to_position_and_scale():
    from hscvad.motion.descriptor import DIM, skeleton_descriptor

    a = skeleton_descriptor(*_clip())
    b = skeleton_descriptor(*_clip(shift=(100.0, 40.0), scale=2.5))
    assert a.shape == (1, DIM) and np.allclose(a, b, atol=1e-5)
    assert a[0, 85] > 0  # mean x velocity of the nose: walking right


def test_descriptor_handles_missing_frames_low_scores_and_outside_keypoints():
    from hscvad.motion.descriptor import skeleton_descriptor

    k, b, tracked = _clip()
    ref = skeleton_descriptor(k, b, tracked)
    k2 = k.copy()
    k2[0, 5:8, :, :2] = 1e6  # garbage in frames where the person is not tracked ...
    tracked2 = tracked.copy()
    tracked2[0, 5:8] = False
    out = skeleton_descriptor(k2, b, tracked2)
    assert np.isfinite(out).all()
    assert np.allclose(out[0, :34], ref[0, :34], atol=0.05)  # ... does not leak into the pose
    k3 = k.copy()
    k3[0, :, 9, 2] = 0.05  # a keypoint that never reaches the score threshold
    out = skeleton_descriptor(k3, b, tracked)
    assert out[0, 68 + 9] == 0 and out[0, 9] == 0 and out[0, 17 + 9] == 0
    k4 = k.copy()
    k4[0, :, 10, 0] = -50  # outside the frame
    assert skeleton_descriptor(k4, b, tracked, frame_hw=(240, 360))[0, 68 + 10] == 0
    none = skeleton_descriptor(k, b, np.zeros_like(tracked))
    assert np.isfinite(none).all() and np.allclose(none, 0)


AVENUE = SHARED / "datasets" / "avenue"


@pytest.mark.slow  # 24 s: detection and pose over a whole 145-frame Avenue video
@need_shared(AVENUE / "training_videos" / "12.avi", MODELS / "movenet_singlepose_lightning_int8_4.tflite",
             MODELS / "yolox_nano_416x416.onnx")
def test_pose_on_real_avenue_people(tmp_path):

    from hscvad.config import stage_params, validate
    from hscvad.h5store import read_arrays
    from hscvad.models.registry import Runtime
    from hscvad.stages import detect_track, pose

    cfg = load_config()
    cfg["datasets"] = {"av": {"adapter": "avenue", "root": str(AVENUE)}}
    cfg["detection"]["yolox"]["weights"] = str(MODELS / "yolox_nano_416x416.onnx")
    cfg["pose"]["movenet"]["weights"] = str(MODELS / "movenet_singlepose_lightning_int8_4.tflite")
    validate(cfg)
    rt = Runtime("cpu", 2)
    p_det, p_pose = stage_params(cfg, "av", "detect_track"), stage_params(cfg, "av", "pose")
    detect_track.run("av", p_det["dataset"], "train", "12", str(tmp_path / "t.h5"), p_det, rt)
    info = pose.run("av", p_pose["dataset"], "train", "12", str(tmp_path / "t.h5"), str(tmp_path / "p.h5"), p_pose, rt)
    arr, attrs = read_arrays(tmp_path / "p.h5", "pose")
    tracks, _ = read_arrays(tmp_path / "t.h5", "tracks")
    assert attrs["n_frames"] == 145 and info["n_tracks"] > 5
    k = arr["keypoints"]
    assert k.shape == (len(arr["row"]), 17, 3) and (tracks["class_id"][arr["row"]] == 0).all()
    good = (k[:, :, 2] >= 0.3).sum(1) >= 8
    assert good.mean() > 0.4  # measured here: 0.52 (distant people are small for 192 px crops)
    # confident keypoints lie on the person: inside the box enlarged by the crop context
    box = tracks["box"][arr["row"]]
    cx, cy = (box[:, 0] + box[:, 2]) / 2, (box[:, 1] + box[:, 3]) / 2
    half = 0.7 * np.maximum(box[:, 2] - box[:, 0], box[:, 3] - box[:, 1])
    conf = k[:, :, 2] >= 0.5
    inside = (np.abs(k[:, :, 0] - cx[:, None]) <= half[:, None]) & (np.abs(k[:, :, 1] - cy[:, None]) <= half[:, None])
    assert inside[conf].mean() > 0.95
    # motion features of those skeletons: one per long person track and clip, all finite
    from hscvad.stages import motion

    m_params = {"clip_length": 16, "motion": {"backend": "skeleton", "min_score": 0.2}}
    n = motion.run(str(tmp_path / "t.h5"), str(tmp_path / "p.h5"), str(tmp_path / "m.h5"), m_params)["n_samples"]
    feats, _ = read_arrays(tmp_path / "m.h5", "motion")
    assert n > 20 and feats["feature"].shape == (n, 156) and np.isfinite(feats["feature"]).all()
    assert feats["tracked"].sum() == len(arr["row"])  # every skeleton lands in exactly one sample


def _augmented_file(path, labels, n_candidates=40):
    from hscvad.h5store import write_store

    rng = np.random.default_rng(0)
    n = len(labels)
    attrs = {"mode": "MA-,+", "t_norm": 0.2, "t_abn": 0.8, "n_candidates": n_candidates,
             "n_normal": int((np.asarray(labels) == 0).sum()), "n_abnormal": int((np.asarray(labels) == 1).sum())}
    with write_store(path, "augmented", attrs) as f:
        f["feature"] = rng.normal(size=(n, 156)).astype(np.float32)
        f["scene_feature"] = np.full((n, 6), 0.4, np.float32)
        f["label"] = np.asarray(labels, np.int8)


def _motion_files(tmp_path, n=30):
    from hscvad.h5store import write_store

    rng = np.random.default_rng(1)
    m, s = tmp_path / "m.h5", tmp_path / "s.h5"
    base = {"dataset": "d", "split": "train", "video": "v", "n_frames": 40, "clip_length": 4}
    with write_store(m, "motion", {**base, "dim": 156}) as f:
        f["feature"] = rng.normal(size=(n, 156)).astype(np.float32)
        f["clip"] = np.arange(n) % 10
        f["class_id"] = np.zeros(n, np.int16)
        f["track_id"] = np.arange(n, dtype=np.int32) // 10
        f["box"] = np.tile(np.array([[0, 0, 10, 20]], np.float32), (n, 1))
    with write_store(s, "scene", base) as f:
        f["feature"] = np.full((10, 6), 0.4, np.float32)
    return [str(m)], [str(s)]


PARAMS_CLF = {"seed": 0, "hsc": {"feature_norm": "none"},
              "motion_augmentation": {"fallback": "error",
                                      "classifier": {"epochs": 5, "lr": 1e-3, "batch_size": 16, "weight_decay": 0}}}


def test_classifier_stage_stops_with_a_clear_message_when_nothing_is_abnormal(tmp_path):
    from hscvad.models.registry import Runtime
    from hscvad.stages import train_motion_classifier as T

    motion, scenes = _motion_files(tmp_path)
    _augmented_file(tmp_path / "a.h5", [0] * 5)
    with pytest.raises(ValueError, match=r"no augmented sample scored above T_abn=0\.8 .*fallback: autoencoder"):
        T.run(str(tmp_path / "a.h5"), motion, scenes, str(tmp_path / "c.pt"), str(tmp_path / "h.csv"), PARAMS_CLF,
              Runtime())
    assert not (tmp_path / "c.pt").exists()
    params = {**PARAMS_CLF, "motion_augmentation": {**PARAMS_CLF["motion_augmentation"], "fallback": "autoencoder"}}
    info = T.run(str(tmp_path / "a.h5"), motion, scenes, str(tmp_path / "c.pt"), str(tmp_path / "h.csv"), params,
                 Runtime())
    assert info["n_abnormal"] == 0 and load_classifier(str(tmp_path / "c.pt")) is None


def test_classifier_stage_trains_on_originals_and_selected_samples(tmp_path):
    from hscvad.models.registry import Runtime
    from hscvad.stages import train_motion_classifier as T

    motion, scenes = _motion_files(tmp_path)
    _augmented_file(tmp_path / "a.h5", [0] * 5 + [1] * 12)
    info = T.run(str(tmp_path / "a.h5"), motion, scenes, str(tmp_path / "c.pt"), str(tmp_path / "h.csv"), PARAMS_CLF,
                 Runtime())
    assert info["n_train"] == 30 + 17 and info["n_abnormal"] == 12
    model = load_classifier(str(tmp_path / "c.pt"))
    assert model is not None and model.fc1.in_features == 156 + 6
    assert len((tmp_path / "h.csv").read_text().splitlines()) == 1 + 5
