"""The label-free validation's synthetic anomalies (hscvad.evaluation.validation): what each alteration
does to a track's velocity descriptor, and the clip-level AUC that compares settings."""

import numpy as np
import pytest
from test_velocity import EDGES, _moving_boxes, _person_track, col

from hscvad.evaluation.validation import APPEARANCE_KINDS, GLIDE_COVERAGE, alter_box, clip_auc, roc_auc, synthetic_rows
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


def test_clip_events_take_the_kinds_in_turn_and_the_frame_figure_counts_the_spill_over():
    """Two clips of every ten hold an event; successive events take the kinds (rows) in turn; the
    smoothing carries a raised clip's score onto its normal neighbours, which costs AUC."""
    from hscvad.evaluation.validation import clip_events, event_frame_auc

    rng = np.random.default_rng(1)
    T, n_videos, n_clips = 4, 3, 20
    video = np.repeat(np.arange(n_videos), n_clips)
    clip = np.tile(np.arange(n_clips), n_videos)
    fused = rng.normal(size=len(clip))
    n_frames = np.full(n_videos, n_clips * T)
    moving = np.ones(len(clip), bool)

    def figure(synthetic, altered=moving, sigma=0.0):
        syn = np.atleast_2d(synthetic)
        chosen, kind, positive = clip_events(altered, video, clip, n_frames, T, seed=0, n_kinds=len(syn))
        x = fused.copy()
        x[chosen] = syn[kind, chosen]
        return event_frame_auc(x, video, clip, n_frames, T, positive, sigma), len(chosen)

    auc_both, n = figure(np.stack([fused + 10, fused + 10]))
    assert n == n_videos * 4 and auc_both == pytest.approx(1.0)  # clips 0, 1, 10, 11 of each video
    chosen, kind, positive = clip_events(moving, video, clip, n_frames, T, seed=0, n_kinds=2)
    assert set(clip[chosen]) == {0, 1, 10, 11} and (kind == (clip[chosen] >= 10)).all()
    assert set(positive.tolist()) == {v * n_clips + c for v in range(n_videos) for c in (0, 1, 10, 11)}
    # the second kind (events at clips 10-11) leaves its objects as they were: those events are missed
    auc_half, _ = figure(np.stack([fused + 10, fused]))
    assert 0.6 < auc_half < 0.9
    # smoothing spreads the raised clips over their neighbours: normal frames beside events rise
    auc_smooth, _ = figure(np.stack([fused + 10, fused + 10]), sigma=8.0)
    assert auc_smooth < auc_both - 0.01
    # clips without a moving object are never events
    none, n_none = figure(np.stack([fused + 10, fused + 10]), altered=np.zeros(len(clip), bool))
    assert n_none == 0 and np.isnan(none)


def _tracks_world(n_videos=2, n_clips=30, n_tracks=6, seed=0):
    """Each video: tracks of 3-10 clips at random places, one sample per (track, clip)."""
    rng = np.random.default_rng(seed)
    video, track, clip = [], [], []
    for v in range(n_videos):
        for t in range(n_tracks):
            length = int(rng.integers(3, 11))
            start = int(rng.integers(0, n_clips - length + 1))
            video += [v] * length
            track += [t] * length
            clip += list(range(start, start + length))
    return np.array(video), np.array(track), np.array(clip), np.full(n_videos, n_clips * 4)


