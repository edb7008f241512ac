"""The Snakemake workflow on real data: configuration errors, GPU requests, and (slow tier) an
end-to-end run on a real Ped2 subset (two training and two test videos with the real models) with
the motion and velocity streams and shards on copies of it."""

import json
import re
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml
from conftest import (
    MODELS,
    PED2,
    REAL,
    REPO,
    SNAKEMAKE,
    auc_from_csv,
    base_config,
    clone_workflow,
    copy_run,
    job_gpu,
    need_shared,
    planned_jobs,
    smk,
    synthetic_dataset,
)

from hscvad.config import load_config
from hscvad.models.registry import onnx_cuda_available


@REAL
def test_only_jobs_whose_backend_runs_on_a_gpu_ask_for_one(tmp_path):
    cfg = base_config(tmp_path, p=_subset(tmp_path))
    cfg["datasets"]["p"]["streams"] = ["appearance", "velocity"]
    gpu = job_gpu(smk(tmp_path, cfg, "-n", "results/p/auc.json").stdout)
    # ONNX detection, segmentation and EfficientNet-Lite0 (the CPU build of ONNX Runtime here), OpenCV
    # flow: CPU; HSC: PyTorch
    onnx_gpu = int(onnx_cuda_available())
    assert gpu["detect_track"] == gpu["scene"] == gpu["appearance"] == {onnx_gpu}, gpu
    assert gpu["flow"] == gpu["velocity"] == {0}, gpu
    assert gpu["train_hsc"] == gpu["score"] == {1}, gpu
    on_torch = json.loads(json.dumps(cfg))  # EfficientNet-Lite0 on PyTorch: CUDA when present
    on_torch["appearance"]["efficientnet_lite0"] = {"engine": "torch"}
    assert job_gpu(smk(tmp_path, on_torch, "-n", "results/p/auc.json").stdout)["appearance"] == {1}
    reid = json.loads(json.dumps(cfg))
    reid["appearance"]["backend"] = "reid"
    reid["appearance"]["reid"]["weights"] = str(MODELS / "person-reidentification-retail-0288.onnx")
    assert job_gpu(smk(tmp_path, reid, "-n", "results/p/auc.json").stdout)["appearance"] == {onnx_gpu}
    paper = json.loads(json.dumps(cfg))  # the paper's YOLOv3 globally, this dataset's own ONNX YOLOX
    paper["detection"]["backend"] = "mmdet_yolov3"
    paper["datasets"]["p"]["detection"] = {"backend": "yolox"}
    assert job_gpu(smk(tmp_path, paper, "-n", "results/p/auc.json").stdout)["detect_track"] == {onnx_gpu}
    # device: cpu: nothing asks for the GPU, the PyTorch backends included
    cpu = json.loads(json.dumps(on_torch))
    cpu["device"] = "cpu"
    gpu = job_gpu(smk(tmp_path, cpu, "-n", "results/p/auc.json").stdout)
    assert set(gpu) >= {"appearance", "train_hsc", "score"} and all(g == {0} for g in gpu.values()), gpu


def test_unknown_config_key_is_named(tmp_path):
    cfg = base_config(tmp_path)
    cfg["hsc"]["epoch"] = 3
    r = smk(tmp_path, cfg, "-n", "results/x/auc.json", check=False)
    assert r.returncode != 0
    assert "hsc: Additional properties are not allowed ('epoch' was unexpected)" in r.stdout + r.stderr


def test_missing_dataset_root_names_key_and_path(tmp_path):
    cfg = base_config(tmp_path, gone={"adapter": "avenue", "root": str(tmp_path / "no_avenue_here")})
    r = smk(tmp_path, cfg, "-n", "results/gone/auc.json", check=False)
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert "datasets.gone.root: dataset folder not found" in out and "no_avenue_here" in out


@need_shared(PED2 / "training" / "frames")
def test_missing_weights_names_key_and_path(tmp_path):
    cfg = base_config(tmp_path, p=_subset(tmp_path))
    cfg["scene"]["deeplabv3_voc"]["weights"] = str(tmp_path / "missing_seg.onnx")
    r = smk(tmp_path, cfg, "-n", "results/p/auc.json", check=False)
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert "scene.deeplabv3_voc.weights: weights file not found" in out and "missing_seg.onnx" in out


