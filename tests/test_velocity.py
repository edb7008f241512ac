"""The velocity stream: per-box flow statistics, the velocity descriptor on synthetic moving boxes
with known speed and direction, and the flow and velocity rules on tiny real and synthetic videos."""

import json

import numpy as np
import pytest
from conftest import PED2, need_shared

from hscvad.h5store import read_arrays, write_store
from hscvad.models.registry import Runtime
from hscvad.velocity import GAIT_COLUMNS, box_flow_stats, descriptor_names, flow_stat_names, velocity_descriptor

EDGES = [0.5, 1.0, 2.0, 4.0, 8.0]
NAMES = descriptor_names(8, EDGES)


def col(name):
    return NAMES.index(name)


def test_box_flow_stats_match_a_direct_computation():
    rng = np.random.default_rng(0)
    flow = rng.normal(0, 2, (40, 60, 2)).astype(np.float32)
    boxes = np.array([[3.2, 4.7, 20.1, 30.0], [0, 0, 60, 40], [55, 35, 70, 50]])
    got = box_flow_stats(flow, boxes, 8, EDGES)
    names = flow_stat_names(8, EDGES)
    for b, row in zip(boxes, got):
        x0, y0 = int(np.floor(b[0])), int(np.floor(b[1]))
        x1, y1 = min(int(np.ceil(b[2])), 60), min(int(np.ceil(b[3])), 40)
        f = flow[y0:y1, x0:x1].reshape(-1, 2).astype(np.float64)
        mag = np.hypot(f[:, 0], f[:, 1])
        ang = np.mod(np.arctan2(-f[:, 1], f[:, 0]), 2 * np.pi)
        hist = np.bincount(np.minimum((ang / (2 * np.pi) * 8).astype(int), 7), mag, 8) / len(mag)
        want = [f[:, 0].mean(), f[:, 1].mean(), mag.mean(), (mag**2).mean(), *hist, *[(mag > e).mean() for e in EDGES]]
        np.testing.assert_allclose(row, want, rtol=1e-4, atol=1e-5, err_msg=str(dict(zip(names, row))))


def _moving_boxes(speed, direction_deg, n_frames=16, size=(20, 10)):
    """One track moving at ``speed`` px/frame in ``direction_deg`` (0 = right, 90 = up), and the
    flow statistics of a box whose every pixel moves that way."""
    a = np.deg2rad(direction_deg)
    v = np.array([np.cos(a), -np.sin(a)]) * speed  # image y points down
    t = np.arange(n_frames)
    cx, cy = 100 + v[0] * t, 100 + v[1] * t
    h, w = size
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
    flow = np.zeros((300, 300, 2), np.float32)
    flow[..., 0], flow[..., 1] = v
    stats = np.concatenate([box_flow_stats(flow, b[None], 8, EDGES) for b in boxes])
    return t, boxes, stats


@pytest.mark.parametrize("speed,direction,bin_", [(3.0, 0.0, 0), (1.5, 90.0, 2), (6.0, 200.0, 4), (0.7, 300.0, 6)])
def test_descriptor_of_a_box_moving_at_known_speed_and_direction(speed, direction, bin_):
    t, boxes, stats = _moving_boxes(speed, direction)
    sample, uniq, feat = velocity_descriptor(t, np.ones_like(t), boxes, stats, 16, 8, EDGES)
    assert feat.shape == (1, len(NAMES)) and (sample == 0).all() and uniq.tolist() == [[0, 1]]
    f = feat[0]
    assert f[col("mag")] == pytest.approx(speed, rel=1e-4)
    assert f[col("speed")] == pytest.approx(speed, rel=1e-4)  # the track's centre speed
    assert f[col("speed_rel")] == pytest.approx(speed / 20, rel=1e-4) and f[col("mag_rel")] == pytest.approx(speed / 20)
    hist = f[[col(f"hist_{k}") for k in range(8)]]
    assert int(np.argmax(hist)) == bin_ and hist[bin_] == pytest.approx(speed, rel=1e-4)
    a = np.deg2rad(direction)
    assert f[col("vx")] == pytest.approx(speed * np.cos(a), abs=1e-4)
    assert f[col("vy")] == pytest.approx(-speed * np.sin(a), abs=1e-4)
    assert f[col("aspect")] == pytest.approx(0.5) and f[col("scale_rate")] == pytest.approx(0.0, abs=1e-6)
    for e in EDGES:
        assert f[col(f"above_{e:g}")] == (1.0 if speed > e else 0.0)


