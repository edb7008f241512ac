"""The fetch stage offline: file:// URLs stand in for the network; nothing here downloads."""

import hashlib
import tarfile
from pathlib import Path

import pytest

from hscvad.config import load_config
from hscvad.stages.fetch import FetchError, fetch


def test_download_verifies_checksum_and_writes_atomically(tmp_path):
    src = tmp_path / "model.onnx"
    src.write_bytes(b"weights" * 100)
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    out = tmp_path / "resources" / "models" / "model.onnx"
    out.parent.mkdir(parents=True)
    fetch({"url": src.as_uri(), "sha256": sha}, str(out))
    assert out.read_bytes() == src.read_bytes()
    bad = tmp_path / "resources" / "models" / "other.onnx"
    with pytest.raises(FetchError, match="does not match"):
        fetch({"url": src.as_uri(), "sha256": "0" * 64}, str(bad))
    assert not bad.exists() and sorted(p.name for p in bad.parent.iterdir()) == ["model.onnx"]
    # OpenMMLab checkpoints: the 8-hex sha256 prefix in their file names is what is published
    fetch({"url": src.as_uri(), "sha256": sha[:8]}, str(tmp_path / "prefix.pth"))
    with pytest.raises(FetchError, match="does not match"):
        fetch({"url": src.as_uri(), "sha256": "deadbeef"}, str(tmp_path / "wrong.pth"))
    assert not (tmp_path / "wrong.pth").exists()


def test_without_network_the_message_says_what_to_place_where(tmp_path):
    out = tmp_path / "m.onnx"
    item = {"url": "http://127.0.0.1:9/m.onnx", "sha256": "ab" * 32, "config_key": "detection.yolox.weights"}
    with pytest.raises(FetchError) as e:
        fetch(item, str(out))
    msg = str(e.value)
    assert "place the file yourself at" in msg and str(out) in msg and "detection.yolox.weights" in msg
    assert "ab" * 32 in msg and not out.exists()


def test_archive_member_is_unpacked_into_place(tmp_path):
    tree = tmp_path / "UCSD_Anomaly_Dataset.v1p2" / "UCSDped2" / "Train" / "Train001"
    tree.mkdir(parents=True)
    (tree / "001.tif").write_bytes(b"x")
    archive = tmp_path / "ucsd.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(tmp_path / "UCSD_Anomaly_Dataset.v1p2", arcname="UCSD_Anomaly_Dataset.v1p2")
    out = tmp_path / "resources" / "datasets" / "ped2"
    out.parent.mkdir(parents=True)
    fetch({"url": archive.as_uri(), "sha256": None, "unpack": "tar",
           "member": "UCSD_Anomaly_Dataset.v1p2/UCSDped2"}, str(out))
    assert (out / "Train" / "Train001" / "001.tif").read_bytes() == b"x"


def _avenue_archives(tmp_path):
    """Two zips in the structure of the CUHK Avenue downloads, with tiny stand-in files."""
    import zipfile

    tmp_path.mkdir(parents=True, exist_ok=True)
    data, gt = tmp_path / "Avenue_Dataset.zip", tmp_path / "ground_truth_demo.zip"
    with zipfile.ZipFile(data, "w") as z:
        for i in (1, 2):
            z.writestr(f"Avenue Dataset/training_videos/{i:02d}.avi", b"train%d" % i)
        z.writestr("Avenue Dataset/testing_videos/01.avi", b"test1")
        z.writestr("Avenue Dataset/training_vol/vol01.mat", b"unused")
    with zipfile.ZipFile(gt, "w") as z:
        z.writestr("ground_truth_demo/testing_label_mask/1_label.mat", b"mask1")
        z.writestr("ground_truth_demo/testing_videos/01.avi", b"demo")
        z.writestr("ground_truth_demo/Readme.txt", b"readme")
    return data, gt


