"""Label readers and dataset adapters on tiny synthetic data written in each dataset's real layout."""

import numpy as np
import pytest
import scipy.io
from conftest import PED2, need_shared, write_frames, write_video

from hscvad.data import DatasetError, LabelError, VideoError, build_dataset, open_source
from hscvad.data import labels as L

# -- label readers -------------------------------------------------------------------------------


def test_read_ucsd_m_single_and_multiple_ranges(tmp_path):
    m = tmp_path / "UCSDped1.m"
    m.write_text("TestVideoFile = {};\nTestVideoFile{end+1}.gt_frame = [61:180];\n"
                 "TestVideoFile{end+1}.gt_frame = [5:90, 140:200];\n")
    ranges = L.read_ucsd_m(m)
    assert ranges == [[(61, 180)], [(5, 90), (140, 200)]]
    y = L.ranges_to_labels(ranges[1], 200, m)
    assert y.sum() == 86 + 61 and y[3] == 0 and y[4] == 1 and y[139] == 1 and y[138] == 0


def test_ucsd_range_outside_video_names_file(tmp_path):
    with pytest.raises(LabelError, match="gt.m"):
        L.ranges_to_labels([(1, 300)], 180, tmp_path / "gt.m")


@need_shared(PED2 / "testing" / "UCSDped2.m")
def test_official_ped2_labels_count():
    ranges = L.read_ucsd_m(PED2 / "testing" / "UCSDped2.m")
    assert len(ranges) == 12
    lengths = [len(list((PED2 / "testing" / "frames" / f"{i:02d}").iterdir())) for i in range(1, 13)]
    total = sum(int(L.ranges_to_labels(r, n, "m").sum()) for r, n in zip(ranges, lengths))
    assert total == 1648  # shared/README.md: the official ground truth has 1648 abnormal frames


def test_read_avenue_mat(tmp_path):
    masks = np.empty((1, 4), dtype=object)
    for i in range(4):
        m = np.zeros((6, 8), np.uint8)
        if i in (1, 2):
            m[2, 3] = 1
        masks[0, i] = m
    path = tmp_path / "3_label.mat"
    scipy.io.savemat(path, {"volLabel": masks})
    assert L.read_avenue_mat(path).tolist() == [0, 1, 1, 0]
    masks[0, 2][4, 5] = 255
    scipy.io.savemat(path, {"volLabel": masks})
    pixels = L.read_avenue_masks(path)
    assert pixels.dtype == bool and pixels.shape == (4, 6, 8)
    np.testing.assert_array_equal(pixels, np.stack(list(masks[0])) > 0)
    assert L.read_avenue_mat(path).tolist() == [0, 1, 1, 0]
    masks[0, 3] = np.zeros((6, 9), np.uint8)
    scipy.io.savemat(path, {"volLabel": masks})
    with pytest.raises(LabelError, match="different sizes"):
        L.read_avenue_mat(path)
    scipy.io.savemat(tmp_path / "bad.mat", {"other": 1})
    with pytest.raises(LabelError, match="bad.mat"):
        L.read_avenue_mat(tmp_path / "bad.mat")


def test_read_npy_and_mask_folder(tmp_path):
    import cv2

    np.save(tmp_path / "v.npy", np.array([0, 0, 1, 1, 0]))
    assert L.read_npy_labels(tmp_path / "v.npy").tolist() == [0, 0, 1, 1, 0]
    folder = tmp_path / "masks"
    folder.mkdir()
    for i, on in enumerate([0, 1, 0]):
        img = np.zeros((5, 5), np.uint8)
        img[1, 1] = 255 * on
        cv2.imwrite(str(folder / f"{i:03d}.png"), img)
    assert L.read_mask_folder(folder).tolist() == [0, 1, 0]


def test_label_length_mismatch_names_the_file(tmp_path):
    with pytest.raises(LabelError, match=r"v\.npy: 5 frame labels for a video of 7 frames"):
        L.check_length(np.zeros(5), 7, tmp_path / "v.npy")


# -- frame sources --------------------------------------------------------------------------------


def test_video_file_and_frame_folder_stream_rgb(tmp_path):
    write_video(tmp_path / "a.avi", 12)
    frames = list(open_source(tmp_path / "a.avi").frames())
    assert len(frames) == 12 and frames[0].shape == (48, 64, 3) and frames[0].dtype == np.uint8
    assert frames[0][20, 8, 1] > 150  # green square (RGB order)
    write_frames(tmp_path / "f", 5, suffix=".tif")
    assert len(list(open_source(tmp_path / "f").frames())) == 5


