"""RBDC / TBDC (Ramachandra and Jones, WACV 2020) on hand-made cases with known answers, ground-truth
regions and tracks from masks, and object overlap with the annotated anomaly."""

import numpy as np
import pytest

from hscvad.evaluation.localisation import (
    frame_box_overlap,
    link_tracks,
    mask_regions,
    object_mask_overlap,
    own_boxes,
    rbdc_tbdc,
)

BOX = [10.0, 10.0, 20.0, 20.0]


def _gt(frames, box=BOX):
    f = np.asarray(frames)
    b = np.tile(np.asarray(box, float), (len(f), 1))
    return f, b, link_tracks(f, b)


def test_a_perfect_detector_scores_one():
    gf, gb, gt = _gt(range(4))
    r = rbdc_tbdc(np.arange(4), gb, np.full(4, 0.9), gf, gb, gt, n_frames=10)
    assert r["rbdc"] == pytest.approx(1.0) and r["tbdc"] == pytest.approx(1.0)
    assert r["n_regions"] == 4 and r["n_tracks"] == 1


def test_false_positive_before_the_missed_regions():
    # 4 regions of one track; the detector finds frame 0 at 0.9, the others only at 0.1, and
    # puts a false positive (score 0.5) in frame 5; 10 frames. Curve: (0, .25) -> (.1, .25) -> (.1, 1)
    gf, gb, gt = _gt(range(4))
    det_f = np.array([0, 1, 2, 3, 5])
    det_b = np.array([BOX] * 4 + [[50, 50, 60, 60]], float)
    r = rbdc_tbdc(det_f, det_b, np.array([0.9, 0.1, 0.1, 0.1, 0.5]), gf, gb, gt, n_frames=10)
    assert r["rbdc"] == pytest.approx(0.1 * 0.25 + 0.9 * 1.0)
    assert r["tbdc"] == pytest.approx(1.0)  # one region of four (>= 10 %) detects the track at 0.9


def test_track_needs_alpha_of_its_regions():
    # a 20-region track: 10 % = 2 regions must be detected; the second one only comes at 0.3, after a
    # false positive at 0.5 in a 10-frame video
    gf, gb, gt = _gt(range(20))
    det_f = np.array([0, 1, 25])
    det_b = np.array([BOX, BOX, [50, 50, 60, 60]], float)
    r = rbdc_tbdc(det_f, det_b, np.array([0.9, 0.3, 0.5]), gf, gb, gt, n_frames=10)
    assert r["tbdc"] == pytest.approx(0.9)  # 0 until fp = .1, then 1
    assert r["rbdc"] == pytest.approx(0.1 * 0.05 + 0.9 * 0.1)


def test_iou_below_beta_is_a_false_positive_not_a_detection():
    gf, gb, gt = _gt([0])
    shifted = np.array([[19.0, 19.0, 29.0, 29.0]])  # IoU 1/199 < 0.1
    r = rbdc_tbdc(np.array([0]), shifted, np.array([1.0]), gf, gb, gt, n_frames=1)
    assert r["rbdc"] == 0.0 and r["tbdc"] == 0.0
    near = np.array([[12.0, 12.0, 22.0, 22.0]])  # IoU 64/136 >= 0.1
    assert rbdc_tbdc(np.array([0]), near, np.array([1.0]), gf, gb, gt, n_frames=1)["rbdc"] == 1.0


def test_curve_is_cut_at_max_fpr():
    # 4 false positives per frame before the only detection: nothing is found below 1 FP/frame ...
    gf, gb, gt = _gt([0])
    det_f = np.array([0, 0, 0, 0, 0])
    det_b = np.array([[50, 50, 60, 60]] * 4 + [BOX], float)
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    assert rbdc_tbdc(det_f, det_b, scores, gf, gb, gt, n_frames=1)["rbdc"] == 0.0
    # ... but with max_fpr = 8 the region is found from 4 FP/frame on: (8 - 4) / 8
    assert rbdc_tbdc(det_f, det_b, scores, gf, gb, gt, n_frames=1, max_fpr=8.0)["rbdc"] == pytest.approx(0.5)


def test_no_ground_truth_gives_no_figure():
    r = rbdc_tbdc(np.array([0]), np.array([BOX]), np.array([1.0]), np.zeros(0, int), np.zeros((0, 4)),
                  np.zeros(0, int), n_frames=1)
    assert r["rbdc"] is None and r["tbdc"] is None


