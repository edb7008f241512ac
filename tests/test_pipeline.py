"""The workflow end to end on a small synthetic dataset with the stand-in backends (a plug-in, as
users' own backends are): every output, and what a rerun plans after a change of settings, code,
data or checkout. Each test that changes something works on its own copy of the finished run."""

import json
import os
import shutil
import sys

import h5py
import numpy as np
import pytest
import yaml
from conftest import (
    REPO,
    STANDIN_ENV,
    auc_from_csv,
    clone_workflow,
    copy_run,
    planned_jobs,
    smk,
    synthetic_config,
)

pytestmark = pytest.mark.e2e
TARGET = "results/syn/auc.json"
PER_VIDEO = ("detect_track", "appearance", "scene", "flow", "velocity")


def run(workdir, cfg, *args, **kw):
    return smk(workdir, cfg, *args, env=STANDIN_ENV, **kw)


def plan(workdir, cfg, *args, **kw) -> dict[str, int]:
    return planned_jobs(run(workdir, cfg, "-n", *args, "--", TARGET, **kw).stdout)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished run (auc.json and the run summary) of the synthetic dataset; read-only for tests."""
    tmp = tmp_path_factory.mktemp("finished")
    cfg = synthetic_config(tmp)
    run(tmp, cfg, TARGET, "results/syn/run_summary.csv")
    return tmp, cfg


def test_a_run_writes_every_output_and_its_protocols(finished):
    tmp, cfg = finished
    res = tmp / "results" / "syn"
    auc = json.loads((res / "auc.json").read_text())
    assert auc["dataset"] == "syn" and auc["n_test_frames"] == 96 and auc["n_abnormal_frames"] == 48
    assert set(auc["streams"]) == {"appearance", "velocity", "fused"}
    for p in ("reference", "strict"):  # what auc.json reports is what the per-frame CSV gives
        assert auc["protocols"][p]["micro_auc"] == pytest.approx(auc_from_csv(res / "frame_scores.csv", p), abs=1e-9)
    assert auc["protocols"]["strict"]["micro_auc"] > 0.75  # the racing square stands out (chance: 0.5)
    # the yardstick chose each stream's score and weight from the training videos, and auc.json says so
    yard = auc["yardstick"]
    assert yard == json.loads((res / "validation" / "validation.json").read_text())
    assert yard["streams"]["appearance"]["kinds"] == ["flip", "recolour"]
    assert yard["streams"]["velocity"]["kinds"] == ["fast", "glide", "rush"]
    for s, r in yard["streams"].items():
        assert r["shipped"] in r["candidates"] and r["weight"] in (0.0, 1.0)
        usable = [c["mean_auc"] for c in r["candidates"].values() if c["degenerate"] is None]
        assert r["shipped_auc"] == r["candidates"][r["shipped"]]["mean_auc"] == max(usable)
        assert auc["readout"][s]["score"] == r["shipped"] and auc["readout"][s]["weight"] == r["weight"]
    total = sum(yard["weights"].values())
    assert auc["fusion"]["weights"] == {s: pytest.approx(w / total) for s, w in yard["weights"].items()}
    # the racing square is fast: the velocity stream sees its synthetic speed-ups
    assert yard["streams"]["velocity"]["shipped_auc"] > 0.75 and yard["weights"]["velocity"] == 1.0
    with h5py.File(res / "tracks" / "test" / "te0.h5") as f:
        assert f.attrs["stage"] == "tracks" and len(np.unique(f["track_id"][()])) >= 2  # the racer is tracked
    with h5py.File(res / "objects" / "train" / "tr0.h5") as f:
        assert f["feature"].shape == (6, 3)  # 48 frames in clips of 8, one object, mean colour
    with h5py.File(res / "velocity" / "test" / "te0.h5") as f:
        assert f["feature"].shape[1] == 32
    for rule in ("check_dataset", *PER_VIDEO, "scene_labels", "train_hsc", "synthetic_objects", "validate", "score",
                 "explain", "evaluate", "summarise_run"):
        assert list((res / "logs" / rule).rglob("*.log")), rule
        assert list((res / "benchmarks" / rule).rglob("*.tsv")), rule
    rows = {r.split(",")[0]: r.split(",") for r in (res / "run_summary.csv").read_text().splitlines()[1:]}
    assert rows["detect_track"][1] == "4"  # jobs of the stage
    assert float(rows["velocity"][5]) > 0  # CPU seconds as the jobs reported them (sampled: often 0)
    # every job's log ends with its process's CPU time, which the benchmarks add up per stage
    from hscvad.jobs import CPU_PATTERN

    for log in (res / "logs").rglob("*.log"):
        found = CPU_PATTERN.findall(log.read_text())
        assert len(found) == 1 and float(found[0][0]) > 0.05, log  # at least the interpreter's start-up
    sys.path.insert(0, str(REPO / "bench"))
    from ped2_pipeline import stage_cpu

    jobs, wall, cpu, threads = stage_cpu(res, ("velocity",))["velocity"]
    reported = sum(sum(map(float, CPU_PATTERN.findall(f.read_text())[0]))
                   for f in (res / "logs" / "velocity").rglob("*.log"))
    assert (jobs, threads) == (4, 1) and cpu == pytest.approx(reported) and 0 < cpu < 2 * wall
    assert not list(res.rglob("*.part"))
    assert sorted(p.name for p in (res / "plots" / "videos").glob("*.png")) == ["te0.png", "te1.png"]


def test_several_videos_of_a_split_as_targets_on_a_fresh_folder(tmp_path):
    """Per-video outputs of two videos of one split, asked for by name before anything exists: each
    job's manifest is there when Snakemake checks its inputs (it lists a folder once, at its first
    check, so the split's manifests are all written at the first request)."""
    cfg = synthetic_config(tmp_path)
    targets = [f"results/syn/tracks/{s}/{v}.h5" for s, v in (("train", "tr0"), ("train", "tr1"), ("test", "te0"))]
    out = run(tmp_path, cfg, "-n", "--", *targets).stdout
    assert planned_jobs(out) == {"detect_track": 3}
    assert sorted(p.name for p in (tmp_path / "results" / "syn" / "manifests" / "train").glob("*.tsv")) == \
        ["tr0.tsv", "tr1.tsv"]