def test_descriptor_separates_tracks_and_clips_and_orders_samples_like_appearance():
    from hscvad.features import object_samples

    t1, b1, s1 = _moving_boxes(1.0, 0.0, n_frames=32)
    t2, b2, s2 = _moving_boxes(4.0, 180.0, n_frames=32)
    frame = np.concatenate([t1, t2])
    track = np.concatenate([np.full(32, 7), np.full(32, 3)])
    sample, uniq, feat = velocity_descriptor(frame, track, np.concatenate([b1, b2]), np.concatenate([s1, s2]), 16, 8,
                                             EDGES)
    ref_sample, ref_uniq = object_samples(frame, track, 16)
    assert (sample == ref_sample).all() and (uniq == ref_uniq).all()
    assert uniq.tolist() == [[0, 3], [0, 7], [1, 3], [1, 7]]
    np.testing.assert_allclose(feat[:, col("speed")], [4, 1, 4, 1], rtol=1e-4)
    np.testing.assert_allclose(feat[:, col("vx")], [-4, 1, -4, 1], atol=1e-4)


def test_single_box_sample_has_zero_track_speed():
    t, boxes, stats = _moving_boxes(2.0, 0.0, n_frames=1)
    _, _, feat = velocity_descriptor(t, np.ones(1), boxes, stats, 16, 8, EDGES)
    assert feat[0, col("speed")] == 0 and feat[0, col("mag")] == pytest.approx(2.0)


def _tracks_file(path, boxes_per_frame, n_frames, hw):
    frame, tid, box = [], [], []
    for t in range(n_frames):
        for k, b in boxes_per_frame(t):
            frame.append(t), tid.append(k), box.append(b)
    attrs = {"dataset": "d", "split": "train", "video": "v", "n_frames": n_frames, "height": hw[0], "width": hw[1],
             "fps": 25.0, "class_names": ["person", "bicycle"]}
    with write_store(path, "tracks", attrs) as f:
        f["frame"] = np.array(frame, np.int32)
        f["track_id"] = np.array(tid, np.int32)
        f["box"] = np.array(box, np.float32).reshape(-1, 4)
        f["score"] = np.ones(len(frame), np.float32)
        f["class_id"] = np.zeros(len(frame), np.int16)


FLOW_PARAMS = {"flow": {"backend": "dis", "orientation_bins": 8, "magnitude_edges": EDGES, "dis": {"preset": "medium"}}}


def _run_flow_and_velocity(tmp_path, ds_cfg, video, tracks, backend="dis"):
    from hscvad.stages import flow as flow_stage
    from hscvad.stages import velocity as velocity_stage

    params = json.loads(json.dumps(FLOW_PARAMS))
    params["flow"]["backend"] = backend
    params["flow"]["farneback"] = {}
    flow_stage.run("d", ds_cfg, "train", video, str(tracks), str(tmp_path / "flow.h5"), params, Runtime("cpu", 1))
    velocity_stage.run(str(tracks), str(tmp_path / "flow.h5"), str(tmp_path / "vel.h5"),
                       {"clip_length": 16, "velocity": {"parts": ["flow", "flow_rel", "track"], "log_scale_px": 0,
                                                        "log_scale_rel": 0}})
    return read_arrays(tmp_path / "flow.h5", "flow"), read_arrays(tmp_path / "vel.h5", "velocity")


