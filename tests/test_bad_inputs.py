"""Bad input, table by table: what is refused, with which message, and that nothing is left behind.

Each case was written to fail on the code before its fix (issue 9): configuration holes, corrupt
frames, labels that give no AUC, output hygiene, results that follow their inputs, and failures that
show their cause in one line.
"""

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO, write_frames, write_video
from standin_backends import PARAMS, RT

from hscvad.config import load_config, load_schema, stage_params, validate
from hscvad.data import VideoError, build_dataset
from hscvad.h5store import atomic_path, save_torch, write_json
from hscvad.stages import detect_track
from hscvad.stages.evaluate import load_labels

SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile")]


def own_dataset(tmp: Path, labels=("b",)) -> Path:
    """A folder dataset: one training video, two test frame folders, labels for ``labels``."""
    root = tmp / "own"
    write_video(root / "train" / "a.avi", 8)
    write_frames(root / "test" / "b", 6)
    write_frames(root / "test" / "c", 5, seed=1)
    (root / "labels").mkdir()
    for v in labels:
        n = len(list((root / "test" / v).iterdir()))
        np.save(root / "labels" / f"{v}.npy", (np.arange(n) >= n - 2).astype(np.uint8))
    return root


def smk(tmp: Path, cfg: dict, *args, timeout=300):
    (tmp / "config.yaml").write_text(yaml.safe_dump(cfg))
    cmd = [*SNAKEMAKE, "-d", str(tmp), "--configfile", str(tmp / "config.yaml"), "--cores", "1", *args]
    return subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=timeout)


def repo_config(**datasets) -> dict:
    cfg = load_config()
    cfg["datasets"] = datasets
    return cfg


# -- configuration and targets: refused while planning, one line, no traceback, nothing written -----

def _typo_top(cfg, root):
    cfg["hsc"]["epoch"] = 3


def _typo_model_block(cfg, root):
    cfg["detection"]["yolox"]["weigths"] = "x.onnx"


def _typo_dataset_override(cfg, root):
    cfg["datasets"]["own"]["detection"] = {"scor_threshold": 0.3}


def _typo_dataset_tracker(cfg, root):
    cfg["datasets"]["own"]["tracking"] = {"bytetrack": {"high_thresh": 0.3}}


def _missing_root(cfg, root):
    cfg["datasets"]["own"]["root"] = str(root.parent / "nowhere")


def _unchanged(cfg, root):
    pass


PLANNING_CASES = [
    ("top-level typo", _typo_top, [], "hsc: Additional properties are not allowed ('epoch' was unexpected)"),
    ("model block typo", _typo_model_block, [],
     "detection.yolox: Additional properties are not allowed ('weigths' was unexpected)"),
    ("dataset override typo", _typo_dataset_override, [],
     "datasets.own.detection: Additional properties are not allowed ('scor_threshold' was unexpected)"),
    ("dataset tracker typo", _typo_dataset_tracker, [],
     "datasets.own.tracking.bytetrack: Additional properties are not allowed ('high_thresh' was unexpected)"),
    ("missing root", _missing_root, [], "datasets.own.root: dataset folder not found"),
    ("unknown dataset", _unchanged, ["target=results/foo/auc.json"],
     "datasets.foo: no such dataset in the configuration (known: own)"),
    ("bad nested override", _unchanged, ["--config", "hsc={epochs: many}"],
     "hsc.epochs: 'many' is not of type 'integer'"),
]


@pytest.mark.parametrize("name,mutate,extra,fragment", PLANNING_CASES, ids=[c[0] for c in PLANNING_CASES])
def test_bad_configuration_is_one_line_before_anything_runs(tmp_path, name, mutate, extra, fragment):
    root = own_dataset(tmp_path)
    cfg = repo_config(own={"adapter": "folder", "root": str(root)})
    mutate(cfg, root)
    target = next((e.split("=", 1)[1] for e in extra if e.startswith("target=")), "results/own/dataset_check.json")
    r = smk(tmp_path, cfg, target, *[e for e in extra if not e.startswith("target=")])
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert fragment in out, out
    assert "Traceback" not in out and "InputFunctionException" not in out and "File \"" not in out, out
    assert not (tmp_path / "results").exists()