def test_a_second_run_plans_nothing(finished):
    tmp, cfg = finished
    r = run(tmp, cfg, "-n", TARGET)
    assert planned_jobs(r.stdout) == {} and "Nothing to be done" in r.stdout + r.stderr


def embedded_files(html: str) -> dict[str, bytes]:
    """The files a Snakemake report embeds (its results' data URIs), by file name."""
    import base64
    import re

    pattern = r'"data:[^;"]+;charset=utf8;filename=([^;"]+);base64,([A-Za-z0-9+/=]+)"'
    return {name: base64.b64decode(data) for name, data in re.findall(pattern, html)}


def test_the_report_embeds_the_tables_and_figures(finished, tmp_path):
    import cv2

    work = copy_run(finished[0], tmp_path / "w")
    run(work, finished[1], "--report", "report.html", "results/syn/run_summary.csv")
    files = embedded_files((work / "report.html").read_text(errors="replace"))
    assert {"auc_table.csv", "run_summary.csv", "score_curves.png", "histogram.png", "stage_times.png", "te0.png",
            "te1.png"} <= set(files)
    table = files["auc_table.csv"].decode().splitlines()
    assert table[0] == "stream,protocol,micro_auc,macro_auc,n_videos_macro,n_frames"
    assert {tuple(r.split(",")[:2]) for r in table[1:]} >= {("appearance", "strict"), ("velocity", "strict"),
                                                           ("fused", "reference")}
    summary = files["run_summary.csv"].decode().splitlines()
    assert summary[0].startswith("stage,jobs,") and any(r.startswith("train_hsc,1,") for r in summary)
    for name in ("score_curves.png", "histogram.png", "te0.png"):
        img = cv2.imdecode(np.frombuffer(files[name], np.uint8), cv2.IMREAD_COLOR)
        assert img is not None and img.shape[0] > 100 and len(np.unique(img.reshape(-1, 3), axis=0)) > 20, name