@need_shared(PED2 / "training" / "frames" / "01")
@pytest.mark.shared
@pytest.mark.parametrize("backend,tol", [("dis", 0.25), ("farneback", 0.45)])
def test_flow_rule_recovers_a_known_shift_of_real_ped2_frames(tmp_path, backend, tol):
    """A real Ped2 frame panned by 2 px/frame to the left (its content moves right): the flow rule
    must measure ~2 px/frame to the right inside a box on it (Farneback, measured 1.62 here,
    underestimates on Ped2's low-texture lawn, hence its wider tolerance)."""
    import cv2

    src = cv2.imread(str(PED2 / "training" / "frames" / "01" / "000.jpg"))
    root = tmp_path / "ds"
    (root / "train" / "v").mkdir(parents=True)
    (root / "test").mkdir()
    for t in range(20):
        cv2.imwrite(str(root / "train" / "v" / f"{t:03d}.png"), src[:, 60 - 2 * t : 60 - 2 * t + 280])
    box = [60.0, 60.0, 200.0, 180.0]
    _tracks_file(tmp_path / "tracks.h5", lambda t: [(1, box)], 20, (240, 280))
    (fl, fa), (vel, va) = _run_flow_and_velocity(tmp_path, {"adapter": "folder", "root": str(root)}, "v",
                                                  tmp_path / "tracks.h5", backend)
    names = fa["columns"]
    fx = fl["stats"][:, names.index("fx")]
    assert fl["stats"].shape == (20, len(names)) and fa["n_flow_fields"] == 19
    assert np.median(fx) == pytest.approx(2.0, abs=tol), fx
    assert np.abs(np.median(fl["stats"][:, names.index("fy")])) < 0.25
    # the gait columns of real image flow: a rigid pan is one coherent motion with a steady box
    tr, _ = read_arrays(tmp_path / "tracks.h5", "tracks")
    gait = velocity_descriptor(tr["frame"], tr["track_id"], tr["box"], fl["stats"], 16, 8, EDGES)[2]
    assert (gait[:, col("coherence")] > 0.95).all() and (gait[:, col("aspect_rate")] == 0).all()
    assert (gait[:, col("resid_rel")] < 0.5 * gait[:, col("mag_rel")]).all()
    assert vel["feature"].shape == (2, 32) and va["columns"] == [c for c in NAMES if c not in GAIT_COLUMNS]
    assert (vel["feature"][:, NAMES.index("hist_0")] > vel["feature"][:, NAMES.index("hist_4")]).all()


@need_shared(PED2 / "testing" / "frames" / "01")
@pytest.mark.shared
def test_flow_rule_on_real_consecutive_frames_sees_walkers_not_the_background(tmp_path):
    """Ped2 test video 01's first 20 real frames: a static background patch moves < 0.2 px/frame,
    and the whole frame, which holds walking people, moves somewhere."""
    root = tmp_path / "ds"
    (root / "train").mkdir(parents=True)
    (root / "test").mkdir()
    (root / "train" / "v").mkdir()
    import shutil

    for t in range(20):
        shutil.copy(PED2 / "testing" / "frames" / "01" / f"{t:03d}.jpg", root / "train" / "v" / f"{t:03d}.jpg")
    sky = [0.0, 0.0, 60.0, 30.0]  # top-left corner: the lawn, no walkers in these frames
    _tracks_file(tmp_path / "tracks.h5", lambda t: [(1, sky), (2, [0.0, 0.0, 360.0, 240.0])], 20, (240, 360))
    ds_cfg = {"adapter": "folder", "root": str(root)}
    (fl, fa), _ = _run_flow_and_velocity(tmp_path, ds_cfg, "v", tmp_path / "tracks.h5")
    mag = fl["stats"][:, fa["columns"].index("above_0.5")]
    assert mag[0::2].max() < 0.05  # the background patch: (almost) no pixel faster than 0.5 px/frame
    assert mag[1::2].min() > mag[0::2].max()  # the whole frame: the walkers move
    assert np.isfinite(fl["stats"]).all()
    # walkers going both ways inside one box: far from one coherent motion, unlike the pan above
    tr, _ = read_arrays(tmp_path / "tracks.h5", "tracks")
    _, uniq, gait = velocity_descriptor(tr["frame"], tr["track_id"], tr["box"], fl["stats"], 16, 8, EDGES)
    whole = gait[uniq[:, 1] == 2]
    assert (whole[:, col("coherence")] < 0.9).all()


