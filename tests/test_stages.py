"""Stages run directly on synthetic videos with small test backends: outputs, empty cases, failures."""

import json

import h5py
import numpy as np
import pytest
from conftest import auc_from_csv, write_frames, write_video
from standin_backends import PARAMS, RT, MeanColour

from hscvad.features import assign_scenes
from hscvad.h5store import FORMAT_VERSION, StoreError, contents, read_arrays
from hscvad.models.detection import Detections
from hscvad.models.registry import APPEARANCE, DETECTORS, WeightsError, resolve_weights
from hscvad.stages import appearance, detect_track, scene, scene_labels


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


def test_hscvad_run_is_the_job_a_rule_runs(tmp_path, capfd):
    """``hscvad run <rule>`` builds the rule's job by hand: the same output as the stage's run(), its
    params at the top of the log; a failure gives exit status 1, its cause in one console line and
    the traceback in the log, and the process's stderr is the console again afterwards."""
    from hscvad import cli

    ds = _folder_ds(tmp_path)
    t, o1, o2, log = (tmp_path / n for n in ("t.h5", "o1.h5", "o2.h5", "job.log"))
    detect_track.run("own", ds, "train", "a", str(t), PARAMS, RT)
    appearance.run("own", ds, "train", "a", str(t), str(o1), PARAMS, RT)
    args = ["run", "appearance", "--params", json.dumps({**PARAMS, "dataset": ds}), "--dataset", "own",
            "--split", "train", "--video", "a", "--device", "cpu", "--log", str(log)]
    assert cli.main([*args, "--input", f"tracks={t}", "--output", f"out={o2}"]) == 0
    a, b = read_arrays(str(o1), "objects")[0], read_arrays(str(o2), "objects")[0]
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert '"crops_per_sample": 2' in log.read_text().splitlines()[0]
    capfd.readouterr()
    missing = tmp_path / "missing.h5"
    assert cli.main([*args, "--input", f"tracks={missing}", "--output", f"out={tmp_path / 'o3.h5'}"]) == 1
    console = capfd.readouterr().err
    assert console.startswith("hscvad appearance: error: ") and str(missing) in console.splitlines()[0]
    assert "Traceback" in log.read_text() and not (tmp_path / "o3.h5").exists()
    # a per-video rule run without its video: the console says which option is missing
    no_video = [a for a in args if a not in ("--video", "a")]
    assert cli.main([*no_video, "--input", f"tracks={t}", "--output", f"out={tmp_path / 'o4.h5'}"]) == 1
    assert capfd.readouterr().err.startswith("hscvad appearance: error: this job needs --video")
    print("after", file=__import__("sys").stderr)
    assert capfd.readouterr().err == "after\n"


class CountingMeanColour(MeanColour):
    loads = 0

    @classmethod
    def from_config(cls, cfg, runtime, key):
        cls.loads += 1
        return cls()