def _avenue_item(data, gt, **kw):
    md5 = {p: hashlib.md5(p.read_bytes()).hexdigest() for p in (data, gt)}
    return {"config_key": "datasets.avenue.root", "archives": [
        {"url": kw.get("data_url", data.as_uri()), "md5": md5[data], "unpack": "zip",
         "members": {"Avenue Dataset/training_videos": "training_videos",
                     "Avenue Dataset/testing_videos": "testing_videos"}},
        {"url": gt.as_uri(), "md5": md5[gt], "unpack": "zip",
         "members": {"ground_truth_demo/testing_label_mask": "ground_truth_demo/testing_label_mask"}}]}


def test_fetch_avenue_unpacks_both_archives_into_the_adapter_layout(tmp_path):

    from hscvad.data import build_dataset

    data, gt = _avenue_archives(tmp_path / "src")
    item = _avenue_item(data, gt)
    # the shipped item has the same structure (archive members -> the adapter's folders)
    shipped = load_config()["fetch"]["avenue"]
    assert [a["members"] for a in shipped["archives"]] == [a["members"] for a in item["archives"]]
    out = tmp_path / "resources" / "datasets" / "avenue"
    fetch(item, str(out))
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "ground_truth_demo/testing_label_mask/1_label.mat", "testing_videos/01.avi",
        "training_videos/01.avi", "training_videos/02.avi"]
    ds = build_dataset("avenue", {"adapter": "avenue", "root": str(out)})
    assert ds.videos("train") == ["01", "02"] and ds.videos("test") == ["01"]
    assert ds.label_file("01") == out / "ground_truth_demo" / "testing_label_mask" / "1_label.mat"
    # the downloads are removed once the dataset is in place; nothing half-built is left
    assert sorted(p.name for p in out.parent.iterdir()) == [".downloads", "avenue"]
    assert list((out.parent / ".downloads").iterdir()) == []


def test_a_bad_checksum_deletes_the_download_and_leaves_no_dataset(tmp_path):
    data, gt = _avenue_archives(tmp_path / "src")
    item = _avenue_item(data, gt)
    item["archives"][1]["md5"] = "0" * 32
    out = tmp_path / "datasets" / "avenue"
    with pytest.raises(FetchError, match="ground_truth_demo.zip: md5 .* does not match"):
        fetch(item, str(out))
    assert not out.exists() and sorted(p.name for p in (out.parent / ".downloads").iterdir()) == [
        "Avenue_Dataset.zip"]  # the verified first archive is kept for the next run
    fetch(_avenue_item(data, gt), str(out))
    assert (out / "testing_videos" / "01.avi").read_bytes() == b"test1"