@REAL
def test_weights_and_datasets_in_place_are_never_fetched_again(tmp_path):
    """Weights and a dataset placed by hand (or linked from a shared folder), older than this
    checkout's scripts: no download is scheduled, so Snakemake never deletes them to redo it."""
    import os
    import shutil

    cfg = base_config(tmp_path, ped2=_subset(tmp_path))
    models = tmp_path / "resources" / "models"
    models.mkdir(parents=True)
    name = "deeplabv3_mobilenetv2_voc_257.onnx"
    shutil.copy(MODELS / name, models / name)
    cfg["scene"]["deeplabv3_voc"]["weights"] = f"resources/models/{name}"
    old = 946684800  # 2000-01-01, older than any checkout's scripts/run_stage.py
    for path in (models / name, Path(cfg["datasets"]["ped2"]["root"])):
        os.utime(path, (old, old))
    r = smk(tmp_path, cfg, "-n", "results/ped2/scene/test/01.h5", "fetch_ped2")
    # fetch_ped2 named with the dataset in place: a job that only says so (no output, nothing deleted)
    assert planned_jobs(r.stdout) == {"scene": 1, "fetch_ped2": 1}, r.stdout
    assert "neither input nor output" in r.stdout and "fetch_model" not in r.stdout
    (models / name).unlink()  # a missing file is the download's job
    assert "fetch_model" in planned_jobs(smk(tmp_path, cfg, "-n", "results/ped2/scene/test/01.h5").stdout)
    # not even a forced run: what is in place is no download's output, so nothing deletes it
    shutil.copy(MODELS / name, models / name)
    r = smk(tmp_path, cfg, "--forceall", "results/ped2/scene/test/01.h5", "fetch_ped2")
    assert "fetch_model" not in r.stdout + r.stderr and "ped2sub is in place, so nothing is downloaded" in r.stdout
    assert (models / name).read_bytes() == (MODELS / name).read_bytes()
    assert len(list((Path(cfg["datasets"]["ped2"]["root"]) / "testing" / "frames" / "01").iterdir())) == 180


def _subset(tmp: Path) -> dict:
    """Two training and two test Ped2 videos, linked in the frames layout, with their official labels."""
    root = tmp / "ped2sub"
    for split, vids in (("training", ["01", "02"]), ("testing", ["01", "02"])):
        (root / split / "frames").mkdir(parents=True, exist_ok=True)
        for v in vids:
            (root / split / "frames" / v).symlink_to(PED2 / split / "frames" / v)
    (root / "testing" / "pixel_masks").mkdir()
    for v in ("01", "02"):
        (root / "testing" / "pixel_masks" / v).symlink_to(PED2 / "testing" / "pixel_masks" / v)
    lines = [l for l in (PED2 / "testing" / "UCSDped2.m").read_text().splitlines() if "gt_frame" in l]
    (root / "testing" / "UCSDped2.m").write_text("\n".join(lines[:2]) + "\n")
    return {"adapter": "ucsd_ped", "root": str(root), "streams": ["appearance"],
            "detection": {"yolox": {"full_frame": False}},  # Ped2's detector, as config.yaml gives it
            "evaluation": {"reference": {"window": 60, "sigma": 6}, "strict": {"sigma": 6}}}


@REAL
@pytest.mark.slow
def test_weights_rerun_their_stage_by_their_bytes_not_their_date(tmp_path):
    """The detector's weights copied again (same bytes, a new date) rerun nothing; other bytes under
    the same name rerun detection."""
    import os
    import shutil
    import time

    weights = tmp_path / "models" / "yolox.onnx"
    weights.parent.mkdir()
    shutil.copy(MODELS / "yolox_nano_416x416.onnx", weights)
    cfg = base_config(tmp_path, ped2sub=_subset(tmp_path))
    cfg["detection"]["yolox"]["weights"] = "models/yolox.onnx"
    target = "results/ped2sub/tracks/test/02.h5"
    smk(tmp_path, cfg, target)
    assert planned_jobs(smk(tmp_path, cfg, "-n", target).stdout) == {}
    weights.write_bytes(weights.read_bytes())
    later = time.time_ns() + 10**9
    os.utime(weights, ns=(later, later))
    assert planned_jobs(smk(tmp_path, cfg, "-n", target).stdout) == {}
    weights.write_bytes(weights.read_bytes() + b"\0")  # ONNX ignores it; the pipeline cannot know
    assert planned_jobs(smk(tmp_path, cfg, "-n", target).stdout) == {"detect_track": 1}