def test_track_events_alter_whole_tracks_apart_from_each_other_until_the_share_is_covered():
    from hscvad.evaluation.validation import track_events

    video, track, clip, n_frames = _tracks_world(n_clips=60, n_tracks=12)
    n_clips = n_frames // 4
    chosen, kind, positive = track_events(np.ones(len(clip), bool), video, track, clip, n_frames, 4, seed=3,
                                          share=0.3, gap=2, n_kinds=2)
    for v in range(2):
        mine = chosen[video[chosen] == v]
        kept = np.unique(track[mine])
        spans = sorted((clip[mine][track[mine] == t].min(), clip[mine][track[mine] == t].max(), t) for t in kept)
        for t in kept:  # every sample of a kept track is altered
            assert set(np.flatnonzero((video == v) & (track == t))) <= set(mine.tolist())
        for (_, a_hi, _), (b_lo, _, _) in zip(spans, spans[1:]):
            assert b_lo - a_hi > 2  # at least gap clips between kept spans
        covered = sum(hi - lo + 1 for lo, hi, _ in spans)
        longest = max(hi - lo + 1 for lo, hi, _ in spans)
        assert len(kept) >= 2  # several spans, so that their gaps are tested
        assert covered >= 0.3 * n_clips[v] or len(kept) == len(np.unique(track[video == v]))
        assert covered - longest < 0.3 * n_clips[v]  # it stopped once the share was covered
        # kinds in turn in time order, the positives are the spans
        firsts = [np.flatnonzero((video[chosen] == v) & (track[chosen] == t))[0] for _, _, t in spans]
        assert [int(kind[i]) for i in firsts] == [i % 2 for i in range(len(spans))]
        want = {v * n_clips[0] + c for lo, hi, _ in spans for c in range(lo, hi + 1)}
        assert want == set(positive[positive // n_clips[0] == v].tolist())
    # missing candidates are never chosen; runs of 2 clips stay inside one track
    chosen_r, _, positive_r = track_events(np.ones(len(clip), bool), video, track, clip, n_frames, 4, seed=3, run=2)
    for v, t in {(int(video[i]), int(track[i])) for i in chosen_r}:
        c = clip[chosen_r][(video[chosen_r] == v) & (track[chosen_r] == t)]
        assert len(c) <= 2 and (len(c) < 2 or c.max() - c.min() == 1)
    none, _, pos_none = track_events(np.zeros(len(clip), bool), video, track, clip, n_frames, 4, seed=3)
    assert len(none) == 0 and len(pos_none) == 0


def test_averaging_along_tracks_steadies_lasting_anomalies_and_dilutes_short_ones():
    """Normal scores are noise; a lasting anomaly raises a whole track, a short one one clip of one
    track. Averaging along tracks (evaluation.track_window) raises the first figure, lowers the second."""
    from hscvad.evaluation.objects import track_mean
    from hscvad.evaluation.validation import clip_events, event_frame_auc, track_events

    video, track, clip, n_frames = _tracks_world(n_videos=6, n_clips=40, n_tracks=12, seed=1)
    rng = np.random.default_rng(2)
    normal = rng.normal(size=len(clip))
    moving = np.ones(len(clip), bool)

    def figure(events, window):
        chosen, _, positive = events
        x = normal.copy()
        x[chosen] += 1.5
        return event_frame_auc(track_mean(x, video, track, clip, window), video, clip, n_frames, 4, positive, 0.0)

    lasting = track_events(moving, video, track, clip, n_frames, 4, seed=0)
    short = clip_events(moving, video, clip, n_frames, 4, seed=0)
    assert figure(lasting, 2) > figure(lasting, 0) + 0.02
    assert figure(short, 2) < figure(short, 0) - 0.02


@pytest.mark.parametrize("kind", APPEARANCE_KINDS)
def test_an_appearance_anomaly_changes_the_object_s_pixels_and_nothing_else(kind):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    before = img.copy()
    box = np.array([10.4, 5.5, 30.2, 45.0])  # rounded outwards: columns 10-30, rows 5-44
    out = alter_box(kind, img, box)
    assert np.array_equal(img, before)  # the input is not modified
    inside = np.zeros((60, 80), bool)
    inside[5:45, 10:31] = True
    assert np.array_equal(out[~inside], img[~inside])
    region, got = img[5:45, 10:31], out[5:45, 10:31]
    assert (got != region).mean() > 0.9  # really altered
    if kind == "flip":  # the same pixels upside down: the same colours, another shape
        assert np.array_equal(got, region[::-1])
    else:  # the same shapes, redder: red up, green and blue down
        r, g = region.astype(int), got.astype(int)
        assert (g[..., 0] >= r[..., 0]).all() and (g[..., 1:] <= r[..., 1:]).all()
        assert np.corrcoef(g[..., 1].ravel(), r[..., 1].ravel())[0, 1] > 0.99
    grey = np.repeat(img[..., :1], 3, axis=2)  # a grey scene's object changes too
    assert (alter_box(kind, grey, box)[5:45, 10:31] != grey[5:45, 10:31]).any(2).mean() > 0.9
    edge = alter_box(kind, img, np.array([-5.0, -5.0, 4.0, 200.0]))  # clipped to the image
    assert np.array_equal(edge[:, 4:], img[:, 4:]) and not np.array_equal(edge[:, :4], img[:, :4])
    with pytest.raises(ValueError, match="unknown appearance anomaly"):
        alter_box("melt", img, box)


def test_sample_features_embed_chosen_samples_from_altered_frames_with_the_stage_s_crops():
    """The appearance stage's feature code: a chosen subset of samples gets the features it gets in a
    full pass; an alteration reaches exactly the crops of the chosen samples."""
    from hscvad.appearance import sample_features
    from hscvad.features import object_samples

    class MeanPixel:  # a transparent embedding: the mean of each channel of the crop
        dim, input_hw, keep_aspect = 3, (8, 8), False

        def embed(self, crops):
            return crops.reshape(len(crops), -1, 3).mean(1)

    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (40, 60, 3), dtype=np.uint8) for _ in range(8)]
    for f in frames:  # red objects on a noisy street
        f[5:30, 5:20] = (200, 40, 40)
        f[8:35, 30:50] = (180, 30, 60)

    def source(keep):
        return (f if keep(t) else None for t, f in enumerate(frames))

    frame = np.repeat(np.arange(8), 2)
    track = np.tile([1, 2], 8)
    boxes = np.where(track[:, None] == 1, [[5, 5, 20, 30]], [[30, 8, 50, 35]]).astype(np.float32)
    sample, uniq = object_samples(frame, track, 4)
    S = len(uniq)
    kw = {"crops_per_sample": 2, "context": 1.0, "batch_size": 3}
    full, n = sample_features(source, frame, sample, boxes, S, 8, MeanPixel(), **kw)
    assert S == 4 and (n == 2).all() and not np.allclose(full[0], full[1])
    chosen = np.array([True, False, False, True])
    sub, n_sub = sample_features(source, frame, sample, boxes, S, 8, MeanPixel(), embed=chosen, **kw)
    np.testing.assert_allclose(sub[chosen], full[chosen], rtol=1e-6)
    assert (sub[~chosen] == 0).all() and (n_sub[~chosen] == 0).all()
    alt, _ = sample_features(source, frame, sample, boxes, S, 8, MeanPixel(), embed=chosen,
                             alter=lambda img, box: alter_box("recolour", img, box), **kw)
    # a red tint inside the box moves each chosen sample's mean colour
    assert (np.abs(alt[chosen] - full[chosen]).max(1) > 1).all()