def test_the_data_copied_again_plans_nothing_and_other_bytes_rerun_their_video(finished, tmp_path):
    """Results follow their inputs' bytes: every frame and label file written again with the same
    bytes and a new date (a dataset unpacked again in its place) reruns nothing; one frame
    with other bytes reruns its video's jobs and what follows them."""
    import time

    import cv2

    work = copy_run(finished[0], tmp_path / "w")
    cfg = finished[1]
    files = [p for p in (work / "data").rglob("*") if p.is_file()]
    assert len(files) > 100
    for p in files:
        p.write_bytes(p.read_bytes())
    later = time.time_ns() + 10**9
    os.utime(files[0], ns=(later, later))
    assert plan(work, cfg) == {}
    frame = work / "data" / "test" / "te1" / "005.png"
    img = cv2.imread(str(frame))
    img[:4, :4] = 255 - img[:4, :4]
    cv2.imwrite(str(frame), img)
    assert plan(work, cfg) == {"check_dataset": 1, **{s: 1 for s in PER_VIDEO}, "score": 1, "explain": 1,
                               "evaluate": 1}


def test_a_fresh_clone_plans_nothing_and_a_stage_edit_reruns_exactly_what_follows(finished, tmp_path):
    """Results follow code: each rule's params carry a hash of the source its stage runs."""
    work = copy_run(finished[0], tmp_path / "w")
    snakefile = clone_workflow(tmp_path / "clone")  # the same commit, files newer than every result
    cfg = finished[1]
    assert plan(work, cfg, snakefile=snakefile) == {}
    # Snakemake's own code trigger compares the script's modification time: it would redo every job
    every = plan(work, cfg, "--rerun-triggers", "mtime", "params", "input", "software-env", "code",
                 snakefile=snakefile)
    assert every["detect_track"] == 4 and every["evaluate"] == 1

    score = snakefile.parent / "src" / "hscvad" / "stages" / "score.py"
    original = score.read_text()
    score.write_text(original + "\n_EDITED = True\n")
    assert plan(work, cfg, snakefile=snakefile) == {"score": 1, "explain": 1, "evaluate": 1}
    score.write_text(original)  # the same bytes again: nothing to do
    assert plan(work, cfg, snakefile=snakefile) == {}

    train = snakefile.parent / "src" / "hscvad" / "hsc" / "train.py"
    train.write_text(train.read_text() + "\n_EDITED = True\n")
    assert plan(work, cfg, snakefile=snakefile) == {"train_hsc": 1, "validate": 1, "score": 1, "explain": 1,
                                                   "evaluate": 1}

    shutil.rmtree(snakefile.parent / "src")
    snakefile = clone_workflow(tmp_path / "clone2")  # a backend's module: the stage that builds it
    flow = snakefile.parent / "src" / "hscvad" / "models" / "flow.py"
    flow.write_text(flow.read_text() + "\n_EDITED = True\n")
    assert plan(work, cfg, snakefile=snakefile) == {"flow": 4, "velocity": 4, "train_hsc": 1, "validate": 1,
                                                   "score": 1, "explain": 1, "evaluate": 1}


def test_numbers_are_read_as_people_write_them(finished, tmp_path):
    work = copy_run(finished[0], tmp_path / "w")
    cfg = finished[1]
    assert cfg["hsc"]["lr"] == 0.001
    text = yaml.safe_dump(cfg).replace("lr: 0.001\n", "lr: 1e-3\n", 1)
    assert "lr: 1e-3" in text and yaml.safe_load(text)["hsc"]["lr"] == "1e-3"  # YAML 1.1: a string
    (work / "config.yaml").write_text(text)
    assert plan(work, None) == {}  # read as 0.001: the params are the finished run's
    assert plan(work, cfg, "--config", "hsc={lr: 1e-3, weight_decay: 1E-4}") == {}
    assert plan(work, cfg, "--config", "hsc={lr: .002}") == {"train_hsc": 1, "validate": 1, "score": 1,
                                                               "explain": 1, "evaluate": 1}
    r = run(work, cfg, "-n", "--config", "hsc={lr: fast}", "--", TARGET, check=False)
    assert r.returncode != 0 and "hsc.lr: 'fast' is not of type 'number'" in r.stdout + r.stderr


