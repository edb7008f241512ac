"""Dataset copies against their benchmarks (rule check_dataset), the one-line messages for a missing
dataset, and HSC's cut mixture masks."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import PED2, REPO, SHARED, need_shared, write_frames, write_video

from hscvad.config import load_config
from hscvad.data import DatasetError, LabelError, build_dataset
from hscvad.data.benchmarks import BENCHMARKS, video_key
from hscvad.data.check import check_dataset, how_to_get
from hscvad.stages import check_dataset as stage
from hscvad.stages.evaluate import _dataset_check

SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile")]
PED2_PARAMS = {"benchmark": "ped2", "allow_partial": False}


def ped2_copy(tmp: Path, drop_test=(), drop_train=()) -> Path:
    """The shared Ped2 copy, linked video by video, without the videos named."""
    root = tmp / "ped2"
    for split in ("training", "testing"):
        (root / split / "frames").mkdir(parents=True)
        for v in sorted(p.name for p in (PED2 / split / "frames").iterdir()):
            if v not in (drop_test if split == "testing" else drop_train):
                (root / split / "frames" / v).symlink_to(PED2 / split / "frames" / v)
    (root / "testing" / "UCSDped2.m").symlink_to(PED2 / "testing" / "UCSDped2.m")
    return root


def test_benchmark_tables_hold_the_published_counts():
    counts = {n: (b.train_videos, b.test_videos, b.total_test_frames, b.abnormal_frames) for n, b in BENCHMARKS.items()}
    assert counts["ped2"] == (16, 12, 2010, 1648)
    assert counts["avenue"] == (16, 21, 15324, 3712)
    assert counts["shanghaitech"] == (330, 107, 40791, 17326)
    assert video_key("Test001") == video_key("01") == (1,) and video_key("01_0014") == (1, 14)


@need_shared(SHARED / "datasets" / "shanghaitech" / "testing" / "test_frame_mask",
             SHARED / "datasets" / "avenue" / "ground_truth_demo" / "testing_label_mask")
def test_benchmark_tables_agree_with_the_official_label_files():
    from hscvad.data.labels import read_avenue_mat

    sht = SHARED / "datasets" / "shanghaitech"
    masks = {f.stem: np.load(f) for f in (sht / "testing" / "test_frame_mask").glob("*.npy")}
    assert {v: len(m) for v, m in masks.items()} == BENCHMARKS["shanghaitech"].test_frames
    assert sum(int((m > 0).sum()) for m in masks.values()) == BENCHMARKS["shanghaitech"].abnormal_frames
    for name in ("01+02", "04+08", "10+12"):
        b = BENCHMARKS[f"shanghaitech_mix_{name.replace('+', '_')}"]
        mix = sht / "mixtures" / name
        assert (mix / "test.txt").read_text().split() == list(b.test_frames)
        assert len((mix / "train.txt").read_text().split()) == b.train_videos
        assert sum(int(np.load(mix / "test_frame_mask" / f"{v}.npy").sum()) for v in b.test_frames) == b.abnormal_frames
    gt = SHARED / "datasets" / "avenue" / "ground_truth_demo" / "testing_label_mask"
    labels = {f"{i:02d}": read_avenue_mat(gt / f"{i}_label.mat") for i in range(1, 22)}
    assert {v: len(y) for v, y in labels.items()} == BENCHMARKS["avenue"].test_frames
    assert sum(int(y.sum()) for y in labels.values()) == BENCHMARKS["avenue"].abnormal_frames


@need_shared(PED2 / "testing" / "frames", PED2 / "testing" / "UCSDped2.m")
def test_the_shared_ped2_copy_passes(tmp_path):
    ds = build_dataset("ped2", {"adapter": "ucsd_ped", "root": str(PED2)})
    res = stage.run("ped2", {"dataset": {"adapter": "ucsd_ped", "root": str(PED2)}, **PED2_PARAMS},
                    str(tmp_path / "check.json"))
    assert res["complete"] is True and res["differences"] == []
    assert res["found"] == {"train_videos": 16, "test_videos": 12, "test_frames": 2010, "abnormal_frames": 1648,
                            "labelled_test_videos": 12}
    assert json.loads((tmp_path / "check.json").read_text())["found"] == res["found"]
    assert check_dataset(ds, None)["complete"] is None  # no benchmark: nothing to compare with


@need_shared(PED2 / "testing" / "frames", PED2 / "testing" / "UCSDped2.m")
def test_a_ped2_copy_without_one_test_video_fails_naming_it_and_passes_with_allow_partial(tmp_path):
    root = ped2_copy(tmp_path, drop_test=("05",))
    # the official .m file still has 12 lines: drop video 05's line as a user cutting the copy would
    lines = [ln for ln in (PED2 / "testing" / "UCSDped2.m").read_text().splitlines() if "gt_frame" in ln]
    (root / "testing" / "UCSDped2.m").unlink()
    (root / "testing" / "UCSDped2.m").write_text("\n".join(lines[:4] + lines[5:]) + "\n")
    params = {"dataset": {"adapter": "ucsd_ped", "root": str(root)}, **PED2_PARAMS}
    out = tmp_path / "check.json"
    with pytest.raises(DatasetError) as e:
        stage.run("p", params, str(out))
    msg = str(e.value)
    assert "missing test videos (1): 05" in msg and "1860 test frames, expected 2010" in msg
    assert "datasets.p.allow_partial" in msg and not out.exists()
    res = stage.run("p", {**params, "allow_partial": True}, str(out))
    assert res["complete"] is False and "missing test videos (1): 05" in res["differences"]
    recorded = _dataset_check(str(out))
    assert recorded["partial_dataset"]["benchmark"] == "ped2"
    assert "missing test videos (1): 05" in recorded["partial_dataset"]["differences"]
    assert recorded["dataset_check"]["found"]["test_videos"] == 11
    full = _dataset_check(str(_write(tmp_path / "full.json", {"benchmark": "ped2", "complete": True})))
    assert "partial_dataset" not in full and full["dataset_check"]["complete"] is True


def _write(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj))
    return path


def test_frame_counts_and_labels_of_a_small_avenue_copy(tmp_path):
    """Avenue's layout with tiny videos: decoded frame counts, volLabel-free .npy masks, every difference."""
    root = tmp_path / "avenue"
    for i in (1, 2, 3):
        write_video(root / "training_videos" / f"{i:02d}.avi", 3)
    write_video(root / "testing_videos" / "01.avi", 7)
    write_video(root / "testing_videos" / "08.avi", 36)
    (root / "testing_frame_mask").mkdir()
    np.save(root / "testing_frame_mask" / "01.npy", np.r_[np.zeros(5), np.ones(2)])
    np.save(root / "testing_frame_mask" / "08.npy", np.zeros(36))
    ds = build_dataset("av", {"adapter": "avenue", "root": str(root)})
    res = check_dataset(ds, "avenue")
    assert res["found"] == {"train_videos": 3, "test_videos": 2, "test_frames": 43, "abnormal_frames": 2,
                            "labelled_test_videos": 2}
    assert res["test_videos"]["08"] == {"frames": 36, "abnormal": 0}  # 08 has its published 36 frames
    d = res["differences"]
    assert res["complete"] is False
    assert any(x.startswith("missing training videos (13): 04, 05") for x in d)
    assert any(x.startswith("missing test videos (19): 02, 03, 04, 05, 06, 07, 09") for x in d)
    assert "test videos with another number of frames (1): 01 7 (expected 1439)" in d
    assert "2 abnormal test frames, expected 3712" in d