def test_truncated_video_error_names_file(tmp_path):
    path = tmp_path / "t.avi"
    write_video(path, 40)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError, match="t.avi"):
        list(open_source(path).frames())


def test_unreadable_frame_names_file(tmp_path):
    write_frames(tmp_path / "f", 3)
    (tmp_path / "f" / "001.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(VideoError, match="001.jpg"):
        list(open_source(tmp_path / "f").frames())


# -- adapters -------------------------------------------------------------------------------------


def test_ucsd_official_layout(tmp_path):
    import cv2

    root = tmp_path / "UCSDped2"
    write_frames(root / "Train" / "Train001", 6, suffix=".tif", start=1)
    write_frames(root / "Test" / "Test001", 5, suffix=".tif", start=1)
    write_frames(root / "Test" / "Test002", 4, suffix=".tif", start=1)
    (root / "Test" / "Test001_gt").mkdir()
    for i in range(5):
        cv2.imwrite(str(root / "Test" / "Test001_gt" / f"{i + 1:03d}.bmp"), np.full((48, 64), 255 * (i >= 3), np.uint8))
    (root / "Test" / "UCSDped2.m").write_text(
        "TestVideoFile{end+1}.gt_frame = [4:5];\nTestVideoFile{end+1}.gt_frame = [1:2];\n")
    ds = build_dataset("p", {"adapter": "ucsd_ped", "root": str(root)})
    assert ds.videos("train") == ["Train001"] and ds.videos("test") == ["Test001", "Test002"]
    assert ds.frame_labels("Test001", 5).tolist() == [0, 0, 0, 1, 1]
    assert ds.frame_labels("Test002", 4).tolist() == [1, 1, 0, 0]
    assert ds.pixel_masks("Test001").shape == (5, 48, 64)
    with pytest.raises(LabelError, match="UCSDped2.m"):
        ds.frame_labels("Test002", 1)


@need_shared(PED2 / "training" / "frames")
def test_ucsd_frames_layout_on_real_ped2():
    ds = build_dataset("ped2", {"adapter": "ucsd_ped", "root": str(PED2)})
    assert len(ds.videos("train")) == 16 and len(ds.videos("test")) == 12
    y = ds.frame_labels("01", 180)
    assert y.sum() == 120 and y[59] == 0 and y[60] == 1
    masks = ds.pixel_masks("01")
    assert masks.shape == (180, 240, 360)
    assert (masks.reshape(180, -1).any(1) == y.astype(bool)).all()


def test_avenue_layout(tmp_path):
    root = tmp_path / "avenue"
    write_video(root / "training_videos" / "01.avi", 5)
    write_video(root / "testing_videos" / "01.avi", 4)
    write_video(root / "testing_videos" / "02.avi", 3)
    (root / "ground_truth_demo" / "testing_label_mask").mkdir(parents=True)
    vol = np.empty((1, 4), dtype=object)
    for i in range(4):
        vol[0, i] = np.full((48, 64), int(i == 2), np.uint8)
    scipy.io.savemat(root / "ground_truth_demo" / "testing_label_mask" / "1_label.mat", {"volLabel": vol})
    ds = build_dataset("avenue", {"adapter": "avenue", "root": str(root)})
    assert ds.videos("train") == ["01"] and ds.videos("test") == ["01", "02"]
    assert ds.frame_labels("01", 4).tolist() == [0, 0, 1, 0]
    with pytest.raises(LabelError, match="2_label.mat"):
        ds.frame_labels("02", 3)  # label file missing


def test_shanghaitech_layout_and_mixture(tmp_path):
    root = tmp_path / "sht"
    write_video(root / "training" / "videos" / "01_001.avi", 4)
    write_video(root / "training" / "videos" / "02_001.avi", 4)
    for v in ("01_0014", "01_0016", "02_0128"):
        write_frames(root / "testing" / "frames" / v, 3)
        (root / "testing" / "test_frame_mask").mkdir(parents=True, exist_ok=True)
        np.save(root / "testing" / "test_frame_mask" / f"{v}.npy", np.array([0, 1, 1]))
    ds = build_dataset("sht", {"adapter": "shanghaitech", "root": str(root)})
    assert ds.videos("train") == ["01_001", "02_001"]
    assert ds.videos("test") == ["01_0014", "01_0016", "02_0128"]
    assert ds.frame_labels("01_0014", 3).tolist() == [0, 1, 1]
    mix = root / "mixtures" / "01+02"
    (mix / "test_frame_mask").mkdir(parents=True)
    (mix / "train.txt").write_text("01_0016\n01_001\n02_001\n")
    (mix / "test.txt").write_text("01_0014\n02_0128\n")
    np.save(mix / "test_frame_mask" / "01_0014.npy", np.array([0, 0, 1]))
    np.save(mix / "test_frame_mask" / "02_0128.npy", np.array([0, 0, 0]))
    m = build_dataset("mix", {"adapter": "shanghaitech", "root": str(root), "mixture": "01+02"})
    assert m.videos("train") == ["01_001", "01_0016", "02_001"]
    assert m.path("train", "01_0016").is_dir()  # a test video moved into training
    assert m.frame_labels("01_0014", 3).tolist() == [0, 0, 1]  # relabelled mask
    (mix / "test.txt").write_text("01_0014\n09_9999\n")
    with pytest.raises(DatasetError, match="09_9999"):
        build_dataset("mix", {"adapter": "shanghaitech", "root": str(root), "mixture": "01+02"}).videos("test")


def test_folder_layout_with_and_without_labels(tmp_path):
    root = tmp_path / "own"
    write_video(root / "train" / "cam1.mp4", 5)
    write_frames(root / "test" / "clipA", 4)
    ds = build_dataset("own", {"adapter": "folder", "root": str(root)})
    assert ds.videos("train") == ["cam1"] and ds.videos("test") == ["clipA"]
    assert not ds.has_labels() and ds.frame_labels("clipA", 4) is None
    (root / "labels").mkdir()
    np.save(root / "labels" / "clipA.npy", np.array([0, 1, 1, 0]))
    ds = build_dataset("own", {"adapter": "folder", "root": str(root)})
    assert ds.has_labels() and ds.frame_labels("clipA", 4).tolist() == [0, 1, 1, 0]


def test_missing_root_names_key_and_path(tmp_path):
    with pytest.raises(DatasetError, match=r"datasets\.avenue\.root: dataset folder not found: .*nowhere"):
        build_dataset("avenue", {"adapter": "avenue", "root": str(tmp_path / "nowhere")})
    with pytest.raises(DatasetError, match=r"datasets\.x\.adapter"):
        build_dataset("x", {"adapter": "nope", "root": str(tmp_path)})


def _write_mpeg4(path, n=40, hw=(48, 64)):
    """A video with inter-coded frames (MPEG-4 Part 2, GOP 12): skipping one needs the others."""
    import av

    rng = np.random.default_rng(1)
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=25)
        s.width, s.height, s.pix_fmt = hw[1], hw[0], "yuv420p"
        s.codec_context.gop_size = 12
        for i in range(n):
            img = np.full((*hw, 3), 80, np.uint8) + rng.integers(0, 30, (*hw, 3), dtype=np.uint8)
            img[10:30, (2 * i) % 50 : (2 * i) % 50 + 10] = (60, 200, 60)
            for packet in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)