def test_any_nested_setting_can_be_set_from_the_command_line():
    """``--config hsc='{epochs: 201}'``: Snakemake hands the inner value over as the string '201'."""
    from snakemake.cli import parse_config
    from snakemake.utils import update_config

    cfg = load_config()
    update_config(cfg, parse_config(["hsc={epochs: 201, readout: {effective_entries: 7.5}}",
                                     "datasets={ped2: {allow_partial: true}}"]))
    assert cfg["hsc"]["epochs"] == "201"  # what the validator receives
    validate(cfg, load_schema(REPO / "schemas" / "config.schema.yaml"))
    assert cfg["hsc"]["epochs"] == 201 and cfg["hsc"]["readout"]["effective_entries"] == 7.5
    assert cfg["datasets"]["ped2"]["allow_partial"] is True
    assert stage_params(cfg, "ped2", "train_hsc")["hsc"]["epochs"] == 201
    assert stage_params(cfg, "ped2", "check_dataset")["allow_partial"] is True
    assert cfg["datasets"]["ped2"]["benchmark"] == "ped2"  # a string setting stays a string


# -- corrupt frames: refused by the stage with the file and frame named, no output, input untouched ---

def _truncate(folder: Path, t: int, suffix: str):
    f = folder / f"{t:03d}{suffix}"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 3])


def _resize(folder: Path, t: int, suffix: str):
    import cv2

    cv2.imwrite(str(folder / f"{t:03d}{suffix}"), np.full((40, 60, 3), 90, np.uint8))


def _empty(folder: Path, t: int, suffix: str):
    (folder / f"{t:03d}{suffix}").write_bytes(b"")


FRAME_CASES = [
    ("truncated jpeg", ".jpg", _truncate, r"003\.jpg: truncated image \(frame 3 of .*\)"),
    ("truncated png", ".png", _truncate, r"003\.png: truncated image \(frame 3 of .*\)"),
    ("empty frame", ".jpg", _empty, r"003\.jpg: truncated image \(frame 3"),
    ("mixed sizes", ".jpg", _resize, r"003\.jpg: frame 3 is 60x40, the video's first frame 000\.jpg is 64x48"),
]


@pytest.mark.parametrize("name,suffix,corrupt,pattern", FRAME_CASES, ids=[c[0] for c in FRAME_CASES])
def test_a_corrupt_frame_stops_the_stage_naming_file_and_frame(tmp_path, name, suffix, corrupt, pattern):
    root = tmp_path / "own"
    write_video(root / "train" / "a.avi", 4)
    write_frames(root / "test" / "b", 6, suffix=suffix)
    corrupt(root / "test" / "b", 3, suffix)
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (root / "test" / "b").iterdir()}
    out = tmp_path / "results" / "t.h5"
    with pytest.raises(VideoError, match=pattern):
        detect_track.run("own", {"adapter": "folder", "root": str(root)}, "test", "b", str(out), PARAMS, RT)
    assert not out.exists() and not list(tmp_path.rglob("*.part"))
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (root / "test" / "b").iterdir()} == before


# -- labels that give no AUC: a reason in auc.json and the log, the missing files named ---------------

LABEL_CASES = [
    ("all normal", "normal", "all 11 test frames are labelled normal: an AUC needs abnormal frames too"),
    ("some missing", "partial", "label files missing for 1 of 2 test videos: c ({root}/labels/c.npy)"),
    ("none", "none", "the dataset has no frame labels"),
]


@pytest.mark.parametrize("name,kind,reason", LABEL_CASES, ids=[c[0] for c in LABEL_CASES])
def test_labels_without_an_auc_say_why(tmp_path, name, kind, reason):
    root = own_dataset(tmp_path, labels={"normal": ("b", "c"), "partial": ("b",), "none": ()}[kind])
    if kind == "normal":
        for f in (root / "labels").iterdir():
            np.save(f, np.zeros(len(np.load(f)), np.uint8))
    ds = build_dataset("own", {"adapter": "folder", "root": str(root)})
    labels, why = load_labels(ds, ["b", "c"], np.array([6, 5]))
    assert why == reason.format(root=root) or why.startswith(reason.format(root=root)), why
    assert (labels is None) == (kind != "normal")