class _RangeServer:
    """A local HTTP server that honours Range requests and can cut its first response short."""

    def __init__(self, payload: bytes, cut_first_at: int | None = None, ranges: bool = True):
        import http.server
        import threading

        self.requests = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                rng = self.headers.get("Range")
                server.requests.append(rng)
                start = int(rng.split("=")[1].split("-")[0]) if (rng and ranges) else 0
                body = payload[start:]
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(payload) - 1}/{len(payload)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if cut_first_at is not None and len(server.requests) == 1:
                    self.wfile.write(body[:cut_first_at])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/Avenue_Dataset.zip"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize("ranges", [True, False])
def test_an_interrupted_download_resumes_or_restarts_cleanly(tmp_path, ranges):
    data, gt = _avenue_archives(tmp_path / "src")
    payload = data.read_bytes()
    server = _RangeServer(payload, cut_first_at=len(payload) // 2, ranges=ranges)
    try:
        item = _avenue_item(data, gt, data_url=server.url)
        out = tmp_path / "datasets" / "avenue"
        with pytest.raises(FetchError, match="interrupted after .* bytes; .*next run resumes it"):
            fetch(item, str(out))
        part = out.parent / ".downloads" / "Avenue_Dataset.zip.part"
        assert part.stat().st_size == len(payload) // 2 and not out.exists()
        fetch(item, str(out))
        assert server.requests == [None, f"bytes={len(payload) // 2}-"]
        assert (out / "training_videos" / "02.avi").read_bytes() == b"train2" and not part.exists()
    finally:
        server.close()


def test_the_fetch_avenue_rule_places_the_dataset_where_the_config_points(tmp_path):
    import subprocess
    import sys

    import yaml
    from conftest import REPO

    data, gt = _avenue_archives(tmp_path / "src")
    cfg = load_config()
    root = tmp_path / "data" / "avenue"
    cfg["datasets"] = {"avenue": {"adapter": "avenue", "root": str(root), "benchmark": "avenue"}}
    cfg["fetch"]["avenue"] = _avenue_item(data, gt)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    r = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path),
                        "--configfile", str(tmp_path / "config.yaml"), "--cores", "1", "fetch_avenue"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert (root / "testing_videos" / "01.avi").read_bytes() == b"test1"
    assert (root / "ground_truth_demo" / "testing_label_mask" / "1_label.mat").is_file()
    log = (tmp_path / "resources" / "logs" / "fetch_avenue.log").read_text()
    assert "checksum verified" in log


def _ucsd_archive(tmp: Path) -> Path:
    """A tiny UCSD Ped2 download: UCSD_Anomaly_Dataset.v1p2/UCSDped2/{Train,Test}/..., .tif frames."""
    import tarfile

    from conftest import write_frames

    src = tmp / "src" / "UCSD_Anomaly_Dataset.v1p2" / "UCSDped2"
    for split, videos in (("Train", ("Train001", "Train002")), ("Test", ("Test001",))):
        for i, v in enumerate(videos):
            write_frames(src / split / v, 24, suffix=".tif", start=1, seed=i)
    (src / "Test" / "UCSDped2.m").write_text("TestVideoFile = {};\nTestVideoFile{end+1}.gt_frame = [13:24];\n")
    archive = tmp / "UCSD_Anomaly_Dataset.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(src.parent, arcname="UCSD_Anomaly_Dataset.v1p2")
    return archive


@pytest.mark.e2e
def test_the_main_command_on_a_fresh_clone_fetches_ped2_and_plans_the_pipeline(tmp_path):
    """No resources/datasets/ped2: `snakemake results/ped2/auc.json` fetches the archive (from a
    local server standing in for UCSD's), unpacks it into place, and plans the whole pipeline on
    the videos it holds."""
    import yaml
    from conftest import STANDIN_ENV, planned_jobs, smk, synthetic_config

    archive = _ucsd_archive(tmp_path / "download")
    server = _RangeServer(archive.read_bytes())
    try:
        cfg = synthetic_config(tmp_path)  # the stand-in backends: no weights to fetch
        cfg["datasets"] = {"ped2": {**load_config()["datasets"]["ped2"], "allow_partial": True}}
        assert cfg["datasets"]["ped2"]["root"] == "resources/datasets/ped2" and not (tmp_path / "resources").exists()
        cfg["fetch"]["ped2"]["archives"][0]["url"] = server.url.replace("Avenue_Dataset.zip", archive.name)
        plan = planned_jobs(smk(tmp_path, cfg, "-n", "results/ped2/auc.json", env=STANDIN_ENV).stdout)
        assert plan["fetch_ped2"] == 1  # first the download; the rest is planned once the videos are known
        r = smk(tmp_path, cfg, "results/ped2/dataset_check.json", env=STANDIN_ENV)
        assert server.requests == [None], r.stdout
        root = tmp_path / "resources" / "datasets" / "ped2"
        assert sorted(p.name for p in (root / "Train").iterdir()) == ["Train001", "Train002"]
        assert len(list((root / "Test" / "Test001").glob("*.tif"))) == 24
        plan = planned_jobs(smk(tmp_path, cfg, "-n", "results/ped2/auc.json", env=STANDIN_ENV).stdout)
        assert plan == {"detect_track": 3, "appearance": 3, "scene": 3, "flow": 3, "velocity": 3, "scene_labels": 1,
                        "train_hsc": 1, "synthetic_objects": 1, "validate": 1, "score": 1, "explain": 1,
                        "evaluate": 1}  # Ped2's streams: appearance, velocity
        assert yaml.safe_load((tmp_path / "config.yaml").read_text())["datasets"]["ped2"]["benchmark"] == "ped2"
    finally:
        server.close()