def test_a_shard_job_runs_its_videos_with_each_model_loaded_once(tmp_path, capfd):
    """A shard job (rules/shards.smk: several videos per job) writes each video's file exactly as
    that video's own job does, builds a stateless backend once for all its videos (a tracker anew
    for each), and names the failing video."""
    from hscvad import jobs
    from hscvad.models.registry import TRACKERS, shared_models

    APPEARANCE.register("test_counting")(CountingMeanColour)
    try:
        ds = _folder_ds(tmp_path)
        write_frames(tmp_path / "own" / "test" / "c", 9)  # b and c hold objects, blank none
        params = {**PARAMS, "dataset": ds, "appearance": {**PARAMS["appearance"], "backend": "test_counting",
                                                          "test_counting": {}}}
        videos = ["b", "blank", "c"]
        res = tmp_path / "results" / "own"
        tracks = [str(tmp_path / f"{v}.tracks.h5") for v in videos]
        single = [str(tmp_path / f"{v}.single.h5") for v in videos]
        for v, t, o in zip(videos, tracks, single):
            detect_track.run("own", ds, "test", v, t, params, RT)
            appearance.run("own", ds, "test", v, t, o, params, RT)
        outs = [str(res / "objects" / "test" / f"{v}.h5") for v in videos]
        job = jobs.Job(rule="appearance__shard_own_test_000",
                       input=jobs.Files([*videos, *tracks], {"video": videos, "tracks": tracks, "weights": []}),
                       output=jobs.Files(outs), params=params, log=str(tmp_path / "shard.log"))
        assert [(p.wildcards.dataset, p.wildcards.split, p.wildcards.video, p.input.tracks, p.output[0])
                for p in jobs.shard_parts(job)] == [("own", "test", v, t, o) for v, t, o in zip(videos, tracks, outs)]
        CountingMeanColour.loads = 0
        assert jobs.run(job) == 0
        assert CountingMeanColour.loads == 1  # the per-video runs above loaded it for b and c each
        for a, b in zip(single, outs):
            x, y = read_arrays(a, "objects")[0], read_arrays(b, "objects")[0]
            assert x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x)
        log = (tmp_path / "shard.log").read_text()
        assert "shard video 1/3: own/test/b" in log and "shard video 3/3: own/test/c" in log
        with shared_models():
            trk = [TRACKERS.build("bytetrack", {}, RT, "tracking") for _ in range(2)]
            det = [DETECTORS.build("standin_bright", {}, RT, "detection") for _ in range(2)]
        assert trk[0] is not trk[1] and det[0] is det[1]
        assert DETECTORS.build("standin_bright", {}, RT, "detection") is not det[0]  # outside a shard
        capfd.readouterr()
        job.input.tracks = [tracks[0], str(tmp_path / "missing.h5"), tracks[2]]
        assert jobs.run(job) == 1
        console = capfd.readouterr().err
        assert "hscvad appearance__shard_own_test_000: error:" in console and "(video test/blank)" in console
        bad = jobs.Job(rule="scene__shard_own_test_000", output=jobs.Files([str(tmp_path / "b.h5")]))
        with pytest.raises(ValueError, match="is not results/<dataset>/<kind>/<split>/<video>.h5"):
            jobs.shard_parts(bad)
        assert jobs.shard_parts(jobs.Job(rule="appearance")) is None
    finally:
        APPEARANCE.unregister("test_counting")


def test_file_contents_compare_data_and_attributes_not_timestamps(tmp_path):
    # the comparison the shard test and bench/shards.py rely on: a difference in any dataset's
    # values, dtype or attributes, or in a group's attributes, makes two files differ
    def write(name, value=1.0, dtype="f4", attr="x", group_attr="g"):
        with h5py.File(tmp_path / name, "w") as f:
            f.attrs["stage"] = "s"
            g = f.create_group("g")
            g.attrs["a"] = group_attr
            d = g.create_dataset("d", data=np.array([value, 2.0], dtype))
            d.attrs["u"] = attr
        return contents(tmp_path / name)

    same = write("a.h5")
    assert write("b.h5") == same
    assert write("c.h5", value=1.5) != same
    assert write("d.h5", dtype="f8") != same
    assert write("e.h5", attr="y") != same
    assert write("f.h5", group_attr="h") != same


def test_run_summary_counts_the_jobs_of_the_current_shard_setting(tmp_path):
    from hscvad.stages.summarise_run import summarise

    def bench(rel, seconds):
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"s\th:m:s\tmax_rss\tcpu_time\n{seconds}\t0:00:01\t100.0\t{seconds}\n")

    bench("train_hsc/all.tsv", 50)
    bench("appearance/test/01.tsv", 10)  # per-video jobs of an earlier run
    bench("appearance/test/02.tsv", 12)
    bench("appearance/shards/test_000.tsv", 15)  # the current shards of 2 videos
    bench("appearance/shards/test_001.tsv", 7)  # left by a run with shards of 1 video
    per_video = {r["stage"]: r for r in summarise(tmp_path)}
    assert per_video["appearance"]["jobs"] == 2 and per_video["appearance"]["wall_s_total"] == 22
    sharded = {r["stage"]: r for r in summarise(tmp_path, {"appearance": ["test_000.tsv"]})}
    assert sharded["appearance"]["jobs"] == 1 and sharded["appearance"]["wall_s_total"] == 15
    assert sharded["train_hsc"]["jobs"] == per_video["train_hsc"]["jobs"] == 1


