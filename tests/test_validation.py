"""The label-free validation's synthetic anomalies (hscvad.evaluation.validation): what each alteration
does to a track's velocity descriptor, and the clip-level AUC that compares settings."""

import numpy as np
import pytest
from test_velocity import EDGES, _moving_boxes, _person_track, col

from hscvad.evaluation.validation import GLIDE_COVERAGE, clip_auc, roc_auc, synthetic_rows
from hscvad.velocity import velocity_descriptor


def _descriptor(frame, track, boxes, stats):
    return velocity_descriptor(frame, track, boxes, stats, 16, 8, EDGES)[2][0]


@pytest.mark.parametrize("speed", [0.7, 3.0])
def test_fast_doubles_the_track_and_the_flow(speed):
    t, boxes, stats = _moving_boxes(speed, 30.0)
    track = np.ones_like(t)
    orig = _descriptor(t, track, boxes, stats)
    b, st = synthetic_rows("fast", t, track, boxes, stats, 8, EDGES)
    fast = _descriptor(t, track, b, st)
    for c in ("speed", "mag", "fx", "fy", "mag_rel", "hist_rel_1"):
        assert fast[col(c)] == pytest.approx(2 * orig[col(c)], rel=1e-4), c
    assert fast[col("aspect")] == pytest.approx(orig[col("aspect")], rel=1e-6)
    # every pixel moves at 2 x speed: the share above each edge e is the share now above e / 2
    for e in EDGES[1:]:
        assert fast[col(f"above_{e:g}")] == float(2 * speed > e)
    with pytest.raises(ValueError, match="unknown synthetic anomaly"):
        synthetic_rows("teleport", t, track, boxes, stats, 8, EDGES)


def test_glide_makes_a_walker_a_rigid_body_at_one_and_a_half_times_its_speed():
    frame, track, boxes, stats = _person_track(True)
    walk = _descriptor(frame, track, boxes, stats)
    b, st = synthetic_rows("glide", frame, track, boxes, stats, 8, EDGES)
    glide = _descriptor(frame, track, b, st)
    assert glide[col("speed")] == pytest.approx(1.5 * walk[col("speed")], rel=1e-5)
    assert glide[col("coherence")] == pytest.approx(1.0, abs=1e-6) and walk[col("coherence")] < 0.97
    assert glide[col("aspect_rate")] == pytest.approx(0.0, abs=1e-9) and walk[col("aspect_rate")] > 0.02
    assert glide[col("mag")] == pytest.approx(GLIDE_COVERAGE * 3.0, rel=1e-5)  # 1.5 x 2 px / frame on half the box
    h = boxes[0, 3] - boxes[0, 1]
    assert (b[:, 3] - b[:, 1] == h).all() and np.ptp(b[:, 2] - b[:, 0]) == 0


def test_clip_auc_sees_a_raised_object_and_ignores_an_unchanged_one():
    rng = np.random.default_rng(0)
    clip = np.repeat(np.arange(200), 3)
    fused = rng.normal(size=len(clip))
    moving = np.ones(len(clip), bool)
    auc_high, n = clip_auc(fused, fused + 10.0, moving, clip, seed=0)
    assert n == 200 and auc_high > 0.95
    auc_same, _ = clip_auc(fused, fused, moving, clip, seed=0)
    assert auc_same == pytest.approx(0.5, abs=1e-9)
    assert roc_auc(np.array([2.0, 3.0]), np.array([1.0, 2.0])) == pytest.approx(0.875)


def test_frame_auc_places_events_takes_the_kinds_in_turn_and_counts_the_spill_over():
    """Two clips of every ten hold an event; successive events take the kinds (rows) in turn; the
    smoothing carries a raised clip's score onto its normal neighbours, which costs AUC."""
    from hscvad.evaluation.validation import frame_auc

    rng = np.random.default_rng(1)
    T, n_videos, n_clips = 4, 3, 20
    video = np.repeat(np.arange(n_videos), n_clips)
    clip = np.tile(np.arange(n_clips), n_videos)
    fused = rng.normal(size=len(clip))
    n_frames = np.full(n_videos, n_clips * T)
    moving = np.ones(len(clip), bool)
    both = np.stack([fused + 10, fused + 10])
    auc_both, n = frame_auc(fused, both, moving, video, clip, n_frames, T, sigma=0.0, seed=0)
    assert n == n_videos * 4 and auc_both == pytest.approx(1.0)  # clips 0, 1, 10, 11 of each video
    # the second kind (events at clips 10-11) leaves its objects as they were: those events are missed
    auc_half, _ = frame_auc(fused, np.stack([fused + 10, fused]), moving, video, clip, n_frames, T, 0.0, 0)
    assert 0.6 < auc_half < 0.9
    # smoothing spreads the raised clips over their neighbours: normal frames beside events rise
    auc_smooth, _ = frame_auc(fused, both, moving, video, clip, n_frames, T, sigma=8.0, seed=0)
    assert auc_smooth < auc_both - 0.01
    # clips without a moving object are never events
    none, n_none = frame_auc(fused, both, np.zeros(len(clip), bool), video, clip, n_frames, T, 0.0, 0)
    assert n_none == 0 and np.isnan(none)