def test_own_footage_names_missing_label_files_as_warnings(tmp_path):
    root = tmp_path / "own"
    write_video(root / "train" / "cam1.mp4", 5)
    write_frames(root / "test" / "a", 4)
    write_frames(root / "test" / "b", 3)
    (root / "labels").mkdir()
    np.save(root / "labels" / "a.npy", np.array([0, 0, 1, 1]))
    res = check_dataset(build_dataset("own", {"adapter": "folder", "root": str(root)}), None)
    assert res["complete"] is None and res["differences"] == []
    assert res["warnings"] == [f"test videos without a label file (1): b ({root / 'labels' / 'b.npy'})"]
    assert res["found"]["abnormal_frames"] == 2


def test_cut_mixture_masks_are_padded_only_when_all_normal(tmp_path):
    """HSC_VAD stores a relabelled (all-normal) mixture mask cut to a multiple of 16 frames."""
    root = tmp_path / "sht"
    write_video(root / "training" / "videos" / "01_001.avi", 3)
    for v in ("01_0014", "01_0015"):
        write_frames(root / "testing" / "frames" / v, 20)
    mix = root / "mixtures" / "01+02"
    (mix / "test_frame_mask").mkdir(parents=True)
    (mix / "train.txt").write_text("01_001\n")
    (mix / "test.txt").write_text("01_0014\n01_0015\n")
    np.save(mix / "test_frame_mask" / "01_0014.npy", np.zeros(16))
    np.save(mix / "test_frame_mask" / "01_0015.npy", np.r_[np.zeros(8), np.ones(8)])
    ds = build_dataset("m", {"adapter": "shanghaitech", "root": str(root), "mixture": "01+02"})
    assert ds.frame_labels("01_0014", 20).tolist() == [0] * 20
    with pytest.raises(LabelError, match="16 frame labels for a video of 20 frames"):
        ds.frame_labels("01_0015", 20)
    with pytest.raises(LabelError):
        ds.frame_labels("01_0014", 40)  # a cut longer than a clip is not HSC's