def test_regions_and_tracks_from_masks():
    m = np.zeros((4, 40, 40), bool)
    m[0, 10:20, 10:20] = True  # object A
    m[1, 11:21, 12:22] = True  # A moved
    m[1, 30:36, 30:36] = True  # object B appears
    m[1, 0:2, 0:2] = True  # 4 px speck: below min_area
    m[3, 10:20, 10:20] = True  # A again after a gap: a new track
    f, b, = mask_regions(m, min_area=10)
    assert f.tolist() == [0, 1, 1, 3]
    assert b.tolist()[0] == [10, 10, 20, 20] and [30, 30, 36, 36] in b.tolist()
    t = link_tracks(f, b)
    a1 = b.tolist().index([12, 11, 22, 21])
    b1 = b.tolist().index([30, 30, 36, 36])
    assert t[0] == t[a1] and t[b1] != t[0] and t[3] not in (t[0], t[b1])


def test_box_overlap_with_the_mask_of_its_own_frame():
    m = np.zeros((4, 30, 30), bool)
    m[1, 0:10, 0:10] = True
    boxes = np.array([[0, 0, 10, 10], [0, 0, 20, 10], [0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 10, 10]], float)
    got = frame_box_overlap(m, np.array([1, 1, 0, 1, 3]), boxes, chunk=1)
    np.testing.assert_allclose(got, [1.0, 0.5, 0.0, 0.0, 0.0])  # frame 0's box is where frame 1's mask is
    # a box against a mask covering all but one of its pixels
    m[3, :, :] = True
    m[3, 29, 29] = False
    np.testing.assert_allclose(frame_box_overlap(m, np.array([3]), np.array([[20.0, 20, 30, 30]])), [0.99])
    with pytest.raises(ValueError, match="outside the 4 frames"):
        frame_box_overlap(m, np.array([4]), boxes[:1])


def test_a_walker_passed_by_a_cyclist_is_not_an_abnormal_object():
    """Over a 4-frame clip the cyclist's masks sweep along its path; the walker stands on that path,
    never under the mask of its own frame. The union of the clip's masks would cover its box."""
    m = np.zeros((4, 20, 60), bool)
    for t in range(4):
        m[t, 5:15, 10 * t : 10 * t + 10] = True  # the cyclist, one box width per frame
    frame = np.r_[np.arange(4), np.arange(4), np.arange(4)]
    track = np.repeat([7, 3, 5], 4)
    box = np.r_[[[10.0 * t, 5, 10.0 * t + 10, 15] for t in range(4)],  # 7: the cyclist itself
                [[30.0, 5, 40, 15]] * 4,  # 3: a walker standing where the cyclist is at frame 3
                [[50.0, 5, 60, 15]] * 4]  # 5: a walker beyond the cyclist's path
    got = object_mask_overlap(m, 4, frame, track, box, np.array([0, 0, 0, 1]), np.array([7, 3, 5, 7]))
    np.testing.assert_allclose(got, [1.0, 0.25, 0.0, 0.0])  # object (clip 1, track 7) has no box: 0
    union = m.any(0)
    assert union[5:15, 30:40].all()  # the clip union would cover the walker's box entirely



def test_a_region_has_a_box_of_its_own_only_where_its_anomaly_is_boxed():
    """Frame 0: the rider is boxed (its box inside the mask) and a walker grazes the mask; frame 1:
    the rider is missed and only the grazing walker overlaps the region (IoU >= beta, but mostly
    outside the mask); frame 2: nothing is boxed."""
    m = np.zeros((3, 40, 60), bool)
    m[:, 0:40, 10:30] = True  # the rider's mask in every frame
    frame = np.array([0, 0, 1])
    box = np.array([[11.0, 1, 29, 39],  # rider, inside the mask
                    [25.0, 0, 45, 40],  # walker beside it: IoU 0.14 with the region, a quarter inside
                    [25.0, 0, 45, 40]])
    rf, rb = mask_regions(m)
    region_has, box_is = own_boxes(frame_box_overlap(m, frame, box), rf, rb, frame, box, beta=0.1)
    np.testing.assert_array_equal(rf, [0, 1, 2])
    np.testing.assert_array_equal(region_has, [True, False, False])
    np.testing.assert_array_equal(box_is, [True, False, False])  # the rider's box; never the walker's
