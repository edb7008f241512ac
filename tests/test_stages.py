"""Stages run directly on synthetic videos with small test backends: outputs, empty cases, failures."""

import numpy as np
import pytest
from conftest import write_frames, write_video

from hscvad.h5store import FORMAT_VERSION, StoreError, read_arrays
from hscvad.models.appearance import APPEARANCE, AppearanceModel
from hscvad.models.detection import DETECTORS, Detections, Detector
from hscvad.models.registry import Runtime, WeightsError, resolve_weights
from hscvad.models.scene import SCENE, SceneModel
from hscvad.stages import appearance, detect_track, scene, scene_labels


@DETECTORS.register("test_bright")
class BrightBlobDetector(Detector):
    """Boxes around saturated pixels: a deterministic stand-in detector for stage tests."""

    @classmethod
    def from_config(cls, cfg, runtime, key):
        return cls()

    def detect(self, frame):
        mask = frame.max(-1) > 150
        if not mask.any():
            return Detections.empty()
        ys, xs = np.nonzero(mask)
        box = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
        return Detections(box, np.array([0.9], np.float32), np.array([0]))


@APPEARANCE.register("test_mean_colour")
class MeanColour(AppearanceModel):
    dim = 3
    input_hw = (8, 8)

    @classmethod
    def from_config(cls, cfg, runtime, key):
        return cls()

    def embed(self, crops):
        return crops.reshape(len(crops), -1, 3).mean(1).astype(np.float32)


@SCENE.register("test_brightness")
class Brightness(SceneModel):
    classes = ("dark", "bright")

    @classmethod
    def from_config(cls, cfg, runtime, key):
        return cls()

    def class_scores(self, frame):
        b = frame.mean(-1) / 255.0
        return np.stack([1 - b, b])


PARAMS = {
    "clip_length": 4,
    "detection": {"backend": "test_bright", "classes": ["person"], "score_threshold": 0.1, "test_bright": {}},
    "tracking": {"backend": "bytetrack", "bytetrack": {}},
    "appearance": {"backend": "test_mean_colour", "crops_per_sample": 2, "context": 1.0, "batch_size": 3,
                   "test_mean_colour": {}},
    "scene": {"backend": "test_brightness", "cell": 16, "frame_stride": 2, "foreground_classes": ["bright"],
              "test_brightness": {}},
    "scene_labels": {"tsne": False, "perplexity": 30, "eps": 0.5, "min_samples": 2},
    "seed": 0,
}
RT = Runtime("cpu", 1)


def _folder_ds(tmp_path):
    write_video(tmp_path / "own" / "train" / "a.avi", 10)
    write_frames(tmp_path / "own" / "test" / "b", 9)
    (tmp_path / "own" / "test" / "blank").mkdir(parents=True)
    import cv2

    for i in range(6):
        cv2.imwrite(str(tmp_path / "own" / "test" / "blank" / f"{i:03d}.png"), np.full((48, 64, 3), 40, np.uint8))
    return {"adapter": "folder", "root": str(tmp_path / "own")}


def test_per_video_stages_write_versioned_files(tmp_path):
    ds = _folder_ds(tmp_path)
    t = tmp_path / "t.h5"
    info = detect_track.run("own", ds, "train", "a", str(t), PARAMS, RT)
    arr, attrs = read_arrays(t, "tracks")
    assert attrs["format_version"] == FORMAT_VERSION and attrs["n_frames"] == 10 == info["n_frames"]
    assert arr["box"].shape == (len(arr["frame"]), 4) and len(np.unique(arr["track_id"])) == 1
    o = tmp_path / "o.h5"
    appearance.run("own", ds, "train", "a", str(t), str(o), PARAMS, RT)
    obj, oa = read_arrays(o, "objects")
    assert obj["feature"].shape == (3, 3)  # 10 frames, clips of 4 -> 3 samples of one track
    assert obj["clip"].tolist() == [0, 1, 2] and obj["n_crops"].tolist() == [2, 2, 2]
    assert (obj["feature"][:, 1] > obj["feature"][:, 0] + 40).all()  # the green square dominates
    s = tmp_path / "s.h5"
    scene.run("own", ds, "train", "a", str(s), PARAMS, RT)
    sc, sa = read_arrays(s, "scene")
    assert sc["feature"].shape == (3, 3 * 4) and sc["n_frames_used"].tolist() == [2, 2, 1]
    assert np.allclose(np.linalg.norm(sc["feature"], axis=1), 1.0)
    with pytest.raises(StoreError, match="holds stage 'scene', expected 'tracks'"):
        read_arrays(s, "tracks")