@REAL
@pytest.mark.slow
def test_a_dataset_s_own_detector_weights_are_its_jobs_input(tmp_path):
    """A dataset that names its own detector weights (``datasets.<name>.detection.yolox.weights``)
    detects with them: a missing file stops the run naming that key, and other bytes rerun that
    dataset's detection, not another's."""
    import shutil

    own = tmp_path / "models" / "own.onnx"
    ds = synthetic_dataset(tmp_path / "data", n_train=1, n_test=0, n_frames=6)
    cfg = base_config(tmp_path, a=ds, b={**ds, "detection": {"yolox": {"weights": "models/own.onnx"}}})
    targets = ["results/a/tracks/train/tr0.h5", "results/b/tracks/train/tr0.h5"]
    r = smk(tmp_path, cfg, "-n", targets[1], check=False)
    assert r.returncode != 0
    missing = f"datasets.b.detection.yolox.weights: weights file not found: {own.relative_to(tmp_path)}"
    assert missing in r.stdout + r.stderr
    assert planned_jobs(smk(tmp_path, cfg, "-n", targets[0]).stdout) == {"detect_track": 1}
    own.parent.mkdir()
    shutil.copy(MODELS / "yolox_nano_416x416.onnx", own)
    smk(tmp_path, cfg, *targets)
    with h5py.File(tmp_path / targets[1]) as f:
        assert f.attrs["stage"] == "tracks" and f.attrs["n_frames"] == 6
    assert planned_jobs(smk(tmp_path, cfg, "-n", *targets).stdout) == {}
    own.write_bytes(own.read_bytes() + b"\0")
    r = smk(tmp_path, cfg, "-n", *targets)
    assert planned_jobs(r.stdout) == {"detect_track": 1} and "results/b/tracks/train/tr0.h5" in r.stdout


@pytest.fixture(scope="module")
def ped2_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    # a Ped2 subset checked as the Ped2 benchmark: it runs because allow_partial is set, and says so
    cfg = base_config(tmp, ped2sub={**_subset(tmp), "benchmark": "ped2", "allow_partial": True})
    cfg["hsc"]["epochs"] = 30
    r = smk(tmp, cfg, "results/ped2sub/auc.json")  # no --resources: gpu=1 is the profile's default
    return tmp, cfg, r