@pytest.mark.parametrize("kind", ["mpeg4", "mjpg", "jpg folder", "png folder"])
def test_frames_kept_are_exactly_a_full_decodes(tmp_path, kind):
    """The frame-source layer: frames(keep) yields, at the requested indices, exactly the frames a
    full decode yields there, None elsewhere, and as many items as a full decode."""
    from hscvad.data.readers import open_source

    if kind == "mpeg4":
        path = tmp_path / "v.mp4"
        _write_mpeg4(path)
    elif kind == "mjpg":
        path = tmp_path / "v.avi"
        write_video(path, 40)
    else:
        path = tmp_path / "frames"
        write_frames(path, 40, suffix=".jpg" if kind == "jpg folder" else ".png")
    full = list(open_source(path).frames())
    assert len(full) == 40
    for wanted in ({0, 5, 6, 17, 39}, set(range(0, 40, 4)), set(), {13}):
        got = list(open_source(path).frames(lambda t, w=wanted: t in w))
        assert len(got) == len(full)
        assert [t for t, f in enumerate(got) if f is not None] == sorted(wanted)
        for t in wanted:
            np.testing.assert_array_equal(got[t], full[t])


def test_a_frame_folder_does_not_read_frames_it_does_not_need(tmp_path):
    from hscvad.data.readers import open_source

    write_frames(tmp_path / "f", 6)
    (tmp_path / "f" / "004.jpg").write_bytes(b"not an image")  # unread: no error
    got = list(open_source(tmp_path / "f").frames(lambda t: t != 4))
    assert got[4] is None and all(g is not None for i, g in enumerate(got) if i != 4)
    with pytest.raises(Exception, match="004.jpg"):
        list(open_source(tmp_path / "f").frames())