def test_run_summary_takes_each_jobs_own_cpu_report_over_snakemakes_sample(tmp_path):
    from hscvad.jobs import CPU_LINE
    from hscvad.stages.summarise_run import summarise

    for rel, sampled in (("velocity/test/01", 0.0), ("velocity/test/02", 0.0), ("train_hsc/all", 200.0)):
        tsv = tmp_path / "benchmarks" / f"{rel}.tsv"
        tsv.parent.mkdir(parents=True, exist_ok=True)
        tsv.write_text(f"s\th:m:s\tmax_rss\tcpu_time\n0.3\t0:00:00\t100.0\t{sampled}\n")
    for rel, user, system in (("velocity/test/01", 0.20, 0.02), ("velocity/test/02", 0.25, 0.03)):
        log = tmp_path / "logs" / f"{rel}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        cpu = CPU_LINE.format(user=user, system=system)
        log.write_text(f"INFO rule velocity, threads 1, params {{}}\nINFO {cpu}\n")
    rows = {r["stage"]: r for r in summarise(tmp_path / "benchmarks")}
    assert rows["velocity"]["cpu_s_total"] == pytest.approx(0.50)  # Snakemake's samples said 0
    assert rows["train_hsc"]["cpu_s_total"] == 200.0  # no report in a log: the sampled figure


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
    assert assign_scenes(np.array([[0.0, 1.0, 0, 0]]), cents)[0] == labels[10]
    # identical features (e.g. a segmentation model with random weights): one scene, no t-SNE NaNs
    same, _, info = scene_labels.cluster_scenes(np.ones((6, 4)), {"tsne": True, "eps": 4.63, "min_samples": 5,
                                                                  "perplexity": 30}, 0)
    assert (same == 0).all() and "identical" in info["method"]


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
        g = f.create_group("appearance")
        g["frame_score"] = fs
        g["train_score"] = rng.normal(1.0, 0.5, 50).astype(np.float32)
        # one object per clip with objects, scoring its clip's frames (the score stage's rows)
        vid = np.repeat(np.arange(len(n_frames)), n_frames)
        clip = np.concatenate([np.arange(n) // T for n in n_frames])
        first = np.flatnonzero(np.r_[True, (np.diff(vid) != 0) | (np.diff(clip) != 0)] & np.isfinite(fs))
        g["test_video"], g["test_clip"], g["test_score"] = vid[first], clip[first], fs[first]


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


@pytest.mark.motion
@pytest.mark.parametrize("min_len,expected", [(10, 0), (9, 3)])
def test_pose_and_motion_respect_the_tracklet_length(tmp_path, min_len, expected):
    from hscvad.stages import motion, pose

    ds = _folder_ds(tmp_path)  # train/a: one person tracked in all 10 frames
    t, p, m = tmp_path / "t.h5", tmp_path / "p.h5", tmp_path / "m.h5"
    detect_track.run("own", ds, "train", "a", str(t), PARAMS, RT)
    params = {**PARAMS, "pose": {"backend": "standin_box_corners", "min_track_length": min_len,
                                 "standin_box_corners": {}},
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
    params = {**PARAMS, "pose": {"backend": "standin_box_corners", "min_track_length": 0, "standin_box_corners": {}},
              "motion": {"backend": "skeleton", "min_score": 0.2}}
    assert pose.run("own", ds, "test", "blank", str(t), str(p), params, RT)["n_persons"] == 0
    assert motion.run(str(t), str(p), str(m), params)["n_samples"] == 0
    assert read_arrays(m, "motion")[0]["keypoints"].shape == (0, 4, 17, 3)


@pytest.mark.motion
def test_motion_stream_without_persons_stops_with_a_clear_message(tmp_path):
    from hscvad.h5store import write_store
    from hscvad.stages import train_hsc

    base = {"dataset": "d", "split": "train", "video": "v", "n_frames": 8, "clip_length": 4}
    with write_store(tmp_path / "m.h5", "motion", {**base, "dim": 156}) as f:
        f["feature"] = np.zeros((0, 156), np.float32)
        f["clip"] = np.zeros(0, np.int32)
        f["class_id"] = np.zeros(0, np.int16)
        f["track_id"] = np.zeros(0, np.int32)
        f["box"] = np.zeros((0, 4), np.float32)
    with write_store(tmp_path / "s.h5", "scene", base) as f:
        f["feature"] = np.full((2, 6), 0.4, np.float32)
    with write_store(tmp_path / "scenes.h5", "scenes", {"n_scenes": 1}) as f:
        f["video"] = np.array([b"v"])
        f["video_index"] = np.zeros(2, np.int32)
        f["clip"] = np.arange(2, dtype=np.int32)
        f["label"] = np.zeros(2, np.int32)
    params = {"seed": 0, "motion_classes": 4, "hsc": {"epochs": 1, "architecture": {"motion": {}}}}
    with pytest.raises(ValueError, match=r"stream 'motion' has 0 training samples: no person is tracked for more"):
        train_hsc.run({"motion": ([str(tmp_path / "m.h5")], [str(tmp_path / "s.h5")])}, str(tmp_path / "scenes.h5"),
                      str(tmp_path / "model.pt"), str(tmp_path / "h.csv"), params, RT)
    assert not (tmp_path / "model.pt").exists()


def _walker(folder, n, fast_from=None, seed=0):
    """Frames of a bright 10x24 'person' walking right at 1 px/frame (3 px/frame with vertical jitter
    from ``fast_from`` on: still trackable, so the motion stream sees it)."""
    import cv2

    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    x, y = 4.0, 30.0
    for i in range(n):
        img = np.full((72, 160, 3), 60, np.uint8)
        fast = fast_from is not None and i >= fast_from
        x += 3.0 if fast else 1.0
        yy = y + (rng.integers(-3, 4) if fast else 0)
        img[int(yy) : int(yy) + 24, int(x) : int(x) + 10] = 220
        cv2.imwrite(str(folder / f"{i:03d}.png"), img)


@pytest.mark.motion
def test_motion_and_velocity_streams_end_to_end_on_synthetic_walkers(tmp_path):
    from hscvad.stages import (
        augment_motion,
        evaluate,
        explain,
        flow,
        motion,
        pose,
        score,
        train_hsc,
        train_motion_classifier,
        velocity,
    )

    root = tmp_path / "own"
    for i in range(3):
        _walker(root / "train" / f"t{i}", 48, seed=i)
    _walker(root / "test" / "x", 48, fast_from=24)
    (root / "labels").mkdir()
    np.save(root / "labels" / "x.npy", np.r_[np.zeros(24, int), np.ones(24, int)])
    ds = {"adapter": "folder", "root": str(root)}
    arch = {"encoder_hidden": [64], "latent": 32, "decoder_hidden": [48], "block": "ours"}
    params = {**PARAMS, "pose": {"backend": "standin_box_corners", "min_track_length": 10, "standin_box_corners": {}},
              "motion": {"backend": "skeleton", "min_score": 0.2},
              "streams": ["appearance", "motion"], "motion_classes": 2,
              "flow": {"backend": "dis", "orientation_bins": 8, "magnitude_edges": [0.5, 1, 2, 4, 8],
                       "dis": {"preset": "medium"}},
              "velocity": {"parts": ["flow", "flow_rel", "track"], "log_scale_px": 0.25, "log_scale_rel": 0.01},
              "readout": {"tau": "auto", "effective_entries": 5, "max_queries": 4096, "bank": "memory"},
              "explain": {"clips_per_video": 2, "objects_per_clip": 1, "objects_per_video": 3},
              "hsc": {"epochs": 40, "batch_size": 16, "lr": 0.005, "optimizer": "adam", "matmul_precision": "highest",
                      "weight_decay": 1e-4,
                      "tau": 0.5, "memory_momentum": 0.9, "rec_reduction": "mean", "feature_norm": "none",
                      "architecture": {"appearance": arch, "motion": arch,
                                       "velocity": {**arch, "input_norm": "group"}},
                      "ablation": {k: True for k in ("scene_aware_encoder", "object_centric_decoder", "loss_scene",
                                                     "loss_object", "loss_classification", "loss_reconstruction")}},
              "motion_augmentation": {"mode": "MA-,+", "p_spatial": 0.5, "p_temporal": 0.5, "t_norm": 0.2,
                                      "t_abn": 0.8, "fallback": "autoencoder",
                                      "classifier": {"epochs": 30, "lr": 1e-3, "batch_size": 32, "weight_decay": 0}},
              # the raw scores: with 36 training clips the calibrated ones tie at their bound, ln(37)
              "evaluation": {"protocol": "strict", "calibration": "none", "reference": {"window": 9, "sigma": 2},
                             "strict": {"sigma": 2}}}
    files = {}
    for split, vids in (("train", ["t0", "t1", "t2"]), ("test", ["x"])):
        for v in vids:
            d = {k: tmp_path / k / split / f"{v}.h5"
                 for k in ("tracks", "objects", "scene", "pose", "motion", "flow", "velocity")}
            detect_track.run("own", ds, split, v, str(d["tracks"]), params, RT)
            appearance.run("own", ds, split, v, str(d["tracks"]), str(d["objects"]), params, RT)
            scene.run("own", ds, split, v, str(d["scene"]), params, RT)
            pose.run("own", ds, split, v, str(d["tracks"]), str(d["pose"]), params, RT)
            motion.run(str(d["tracks"]), str(d["pose"]), str(d["motion"]), params)
            flow.run("own", ds, split, v, str(d["tracks"]), str(d["flow"]), params, RT)
            velocity.run(str(d["tracks"]), str(d["flow"]), str(d["velocity"]), params)
            for k, p in d.items():
                files.setdefault((k, split), []).append(str(p))
    scene_labels.run(files[("scene", "train")], str(tmp_path / "scenes.h5"), str(tmp_path / "emb.png"), params)
    streams = {"appearance": (files[("objects", "train")], files[("scene", "train")]),
               "motion": (files[("motion", "train")], files[("scene", "train")]),
               "velocity": (files[("velocity", "train")], files[("scene", "train")])}
    train_hsc.run(streams, str(tmp_path / "scenes.h5"), str(tmp_path / "model.pt"), str(tmp_path / "h.csv"), params, RT)
    aug = augment_motion.run(str(tmp_path / "model.pt"), files[("motion", "train")], files[("scene", "train")],
                             str(tmp_path / "aug.h5"), params, RT)
    assert aug["n_candidates"] == 4 * 3 * 12  # four variants of 3 videos x 12 clips
    train_motion_classifier.run(str(tmp_path / "aug.h5"), files[("motion", "train")], files[("scene", "train")],
                                str(tmp_path / "clf.pt"), str(tmp_path / "clf.csv"), params, RT)
    split_files = {s: {"train": (files[(k, "train")], files[("scene", "train")]),
                       "test": (files[(k, "test")], files[("scene", "test")])}
                   for s, k in (("appearance", "objects"), ("motion", "motion"), ("velocity", "velocity"))}
    # stage 1 (the scene-motion autoencoder's Eq. 11 error) sees the fast, jittering walk
    score.run(str(tmp_path / "model.pt"), split_files, str(tmp_path / "scenes.h5"), str(tmp_path / "s1.h5"), params, RT)
    out = evaluate.run("own", ds, str(tmp_path / "s1.h5"), str(tmp_path / "auc1.json"), str(tmp_path / "f1.csv"),
                       str(tmp_path / "plots1"), params)
    assert set(out["streams"]) == {"appearance", "motion", "velocity", "fused"}
    assert out["streams"]["motion"]["protocols"]["strict_unsmoothed"]["micro_auc"] > 0.8
    # the walker triples its speed: the velocity stream sees it in every fast clip
    assert out["streams"]["velocity"]["protocols"]["strict_unsmoothed"]["micro_auc"] > 0.95
    # the calibrations not configured are reported too; one walker per clip: crowd is tail
    prot = out["streams"]["velocity"]["protocols"]
    assert prot["strict_calibration_crowd"]["micro_auc"] == prot["strict_calibration_tail"]["micro_auc"]
    assert {"reference_calibration_crowd", "strict_calibration_tail"} <= set(out["protocols"])
    with h5py.File(tmp_path / "s1.h5") as f:
        ro = json.loads(f.attrs["readout"])
        assert set(ro) == {"appearance", "motion", "velocity"} and ro["velocity"]["train_holdout"] == "video"
        assert 0 < ro["velocity"]["tau"] < 10 and "auto" in ro["velocity"]["how"]
        assert f["velocity"]["test_track"].shape == f["velocity"]["test_score"].shape == (12,)
    # explanations: the fast walker's clips come first, boxed and attributed to a stream
    info = explain.run("own", ds, str(tmp_path / "s1.h5"), files[("tracks", "test")], str(tmp_path / "explain"),
                       str(tmp_path / "top.csv"), {**params, "calibration": "tail", "track_window": 0})
    assert info == {"n_videos": 1, "n_rows": 3}
    assert (tmp_path / "explain" / "x.png").stat().st_size > 10_000
    rows = (tmp_path / "top.csv").read_text().splitlines()
    assert rows[0].startswith("video,rank,clip,first_frame,last_frame,track_id,x1,y1,x2,y2,class,fused_z,")
    assert all(int(r.split(",")[2]) >= 6 for r in rows[1:])  # clips of frames >= 24 (clip length 4)
    # two threads: worker processes draw the figures, the same files (PDF pages carry no date)
    info2 = explain.run("own", ds, str(tmp_path / "s1.h5"), files[("tracks", "test")], str(tmp_path / "explain2"),
                        str(tmp_path / "top2.csv"), {**params, "calibration": "tail", "track_window": 0}, threads=2)
    assert info2 == info and (tmp_path / "top2.csv").read_bytes() == (tmp_path / "top.csv").read_bytes()
    assert (tmp_path / "explain2" / "x.png").read_bytes() == (tmp_path / "explain" / "x.png").read_bytes()
    out2 = evaluate.run("own", ds, str(tmp_path / "s1.h5"), str(tmp_path / "auc1b.json"), str(tmp_path / "f1b.csv"),
                        str(tmp_path / "plots1b"), params, threads=2)
    assert out2 == out and (tmp_path / "f1b.csv").read_bytes() == (tmp_path / "f1.csv").read_bytes()
    figures = sorted(p.name for p in (tmp_path / "plots1").iterdir())
    assert {"score_curves.pdf", "score_curves.png", "histogram.png"} <= set(figures)
    assert figures == sorted(p.name for p in (tmp_path / "plots1b").iterdir())
    for name in figures:
        assert (tmp_path / "plots1b" / name).read_bytes() == (tmp_path / "plots1" / name).read_bytes(), name
    # MA-,+: the classifier's P(abnormal) replaces the motion score (it learns the augmentations' abnormality,
    # so on this toy walk it need not rank the frames well; the scores must be valid probabilities)
    score.run(str(tmp_path / "model.pt"), split_files, str(tmp_path / "scenes.h5"), str(tmp_path / "s2.h5"), params, RT,
              classifier=str(tmp_path / "clf.pt"))
    with h5py.File(tmp_path / "s2.h5") as f:
        assert f["motion"].attrs["score"] == "classifier P(abnormal)"
        p = f["motion"]["test_score"][()]
        assert len(p) == 12 and ((0 <= p) & (p <= 1)).all()
    out = evaluate.run("own", ds, str(tmp_path / "s2.h5"), str(tmp_path / "auc2.json"), str(tmp_path / "f2.csv"),
                       str(tmp_path / "plots2"), params)
    assert out["micro_auc"] == pytest.approx(auc_from_csv(tmp_path / "f2.csv", "strict"), abs=1e-9)


def test_detect_frames_batches_in_order():

    class Batched:
        calls = []

        def detect(self, frame):
            raise AssertionError("batched detector used frame by frame")

        def detect_batch(self, frames):
            self.calls.append(len(frames))
            return [Detections(np.array([[f[0, 0, 0], 0, 1, 1]], np.float32), np.ones(1, np.float32),
                               np.zeros(1, np.int64)) for f in frames]

    frames = [np.full((2, 2, 3), i, np.uint8) for i in range(7)]
    det = Batched()
    out = list(detect_track.detect_frames(det, iter(frames), batch=3))
    assert det.calls == [3, 3, 1]
    assert [int(d.boxes[0, 0]) for _, d in out] == list(range(7))
    assert all(f is g for (f, _), g in zip(out, frames))