# --- the yardstick: each stream's score and weight chosen on synthetic anomalies --------------------------

def test_candidates_put_the_configured_read_out_first_and_their_names_read_back():
    from hscvad.evaluation.yardstick import KNN, candidates, from_name

    cands = candidates({"bank": "encoded", "tau": "paper"})
    assert [c.name for c in cands] == ["hsc:encoded:paper", "hsc:memory:auto", "hsc:memory:paper", "hsc:encoded:auto",
                                       "knn"]
    assert all(from_name(c.name) == c for c in cands) and cands[-1] == KNN
    assert [c.name for c in candidates({"bank": "memory", "tau": 0.05})][:2] == ["hsc:memory:0.05", "hsc:memory:auto"]
    assert from_name("hsc:memory:0.05").tau == 0.05
    with pytest.raises(ValueError, match="unknown candidate"):
        from_name("hsc:bank:auto")


def test_the_choice_takes_the_best_mean_auc_keeps_the_configured_one_on_a_tie_and_skips_what_was_not_measured():
    from hscvad.evaluation.yardstick import choose

    aucs = {"hsc:memory:auto": {"a": 0.8, "b": 0.9}, "hsc:encoded:auto": {"a": 0.9, "b": 0.8}, "knn": {"a": 0.95,
                                                                                                   "b": 0.9}}
    assert choose(aucs, list(aucs)) == ("knn", pytest.approx(0.925))
    assert choose(aucs, ["hsc:memory:auto", "hsc:encoded:auto"])[0] == "hsc:memory:auto"  # tie: the first
    assert choose(aucs, ["hsc:encoded:auto", "hsc:memory:auto"])[0] == "hsc:encoded:auto"
    nan = {"x": {"a": float("nan")}, "y": {"a": float("nan")}}
    c, m = choose(nan, ["x", "y"])
    assert c == "x" and np.isnan(m)


def test_a_stream_at_chance_gets_no_weight_and_the_fusion_then_keeps_the_informative_stream_s_ranking():
    from hscvad.evaluation.yardstick import fused_aucs, weights

    rng = np.random.default_rng(0)
    n = 400
    keys = np.arange(n, dtype=np.int64)
    normal = {"signal": rng.normal(size=n), "noise": rng.normal(size=n)}
    altered = keys[:100]
    # kind "bigger" raises the signal stream's score of the altered objects; kind "jitter" is the noise
    # stream's own kind, which it does not see (its scores of the altered objects are fresh noise)
    streams = {
        "signal": {"keys": keys, "scores": normal["signal"],
                   "kinds": {"bigger": (altered, normal["signal"][:100] + 2)}},
        "noise": {"keys": keys, "scores": normal["noise"], "kinds": {"jitter": (altered, rng.normal(size=100))}},
    }
    own = {"signal": roc_auc(normal["signal"][:100] + 2, normal["signal"]),
           "noise": roc_auc(streams["noise"]["kinds"]["jitter"][1], normal["noise"])}
    assert own["signal"] > 0.9 and abs(own["noise"] - 0.5) < 0.1
    w, why = weights(own, 0.55)
    assert w == {"signal": 1.0, "noise": 0.0} and "noise below validation.min_auc" in why
    with_noise = fused_aucs(streams, keys, {"signal": 1.0, "noise": 1.0})
    chosen = fused_aucs(streams, keys, w)
    assert chosen["bigger"] > with_noise["bigger"] + 0.02  # the noise stream dilutes the fused score (0.94 vs 0.89)
    assert chosen["bigger"] == pytest.approx(own["signal"], abs=0.02)  # alone: the stream's own ranking
    # a stream with nothing to measure (no synthetic kinds: NaN) keeps its weight; all at chance: all kept
    assert weights({"a": 0.9, "motion": float("nan")}, 0.55)[0] == {"a": 1.0, "motion": 1.0}
    assert weights({"a": 0.5, "b": 0.52}, 0.55) == ({"a": 1.0, "b": 1.0}, "every stream below "
                                                    "validation.min_auc = 0.55: all kept")