def test_how_to_get_names_the_fetch_rule_or_the_place_to_put_files():
    assert "snakemake fetch_avenue" in how_to_get("avenue", {"adapter": "avenue", "root": "r", "benchmark": "avenue"})
    sht = how_to_get("s", {"adapter": "shanghaitech", "root": "r", "benchmark": "shanghaitech"})
    assert "svip-lab.github.io" in sht and "testing/test_frame_mask/SS_VVVV.npy" in sht and "training/videos" in sht
    assert "train/<video>" in how_to_get("own", {"adapter": "folder", "root": "r"})


def _smk(tmp: Path, datasets: dict, *args, fetch: dict | None = None):
    cfg = load_config()
    cfg["datasets"] = datasets
    cfg["fetch"].update(fetch or {})
    (tmp / "config.yaml").write_text(yaml.safe_dump(cfg))
    cmd = [*SNAKEMAKE, "-d", str(tmp), "--configfile", str(tmp / "config.yaml"), "--cores", "1", *args]
    return subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=300)


def test_a_partial_avenue_copy_is_one_line_naming_fetch_avenue(tmp_path):
    root = tmp_path / "avenue"
    write_video(root / "training_videos" / "01.avi", 3)  # a copy without its test videos
    r = _smk(tmp_path, {"avenue": {"adapter": "avenue", "root": str(root), "benchmark": "avenue"}},
             "results/avenue/auc.json")
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    errors = [ln for ln in out.splitlines() if "rror" in ln]
    assert len(errors) == 1, out
    assert "snakemake fetch_avenue" in errors[0] and "testing_videos/NN.avi" in errors[0] and str(root) in errors[0]
    assert "Traceback" not in out and "InputFunctionException" not in out


def test_a_missing_avenue_copy_is_fetched_and_without_a_network_says_what_to_place_where(tmp_path):
    """No folder at datasets.avenue.root: the run fetches it first (here from a closed local port:
    the download fails at once) and the failure says where to place the archive or the dataset."""
    root = tmp_path / "avenue"
    cfg_fetch = load_config()["fetch"]["avenue"]
    for a in cfg_fetch["archives"]:
        a["url"] = "http://127.0.0.1:9/" + a["url"].rsplit("/", 1)[1]
    r = _smk(tmp_path, {"avenue": {"adapter": "avenue", "root": str(root), "benchmark": "avenue"}},
             "results/avenue/auc.json", fetch={"avenue": cfg_fetch})
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    line = next(ln for ln in out.splitlines() if ln.startswith("hscvad fetch_avenue: error:"))
    assert "cannot download http://127.0.0.1:9/Avenue_Dataset.zip" in line and "place it at" in line
    assert "point datasets.avenue.root at it" in line and not root.exists()


def test_an_unknown_dataset_in_a_target_lists_the_configured_ones(tmp_path):
    r = _smk(tmp_path, {"ped2": {"adapter": "ucsd_ped", "root": "x"}}, "-n", "results/foo/auc.json")
    out = r.stdout + r.stderr
    assert r.returncode == 1 and "Traceback" not in out
    assert "Error: datasets.foo: no such dataset in the configuration (known: ped2)" in out


@need_shared(PED2 / "testing" / "frames", PED2 / "testing" / "UCSDped2.m")
def test_check_dataset_rule_stops_on_a_partial_copy_and_reruns_when_allowed(tmp_path):
    root = ped2_copy(tmp_path, drop_train=("16",))
    ds = {"adapter": "ucsd_ped", "root": str(root), "benchmark": "ped2"}
    r = _smk(tmp_path, {"p": ds}, "results/p/dataset_check.json")
    assert r.returncode != 0 and "missing training videos (1): 16" in r.stdout + r.stderr
    assert not (tmp_path / "results" / "p" / "dataset_check.json").exists()
    r = _smk(tmp_path, {"p": {**ds, "allow_partial": True}}, "results/p/dataset_check.json")
    assert r.returncode == 0, r.stdout + r.stderr
    chk = json.loads((tmp_path / "results" / "p" / "dataset_check.json").read_text())
    assert chk["complete"] is False and chk["differences"] == ["missing training videos (1): 16"]
    # the listing is a params entry: restoring the video reruns the check
    (root / "training" / "frames" / "16").symlink_to(PED2 / "training" / "frames" / "16")
    r = _smk(tmp_path, {"p": {**ds, "allow_partial": True}}, "results/p/dataset_check.json")
    assert json.loads((tmp_path / "results" / "p" / "dataset_check.json").read_text())["complete"] is True
    shutil.rmtree(tmp_path / "results")