def test_a_changed_setting_reruns_its_stage_and_what_depends_on_it(finished, tmp_path):
    work = copy_run(finished[0], tmp_path / "w")
    cfg = finished[1]

    def changed(edit):
        c = json.loads(json.dumps(cfg))
        edit(c)
        return plan(work, c)

    assert changed(lambda c: c["datasets"]["syn"]["evaluation"]["strict"].update(sigma=3)) == {"evaluate": 1}
    after_training = {"train_hsc": 1, "validate": 1, "score": 1, "explain": 1, "evaluate": 1}
    assert changed(lambda c: c["hsc"].update(epochs=7)) == after_training
    assert changed(lambda c: c["scene"].update(frame_stride=4)) == {"scene": 4, "scene_labels": 1, **after_training}
    assert changed(lambda c: c["velocity"].update(parts=["flow", "track"])) == {"velocity": 4, **after_training}
    # the yardstick's settings: the altered crops are embedded again only when their number changes
    scoring = {"score": 1, "explain": 1, "evaluate": 1}
    assert changed(lambda c: c.setdefault("validation", {}).update(min_auc=0.6)) == {"validate": 1, **scoring}
    assert changed(lambda c: c.setdefault("validation", {}).update(samples=5)) == {"synthetic_objects": 1,
                                                                                   "validate": 1, **scoring}
    assert changed(lambda c: c.setdefault("validation", {}).update(choose=False)) == scoring
    assert changed(lambda c: c["explain"].update(objects_per_video=4)) == {"explain": 1, "evaluate": 1}


def test_a_changed_label_reruns_exactly_what_reads_it(finished, tmp_path):
    work = copy_run(finished[0], tmp_path / "w")  # the dataset, in the run's folder, copied with it
    cfg = finished[1]
    labels = np.load(work / "data" / "labels" / "te1.npy")
    labels[23] = 1
    np.save(work / "data" / "labels" / "te1.npy", labels)
    assert plan(work, cfg) == {"check_dataset": 1, "evaluate": 1}


def test_shards_write_the_per_video_jobs_files(finished, tmp_path):
    """Several videos per job (config `shards`): the same files, byte for byte in every dataset and
    attribute, as the per-video jobs; params unchanged; one log per shard naming its videos."""
    from hscvad.h5store import contents

    src, cfg = finished
    work = copy_run(src, tmp_path / "w")
    sharded = json.loads(json.dumps(cfg))
    sharded["shards"].update(detect_track=2, appearance=2, scene=2, flow=2, velocity=2)
    res = work / "results" / "syn"
    kinds = {"tracks": "detect_track", "objects": "appearance", "scene": "scene", "flow": "flow",
             "velocity": "velocity"}
    for kind in kinds:
        shutil.rmtree(res / kind)
    targets = [f"results/syn/{k}/{s}/{v}.h5" for k in kinds for s, vs in (("train", ("tr0", "tr1")),
                                                                          ("test", ("te0", "te1"))) for v in vs]
    r = run(work, sharded, "-n", *targets)
    assert planned_jobs(r.stdout) == {f"{stage}__shard_syn_{split}_000": 1 for stage in kinds.values()
                                      for split in ("train", "test")}
    run(work, sharded, *targets)
    for target in targets:
        assert contents(work / target) == contents(src / target), target
    log = (res / "logs" / "appearance" / "shards" / "test_000.log").read_text()
    assert "shard video 1/2: syn/test/te0" in log and "shard video 2/2: syn/test/te1" in log
    # back to one job per video: the shards' params are the per-video jobs' (only Snakemake's input
    # trigger, as a shard read all its videos' inputs, would rerun them)
    r = run(work, cfg, "-n", "--rerun-triggers", "mtime", "params", "--", *targets)
    assert planned_jobs(r.stdout) == {}, r.stdout


