"""The fetch stage offline: file:// URLs stand in for the network; nothing here downloads."""

import hashlib
import tarfile

import pytest

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