# -- output hygiene -------------------------------------------------------------------------------

@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_outputs_honour_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        write_json(tmp_path / "a.json", {"x": 1})
        save_torch({"w": 1}, tmp_path / "m.pt")
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == mode
    assert (tmp_path / "m.pt").stat().st_mode & 0o777 == mode


def test_stale_part_files_of_an_output_are_removed_when_it_is_written(tmp_path):
    stale = [tmp_path / ".auc.json.k1lled.part", tmp_path / ".auc.json.x9.part"]
    other = tmp_path / ".scores.h5.abc.part"  # another output's: a job that may still be writing it
    for p in (*stale, other):
        p.write_text("half")
    with atomic_path(tmp_path / "auc.json") as tmp:
        tmp.write_text("{}")
    assert not any(p.exists() for p in stale) and other.exists()
    assert (tmp_path / "auc.json").read_text() == "{}"


def test_a_model_file_is_byte_identical_for_the_same_model(tmp_path):
    import torch

    payload = {"state_dict": {"w": torch.arange(6.0).reshape(2, 3)}, "meta": {"epochs": 2}}
    save_torch(payload, tmp_path / "a" / "model.pt")
    save_torch(payload, tmp_path / "b" / "model.pt")
    assert (tmp_path / "a" / "model.pt").read_bytes() == (tmp_path / "b" / "model.pt").read_bytes()
    assert torch.load(tmp_path / "a" / "model.pt", weights_only=True)["meta"] == {"epochs": 2}


# -- results follow their inputs; a failing job shows its cause first; gpu=1 is the default ---------

def test_a_changed_frame_or_label_reruns_what_reads_it(tmp_path):
    import time

    root = own_dataset(tmp_path, labels=("b", "c"))
    cfg = repo_config(own={"adapter": "folder", "root": str(root)})
    target = "results/own/dataset_check.json"
    r = smk(tmp_path, cfg, target)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Nothing to be done" in (r2 := smk(tmp_path, cfg, "-n", target)).stdout + r2.stderr
    time.sleep(1.1)
    write_frames(root / "test" / "b", 1, seed=7)  # frame 000 replaced by another picture
    out = smk(tmp_path, cfg, "-n", target).stdout
    assert "manifests/test/b.tsv" in out and re.search(r"check_dataset\s+1", out), out
    smk(tmp_path, cfg, target)
    time.sleep(1.1)
    np.save(root / "labels" / "c.npy", np.ones(5, np.uint8))
    out = smk(tmp_path, cfg, "-n", target).stdout
    assert "manifests/labels/labels__c.npy.tsv" in out and re.search(r"check_dataset\s+1", out), out
    write_video(root / "train" / "a.avi", 9)
    out = smk(tmp_path, cfg, "-n", target).stdout
    assert "manifests/train/a.tsv" in out and re.search(r"check_dataset\s+1", out), out


def test_a_failing_job_shows_its_cause_in_one_line_and_gpu_1_is_the_default(tmp_path):
    root = own_dataset(tmp_path, labels=("b",))
    cfg = repo_config(own={"adapter": "folder", "root": str(root), "benchmark": "ped2"})
    r = smk(tmp_path, cfg, "results/own/dataset_check.json")
    out = r.stdout + r.stderr
    assert r.returncode != 0
    # the profile's default: no --resources given
    assert re.search(r'Provided resources: gpu=(Resource\("gpu", )?1\b', out), out
    causes = [ln for ln in out.splitlines() if ln.startswith("hscvad check_dataset: error: ")]
    assert len(causes) == 1 and "is not the complete ped2 benchmark: missing training videos (16)" in causes[0]
    assert "Traceback" not in out
    log = (tmp_path / "results" / "own" / "logs" / "check_dataset" / "all.log").read_text()
    assert log.index("hscvad check_dataset: error:") < log.index("Traceback")
    assert not (tmp_path / "results" / "own" / "dataset_check.json").exists()