# -- manifests: what a job reads from outside results/, watched by its bytes, not its dates ----------

def _rewrite(path, data=None):
    """Write ``data`` (default: the same bytes) to ``path`` with a modification time 10 s later."""
    import os

    st = path.stat()
    path.write_bytes(path.read_bytes() if data is None else data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**10))


def test_a_manifest_moves_when_the_bytes_do_not_when_the_dates_do(tmp_path, monkeypatch):
    import os

    from hscvad.data import manifest as M

    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i:03d}.jpg").write_bytes(bytes([i]) * 100)
        stamp = 10**18 if i == 1 else 10**18 - 10**9  # frames dated 2001, 001.jpg the newest
        os.utime(folder / f"{i:03d}.jpg", ns=(stamp, stamp))
    out = tmp_path / "m" / "v.tsv"
    M.write_manifest(folder, out)
    lines = out.read_text().splitlines()
    assert lines[0] == M.HEADER and lines[1] == f"# folder {folder}" and len(lines) == 5
    assert lines[2].split("\t")[:2] == ["000.jpg", "100"] and len(lines[2].split("\t")[2]) == 32
    # a new manifest is dated as its newest file: results made from that content stay up to date
    assert out.stat().st_mtime_ns == 10**18
    reads = []
    digest = M._digest
    monkeypatch.setattr(M, "_digest", lambda p: reads.append(p) or digest(p))
    M.write_manifest(folder, out)
    assert reads == []  # sizes and dates as cached: nothing read again
    before = out.stat().st_mtime_ns
    for f in folder.iterdir():  # the same bytes, new dates (a copy, a second download)
        _rewrite(f)
    M.write_manifest(folder, out)
    assert len(reads) == 3 and out.stat().st_mtime_ns == before  # hashed again, not rewritten
    _rewrite(folder / "002.jpg", b"\x07" * 100)  # other bytes, the same size
    M.write_manifest(folder, out)
    assert out.stat().st_mtime_ns != before and "002.jpg\t100\t" + digest(str(folder / "002.jpg")) in out.read_text()
    # a single file (a video, a label file) has a manifest of one line
    video = tmp_path / "a.avi"
    video.write_bytes(b"RIFF" * 10)
    text = M.write_manifest(video, tmp_path / "m" / "a.tsv")
    assert open(text).read().splitlines()[1:] == [f"# file {video}", f"a.avi\t40\t{digest(str(video))}"]
    # a manifest of the earlier format (name, size, date) is replaced, dated as its content
    old = tmp_path / "m" / "old.tsv"
    old.write_text(f"# {folder}\n000.jpg\t100\t123\n")
    M.write_manifest(folder, old)
    assert old.read_text().startswith(M.HEADER) and old.stat().st_mtime_ns == max(
        f.stat().st_mtime_ns for f in folder.iterdir())


def test_a_weights_digest_is_its_sha256_read_once_per_size_and_date(tmp_path, monkeypatch):
    import hashlib

    from hscvad.data import manifest as M
    from hscvad.models import registry

    w = tmp_path / "model.onnx"
    w.write_bytes(b"weights" * 1000)
    link = tmp_path / "link.onnx"
    link.symlink_to(w)
    cache = tmp_path / "results" / "weights.json"
    reads = []
    real = registry.sha256sum
    monkeypatch.setattr(registry, "sha256sum", lambda p: reads.append(p) or real(p))
    sha = hashlib.sha256(w.read_bytes()).hexdigest()
    assert M.content_digest(link, cache) == sha and M.content_digest(w, cache) == sha
    assert len(reads) == 1  # the link is its target: one entry, read once
    _rewrite(w)
    assert M.content_digest(link, cache) == sha and len(reads) == 2
    _rewrite(w, b"other" * 10)
    assert M.content_digest(link, cache) == hashlib.sha256(b"other" * 10).hexdigest()