@pytest.mark.slow
@pytest.mark.motion
def test_switching_to_the_motion_stream_reruns_only_the_motion_side(finished, tmp_path):
    """The motion stream added to a finished run (stand-in pose, the skeleton descriptor): only its
    stages and what follows them run; turning augmentation off reruns scoring only; MA- retrains the
    motion autoencoder with the pseudo-normal variants."""
    src, cfg = finished
    work = copy_run(src, tmp_path / "w")
    two = json.loads(json.dumps(cfg))
    two["datasets"]["syn"]["streams"] = ["appearance", "velocity", "motion"]
    two["pose"].update(backend="standin_box_corners", min_track_length=5)
    two["hsc"]["architecture"]["motion"].update(encoder_hidden=[32], latent=16, decoder_hidden=[32])
    two["motion_augmentation"].update(fallback="autoencoder")
    two["motion_augmentation"]["classifier"].update(epochs=5)
    two["motion"]["n_classes"] = 2
    assert plan(work, two) == {"pose": 4, "motion": 4, "train_hsc": 1, "validate": 1, "augment_motion": 1,
                               "train_motion_classifier": 1, "score": 1, "explain": 1, "evaluate": 1}
    run(work, two, TARGET)
    res = work / "results" / "syn"
    auc = json.loads((res / "auc.json").read_text())
    assert set(auc["streams"]) == {"appearance", "velocity", "motion", "fused"}
    for p in ("reference", "strict"):
        assert auc["protocols"][p]["micro_auc"] == pytest.approx(auc_from_csv(res / "frame_scores.csv", p), abs=1e-9)
    with h5py.File(res / "motion" / "train" / "tr0.h5") as f:
        assert f.attrs["stage"] == "motion" and f["feature"].shape[1] == 156 and f["keypoints"].shape[1:] == (8, 17, 3)
    with h5py.File(res / "motion_augmentation" / "augmented.h5") as f:
        e, y = f["norm_error"][()], f["label"][()]
        assert len(y) > 0 and (e[y == 0] < 0.2).all() and (e[y == 1] > 0.8).all()
    off = json.loads(json.dumps(two))
    off["motion_augmentation"]["enabled"] = False
    assert plan(work, off) == {"score": 1, "explain": 1, "evaluate": 1}
    ma = json.loads(json.dumps(two))
    ma["motion_augmentation"]["mode"] = "MA-"
    assert plan(work, ma) == {"augment_motion": 1, "retrain_motion": 1, "score": 1, "explain": 1, "evaluate": 1}
    run(work, ma, TARGET)
    with h5py.File(res / "scores.h5") as f:
        assert f["motion"].attrs["score"] == "autoencoder error (Eq. 11)"
    assert "pseudo-normal motion samples added" in (res / "logs" / "retrain_motion" / "all.log").read_text()