def test_a_collapsed_score_is_called_degenerate():
    from hscvad.evaluation.yardstick import degenerate

    assert degenerate(np.r_[np.zeros(60), np.arange(40.0)]) == "61 of 100 training scores share one value"
    assert degenerate(np.ones(10)) == "every training score is the same"
    assert degenerate(np.arange(10.0)) is None


def test_every_candidate_scores_held_out_samples_as_the_score_stage_and_only_a_real_change_is_found(tmp_path):
    """A trained model and the 1-NN on small features: altered samples moved far away are found by
    every candidate; an 'alteration' that leaves the features as they are stays at chance."""
    from test_hsc_train import CFG
    from test_hsc_train import synthetic as stream_data

    from hscvad.evaluation.yardstick import candidate_aucs, candidates, choose, score_candidates
    from hscvad.features import Samples
    from hscvad.hsc.readout import holdout_groups, nn_distance
    from hscvad.hsc.train import load_checkpoint, save_checkpoint, score_samples, train_stream

    data = stream_data(n=160)
    r = train_stream(data, {**CFG, "epochs": 20, "feature_norm": "none"}, n_scenes=2, seed=0)
    save_checkpoint(tmp_path / "m.pt", {"s": r}, {"stream_cfg": {"s": {**CFG, "feature_norm": "none"}}, "n_scenes": 2})
    models, meta = load_checkpoint(tmp_path / "m.pt")
    model, bank = models["s"]
    n = len(data.feat)
    video = np.repeat(np.arange(4), n // 4)
    train = Samples(videos=["a", "b", "c", "d"], n_frames=np.full(4, 80), feat=data.feat, scene_feat=data.scene_feat,
                    video=video, clip=np.tile(np.arange(n // 4), 4), cls=data.cls, track=np.zeros(n, np.int64),
                    box=np.zeros((n, 4)), clip_scene_feat=[], clip_length=8)
    idx = np.arange(0, n, 4)
    rng = np.random.default_rng(1)
    moved = data.feat[idx] + 3.0 * rng.normal(size=data.feat[idx].shape).astype(np.float32)
    synthetic = {"moved": (idx, moved), "same": (idx, data.feat[idx].copy())}
    query = np.arange(n)
    cands = candidates({"bank": "memory", "tau": "auto", "effective_entries": 5, "max_queries": 4096})
    scored = score_candidates(model, bank, meta, "s", train, query, synthetic,
                              {"bank": "memory", "tau": "auto", "effective_entries": 5, "max_queries": 4096},
                              0.5, 0, cands)
    assert set(scored) == {c.name for c in cands}
    groups, _ = holdout_groups(video)
    assert np.array_equal(scored["knn"]["normal"], nn_distance(data.feat, data.feat, groups, groups))
    paper = scored["hsc:memory:paper"]
    assert paper["tau"] == 0.5
    assert np.allclose(paper["normal"], score_samples(model, bank, data.feat, data.scene_feat, 0.5,
                                                      query_group=groups, bank_group=groups), atol=1e-6)
    # an unchanged sample scores as itself: its "altered" score is its own held-out normal score
    for c in scored.values():
        assert np.allclose(c["kinds"]["same"], c["normal"][idx], rtol=1e-5, atol=1e-6)
    aucs = candidate_aucs(scored, np.ones(n, bool))
    assert all(a["moved"] > 0.9 for a in aucs.values())
    assert all(abs(a["same"] - 0.5) < 0.15 for a in aucs.values())
    best, auc = choose({c: {"moved": a["moved"]} for c, a in aucs.items()}, [c.name for c in cands])
    assert auc == max(a["moved"] for a in aucs.values())
