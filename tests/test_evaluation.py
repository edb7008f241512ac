"""AUC metrics against scikit-learn and the two evaluation protocols (docs/method.md §5, §8)."""

import json
import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from hscvad.evaluation import protocols as P
from hscvad.evaluation.objects import clip_max, track_mean


def test_micro_and_macro_auc_against_sklearn():
    rng = np.random.default_rng(0)
    labels = [rng.integers(0, 2, 50), np.zeros(30, int), rng.integers(0, 2, 40)]
    scores = [rng.random(50) + 0.5 * labels[0], rng.random(30), rng.random(40)]
    assert P.micro_auc(scores, labels) == pytest.approx(roc_auc_score(np.concatenate(labels), np.concatenate(scores)))
    macro, n = P.macro_auc(scores, labels)
    assert n == 2  # the all-normal video is left out
    assert macro == pytest.approx((roc_auc_score(labels[0], scores[0]) + roc_auc_score(labels[2], scores[2])) / 2)
    assert P.micro_auc([np.ones(3)], [np.zeros(3)]) is None


def naive_reference_smooth(x, window, sigma):
    support = list(range(1, window))
    mu = support[len(support) // 2 - 1]
    filt = [1 / (sigma * math.sqrt(2 * math.pi)) * math.exp(-0.5 * ((s - mu) / sigma) ** 2) for s in support]
    p = len(filt) // 2
    padded = list(x[:p]) + list(x) + list(x[-p:])
    n_out = len(padded) - len(filt) + 1
    return np.array([sum(padded[i + k] * filt[k] for k in range(len(filt))) for i in range(n_out)])


@pytest.mark.parametrize("window,sigma", [(60, 6), (70, 15), (9, 2)])
def test_reference_smoothing_matches_naive(window, sigma):
    x = np.random.default_rng(1).random(200)
    got = P.reference_smooth(x, window, sigma)
    exp = naive_reference_smooth(x, window, sigma)
    assert got.shape == x.shape
    assert np.allclose(got, exp[: len(x)])


def test_reference_minmax_uses_positive_scores_and_clips():
    x = np.array([0.0, 2.0, 4.0, 6.0])
    assert np.allclose(P.reference_minmax(x), [0.0, 0.0, 0.5, 1.0])


def test_reference_protocol_drops_tail_frames_and_crosses_borders():
    T = 4
    raw = {"appearance": [np.r_[np.full(8, 5.0), np.full(3, 9.0)], np.full(9, 1.0)]}
    scores, keep = P.reference_protocol(raw, T, window=5, sigma=1.0)
    assert [len(k) for k in keep] == [8, 8]
    assert [len(s) for s in scores] == [8, 8]
    # smoothing crosses the border: video 2's first frame is pulled up by video 1
    assert scores[1][0] > scores[1][-1]


def test_reference_fusion_in_training_units_weights_streams_by_their_normal_spread():
    # stream a separates the abnormal frames 4-5 by 20 training stds, but its one huge score (100)
    # squeezes min-max's scale, so that frame 4 rises by only 0.02 of the range; stream b is noise
    # over its whole range. Equal weights let b's noise decide; in training units a's margin of 20
    # stds outweighs b's noise of at most 2.
    a = np.array([1.0, 1.1, 1.0, 1.2, 3.0, 100.0, 1.1, 1.0])
    b = np.array([1.0, 3.0, 2.0, 3.0, 2.0, 1.5, 2.5, 1.0])
    raw = {"a": [a], "b": [b]}
    units = {"a": 0.1, "b": 1.0}
    assert np.allclose(P.reference_minmax(a, 0.1), (a - 1.0) / 0.1)
    equal, _ = P.reference_protocol(raw, 8, window=2, sigma=1.0)  # window 2: no smoothing
    spread, _ = P.reference_protocol(raw, 8, window=2, sigma=1.0, units=units)
    assert np.allclose(spread[0], ((a - 1.0) / 0.1 + (b - 1.0) / 1.0) / 2)
    assert np.allclose(equal[0], ((a - 1.0) / 99.0 + (b - 1.0) / 2.0) / 2)
    y = np.array([0, 0, 0, 0, 1, 1, 0, 0])
    assert P.micro_auc(spread, [y]) == 1.0
    assert P.micro_auc(equal, [y]) < 0.8
    # one stream: units only rescale, so its scores are plain min-max's times a constant
    one, _ = P.reference_protocol({"a": [a]}, 8, window=2, sigma=1.0, units={"a": 0.1})
    alone, _ = P.reference_protocol({"a": [a]}, 8, window=2, sigma=1.0)
    assert np.allclose(one[0] * 0.1, alone[0] * 99.0)


def test_strict_protocol_uses_training_stats_and_stays_within_videos():
    raw = {"appearance": [np.full(20, 10.0), np.r_[np.full(10, np.nan), np.full(10, 2.0)]]}
    stats = {"appearance": {"mean": 2.0, "std": 2.0, "min": 0.0}}
    out = P.strict_protocol(raw, stats, sigma=3.0)
    assert np.allclose(out[0], 4.0)  # (10 - 2) / 2, unaffected by the other video
    assert np.allclose(out[1][:3], -1.0, atol=1e-2)  # no-object frames: lowest training score (0 - 2) / 2
    assert len(out[1]) == 20  # every frame scored


def test_fusion_is_equal_weight_mean_of_normalised_streams():
    raw = {"a": [np.array([2.0, 4.0])], "b": [np.array([0.0, 8.0])]}
    stats = {"a": {"mean": 2.0, "std": 1.0, "min": 0.0}, "b": {"mean": 0.0, "std": 4.0, "min": 0.0}}
    out = P.strict_protocol(raw, stats, sigma=0)
    assert np.allclose(out[0], [0.0, 2.0])


def test_max_fusion_takes_each_frame_s_most_unusual_stream_and_a_stream_without_weight_counts_in_neither():
    raw = {"a": [np.array([2.0, 4.0, 2.0])], "b": [np.array([0.0, 0.0, 12.0])], "off": [np.array([99.0, 99.0, 99.0])]}
    stats = {"a": {"mean": 2.0, "std": 1.0, "min": 0.0}, "b": {"mean": 0.0, "std": 4.0, "min": 0.0},
             "off": {"mean": 0.0, "std": 1.0, "min": 0.0}}
    w = {"a": 1.0, "b": 1.0, "off": 0.0}
    assert np.allclose(P.strict_protocol(raw, stats, sigma=0, weights=w, rule="max")[0], [0.0, 2.0, 3.0])
    assert np.allclose(P.strict_protocol(raw, stats, sigma=0, weights=w)[0], [0.0, 1.0, 1.5])
    ref, _ = P.reference_protocol({k: raw[k] for k in ("a", "b")}, 1, 2, 0.5, rule="max")
    a, _ = P.reference_protocol({"a": raw["a"]}, 1, 2, 0.5)
    b, _ = P.reference_protocol({"b": raw["b"]}, 1, 2, 0.5)
    assert np.allclose(ref[0], np.maximum(a[0], b[0]))
    with pytest.raises(ValueError, match="evaluation.fusion: unknown rule 'median'"):
        P.strict_protocol(raw, stats, sigma=0, rule="median")


def test_clip_max_gives_each_frame_its_clips_highest_object_score():
    scores = np.array([1.0, 3.0, 2.0, 7.0])
    video = np.array([0, 0, 0, 1])
    clip = np.array([0, 0, 2, 0])
    frames = clip_max(scores, video, clip, np.array([10, 3]), T=4)
    assert len(frames) == 13
    assert np.allclose(frames[:4], 3.0)
    assert np.isnan(frames[4:8]).all()  # clip 1 of video 0 has no object
    assert np.allclose(frames[8:10], 2.0)  # last, short clip
    assert np.allclose(frames[10:], 7.0)


def test_tail_surprise_is_monotone_bounded_and_zero_below_the_training_scores():
    train = np.array([3.0, 1.0, 2.0, 2.0, 5.0])
    x = np.array([0.5, 1.0, 2.0, 4.0, 5.0, 100.0, np.nan])
    out = P.tail_surprise(x, train)
    n = len(train)
    # at or below the lowest training score: every training score is above -> -ln((1 + 5) / 6) = 0
    assert out[0] == out[1] == pytest.approx(0.0)
    assert out[2] == pytest.approx(-math.log((1 + 4) / (n + 1)))  # 2, 2, 3, 5 are >= 2
    assert out[3] == pytest.approx(-math.log((1 + 1) / (n + 1)))  # only 5 is >= 4
    assert out[4] == pytest.approx(-math.log((1 + 1) / (n + 1)))
    assert out[5] == pytest.approx(math.log(n + 1))  # the bound: nothing above
    assert np.isnan(out[6])
    assert (np.diff(out[:6]) >= 0).all()


def test_calibration_keeps_one_extreme_object_from_lifting_its_neighbours_above_a_moderate_anomaly():
    """A video of normal frames with one extreme object (z 60, a bicycle far off the normal range)
    and another with a moderate anomaly (z 4 for 12 frames): after per-video smoothing, the normal
    frames next to the extreme one must stay below the moderate anomaly's frames."""
    rng = np.random.default_rng(0)
    train = rng.normal(0, 1, 2000)
    stats = {"s": {"mean": float(train.mean()), "std": float(train.std()), "min": float(train.min())}}
    a = rng.normal(0, 0.5, 100)
    a[50] = 60.0  # the extreme object
    b = rng.normal(0, 0.5, 100)
    b[40:52] = 4.0  # a moderate anomaly, well above the normal range
    raw = {"s": [a, b]}
    neighbours = np.r_[40:50, 51:61]

    def scores(calibrated):
        r, st = P.calibrate(raw, {"s": train}) if calibrated else (raw, stats)
        return P.strict_protocol(r, st, 6.0)

    plain = scores(False)
    assert plain[0][neighbours].max() > plain[1][40:52].min()  # uncalibrated: the spill-over ranks normal frames higher
    cal = scores(True)
    assert cal[0][neighbours].max() < cal[1][40:52].min()
    # both streams' training scores map to one scale: their mean / std after calibration agree
    _, st = P.calibrate({"s": [a], "t": [b]}, {"s": train, "t": 10 * train + 7})
    assert st["s"]["mean"] == pytest.approx(st["t"]["mean"]) and st["s"]["std"] == pytest.approx(st["t"]["std"])


def test_crowd_surprise_is_the_surprise_of_the_highest_of_n_normal_objects():
    s = np.array([0.0, 0.5, 2.0, 5.0, 9.0, np.nan])
    assert np.allclose(P.crowd_surprise(s, np.ones(6))[:5], s[:5])  # a lone object: unchanged
    assert np.allclose(P.crowd_surprise(s, np.zeros(6))[:5], s[:5])  # no count: as one object
    out = P.crowd_surprise(s, np.full(6, 20))
    assert np.isnan(out[5]) and out[0] == 0.0
    p = np.exp(-s[:5])
    assert np.allclose(out[:5], -np.log(1 - (1 - p) ** 20))
    assert (np.diff(out[:5]) > 0).all()  # monotone: the clip's highest object stays its highest
    assert out[4] == pytest.approx(9.0 - math.log(20), abs=5e-3)  # a rare score: about s - ln n
    # more objects, less surprise for the same highest score; and the chance is exactly that of a max:
    # under the null the corrected score of a clip of n objects is distributed as one object's
    a = P.crowd_surprise(np.full(3, 4.0), np.array([1, 5, 50]))
    assert a[0] > a[1] > a[2] > 0
    rng = np.random.default_rng(0)
    u = rng.random((20000, 12))  # p-values of 12 normal objects per clip
    corrected = P.crowd_surprise(-np.log(u.min(1)), np.full(20000, 12))
    assert np.mean(corrected > -np.log(0.05)) == pytest.approx(0.05, abs=0.006)


def test_crowd_calibration_puts_a_crowded_normal_clip_below_a_lone_unusual_object():
    """The tail calibration ranks a clip by its highest object, so a crowd of 40 normal objects
    reaches a higher score than a lone object at the 2 % tail; counted for its crowd it does not.
    Streams are calibrated on their own counts."""
    rng = np.random.default_rng(1)
    train = rng.normal(0, 1, 5000)
    crowd_max = float(np.quantile(train, 0.995))  # the highest of 40 normal objects: typical
    lone = float(np.quantile(train, 0.98))
    raw = {"s": [np.r_[np.full(4, crowd_max), np.full(4, lone)]]}
    counts = {"s": [np.r_[np.full(4, 40), np.full(4, 1)]]}
    tail, _ = P.calibrate(raw, {"s": train})
    assert tail["s"][0][0] > tail["s"][0][4]
    crowd, st = P.calibrate(raw, {"s": train}, counts)
    assert crowd["s"][0][0] < crowd["s"][0][4]
    assert crowd["s"][0][4] == pytest.approx(tail["s"][0][4])  # one object: as tail
    assert st == P.calibrate(raw, {"s": train})[1]  # the training statistics are those of lone objects


def test_clip_counts_counts_each_clips_scored_objects_per_frame():
    from hscvad.stages.evaluate import clip_counts

    video = np.array([0, 0, 0, 1, 1, 0])
    clip = np.array([0, 0, 2, 0, 0, 0])
    score = np.array([1.0, 2.0, 3.0, 1.0, np.nan, 4.0])  # a NaN score is not a scored object
    c = clip_counts(video, clip, score, np.array([10, 3]), 4)
    assert [len(x) for x in c] == [10, 3]
    assert list(c[0]) == [3, 3, 3, 3, 0, 0, 0, 0, 1, 1] and list(c[1]) == [1, 1, 1]


def test_calibrated_object_table_bounds_an_extreme_object_and_keeps_the_order(tmp_path):
    """load_objects(calibration="tail"): a stream's object z is taken of the tail surprise under its
    training scores, so an object 1000 training stds out counts as "beyond every normal sample" and
    no more, in both streams alike; the order within a stream is kept."""
    from hscvad.evaluation.objects import load_objects
    from hscvad.h5store import write_store

    rng = np.random.default_rng(0)
    path = tmp_path / "scores.h5"
    with write_store(path, "scores", {"streams": ["a", "b"]}) as f:
        f["videos"] = np.array([b"v"])
        f["n_frames"] = np.array([8])
        f.attrs["clip_length"] = 4
        f.attrs["train_stats"] = '{"a": {"mean": 0.0, "std": 1.0}, "b": {"mean": 0.0, "std": 1.0}}'
        normal = rng.normal(0, 1, 500)
        for s, scale in (("a", 1.0), ("b", 100.0)):  # stream b's raw scores are 100x a's
            g = f.create_group(s)
            g["train_score"] = (normal * scale).astype(np.float32)
            g["test_score"] = (np.array([0.0, 2.0, 3.0, 1000.0]) * scale).astype(np.float32)
            for k, v in (("test_video", [0, 0, 0, 0]), ("test_clip", [0, 0, 1, 1]), ("test_track", [1, 2, 3, 4])):
                g[k] = np.array(v, np.int32)
            g["test_box"] = np.zeros((4, 4), np.float32)
            g["test_class"] = np.zeros(4, np.int16)
            g["test_knn_score"] = np.zeros(4, np.float32)
    raw, cal = load_objects(str(path)), load_objects(str(path), "tail")
    assert raw.z[3, 0] == pytest.approx(1000.0) and raw.z[3, 1] == pytest.approx(100000.0)
    assert (np.diff(cal.z[:, 0]) > 0).all() and np.allclose(cal.z[:, 0], cal.z[:, 1])  # one scale for both
    assert cal.z[3, 0] < 2 * cal.z[2, 0]  # bounded: the extreme object is not 300x the moderate one
    assert np.allclose(cal.fused, cal.z.mean(1))
    with pytest.raises(ValueError, match="calibration must be none or tail"):
        load_objects(str(path), "rank")


def test_track_mean_averages_a_tracks_clip_scores_within_the_window():
    # video 0: track 5 in clips 0-3 (clip 2 missing: clip 4), track 9 in clip 1; video 1: track 5 in clip 1
    video = np.array([0, 0, 0, 0, 0, 1])
    track = np.array([5, 5, 9, 5, 5, 5])
    clip = np.array([0, 1, 1, 3, 4, 1])
    s = np.array([1.0, 3.0, 100.0, 5.0, 7.0, 50.0])
    np.testing.assert_array_equal(track_mean(s, video, track, clip, 0), s)
    # window 1: clip 0 <- (1, 3); clip 1 <- (1, 3) (clip 2 absent); clip 3 <- (5, 7); clip 4 <- (5, 7)
    np.testing.assert_allclose(track_mean(s, video, track, clip, 1), [2.0, 2.0, 100.0, 6.0, 6.0, 50.0])
    # window 2: clip 1 reaches clip 3, clip 0 does not; other tracks and videos never mix in
    np.testing.assert_allclose(track_mean(s, video, track, clip, 2), [2.0, 3.0, 100.0, 5.0, 6.0, 50.0])
    # the input order does not matter
    p = np.array([4, 2, 0, 5, 1, 3])
    want = np.array([2.0, 3.0, 100.0, 5.0, 6.0, 50.0])
    np.testing.assert_allclose(track_mean(s[p], video[p], track[p], clip[p], 2), want[p])
    # NaN stays NaN and is left out of its neighbours' means
    n = s.copy()
    n[1] = np.nan
    got = track_mean(n, video, track, clip, 1)
    assert np.isnan(got[1]) and got[0] == 1.0 and got[3] == 6.0
    with pytest.raises(ValueError, match=r"scores\.h5, stream velocity: two samples of track 5 in clip 1 of video 0"):
        track_mean(s[:2], np.zeros(2), np.array([5, 5]), np.array([1, 1]), 1, "scores.h5, stream velocity")
    with pytest.raises(ValueError, match="evaluation.track_window"):
        track_mean(s, video, track, clip, -1)


def test_track_mean_keeps_a_lasting_anomaly_and_quiets_one_clip_of_noise():
    """A rider scored high in four clips of five but low in one keeps a high score there; a walker
    with one noisy clip among ordinary ones no longer outranks the rider's lowest clip."""
    clip = np.arange(5)
    rider = np.array([9.0, 8.0, 2.0, 9.0, 8.0])
    walker = np.array([1.0, 1.0, 7.0, 1.0, 1.0])
    s = np.r_[rider, walker]
    video, track, clips = np.zeros(10), np.repeat([1, 2], 5), np.r_[clip, clip]
    before_rider, before_walker = s[2], s[7]
    got = track_mean(s, video, track, clips, 1)
    assert before_walker > before_rider and got[2] > got[7]


def test_scores_averaged_along_tracks_reach_frames_objects_and_their_training_statistics(tmp_path):
    """evaluation.track_window: read_scores (the protocols' input) and load_objects (object-level
    figures, explanations) average every test and training score along its track; frames take their
    clip's highest average; the training statistics are those of the averaged training scores."""
    from hscvad.evaluation.objects import load_objects, score_stats
    from hscvad.h5store import write_store
    from hscvad.stages.evaluate import read_scores

    path = tmp_path / "scores.h5"
    test_score = np.array([10.0, 1.0, 1.0, 1.0, 4.0], np.float32)  # track 1 in clips 0-2, track 2 in clips 0-1
    with write_store(path, "scores", {"streams": ["a"]}) as f:
        f["videos"] = np.array([b"v"])
        f["n_frames"] = np.array([12])
        f.attrs["clip_length"] = 4
        f.attrs["train_stats"] = json.dumps({"a": score_stats(np.array([1.0, 2.0, 3.0, 6.0], np.float32))})
        g = f.create_group("a")
        g["train_score"] = np.array([1.0, 2.0, 3.0, 6.0], np.float32)
        for k, v in (("train_video", [0, 0, 1, 1]), ("train_clip", [0, 1, 0, 2]), ("train_track", [7, 7, 7, 7])):
            g[k] = np.array(v, np.int32)
        g["test_score"] = test_score
        for k, v in (("test_video", [0] * 5), ("test_clip", [0, 1, 2, 0, 1]), ("test_track", [1, 1, 1, 2, 2])):
            g[k] = np.array(v, np.int32)
        g["test_box"] = np.zeros((5, 4), np.float32)
        g["test_class"] = np.zeros(5, np.int16)
        g["test_knn_score"] = test_score
        g["frame_score"] = clip_max(test_score, np.zeros(5, np.int64), np.array([0, 1, 2, 0, 1]), np.array([12]), 4)
    *_, raw0, train0, stats0, _ = read_scores(str(path), 0)
    np.testing.assert_allclose(raw0["a"][0], np.repeat([10.0, 4.0, 1.0], 4))
    *_, raw1, train1, stats1, _ = read_scores(str(path), 1)
    # track 1: (10+1)/2, (10+1+1)/3, (1+1)/2; track 2: (1+4)/2 twice; frames: each clip's highest
    np.testing.assert_allclose(raw1["a"][0], np.repeat([5.5, 4.0, 1.0], 4))
    np.testing.assert_allclose(train1["a"], [1.5, 1.5, 3.0, 6.0])  # video 1's clips 0 and 2 are not adjacent
    assert stats1["a"]["mean"] == pytest.approx(3.0) and stats0["a"]["mean"] == pytest.approx(3.0)
    assert stats1["a"]["std"] < stats0["a"]["std"]
    table = load_objects(str(path), "none", 1)
    np.testing.assert_allclose(np.sort(table.raw[:, 0]), np.sort([5.5, 4.0, 1.0, 2.5, 2.5]))
    np.testing.assert_allclose(np.sort(table.knn[:, 0]), np.sort(table.raw[:, 0]))
    np.testing.assert_allclose(table.z[:, 0], (table.raw[:, 0] - 3.0) / stats1["a"]["std"], rtol=1e-6)