def test_the_label_free_validation_scores_a_finished_run_and_checks_what_it_rebuilds(finished, tmp_path):
    """bench/validation.py on a finished run: synthetic anomalies from its training tracks, scored by
    its model; it refuses a run whose stored velocity features it does not rebuild."""
    import subprocess
    import sys

    work = copy_run(finished[0], tmp_path / "w")
    res = work / "results" / "syn"
    cmd = [sys.executable, str(REPO / "bench" / "validation.py"), f"syn={res}", "--sigma", "2"]
    out = {}
    for calibration in ("tail", "crowd"):
        r = subprocess.run([*cmd, "--calibration", calibration, "--json", str(tmp_path / f"{calibration}.json")],
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "no test label read" in r.stdout and r.stdout.count("| syn |") == 1
        out[calibration] = json.loads((tmp_path / f"{calibration}.json").read_text())["syn"]
    for o in out.values():
        assert set(o["kinds"]) == {"fast", "glide", "rush"} and o["n_moving"] > 0
        # every training walker keeps 1 px / frame: a walker at 1.5x, 2x or 4x stands out
        for k in o["kinds"].values():
            assert k["object_auc_velocity"] > 0.9 and k["clip_auc_fused"] > 0.8, o
        assert o["kinds"]["rush"]["object_auc_velocity"] >= o["kinds"]["fast"]["object_auc_velocity"]
        assert o["validation_frames"] > 0.8
    with h5py.File(res / "velocity" / "train" / "tr0.h5", "r+") as f:
        f["feature"][0] += 1.0
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode != 0 and "velocity features rebuilt from tracks and flow differ" in r.stdout + r.stderr


def test_the_yardstick_s_tables_print_what_each_stream_ships_and_its_appearance_kinds_change_what_they_claim(
        finished, tmp_path):
    """bench/yardstick.py on a finished run; the stand-in embedding is a crop's mean colour: a uniform
    square upside down keeps it (the 1-NN sees nothing), tinted red it is a colour no training object
    has (the 1-NN finds every one)."""
    import subprocess

    res = finished[0] / "results" / "syn"
    r = subprocess.run([sys.executable, str(REPO / "bench" / "yardstick.py"), str(res), "--json",
                        str(tmp_path / "y.json")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    v = json.loads((tmp_path / "y.json").read_text())["syn"]
    assert v == json.loads((res / "validation" / "validation.json").read_text())
    app = v["streams"]["appearance"]
    assert app["n_altered"] == {"flip": 13, "recolour": 13}  # every training object (fewer than validation.samples)
    knn = app["candidates"]["knn"]["aucs"]
    assert knn["recolour"] > 0.95 and abs(knn["flip"] - 0.5) < 0.2, app
    assert f"ships {app['shipped']}" in r.stdout and "| recolour |" in r.stdout and "| knn" in r.stdout
    assert f"fusion: {v['fusion']['rule']}" in r.stdout
    missing = subprocess.run([sys.executable, str(REPO / "bench" / "yardstick.py"), str(tmp_path)],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode != 0 and "validation.json: not found" in missing.stderr


@pytest.mark.slow
def test_the_ablations_retrain_each_variant_and_score_it_with_the_yardstick(finished, tmp_path):
    """bench/ablations.py on a finished run: the run's model as it is, one retrained variant and the
    plain autoencoder, each on the yardstick's synthetic anomalies."""
    import subprocess

    work = copy_run(finished[0], tmp_path / "w")
    model = (work / "results" / "syn" / "hsc" / "model.pt").read_bytes()
    r = subprocess.run([sys.executable, str(REPO / "bench" / "ablations.py"), str(work / "results" / "syn"),
                        "--configfile", str(work / "config.yaml"), "--variants", "full", "no_contrast", "no_memory",
                        "--json", str(tmp_path / "a.json")], capture_output=True, text=True, timeout=600,
                       env={**os.environ, **STANDIN_ENV})
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads((tmp_path / "a.json").read_text())["variants"]
    yard = json.loads((work / "results" / "syn" / "validation" / "validation.json").read_text())
    for s in ("appearance", "velocity"):  # the run's own model scores as the run's yardstick did
        assert out["full"]["streams"][s]["configured"] == pytest.approx(
            next(iter(yard["streams"][s]["candidates"].values()))["mean_auc"])
        assert out["no_contrast"]["streams"][s]["knn"] == out["full"]["streams"][s]["knn"]  # features alone
    # the walkers keep 1 px / frame: a walker at 1.5-4x its speed is far from every training sample,
    # for the plain autoencoder too
    assert out["no_memory"]["streams"]["velocity"]["plain_ae"] > 0.9
    assert "| no_memory | velocity | - | - |" in r.stdout
    assert (work / "results" / "syn" / "hsc" / "model.pt").read_bytes() == model  # variants stay out of the run