@REAL
@pytest.mark.slow
@pytest.mark.e2e
def test_end_to_end_outputs_and_schemas(ped2_run):
    tmp, cfg, _ = ped2_run
    res = tmp / "results" / "ped2sub"
    auc = json.loads((res / "auc.json").read_text())
    assert auc["dataset"] == "ped2sub" and auc["protocol"] == "strict"
    assert auc["n_test_frames"] == 360 and auc["n_abnormal_frames"] == 120 + 86
    for p in ("reference", "strict"):  # the reported AUCs are those of the per-frame CSV
        assert auc["protocols"][p]["micro_auc"] == pytest.approx(auc_from_csv(res / "frame_scores.csv", p), abs=1e-9)
        assert auc["protocols"][p]["n_videos_macro"] == 2 and auc["auc_undefined_reason"] is None
    assert auc["micro_auc"] == auc["protocols"]["strict"]["micro_auc"]
    assert auc["protocols"]["reference"]["n_frames"] == 2 * (180 // 16) * 16
    assert set(auc["streams"]) == {"appearance", "fused"}
    partial = auc["partial_dataset"]
    assert partial["benchmark"] == "ped2" and "missing test videos (10): 03, 04, 05, 06, 07, 08, 09, 10, 11, 12" in \
        partial["differences"] and "360 test frames, expected 2010" in partial["differences"]
    assert auc["dataset_check"]["found"]["test_frames"] == 360 and auc["dataset_check"]["complete"] is False
    assert auc["protocols"]["strict"]["micro_auc"] > 0.6  # real models, 2 training videos, 30 epochs
    lines = (res / "frame_scores.csv").read_text().splitlines()
    assert lines[0] == "video,frame,label,raw_appearance,strict,reference" and len(lines) == 361
    import cv2

    for plot in ("score_curves.png", "histogram.png", "scene_embedding.png", "object_embedding.png"):
        img = cv2.imread(str(res / "plots" / plot))  # a picture with something drawn on it
        assert img is not None and len(np.unique(img.reshape(-1, 3), axis=0)) > 20, plot
    assert (res / "plots" / "score_curves.pdf").read_bytes().startswith(b"%PDF")
    stages = {"tracks": "tracks", "objects": "objects", "scene": "scene"}
    for folder, stage in stages.items():
        for split in ("train", "test"):
            for v in ("01", "02"):
                with h5py.File(res / folder / split / f"{v}.h5") as f:
                    assert f.attrs["stage"] == stage and int(f.attrs["format_version"]) == 1
    with h5py.File(res / "objects" / "test" / "01.h5") as f:
        assert f["feature"].shape[1] == 1280 and f["feature"].shape[0] == f["clip"].shape[0] > 0
    with h5py.File(res / "scene" / "test" / "01.h5") as f:
        assert f["feature"].shape == (12, 330)  # 180 frames / 16; 240/16 * 360/16 cells
    with h5py.File(res / "scenes.h5") as f:
        assert int(f.attrs["n_scenes"]) >= 1 and f["label"].shape[0] == 8 + 10
    with h5py.File(res / "scores.h5") as f:
        assert f["appearance"]["frame_score"].shape == (360,)
        # each training sample's identity, for the label-free validation
        assert [v.decode() for v in f["train_videos"][()]] == ["01", "02"]
        assert f["appearance"]["train_video"].shape == f["appearance"]["train_score"].shape
        assert set(np.unique(f["appearance"]["train_video"][()])) == {0, 1}
    history = (res / "hsc" / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 30
    loc = auc["localisation"]
    assert loc["available"] and loc["n_regions"] > 0 and 0 <= loc["rbdc"] <= 1 and 0 <= loc["tbdc"] <= 1
    # abnormal frames 60-179 (clips 3-11) and 94-179 (clips 5-11)
    assert loc["n_abnormal_clips"] == 9 + 7 and loc["parse_coverage"] > 0.5
    assert 0 < loc["regions_with_own_box"] <= 1 and set(loc["regions_with_own_box_per_video"]) == {"01", "02"}
    assert loc["object_auc"]["appearance"]["n_positive"] > 0 and loc["object_auc"]["appearance"]["knn_1"] is not None
    ranks = loc["object_rank_per_video"]  # both test videos hold anomalies and objects away from them
    assert set(ranks) == {"01", "02"} and all(r["n_abnormal"] > 0 and r["n_normal"] > 0 for r in ranks.values())
    assert all(0 <= r["above_median_normal"] <= 1 and 0 <= r["median_abnormal_percentile"] <= 1
               for r in ranks.values())
    # the anomalies boxed as themselves are a part of the objects their masks cover
    assert all(0 < r["n_own_box"] <= r["n_abnormal"] and 0 <= r["own_box_above_median_normal"] <= 1
               for r in ranks.values())
    assert auc["readout"]["appearance"]["train_holdout"] == "video" and auc["fusion"]["weights"] == {"appearance": 1.0}
    assert not [p for p in auc["protocols"] if p.startswith("reference_fusion_")]  # one stream: nothing to fuse
    assert sorted(p.name for p in (res / "plots" / "explain").glob("*.png")) == ["01.png", "02.png"]
    top = (res / "explain" / "top_objects.csv").read_text().splitlines()
    assert len(top) == 1 + 2 * 10 and top[0].endswith("raw_appearance,z_appearance")
    for rule in ("check_dataset", "detect_track", "appearance", "scene", "scene_labels", "train_hsc", "score",
                 "explain", "evaluate"):
        assert list((res / "logs" / rule).rglob("*.log")), rule
        assert list((res / "benchmarks" / rule).rglob("*.tsv")), rule
    assert not list(res.rglob("*.part"))
    if torch.set_flush_denormal(False):  # a CPU with flush-to-zero flags: every torch thread of the job flushes
        for rule in ("train_hsc", "score"):
            assert "subnormal floats flushed to zero: all threads" in (res / "logs" / rule / "all.log").read_text()


@REAL
@pytest.mark.slow
@pytest.mark.e2e
def test_velocity_stream_reruns_only_what_its_settings_touch(ped2_run, tmp_path):
    import shutil

    src, cfg, _ = ped2_run
    work = tmp_path / "vel"
    shutil.copytree(src, work, symlinks=True)  # keeps mtimes and Snakemake's metadata
    vel = json.loads(json.dumps(cfg))
    vel["datasets"]["ped2sub"]["streams"] = ["appearance", "velocity"]
    jobs = planned_jobs(smk(work, vel, "-n", "results/ped2sub/auc.json").stdout)
    after = {"train_hsc": 1, "validate": 1, "score": 1, "explain": 1, "evaluate": 1}
    assert jobs == {"flow": 4, "velocity": 4, **after}
    smk(work, vel, "results/ped2sub/auc.json")
    res = work / "results" / "ped2sub"
    auc = json.loads((res / "auc.json").read_text())
    assert set(auc["streams"]) == {"appearance", "velocity", "fused"}
    w = auc["yardstick"]["weights"]  # the yardstick's weights, normalised
    assert auc["fusion"]["weights"] == {s: pytest.approx(w[s] / sum(w.values())) for s in ("appearance", "velocity")}
    # the reference protocol fuses in units of each stream's training spread; the public code's
    # equal weights are reported beside it
    assert auc["fusion"]["reference"] == "training_spread"
    stds = {s: auc["train_score_stats"][s]["std"] for s in ("appearance", "velocity")}
    assert auc["fusion"]["reference_units"] == stds
    assert "training std" in auc["protocols"]["reference"]["fusion"]
    assert auc["protocols"]["reference_fusion_equal"]["micro_auc"] is not None
    assert auc["protocols"]["reference_fusion_equal"]["n_frames"] == auc["protocols"]["reference"]["n_frames"]
    assert auc["localisation"]["object_auc"]["velocity"]["hsc"] is not None
    with h5py.File(res / "velocity" / "test" / "01.h5") as f, h5py.File(res / "objects" / "test" / "01.h5") as g:
        assert f.attrs["stage"] == "velocity" and f["feature"].shape[1] == 32
        assert (f["clip"][()] == g["clip"][()]).all() and (f["track_id"][()] == g["track_id"][()]).all()
    with h5py.File(res / "flow" / "test" / "01.h5") as f, h5py.File(res / "tracks" / "test" / "01.h5") as g:
        assert f["stats"].shape == (len(g["frame"]), 17)
    # a descriptor setting reruns velocity onwards, not the flow; a flow setting reruns the flow too;
    # neither touches detection, appearance or the scene
    part = json.loads(json.dumps(vel))
    part["velocity"]["parts"] = ["flow", "track"]
    assert planned_jobs(smk(work, part, "-n", "results/ped2sub/auc.json").stdout) == {"velocity": 4, **after}
    fl = json.loads(json.dumps(vel))
    fl["flow"]["dis"]["preset"] = "fast"
    assert planned_jobs(smk(work, fl, "-n", "results/ped2sub/auc.json").stdout) == {"flow": 4, "velocity": 4,
                                                                                     **after}
    arch = json.loads(json.dumps(vel))
    arch["hsc"]["architecture"]["velocity"] = {"encoder_hidden": [128], "latent": 64, "decoder_hidden": [128]}
    assert planned_jobs(smk(work, arch, "-n", "results/ped2sub/auc.json").stdout) == after


@REAL
@pytest.mark.slow
@pytest.mark.e2e
def test_averaging_scores_along_tracks_reruns_only_the_evaluation_and_reports_the_clip_scores_beside(
        ped2_run, tmp_path):
    import shutil

    src, cfg, _ = ped2_run
    work = tmp_path / "track"
    shutil.copytree(src, work, symlinks=True)
    before = json.loads((src / "results" / "ped2sub" / "auc.json").read_text())
    assert before["protocols"]["strict"]["track_averaging"].startswith("none")
    tw = json.loads(json.dumps(cfg))
    tw["datasets"]["ped2sub"].setdefault("evaluation", {})["track_window"] = 1
    assert planned_jobs(smk(work, tw, "-n", "results/ped2sub/auc.json").stdout) == {"explain": 1, "evaluate": 1}
    smk(work, tw, "results/ped2sub/auc.json")
    auc = json.loads((work / "results" / "ped2sub" / "auc.json").read_text())
    assert "within 1 clip" in auc["protocols"]["strict"]["track_averaging"]
    for p in ("strict", "reference"):  # the clip scores' figures, as the run before, reported beside
        clip_scores = auc["protocols"][f"{p}_track_window_0"]["micro_auc"]
        assert clip_scores == pytest.approx(before["protocols"][p]["micro_auc"])
    assert auc["protocols"]["strict"]["micro_auc"] != before["protocols"]["strict"]["micro_auc"]
    assert auc["train_score_stats"]["appearance"]["std"] < before["train_score_stats"]["appearance"]["std"]


@REAL
def test_a_shard_job_asks_for_what_its_videos_jobs_ask_for(tmp_path):
    """A shard rule takes the per-video rule's threads and resources, profile overrides included
    (SLURM's set-threads / set-resources name the per-video rule), its runtime times its videos."""
    cfg = base_config(tmp_path, p=_subset(tmp_path))
    cfg["shards"]["appearance"] = 2
    cfg["appearance"]["efficientnet_lite0"] = {"engine": "torch"}  # PyTorch: a job that asks for a GPU
    r = smk(tmp_path, cfg, "-n", "--cores", "4", "--set-threads", "appearance=3", "--set-resources",
            "appearance:runtime=7", "appearance:mem_mb=1234", "--", "results/p/objects/test/01.h5",
            "results/p/objects/train/02.h5")
    assert planned_jobs(r.stdout) == {"detect_track": 4, "appearance__shard_p_test_000": 1,
                                      "appearance__shard_p_train_000": 1}
    block = re.split(r"\n\[|Job stats", r.stdout.split("rule appearance__shard_p_test_000:")[1])[0]
    assert "output: results/p/objects/test/01.h5, results/p/objects/test/02.h5" in block
    assert "threads: 3" in block and "gpu=1" in block and "runtime=14" in block and "mem_mb=1234" in block
    assert job_gpu(r.stdout)["detect_track"] == {int(onnx_cuda_available())}
    cfg["datasets"]["q"] = {"adapter": "folder", "root": str(tmp_path / "absent")}  # not on disk: no shards
    jobs = planned_jobs(smk(tmp_path, cfg, "-n", "results/p/objects/test/01.h5").stdout)
    assert "appearance__shard_p_test_000" in jobs


@REAL
@pytest.mark.slow
@pytest.mark.e2e
def test_on_a_finished_ped2_run_a_code_edit_reruns_exactly_what_follows(ped2_run, tmp_path):
    """The same checkout beside the finished run plans nothing; editing score.py plans scoring,
    explanations and evaluation; editing the training code plans training onwards."""
    src, cfg, _ = ped2_run
    work = copy_run(src, tmp_path / "run")
    snakefile = clone_workflow(tmp_path / "clone")
    target = "results/ped2sub/auc.json"

    def plan():
        return planned_jobs(smk(work, cfg, "-n", target, snakefile=snakefile).stdout)

    assert plan() == {}
    score = snakefile.parent / "src" / "hscvad" / "stages" / "score.py"
    original = score.read_text()
    score.write_text(original + "\n_EDITED = True\n")
    assert plan() == {"score": 1, "explain": 1, "evaluate": 1}
    score.write_text(original)
    train = snakefile.parent / "src" / "hscvad" / "hsc" / "train.py"
    train.write_text(train.read_text() + "\n_EDITED = True\n")
    assert plan() == {"train_hsc": 1, "validate": 1, "score": 1, "explain": 1, "evaluate": 1}


def _avenue_layout(root: Path) -> None:
    """CUHK Avenue's layout: training_videos/NN.avi, testing_videos/NN.avi, frame masks."""
    import numpy as np
    from conftest import write_video

    for split, names in (("training_videos", ["01", "02"]), ("testing_videos", ["01"])):
        for n in names:
            write_video(root / split / f"{n}.avi", 20)
    (root / "testing_frame_mask").mkdir(parents=True)
    np.save(root / "testing_frame_mask" / "01.npy", (np.arange(20) >= 10).astype(np.int8))


@pytest.mark.openmmlab
def test_paper_preset_dry_run_plans_every_stage_of_avenue(tmp_path):
    _avenue_layout(tmp_path / "avenue")
    cfg = load_config()
    cfg["datasets"]["avenue"]["root"] = str(tmp_path / "avenue")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = subprocess.run([*SNAKEMAKE, "-d", str(tmp_path), "--configfile", str(path), "-n", "results/avenue/auc.json",
                        "--config", "models=paper"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    jobs = planned_jobs(r.stdout)
    for rule in ("detect_track", "appearance", "scene", "pose", "motion"):
        assert jobs[rule] == 3, (rule, jobs)
    for rule in ("scene_labels", "train_hsc", "augment_motion", "train_motion_classifier", "score", "evaluate"):
        assert jobs[rule] == 1, (rule, jobs)
    assert jobs["fetch_model"] == 5  # the five published checkpoints are missing here: fetched first
    # every paper backend is PyTorch: each model stage asks for the GPU (ByteTrack runs inside detect_track)
    gpu = job_gpu(r.stdout)
    assert all(gpu[rule] == {1} for rule in ("detect_track", "appearance", "scene", "pose", "motion", "train_hsc")), gpu
    # the rules' params, as the workflow computes them for this config: the paper's backends, and
    # the paper's Avenue thresholds reach detect_track
    from hscvad.config import stage_params, validate

    paper = validate({**yaml.safe_load(path.read_text()), "models": "paper"})
    p = {rule: stage_params(paper, "avenue", rule) for rule in ("detect_track", "appearance", "motion")}
    assert p["detect_track"]["detection"]["backend"] == "mmdet_yolov3"
    assert p["appearance"]["appearance"]["backend"] == "timm_vit"
    assert p["motion"]["motion"]["backend"] == "mmaction_posec3d"
    assert p["detect_track"]["detection"]["score_threshold"] == 0.8
    assert p["detect_track"]["tracking"]["mmdet_bytetrack"]["init_track_thr"] == 0.5


def test_switching_presets_changes_exactly_the_model_stages():
    from hscvad.config import load_schema, stage_params, validate

    def params(models):
        cfg = load_config()
        cfg["models"] = models
        cfg["datasets"]["avenue"]["streams"] = ["appearance", "motion"]
        validate(cfg, load_schema(REPO / "schemas" / "config.schema.yaml"))
        stages = ("detect_track", "appearance", "scene", "pose", "motion", "scene_labels", "train_hsc", "score",
                  "augment_motion", "train_motion_classifier", "evaluate")
        return {s: stage_params(cfg, "avenue", s) for s in stages}

    off, paper = params("offline"), params("paper")
    changed = {s for s in off if off[s] != paper[s]}
    # train_hsc: the motion classes become PoseConv3D's actions; augment_motion embeds with it
    assert changed == {"detect_track", "appearance", "scene", "pose", "motion", "train_hsc", "augment_motion"}
    assert paper["train_hsc"]["motion_classes"] == "action" and off["train_hsc"]["motion_classes"] == 8
    assert paper["scene"]["scene"]["foreground_classes"][0] == "person"
    assert paper["detect_track"]["detection"]["score_threshold"] == 0.8