@pytest.mark.parametrize("n_frames,hw,message", [
    (6, (40, 64), r"train/v: frame 0 is 64x48, the track file .* says 64x40"),
    (8, (48, 64), r"train/v: 6 frames decoded, its track file .* holds 8: rerun detect_track"),
])
def test_flow_rule_refuses_a_video_that_disagrees_with_its_track_file(tmp_path, n_frames, hw, message):
    """Frames of another size, or fewer frames, than the track file says: an error naming both,
    and no flow file left behind."""
    from conftest import write_frames

    root = tmp_path / "ds"
    write_frames(root / "train" / "v", 6, hw=(48, 64))
    (root / "test").mkdir()
    _tracks_file(tmp_path / "tracks.h5", lambda t: [(1, [5.0, 5.0, 20.0, 20.0])], n_frames, hw)
    with pytest.raises(ValueError, match=message):
        _run_flow_and_velocity(tmp_path, {"adapter": "folder", "root": str(root)}, "v", tmp_path / "tracks.h5")
    assert not (tmp_path / "flow.h5").exists() and not list(tmp_path.glob(".*.part"))


def test_velocity_parts_select_columns():
    from hscvad.velocity import columns

    assert [c for c, k in zip(NAMES, columns(NAMES, ["track"])) if k] == [
        "speed", "speed_rel", "vx", "vy", "scale_rate", "aspect"]
    assert columns(NAMES, ["flow", "flow_rel", "track", "gait"]).all()
    assert not columns(NAMES, ["flow", "flow_rel", "track"])[[col(c) for c in GAIT_COLUMNS]].any()
    assert columns(NAMES, ["flow_rel"]).sum() == 9
    assert [c for c, k in zip(NAMES, columns(NAMES, ["gait"], ["aspect_rate", "coherence"])) if k] == [
        "coherence", "aspect_rate"]
    with pytest.raises(ValueError, match="velocity.gait_columns: unknown"):
        columns(NAMES, ["gait"], ["gait"])
    with pytest.raises(ValueError, match="velocity.parts: unknown part"):
        columns(NAMES, ["speed"])


def test_log_scale_and_column_groups():
    from hscvad.velocity import column_groups, log_scale

    groups = column_groups(NAMES)
    assert groups[col("hist_3")] == "flow_px" and groups[col("above_2")] == "share"
    assert groups[col("hist_rel_3")] == "flow_rel" and groups[col("speed")] == groups[col("vx")] == "track_px"
    x = np.zeros((2, len(NAMES)), np.float32)
    x[0, col("speed")], x[0, col("vx")], x[0, col("above_1")], x[0, col("speed_rel")] = 0.75, -0.75, 0.5, 0.03
    y = log_scale(x, NAMES, 0.25, 0.01)
    assert y[0, col("speed")] == pytest.approx(np.log(4.0)) and y[0, col("vx")] == pytest.approx(-np.log(4.0))
    assert y[0, col("speed_rel")] == pytest.approx(np.log(4.0)) and y[0, col("above_1")] == 0.5
    assert (y[1] == 0).all() and (log_scale(x, NAMES, 0, 0) == x).all()


def test_group_normalisation_pools_the_spread_of_a_unit_group():
    from hscvad.hsc.train import prepare_features, standard_stats

    rng = np.random.default_rng(0)
    f = np.stack([rng.normal(0, 1, 500), rng.normal(0, 0.001, 500), rng.normal(0, 5, 500)], 1)
    per_column = standard_stats(f)
    grouped = standard_stats(f, ["a", "a", "b"])
    assert per_column["std"][1] == pytest.approx(0.001, rel=0.1)
    assert grouped["std"][0] == grouped["std"][1] == pytest.approx(np.sqrt((1 + 1e-6) / 2), rel=0.1)
    assert grouped["std"][2] == pytest.approx(5, rel=0.1)
    odd = np.array([[0.0, 0.5, 0.0]])  # 0.5 along a direction never seen in training
    assert prepare_features(odd, "standard", per_column)[0, 1] > 400
    assert prepare_features(odd, "group", grouped)[0, 1] == pytest.approx(0.5 / np.sqrt(0.5), rel=0.1)


def test_box_flow_stats_in_chunks_equal_one_pass():
    """Boxes are summed in chunks of at most max_pixels pixels; a chunk boundary changes nothing,
    a box larger than a chunk included."""
    rng = np.random.default_rng(3)
    flow = rng.normal(0, 3, (50, 70, 2)).astype(np.float32)
    boxes = np.array([[3, 4, 20, 30], [0, 0, 70, 50], [55, 35, 70, 50], [10, 10, 12, 11], [30, 5, 60, 45]], float)
    whole = box_flow_stats(flow, boxes, 8, EDGES)
    for max_pixels in (1, 64, 500, 4000):
        np.testing.assert_array_equal(box_flow_stats(flow, boxes, 8, EDGES, max_pixels=max_pixels), whole)