def test_video_without_any_detection_gives_empty_but_valid_outputs(tmp_path):
    ds = _folder_ds(tmp_path)
    t, o = tmp_path / "t.h5", tmp_path / "o.h5"
    info = detect_track.run("own", ds, "test", "blank", str(t), PARAMS, RT)
    assert info["n_detections"] == 0
    arr, attrs = read_arrays(t, "tracks")
    assert arr["frame"].shape == (0,) and arr["box"].shape == (0, 4) and attrs["n_frames"] == 6
    appearance.run("own", ds, "test", "blank", str(t), str(o), PARAMS, RT)
    obj, _ = read_arrays(o, "objects")
    assert obj["feature"].shape[0] == 0


def test_truncated_video_leaves_no_output(tmp_path):
    path = tmp_path / "own" / "train" / "a.avi"
    _folder_ds(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    ds = {"adapter": "folder", "root": str(tmp_path / "own")}
    out = tmp_path / "res" / "t.h5"
    with pytest.raises(Exception, match="a.avi"):
        detect_track.run("own", ds, "train", "a", str(out), PARAMS, RT)
    assert not out.exists() and (not out.parent.exists() or list(out.parent.iterdir()) == [])


def test_scene_labels_one_cluster_and_noise(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.normal(0, 0.01, (10, 4)) + [1, 0, 0, 0]
    b = rng.normal(0, 0.01, (10, 4)) + [0, 1, 0, 0]
    outlier = np.array([[0, 0, 5, 0]])
    feat = np.concatenate([a, b, outlier])
    labels, emb, info = scene_labels.cluster_scenes(feat, {"tsne": False, "eps": 0.2, "min_samples": 3,
                                                          "perplexity": 5}, 0)
    assert labels.max() == 1 and info["n_noise"] == 1
    assert len(set(labels[:10])) == 1 and len(set(labels[10:20])) == 1 and labels[0] != labels[10]
    all_noise, _, _ = scene_labels.cluster_scenes(feat, {"tsne": False, "eps": 1e-6, "min_samples": 3,
                                                         "perplexity": 5}, 0)
    assert (all_noise == 0).all()
    cents = scene_labels.centroids(feat / np.linalg.norm(feat, axis=1, keepdims=True), labels)
    assert scene_labels.assign_scenes(np.array([[0.0, 1.0, 0, 0]]), cents)[0] == labels[10]


def test_missing_weights_names_key_and_path(tmp_path):
    with pytest.raises(WeightsError, match=r"detection\.yolox\.weights: weights file not found: .*none\.onnx"):
        resolve_weights(tmp_path / "none.onnx", "detection.yolox.weights")
    f = tmp_path / "w.onnx"
    f.write_bytes(b"abc")
    with pytest.raises(WeightsError, match="sha256"):
        resolve_weights(f, "k", sha256="0" * 64)


def _scores_file(path, n_frames, T=4):
    from hscvad.h5store import write_store

    rng = np.random.default_rng(0)
    with write_store(path, "scores", {"streams": ["appearance"], "tau": 0.5}) as f:
        f["videos"] = np.array([b"b", b"c"])
        f["n_frames"] = np.array(n_frames)
        f.attrs["clip_length"] = T
        f.attrs["train_stats"] = '{"appearance": {"mean": 1.0, "std": 0.5, "min": 0.2}}'
        fs = rng.random(sum(n_frames)).astype(np.float32)
        fs[:T] = np.nan  # a clip without objects
        f.create_group("appearance")["frame_score"] = fs


def test_evaluate_without_labels_writes_scores_and_plots(tmp_path):
    from hscvad.stages import evaluate

    write_frames(tmp_path / "own" / "train" / "a", 3)
    write_frames(tmp_path / "own" / "test" / "b", 9)
    write_frames(tmp_path / "own" / "test" / "c", 6)
    _scores_file(tmp_path / "scores.h5", [9, 6])
    params = {"evaluation": {"protocol": "strict", "reference": {"window": 5, "sigma": 1.0}, "strict": {"sigma": 1.0}}}
    ds = {"adapter": "folder", "root": str(tmp_path / "own")}
    out = evaluate.run("own", ds, str(tmp_path / "scores.h5"), str(tmp_path / "auc.json"), str(tmp_path / "f.csv"),
                       str(tmp_path / "plots"), params)
    assert out["has_labels"] is False and out["micro_auc"] is None and out["n_abnormal_frames"] is None
    rows = (tmp_path / "f.csv").read_text().splitlines()
    assert len(rows) == 1 + 15 and rows[1].startswith("b,0,-1,,")  # no-object frame: empty raw score
    assert all((tmp_path / "plots" / p).stat().st_size > 1000 for p in ("score_curves.png", "histogram.png"))
    # with labels of the wrong length the error names the label file
    (tmp_path / "own" / "labels").mkdir()
    np.save(tmp_path / "own" / "labels" / "b.npy", np.zeros(8))
    np.save(tmp_path / "own" / "labels" / "c.npy", np.zeros(6))
    with pytest.raises(Exception, match=r"b\.npy: 8 frame labels for a video of 9 frames"):
        evaluate.run("own", ds, str(tmp_path / "scores.h5"), str(tmp_path / "auc2.json"), str(tmp_path / "g.csv"),
                     str(tmp_path / "plots2"), params)
    assert not (tmp_path / "auc2.json").exists()


from hscvad.models.pose import POSE, PoseModel  # noqa: E402


@POSE.register("test_box_corners")
class BoxCorners(PoseModel):
    """Keypoints spread over the box: a deterministic stand-in pose backend."""

    @classmethod
    def from_config(cls, cfg, runtime, key):
        return cls()

    def keypoints(self, frame, boxes):
        t = np.linspace(0, 1, 17)
        x = boxes[:, :1] + t * (boxes[:, 2:3] - boxes[:, :1])
        y = boxes[:, 1:2] + t * (boxes[:, 3:4] - boxes[:, 1:2])
        return np.stack([x, y, np.full_like(x, 0.9)], -1).astype(np.float32)


@pytest.mark.motion
@pytest.mark.parametrize("min_len,expected", [(10, 0), (9, 3)])
def test_pose_and_motion_respect_the_tracklet_length(tmp_path, min_len, expected):
    from hscvad.stages import motion, pose

    ds = _folder_ds(tmp_path)  # train/a: one person tracked in all 10 frames
    t, p, m = tmp_path / "t.h5", tmp_path / "p.h5", tmp_path / "m.h5"
    detect_track.run("own", ds, "train", "a", str(t), PARAMS, RT)
    params = {**PARAMS, "pose": {"backend": "test_box_corners", "min_track_length": min_len, "test_box_corners": {}},
              "motion": {"backend": "skeleton", "min_score": 0.2}}
    pose.run("own", ds, "train", "a", str(t), str(p), params, RT)
    info = motion.run(str(t), str(p), str(m), params)
    arr, _ = read_arrays(m, "motion")
    assert info["n_samples"] == expected and arr["feature"].shape == (expected, 156)  # 10 frames, clips of 4
    if expected:
        assert arr["tracked"].sum() == 10 and np.isfinite(arr["feature"]).all()


@pytest.mark.motion
def test_video_without_person_gives_empty_motion_file(tmp_path):
    from hscvad.stages import motion, pose

    ds = _folder_ds(tmp_path)
    t, p, m = tmp_path / "t.h5", tmp_path / "p.h5", tmp_path / "m.h5"
    detect_track.run("own", ds, "test", "blank", str(t), PARAMS, RT)
    params = {**PARAMS, "pose": {"backend": "test_box_corners", "min_track_length": 0, "test_box_corners": {}},
              "motion": {"backend": "skeleton", "min_score": 0.2}}
    assert pose.run("own", ds, "test", "blank", str(t), str(p), params, RT)["n_persons"] == 0
    assert motion.run(str(t), str(p), str(m), params)["n_samples"] == 0
    assert read_arrays(m, "motion")[0]["keypoints"].shape == (0, 4, 17, 3)