def _person_track(walk: bool, n_frames=16, speed=2.0, hw=(120, 200)):
    """A 40 x 20 px box moving right at ``speed`` px / frame over a still background, its object
    filling the box's middle half. ``walk``: the lower half (legs) alternates between a stance
    (no flow) and a swing (forward and up, 2x the pace), the upper half's arms swing back and
    forth against the body, and the box's width breathes with the stride (period 8 frames);
    otherwise (a glide) every object pixel moves with the box and the box keeps its shape. Returns
    (frames, track ids, boxes, flow statistics) from real flow fields through box_flow_stats."""
    t = np.arange(n_frames)
    h = 40.0
    w = 20.0 + (3.0 * np.sin(2 * np.pi * t / 8) if walk else 0.0 * t)
    cx, cy = 40 + speed * t, 60.0
    boxes = np.stack([cx - w / 2, np.full(n_frames, cy - h / 2), cx + w / 2, np.full(n_frames, cy + h / 2)], 1)
    stats = []
    for i in range(n_frames):
        flow = np.zeros((*hw, 2), np.float32)
        x0, x1 = int(cx[i] - 5), int(cx[i] + 5)
        y0, ym, y1 = int(cy - h / 2), int(cy), int(cy + h / 2)
        flow[y0:y1, x0:x1] = (speed, 0.0)
        if walk:
            flow[ym:y1, x0:x1] = (2 * speed, -1.0) if i % 2 else (0.0, 0.0)
            swing = speed * (1.5 if (i // 2) % 2 else -1.5)
            flow[y0 + 8 : ym, x0 - 3 : x0] = (speed + swing, 0.5)
        stats.append(box_flow_stats(flow, boxes[i][None], 8, EDGES))
    return t, np.ones_like(t), boxes, np.concatenate(stats)


def test_gait_columns_tell_a_glide_from_a_walk_at_the_same_speed():
    glide = velocity_descriptor(*_person_track(False), 16, 8, EDGES)[2][0]
    walk = velocity_descriptor(*_person_track(True), 16, 8, EDGES)[2][0]
    assert glide[col("speed")] == pytest.approx(2.0, rel=1e-6) and walk[col("speed")] == pytest.approx(2.0, rel=1e-6)
    # a rigid translation: every moving pixel moves one way, the box keeps its shape, the flow is steady
    assert glide[col("coherence")] == pytest.approx(1.0, abs=1e-6)
    assert glide[col("aspect_rate")] == pytest.approx(0.0, abs=1e-9)
    assert glide[col("flow_rate_rel")] == pytest.approx(0.0, abs=1e-3)
    # the walk: parts swing against each other, the box breathes, the flow pulses
    assert walk[col("coherence")] < 0.97
    assert walk[col("resid_rel")] > 1.3 * glide[col("resid_rel")]
    assert walk[col("aspect_rate")] > 0.02
    assert walk[col("flow_rate_rel")] > 0.01
    # alone in its clip, an object is as fast as its crowd
    assert glide[col("speed_vs_crowd")] == 0.0


def test_speed_vs_crowd_compares_an_object_with_the_others_of_its_clip():
    rows = []
    for track, speed in [(1, 0.5), (2, 0.5), (3, 4.0)]:
        t, boxes, stats = _moving_boxes(speed, 0.0)
        rows.append((t, np.full(len(t), track), boxes + [0, 30 * track, 0, 30 * track], stats))
    frame, track, boxes, stats = (np.concatenate(x) for x in zip(*rows))
    _, uniq, feat = velocity_descriptor(frame, track, boxes, stats, 16, 8, EDGES)
    vs = dict(zip(uniq[:, 1], feat[:, col("speed_vs_crowd")]))
    s_slow, s_fast = np.log(0.5 / 20 + 0.01), np.log(4.0 / 20 + 0.01)  # speed_rel = speed / h, h = 20
    assert vs[3] == pytest.approx(s_fast - s_slow, rel=1e-5) and vs[1] == pytest.approx((s_slow - s_fast) / 2, rel=1e-5)
